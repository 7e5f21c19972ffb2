package repo_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/payfn/payfn/internal/repo"
)

func TestRootIsFoundFromASubfolderAndMissingOutside(t *testing.T) {
	root, err := repo.Root() // the test runs in internal/repo
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "functions")); err != nil {
		t.Errorf("Root() = %s, which has no functions/ folder", root)
	}
	t.Chdir(t.TempDir())
	if got, err := repo.Root(); err == nil {
		t.Errorf("outside the repository Root() = %s, want an error", got)
	}
}
