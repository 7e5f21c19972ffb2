package httpapi

import "context"

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
