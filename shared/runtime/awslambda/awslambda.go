// Package awslambda runs payfn's http.Handlers on AWS Lambda behind an API
// Gateway HTTP API (payload format 2.0): it converts each event to an
// *http.Request, serves it, and converts the recorded response back. No AWS
// type reaches the handler.
//
// It must not import shared/app, shared/order or the Tencent SCF library.
package awslambda

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/runtime/internal/serve"
)

// Start serves h as the Lambda function's handler. It blocks, and exits the
// process (through the library) if the Lambda Runtime API is unreachable.
func Start(h http.Handler, logger *slog.Logger) {
	lambda.StartHandlerFunc(NewHandler(h, logger))
}

// NewHandler returns a Lambda handler for HTTP API v2 events that serves h.
//
// The request id (requestContext.requestId, else the Lambda invocation id)
// reaches h through httpapi.WithRequestID. A panic in h answers 500 with
// {"code":"INTERNAL",...}, a body that is flagged base64 but is not answers
// 400 INVALID_REQUEST; both return a nil error so Lambda does not count the
// invocation as failed. The error is non-nil only for an event that is not an
// HTTP request at all (a misconfigured trigger).
func NewHandler(h http.Handler, logger *slog.Logger) func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	if logger == nil {
		logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return func(ctx context.Context, e events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		ctx = httpapi.WithRequestID(ctx, requestID(ctx, e))
		if e.RequestContext.HTTP.Method == "" {
			return events.APIGatewayV2HTTPResponse{}, errors.New("awslambda: event has no requestContext.http.method; the trigger must be an API Gateway HTTP API with payload format 2.0")
		}
		body, err := serve.DecodeBody(e.Body, e.IsBase64Encoded)
		if err != nil {
			logger.WarnContext(ctx, "cannot convert API Gateway event",
				"request_id", httpapi.RequestID(ctx), "err", err)
			return toResponse(serve.Error(httpapi.RequestID(ctx), http.StatusBadRequest, codeInvalidRequest, "request body is not valid base64")), nil
		}
		r, err := newRequest(ctx, e, body)
		if err != nil {
			logger.WarnContext(ctx, "cannot convert API Gateway event",
				"request_id", httpapi.RequestID(ctx), "err", err)
			return toResponse(serve.Error(httpapi.RequestID(ctx), http.StatusBadRequest, codeInvalidRequest, "malformed request line")), nil
		}
		return toResponse(serve.Handle(h, r, logger)), nil
	}
}

// requestID prefers the gateway's id, which the client can see and quote,
// falls back to the Lambda invocation id, and makes one up for an event
// carrying neither (a hand-made one), so every answer names an id.
func requestID(ctx context.Context, e events.APIGatewayV2HTTPRequest) string {
	if id := e.RequestContext.RequestID; id != "" {
		return id
	}
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		return lc.AwsRequestID
	}
	return httpapi.NewRequestID()
}

// codeInvalidRequest is app.CodeInvalidRequest, the code of a body that
// cannot be read; the adapters do not import shared/app.
const codeInvalidRequest = "INVALID_REQUEST"

func newRequest(ctx context.Context, e events.APIGatewayV2HTTPRequest, body []byte) (*http.Request, error) {
	header := newHeader(e.Headers)
	// Payload 2.0 moves the Cookie header into the cookies array.
	if len(e.Cookies) > 0 {
		cookies := strings.Join(e.Cookies, "; ")
		if c := header.Get("Cookie"); c != "" {
			cookies = c + "; " + cookies
		}
		header.Set("Cookie", cookies)
	}
	host := header.Get("Host")
	if host == "" {
		host = e.RequestContext.DomainName
	}
	return serve.NewRequest(ctx, serve.Request{
		Method:     e.RequestContext.HTTP.Method,
		RawPath:    e.RawPath,
		RawQuery:   e.RawQueryString,
		Host:       host,
		RemoteAddr: e.RequestContext.HTTP.SourceIP,
		Proto:      e.RequestContext.HTTP.Protocol,
		Header:     header,
		Body:       body,
	})
}

// newHeader converts payload 2.0 headers (lower-cased names, repeated
// headers already joined with commas) to an http.Header with canonical
// names. Values are kept whole: a comma-joined value is an equivalent field
// value, while splitting would corrupt values that contain commas
// (Authorization, User-Agent, dates).
//
// Names that differ only in case (possible in a hand-made event, never from
// API Gateway) merge in sorted order of the original names, so the result
// does not depend on map iteration order. Without such names the order does
// not matter, and the header is built in one pass without sorting, each
// value slice cut from one shared array.
func newHeader(in map[string]string) http.Header {
	header := make(http.Header, len(in)+1)
	vals := make([]string, len(in))
	i := 0
	for k, v := range in {
		ck := canonicalKey(k)
		if _, dup := header[ck]; dup {
			clear(header)
			for _, k := range slices.Sorted(maps.Keys(in)) {
				header.Add(k, in[k])
			}
			return header
		}
		vals[i] = v
		header[ck] = vals[i : i+1 : i+1] // capacity 1: an Add copies instead of overwriting a neighbour
		i++
	}
	return header
}

// knownKeys maps the lower-case names API Gateway sends for the headers a
// notification carries to their canonical form, which net/textproto would
// otherwise allocate anew for every request (it interns only common
// names such as Content-Type).
var knownKeys = map[string]string{
	"wechatpay-nonce":          "Wechatpay-Nonce",
	"wechatpay-serial":         "Wechatpay-Serial",
	"wechatpay-signature":      "Wechatpay-Signature",
	"wechatpay-signature-type": "Wechatpay-Signature-Type",
	"wechatpay-timestamp":      "Wechatpay-Timestamp",
	"request-id":               "Request-Id",
	"x-amzn-trace-id":          "X-Amzn-Trace-Id",
	"x-forwarded-for":          "X-Forwarded-For",
	"x-forwarded-port":         "X-Forwarded-Port",
	"x-forwarded-proto":        "X-Forwarded-Proto",
}

func canonicalKey(k string) string {
	if ck, ok := knownKeys[k]; ok {
		return ck
	}
	return http.CanonicalHeaderKey(k)
}

func toResponse(res serve.Response) events.APIGatewayV2HTTPResponse {
	out := events.APIGatewayV2HTTPResponse{StatusCode: res.Status}
	for k, vs := range res.Header {
		if len(vs) == 0 {
			continue
		}
		// Set-Cookie values cannot be comma-joined (Expires holds a comma);
		// payload 2.0 has a cookies array for them.
		if http.CanonicalHeaderKey(k) == "Set-Cookie" {
			out.Cookies = append(out.Cookies, vs...)
			continue
		}
		if out.Headers == nil {
			out.Headers = make(map[string]string, len(res.Header))
		}
		out.Headers[k] = strings.Join(vs, ",")
	}
	out.Body, out.IsBase64Encoded = serve.EncodeBody(res.Body)
	return out
}
