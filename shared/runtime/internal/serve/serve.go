// Package serve is the part of the cloud adapters that does not depend on a
// cloud: it builds the *http.Request an adapter hands to the core, runs the
// handler with a recording ResponseWriter, turns a panic into a 500, and
// encodes bodies for JSON event responses. Sharing it keeps the AWS and SCF
// adapters behaving identically.
//
// It imports no cloud library and nothing of payfn's except httpapi's
// request-id helpers.
package serve

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"unicode/utf8"

	"github.com/payfn/payfn/shared/runtime/httpapi"
)

// Request is the platform-neutral description of one gateway request.
type Request struct {
	Method string
	// RawPath is the request path as the gateway received it.
	RawPath string
	// RawQuery is used verbatim as URL.RawQuery: signature checks elsewhere may
	// depend on the exact bytes, so it is never re-encoded here.
	RawQuery string
	Host     string
	// RemoteAddr is the client IP the gateway saw (no port: gateways give none).
	RemoteAddr string
	Proto      string
	Header     http.Header
	// Body is handed to the handler byte for byte.
	Body []byte
}

// NewRequest builds the server-side *http.Request for in, carrying ctx.
// It fails when the method is not a valid token or the path cannot be parsed.
func NewRequest(ctx context.Context, in Request) (*http.Request, error) {
	path := in.RawPath
	if path == "" {
		path = "/"
	}
	u, err := url.ParseRequestURI(path)
	if err != nil {
		return nil, fmt.Errorf("parse request path: %w", err)
	}
	u.RawQuery = in.RawQuery

	// NewRequestWithContext validates the method and sets Body, GetBody and
	// ContentLength from the reader; the URL is replaced below so that the
	// raw query is not re-parsed.
	r, err := http.NewRequestWithContext(ctx, in.Method, "/", bytes.NewReader(in.Body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	r.URL = u
	r.RequestURI = path
	if in.RawQuery != "" {
		r.RequestURI += "?" + in.RawQuery
	}
	r.Host = in.Host
	r.RemoteAddr = in.RemoteAddr
	if major, minor, ok := http.ParseHTTPVersion(in.Proto); ok {
		r.Proto, r.ProtoMajor, r.ProtoMinor = in.Proto, major, minor
	}
	if in.Header != nil {
		r.Header = in.Header
	}
	// As on a net/http server: Host lives in r.Host, and Content-Length
	// describes the body the handler will actually read.
	r.Header.Del("Host")
	r.Header.Del("Content-Length")
	if len(in.Body) > 0 {
		r.Header.Set("Content-Length", strconv.Itoa(len(in.Body)))
	}
	return r, nil
}

// Response is what a handler answered.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Error returns a JSON error response in the core's {code, message,
// request_id} shape, with the id in X-Request-Id as the core answers.
func Error(requestID string, status int, code, message string) Response {
	b, err := json.Marshal(struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	}{code, message, requestID})
	if err != nil {
		// Strings always marshal; keep a valid body regardless.
		b = []byte(`{"code":"INTERNAL","message":"internal error"}`)
	}
	return Response{
		Status: status,
		Header: http.Header{"Content-Type": {"application/json"}, httpapi.HeaderRequestID: {requestID}},
		Body:   b,
	}
}

// Handle serves r through h and returns the recorded response, which names
// the request id of r's context in X-Request-Id if h did not set it. A panic
// in h is logged at error level with the request id and becomes a 500
// INTERNAL JSON error: the invocation itself did not fail, the request did.
func Handle(h http.Handler, r *http.Request, logger *slog.Logger) (resp Response) {
	rec := &recorder{header: http.Header{}}
	id := httpapi.RequestID(r.Context())
	defer func() {
		if v := recover(); v != nil {
			// Never the body, query or headers: they may hold tokens.
			logger.ErrorContext(r.Context(), "handler panicked",
				"request_id", id,
				"method", r.Method,
				"path", r.URL.Path,
				"panic", fmt.Sprint(v),
				"stack", string(debug.Stack()))
			resp = Error(id, http.StatusInternalServerError, "INTERNAL", "internal error")
		}
	}()
	h.ServeHTTP(rec, r)
	resp = rec.response()
	if _, ok := resp.Header[httpapi.HeaderRequestID]; !ok && id != "" {
		resp.Header[httpapi.HeaderRequestID] = []string{id}
	}
	return resp
}

// recorder is a minimal http.ResponseWriter with net/http server semantics:
// headers are frozen at WriteHeader, the first Write implies 200, and a
// missing Content-Type is sniffed from the body.
type recorder struct {
	header  http.Header
	written http.Header
	status  int
	body    bytes.Buffer
}

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(code int) {
	if w.status != 0 || (code >= 100 && code < 200) {
		// Later calls are superfluous on a real server; 1xx responses are
		// interim and cannot be relayed through a gateway event.
		return
	}
	w.status = code
	w.written = w.header.Clone()
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.body.Write(p)
}

func (w *recorder) response() Response {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	body := w.body.Bytes()
	if _, ok := w.written["Content-Type"]; !ok && len(body) > 0 {
		w.written.Set("Content-Type", http.DetectContentType(body))
	}
	return Response{Status: w.status, Header: w.written, Body: body}
}

// EncodeBody prepares body for a JSON event response. Valid UTF-8 survives a
// JSON string unchanged and is sent as text; anything else is base64-encoded,
// because encoding/json would replace invalid bytes with U+FFFD.
func EncodeBody(body []byte) (text string, isBase64 bool) {
	if utf8.Valid(body) {
		return string(body), false
	}
	return base64.StdEncoding.EncodeToString(body), true
}

// DecodeBody returns the exact request body bytes carried by an event.
func DecodeBody(body string, isBase64 bool) ([]byte, error) {
	if !isBase64 {
		return []byte(body), nil
	}
	b, err := base64.StdEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("decode base64 body: %w", err)
	}
	return b, nil
}
