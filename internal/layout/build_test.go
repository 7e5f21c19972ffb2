package layout

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestFunctionsBuildAsStaticBinaries builds every function the way the
// deployment does (no cgo, no RPC mode, stripped) and checks each binary
// exists. Sizes are logged; the size target is checked by the benchmarks.
func TestFunctionsBuildAsStaticBinaries(t *testing.T) {
	out := t.TempDir()
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", out+string(os.PathSeparator), "./functions/...")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	dirs, err := os.ReadDir("../../functions")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no functions found: %v", err)
	}
	for _, d := range dirs {
		fn := d.Name()
		fi, err := os.Stat(filepath.Join(out, fn))
		if err != nil {
			t.Errorf("function %s was not built: %v", fn, err)
			continue
		}
		t.Logf("%s: %.1f MiB", fn, float64(fi.Size())/(1<<20))
	}
}
