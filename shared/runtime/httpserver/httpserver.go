// Package httpserver runs payfn's http.Handlers as a plain net/http server,
// for the platforms that start a web server and send it HTTP: CloudBase HTTP
// functions (scf_bootstrap, port 9000) and WeChat Cloud Hosting containers
// ($PORT). Every request gets a fresh request id, a panic answers 500
// {"code":"INTERNAL"} like the event adapters, and the caller the platform's
// gateway names in the X-WX-* headers reaches the handler in the request
// context (identity.WithPlatformCaller). The gateway sets those headers, so
// httpapi takes the caller from them in platform mode (PAYFN_IDENTITY); in
// token mode it never reads them.
//
// It must not import shared/app, shared/order or a cloud library.
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/payfn/payfn/shared/identity"
	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/runtime/internal/serve"
)

// EnvPort names the port to listen on: scf_bootstrap sets 9000, CloudBase's
// HTTP function port; WeChat Cloud Hosting's container port is the
// service's setting (the Dockerfile's default 80).
const EnvPort = "PORT"

// Limits of the server. Request bodies are bounded by the handlers
// (httpapi); these bound what reaches them.
const (
	MaxHeaderBytes    = 64 << 10
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	// shutdownGrace is how long a stopping server lets requests finish.
	shutdownGrace = 10 * time.Second
)

// Start serves h on every interface at the port PORT names (both platforms
// refuse a server on loopback only) until the process gets SIGTERM or
// SIGINT, then lets requests in flight finish. It exits the process: 0
// after a clean stop, 1 when it cannot listen.
func Start(h http.Handler, logger *slog.Logger) {
	if logger == nil {
		logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	port := os.Getenv(EnvPort)
	l, err := net.Listen("tcp", ":"+port)
	if err != nil || port == "" {
		logger.Error("cannot listen for HTTP", "port", port, "err", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	logger.Info("serving HTTP", "addr", l.Addr().String())
	if err := Serve(ctx, l, h, logger); err != nil {
		logger.Error("HTTP server failed", "err", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Serve serves h on l until ctx is done, then shuts down gracefully.
func Serve(ctx context.Context, l net.Listener, h http.Handler, logger *slog.Logger) error {
	srv := NewServer(h, logger)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// NewServer returns the server for h (wrapped by NewHandler) with payfn's
// timeouts and header limit.
func NewServer(h http.Handler, logger *slog.Logger) *http.Server {
	if logger == nil {
		logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return &http.Server{
		Handler:           NewHandler(h, logger),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// NewHandler returns h with what the adapter adds to each request: a new
// request id (a client's X-Request-Id is never used), the platform caller
// of the X-WX-* headers in the context, and a panic turned into a 500 JSON
// error naming the request id, logged, with the process still serving.
func NewHandler(h http.Handler, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := httpapi.WithRequestID(r.Context(), httpapi.NewRequestID())
		ctx = identity.WithPlatformCaller(ctx, identity.PlatformCallerFromHeader(r.Header))
		// Recorded first, then written: a handler that panics after
		// writing its status still answers one whole JSON error.
		res := serve.Handle(h, r.WithContext(ctx), logger)
		for k, vs := range res.Header {
			w.Header()[k] = vs
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(res.Body)))
		w.WriteHeader(res.Status)
		w.Write(res.Body)
	})
}
