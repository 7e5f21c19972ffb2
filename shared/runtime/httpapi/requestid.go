package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
)

// HeaderRequestID carries the request id on every response, success or
// error, so a caller can quote it even when the body is not an error.
const HeaderRequestID = "X-Request-Id"

// logKeyRequestID is the log attribute that carries the request id.
const logKeyRequestID = "request_id"

type requestIDKey struct{}

// WithRequestID returns ctx carrying the platform's request id, so logs and
// error bodies can name the invocation. Adapters set it from trusted event
// fields, never from a client header.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id carried by ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// NewRequestID returns a fresh random id (32 hex digits), for a request no
// platform named: the local stack, or an event without one.
func NewRequestID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b[:])
}

// ensureRequestID returns r carrying a request id, the platform's when the
// adapter set one, else a new one; a client's X-Request-Id is never used.
func ensureRequestID(r *http.Request) (*http.Request, string) {
	if id := RequestID(r.Context()); id != "" {
		return r, id
	}
	id := NewRequestID()
	return r.WithContext(WithRequestID(r.Context(), id)), id
}

// LogHandler wraps h so that every record logged with a context carrying a
// request id gets a request_id attribute, unless it already has one. Give it
// to the logger the core logs with, and each line written while handling a
// request (the use case's, the store's, the channel's) names the request as
// the access log line and the error body do.
func LogHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(requestIDHandler); ok {
		return h
	}
	return requestIDHandler{h}
}

type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" && !hasAttr(r, logKeyRequestID) {
		r = r.Clone()
		r.AddAttrs(slog.String(logKeyRequestID, id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

func hasAttr(r slog.Record, key string) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == key
		return !found
	})
	return found
}
