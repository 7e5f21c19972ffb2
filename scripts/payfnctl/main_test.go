package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payfn/payfn/scripts/dev/devstack"
	"github.com/payfn/payfn/shared/webhook"
)

// ctl runs payfnctl against a stack with an empty environment.
type ctl struct {
	t    *testing.T
	args []string // global flags
	env  map[string]string
}

type result struct {
	code           int
	stdout, stderr string
	body           map[string]any
}

func (c ctl) run(args ...string) result {
	c.t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append(append([]string{}, c.args...), args...), func(k string) string { return c.env[k] }, &out, &errOut)
	r := result{code: code, stdout: out.String(), stderr: errOut.String()}
	json.Unmarshal(out.Bytes(), &r.body)
	return r
}

// ok runs a command that must succeed.
func (c ctl) ok(args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("payfnctl %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// str digs a string out of an answer: str(body, "api_key", "id").
func str(v any, keys ...string) string {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	s, _ := v.(string)
	return s
}

// hooks is a project's webhook endpoint that keeps what it receives.
type hooks struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  []http.Header
	body [][]byte
}

func newHooks(t *testing.T) *hooks {
	h := &hooks{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.got, h.body = append(h.got, r.Header.Clone()), append(h.body, b)
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// TestOperatorManagesAnAppAndItsServerCallsTheAPI drives payfnctl against
// the local stack: create an app, add an endpoint, rotate and revoke keys,
// call the server API with the printed keys, list and redeliver events.
func TestOperatorManagesAnAppAndItsServerCallsTheAPI(t *testing.T) {
	dir := t.TempDir()
	s, err := devstack.Start(context.Background(), devstack.Options{Addr: "127.0.0.1:0", SimAddr: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// No -admin-key: on loopback payfnctl reads the local stack's.
	c := ctl{t: t, args: []string{"-url", s.URL, "-data", dir}}

	r := c.ok("apps", "create", "-id", "shopa", "-name", "Shop A")
	oldKey, oldSecret := str(r.body, "api_key", "id"), str(r.body, "api_key", "secret")
	if str(r.body, "app", "id") != "shopa" || oldKey == "" || oldSecret == "" || !strings.Contains(r.stderr, "shown once") {
		t.Fatalf("apps create printed %s / %s", r.stdout, r.stderr)
	}
	if r := c.ok("apps", "list"); !strings.Contains(r.stdout, `"shopa"`) || !strings.Contains(r.stdout, `"demo"`) {
		t.Fatalf("apps list: %s", r.stdout)
	}
	if r := c.ok("apps", "update", "shopa", "-name", "Shop A2", "-status", "disabled"); str(r.body, "name") != "Shop A2" || str(r.body, "status") != "disabled" {
		t.Fatalf("apps update: %s", r.stdout)
	}
	c.ok("apps", "update", "shopa", "-status", "active")

	rc := newHooks(t)
	r = c.ok("endpoints", "add", "shopa", "-url", rc.srv.URL+"/payfn", "-events", "order.created,order.paid")
	epID, whsec := str(r.body, "endpoint", "id"), str(r.body, "secret")
	if epID == "" || !strings.HasPrefix(whsec, "whsec_") || !strings.Contains(r.stderr, "shown once") {
		t.Fatalf("endpoints add: %s / %s", r.stdout, r.stderr)
	}

	r = c.ok("keys", "rotate", "shopa", "-overlap-hours", "1")
	newKey, newSecret := str(r.body, "api_key", "id"), str(r.body, "api_key", "secret")
	if newKey == "" || newKey == oldKey || newSecret == "" {
		t.Fatalf("keys rotate: %s", r.stdout)
	}

	c.ok("call", "-key-id", newKey, "-secret", newSecret, "POST", "/v1/products", `{"product_id":"p1","title":"Product one","price_fen":500}`)
	r = c.ok("call", "-key-id", newKey, "-secret", newSecret, "POST", "/v1/orders",
		`{"product_id":"p1","quantity":2,"request_id":"ctl-1","buyer":"bob","payer_openid":"o-bob-00001","attach":"note=ctl"}`)
	orderID := str(r.body, "order_id")
	if orderID == "" || r.body["total_fen"] != float64(1000) {
		t.Fatalf("call POST /v1/orders: %s", r.stdout)
	}
	// The old key works through its overlap, then not once revoked.
	c.ok("call", "-key-id", oldKey, "-secret", oldSecret, "GET", "/v1/orders/"+orderID)
	c.ok("keys", "revoke", "shopa", oldKey)
	r = c.run("call", "-key-id", oldKey, "-secret", oldSecret, "GET", "/v1/orders/"+orderID)
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "401") || !strings.Contains(r.stderr, "INVALID_SIGNATURE") {
		t.Fatalf("a revoked key: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	r = c.ok("events", "list", "shopa", "-order", orderID, "-limit", "10")
	events, _ := r.body["events"].([]any)
	if len(events) != 1 || str(events[0], "type") != "order.created" {
		t.Fatalf("events list: %s", r.stdout)
	}
	evtID := str(events[0], "id")
	if r := c.ok("events", "show", "shopa", evtID); str(r.body, "order_id") != orderID {
		t.Fatalf("events show: %s", r.stdout)
	}
	c.ok("events", "redeliver", "shopa", evtID)
	deadline := time.Now().Add(10 * time.Second)
	for {
		rc.mu.Lock()
		n := len(rc.got)
		rc.mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	rc.mu.Lock()
	if len(rc.got) < 2 {
		t.Fatalf("the endpoint got %d deliveries, want the first and the redelivery", len(rc.got))
	}
	for i, h := range rc.got {
		if err := webhook.Verify(whsec, h, rc.body[i]); err != nil || h.Get("webhook-id") != evtID {
			t.Fatalf("delivery %d (%s): %v", i, h.Get("webhook-id"), err)
		}
	}
	rc.mu.Unlock()

	if r := c.ok("endpoints", "update", "shopa", epID, "-status", "disabled"); str(r.body, "status") != "disabled" {
		t.Fatalf("endpoints update: %s", r.stdout)
	}
	if r := c.ok("endpoints", "rotate-secret", "shopa", epID, "-overlap-hours", "0"); str(r.body, "secret") == whsec || !strings.HasPrefix(str(r.body, "secret"), "whsec_") {
		t.Fatalf("endpoints rotate-secret: %s", r.stdout)
	}

	// With no key given, call uses the local demo app's.
	if r := c.ok("call", "GET", "/v1/products"); !strings.Contains(r.stdout, devstack.DemoProductID) {
		t.Fatalf("call with the demo app's key: %s", r.stdout)
	}
	// The line the stack prints to try it works as printed.
	try := s.TryCommand()
	body := try[strings.Index(try, "'")+1 : len(try)-1]
	if r := c.ok("call", "POST", "/v1/orders", body); str(r.body, "status") != "NOTPAY" {
		t.Fatalf("the try-it line: %s", r.stdout)
	}
}

func TestErrorsAndUsage(t *testing.T) {
	dir := t.TempDir()
	s, err := devstack.Start(context.Background(), devstack.Options{Addr: "127.0.0.1:0", SimAddr: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := ctl{t: t, args: []string{"-url", s.URL, "-data", dir}}

	r := c.run("apps", "show", "nosuch")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "404") || !strings.Contains(r.stderr, "APP_NOT_FOUND") {
		t.Fatalf("an unknown app: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	for _, args := range [][]string{{}, {"apps"}, {"apps", "show"}, {"apps", "frobnicate"}, {"apps", "update", "demo"},
		{"apps", "create", "-id", "x"}, {"keys", "rotate", "demo", "-nope"}, {"call", "GET"}, {"call", "POST", "/v1/orders", "{not json"}} {
		if r := c.run(args...); r.code != 2 || !strings.Contains(r.stderr, "usage:") {
			t.Errorf("payfnctl %v: exit %d, stderr %q; want 2 and the usage", args, r.code, r.stderr)
		}
	}
	// A wrong admin key from the environment wins over the local one.
	c.env = map[string]string{"PAYFN_ADMIN_KEY": strings.Repeat("x", 40)}
	if r := c.run("apps", "list"); r.code != 1 || !strings.Contains(r.stderr, "401") {
		t.Fatalf("a wrong admin key: exit %d, stderr %q", r.code, r.stderr)
	}
	// The local stack's keys are never offered to a remote stack.
	remote := ctl{t: t, args: []string{"-url", "https://payfn.example.com", "-data", dir}}
	if r := remote.run("apps", "list"); r.code != 2 || !strings.Contains(r.stderr, "PAYFN_ADMIN_KEY") {
		t.Fatalf("a remote stack without an admin key: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := remote.run("call", "GET", "/v1/products"); r.code != 2 || !strings.Contains(r.stderr, "PAYFN_KEY_ID") {
		t.Fatalf("a remote call without a key: exit %d, stderr %q", r.code, r.stderr)
	}
}
