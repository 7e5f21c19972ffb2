package deploy

import (
	"archive/zip"
	"bytes"
	"context"
	"debug/elf"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/rpc"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tencentyun/scf-go-lib/cloudfunction/messages"

	"github.com/payfn/payfn/shared/alipaysim"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/secrets/secretstest"
	"github.com/payfn/payfn/shared/store"
	"github.com/payfn/payfn/shared/store/storetest"
)

// dist is where scripts/build writes, once per test binary (building every
// function costs seconds; every test that runs a binary shares the result).
var (
	distOnce sync.Once
	distDir  string
	distErr  error
	distLog  []byte
)

func TestMain(m *testing.M) {
	code := m.Run()
	if distDir != "" {
		os.RemoveAll(distDir)
	}
	os.Exit(code)
}

// built runs the real build script for the host architecture (the binaries
// must run here) and both platforms, and returns its output folder.
func built(t *testing.T) string {
	t.Helper()
	distOnce.Do(func() {
		distDir, distErr = os.MkdirTemp("", "payfn-dist-")
		if distErr != nil {
			return
		}
		cmd := exec.Command("go", "run", "./scripts/build", "-platform", "aws,scf", "-arch", goruntime.GOARCH, "-out", distDir)
		cmd.Dir = root
		distLog, distErr = cmd.CombinedOutput()
	})
	if distErr != nil {
		t.Fatalf("scripts/build: %v\n%s", distErr, distLog)
	}
	return distDir
}

// unzipOnly extracts the archive's single entry into dir, checks it is an
// executable file at the archive root named want, and returns its path.
func unzipOnly(t *testing.T, archive, want, dir string) string {
	t.Helper()
	zr, err := zip.OpenReader(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if len(zr.File) != 1 || zr.File[0].Name != want {
		var names []string
		for _, f := range zr.File {
			names = append(names, f.Name)
		}
		t.Fatalf("%s holds %v, want exactly [%s]", filepath.Base(archive), names, want)
	}
	return extract(t, zr.File[0], dir)
}

func extract(t *testing.T, f *zip.File, dir string) string {
	t.Helper()
	if f.Mode()&0o111 == 0 {
		t.Fatalf("%s is stored without the exec bit (mode %v); the runtime could not start it", f.Name, f.Mode())
	}
	rc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	path := filepath.Join(dir, f.Name)
	out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, f.Mode().Perm())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, rc); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkStatic fails unless path is a Linux ELF for machine with no dynamic
// loader and no shared libraries: provided.al2023 and SCF start it as is.
func checkStatic(t *testing.T, path string, machine elf.Machine) int64 {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s is not an ELF binary: %v", path, err)
	}
	defer f.Close()
	if f.Machine != machine || f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		t.Errorf("%s: machine %v, want %v", path, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s is dynamically linked (%v); build with CGO_ENABLED=0", path, p.Type)
		}
	}
	if s := f.Section(".debug_info"); s != nil {
		t.Errorf("%s carries DWARF; build with -ldflags='-s -w'", path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

var hostMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

func TestBuildScriptZipsStaticBinariesAsEachPlatformExpects(t *testing.T) {
	dist := built(t)
	arch := goruntime.GOARCH
	tmp := t.TempDir()
	var bundle []string
	for _, fn := range functions(t) {
		aws := unzipOnly(t, filepath.Join(dist, "aws", arch, fn.Folder+".zip"), "bootstrap", t.TempDir())
		size := checkStatic(t, aws, hostMachine[arch])
		scf := unzipOnly(t, filepath.Join(dist, "scf", arch, fn.Folder+".zip"), fn.Folder, tmp)
		checkStatic(t, scf, hostMachine[arch])
		t.Logf("%s: %.1f MiB linux/%s", fn.Folder, float64(size)/(1<<20), arch)
		bundle = append(bundle, fn.Folder)
	}
	// serverless.yml deploys the bundle: every executable at its root.
	zr, err := zip.OpenReader(filepath.Join(dist, "scf", arch, "payfn.zip"))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		if f.Mode()&0o111 == 0 {
			t.Errorf("payfn.zip: %s is not executable", f.Name)
		}
	}
	slices.Sort(names)
	slices.Sort(bundle)
	if !slices.Equal(names, bundle) {
		t.Errorf("payfn.zip holds %v, want %v", names, bundle)
	}
}

// TestBuildScriptCrossCompilesForArm64 builds one function for arm64, the
// architecture template.yaml deploys, and checks the binary's machine. One
// function only: a full second architecture would double the build time.
func TestBuildScriptCrossCompilesForArm64(t *testing.T) {
	if goruntime.GOARCH == "arm64" {
		// The host build already is arm64; cross-compile the other way so
		// the test still proves cross-compilation.
		crossBuild(t, "amd64", elf.EM_X86_64)
		return
	}
	crossBuild(t, "arm64", elf.EM_AARCH64)
}

func crossBuild(t *testing.T, arch string, machine elf.Machine) {
	out := t.TempDir()
	cmd := exec.Command("go", "run", "./scripts/build", "-platform", "aws", "-arch", arch, "-functions", "login", "-out", out)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build -arch %s: %v\n%s", arch, err, b)
	}
	bin := unzipOnly(t, filepath.Join(out, "aws", arch, "login.zip"), "bootstrap", t.TempDir())
	size := checkStatic(t, bin, machine)
	t.Logf("login: %.1f MiB linux/%s", float64(size)/(1<<20), arch)
}

