//go:build payfn_extstore

package storetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// keepalive is the write end of the store process's standard input: held
// for the life of this process, so the store stops when this process
// exits, however it exits.
var keepalive *os.File

// startServer starts the embedded store as a process of its own (go run
// ./scripts/teststore): a binary built with -tags payfn_extstore does not
// link FerretDB, which matters for the fuzz binaries scripts/test builds,
// since fuzzing instruments every package a binary links.
func startServer(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", fmt.Errorf("storetest: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return "", fmt.Errorf("storetest: %w", err)
	}
	cmd := exec.Command("go", "run", "./scripts/teststore", "-dir", dir)
	cmd.Dir = root
	cmd.Stdin = r
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", fmt.Errorf("storetest: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("storetest: start the store process: %w", err)
	}
	r.Close()
	keepalive = w
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- strings.TrimSpace(sc.Text())
		}
		close(line)
	}()
	select {
	case uri, ok := <-line:
		if !ok || !strings.HasPrefix(uri, "mongodb://") {
			return "", errors.New("storetest: the store process printed no URI")
		}
		return uri, nil
	case <-ctx.Done():
		cmd.Process.Kill()
		return "", fmt.Errorf("storetest: the store process did not start: %w", ctx.Err())
	}
}

// moduleRoot is the folder of go.mod above the working directory.
func moduleRoot() (string, error) {
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
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
