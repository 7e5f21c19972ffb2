//go:build unix

package nodedeps_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/payfn/payfn/internal/deploy/nodedeps"
)

// fakeNpm writes an npm stand-in: `config get registry` prints registry,
// `ci` records its arguments and exits with ciExit.
func fakeNpm(t *testing.T, registry string, ciExit int) (npm, calls string) {
	t.Helper()
	dir := t.TempDir()
	calls = filepath.Join(dir, "calls")
	npm = filepath.Join(dir, "npm")
	script := "#!/bin/sh\n" +
		"echo \"$@\" >> " + calls + "\n" +
		"if [ \"$1\" = config ]; then echo " + registry + "; exit 0; fi\n" +
		"mkdir -p node_modules\n" +
		"exit " + string(rune('0'+ciExit)) + "\n"
	if err := os.WriteFile(npm, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return npm, calls
}

func project(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "package-lock.json"), []byte(`{"lockfileVersion":3}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// unreachable is a registry URL nothing listens on.
func unreachable(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/"
}

func TestUnreachableRegistryWithoutACacheIsErrRegistryUnreachable(t *testing.T) {
	npm, calls := fakeNpm(t, unreachable(t), 1)
	start := time.Now()
	_, err := nodedeps.Install(context.Background(), npm, project(t))
	if !errors.Is(err, nodedeps.ErrRegistryUnreachable) {
		t.Fatalf("err = %v, want ErrRegistryUnreachable", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("deciding took %s; the probe must be quick", d)
	}
	b, _ := os.ReadFile(calls)
	if !strings.Contains(string(b), "ci ") || !strings.Contains(string(b), "--offline") {
		t.Errorf("npm calls %q: want an offline install tried from the cache", b)
	}
}

func TestUnreachableRegistryWithACacheInstallsOffline(t *testing.T) {
	npm, _ := fakeNpm(t, unreachable(t), 0)
	res, err := nodedeps.Install(context.Background(), npm, project(t))
	if err != nil || !res.Ran || !res.Offline {
		t.Fatalf("Install = %+v, %v; want an offline install", res, err)
	}
}

func TestReachableRegistryInstallsOnceAndFailuresAreNotSkips(t *testing.T) {
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer reg.Close()
	dir := project(t)
	npm, calls := fakeNpm(t, reg.URL+"/", 0)
	res, err := nodedeps.Install(context.Background(), npm, dir)
	if err != nil || !res.Ran || res.Offline {
		t.Fatalf("first Install = %+v, %v", res, err)
	}
	b, _ := os.ReadFile(calls)
	if !strings.Contains(string(b), "--prefer-offline") {
		t.Errorf("npm calls %q: want npm's cache preferred", b)
	}
	lock, _ := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	sum := sha256.Sum256(lock)
	if stamp, _ := os.ReadFile(filepath.Join(dir, "node_modules", ".payfn-lock-sha256")); string(stamp) != hex.EncodeToString(sum[:]) {
		t.Errorf("stamp %q, want the lockfile's hash", stamp)
	}
	if res, err := nodedeps.Install(context.Background(), "/nonexistent/npm", dir); err != nil || res.Ran {
		t.Errorf("second Install = %+v, %v; want nothing to do", res, err)
	}

	failing, _ := fakeNpm(t, reg.URL+"/", 1)
	if _, err := nodedeps.Install(context.Background(), failing, project(t)); err == nil || errors.Is(err, nodedeps.ErrRegistryUnreachable) {
		t.Errorf("npm ci failing with the registry up: %v, want a plain failure (not a skip)", err)
	}
}

func TestCINeverSkips(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if why := nodedeps.MustNotSkip(env(map[string]string{"CI": "true"})); why == "" {
		t.Error("CI=true allows a skip")
	}
	if why := nodedeps.MustNotSkip(env(map[string]string{"PAYFN_REQUIRE_NPM": "1"})); why == "" {
		t.Error("PAYFN_REQUIRE_NPM=1 allows a skip")
	}
	if why := nodedeps.MustNotSkip(env(nil)); why != "" {
		t.Errorf("a laptop may not skip: %s", why)
	}
}
