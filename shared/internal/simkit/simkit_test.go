package simkit

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type snap struct {
	Version int `json:"version"`
	N       int `json:"n"`
}

// newState returns a state file at a temp path whose encoder reports *n
// under mu and counts its calls.
func newState(t *testing.T, mu *sync.Mutex, n *int, calls *atomic.Int32) *StateFile {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.json")
	return NewStateFile("sim", path, func() ([]byte, error) {
		calls.Add(1)
		mu.Lock()
		defer mu.Unlock()
		return json.Marshal(snap{Version: 1, N: *n})
	}, nil)
}

func readSnap(t *testing.T, path string) snap {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s snap
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("state file %q: %v", b, err)
	}
	return s
}

func TestStateFileSaveIsAtomicAndLoadChecksVersion(t *testing.T) {
	var mu sync.Mutex
	var calls atomic.Int32
	n := 7
	f := newState(t, &mu, &n, &calls)
	var got snap
	if found, err := f.Load(&got, func() int { return got.Version }, 1); found || err != nil {
		t.Fatalf("Load before any save = %v, %v; want a first run", found, err)
	}
	if err := f.Save(); err != nil {
		t.Fatal(err)
	}
	if s := readSnap(t, f.Path()); s.N != 7 {
		t.Fatalf("saved %+v, want N 7", s)
	}
	// The write goes through a temporary file that does not outlive it.
	entries, _ := os.ReadDir(filepath.Dir(f.Path()))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries after Save, want only the state file", len(entries))
	}
	// A failed write (the directory is gone) leaves nothing behind and
	// reports the error.
	bad := NewStateFile("sim", filepath.Join(t.TempDir(), "missing", "state.json"), func() ([]byte, error) { return []byte("{}"), nil }, nil)
	if err := bad.Save(); err == nil || !strings.Contains(err.Error(), "write sim state") {
		t.Fatalf("Save into a missing directory = %v", err)
	}

	if found, err := f.Load(&got, func() int { return got.Version }, 1); !found || err != nil || got.N != 7 {
		t.Fatalf("Load = %v, %v, %+v", found, err, got)
	}
	var other snap
	if _, err := f.Load(&other, func() int { return other.Version }, 2); err == nil || !strings.Contains(err.Error(), "version 1, want 2") {
		t.Fatalf("Load of another version = %v", err)
	}
	if err := os.WriteFile(f.Path(), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Load(&other, func() int { return other.Version }, 1); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("Load of a broken file = %v", err)
	}
}

func TestNilStateFileDoesNothing(t *testing.T) {
	f := NewStateFile("sim", "", nil, nil)
	if f != nil {
		t.Fatal("NewStateFile with no path is not nil")
	}
	f.Changed()
	f.Run(context.Background()) // returns at once
	if err := f.Save(); err != nil || f.Path() != "" {
		t.Fatalf("nil Save = %v, Path = %q", err, f.Path())
	}
	var s snap
	if found, err := f.Load(&s, func() int { return s.Version }, 1); found || err != nil {
		t.Fatalf("nil Load = %v, %v", found, err)
	}
}

func TestStateFileRunSavesSoonAfterChangesAndCoalesces(t *testing.T) {
	var mu sync.Mutex
	var calls atomic.Int32
	n := 0
	f := newState(t, &mu, &n, &calls)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	// Many changes before the saver runs collapse into one write.
	for i := 1; i <= 100; i++ {
		mu.Lock()
		n = i
		f.Changed()
		mu.Unlock()
	}
	go func() { f.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(f.Path()); err == nil && readSnap(t, f.Path()).N == 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the saver did not write the change")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if c := calls.Load(); c != 1 {
		t.Errorf("100 changes made before the saver ran were written %d times, want 1", c)
	}
}

func TestChangesAwaitWakesOnBroadcast(t *testing.T) {
	var mu sync.Mutex
	var c Changes
	count := 0
	errc := make(chan error, 1)
	go func() {
		errc <- c.Await(context.Background(), &mu, func() bool { return count >= 3 })
	}()
	for range 3 {
		time.Sleep(time.Millisecond)
		mu.Lock()
		count++
		c.Broadcast()
		mu.Unlock()
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Await did not return after the condition held")
	}

	// A condition already true returns at once; a context that ends first
	// is the error.
	if err := c.Await(context.Background(), &mu, func() bool { return true }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.Await(ctx, &mu, func() bool { return false }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Await past its deadline = %v", err)
	}
}

func TestServerListenCloseWaitsForGoroutinesThenRunsAfter(t *testing.T) {
	var mu sync.Mutex
	s := NewServer("sim", &mu, nil)
	if s.URL() != "" {
		t.Fatalf("URL before Listen = %q", s.URL())
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"ok": "yes"})
	})
	if err := s.Listen("127.0.0.1:0", h); err != nil {
		t.Fatal(err)
	}
	if err := s.Listen("127.0.0.1:0", h); err == nil {
		t.Fatal("second Listen succeeded")
	}
	resp, err := http.Get(s.URL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Content-Type") != "application/json; charset=utf-8" || strings.TrimSpace(string(b)) != `{"ok":"yes"}` {
		t.Fatalf("reply %q %q", resp.Header.Get("Content-Type"), b)
	}

	// A background job runs until Context ends; Close waits for it before
	// calling after.
	var finished atomic.Bool
	mu.Lock()
	s.Go(func() {
		<-s.Context().Done()
		time.Sleep(10 * time.Millisecond)
		finished.Store(true)
	})
	mu.Unlock()
	var afterSawFinished bool
	err = s.Close(func() error {
		afterSawFinished = finished.Load()
		return errors.New("last save failed")
	})
	if !afterSawFinished {
		t.Error("Close ran after before its goroutines returned")
	}
	if err == nil || err.Error() != "sim close: last save failed" {
		t.Errorf("Close = %v", err)
	}
	mu.Lock()
	closed := s.ClosedLocked()
	mu.Unlock()
	if !closed {
		t.Error("ClosedLocked after Close = false")
	}
	if _, err := http.Get(s.URL() + "/"); err == nil {
		t.Error("still serving after Close")
	}
	if err := s.Close(nil); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := s.Listen("127.0.0.1:0", h); err == nil {
		t.Error("Listen after Close succeeded")
	}
}

func TestDecodeJSONBoundsAndRefusesUnknownFields(t *testing.T) {
	decode := func(body string) error {
		r, _ := http.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		var v struct {
			A int `json:"a"`
		}
		return DecodeJSON(nil, r, &v)
	}
	if err := decode(`{"a":1}`); err != nil {
		t.Fatal(err)
	}
	if err := decode(`{"b":1}`); err == nil {
		t.Error("unknown field accepted")
	}
	if err := decode(``); !errors.Is(err, io.EOF) {
		t.Errorf("empty body = %v, want io.EOF", err)
	}
	if err := decode(`{"a":` + strings.Repeat(" ", MaxJSONBody) + `1}`); err == nil {
		t.Error("body over MaxJSONBody accepted")
	}
}

func TestRandFrom(t *testing.T) {
	s := RandFrom("ab", 64)
	if len(s) != 64 || strings.Trim(s, "ab") != "" {
		t.Fatalf("RandFrom = %q", s)
	}
	if h := RandHex(10); len(h) != 20 {
		t.Fatalf("RandHex(10) = %q", h)
	}
}
