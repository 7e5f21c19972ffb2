// Package miniprogram_test runs the mini-program client library's tests
// (test/*.test.js, under Node's own test runner) against the real local
// stack, through each transport the library offers:
//
//   - wx.request: the local stack of `go run ./scripts/dev` (token mode:
//     wx.login, POST /login, the session token);
//   - wx.cloud.callContainer and wx.cloud.callHTTPFunction: the same store
//     and simulator served in platform identity mode (PAYFN_IDENTITY=platform)
//     through the httpserver adapter a Cloud Hosting container and a
//     CloudBase HTTP function run, the stand-in wx playing the platform's
//     gateway by setting the X-WX-* headers;
//   - wx.cloud.callFunction: that platform-mode stack behind the real
//     CloudBase event adapter (tencentscf.NewEventHandler): an HTTP endpoint
//     per function turns a call into one invocation, with the data as the
//     event and the caller in the invocation's environment, and answers
//     the function's {status, request_id, body} as the function returned it.
//
// The buyer's WeChat is the stand-in wx object (testwx/wx.js): wx.login asks
// the simulator for a code and wx.requestPayment pays (or cancels) through
// the simulator's control API, as a buyer's tap would.
package miniprogram_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tencentyun/scf-go-lib/functioncontext"

	"github.com/payfn/payfn/scripts/dev/devstack"
	"github.com/payfn/payfn/shared/config"
	"github.com/payfn/payfn/shared/identity"
	"github.com/payfn/payfn/shared/runtime/httpserver"
	"github.com/payfn/payfn/shared/runtime/tencentscf"
	"github.com/payfn/payfn/shared/setup"
)

// cloudEnv is the CloudBase environment the stand-in platform names.
const cloudEnv = "payfn-test-1a2b3c"

func TestMiniProgramClientUnderNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not on PATH: the mini-program client (client/miniprogram) is tested under Node's " +
			"test runner (node --test, Node 18 or later, no npm packages). Install Node.js (Debian: apt-get install nodejs; " +
			".ci/run installs it in CI)")
	}
	logger := slog.New(slog.DiscardHandler)
	tokenStack, err := devstack.Start(context.Background(), devstack.Options{
		Addr: "127.0.0.1:0", SimAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		SimRetrySchedule: []time.Duration{50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tokenStack.Close() })

	// The platform deployment: the same store and simulator (whose
	// notifications still reach verifyPayment on the local stack), its
	// client functions in platform identity mode.
	cfg := tokenStack.Config
	cfg.Identity = config.IdentityPlatform
	platform, err := setup.NewStack(cfg, setup.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { platform.Close(context.Background()) })
	container := httptest.NewServer(httpserver.NewHandler(platform.Handler, logger))
	t.Cleanup(container.Close)
	functions := httptest.NewServer(eventFunctions(t, platform.Handler, cfg.AppID, logger))
	t.Cleanup(functions.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec", "test/")
	cmd.Env = append(os.Environ(),
		"NO_COLOR=1",
		"PAYFN_TEST_HTTP_URL="+tokenStack.URL,
		"PAYFN_TEST_SIM_URL="+tokenStack.SimURL,
		"PAYFN_TEST_CONTAINER_URL="+container.URL,
		"PAYFN_TEST_FUNCTIONS_URL="+functions.URL,
		"PAYFN_TEST_APPID="+cfg.AppID,
		"PAYFN_TEST_CLOUD_ENV="+cloudEnv,
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test test/: %v\n%s", err, out)
	}
	t.Logf("node --test test/:\n%s", out)
}

// eventFunctions serves POST /{name} for each client function as
// wx.cloud.callFunction({name, data}) reaches a CloudBase event function:
// the body is the data event; X-Test-Openid names the signed-in buyer
// (absent: the call carries no user), X-Test-Source the call's source
// (default wx_client) and X-Test-Appid its mini-program (default appID). The invocation's environment holds the caller as
// CloudBase puts it (WX_CONTEXT_KEYS, WX_OPENID, WX_APPID, TCB_SOURCE,
// TCB_ENV), and the function's answer is written as it returned it. An
// invocation that fails answers 502 {"errMsg"}, as callFunction's fail does.
func eventFunctions(t *testing.T, h http.Handler, appID string, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	var seq atomic.Int64
	for _, fn := range []setup.Function{setup.CreateOrder, setup.Pay, setup.QueryOrder} {
		invoke := tencentscf.NewEventHandler(h, logger, tencentscf.Options{DataRoute: routeOf(t, fn)})
		mux.HandleFunc("POST /"+string(fn), func(w http.ResponseWriter, r *http.Request) {
			data, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			env := map[string]string{"SCF_NAMESPACE": cloudEnv, "TCB_ENV": cloudEnv, "TENCENTCLOUD_RUNENV": "SCF"}
			if openid := r.Header.Get("X-Test-Openid"); openid != "" {
				source := r.Header.Get("X-Test-Source")
				if source == "" {
					source = "wx_client"
				}
				env[identity.EnvContextKeys] = "WX_OPENID,WX_APPID,WX_UNIONID,WX_CLIENTIP"
				caller := appID
				if a := r.Header.Get("X-Test-Appid"); a != "" {
					caller = a
				}
				env[identity.EnvOpenID], env[identity.EnvAppID], env[identity.EnvSource] = openid, caller, source
				env["WX_UNIONID"], env["WX_CLIENTIP"] = "", "127.0.0.1"
			}
			fc := &functioncontext.FunctionContext{
				RequestID: fmt.Sprintf("scf-%d-%d", time.Now().UnixNano(), seq.Add(1)), Namespace: cloudEnv,
				FunctionName: string(fn), TimeLimitInMs: 15000, Environment: env,
			}
			ictx, cancel := context.WithTimeout(functioncontext.NewContext(r.Context(), fc), 15*time.Second)
			defer cancel()
			out, err := invoke(ictx, data)
			w.Header().Set("Content-Type", "application/json")
			if err != nil {
				w.WriteHeader(http.StatusBadGateway)
				json.NewEncoder(w).Encode(map[string]string{"errMsg": "cloud.callFunction:fail " + err.Error()})
				return
			}
			w.Write(out)
		})
	}
	return mux
}

// routeOf is the route a client function serves (and takes its data events on).
func routeOf(t *testing.T, fn setup.Function) string {
	for _, f := range setup.Functions {
		if f.Name == fn {
			return f.Path
		}
	}
	t.Fatalf("no route for %s", fn)
	return ""
}
