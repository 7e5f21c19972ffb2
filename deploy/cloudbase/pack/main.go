// Command pack builds what cloudbaserc.json deploys to CloudBase, one folder
// per function under its functionRoot (dist/cloudbase):
//
//	go run ./deploy/cloudbase/pack [-arch amd64]
//	tcb fn deploy --all   # or: tcb framework deploy
//
// A function <name> is functions/<lower-case name>, built as every payfn
// binary is (static linux, CGO_ENABLED=0, -tags lambda.norpc, -trimpath,
// -ldflags='-s -w'), at <root>/<name>/<lower-case name>. An HTTP function
// ("type": "HTTP") also gets its deploy/cloudbase/functions/<name>/
// scf_bootstrap, which starts the binary on port 9000; an event function
// (a timer job) is started by the Go1 runtime by its handler, the
// executable's name.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/payfn/payfn/internal/repo"
)

// Config is the part of cloudbaserc.json pack reads.
type Config struct {
	FunctionRoot string `json:"functionRoot"`
	Functions    []struct {
		Name    string `json:"name"`
		Type    string `json:"type"`
		Handler string `json:"handler"`
	} `json:"functions"`
}

func main() {
	arch := flag.String("arch", "amd64", "GOARCH of the CloudBase runtime: amd64 or arm64")
	out := flag.String("out", "", "output folder (default: cloudbaserc.json's functionRoot)")
	flag.Parse()
	if err := run(*arch, *out); err != nil {
		fmt.Fprintln(os.Stderr, "pack:", err)
		os.Exit(1)
	}
}

func run(arch, out string) error {
	if arch != "amd64" && arch != "arm64" {
		return fmt.Errorf("unknown arch %q (want amd64 or arm64)", arch)
	}
	root, err := repo.Root()
	if err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(root, "cloudbaserc.json"))
	if err != nil {
		return err
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("cloudbaserc.json: %w", err)
	}
	if out == "" {
		out = cfg.FunctionRoot
	}
	if out == "" {
		return errors.New("cloudbaserc.json names no functionRoot; give -out")
	}
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	for _, fn := range cfg.Functions {
		folder := strings.ToLower(fn.Name)
		dir := filepath.Join(out, fn.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w",
			"-o", filepath.Join(dir, folder), "./functions/"+folder)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build %s: %w", fn.Name, err)
		}
		switch fn.Type {
		case "HTTP":
			boot, err := os.ReadFile(filepath.Join(root, "deploy", "cloudbase", "functions", fn.Name, "scf_bootstrap"))
			if err != nil {
				return fmt.Errorf("HTTP function %s: %w", fn.Name, err)
			}
			if err := os.WriteFile(filepath.Join(dir, "scf_bootstrap"), boot, 0o755); err != nil {
				return err
			}
			// WriteFile keeps the mode of a file that already exists.
			if err := os.Chmod(filepath.Join(dir, "scf_bootstrap"), 0o755); err != nil {
				return err
			}
		case "":
			if fn.Handler != folder {
				return fmt.Errorf("event function %s: handler %q, want the executable's name %q", fn.Name, fn.Handler, folder)
			}
		default:
			return fmt.Errorf("function %s: unknown type %q", fn.Name, fn.Type)
		}
		fmt.Printf("%s: %s\n", fn.Name, dir)
	}
	return nil
}
