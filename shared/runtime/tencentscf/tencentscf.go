// Package tencentscf runs payfn's http.Handlers on Tencent SCF behind an API
// Gateway trigger (integration request/response), and as CloudBase event
// functions that wx.cloud.callFunction invokes with a plain data event
// (data.go): it converts each event to an *http.Request, serves it, and
// converts the recorded response back. No SCF type reaches the handler; the
// caller a data event's invocation names reaches it in the request context
// (identity.WithPlatformCaller), never from the event or the process
// environment.
//
// It must not import shared/app, shared/order or the AWS Lambda library.
package tencentscf

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/tencentyun/scf-go-lib/events"
	"github.com/tencentyun/scf-go-lib/functioncontext"

	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/runtime/internal/serve"
)

// Request is the API Gateway trigger event. It is the library's
// events.APIGatewayRequest plus isBase64Encoded, which the gateway sets when
// its "Base64 编码" option encoded the body and which the library's struct
// does not declare (without it an encoded body could not be told apart).
type Request struct {
	events.APIGatewayRequest
	IsBase64Encoded bool `json:"isBase64Encoded"`
}

// Response is the integration response the gateway expects:
// {"isBase64Encoded":bool,"statusCode":int,"headers":{...},"body":"..."}.
type Response = events.APIGatewayResponse

// Start serves h as the SCF function's handler over scf-go-lib's net/rpc
// protocol on _LAMBDA_SERVER_PORT (see rpc.go): API gateway events, and
// wx.cloud.callFunction's data events when opts.DataRoute is set (see
// NewEventHandler). It blocks, and exits the process if it cannot listen.
func Start(h http.Handler, logger *slog.Logger, opts Options) {
	startRPC(NewEventHandler(h, logger, opts))
}

// NewHandler returns an SCF handler for API Gateway trigger events that
// serves h.
//
// The request id (requestContext.requestId, else the SCF invocation id)
// reaches h through httpapi.WithRequestID. A panic in h answers 500 with
// {"code":"INTERNAL",...}, a body flagged base64 that is not answers 400
// INVALID_REQUEST; both return a nil error so SCF does not count the invocation
// as failed. The error is non-nil only for an event that is not an HTTP
// request at all (a misconfigured trigger).
func NewHandler(h http.Handler, logger *slog.Logger) func(context.Context, Request) (Response, error) {
	if logger == nil {
		logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return func(ctx context.Context, e Request) (Response, error) {
		ctx = httpapi.WithRequestID(ctx, requestID(ctx, e))
		if e.Method == "" {
			return Response{}, errors.New("tencentscf: event has no httpMethod; the trigger must be an API Gateway trigger")
		}
		body, err := serve.DecodeBody(e.Body, e.IsBase64Encoded)
		if err != nil {
			logger.WarnContext(ctx, "cannot convert API Gateway event",
				"request_id", httpapi.RequestID(ctx), "err", err)
			return toResponse(ctx, serve.Error(httpapi.RequestID(ctx), http.StatusBadRequest, codeInvalidRequest, "request body is not valid base64"), logger), nil
		}
		r, err := newRequest(ctx, e, body)
		if err != nil {
			logger.WarnContext(ctx, "cannot convert API Gateway event",
				"request_id", httpapi.RequestID(ctx), "err", err)
			return toResponse(ctx, serve.Error(httpapi.RequestID(ctx), http.StatusBadRequest, codeInvalidRequest, "malformed request line"), logger), nil
		}
		return toResponse(ctx, serve.Handle(h, r, logger), logger), nil
	}
}

// requestID prefers the gateway's id, which the client can see and quote,
// falls back to the SCF invocation id, and makes one up for an event
// carrying neither (a hand-made one), so every answer names an id.
func requestID(ctx context.Context, e Request) string {
	if id := e.Context.RequestID; id != "" {
		return id
	}
	if fc, ok := functioncontext.FromContext(ctx); ok && fc.RequestID != "" {
		return fc.RequestID
	}
	return httpapi.NewRequestID()
}

// codeInvalidRequest is app.CodeInvalidRequest, the code of a body that
// cannot be read; the adapters do not import shared/app.
const codeInvalidRequest = "INVALID_REQUEST"

func newRequest(ctx context.Context, e Request, body []byte) (*http.Request, error) {
	header := make(http.Header, len(e.Headers))
	// Sorted so that names differing only in case merge deterministically;
	// values are kept whole (splitting on commas would corrupt Authorization).
	for _, k := range slices.Sorted(maps.Keys(e.Headers)) {
		header.Add(k, e.Headers[k])
	}
	return serve.NewRequest(ctx, serve.Request{
		Method:     e.Method,
		RawPath:    e.Path,
		RawQuery:   rawQuery(e.QueryString),
		Host:       header.Get("Host"),
		RemoteAddr: e.Context.SourceIP,
		Proto:      "HTTP/1.1",
		Header:     header,
		Body:       body,
	})
}

// rawQuery rebuilds a query string from the gateway's decoded map. The
// original bytes are gone, so the order is made deterministic instead: keys
// sorted, values in the order given. A key without a value (the library
// decodes it from JSON true) is written bare, as in "?debug".
func rawQuery(qs events.APIGatewayQueryString) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(qs)) {
		vs := qs[k]
		if len(vs) == 0 {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(k))
			continue
		}
		for _, v := range vs {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(k))
			b.WriteByte('=')
			b.WriteString(url.QueryEscape(v))
		}
	}
	return b.String()
}

func toResponse(ctx context.Context, res serve.Response, logger *slog.Logger) Response {
	out := Response{StatusCode: res.Status, Headers: make(map[string]string, len(res.Header))}
	for k, vs := range res.Header {
		if len(vs) == 0 {
			continue
		}
		if http.CanonicalHeaderKey(k) == "Set-Cookie" && len(vs) > 1 {
			// The integration response has one string per header and a
			// comma-joined Set-Cookie is not parseable (Expires holds a
			// comma), so only the first cookie can be sent.
			logger.WarnContext(ctx, "SCF response can carry one Set-Cookie; extra cookies dropped",
				"request_id", httpapi.RequestID(ctx), "dropped", len(vs)-1)
			out.Headers[k] = vs[0]
			continue
		}
		out.Headers[k] = strings.Join(vs, ",")
	}
	out.Body, out.IsBase64Encoded = serve.EncodeBody(res.Body)
	return out
}