// stack is what the function processes talk to: the embedded store (seeded)
// and the WeChat Pay simulator on loopback.
type stack struct {
	sim    *paysim.Server
	alipay *alipaysim.Server // Alipay, for alipayNotify and the Alipay channels
	store  *store.Store
	uri    string
	db     string
	// delivered holds the notifications the simulator sent to the notify
	// URLs, as the gateway received them; the test hands each to the
	// function it is for.
	delivered chan request

	// The secret stores the functions fetch from (secrets_test.go), every
	// secret value handed out, and every process started, whose output
	// must show none of them.
	aws     *secretstest.AWS
	ssm     *secretstest.Tencent
	secrets []string
	procs   []*process
}

const (
	testAlipayAppID = "2021000000000042"
	testAppID       = "wx1234567890abcdef"
	testMchID       = "1900000109"
	testAPIv3       = "0123456789abcdef0123456789abcdef"
	testSerial      = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
)

// testAdminKey is the merchant's admin key the stack gives every function.
var testAdminKey = strings.Repeat("a", 32)

// testServiceKey is service mode's key, in the secret of every function
// that needs it or records events; testExtraAppID a second appid bound to
// the merchant.
var testServiceKey, testExtraAppID = "service-key-service-key-service-key", "wxfedcba9876543210"

