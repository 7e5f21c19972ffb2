package awslambda_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/google/go-cmp/cmp"

	"github.com/payfn/payfn/shared/runtime/awslambda"

	"github.com/payfn/payfn/shared/runtime/internal/adaptertest"
)

const bearer = "Bearer sess.eyJvcGVuaWQiOiJvVVB4In0.c2lnbmF0dXJl"

// loadEvent decodes a golden event with encoding/json, as the runtime does.
func loadEvent(t *testing.T, name string) (events.APIGatewayV2HTTPRequest, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var e events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return e, raw
}

func testLogger(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, nil))
}

func TestJSONPostReachesHandlerWithHeadersCookiesAndRequestID(t *testing.T) {
	e, _ := loadEvent(t, "apigw-v2-post-json.json")
	var got adaptertest.Seen
	var logs bytes.Buffer
	resp, err := awslambda.NewHandler(adaptertest.RecordingHandler(t, &got), testLogger(&logs))(context.Background(), e)
	if err != nil {
		t.Fatalf("handler error: %v", err)
	}

	want := adaptertest.Seen{
		Method: "POST", Path: "/v1/orders", RawQuery: "", RequestURI: "/v1/orders",
		Host: "abc123def4.execute-api.ap-east-1.amazonaws.com", RemoteAddr: "203.0.113.7", Proto: "HTTP/1.1",
		Header: http.Header{
			// Payload 2.0 joined a repeated Accept; it must stay one whole value.
			"Accept":            {"application/json,text/plain"},
			"Authorization":     {bearer},
			"Content-Length":    {"58"},
			"Content-Type":      {"application/json"},
			"Cookie":            {"theme=dark; lang=zh_CN"},
			"User-Agent":        {"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN"},
			"X-Amzn-Trace-Id":   {"Root=1-65f0c6a1-4a1b2c3d4e5f60718293a4b5"},
			"X-Forwarded-For":   {"203.0.113.7, 198.51.100.2"},
			"X-Forwarded-Port":  {"443"},
			"X-Forwarded-Proto": {"https"},
		},
		ContentLength: 58,
		Body:          []byte("{\"product_id\":\"p_book_01\",\"qty\":2,\"request_id\":\"r-7f3a\"}\r\n"),
		RequestID:     "UvWxYz1AbCdEFGh=",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request seen by handler (-want +got):\n%s", diff)
	}
	wantResp := events.APIGatewayV2HTTPResponse{
		StatusCode: http.StatusCreated,
		Headers:    map[string]string{"Content-Type": "application/json", "X-Request-Id": "UvWxYz1AbCdEFGh="},
		Body:       `{"order_id":"ord_1"}`,
	}
	if diff := cmp.Diff(wantResp, resp); diff != "" {
		t.Errorf("response (-want +got):\n%s", diff)
	}
}

func TestBase64BodyArrivesByteExact(t *testing.T) {
	e, _ := loadEvent(t, "apigw-v2-post-base64.json")
	var got adaptertest.Seen
	var logs bytes.Buffer
	if _, err := awslambda.NewHandler(adaptertest.RecordingHandler(t, &got), testLogger(&logs))(context.Background(), e); err != nil {
		t.Fatalf("handler error: %v", err)
	}
	// Not valid UTF-8 (0xff, 0x80, 0xc3 0x28), with NUL and CRLF: any text
	// round trip would alter it and break a signature over the body.
	want := []byte("\xff\xfe\x00WECHATPAY\r\n\x80\xc3\x28\x7f end")
	if !bytes.Equal(got.Body, want) {
		t.Errorf("body = %q, want %q", got.Body, want)
	}
	if got.ContentLength != int64(len(want)) || got.Header.Get("Content-Length") != "22" {
		t.Errorf("ContentLength = %d, header %q; want 22", got.ContentLength, got.Header.Get("Content-Length"))
	}
	if got.Header.Get("Wechatpay-Serial") != "5157F09EFDC096DE15EBE81A47057A7232F1B8E1" {
		t.Errorf("Wechatpay-Serial = %q", got.Header.Get("Wechatpay-Serial"))
	}
}

func TestQueryStringReachesHandlerVerbatim(t *testing.T) {
	e, _ := loadEvent(t, "apigw-v2-get-query.json")
	var got adaptertest.Seen
	var logs bytes.Buffer
	if _, err := awslambda.NewHandler(adaptertest.RecordingHandler(t, &got), testLogger(&logs))(context.Background(), e); err != nil {
		t.Fatalf("handler error: %v", err)
	}
	// Unsorted, percent-encoded, '+' and a bare key: re-encoding would change each.
	const raw = "sync=1&b=2&a=%E4%B8%AD%20x&a=1+2&flag"
	if got.RawQuery != raw {
		t.Errorf("RawQuery = %q, want %q", got.RawQuery, raw)
	}
	if want := "/v1/orders/ord_20240312_0001?" + raw; got.RequestURI != want {
		t.Errorf("RequestURI = %q, want %q", got.RequestURI, want)
	}
	if got.Method != "GET" || got.Path != "/v1/orders/ord_20240312_0001" || got.ContentLength != 0 || len(got.Body) != 0 {
		t.Errorf("got %s %s, ContentLength %d, body %q", got.Method, got.Path, got.ContentLength, got.Body)
	}
}

