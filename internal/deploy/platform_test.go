package deploy

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/rpc"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tencentyun/scf-go-lib/cloudfunction/messages"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/runtime/tencentscf"
	"github.com/payfn/payfn/shared/setup"
)

// Issue 13: payfn called the platform way. The CloudBase deployment
// (cloudbaserc.json, deploy/cloudbase/pack, the scf_bootstrap files), the
// Cloud Hosting container (Dockerfile, deploy/cloudbase/container) and the
// SCF event functions wx.cloud.callFunction invokes, each built for real and
// driven through its platform's protocol, cold and warm, in platform
// identity mode: the caller comes from the platform (the invocation's
// environment, the gateway's X-WX-* headers) and from nowhere else.

// cbFunction is one function of cloudbaserc.json.
type cbFunction struct {
	Name              string            `json:"name"`
	Type              string            `json:"type"`
	Runtime           string            `json:"runtime"`
	Handler           string            `json:"handler"`
	Timeout           int               `json:"timeout"`
	MemorySize        int               `json:"memorySize"`
	InstallDependency bool              `json:"installDependency"`
	EnvVariables      map[string]string `json:"envVariables"`
	Triggers          []struct {
		Name   string `json:"name"`
		Type   string `json:"type"`
		Config string `json:"config"`
	} `json:"triggers"`
}

type cbConfig struct {
	EnvID        string       `json:"envId"`
	FunctionRoot string       `json:"functionRoot"`
	Functions    []cbFunction `json:"functions"`
}

// loadCloudBase parses cloudbaserc.json strictly: a key this test does not
// know is a mistake to look at, not something to skip.
func loadCloudBase(t *testing.T) cbConfig {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "cloudbaserc.json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c cbConfig
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("cloudbaserc.json: %v", err)
	}
	return c
}

func (c cbConfig) fn(t *testing.T, name setup.Function) cbFunction {
	t.Helper()
	for _, f := range c.Functions {
		if f.Name == string(name) {
			return f
		}
	}
	t.Fatalf("cloudbaserc.json has no function %s", name)
	return cbFunction{}
}

// placeholder is how cloudbaserc.json takes a setting from the deploying
// machine's .env: "{{env.NAME}}".
func placeholder(name string) string { return "{{env." + name + "}}" }

// cbEnv is fn's environment as CloudBase gives it, the .env values pointed
// at this stack, and the secret values among them.
func (s *stack) cbEnv(t *testing.T, fn cbFunction) (env, secretValues []string) {
	t.Helper()
	_, secret := configVars(t)
	val := s.values(t)
	env = []string{"WECHAT_API_BASE_URL=" + s.sim.URL(), "WECHATPAY_BASE_URL=" + s.sim.URL(), "PATH=/usr/local/bin:/usr/bin:/bin"}
	for _, k := range slices.Sorted(maps.Keys(fn.EnvVariables)) {
		v := fn.EnvVariables[k]
		if v == placeholder(k) {
			var ok bool
			if v, ok = val[k]; !ok {
				t.Fatalf("no test value for %s", k)
			}
		}
		if secret[k] && v != "" {
			secretValues = append(secretValues, v)
		}
		env = append(env, k+"="+v)
	}
	return env, secretValues
}

// platformHeaders are the X-WX-* headers the platform's gateway sets for a
// mini-program user (lower-case, as a request request carries them).
func platformHeaders(openid, appid, source string) map[string]string {
	return map[string]string{"x-wx-openid": openid, "x-wx-appid": appid, "x-wx-source": source, "x-wx-env": "prod-1a2b3c"}
}

// callerEnv is a wx.cloud.callFunction invocation's environment naming a
// mini-program user, as CloudBase sets it.
func callerEnv(openid, appid, source string) map[string]string {
	return map[string]string{"WX_CONTEXT_KEYS": "WX_OPENID,WX_APPID,WX_UNIONID", "WX_OPENID": openid, "WX_APPID": appid,
		"WX_UNIONID": "", "TCB_SOURCE": source, "TCB_ENV": "prod-1a2b3c", "SCF_NAMESPACE": "prod-1a2b3c"}
}

// clientJSON is a client function's JSON request with extra headers.
func clientJSON(headers map[string]string, v any) request {
	req := jsonRequest("", v)
	maps.Copy(req.headers, headers)
	return req
}

