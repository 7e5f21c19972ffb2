package tencentscf_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/rpc"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tencentyun/scf-go-lib/cloudfunction/messages"
	"github.com/tencentyun/scf-go-lib/functioncontext"

	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/runtime/tencentscf"

	"github.com/payfn/payfn/shared/runtime/internal/adaptertest"
)

const bearer = "Bearer sess.eyJvcGVuaWQiOiJvVVB4In0.c2lnbmF0dXJl"

// childEnv makes the test binary act as an SCF function process (see TestMain).
const childEnv = "PAYFN_TENCENTSCF_TEST_CHILD"

// dataRouteEnv gives the child its data route.
const dataRouteEnv = "PAYFN_TENCENTSCF_TEST_DATA_ROUTE"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		// Serve echoHandler over scf-go-lib's net/rpc exactly as SCF runs a
		// function; Start only returns by exiting the process.
		h := echoHandler()
		if os.Getenv(dataRouteEnv) != "" {
			h = callerHandler()
		}
		tencentscf.Start(h, slog.New(slog.NewJSONHandler(os.Stderr, nil)), tencentscf.Options{DataRoute: os.Getenv(dataRouteEnv)})
		os.Exit(3)
	}
	os.Exit(m.Run())
}

// echoHandler answers 201 with the request body as the response body and
// what it saw of the request in headers.
func echoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read body", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("X-Seen-Request-Id", httpapi.RequestID(r.Context()))
		w.Header().Set("X-Seen-Request", r.Method+" "+r.RequestURI)
		w.WriteHeader(http.StatusCreated)
		w.Write(body)
	})
}

// loadEvent decodes a golden event with encoding/json, as scf-go-lib does.
func loadEvent(t *testing.T, name string) (tencentscf.Request, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var e tencentscf.Request
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return e, raw
}

func testLogger(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, nil))
}

func TestJSONPostReachesHandlerWithHeadersAndRequestID(t *testing.T) {
	e, _ := loadEvent(t, "apigw-post-json.json")
	var got adaptertest.Seen
	var logs bytes.Buffer
	resp, err := tencentscf.NewHandler(adaptertest.RecordingHandler(t, &got), testLogger(&logs))(context.Background(), e)
	if err != nil {
		t.Fatalf("handler error: %v", err)
	}
	want := adaptertest.Seen{
		Method: "POST", Path: "/v1/orders", RawQuery: "", RequestURI: "/v1/orders",
		Host: "service-f94sy04v-1250000000.gz.apigw.tencentcs.com", RemoteAddr: "203.0.113.7", Proto: "HTTP/1.1",
		Header: http.Header{
			// A joined repeated header must stay one whole value.
			"Accept":               {"application/json,text/plain"},
			"Authorization":        {bearer},
			"Content-Length":       {"58"},
			"Content-Type":         {"application/json"},
			"Endpoint-Timeout":     {"15"},
			"User-Agent":           {"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN"},
			"X-Anonymous-Consumer": {"true"},
			"X-Api-Requestid":      {"5d2bb1a9ee3bd4d6b3f35a9b2f0d7c41"},
			"X-B3-Traceid":         {"5d2bb1a9ee3bd4d6b3f35a9b2f0d7c41"},
			"X-Qualifier":          {"$LATEST"},
		},
		ContentLength: 58,
		Body:          []byte("{\"product_id\":\"p_book_01\",\"qty\":2,\"request_id\":\"r-7f3a\"}\r\n"),
		RequestID:     "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request seen by handler (-want +got):\n%s", diff)
	}
	wantResp := tencentscf.Response{
		StatusCode: http.StatusCreated,
		Headers:    map[string]string{"Content-Type": "application/json", "X-Request-Id": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"},
		Body:       `{"order_id":"ord_1"}`,
	}
	if diff := cmp.Diff(wantResp, resp); diff != "" {
		t.Errorf("response (-want +got):\n%s", diff)
	}
}

func TestBase64BodyArrivesByteExact(t *testing.T) {
	e, _ := loadEvent(t, "apigw-post-base64.json")
	var got adaptertest.Seen
	var logs bytes.Buffer
	if _, err := tencentscf.NewHandler(adaptertest.RecordingHandler(t, &got), testLogger(&logs))(context.Background(), e); err != nil {
		t.Fatalf("handler error: %v", err)
	}
	want := []byte("\xff\xfe\x00WECHATPAY\r\n\x80\xc3\x28\x7f end")
	if !bytes.Equal(got.Body, want) {
		t.Errorf("body = %q, want %q", got.Body, want)
	}
	if got.ContentLength != int64(len(want)) || got.Header.Get("Content-Length") != "22" {
		t.Errorf("ContentLength = %d, header %q; want 22", got.ContentLength, got.Header.Get("Content-Length"))
	}
}