func newStack(t *testing.T) *stack {
	t.Helper()
	key, _ := merchant(t)
	s := &stack{delivered: make(chan request, 16)}
	sim, err := paysim.New(paysim.Options{
		MchID: testMchID, AppID: testAppID, AppSecret: "app-secret", APIv3Key: testAPIv3,
		MerchantSerial: testSerial, MerchantPublicKey: &key.PublicKey,
		// The notify URLs name a public host; the gateway in front of the
		// functions is this test, so deliveries stop here instead.
		HTTPClient: &http.Client{Transport: gateway(s.delivered)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	uri, db := storetest.URI(t)
	st, err := store.New(store.Options{URI: uri, Database: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	if err := st.UpsertProducts(context.Background(), order.Product{ID: "latte", Title: "Latte", PriceFen: 2800, Active: true}); err != nil {
		t.Fatal(err)
	}
	// Alipay: its notifications, like WeChat Pay's, stop at this test's
	// gateway, which acknowledges them as alipayNotify would.
	ali, err := alipaysim.New(alipaysim.Options{AppID: testAlipayAppID, HTTPClient: &http.Client{Transport: alipayGateway(s.delivered)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ali.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ali.Close() })
	s.alipay = ali
	s.sim, s.store, s.uri, s.db = sim, st, uri, db
	s.aws, s.ssm = secretstest.NewAWS(t, "ap-east-1"), secretstest.NewTencent(t, "ap-guangzhou")
	return s
}

// gateway receives the simulator's notification deliveries: it keeps each
// as the request a function will get and acknowledges it, so the simulator
// does not retry. A full queue answers 503, which the simulator retries.
type gateway chan request

func (g gateway) RoundTrip(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("gateway: read notification: %w", err)
	}
	h := map[string]string{}
	for k := range r.Header {
		h[strings.ToLower(k)] = r.Header.Get(k)
	}
	status := http.StatusOK
	select {
	case g <- request{path: r.URL.Path, headers: h, body: body, b64: true}:
	default:
		status = http.StatusServiceUnavailable
	}
	return &http.Response{StatusCode: status, Status: http.StatusText(status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(`{"code":"SUCCESS"}`)), Request: r}, nil
}

// alipayGateway receives the Alipay simulator's notifications like gateway,
// answering "success", the body that stops Alipay's retries.
type alipayGateway chan request

func (g alipayGateway) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := gateway(g).RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusOK {
		resp.Header.Set("Content-Type", "text/plain")
		resp.Body = io.NopCloser(strings.NewReader("success"))
	}
	return resp, err
}

// delivery waits for the simulator's next notification, which must be for
// path.
func (s *stack) delivery(t *testing.T, path string) request {
	t.Helper()
	select {
	case req := <-s.delivered:
		if req.path != path {
			t.Fatalf("the simulator notified %s, want %s", req.path, path)
		}
		return req
	case <-time.After(10 * time.Second):
		t.Fatalf("the simulator sent no notification to %s", path)
	}
	return request{}
}

// values are the settings' test values, pointed at this stack.
func (s *stack) values(t *testing.T) map[string]string {
	t.Helper()
	_, pemText := merchant(t)
	k := s.sim.Keys()
	val := map[string]string{
		"MONGODB_URI": s.uri, "MONGODB_DATABASE": s.db,
		"WECHAT_APPID": testAppID, "WECHAT_APPSECRET": "app-secret",
		"PAYFN_SESSION_SECRET": strings.Repeat("s", 32), "PAYFN_SESSION_TTL": "1h", "PAYFN_ORDER_TTL": "30m",
		"PAYFN_ADMIN_KEY": testAdminKey, "PAYFN_LOG_LEVEL": "debug",
		"WECHATPAY_MCHID": testMchID, "WECHATPAY_MCH_CERT_SERIAL": testSerial, "WECHATPAY_MCH_PRIVATE_KEY": pemText,
		"WECHATPAY_APIV3_KEY": testAPIv3, "WECHATPAY_NOTIFY_URL": "https://pay.example.com/notify/wechatpay",
		"WECHATPAY_REFUND_NOTIFY_URL": "https://pay.example.com/notify/wechatpay/refund",
		"WECHATPAY_PUBLIC_KEY_ID":     k.PublicKeyID, "WECHATPAY_PUBLIC_KEY": k.PublicKeyPEM,
		"WECHATPAY_ACCEPT_PLATFORM_CERTS": "false", // the simulator signs with its public key only
		"PAYFN_SECRET_REFRESH":            "5m",
		"PAYFN_SERVICE_KEY":               testServiceKey, "WECHATPAY_EXTRA_APPIDS": testExtraAppID,
		// Every channel is on, so the functions that act on every channel
		// hold the Alipay merchant too, as deployed with Alipay.
		"PAYFN_CHANNELS": allChannels,
	}
	ak := s.alipay.Keys()
	val["ALIPAY_APP_ID"], val["ALIPAY_MINI_APPID"], val["ALIPAY_SELLER_ID"] = ak.AppID, ak.AppID, ak.SellerID
	val["ALIPAY_APP_PRIVATE_KEY"], val["ALIPAY_PUBLIC_KEY"] = ak.AppPrivateKeyPEM, ak.AlipayPublicKeyPEM
	val["ALIPAY_NOTIFY_URL"], val["ALIPAY_GATEWAY_URL"] = "https://pay.example.com/notify/alipay", s.alipay.GatewayURL()
	return val
}

// env gives values for exactly the variables the deployment artifact gives
// the function (names), pointed at this stack, plus the two base URLs that
// only a test or the local stack sets.
func (s *stack) env(t *testing.T, names []string) []string {
	t.Helper()
	val := s.values(t)
	out := []string{"WECHAT_API_BASE_URL=" + s.sim.URL(), "WECHATPAY_BASE_URL=" + s.sim.URL()}
	for _, n := range names {
		if n == "PAYFN_SECRET_SOURCE" || n == "PAYFN_SECRET_ID" {
			continue // the platform's starter points them at its stand-in (secretEnv)
		}
		v, ok := val[n]
		if !ok {
			t.Fatalf("no test value for %s", n)
		}
		out = append(out, n+"="+v)
	}
	return out
}

// process is a started function binary; it is killed when the test ends.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	output *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs bin with exactly env (nothing inherited: a cloud runtime gives
// a function only what it was configured with).
func start(t *testing.T, bin string, env []string) *process {
	t.Helper()
	p := &process{exited: make(chan struct{}), output: &lockedBuffer{}}
	for attempt := 0; ; attempt++ {
		p.cmd = exec.Command(bin)
		p.cmd.Env, p.cmd.Dir = env, filepath.Dir(bin)
		p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
		err := p.cmd.Start()
		if err == nil {
			break
		}
		// A child forked by a parallel test may hold bin's write handle from
		// extraction until it execs (golang.org/issue/22315): retry briefly.
		if !errors.Is(err, syscall.ETXTBSY) || attempt == 50 {
			t.Fatalf("start %s: %v", bin, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), p.output.String())
		}
	})
	return p
}

// reply is an HTTP answer as either gateway carries it back.
type reply struct {
	Status  int
	Headers map[string]string
	Body    []byte
	took    time.Duration
}

func (r reply) field(t *testing.T, key string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, r.Body)
	}
	s, _ := m[key].(string)
	return s
}

