package runtime_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/rpc"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tencentyun/scf-go-lib/cloudfunction/messages"

	"github.com/payfn/payfn/shared/runtime"
	"github.com/payfn/payfn/shared/runtime/httpapi"

	"github.com/payfn/payfn/shared/runtime/internal/adaptertest"
)

// childEnv makes the test binary call runtime.Start (see TestMain).
const childEnv = "PAYFN_RUNTIME_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		runtime.Start(echoHandler(), slog.New(slog.NewJSONHandler(os.Stderr, nil)))
		os.Exit(3) // Start returned: it must not
	}
	os.Exit(m.Run())
}

// echoHandler answers 200 with the request body and what it saw in headers.
func echoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Seen-Request-Id", httpapi.RequestID(r.Context()))
		w.Header().Set("X-Seen-Request", r.Method+" "+r.RequestURI)
		w.Write(body)
	})
}

func TestDetectChoosesPlatformFromEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    runtime.Platform
		wantErr bool
	}{
		{"aws provided runtime", map[string]string{"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001", "AWS_LAMBDA_FUNCTION_NAME": "createOrder"}, runtime.AWSLambda, false},
		{"aws runtime api wins over rpc port", map[string]string{"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001", "_LAMBDA_SERVER_PORT": "9000"}, runtime.AWSLambda, false},
		{"scf rpc port", map[string]string{"_LAMBDA_SERVER_PORT": "28902", "TENCENTCLOUD_RUNENV": "SCF"}, runtime.TencentSCF, false},
		{"scf rpc port alone", map[string]string{"_LAMBDA_SERVER_PORT": "28902"}, runtime.TencentSCF, false},
		{"aws go1.x rpc is refused", map[string]string{"_LAMBDA_SERVER_PORT": "9000", "AWS_LAMBDA_FUNCTION_NAME": "createOrder"}, "", true},
		{"scf without rpc port is refused", map[string]string{"TENCENTCLOUD_RUNENV": "SCF"}, "", true},
		{"cloudbase http function", map[string]string{"TENCENTCLOUD_RUNENV": "SCF", "PORT": "9000"}, runtime.HTTPServer, false},
		{"container", map[string]string{"PORT": "80"}, runtime.HTTPServer, false},
		{"scf rpc port wins over PORT", map[string]string{"_LAMBDA_SERVER_PORT": "28902", "PORT": "9000"}, runtime.TencentSCF, false},
		{"laptop", map[string]string{"HOME": "/home/dev"}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := runtime.Detect(func(k string) string { return tc.env[k] })
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("Detect = %q, %v; want %q, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestDetectReportsNoRuntimeAsErrNoRuntime(t *testing.T) {
	_, err := runtime.Detect(func(string) string { return "" })
	if !errors.Is(err, runtime.ErrNoRuntime) {
		t.Errorf("err = %v, want ErrNoRuntime", err)
	}
}

// childCmd prepares the test binary as a function process whose platform
// variables are exactly env (inherited ones are removed).
func childCmd(t *testing.T, env ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "AWS_LAMBDA_RUNTIME_API", "_LAMBDA_SERVER_PORT", "AWS_LAMBDA_FUNCTION_NAME", "TENCENTCLOUD_RUNENV", "PORT":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, childEnv+"=1")
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// startChild starts cmd and kills it (by its pid) when the test ends.
func startChild(t *testing.T, cmd *exec.Cmd) <-chan struct{} {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	return exited
}

func TestStartExitsWithStatus1WhenNoRuntimeIsDetected(t *testing.T) {
	cmd := childCmd(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
		t.Fatalf("child exit = %v, want status 1; stderr:\n%s", err, stderr.String())
	}
	var entry map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(stderr.Bytes()), &entry); err != nil {
		t.Fatalf("stderr is not one JSON log line: %v\n%s", err, stderr.String())
	}
	if entry["level"] != "ERROR" || !strings.Contains(entry["err"].(string), "no cloud runtime detected") {
		t.Errorf("log entry = %v", entry)
	}
}

// TestStartServesAWSLambdaThroughRuntimeAPI points the child at a fake
// Lambda Runtime API and checks the invocation's response, proving that
// Start picks AWS and that aws-lambda-go drives the adapter end to end.
func TestStartServesAWSLambdaThroughRuntimeAPI(t *testing.T) {
	event := []byte(`{
		"version": "2.0", "routeKey": "$default", "rawPath": "/v1/ping", "rawQueryString": "x=1",
		"headers": {"host": "abc123def4.execute-api.ap-east-1.amazonaws.com", "content-type": "text/plain"},
		"requestContext": {"requestId": "gw-req-1", "domainName": "abc123def4.execute-api.ap-east-1.amazonaws.com",
			"http": {"method": "POST", "path": "/v1/ping", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7"}},
		"body": "ping", "isBase64Encoded": false}`)

	responses := make(chan []byte, 1)
	var served atomic.Bool
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/2018-06-01/runtime/invocation/next":
			if served.Swap(true) {
				<-r.Context().Done() // no more work: hold the poll until the child is killed
				return
			}
			w.Header().Set("Lambda-Runtime-Aws-Request-Id", "inv-1")
			w.Header().Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10))
			w.Header().Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:ap-east-1:123456789012:function:ping")
			w.Write(event)
		case r.Method == http.MethodPost && r.URL.Path == "/2018-06-01/runtime/invocation/inv-1/response":
			b, _ := io.ReadAll(r.Body)
			responses <- b
			w.WriteHeader(http.StatusAccepted)
		default:
			b, _ := io.ReadAll(r.Body)
			t.Errorf("unexpected Runtime API call %s %s: %s", r.Method, r.URL.Path, b)
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(api.Close) // registered first, so it runs after the child is killed

	exited := startChild(t, childCmd(t, "AWS_LAMBDA_RUNTIME_API="+api.Listener.Addr().String()))
	var out []byte
	select {
	case out = <-responses:
	case <-exited:
		t.Fatal("child exited before answering the invocation")
	case <-time.After(10 * time.Second):
		t.Fatal("no invocation response within 10s")
	}
	var got, want any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("response is not JSON: %v\n%s", err, out)
	}
	mustUnmarshal(t, `{
		"statusCode": 200,
		"headers": {"Content-Type": "text/plain; charset=utf-8", "X-Request-Id": "gw-req-1", "X-Seen-Request-Id": "gw-req-1", "X-Seen-Request": "POST /v1/ping?x=1"},
		"multiValueHeaders": null, "body": "ping", "cookies": null}`, &want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("invocation response (-want +got):\n%s", diff)
	}
}