func TestNonUTF8ResponseBodyIsBase64AndTextIsNot(t *testing.T) {
	e, _ := loadEvent(t, "apigw-v2-get-query.json")
	for _, tc := range []struct {
		name       string
		body       []byte
		wantBody   string
		wantBase64 bool
	}{
		{"binary", []byte{0x89, 'P', 'N', 'G', 0xff, 0x00}, base64.StdEncoding.EncodeToString([]byte{0x89, 'P', 'N', 'G', 0xff, 0x00}), true},
		{"utf8 text", []byte("支付成功\n"), "支付成功\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/octet-stream")
				w.Write(tc.body)
			})
			var logs bytes.Buffer
			resp, err := awslambda.NewHandler(h, testLogger(&logs))(context.Background(), e)
			if err != nil {
				t.Fatalf("handler error: %v", err)
			}
			if resp.StatusCode != http.StatusOK || resp.Body != tc.wantBody || resp.IsBase64Encoded != tc.wantBase64 {
				t.Errorf("got status %d body %q base64 %v; want 200 %q %v", resp.StatusCode, resp.Body, resp.IsBase64Encoded, tc.wantBody, tc.wantBase64)
			}
		})
	}
}

func TestSetCookieGoesToCookiesAndOtherHeadersAreCommaJoined(t *testing.T) {
	e, _ := loadEvent(t, "apigw-v2-get-query.json")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "sid=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT; HttpOnly")
		w.Header().Add("Set-Cookie", "theme=dark; Path=/")
		w.Header().Add("Vary", "Origin")
		w.Header().Add("Vary", "Accept-Encoding")
		w.WriteHeader(http.StatusNoContent)
	})
	var logs bytes.Buffer
	resp, err := awslambda.NewHandler(h, testLogger(&logs))(context.Background(), e)
	if err != nil {
		t.Fatalf("handler error: %v", err)
	}
	want := events.APIGatewayV2HTTPResponse{
		StatusCode: http.StatusNoContent,
		Headers:    map[string]string{"Vary": "Origin,Accept-Encoding", "X-Request-Id": "Qa1bC2dE3fG4hI5="},
		Cookies:    []string{"sid=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT; HttpOnly", "theme=dark; Path=/"},
	}
	if diff := cmp.Diff(want, resp); diff != "" {
		t.Errorf("response (-want +got):\n%s", diff)
	}
}

func TestPanicAnswers500JSONWithNilErrorAndLogsRequestID(t *testing.T) {
	e, _ := loadEvent(t, "apigw-v2-post-json.json")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Partial", "yes")
		w.WriteHeader(http.StatusOK)
		panic("boom")
	})
	var logs bytes.Buffer
	resp, err := awslambda.NewHandler(h, testLogger(&logs))(context.Background(), e)
	if err != nil {
		t.Fatalf("handler error = %v, want nil", err)
	}
	want := events.APIGatewayV2HTTPResponse{
		StatusCode: http.StatusInternalServerError,
		Headers:    map[string]string{"Content-Type": "application/json", "X-Request-Id": "UvWxYz1AbCdEFGh="},
		Body:       `{"code":"INTERNAL","message":"internal error","request_id":"UvWxYz1AbCdEFGh="}`,
	}
	if diff := cmp.Diff(want, resp); diff != "" {
		t.Errorf("response (-want +got):\n%s", diff)
	}
	var entry map[string]any
	if err := json.Unmarshal(logs.Bytes(), &entry); err != nil {
		t.Fatalf("log is not one JSON line: %v\n%s", err, logs.String())
	}
	if entry["level"] != "ERROR" || entry["request_id"] != "UvWxYz1AbCdEFGh=" || entry["panic"] != "boom" {
		t.Errorf("log entry = %v", entry)
	}
	for _, secret := range []string{"sess.eyJ", "p_book_01", "theme=dark"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log leaks %q: %s", secret, logs.String())
		}
	}
}

func TestRequestIDFallsBackToLambdaInvocationID(t *testing.T) {
	e, _ := loadEvent(t, "apigw-v2-get-query.json")
	e.RequestContext.RequestID = ""
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "8476a536-e9f4-11e8-9739-2dfe598c3fcd"})
	var got adaptertest.Seen
	var logs bytes.Buffer
	if _, err := awslambda.NewHandler(adaptertest.RecordingHandler(t, &got), testLogger(&logs))(ctx, e); err != nil {
		t.Fatalf("handler error: %v", err)
	}
	if got.RequestID != "8476a536-e9f4-11e8-9739-2dfe598c3fcd" {
		t.Errorf("request id = %q", got.RequestID)
	}
}