func (r reply) want(t *testing.T, status int, code string) reply {
	t.Helper()
	if r.Status != status || (code != "" && r.field(t, "code") != code) {
		t.Fatalf("got %d %s, want %d %s", r.Status, r.Body, status, code)
	}
	return r
}

// request is one HTTP call to a function, before a gateway wraps it.
type request struct {
	method  string // default POST
	path    string
	route   string            // the gateway route that matched ("ANY /v1/{proxy+}"); default method and path
	headers map[string]string // lower-case names, as both gateways deliver them
	body    []byte
	// b64: the gateway base64-encodes the body, as both do for a body they
	// do not treat as text; a notification must survive that byte for byte.
	b64 bool
}

func (r request) httpMethod() string {
	if r.method == "" {
		return http.MethodPost
	}
	return r.method
}

func (r request) routeKey() string {
	if r.route != "" {
		return r.route
	}
	return r.httpMethod() + " " + r.path
}

// jsonRequest is a client's JSON call with the session token, if any; the
// function it is sent to supplies the path.
func jsonRequest(token string, v any) request {
	b, _ := json.Marshal(v)
	h := map[string]string{"content-type": "application/json"}
	if token != "" {
		h["authorization"] = "Bearer " + token
	}
	return request{headers: h, body: b}
}

func (s *stack) wantStatus(t *testing.T, orderID string, want order.Status) {
	t.Helper()
	o, err := s.store.Order(context.Background(), orderID)
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != want {
		t.Fatalf("order %s is %s in the store, want %s", orderID, o.Status, want)
	}
}

// ---------------------------------------------------------------------------
// AWS Lambda: a Runtime API server of our own, as provided.al2023 runs one.

// runtimeAPI implements the Lambda Runtime API endpoints a function uses:
// next, response, error and init/error.
type runtimeAPI struct {
	t       *testing.T
	srv     *httptest.Server
	queue   chan invocation
	mu      sync.Mutex
	pending map[string]chan result
	seq     atomic.Int64
	initErr chan string
	timeout time.Duration // the function's configured timeout: each invocation's deadline
}

type invocation struct {
	id    string
	event []byte
	done  chan result
}

type result struct {
	failed bool // posted to /error
	body   []byte
}

const runtimePrefix = "/2018-06-01/runtime/"

func newRuntimeAPI(t *testing.T) *runtimeAPI {
	a := &runtimeAPI{t: t, queue: make(chan invocation), pending: map[string]chan result{}, initErr: make(chan string, 1)}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close) // registered before any process, so it runs after they are killed
	return a
}