// TestStartServesTencentSCFThroughNetRPC gives the child an SCF environment
// and invokes it over net/rpc as the SCF runtime does.
func TestStartServesTencentSCFThroughNetRPC(t *testing.T) {
	event := []byte(`{
		"requestContext": {"serviceId": "service-f94sy04v", "path": "/v1/ping", "httpMethod": "POST",
			"requestId": "gw-req-2", "identity": {}, "sourceIp": "203.0.113.7", "stage": "release"},
		"headers": {"host": "service-f94sy04v-1250000000.gz.apigw.tencentcs.com", "content-type": "text/plain"},
		"body": "ping", "path": "/v1/ping", "queryString": {"x": "1"}, "httpMethod": "POST", "isBase64Encoded": false}`)

	var client *rpc.Client
	for attempt := 1; client == nil && attempt <= 3; attempt++ {
		// The port is found by binding :0 and releasing it; another process
		// could take it in between, so a child that dies is retried.
		port := adaptertest.FreePort(t)
		exited := startChild(t, childCmd(t, "_LAMBDA_SERVER_PORT="+port, "TENCENTCLOUD_RUNENV=SCF"))
		client = adaptertest.DialUntil("localhost:"+port, exited)
	}
	if client == nil {
		t.Fatal("SCF child never accepted RPC")
	}
	t.Cleanup(func() { client.Close() })

	var resp messages.InvokeResponse
	err := client.Call("Function.Invoke", &messages.InvokeRequest{
		Payload:   event,
		RequestId: "scf-invoke-1",
		Deadline:  messages.InvokeRequest_Timestamp{Seconds: time.Now().Add(time.Minute).Unix()},
	}, &resp)
	if err != nil || resp.Error != nil {
		t.Fatalf("Function.Invoke: %v, function error %+v", err, resp.Error)
	}
	var got, want any
	if err := json.Unmarshal(resp.Payload, &got); err != nil {
		t.Fatalf("payload is not JSON: %v\n%s", err, resp.Payload)
	}
	mustUnmarshal(t, `{
		"isBase64Encoded": false, "statusCode": 200,
		"headers": {"Content-Type": "text/plain; charset=utf-8", "X-Request-Id": "gw-req-2", "X-Seen-Request-Id": "gw-req-2", "X-Seen-Request": "POST /v1/ping?x=1"},
		"body": "ping"}`, &want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("integration response (-want +got):\n%s", diff)
	}
}

// TestStartServesHTTPOnPort gives the child PORT, as scf_bootstrap or a
// container does, and sends it a request.
func TestStartServesHTTPOnPort(t *testing.T) {
	var resp *http.Response
	for attempt := 1; resp == nil && attempt <= 3; attempt++ {
		port := adaptertest.FreePort(t)
		exited := startChild(t, childCmd(t, "PORT="+port, "TENCENTCLOUD_RUNENV=SCF"))
		deadline := time.Now().Add(10 * time.Second)
		for resp == nil && time.Now().Before(deadline) {
			r, err := http.Post("http://127.0.0.1:"+port+"/v1/ping?x=1", "text/plain", strings.NewReader("ping"))
			if err == nil {
				resp = r
				break
			}
			select {
			case <-exited:
				deadline = time.Time{}
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	if resp == nil {
		t.Fatal("HTTP child never answered")
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	id := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != 200 || string(body) != "ping" || id == "" || resp.Header.Get("X-Seen-Request-Id") != id || resp.Header.Get("X-Seen-Request") != "POST /v1/ping?x=1" {
		t.Errorf("answer %d %q, headers %v", resp.StatusCode, body, resp.Header)
	}
}

func mustUnmarshal(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("bad test JSON: %v", err)
	}
}
