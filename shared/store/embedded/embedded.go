// Package embedded runs an in-process MongoDB wire-protocol server (FerretDB
// v1 on SQLite) for local runs and tests.
//
// Only the dev stack and tests may import it: it links FerretDB and SQLite,
// which must never end up in a function binary. shared/order, shared/app,
// shared/store and functions/* must not import it.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// Options configure Start.
type Options struct {
	// Dir is the folder SQLite keeps its data in; it is created if missing.
	// Starting again with the same Dir finds the same data.
	Dir string
	// Addr is the TCP address clients connect to; default "127.0.0.1:0".
	// Starting again with the same Addr after Close gives clients the same URI.
	Addr string
	// Logger receives the server's start and stop messages, and FerretDB's
	// own messages at Error level and above only (FerretDB logs every
	// connection at Info). Default: discard.
	Logger *slog.Logger
}

// Server is a running embedded store.
//
// Clients do not talk to FerretDB directly but through a small TCP relay
// that Close cuts at once: FerretDB alone gives connected clients 3 seconds
// to leave when stopped, while an outage in a test should be abrupt and a
// dev stack should stop promptly.
type Server struct {
	log    *slog.Logger
	ln     net.Listener
	target string // FerretDB's own loopback address

	cancel context.CancelFunc
	ran    chan struct{} // closed when FerretDB's Run returned

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	relays sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// newMu serializes ferretdb.New, which writes process-wide state
// (version.Get().Package) and would race when two servers start at once.
var newMu sync.Mutex

// Start starts a server and returns once it accepts connections. ctx bounds
// the start only; the server runs until Close.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("start embedded store: Dir is empty")
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("start embedded store: data folder %q: %w", opts.Dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("start embedded store: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start embedded store: %w", err)
	}

	// Listen first: if Addr is taken there is nothing to clean up.
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("start embedded store: listen on %s: %w", opts.Addr, err)
	}

	sqliteURL := (&url.URL{Scheme: "file", Path: dir + "/"}).String()
	newMu.Lock()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
		Logger:    slog.New(minLevel{h: log.Handler(), min: slog.LevelError}).With("component", "ferretdb"),
	})
	newMu.Unlock()
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("start embedded store in %s: %w", dir, err)
	}
	// MongoDBURI only reads the listener FerretDB bound in New.
	u, err := url.Parse(f.MongoDBURI())
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("start embedded store: FerretDB address: %w", err)
	}

	// Run outlives Start's ctx: the server stops on Close, not when the
	// caller's start-up deadline passes.
	runCtx, cancel := context.WithCancel(context.Background())
	s := &Server{
		log:    log,
		ln:     ln,
		target: u.Host,
		cancel: cancel,
		ran:    make(chan struct{}),
		conns:  make(map[net.Conn]struct{}),
	}
	go func() {
		defer close(s.ran)
		_ = f.Run(runCtx) // always nil; it returns once ctx is cancelled and the backend is closed
	}()
	s.relays.Add(1) // the accept loop; Close waits for it too
	go s.accept()
	log.Info("embedded store started", "addr", s.Addr(), "dir", dir)
	return s, nil
}

// URI is the connection string clients use, e.g. "mongodb://127.0.0.1:27017/".
func (s *Server) URI() string {
	return (&url.URL{Scheme: "mongodb", Host: s.Addr(), Path: "/"}).String()
}

// Addr is the address the server listens on, with the real port when Options.Addr
// asked for port 0.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops listening, cuts every client connection, and closes the SQLite
// backend. Data stays in Dir. Calling Close again returns the first result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		err := s.ln.Close()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.relays.Wait()
		// Every client connection is gone, so FerretDB stops at once.
		s.cancel()
		<-s.ran
		if err != nil {
			s.closeErr = fmt.Errorf("close embedded store: %w", err)
		}
		s.log.Info("embedded store stopped", "addr", s.Addr())
	})
	return s.closeErr
}

func (s *Server) accept() {
	defer s.relays.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			// Close closed the listener; any other Accept error on a
			// loopback listener is not worth retrying in a dev store.
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.relays.Add(1)
		s.mu.Unlock()
		go s.relay(c)
	}
}

// add registers c so Close can cut it; false once Close has begun.
func (s *Server) add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) remove(cs ...net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cs {
		delete(s.conns, c)
	}
}

// relay copies bytes both ways between a client and FerretDB until either
// side closes.
func (s *Server) relay(client net.Conn) {
	defer s.relays.Done()
	defer client.Close()
	backend, err := net.Dial("tcp", s.target)
	if err != nil {
		s.remove(client)
		s.log.Error("embedded store: dial FerretDB", "err", err)
		return
	}
	defer backend.Close()
	defer s.remove(client, backend)
	if !s.add(backend) {
		return
	}

	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(backend, client)
		// The client hung up: let FerretDB see it so the request ends.
		backend.Close()
		close(done)
	}()
	_, _ = io.Copy(client, backend)
	client.Close()
	<-done
}

// minLevel drops records below min: FerretDB logs every connection at Info.
type minLevel struct {
	h   slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.h.Enabled(ctx, l)
}

func (m minLevel) Handle(ctx context.Context, r slog.Record) error { return m.h.Handle(ctx, r) }

func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h: m.h.WithAttrs(as), min: m.min}
}

func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h: m.h.WithGroup(name), min: m.min}
}