// The adapter's own refusal is an error like the core's: INVALID_REQUEST
// (the documented code for an unreadable body) naming the request id in the
// body and in X-Request-Id.
func TestInvalidBase64BodyAnswers400InvalidRequestWithRequestIDAndNilError(t *testing.T) {
	e, _ := loadEvent(t, "apigw-v2-post-base64.json")
	e.Body = "not*base64!"
	called := false
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true })
	var logs bytes.Buffer
	resp, err := awslambda.NewHandler(h, testLogger(&logs))(context.Background(), e)
	if err != nil {
		t.Fatalf("handler error = %v, want nil", err)
	}
	if called {
		t.Error("core handler was called with an undecodable body")
	}
	want := events.APIGatewayV2HTTPResponse{
		StatusCode: http.StatusBadRequest,
		Headers:    map[string]string{"Content-Type": "application/json", "X-Request-Id": "Nt5aBcDeFgHiJkQ="},
		Body:       `{"code":"INVALID_REQUEST","message":"request body is not valid base64","request_id":"Nt5aBcDeFgHiJkQ="}`,
	}
	if diff := cmp.Diff(want, resp); diff != "" {
		t.Errorf("response (-want +got):\n%s", diff)
	}
}

func TestNonHTTPEventFailsTheInvocation(t *testing.T) {
	var logs bytes.Buffer
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("core handler called") })
	// A scheduled or test event decodes into an empty request context.
	if _, err := awslambda.NewHandler(h, testLogger(&logs))(context.Background(), events.APIGatewayV2HTTPRequest{}); err == nil {
		t.Error("error = nil, want an error for an event without an HTTP method")
	}
}

// TestLambdaLibraryInvokeReturnsResponseJSON drives the adapter through
// aws-lambda-go's own reflection and JSON path, as lambda.Start would.
func TestLambdaLibraryInvokeReturnsResponseJSON(t *testing.T) {
	_, raw := loadEvent(t, "apigw-v2-post-base64.json")
	var got adaptertest.Seen
	var logs bytes.Buffer
	out, err := lambda.NewHandler(awslambda.NewHandler(adaptertest.RecordingHandler(t, &got), testLogger(&logs))).Invoke(context.Background(), raw)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	wantJSON, err := os.ReadFile(filepath.Join("testdata", "response-created.json"))
	if err != nil {
		t.Fatal(err)
	}
	var gotV, wantV any
	if err := json.Unmarshal(out, &gotV); err != nil {
		t.Fatalf("Invoke output is not JSON: %v\n%s", err, out)
	}
	if err := json.Unmarshal(wantJSON, &wantV); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantV, gotV); diff != "" {
		t.Errorf("Invoke output (-want +got):\n%s", diff)
	}
	if want := []byte("\xff\xfe\x00WECHATPAY\r\n\x80\xc3\x28\x7f end"); !bytes.Equal(got.Body, want) || got.RequestID != "Nt5aBcDeFgHiJkQ=" {
		t.Errorf("handler saw body %q, request id %q", got.Body, got.RequestID)
	}
}

// TestAdapterConformance runs the adapters' shared table through HTTP API
// (payload 2.0) events.
func TestAdapterConformance(t *testing.T) {
	seq := 0
	adaptertest.RunConformance(t, adaptertest.Transport{
		Name: "aws http api v2", RawBody: true, Headers: true,
		Serve: func(t *testing.T, h http.Handler, req adaptertest.Request) adaptertest.Answer {
			seq++
			body, b64 := adaptertest.GatewayBody(req.Body)
			e := events.APIGatewayV2HTTPRequest{
				Version: "2.0", RouteKey: "POST " + req.Path, RawPath: req.Path,
				Headers: adaptertest.GatewayHeaders(req.Header), Body: body, IsBase64Encoded: b64,
				RequestContext: events.APIGatewayV2HTTPRequestContext{
					RequestID: "apigw-" + strings.Repeat("7", seq), DomainName: "abc.execute-api.ap-east-1.amazonaws.com",
					HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: http.MethodPost, Path: req.Path, Protocol: "HTTP/1.1", SourceIP: "203.0.113.7"},
				},
			}
			resp, err := awslambda.NewHandler(h, slog.New(slog.DiscardHandler))(context.Background(), e)
			if err != nil {
				t.Fatalf("handler error: %v", err)
			}
			return adaptertest.GatewayAnswer(t, resp.StatusCode, resp.Headers, resp.Body, resp.IsBase64Encoded)
		},
	})
}