func (a *runtimeAPI) serve(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, runtimePrefix)
	switch {
	case ok && r.Method == http.MethodGet && rest == "invocation/next":
		select {
		case inv := <-a.queue:
			a.mu.Lock()
			a.pending[inv.id] = inv.done
			a.mu.Unlock()
			w.Header().Set("Lambda-Runtime-Aws-Request-Id", inv.id)
			w.Header().Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(a.timeout).UnixMilli(), 10))
			w.Header().Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:ap-east-1:123456789012:function:payfn")
			w.Header().Set("Lambda-Runtime-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0")
			w.Header().Set("Content-Type", "application/json")
			w.Write(inv.event)
		case <-r.Context().Done(): // the process was killed while polling
		}
	case ok && r.Method == http.MethodPost && strings.HasPrefix(rest, "invocation/"):
		id, kind, _ := strings.Cut(strings.TrimPrefix(rest, "invocation/"), "/")
		body, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		done, found := a.pending[id]
		delete(a.pending, id)
		a.mu.Unlock()
		if !found || (kind != "response" && kind != "error") {
			a.t.Errorf("Runtime API: unexpected %s %s", r.Method, r.URL.Path)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		done <- result{failed: kind == "error", body: body}
		w.WriteHeader(http.StatusAccepted)
	case ok && r.Method == http.MethodPost && rest == "init/error":
		body, _ := io.ReadAll(r.Body)
		select {
		case a.initErr <- string(body):
		default:
		}
		w.WriteHeader(http.StatusAccepted)
	default:
		a.t.Errorf("Runtime API: unexpected %s %s", r.Method, r.URL.Path)
		w.WriteHeader(http.StatusNotFound)
	}
}

// lambdaFn is one function process served by the Runtime API.
type lambdaFn struct {
	api  *runtimeAPI
	proc *process
	name string
}

// startLambda runs bin in a sandbox of its own, as Lambda does: each
// process polls its own Runtime API.
func startLambda(t *testing.T, s *stack, bin, name string, names []string) *lambdaFn {
	t.Helper()
	return startLambdaWith(t, s, bin, name, names)
}

// startLambdaWith is startLambda with extra variables, which win over the
// artifact's.
func startLambdaWith(t *testing.T, s *stack, bin, name string, names []string, extra ...string) *lambdaFn {
	t.Helper()
	a := newRuntimeAPI(t)
	a.timeout = templateTimeout(t, strings.ToLower(name))
	env := append(s.env(t, names), s.secretEnv(t, "aws", name, names)...)
	env = append(env,
		"AWS_LAMBDA_RUNTIME_API="+a.srv.Listener.Addr().String(),
		"AWS_LAMBDA_FUNCTION_NAME=payfn-"+name, "AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256", "AWS_REGION=ap-east-1", "_HANDLER=bootstrap",
		"LAMBDA_TASK_ROOT="+filepath.Dir(bin), "TZ=:UTC")
	env = append(env, extra...)
	f := &lambdaFn{api: a, proc: start(t, bin, env), name: name}
	s.procs = append(s.procs, f.proc)
	return f
}

// invoke sends one API Gateway HTTP API (payload 2.0) event and returns the
// function's answer, failing on an /error post, an init error or an exit.
func (f *lambdaFn) invoke(t *testing.T, req request) reply {
	t.Helper()
	id := fmt.Sprintf("inv-%d", f.api.seq.Add(1))
	body, b64 := string(req.body), req.b64
	if b64 {
		body = base64.StdEncoding.EncodeToString(req.body)
	}
	event, _ := json.Marshal(map[string]any{
		"version": "2.0", "routeKey": req.routeKey(), "rawPath": req.path, "rawQueryString": "",
		"headers": maps.Clone(req.headers),
		"requestContext": map[string]any{
			"accountId": "123456789012", "apiId": "a1b2c3d4e5", "domainName": "a1b2c3d4e5.execute-api.ap-east-1.amazonaws.com",
			"domainPrefix": "a1b2c3d4e5", "requestId": "gw-" + id, "routeKey": req.routeKey(), "stage": "$default",
			"time": time.Now().UTC().Format("02/Jan/2006:15:04:05 -0700"), "timeEpoch": time.Now().UnixMilli(),
			"http": map[string]any{"method": req.httpMethod(), "path": req.path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "MicroMessenger"},
		},
		"body": body, "isBase64Encoded": b64,
	})
	begin := time.Now()
	return gatewayReply(t, f.name, f.call(t, id, event), begin)
}

// call delivers one event through the Runtime API and returns what the
// function posted to /response.
func (f *lambdaFn) call(t *testing.T, id string, event []byte) []byte {
	t.Helper()
	inv := invocation{id: id, event: event, done: make(chan result, 1)}
	select {
	case f.api.queue <- inv:
	case <-f.proc.exited:
		t.Fatalf("%s exited before taking an invocation", f.name)
	case msg := <-f.api.initErr:
		t.Fatalf("%s reported an init error: %s", f.name, msg)
	case <-time.After(20 * time.Second):
		t.Fatalf("%s never polled the Runtime API", f.name)
	}
	var res result
	select {
	case res = <-inv.done:
	case <-f.proc.exited:
		t.Fatalf("%s exited during invocation %s", f.name, id)
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not answer invocation %s", f.name, id)
	}
	if res.failed {
		t.Fatalf("%s posted an invocation error: %s", f.name, res.body)
	}
	return res.body
}

