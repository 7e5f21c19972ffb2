package simkit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server runs a simulator's listener and its background goroutines
// (notification retries, delayed settlements, the state saver) and stops
// them together. Its closed flag and the listener's URL are guarded by the
// simulator's own state lock, passed to NewServer, so a simulator can test
// ClosedLocked and start a goroutine with Go atomically with its own state
// changes: once Close has marked the server closed under that lock, no
// goroutine started under it afterwards can escape Close's wait.
type Server struct {
	name   string
	mu     *sync.Mutex
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// guarded by mu
	closed bool
	srv    *http.Server
	url    string
}

// NewServer returns a Server that is not listening. name prefixes its log
// lines and errors ("paysim"); mu is the simulator's state lock; log may be
// nil (discard).
func NewServer(name string, mu *sync.Mutex, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{name: name, mu: mu, log: log}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Context ends when Close begins: background work selects on it to stop.
func (s *Server) Context() context.Context { return s.ctx }

// ClosedLocked reports whether Close has begun. The caller holds the state
// lock.
func (s *Server) ClosedLocked() bool { return s.closed }

// Go runs f in the background; Close waits for it to return. Call it with
// the state lock held after checking ClosedLocked, or before Listen, so that
// Close cannot be waiting already.
func (s *Server) Go(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// Listen serves h on addr (e.g. "127.0.0.1:0") in the background. It fails
// when the address cannot be bound, or when the server is closed or
// listening already.
func (s *Server) Listen(addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s listen %s: %w", s.name, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	if s.closed || s.srv != nil {
		s.mu.Unlock()
		_ = ln.Close()
		return fmt.Errorf("%s: closed or already listening", s.name)
	}
	s.srv = srv
	s.url = "http://" + ln.Addr().String()
	s.Go(func() { // under mu, so Close cannot be waiting already
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error(s.name+" serve", "err", err)
		}
	})
	s.mu.Unlock()
	s.log.Info(s.name+" listening", "url", s.URL())
	return nil
}

// URL is "http://127.0.0.1:PORT" after Listen, "" before.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// Close marks the server closed, ends Context, stops the listener, waits
// for every goroutine started with Go, then runs after (when not nil: the
// last state save, closing idle connections). Errors come back joined and
// prefixed "<name> close: ". Closing again does nothing and returns nil.
func (s *Server) Close(after func() error) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	srv := s.srv
	s.mu.Unlock()
	s.cancel()
	var err error
	if srv != nil {
		err = srv.Close()
	}
	s.wg.Wait()
	if after != nil {
		err = errors.Join(err, after())
	}
	if err != nil {
		return fmt.Errorf("%s close: %w", s.name, err)
	}
	return nil
}
