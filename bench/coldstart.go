package bench

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Functions are the deployable functions, as named under functions/.
var Functions = []string{"login", "createorder", "pay", "queryorder", "verifypayment", "refund", "bills", "verifyrefund", "closeexpired", "reconcile"}

// BuildFunction builds functions/<name> for linux/goarch exactly as
// scripts/build does (CGO_ENABLED=0, -tags lambda.norpc, -trimpath,
// -ldflags='-s -w') and returns the binary's path and size in bytes.
func BuildFunction(root, outDir, name, goarch string) (string, int64, error) {
	out := filepath.Join(outDir, name+"-"+goarch)
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", out, "./functions/"+name)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", 0, fmt.Errorf("go build %s linux/%s: %v\n%s", name, goarch, err, b)
	}
	fi, err := os.Stat(out)
	if err != nil {
		return "", 0, err
	}
	return out, fi.Size(), nil
}

// trap is a loopback listener standing in for a dependency (MongoDB,
// WeChat Pay): it counts connections, so a cold start that reaches the
// network is caught.
type trap struct {
	ln    net.Listener
	conns atomic.Int64
}

func newTrap() (*trap, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := &trap{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.conns.Add(1)
			c.Close()
		}
	}()
	return t, nil
}

func (t *trap) addr() string { return t.ln.Addr().String() }

// RuntimeAPI is a minimal Lambda Runtime API: it only notes when a process
// asks for its first invocation (GET .../invocation/next) and then holds the
// request until the process is gone.
type RuntimeAPI struct {
	srv   *http.Server
	ln    net.Listener
	mu    sync.Mutex
	ready chan struct{}
	deps  *trap // stands in for every dependency
}

// NewRuntimeAPI starts the server on loopback.
func NewRuntimeAPI() (*RuntimeAPI, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	deps, err := newTrap()
	if err != nil {
		ln.Close()
		return nil, err
	}
	r := &RuntimeAPI{ln: ln, deps: deps}
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/runtime/invocation/next") {
			r.mu.Lock()
			if r.ready != nil {
				close(r.ready)
				r.ready = nil
			}
			r.mu.Unlock()
			<-req.Context().Done()
			return
		}
		http.Error(w, "not part of this benchmark", http.StatusNotImplemented)
	})}
	go r.srv.Serve(ln)
	return r, nil
}

// Close stops the server.
func (r *RuntimeAPI) Close() {
	r.srv.Close()
	r.deps.ln.Close()
}

// GoEnv is the environment of a Go function on provided.al2023 pointing at
// this Runtime API, with every setting any function needs and every
// dependency (MongoDB, WeChat Pay, jscode2session) at the trap.
func (r *RuntimeAPI) GoEnv(f *Fixture) []string {
	dep := r.deps.addr()
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"AWS_LAMBDA_RUNTIME_API=" + r.ln.Addr().String(),
		"AWS_LAMBDA_FUNCTION_NAME=bench", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128", "AWS_REGION=ap-east-1",
		"MONGODB_URI=mongodb://" + dep + "/?serverSelectionTimeoutMS=2000",
		"WECHAT_APPID=" + AppID, "WECHAT_APPSECRET=" + AppSecret, "WECHAT_API_BASE_URL=http://" + dep,
		"PAYFN_SESSION_SECRET=" + strings.Repeat("s", 32), "PAYFN_ADMIN_KEY=" + strings.Repeat("a", 32),
		"WECHATPAY_MCHID=" + MchID, "WECHATPAY_MCH_CERT_SERIAL=" + MchSerial,
		"WECHATPAY_MCH_PRIVATE_KEY=" + f.MerchantPEM, "WECHATPAY_APIV3_KEY=" + APIv3Key,
		"WECHATPAY_NOTIFY_URL=" + NotifyURL, "WECHATPAY_BASE_URL=http://" + dep,
		"WECHATPAY_PUBLIC_KEY_ID=" + f.Keys.PublicKeyID, "WECHATPAY_PUBLIC_KEY=" + f.Keys.PublicKeyPEM,
		"PAYFN_LOG_LEVEL=warn",
	}
}

// ReadyTimes starts argv runs times with env and returns, for each start,
// the time from exec to its first GET /next, and the number of connections
// the dependencies' trap saw during all of them.
func (r *RuntimeAPI) ReadyTimes(argv, env []string, runs int) ([]time.Duration, int64, error) {
	before := r.deps.conns.Load()
	out := make([]time.Duration, 0, runs)
	for i := 0; i < runs; i++ {
		ready := make(chan struct{})
		r.mu.Lock()
		r.ready = ready
		r.mu.Unlock()
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = env
		var stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		exited := make(chan error, 1)
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return nil, 0, err
		}
		go func() { exited <- cmd.Wait() }()
		select {
		case <-ready:
			out = append(out, time.Since(start))
			cmd.Process.Kill()
			<-exited
		case err := <-exited:
			return nil, 0, fmt.Errorf("%s exited before asking for an invocation: %v\n%s", filepath.Base(argv[0]), err, stderr.String())
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
			return nil, 0, fmt.Errorf("%s did not ask for an invocation within 30s", filepath.Base(argv[0]))
		}
	}
	return out, r.deps.conns.Load() - before, nil
}

// MedianDuration is the median of ds.
func MedianDuration(ds []time.Duration) time.Duration {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = float64(d)
	}
	return time.Duration(median(xs))
}

// HostArch is the GOARCH binaries run natively here.
func HostArch() string { return runtime.GOARCH }