// trigger sends one EventBridge schedule event, as the rule template.yaml
// gives a scheduled job sends it, and returns the job's answer.
func (f *lambdaFn) trigger(t *testing.T) []byte {
	t.Helper()
	id := fmt.Sprintf("job-%d", f.api.seq.Add(1))
	event, _ := json.Marshal(map[string]any{
		"version": "0", "id": "ev-" + id, "detail-type": "Scheduled Event", "source": "aws.events",
		"account": "123456789012", "time": time.Now().UTC().Format(time.RFC3339), "region": "ap-east-1",
		"resources": []string{"arn:aws:events:ap-east-1:123456789012:rule/payfn-" + strings.ToLower(f.name)}, "detail": map[string]any{},
	})
	return f.call(t, id, event)
}

// templateVars returns the variable names template.yaml gives the function
// deployed from functions/<folder>.
func templateVars(t *testing.T, folder string) []string {
	t.Helper()
	fn, ok := samFunctions(t, loadTemplate(t))[folder]
	if !ok || fn.Environment == nil {
		t.Fatalf("template.yaml has no function with environment for functions/%s", folder)
	}
	return slices.Sorted(maps.Keys(fn.Environment.Variables))
}

// templateTimeout is the timeout template.yaml gives functions/<folder>,
// Globals merged: the deadline each of its invocations gets.
func templateTimeout(t *testing.T, folder string) time.Duration {
	t.Helper()
	fn, ok := samFunctions(t, loadTemplate(t))[folder]
	if !ok || fn.Timeout == nil {
		t.Fatalf("template.yaml has no function with a timeout for functions/%s", folder)
	}
	return time.Duration(*fn.Timeout) * time.Second
}

// ---------------------------------------------------------------------------
// Tencent SCF: scf-go-lib's net/rpc Function.Invoke on _LAMBDA_SERVER_PORT.

type scfFn struct {
	client  *rpc.Client
	proc    *process
	name    string
	seq     int
	timeout time.Duration // the function's configured timeout: each invocation's deadline
}

// startSCF starts bin as SCF does, retrying on a port taken between finding
// it free and the child binding it.
func startSCF(t *testing.T, s *stack, bin, name string, names []string) *scfFn {
	t.Helper()
	return startSCFWith(t, s, bin, name, names)
}

