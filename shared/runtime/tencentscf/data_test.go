package tencentscf_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/rpc"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tencentyun/scf-go-lib/cloudfunction/messages"

	"github.com/payfn/payfn/shared/identity"
	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/runtime/internal/adaptertest"
	"github.com/payfn/payfn/shared/runtime/tencentscf"
)

// seenCaller is what callerHandler answers: what the request carried and
// what the process environment holds after the library applied the
// invocation's environment.
type seenCaller struct {
	Path      string                  `json:"path"`
	Body      string                  `json:"body"`
	Caller    identity.PlatformCaller `json:"caller"`
	ProcessWX string                  `json:"process_wx_openid"`
	ProcessTC string                  `json:"process_tcb_source"`
	ProcessFn string                  `json:"process_fn_setting"`
}

// callerHandler answers 200 with a seenCaller.
func callerHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c, _ := identity.PlatformCallerFrom(r.Context())
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(seenCaller{Path: r.URL.Path, Body: string(body), Caller: c,
			ProcessWX: os.Getenv("WX_OPENID"), ProcessTC: os.Getenv("TCB_SOURCE"), ProcessFn: os.Getenv("PAYFN_TEST_FUNCTION_SETTING")})
	})
}

// startDataChild starts the test binary as an SCF function taking data
// events at route, and returns a net/rpc client to it.
func startDataChild(t *testing.T, route string) *rpc.Client {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	for attempt := 1; attempt <= 3; attempt++ {
		port := adaptertest.FreePort(t)
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=1", dataRouteEnv+"="+route, "_LAMBDA_SERVER_PORT="+port)
		stderr.Reset()
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start child: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() { cmd.Process.Kill(); <-exited })
		if c := adaptertest.DialUntil("localhost:"+port, exited); c != nil {
			t.Cleanup(func() { c.Close() })
			return c
		}
		cmd.Process.Kill()
		<-exited
	}
	t.Fatalf("SCF child never accepted RPC; last stderr:\n%s", stderr.String())
	return nil
}

// invokeData sends one data event through Function.Invoke with env as the
// invocation's environment.
func invokeData(t *testing.T, c *rpc.Client, id string, data string, env map[string]string) tencentscf.DataAnswer {
	t.Helper()
	req := &messages.InvokeRequest{Payload: []byte(data), RequestId: id, FunctionName: "createorder",
		Deadline: messages.InvokeRequest_Timestamp{Seconds: time.Now().Add(time.Minute).Unix()}}
	if env != nil {
		b, _ := json.Marshal(env)
		req.Environment = string(b)
	}
	var resp messages.InvokeResponse
	if err := c.Call("Function.Invoke", req, &resp); err != nil {
		t.Fatalf("Function.Invoke: %v", err)
	}
	if resp.Error != nil {
		t.Fatalf("function error: %+v", resp.Error)
	}
	var a tencentscf.DataAnswer
	if err := json.Unmarshal(resp.Payload, &a); err != nil {
		t.Fatalf("not a data answer: %v\n%s", err, resp.Payload)
	}
	return a
}