func TestQueryStringMapBecomesSortedRawQuery(t *testing.T) {
	e, _ := loadEvent(t, "apigw-get-query.json")
	var got adaptertest.Seen
	var logs bytes.Buffer
	if _, err := tencentscf.NewHandler(adaptertest.RecordingHandler(t, &got), testLogger(&logs))(context.Background(), e); err != nil {
		t.Fatalf("handler error: %v", err)
	}
	// Keys sorted, a key's values in event order, the JSON-true flag bare.
	const raw = "a=%E4%B8%AD+x&a=1+2&b=2&flag&sync=1"
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
	e, _ := loadEvent(t, "apigw-get-query.json")
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
			resp, err := tencentscf.NewHandler(h, testLogger(&logs))(context.Background(), e)
			if err != nil {
				t.Fatalf("handler error: %v", err)
			}
			if resp.StatusCode != http.StatusOK || resp.Body != tc.wantBody || resp.IsBase64Encoded != tc.wantBase64 {
				t.Errorf("got status %d body %q base64 %v; want 200 %q %v", resp.StatusCode, resp.Body, resp.IsBase64Encoded, tc.wantBody, tc.wantBase64)
			}
		})
	}
}

func TestMultiValueHeadersAreCommaJoinedAndOnlyFirstSetCookieIsSent(t *testing.T) {
	e, _ := loadEvent(t, "apigw-get-query.json")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "sid=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT; HttpOnly")
		w.Header().Add("Set-Cookie", "theme=dark; Path=/")
		w.Header().Add("Vary", "Origin")
		w.Header().Add("Vary", "Accept-Encoding")
		w.WriteHeader(http.StatusNoContent)
	})
	var logs bytes.Buffer
	resp, err := tencentscf.NewHandler(h, testLogger(&logs))(context.Background(), e)
	if err != nil {
		t.Fatalf("handler error: %v", err)
	}
	want := tencentscf.Response{
		StatusCode: http.StatusNoContent,
		Headers: map[string]string{
			"Vary":         "Origin,Accept-Encoding",
			"X-Request-Id": "3a9e6c1d-5b7f-4d2a-9c8e-1f3b5d7a9c2e",
			"Set-Cookie":   "sid=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT; HttpOnly",
		},
	}
	if diff := cmp.Diff(want, resp); diff != "" {
		t.Errorf("response (-want +got):\n%s", diff)
	}
	if !strings.Contains(logs.String(), `"dropped":1`) {
		t.Errorf("dropped cookie not logged: %s", logs.String())
	}
}

func TestPanicAnswers500JSONWithNilErrorAndLogsRequestID(t *testing.T) {
	e, _ := loadEvent(t, "apigw-post-json.json")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		panic("boom")
	})
	var logs bytes.Buffer
	resp, err := tencentscf.NewHandler(h, testLogger(&logs))(context.Background(), e)
	if err != nil {
		t.Fatalf("handler error = %v, want nil", err)
	}
	want := tencentscf.Response{
		StatusCode: http.StatusInternalServerError,
		Headers:    map[string]string{"Content-Type": "application/json", "X-Request-Id": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"},
		Body:       `{"code":"INTERNAL","message":"internal error","request_id":"c6af9ac6-7b61-11e6-9a41-93e8deadbeef"}`,
	}
	if diff := cmp.Diff(want, resp); diff != "" {
		t.Errorf("response (-want +got):\n%s", diff)
	}
	var entry map[string]any
	if err := json.Unmarshal(logs.Bytes(), &entry); err != nil {
		t.Fatalf("log is not one JSON line: %v\n%s", err, logs.String())
	}
	if entry["level"] != "ERROR" || entry["request_id"] != "c6af9ac6-7b61-11e6-9a41-93e8deadbeef" || entry["panic"] != "boom" {
		t.Errorf("log entry = %v", entry)
	}
	for _, secret := range []string{"sess.eyJ", "p_book_01"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log leaks %q: %s", secret, logs.String())
		}
	}
}

func TestRequestIDFallsBackToSCFInvocationID(t *testing.T) {
	e, _ := loadEvent(t, "apigw-get-query.json")
	e.Context.RequestID = ""
	ctx := functioncontext.NewContext(context.Background(), &functioncontext.FunctionContext{RequestID: "scf-invoke-42"})
	var got adaptertest.Seen
	var logs bytes.Buffer
	if _, err := tencentscf.NewHandler(adaptertest.RecordingHandler(t, &got), testLogger(&logs))(ctx, e); err != nil {
		t.Fatalf("handler error: %v", err)
	}
	if got.RequestID != "scf-invoke-42" {
		t.Errorf("request id = %q", got.RequestID)
	}
}

