package httpserver_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/identity"
	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/runtime/httpserver"
	"github.com/payfn/payfn/shared/runtime/internal/adaptertest"
)

// swap is a handler the test replaces between requests to one server.
type swap struct {
	mu sync.Mutex
	h  http.Handler
}

func (s *swap) set(h http.Handler) { s.mu.Lock(); s.h = h; s.mu.Unlock() }

func (s *swap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	h := s.h
	s.mu.Unlock()
	h.ServeHTTP(w, r)
}

// serveOn starts the adapter's server on a loopback port for the test's
// life and returns its base URL.
func serveOn(t *testing.T, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- httpserver.Serve(ctx, l, h, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + l.Addr().String()
}

// TestAdapterConformance runs the adapters' shared table through a real
// HTTP server, the platform's caller in the X-WX-* headers its gateway
// sets, every request on one warm server.
func TestAdapterConformance(t *testing.T) {
	s := &swap{}
	base := serveOn(t, s)
	adaptertest.RunConformance(t, adaptertest.Transport{
		Name: "http server", RawBody: true, Headers: true, Platform: true,
		Serve: func(t *testing.T, h http.Handler, req adaptertest.Request) adaptertest.Answer {
			s.set(h)
			r, err := http.NewRequest(http.MethodPost, base+req.Path, bytes.NewReader(req.Body))
			if err != nil {
				t.Fatal(err)
			}
			r.Header = req.Header.Clone()
			if c := req.Caller; c != nil {
				r.Header.Set(identity.HeaderOpenID, c.OpenID)
				r.Header.Set(identity.HeaderAppID, c.AppID)
				r.Header.Set(identity.HeaderUnionID, c.UnionID)
				r.Header.Set(identity.HeaderSource, c.Source)
				r.Header.Set(identity.HeaderEnv, c.Env)
			}
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			return adaptertest.Answer{Status: resp.StatusCode, RequestID: resp.Header.Get(httpapi.HeaderRequestID), Header: resp.Header, Body: body}
		},
	})
}

// TestClientRequestIDIsNeverUsedAndHeadersAreBounded: a client's
// X-Request-Id does not name the request, and a header block over the limit
// is refused by the server before any handler runs.
func TestClientRequestIDIsNeverUsedAndHeadersAreBounded(t *testing.T) {
	var got adaptertest.Seen
	base := serveOn(t, adaptertest.RecordingHandler(t, &got))
	r, _ := http.NewRequest(http.MethodPost, base+"/pay", strings.NewReader(`{}`))
	r.Header.Set(httpapi.HeaderRequestID, "client-chosen")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if id := resp.Header.Get(httpapi.HeaderRequestID); id == "" || id == "client-chosen" || got.RequestID != id {
		t.Errorf("request id %q (handler saw %q), want a fresh one", id, got.RequestID)
	}

	got = adaptertest.Seen{}
	r, _ = http.NewRequest(http.MethodPost, base+"/pay", strings.NewReader(`{}`))
	r.Header.Set("X-Padding", strings.Repeat("p", httpserver.MaxHeaderBytes+4096))
	resp, err = http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || got.Method != "" {
		t.Errorf("oversized headers: status %d, handler saw %q; want 431 and no handler", resp.StatusCode, got.Method)
	}
}

// TestServeLetsARequestInFlightFinish: stopping the server (SIGTERM in
// Start) waits for the request being served.
func TestServeLetsARequestInFlightFinish(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(200 * time.Millisecond)
		io.WriteString(w, `{"ok":true}`)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- httpserver.Serve(ctx, l, h, slog.New(slog.DiscardHandler)) }()
	answer := make(chan int, 1)
	go func() {
		resp, err := http.Post("http://"+l.Addr().String()+"/pay", "application/json", strings.NewReader(`{}`))
		if err != nil {
			answer <- 0
			return
		}
		resp.Body.Close()
		answer <- resp.StatusCode
	}()
	<-started
	cancel()
	if status := <-answer; status != http.StatusOK {
		t.Errorf("the request in flight got %d, want 200", status)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}
