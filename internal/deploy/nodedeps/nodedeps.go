// Package nodedeps installs the Node packages some deploy checks run (the
// Serverless Framework pinned in deploy/serverless-aws), once per lockfile,
// and says when the npm registry cannot be reached so those checks can skip
// instead of fail. scripts/test starts the install in the background while
// the Go checks compile; internal/deploy's test waits for it (a file lock)
// and finds it done.
package nodedeps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ErrRegistryUnreachable means the registry did not answer a short probe and
// the npm cache could not install offline either. Only this error may turn
// a check into a skip, and never in CI (see MustNotSkip).
var ErrRegistryUnreachable = errors.New("npm registry unreachable")

// stampName, inside node_modules, holds the SHA-256 of the lockfile it was
// installed from.
const stampName = ".payfn-lock-sha256"

// probeTimeout bounds the reachability check: long enough for a slow link,
// short enough that an offline laptop learns it at once.
const probeTimeout = 5 * time.Second

// Result says what Install did.
type Result struct {
	Ran      bool          // npm ci ran (false: node_modules already matched the lockfile)
	Offline  bool          // the registry was unreachable and the cache sufficed
	Registry string        // the registry npm uses
	Took     time.Duration // time spent, waiting for the lock included
}

// Install runs `npm ci` in dir unless dir/node_modules already holds this
// package-lock.json's install. npm's own cache (npm_config_cache, ~/.npm by
// default) is preferred to the network, so a fresh clone on a machine that
// installed before downloads nothing. Concurrent callers (scripts/test's
// background install and the test itself) take turns on a lock file.
func Install(ctx context.Context, npm, dir string) (Result, error) {
	start := time.Now()
	var res Result
	unlock, err := lock(filepath.Join(dir, ".payfn-npm.lock"))
	if err != nil {
		return res, fmt.Errorf("npm install in %s: %w", dir, err)
	}
	defer unlock()
	lockfile, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return res, fmt.Errorf("npm install in %s: %w", dir, err)
	}
	sum := sha256.Sum256(lockfile)
	want := hex.EncodeToString(sum[:])
	stamp := filepath.Join(dir, "node_modules", stampName)
	if b, err := os.ReadFile(stamp); err == nil && string(b) == want {
		res.Took = time.Since(start)
		return res, nil
	}

	res.Registry, err = registry(ctx, npm, dir)
	if err != nil {
		return res, err
	}
	args := []string{"ci", "--no-audit", "--no-fund", "--ignore-scripts", "--prefer-offline"}
	if perr := Probe(ctx, res.Registry); perr != nil {
		// Try the cache alone: it fails fast when something is missing.
		res.Offline = true
		args[len(args)-1] = "--offline"
		if out, err := runNpm(ctx, npm, dir, args...); err != nil {
			return res, fmt.Errorf("%w: %v; and npm ci --offline failed: %v\n%s", ErrRegistryUnreachable, perr, err, tail(out))
		}
	} else {
		// --ignore-scripts: packaging needs no install script, and none should run.
		if out, err := runNpm(ctx, npm, dir, args...); err != nil {
			return res, fmt.Errorf("npm ci in %s: %w\n%s", dir, err, tail(out))
		}
	}
	res.Ran = true
	if err := os.WriteFile(stamp, []byte(want), 0o644); err != nil {
		return res, fmt.Errorf("npm install in %s: %w", dir, err)
	}
	res.Took = time.Since(start)
	return res, nil
}

func runNpm(ctx context.Context, npm, dir string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, args...)
	cmd.Dir = dir
	return cmd.CombinedOutput()
}

// tail keeps the end of npm's output, where it says what went wrong.
func tail(b []byte) string {
	const max = 4 << 10
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// registry asks npm which registry it uses (a mirror may be configured in
// .npmrc), defaulting to the public one.
func registry(ctx context.Context, npm, dir string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "config", "get", "registry")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("npm config get registry: %w", err)
	}
	r := strings.TrimSpace(string(out))
	if r == "" || r == "undefined" || r == "null" {
		r = "https://registry.npmjs.org/"
	}
	return r, nil
}

// Probe asks the registry's ping endpoint once, bounded by a few seconds,
// through the proxy the environment names. Any HTTP answer means reachable:
// the question is the network, not the endpoint.
func Probe(ctx context.Context, registry string) error {
	u, err := url.Parse(registry)
	if err != nil || u.Host == "" {
		return fmt.Errorf("registry %q is not a URL", registry)
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(registry, "/")+"/-/ping", nil)
	if err != nil {
		return fmt.Errorf("probe %s: %w", registry, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", registry, err)
	}
	resp.Body.Close()
	return nil
}

// MustNotSkip reports why a check may not skip for an unreachable registry:
// in CI (CI set, as every CI service sets it) or when PAYFN_REQUIRE_NPM is
// set, the registry is expected to answer and a failure is a failure.
func MustNotSkip(getenv func(string) string) string {
	switch {
	case getenv("PAYFN_REQUIRE_NPM") != "":
		return "PAYFN_REQUIRE_NPM is set"
	case getenv("CI") != "" && getenv("CI") != "false":
		return "CI is set"
	}
	return ""
}