// TestDataEventsTakeTheCallerFromEachInvocationOverNetRPC invokes one warm
// SCF process over net/rpc, as the runtime does for wx.cloud.callFunction:
// buyer A, then a call with no caller, then buyer B. Each call sees its own
// caller and no other, the library's copy of the environment into the
// process never holds a caller, and the function's own settings still
// reach it.
func TestDataEventsTakeTheCallerFromEachInvocationOverNetRPC(t *testing.T) {
	c := startDataChild(t, httpapi.PathCreateOrder)
	a := adaptertest.Buyer
	b := a
	b.OpenID, b.UnionID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6B", ""

	envA := callerEnvironment(a)
	envA["PAYFN_TEST_FUNCTION_SETTING"] = "kept"
	got := invokeData(t, c, "inv-a", `{"product_id":"latte","quantity":1,"request_id":"r-a","userInfo":{"openId":"o-forged"}}`, envA)
	var seen seenCaller
	if err := json.Unmarshal(got.Body, &seen); err != nil {
		t.Fatal(err)
	}
	want := seenCaller{Path: httpapi.PathCreateOrder, Body: `{"product_id":"latte","quantity":1,"request_id":"r-a"}`, Caller: a, ProcessFn: "kept"}
	if diff := cmp.Diff(want, seen); diff != "" || got.Status != http.StatusOK || got.RequestID != "inv-a" {
		t.Errorf("buyer A's call: status %d id %q, seen (-want +got):\n%s", got.Status, got.RequestID, diff)
	}

	// No caller at all: nothing of A's call remains, in the context or in
	// the process environment.
	got = invokeData(t, c, "inv-none", `{}`, map[string]string{"SCF_NAMESPACE": a.Env})
	seen = seenCaller{}
	json.Unmarshal(got.Body, &seen)
	if seen.Caller.OpenID != "" || seen.Caller.AppID != "" || seen.Caller.Source != "" || seen.ProcessWX != "" || seen.ProcessTC != "" {
		t.Errorf("a call without a caller saw %+v", seen)
	}

	got = invokeData(t, c, "inv-b", `{}`, callerEnvironment(b))
	seen = seenCaller{}
	json.Unmarshal(got.Body, &seen)
	if seen.Caller != b {
		t.Errorf("buyer B's call saw caller %+v, want %+v", seen.Caller, b)
	}
}

// TestDataEventsRefusedWithoutARouteAndTimerEventsRefused: a function that
// takes no data events (the notification handlers) fails such an
// invocation, and a timer event never reaches an HTTP function as data.
func TestDataEventsRefusedWithoutARouteAndTimerEventsRefused(t *testing.T) {
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("handler called") })
	logger := slog.New(slog.DiscardHandler)
	if _, err := tencentscf.NewEventHandler(h, logger, tencentscf.Options{})(context.Background(), []byte(`{"order_id":"PF1"}`)); err == nil || !strings.Contains(err.Error(), "API Gateway") {
		t.Errorf("data event without a data route: err = %v", err)
	}
	timer := []byte(`{"Type":"Timer","TriggerName":"expire","Time":"2024-03-12T19:00:00Z","Message":""}`)
	if _, err := tencentscf.NewEventHandler(h, logger, tencentscf.Options{DataRoute: "/pay"})(context.Background(), timer); err == nil {
		t.Error("a timer event was served as data")
	}
}

// TestDataAnswerBodies: the answer's body is the handler's JSON as a JSON
// value, text as a JSON string, nothing as null; a body that is not a JSON
// object reaches the handler as it is, for it to refuse.
func TestDataAnswerBodies(t *testing.T) {
	for _, tc := range []struct{ answer, want string }{
		{`{"order_id":"ord_1"}` + "\n", `{"order_id":"ord_1"}`},
		{"plain text", `"plain text"`},
		{"", `null`},
	} {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, tc.answer) })
		out, err := tencentscf.NewEventHandler(h, nil, tencentscf.Options{DataRoute: "/pay"})(context.Background(), []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		var a struct{ Body json.RawMessage }
		if err := json.Unmarshal(out, &a); err != nil || string(a.Body) != tc.want {
			t.Errorf("answer %q: body %s (%v), want %s", tc.answer, a.Body, err, tc.want)
		}
	}
	for _, data := range []string{`null`, `[1,2]`, `"x"`, `{"a":1,"userInfo":{}} trailing`} {
		var got []byte
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got, _ = io.ReadAll(r.Body) })
		if _, err := tencentscf.NewEventHandler(h, slog.New(slog.DiscardHandler), tencentscf.Options{DataRoute: "/pay"})(context.Background(), []byte(data)); err != nil {
			t.Fatal(err)
		}
		if string(got) != data {
			t.Errorf("data %s reached the handler as %s", data, got)
		}
	}
}