// The adapter's own refusal is an error like the core's: INVALID_REQUEST
// (the documented code for an unreadable body) naming the request id in the
// body and in X-Request-Id.
func TestInvalidBase64BodyAnswers400InvalidRequestWithRequestIDAndNilError(t *testing.T) {
	e, _ := loadEvent(t, "apigw-post-base64.json")
	e.Body = "not*base64!"
	called := false
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true })
	var logs bytes.Buffer
	resp, err := tencentscf.NewHandler(h, testLogger(&logs))(context.Background(), e)
	if err != nil {
		t.Fatalf("handler error = %v, want nil", err)
	}
	if called {
		t.Error("core handler was called with an undecodable body")
	}
	want := tencentscf.Response{
		StatusCode: http.StatusBadRequest,
		Headers:    map[string]string{"Content-Type": "application/json", "X-Request-Id": "0f3b7d5e-9a1c-4e2b-8d6f-2a4c6e8b0d1f"},
		Body:       `{"code":"INVALID_REQUEST","message":"request body is not valid base64","request_id":"0f3b7d5e-9a1c-4e2b-8d6f-2a4c6e8b0d1f"}`,
	}
	if diff := cmp.Diff(want, resp); diff != "" {
		t.Errorf("response (-want +got):\n%s", diff)
	}
}

func TestNonHTTPEventFailsTheInvocation(t *testing.T) {
	var logs bytes.Buffer
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("core handler called") })
	// A timer trigger event decodes into a request without a method.
	var e tencentscf.Request
	if err := json.Unmarshal([]byte(`{"Type":"Timer","TriggerName":"expire","Time":"2024-03-12T19:00:00Z","Message":""}`), &e); err != nil {
		t.Fatal(err)
	}
	if _, err := tencentscf.NewHandler(h, testLogger(&logs))(context.Background(), e); err == nil {
		t.Error("error = nil, want an error for an event without an HTTP method")
	}
}

// TestStartServesEventsOverSCFNetRPC runs this test binary as an SCF function
// process (tencentscf.Start → cloudfunction.Start on _LAMBDA_SERVER_PORT) and
// invokes it over net/rpc with the raw event bytes, as the SCF runtime does.
// A child process is needed because cloudfunction registers on net/rpc's
// process-global server, listens on a port it cannot close, and never returns.
func TestStartServesEventsOverSCFNetRPC(t *testing.T) {
	_, raw := loadEvent(t, "apigw-post-base64.json")
	client := startChild(t)

	req := &messages.InvokeRequest{
		Payload:      raw,
		RequestId:    "scf-invoke-7",
		FunctionName: "verifyPayment",
		Deadline:     messages.InvokeRequest_Timestamp{Seconds: time.Now().Add(time.Minute).Unix()},
	}
	var resp messages.InvokeResponse
	if err := client.Call("Function.Invoke", req, &resp); err != nil {
		t.Fatalf("Function.Invoke: %v", err)
	}
	if resp.Error != nil {
		t.Fatalf("function error: %+v", resp.Error)
	}
	var got, want any
	if err := json.Unmarshal(resp.Payload, &got); err != nil {
		t.Fatalf("payload is not JSON: %v\n%s", err, resp.Payload)
	}
	// The non-UTF-8 request body, echoed, must come back base64 and identical.
	if err := json.Unmarshal([]byte(`{
		"isBase64Encoded": true,
		"statusCode": 201,
		"headers": {
			"Content-Type": "application/octet-stream",
			"X-Request-Id": "0f3b7d5e-9a1c-4e2b-8d6f-2a4c6e8b0d1f",
			"X-Seen-Request-Id": "0f3b7d5e-9a1c-4e2b-8d6f-2a4c6e8b0d1f",
			"X-Seen-Request": "POST /v1/wxpay/notify"
		},
		"body": "//4AV0VDSEFUUEFZDQqAwyh/IGVuZA=="
	}`), &want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("integration response (-want +got):\n%s", diff)
	}
}

// startChild starts the test binary in SCF mode and returns an RPC client
// connected to it. The free port is found by binding :0 and releasing it, so
// another process could take it in between; that rare race is retried.
func startChild(t *testing.T) *rpc.Client {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	for attempt := 1; attempt <= 3; attempt++ {
		port := adaptertest.FreePort(t)
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=1", "_LAMBDA_SERVER_PORT="+port)
		stderr.Reset()
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start child: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-exited
		})
		if c := adaptertest.DialUntil("localhost:"+port, exited); c != nil {
			t.Cleanup(func() { c.Close() })
			return c
		}
		// Stop this child before retrying, so stderr is no longer written.
		cmd.Process.Kill()
		<-exited
	}
	t.Fatalf("SCF child never accepted RPC; last stderr:\n%s", stderr.String())
	return nil
}