// startSCFWith is startSCF with extra variables, which win over the
// artifact's.
func startSCFWith(t *testing.T, s *stack, bin, name string, names []string, extra ...string) *scfFn {
	t.Helper()
	secretEnv := s.secretEnv(t, "scf", name, names)
	for attempt := 0; attempt < 3; attempt++ {
		port := freePort(t)
		env := append(s.env(t, names), secretEnv...)
		env = append(env, "_LAMBDA_SERVER_PORT="+port, "TENCENTCLOUD_RUNENV=SCF",
			"SCF_FUNCTIONNAME=payfn-prod-"+name, "SCF_FUNCTIONVERSION=$LATEST", "TENCENTCLOUD_REGION=ap-guangzhou")
		env = append(env, extra...)
		p := start(t, bin, env)
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if c, err := rpc.Dial("tcp", "localhost:"+port); err == nil {
				t.Cleanup(func() { c.Close() })
				s.procs = append(s.procs, p)
				return &scfFn{client: c, proc: p, name: name, timeout: slsTimeout(t, strings.ToLower(name))}
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

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// invoke sends one API gateway trigger event through Function.Invoke.
func (f *scfFn) invoke(t *testing.T, req request) reply {
	t.Helper()
	f.seq++
	body, b64 := string(req.body), req.b64
	if b64 {
		body = base64.StdEncoding.EncodeToString(req.body)
	}
	headers := maps.Clone(req.headers)
	headers["host"] = "service-f94sy04v-1250000000.gz.apigw.tencentcs.com"
	event, _ := json.Marshal(map[string]any{
		"requestContext": map[string]any{"serviceId": "service-f94sy04v", "path": scfAPIPath(req), "httpMethod": req.httpMethod(),
			"requestId": fmt.Sprintf("apigw-%s-%d", f.name, f.seq), "identity": map[string]any{}, "sourceIp": "203.0.113.7", "stage": "release"},
		"headers": headers, "body": body, "path": req.path, "httpMethod": req.httpMethod(),
		"queryString": map[string]any{}, "queryStringParameters": map[string]any{}, "pathParameters": map[string]any{},
		"headerParameters": map[string]any{}, "stageVariables": map[string]any{"stage": "release"},
		"isBase64Encoded": b64,
	})
	begin := time.Now()
	return gatewayReply(t, f.name, f.call(t, event), begin)
}

// gatewayReply decodes the response a function gave its API gateway; both
// gateways (HTTP API v2 and SCF's integration response) use this shape.
func gatewayReply(t *testing.T, name string, payload []byte, begin time.Time) reply {
	t.Helper()
	var out struct {
		StatusCode      int               `json:"statusCode"`
		Headers         map[string]string `json:"headers"`
		Body            string            `json:"body"`
		IsBase64Encoded bool              `json:"isBase64Encoded"`
	}
	if err := json.Unmarshal(payload, &out); err != nil {
		t.Fatalf("%s: not an API gateway response: %v\n%s", name, err, payload)
	}
	rb := []byte(out.Body)
	if out.IsBase64Encoded {
		var err error
		if rb, err = base64.StdEncoding.DecodeString(out.Body); err != nil {
			t.Fatalf("%s: base64 body: %v", name, err)
		}
	}
	return reply{Status: out.StatusCode, Headers: out.Headers, Body: rb, took: time.Since(begin)}
}

// trigger sends one timer trigger event, as serverless.yml's timer sends it,
// and returns the job's answer.
func (f *scfFn) trigger(t *testing.T) []byte {
	t.Helper()
	event, _ := json.Marshal(map[string]any{"Type": "Timer", "TriggerName": "payfn_" + strings.ToLower(f.name), // serverless.yml names timers by folder
		"Time": time.Now().UTC().Format("2006-01-02T15:04:05Z"), "Message": ""})
	return f.call(t, event)
}

// call sends one event through Function.Invoke and returns the payload.
func (f *scfFn) call(t *testing.T, event []byte) []byte {
	t.Helper()
	f.seq++
	var resp messages.InvokeResponse
	call := f.client.Go("Function.Invoke", &messages.InvokeRequest{
		Payload: event, RequestId: fmt.Sprintf("scf-%s-%d", f.name, f.seq),
		Deadline: messages.InvokeRequest_Timestamp{Seconds: time.Now().Add(f.timeout).Unix()},
	}, &resp, nil)
	select {
	case <-call.Done:
	case <-f.proc.exited:
		t.Fatalf("%s exited during an invocation", f.name)
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not answer", f.name)
	}
	if call.Error != nil || resp.Error != nil {
		t.Fatalf("%s: Function.Invoke: %v, function error %+v", f.name, call.Error, resp.Error)
	}
	return resp.Payload
}

// scfAPIPath is the path of the API that received req, as SCF's gateway
// names it in requestContext.path: the base of a subtree route (the API sits
// at /v1 and matches its subpaths as a prefix), else the request's path.
func scfAPIPath(req request) string {
	_, p, _ := strings.Cut(req.routeKey(), " ")
	if base, ok := strings.CutSuffix(p, "/{proxy+}"); ok {
		return base
	}
	return p
}

// slsTimeout is the timeout serverless.yml gives functions/<folder> (its
// own, else the provider's): the deadline each of its invocations gets.
func slsTimeout(t *testing.T, folder string) time.Duration {
	t.Helper()
	f := loadServerless(t)
	fn, ok := f.Functions[folder]
	if !ok {
		t.Fatalf("serverless.yml has no function for functions/%s", folder)
	}
	if fn.Timeout > 0 {
		return time.Duration(fn.Timeout) * time.Second
	}
	return time.Duration(f.Provider.Timeout) * time.Second
}

// slsVars returns the variable names serverless.yml gives functions/<folder>.
func slsVars(t *testing.T, folder string) []string {
	t.Helper()
	fn, ok := loadServerless(t).Functions[folder]
	if !ok || fn.Environment == nil {
		t.Fatalf("serverless.yml has no function with environment for functions/%s", folder)
	}
	return slices.Sorted(maps.Keys(fn.Environment.Variables))
}
