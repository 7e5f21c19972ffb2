// Command build compiles every function under functions/ into a static Linux
// binary and zips it the way each cloud expects:
//
//	go run ./scripts/build -platform aws,scf -arch arm64 -out dist
//
// AWS Lambda (provided.al2023): dist/aws/<arch>/<function>.zip holds one
// executable named bootstrap at the root of the archive.
//
// Tencent SCF (Go1 runtime, handler = executable name):
// dist/scf/<arch>/<function>.zip holds one executable named after the
// function folder, for uploading a single function in the console, and
// dist/scf/<arch>/payfn.zip holds all of them, which is the one package
// serverless.yml deploys (the Serverless plugin uploads one archive per
// service and each function's handler picks its executable).
//
// Every binary is built with CGO_ENABLED=0 -tags lambda.norpc -trimpath
// -ldflags='-s -w', once per architecture: the same executable serves both
// clouds (shared/runtime detects which one started it).
//
// It prints one line per artifact with its size. Zip entries carry a fixed
// time and mode 0755, so the same sources give byte-identical archives.
package main

import (
	"archive/zip"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/payfn/payfn/internal/repo"
)

func main() {
	platforms := flag.String("platform", "aws,scf", "comma-separated platforms: aws, scf")
	archs := flag.String("arch", "arm64", "comma-separated GOARCH values: arm64, amd64")
	out := flag.String("out", "dist", "output folder (relative to the module root)")
	only := flag.String("functions", "", "comma-separated function folders to build (default: every folder under functions/)")
	flag.Parse()
	if err := run(split(*platforms), split(*archs), *out, split(*only)); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
}

func split(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func run(platforms, archs []string, out string, only []string) error {
	for _, p := range platforms {
		if p != "aws" && p != "scf" {
			return fmt.Errorf("unknown platform %q (want aws or scf)", p)
		}
	}
	for _, a := range archs {
		if a != "arm64" && a != "amd64" {
			return fmt.Errorf("unknown arch %q (want arm64 or amd64)", a)
		}
	}
	if len(platforms) == 0 || len(archs) == 0 {
		return errors.New("need at least one platform and one arch")
	}
	root, err := repo.Root()
	if err != nil {
		return err
	}
	fns, err := functions(root)
	if err != nil {
		return err
	}
	if len(only) > 0 {
		for _, f := range only {
			if !slices.Contains(fns, f) {
				return fmt.Errorf("no function folder functions/%s", f)
			}
		}
		fns = only
	}
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	for _, arch := range archs {
		bin := filepath.Join(out, "bin", arch)
		if err := compile(root, arch, bin); err != nil {
			return err
		}
		for _, p := range platforms {
			dir := filepath.Join(out, p, arch)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			var bundle []entry
			for _, fn := range fns {
				name := fn // SCF: handler = executable name
				if p == "aws" {
					name = "bootstrap" // provided.* runtimes execute ./bootstrap
				}
				e := entry{name: name, path: filepath.Join(bin, fn)}
				if err := writeZip(filepath.Join(dir, fn+".zip"), e); err != nil {
					return err
				}
				bundle = append(bundle, e)
			}
			if p == "scf" {
				if err := writeZip(filepath.Join(dir, "payfn.zip"), bundle...); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// functions lists the folders under functions/ that hold a main.go.
func functions(root string) ([]string, error) {
	des, err := os.ReadDir(filepath.Join(root, "functions"))
	if err != nil {
		return nil, err
	}
	var fns []string
	for _, d := range des {
		if !d.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, "functions", d.Name(), "main.go")); err == nil {
			fns = append(fns, d.Name())
		}
	}
	if len(fns) == 0 {
		return nil, errors.New("no functions/*/main.go found")
	}
	return fns, nil
}

// compile builds every function package for linux/arch into dir in one go
// command, so packages shared by the functions compile once.
func compile(root, arch, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	start := time.Now()
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w",
		"-o", dir+string(os.PathSeparator), "./functions/...")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build linux/%s: %w", arch, err)
	}
	fmt.Printf("built linux/%s in %s\n", arch, time.Since(start).Round(100*time.Millisecond))
	return nil
}

type entry struct{ name, path string }

// zipTime is the fixed modification time of every entry (zip's epoch is 1980).
var zipTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// writeZip writes the entries at the root of a new archive, executable:
// both clouds start the file named by the handler and fail with "permission
// denied" if the archive dropped the exec bit.
func writeZip(path string, entries ...entry) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	zw := zip.NewWriter(f)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: zipTime}
		h.SetMode(0o755)
		w, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		src, err := os.Open(e.path)
		if err != nil {
			return err
		}
		_, err = io.Copy(w, src)
		src.Close()
		if err != nil {
			return fmt.Errorf("zip %s: %w", e.path, err)
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if fi, err := f.Stat(); err == nil {
		fmt.Printf("%s\t%.1f MiB\n", path, float64(fi.Size())/(1<<20))
	}
	return nil
}
