// Package adaptertest holds what the runtime adapters' tests share: a core
// handler that records the request it was given, the conformance table
// every adapter passes (conformance.go), and the net/rpc plumbing for
// driving an SCF child process. Tests only; no function links it.
package adaptertest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/rpc"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/identity"
	"github.com/payfn/payfn/shared/runtime/httpapi"
)

// Seen is what the core handler observed of the request.
type Seen struct {
	Method, Path, RawQuery, RequestURI string
	Host, RemoteAddr, Proto            string
	Header                             http.Header
	ContentLength                      int64
	Body                               []byte
	RequestID                          string
	// Caller is the platform caller the adapter put in the context; zero
	// when it put none.
	Caller identity.PlatformCaller
}

// RecordingHandler stores the request into got and answers 201 JSON.
func RecordingHandler(t *testing.T, got *Seen) http.Handler {
	t.Helper()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read body: %v", err)
		}
		*got = Seen{
			Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, RequestURI: r.RequestURI,
			Host: r.Host, RemoteAddr: r.RemoteAddr, Proto: r.Proto,
			Header: r.Header.Clone(), ContentLength: r.ContentLength, Body: body,
			RequestID: httpapi.RequestID(r.Context()),
		}
		got.Caller, _ = identity.PlatformCallerFrom(r.Context())
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"order_id":"ord_1"}`)
	})
}

// DialUntil dials addr until it answers, the child exits, or 10 s pass;
// nil if it never answered.
func DialUntil(addr string, exited <-chan struct{}) *rpc.Client {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := rpc.Dial("tcp", addr); err == nil {
			return c
		}
		select {
		case <-exited:
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// FreePort is a loopback TCP port nothing listens on right now.
func FreePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "localhost:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// CheckRequestID fails t unless an error answer of status want names id
// everywhere: the X-Request-Id header, the body's request_id, and every log
// line that names a request id, of which the access line ("request") is one.
func CheckRequestID(t *testing.T, status, want int, header map[string]string, body string, logs *bytes.Buffer, id string) {
	t.Helper()
	if status != want {
		t.Errorf("status = %d, want %d (%s)", status, want, body)
	}
	if got := header[httpapi.HeaderRequestID]; got != id {
		t.Errorf("X-Request-Id = %q, want %q", got, id)
	}
	var b struct {
		Code      string `json:"code"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil || b.Code == "" || b.RequestID != id {
		t.Errorf("body %s (%v): want a code and request_id %q", body, err, id)
	}
	access := false
	sc := bufio.NewScanner(bytes.NewReader(logs.Bytes()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Errorf("log line is not JSON: %s", sc.Bytes())
			continue
		}
		if got, ok := line["request_id"]; ok && got != id {
			t.Errorf("log line names request %v, want %q: %s", got, id, sc.Bytes())
		}
		access = access || (line["msg"] == "request" && line["request_id"] == id)
	}
	if !access {
		t.Errorf("no access log line with request_id %q:\n%s", id, logs)
	}
}
