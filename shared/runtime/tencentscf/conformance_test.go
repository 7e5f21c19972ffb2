package tencentscf_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"testing"

	"github.com/tencentyun/scf-go-lib/functioncontext"

	"github.com/payfn/payfn/shared/identity"
	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/runtime/internal/adaptertest"
	"github.com/payfn/payfn/shared/runtime/tencentscf"
)

// invocation is the function context SCF gives one invocation: its id and,
// for a wx.cloud.callFunction, the caller in its environment.
func invocation(seq int, caller *identity.PlatformCaller) context.Context {
	fc := &functioncontext.FunctionContext{RequestID: fmt.Sprintf("scf-invoke-%d", seq), Environment: map[string]string{
		"SCF_NAMESPACE": "prod-1a2b3c", "TENCENTCLOUD_RUNENV": "SCF",
	}}
	if caller != nil {
		fc.Environment = callerEnvironment(*caller)
	}
	return functioncontext.NewContext(context.Background(), fc)
}

// callerEnvironment is a callFunction invocation's environment naming c, as
// CloudBase sets it (the keys wx-server-sdk's getWXContext reads).
func callerEnvironment(c identity.PlatformCaller) map[string]string {
	return map[string]string{
		"WX_CONTEXT_KEYS": "WX_OPENID,WX_APPID,WX_UNIONID,WX_CLIENTIP",
		"WX_OPENID":       c.OpenID, "WX_APPID": c.AppID, "WX_UNIONID": c.UnionID, "WX_CLIENTIP": "203.0.113.7",
		"TCB_SOURCE": c.Source, "TCB_ENV": c.Env, "SCF_NAMESPACE": c.Env, "TENCENTCLOUD_RUNENV": "SCF",
	}
}

// TestAdapterConformance runs the adapters' shared table through both SCF
// events an HTTP function takes: the API gateway trigger's, and the data
// event of wx.cloud.callFunction with the caller in the invocation's
// environment.
func TestAdapterConformance(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	seq := 0
	t.Run("api gateway", func(t *testing.T) {
		adaptertest.RunConformance(t, adaptertest.Transport{
			Name: "scf api gateway", RawBody: true, Headers: true,
			Serve: func(t *testing.T, h http.Handler, req adaptertest.Request) adaptertest.Answer {
				seq++
				body, b64 := adaptertest.GatewayBody(req.Body)
				event, _ := json.Marshal(map[string]any{
					"requestContext": map[string]any{"serviceId": "service-f94sy04v", "path": req.Path, "httpMethod": "POST",
						"requestId": fmt.Sprintf("apigw-%d", seq), "sourceIp": "203.0.113.7", "stage": "release"},
					"headers": adaptertest.GatewayHeaders(req.Header), "body": body, "isBase64Encoded": b64,
					"path": req.Path, "httpMethod": "POST", "queryString": map[string]any{},
				})
				// A gateway invocation whose environment names a caller
				// still has none: only a data event's caller counts.
				buyer := adaptertest.Buyer
				payload, err := tencentscf.NewEventHandler(h, logger, tencentscf.Options{DataRoute: httpapi.PathCreateOrder})(invocation(seq, &buyer), event)
				if err != nil {
					t.Fatalf("invocation error: %v", err)
				}
				var resp tencentscf.Response
				if err := json.Unmarshal(payload, &resp); err != nil {
					t.Fatalf("not an integration response: %v\n%s", err, payload)
				}
				return adaptertest.GatewayAnswer(t, resp.StatusCode, resp.Headers, resp.Body, resp.IsBase64Encoded)
			},
		})
	})
	t.Run("callFunction data", func(t *testing.T) {
		adaptertest.RunConformance(t, adaptertest.Transport{
			Name: "scf data event", Platform: true, Route: httpapi.PathCreateOrder,
			Serve: func(t *testing.T, h http.Handler, req adaptertest.Request) adaptertest.Answer {
				seq++
				payload, err := tencentscf.NewEventHandler(h, logger, tencentscf.Options{DataRoute: httpapi.PathCreateOrder})(invocation(seq, req.Caller), req.Body)
				if err != nil {
					t.Fatalf("invocation error: %v", err)
				}
				var a tencentscf.DataAnswer
				if err := json.Unmarshal(payload, &a); err != nil {
					t.Fatalf("not a data answer: %v\n%s", err, payload)
				}
				if want := fmt.Sprintf("scf-invoke-%d", seq); a.RequestID != want {
					t.Errorf("request_id = %q, want the invocation's %q", a.RequestID, want)
				}
				return adaptertest.Answer{Status: a.Status, RequestID: a.RequestID, Body: a.Body}
			},
		})
	})
}