// ---------------------------------------------------------------------------
// A web server on PORT: a CloudBase HTTP function or the container.

type webFn struct {
	name string
	base string
	proc *process
	n    int
}

// startWeb starts bin (a binary or an scf_bootstrap) with env and PORT, and
// waits for it to listen (a GET / it answers 405 or 404, before any function
// work: the first request sent is still the function's cold one).
func startWeb(t *testing.T, s *stack, name, bin string, env []string) *webFn {
	t.Helper()
	for attempt := 0; attempt < 3; attempt++ {
		port := freePort(t)
		p := start(t, bin, append(slices.Clone(env), "PORT="+port))
		base := "http://127.0.0.1:" + port
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if resp, err := http.Get(base + "/"); err == nil {
				resp.Body.Close()
				s.procs = append(s.procs, p)
				return &webFn{name: name, base: base, proc: p}
			}
			select {
			case <-p.exited:
				deadline = time.Time{}
			case <-time.After(20 * time.Millisecond):
			}
		}
		p.cmd.Process.Kill()
		<-p.exited
	}
	t.Fatalf("%s never listened on PORT", name)
	return nil
}

// send posts req to path and checks the answer as fleet.send does.
func (f *webFn) send(t *testing.T, path string, req request, status int, code string) reply {
	t.Helper()
	r, err := http.NewRequest(req.httpMethod(), f.base+path, bytes.NewReader(req.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range req.headers {
		r.Header.Set(k, v)
	}
	begin := time.Now()
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatalf("%s %s: %v", f.name, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]string{}
	for k := range resp.Header {
		h[k] = resp.Header.Get(k)
	}
	rep := reply{Status: resp.StatusCode, Headers: h, Body: body, took: time.Since(begin)}
	rep.want(t, status, code)
	if id := h[httpapi.HeaderRequestID]; id == "" {
		t.Errorf("%s %s: no X-Request-Id", f.name, path)
	}
	f.n++
	if f.n <= 2 {
		t.Logf("%s %s invoke: %s", f.name, []string{"cold", "warm"}[f.n-1], rep.took.Round(time.Millisecond))
	}
	return rep
}

// ---------------------------------------------------------------------------
// An SCF event function that wx.cloud.callFunction invokes with data.

// startSCFEnv starts bin as SCF's Go1 runtime does, with exactly env.
func startSCFEnv(t *testing.T, s *stack, bin, name string, env []string) *scfFn {
	t.Helper()
	for attempt := 0; attempt < 3; attempt++ {
		port := freePort(t)
		p := start(t, bin, append(slices.Clone(env), "_LAMBDA_SERVER_PORT="+port, "TENCENTCLOUD_RUNENV=SCF", "SCF_NAMESPACE=prod-1a2b3c"))
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if c, err := rpc.Dial("tcp", "localhost:"+port); err == nil {
				t.Cleanup(func() { c.Close() })
				s.procs = append(s.procs, p)
				return &scfFn{client: c, proc: p, name: name, timeout: 15 * time.Second}
			}
			select {
			case <-p.exited:
				deadline = time.Time{}
			case <-time.After(20 * time.Millisecond):
			}
		}
		p.cmd.Process.Kill()
		<-p.exited
	}
	t.Fatalf("%s never accepted net/rpc connections", name)
	return nil
}

// data invokes f with a wx.cloud.callFunction data event, the caller in the
// invocation's environment (none when env is nil), and checks the answer
// the mini-program would receive.
func (f *scfFn) data(t *testing.T, env map[string]string, v any, status int, code string) tencentscf.DataAnswer {
	t.Helper()
	f.seq++
	payload, _ := json.Marshal(v)
	req := &messages.InvokeRequest{Payload: payload, RequestId: fmt.Sprintf("scf-%s-%d", f.name, f.seq), FunctionName: f.name,
		Deadline: messages.InvokeRequest_Timestamp{Seconds: time.Now().Add(f.timeout).Unix()}}
	if env != nil {
		b, _ := json.Marshal(env)
		req.Environment = string(b)
	}
	var resp messages.InvokeResponse
	begin := time.Now()
	if err := f.client.Call("Function.Invoke", req, &resp); err != nil || resp.Error != nil {
		t.Fatalf("%s: Function.Invoke: %v, function error %+v", f.name, err, resp.Error)
	}
	if f.seq <= 2 {
		t.Logf("scf %s data event %s invoke: %s", f.name, []string{"cold", "warm"}[f.seq-1], time.Since(begin).Round(time.Millisecond))
	}
	var a tencentscf.DataAnswer
	if err := json.Unmarshal(resp.Payload, &a); err != nil {
		t.Fatalf("%s: not a data answer: %v\n%s", f.name, err, resp.Payload)
	}
	if a.RequestID != req.RequestId {
		t.Errorf("%s: answer names request %q, want the invocation's %q", f.name, a.RequestID, req.RequestId)
	}
	reply{Status: a.Status, Body: a.Body}.want(t, status, code)
	return a
}

// ---------------------------------------------------------------------------

// TestCloudBaseRCDeploysEachFunctionWithItsOwnVariables checks
// cloudbaserc.json against the code: every function is a folder under
// functions/ that shared/setup knows, an HTTP function ships an
// scf_bootstrap that starts its binary, a timer job runs on setup's
// schedule, the client functions run in platform mode, every variable is
// one the configuration reads, no value is written in the file (each comes
// from the deploying machine's .env), the set is enough to start the
// function, and every secret in it is needed.
func TestCloudBaseRCDeploysEachFunctionWithItsOwnVariables(t *testing.T) {
	c := loadCloudBase(t)
	if c.EnvID != placeholder("ENV_ID") || c.FunctionRoot != "./dist/cloudbase" {
		t.Errorf("envId %q, functionRoot %q; want {{env.ENV_ID}} and ./dist/cloudbase (deploy/cloudbase/pack's output)", c.EnvID, c.FunctionRoot)
	}
	want := []setup.Function{setup.CreateOrder, setup.Pay, setup.QueryOrder, setup.VerifyPayment, setup.VerifyRefund, setup.CloseExpired, setup.Reconcile}
	var got []setup.Function
	all, secret := configVars(t)
	folders := functions(t)
	for _, f := range c.Functions {
		got = append(got, setup.Function(f.Name))
		var fn function
		for _, g := range folders {
			if string(g.Name) == f.Name {
				fn = g
			}
		}
		if fn.Name == "" {
			t.Errorf("cloudbaserc.json deploys %s, which is no folder under functions/", f.Name)
			continue
		}
		if f.Runtime != "Go1" || f.Timeout < 15 || f.Timeout > 60 || f.InstallDependency {
			t.Errorf("%s: runtime %q, timeout %d, installDependency %v; want Go1, 15-60 s (above WECHATPAY_TIMEOUT), false", f.Name, f.Runtime, f.Timeout, f.InstallDependency)
		}
		switch {
		case fn.Path != "":
			if f.Type != "HTTP" || f.Handler != "" || len(f.Triggers) > 0 {
				t.Errorf("%s is an HTTP function: want type HTTP, no handler, no trigger", f.Name)
			}
			checkBootstrap(t, f.Name, fn.Folder)
		default:
			if f.Type != "" || f.Handler != fn.Folder || len(f.Triggers) != 1 || f.Triggers[0].Type != "timer" {
				t.Errorf("%s is a scheduled job: want an event function, handler %q, one timer trigger; got %+v", f.Name, fn.Folder, f)
				break
			}
			if want := cloudBaseCron(t, fn.Schedule); f.Triggers[0].Config != want {
				t.Errorf("%s timer %q, want %q (every %s)", f.Name, f.Triggers[0].Config, want, fn.Schedule)
			}
		}
		client := fn.Name == setup.CreateOrder || fn.Name == setup.Pay || fn.Name == setup.QueryOrder
		if client && f.EnvVariables["PAYFN_IDENTITY"] != "platform" {
			t.Errorf("%s: PAYFN_IDENTITY = %q, want platform", f.Name, f.EnvVariables["PAYFN_IDENTITY"])
		}
		names := slices.Sorted(maps.Keys(f.EnvVariables))
		for _, n := range names {
			v := f.EnvVariables[n]
			switch {
			case !all[n]:
				t.Errorf("%s sets %s, which shared/config does not read", f.Name, n)
			case n == "PAYFN_IDENTITY" && v == "platform":
			case v != placeholder(n):
				t.Errorf("%s: %s = %q; every value comes from the deploying machine's .env as %s", f.Name, n, v, placeholder(n))
			}
			if n == "PAYFN_SECRET_SOURCE" || n == "PAYFN_WEBHOOK_ALLOW_PRIVATE" {
				t.Errorf("%s sets %s", f.Name, n)
			}
		}
		if err := startsWith(t, fn, f.EnvVariables); err != nil {
			t.Errorf("%s cannot start with its variables %v: %v", f.Name, names, err)
			continue
		}
		for _, n := range names {
			if !secret[n] {
				continue
			}
			rest := maps.Clone(f.EnvVariables)
			delete(rest, n)
			if startsWith(t, fn, rest) == nil {
				t.Errorf("%s gets secret %s but starts without it", f.Name, n)
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("cloudbaserc.json deploys %v, want %v", got, want)
	}
}

// startsWith builds fn from vars with plausible values (the literal ones as
// written) the way its main does.
func startsWith(t *testing.T, fn function, vars map[string]string) error {
	t.Helper()
	env := map[string]string{}
	for n, v := range vars {
		if v == placeholder(n) {
			v = plausible(t, n)
		}
		env[n] = v
	}
	getenv := func(k string) string { return env[k] }
	if fn.Path != "" {
		_, err := setup.Handler(fn.Name, getenv, slog.New(slog.DiscardHandler))
		return err
	}
	_, err := setup.JobFor(fn.Name, getenv, slog.New(slog.DiscardHandler))
	return err
}

// checkBootstrap checks deploy/cloudbase/functions/<name>/scf_bootstrap as
// CloudBase requires it: executable, LF line endings, #!/bin/bash first,
// and it execs the function's binary beside it on PORT 9000 by default.
func checkBootstrap(t *testing.T, name, folder string) {
	t.Helper()
	path := filepath.Join(root, "deploy", "cloudbase", "functions", name, "scf_bootstrap")
	fi, err := os.Stat(path)
	if err != nil {
		t.Errorf("HTTP function %s has no scf_bootstrap: %v", name, err)
		return
	}
	b, _ := os.ReadFile(path)
	text := string(b)
	switch {
	case fi.Mode().Perm()&0o111 == 0:
		t.Errorf("%s: not executable (%v)", path, fi.Mode())
	case strings.Contains(text, "\r"):
		t.Errorf("%s: CR line endings; CloudBase wants LF", path)
	case !strings.HasPrefix(text, "#!/bin/bash\n"):
		t.Errorf("%s: first line must be #!/bin/bash", path)
	case !strings.Contains(text, `PORT="${PORT:-9000}"`) || !strings.Contains(text, `exec "$(dirname "$0")/`+folder+`"`):
		t.Errorf("%s: want it to default PORT to 9000 and exec %s beside it:\n%s", path, folder, text)
	}
}

// cloudBaseCron is a setup schedule as a CloudBase timer's seven-field cron
// (second minute hour day month weekday year).
func cloudBaseCron(t *testing.T, every string) string {
	t.Helper()
	_, five := scheduleFor(t, every)
	return "0 " + five + " *"
}

// pack runs deploy/cloudbase/pack for this machine into a new folder.
func pack(t *testing.T) string {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command("go", "run", "./deploy/cloudbase/pack", "-arch", goruntime.GOARCH, "-out", out)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("deploy/cloudbase/pack: %v\n%s", err, b)
	}
	return out
}

// TestCloudBaseHTTPFunctionsServeAPurchaseThroughScfBootstrap packs the
// CloudBase deployment, starts every HTTP function through its
// scf_bootstrap and every timer job as the Go1 runtime does, each with
// exactly its cloudbaserc.json variables, and drives a purchase through
// them cold and warm with the X-WX-* headers CloudBase's gateway sets. A
// call without them, from another mini-program or from no mini-program
// client, or with a session token instead, is refused; nothing a function
// writes or answers shows a secret.
func TestCloudBaseHTTPFunctionsServeAPurchaseThroughScfBootstrap(t *testing.T) {
	out := pack(t)
	s := newStack(t)
	c := loadCloudBase(t)
	var secrets []string
	web := map[setup.Function]*webFn{}
	for _, name := range []setup.Function{setup.CreateOrder, setup.Pay, setup.QueryOrder, setup.VerifyPayment, setup.VerifyRefund} {
		env, sv := s.cbEnv(t, c.fn(t, name))
		secrets = append(secrets, sv...)
		web[name] = startWeb(t, s, string(name), filepath.Join(out, string(name), "scf_bootstrap"), env)
	}
	buyer, other := "o-cloudbase-buyer", "o-cloudbase-other"
	asBuyer := platformHeaders(buyer, testAppID, "wx_client")
	route := func(fn setup.Function) string {
		for _, f := range setup.Functions {
			if f.Name == fn {
				return f.Path
			}
		}
		return ""
	}
	purchase(t, s, func(fn setup.Function, req request, status int, code string) reply {
		return web[fn].send(t, route(fn), req, status, code)
	}, asBuyer, platformHeaders(other, testAppID, "wx_client"))

	// The refund notification: the function answers, and refuses one WeChat
	// Pay did not sign, cold and warm.
	forgedRefund := forged(request{headers: map[string]string{"content-type": "application/json", "wechatpay-serial": "PUB_KEY_ID_0114232134912410000000000000", "wechatpay-timestamp": fmt.Sprint(time.Now().Unix()), "wechatpay-nonce": "n", "wechatpay-signature-type": "WECHATPAY2-SHA256-RSA2048"}, body: []byte(`{"id":"x"}`)})
	web[setup.VerifyRefund].send(t, route(setup.VerifyRefund), forgedRefund, 401, "INVALID_NOTIFICATION")
	web[setup.VerifyRefund].send(t, route(setup.VerifyRefund), forgedRefund, 401, "INVALID_NOTIFICATION")

	// The timer jobs, as Go1 event functions.
	for _, name := range []setup.Function{setup.CloseExpired, setup.Reconcile} {
		f := c.fn(t, name)
		env, sv := s.cbEnv(t, f)
		secrets = append(secrets, sv...)
		job := startSCFEnv(t, s, filepath.Join(out, f.Name, f.Handler), f.Name, env)
		for range 2 {
			var rep app.JobReport
			if err := json.Unmarshal(job.trigger(t), &rep); err != nil || rep.Job != string(name) {
				t.Fatalf("%s answered %+v (%v), want its job report", name, rep, err)
			}
		}
	}
	var logs strings.Builder
	for _, p := range s.procs {
		logs.WriteString(p.output.String())
	}
	if n := leaks(secrets, logs.String()); n > 0 {
		t.Errorf("%d secret values appear in the functions' output", n)
	}
}

// purchase drives a purchase through the client functions and the payment
// notification with send, the buyer named the platform's way by asBuyer
// (headers) and another buyer by asOther, and checks every refusal.
func purchase(t *testing.T, s *stack, send func(fn setup.Function, req request, status int, code string) reply, asBuyer, asOther map[string]string) {
	t.Helper()
	item := map[string]any{"product_id": "latte", "quantity": 2, "request_id": "platform-req-1"}
	orderID := send(setup.CreateOrder, clientJSON(asBuyer, item), 201, "").field(t, "order_id")
	if again := send(setup.CreateOrder, clientJSON(asBuyer, item), 200, "").field(t, "order_id"); again != orderID {
		t.Fatalf("a repeated request_id made order %s, want %s", again, orderID)
	}
	if o, err := s.store.Order(context.Background(), orderID); err != nil || o.Owner != asBuyer["x-wx-openid"] {
		t.Fatalf("order %s belongs to %q (%v), want the platform's openid", orderID, o.Owner, err)
	}
	// Refused: no platform identity; a session token instead (a token from
	// any secret means nothing here); another mini-program; not a
	// mini-program client.
	fresh := map[string]any{"product_id": "latte", "quantity": 1, "request_id": "platform-req-2"}
	send(setup.CreateOrder, clientJSON(nil, fresh), 401, "UNAUTHENTICATED")
	send(setup.CreateOrder, clientJSON(map[string]string{"authorization": "Bearer v1.eyJzdWIiOiJvLTEifQ.c2ln"}, fresh), 401, "UNAUTHENTICATED")
	foreign := maps.Clone(asBuyer)
	foreign["x-wx-appid"] = testExtraAppID
	send(setup.CreateOrder, clientJSON(foreign, fresh), 401, "UNAUTHENTICATED")
	notClient := maps.Clone(asBuyer)
	notClient["x-wx-source"] = "wx_http"
	send(setup.CreateOrder, clientJSON(notClient, fresh), 401, "UNAUTHENTICATED")

	byID := map[string]string{"order_id": orderID}
	if v := decode[app.OrderView](t, send(setup.QueryOrder, clientJSON(asBuyer, byID), 200, "")); v.Status != order.StatusNotPay || v.TotalFen != 5600 {
		t.Fatalf("queryOrder answered %+v, want the unpaid order of 5600 fen", v)
	}
	send(setup.QueryOrder, clientJSON(asOther, byID), 404, "ORDER_NOT_FOUND")
	send(setup.QueryOrder, clientJSON(nil, byID), 401, "UNAUTHENTICATED")

	res := decode[app.PayResult](t, send(setup.Pay, clientJSON(asBuyer, byID), 200, ""))
	prepayID, ok := strings.CutPrefix(res.Payment.Package, "prepay_id=")
	if !ok || res.Payment.AppID != testAppID || res.Payment.PaySign == "" {
		t.Fatalf("pay answered %+v, want wx.requestPayment parameters under %s", res, testAppID)
	}
	send(setup.Pay, clientJSON(asOther, byID), 404, "ORDER_NOT_FOUND")
	paid, err := s.sim.Pay(context.Background(), prepayID, paysim.PayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if paid.OpenID != asBuyer["x-wx-openid"] {
		t.Fatalf("the prepay was made for payer %q, want the platform's openid", paid.OpenID)
	}
	note := s.delivery(t, httpapi.PathVerifyPayment)
	send(setup.VerifyPayment, note, 200, "SUCCESS")
	send(setup.VerifyPayment, note, 200, "SUCCESS")
	s.wantPaid(t, orderID, paid.TransactionID)
	if v := decode[app.OrderView](t, send(setup.QueryOrder, clientJSON(asBuyer, byID), 200, "")); v.Status != order.StatusPaid {
		t.Fatalf("queryOrder after payment answered %s, want PAID", v.Status)
	}
}

// TestSCFEventFunctionsTakeTheCallerFromEachInvocation starts createOrder,
// queryOrder and pay from the SCF package as CloudBase event functions in
// platform mode and invokes each warm process over net/rpc the way
// wx.cloud.callFunction does: the data as the event, the caller in the
// invocation's environment. Buyer A's call, then a call with no caller on
// the same process, must give 401 and never A's order; the answers are the
// {status, request_id, body} the client library reads. In token mode the
// same invocations choose nothing.
func TestSCFEventFunctionsTakeTheCallerFromEachInvocation(t *testing.T) {
	dist := built(t)
	s := newStack(t)
	c := loadCloudBase(t)
	bins := extractSCF(t, dist)
	fns := map[setup.Function]*scfFn{}
	for _, name := range []setup.Function{setup.CreateOrder, setup.QueryOrder, setup.Pay} {
		env, _ := s.cbEnv(t, c.fn(t, name))
		fns[name] = startSCFEnv(t, s, bins[strings.ToLower(string(name))], string(name), env)
	}
	a, b := callerEnv("o-scf-buyer-a", testAppID, "wx_client"), callerEnv("o-scf-buyer-b", testAppID, "wx_client")

	item := map[string]any{"product_id": "latte", "quantity": 1, "request_id": "scf-req-1", "userInfo": map[string]string{"openId": "o-forged", "appId": testAppID}}
	created := fns[setup.CreateOrder].data(t, a, item, 201, "")
	var o order.Order
	if err := json.Unmarshal(created.Body, &o); err != nil {
		t.Fatal(err)
	}
	if stored, err := s.store.Order(context.Background(), o.ID); err != nil || stored.Owner != "o-scf-buyer-a" {
		t.Fatalf("order %s belongs to %q (%v), want buyer A from the invocation (never the event's userInfo)", o.ID, stored.Owner, err)
	}
	fns[setup.CreateOrder].data(t, nil, map[string]any{"product_id": "latte", "quantity": 1, "request_id": "scf-req-2"}, 401, "UNAUTHENTICATED")

	byID := map[string]string{"order_id": o.ID}
	fns[setup.QueryOrder].data(t, a, byID, 200, "")
	// The same warm process, next invoked with no caller, or only with the
	// caller's keys unlisted in WX_CONTEXT_KEYS: 401, never A's order.
	fns[setup.QueryOrder].data(t, nil, byID, 401, "UNAUTHENTICATED")
	unlisted := maps.Clone(a)
	unlisted["WX_CONTEXT_KEYS"] = ""
	fns[setup.QueryOrder].data(t, unlisted, byID, 401, "UNAUTHENTICATED")
	fns[setup.QueryOrder].data(t, b, byID, 404, "ORDER_NOT_FOUND")
	relayed := maps.Clone(a)
	relayed["TCB_SOURCE"] = "wx_client,scf"
	fns[setup.QueryOrder].data(t, relayed, byID, 401, "UNAUTHENTICATED")

	paid := fns[setup.Pay].data(t, a, byID, 200, "")
	var res app.PayResult
	if err := json.Unmarshal(paid.Body, &res); err != nil || !strings.HasPrefix(res.Payment.Package, "prepay_id=") {
		t.Fatalf("pay answered %s (%v), want wx.requestPayment parameters", paid.Body, err)
	}
	fns[setup.Pay].data(t, map[string]string{"SCF_NAMESPACE": "prod-1a2b3c"}, byID, 401, "UNAUTHENTICATED")

	// An API gateway event to the same platform-mode process has no caller,
	// whatever X-WX headers it carries.
	fns[setup.CreateOrder].invoke(t, clientJSON(platformHeaders("o-scf-buyer-a", testAppID, "wx_client"), item)).want(t, 401, "UNAUTHENTICATED")

	// Token mode (serverless.yml's configuration): the invocation's caller
	// chooses nothing; only a session token does.
	token := startSCF(t, s, bins["createorder"], string(setup.CreateOrder), slsVars(t, "createorder"))
	token.data(t, a, map[string]any{"product_id": "latte", "quantity": 1, "request_id": "scf-req-3"}, 401, "UNAUTHENTICATED")
	token.invoke(t, clientJSON(platformHeaders("o-scf-buyer-a", testAppID, "wx_client"), item)).want(t, 401, "UNAUTHENTICATED")
}

// extractSCF unpacks the SCF package serverless.yml deploys and returns
// its executables by name.
func extractSCF(t *testing.T, dist string) map[string]string {
	t.Helper()
	zr, err := zip.OpenReader(filepath.Join(dist, "scf", goruntime.GOARCH, "payfn.zip"))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	dir := t.TempDir()
	bins := map[string]string{}
	for _, zf := range zr.File {
		bins[zf.Name] = extract(t, zf, dir)
	}
	return bins
}

// dockerfile is the go build line of the Dockerfile's build stage and
// the settings of its final stage.
type dockerfile struct {
	build   []string // the go build command's arguments
	env     map[string]string
	expose  string
	user    string
	final   string // the final stage's FROM
	entry   string
	copies  []string
	buildOK bool
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	d := dockerfile{env: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, rest, _ := strings.Cut(line, " ")
		switch strings.ToUpper(instr) {
		case "FROM":
			d.final = rest
		case "RUN":
			if args, ok := strings.CutPrefix(rest, "go build "); ok {
				d.build = strings.Fields(strings.ReplaceAll(args, "'", ""))
				d.buildOK = true
			}
		case "ENV":
			for _, kv := range strings.Fields(rest) {
				k, v, _ := strings.Cut(kv, "=")
				d.env[k] = v
			}
		case "EXPOSE":
			d.expose = rest
		case "USER":
			d.user = rest
		case "ENTRYPOINT":
			d.entry = rest
		case "COPY":
			d.copies = append(d.copies, rest)
		}
	}
	return d
}

// TestContainerServesEveryClientFunctionOnPORT builds the container binary
// exactly as the Dockerfile does, starts it with the union of the client
// and notification functions' variables on PORT, and drives a purchase
// through it with the X-WX-* headers Cloud Hosting sets; paths it does not
// serve answer 404. In token mode the same binary also serves login, and
// the headers choose nothing.
func TestContainerServesEveryClientFunctionOnPORT(t *testing.T) {
	d := readDockerfile(t)
	if !d.buildOK || d.final != "scratch" || d.entry != `["/payfn"]` || d.env["PORT"] == "" || d.expose != d.env["PORT"] ||
		d.user == "" || strings.HasPrefix(d.user, "0") || strings.HasPrefix(d.user, "root") {
		t.Fatalf("Dockerfile: build %v, final stage FROM %q, ENTRYPOINT %s, PORT %q, EXPOSE %q, USER %q; want a go build, a scratch image running /payfn as a non-root user on its exposed PORT",
			d.build, d.final, d.entry, d.env["PORT"], d.expose, d.user)
	}
	if !slices.ContainsFunc(d.copies, func(c string) bool { return strings.Contains(c, "ca-certificates.crt") }) {
		t.Errorf("the image has no TLS roots: WeChat Pay and MongoDB could not be reached")
	}
	args := slices.Clone(d.build)
	i := slices.Index(args, "-o")
	if i < 0 || i+2 >= len(args) || args[len(args)-1] != "./deploy/cloudbase/container" ||
		!slices.Contains(args, "lambda.norpc") || !slices.Contains(args, "-trimpath") || !slices.Contains(args, "-ldflags=-s") {
		t.Fatalf("the Dockerfile builds %v; want ./deploy/cloudbase/container with the functions' flags", d.build)
	}
	bin := filepath.Join(t.TempDir(), "payfn")
	args[i+1] = bin
	// Rejoin -ldflags=-s -w, split by the field reading above.
	cmd := exec.Command("go", append([]string{"build"}, joinLdflags(args)...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", args, err, b)
	}
	// The container links no test-only package, as no function may.
	list := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "./deploy/cloudbase/container")
	list.Dir = root
	deps, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(deps)) {
		if strings.Contains(p, "FerretDB") || strings.HasSuffix(p, "shared/paysim") || strings.HasSuffix(p, "shared/alipaysim") || strings.Contains(p, "shared/store/embedded") || strings.Contains(p, "storetest") {
			t.Errorf("the container links %s", p)
		}
	}

	s := newStack(t)
	c := loadCloudBase(t)
	vars := map[string]string{}
	for _, name := range []setup.Function{setup.CreateOrder, setup.Pay, setup.QueryOrder, setup.VerifyPayment, setup.VerifyRefund} {
		maps.Copy(vars, c.fn(t, name).EnvVariables)
	}
	env, secrets := s.cbEnv(t, cbFunction{EnvVariables: vars})
	box := startWeb(t, s, "container", bin, env)
	purchase(t, s, func(fn setup.Function, req request, status int, code string) reply {
		for _, f := range setup.Functions {
			if f.Name == fn {
				return box.send(t, f.Path, req, status, code)
			}
		}
		t.Fatalf("no route for %s", fn)
		return reply{}
	}, platformHeaders("o-container-buyer", testAppID, "wx_client"), platformHeaders("o-container-other", testAppID, "wx_client"))
	for _, path := range []string{httpapi.PathLogin, httpapi.PathRefund, "/"} {
		box.send(t, path, jsonRequest("", map[string]string{}), 404, "NOT_FOUND")
	}

	// Token mode: login is served, and the headers mean nothing.
	tokenEnv := append(slices.Clone(env), "PAYFN_IDENTITY=token", "WECHAT_APPSECRET=app-secret", "PAYFN_SESSION_SECRET="+strings.Repeat("s", 32))
	tb := startWeb(t, s, "container (token mode)", bin, tokenEnv)
	tok := tb.send(t, httpapi.PathLogin, jsonRequest("", map[string]string{"code": s.sim.NewLoginCode("o-container-token")}), 200, "").field(t, "token")
	item := map[string]any{"product_id": "latte", "quantity": 1, "request_id": "container-token-1"}
	tb.send(t, httpapi.PathCreateOrder, clientJSON(platformHeaders("o-container-token", testAppID, "wx_client"), item), 401, "UNAUTHENTICATED")
	tb.send(t, httpapi.PathCreateOrder, jsonRequest(tok, item), 201, "")

	var logs strings.Builder
	for _, p := range s.procs {
		logs.WriteString(p.output.String())
	}
	if n := leaks(secrets, logs.String()); n > 0 {
		t.Errorf("%d secret values appear in the container's output", n)
	}
}

// joinLdflags puts "-ldflags=-s" and "-w" back together as one argument.
func joinLdflags(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == "-ldflags=-s" && i+1 < len(args) && args[i+1] == "-w" {
			out = append(out, "-ldflags=-s -w")
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}
