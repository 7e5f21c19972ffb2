// Package repo locates the payfn repository for the commands and
// benchmarks that work on its files (build, bench, reliability).
package repo

import (
	"errors"
	"os"
	"path/filepath"
)

// Root is the folder holding go.mod, found from the working directory up,
// so a command works from any folder inside the repository.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory: run inside the payfn repository")
		}
		dir = parent
	}
}
