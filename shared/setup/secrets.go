package setup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/config"
	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/secrets"
)

// A function whose secrets live in a secret store (PAYFN_SECRET_SOURCE other
// than env) starts with its non-secret settings only: no network at cold
// start. The first invocation that needs the secret fetches it, lays it over
// the environment and builds the function; later invocations reuse that
// build. Every SecretRefresh one invocation asks the store again, and when
// the secret's content changed it builds the function anew from it (a new
// WeChat Pay channel signs with a new merchant key from then on) while the
// invocations already running finish on the old build, which is closed
// after them. If the store cannot be reached, the function keeps serving
// with what it has and logs a warning; only a function that never fetched
// its secret answers 503.

// refreshRetry is how soon a failed refresh is tried again.
const refreshRetry = 30 * time.Second

// refreshTimeout bounds a refresh made while a cached secret exists, so an
// outage delays the invocation that notices it only a little.
const refreshTimeout = 2 * time.Second

// Rotating is one function built from a secret store, rebuilt when the
// secret changes. It is an http.Handler for an HTTP function; RunJob runs a
// scheduled one.
type Rotating struct {
	fn     Function
	serve  Serve   // an HTTP function's handler (HandlerWith)
	work   JobWork // a scheduled function's work (JobWith)
	parts  []config.Part
	getenv func(string) string
	src    secrets.Source
	every  time.Duration
	opts   Options
	log    *slog.Logger

	first      sync.Mutex // one first fetch at a time
	closed     atomic.Bool
	cur        atomic.Pointer[generation]
	next       atomic.Int64 // unix nanoseconds when the secret is due again
	refreshing atomic.Bool
}

// generation is the function built from one version of the secret.
type generation struct {
	version string
	handler http.Handler // nil for a scheduled function
	stack   *Stack

	refs      atomic.Int64
	retired   atomic.Bool
	closeOnce sync.Once
}

func (g *generation) release() {
	if g.refs.Add(-1) == 0 && g.retired.Load() {
		g.close()
	}
}

func (g *generation) retire() {
	g.retired.Store(true)
	if g.refs.Load() == 0 {
		g.close()
	}
}

func (g *generation) close() {
	g.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g.stack.Close(ctx)
	})
}

// NewRotating builds fn from the settings getenv gives and the secret src
// holds, fetched on first use and again every refresh (default
// config.DefaultSecretRefresh). It does no I/O. It serves or runs what
// route and jobOf name for fn (the function binaries name their own: see
// HandlerWith and JobWith).
func NewRotating(fn Function, getenv func(string) string, src secrets.Source, refresh time.Duration, opts Options) (*Rotating, error) {
	r, err := newRotating(fn, getenv, src, refresh, opts)
	if err != nil {
		return nil, err
	}
	r.serve = func(api *httpapi.API) http.Handler { h, _ := route(api, fn); return h }
	r.work = func(a *app.App) Job { j, _ := jobOf(fn, a); return j }
	return r, nil
}

// newRotating is NewRotating with neither a handler nor work yet.
func newRotating(fn Function, getenv func(string) string, src secrets.Source, refresh time.Duration, opts Options) (*Rotating, error) {
	// The identity mode is not a secret: the environment has it (a bad
	// value fails the build, which loads the settings again).
	cfg, _ := config.Load(getenv)
	parts, ok := partsOf(fn, cfg)
	if !ok {
		return nil, fmt.Errorf("unknown function %q", fn)
	}
	if refresh <= 0 {
		refresh = config.DefaultSecretRefresh
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	return &Rotating{fn: fn, parts: parts, getenv: getenv, src: src, every: refresh, opts: opts, log: opts.Logger}, nil
}

// fromStore is Handler and JobFor for a function whose secret is in a
// store: cfg holds the environment's settings, checked for format.
func fromStore(fn Function, getenv func(string) string, cfg config.Config, logger *slog.Logger) (*Rotating, error) {
	// The settings that are not in the secret are checked now, so a
	// misconfigured function still fails its cold start: the secret's keys
	// stand in as placeholders that pass Load's format checks.
	// The parts are those of this deployment: with an Alipay channel on,
	// more functions hold the Alipay key.
	parts, ok := partsOf(fn, cfg)
	placeholders := map[string]bool{}
	for _, p := range parts {
		for _, k := range secretKeys[p] {
			placeholders[k] = true
		}
	}
	// Alipay's certificates do not fit in a function's environment (4 KB on
	// Lambda), so in certificate mode they come with the secret. When the
	// environment names neither Alipay's public key nor a certificate, the
	// certificates are expected there; a secret without them is found on
	// the first invocation, which answers 503 and logs what is missing.
	certs := map[string]bool{}
	if slices.Contains(parts, config.PartAlipay) && getenv("ALIPAY_PUBLIC_KEY") == "" && getenv("ALIPAY_APP_CERT") == "" {
		for _, k := range alipayCertKeys {
			certs[k] = true
		}
	}
	withSecret := func(k string) string {
		switch {
		case getenv(k) != "":
			return getenv(k)
		case placeholders[k]:
			return strings.Repeat("x", 32)
		case certs[k]:
			return placeholderCert
		}
		return ""
	}
	if ok {
		if c, err := config.Load(withSecret); err == nil {
			if err := c.Need(parts...); err != nil {
				return nil, fmt.Errorf("configure %s: %w", fn, err)
			}
		}
	}
	src, err := secrets.New(secrets.Options{Kind: cfg.SecretSource, ID: cfg.SecretID, Endpoint: cfg.SecretEndpoint, Getenv: getenv})
	if err != nil {
		return nil, fmt.Errorf("configure %s: %w", fn, err)
	}
	r, err := newRotating(fn, getenv, src, cfg.SecretRefresh, Options{Logger: logger})
	if err != nil {
		return nil, err
	}
	logger.Info("secrets come from the secret store on first use", "function", fn, "source", cfg.SecretSource, "secret_id", cfg.SecretID, "refresh", cfg.SecretRefresh.String())
	return r, nil
}

// ServeHTTP serves one invocation with the current build.
func (r *Rotating) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	g, err := r.acquire(req.Context())
	if err != nil {
		r.log.ErrorContext(req.Context(), "no secret yet: answering 503", "function", r.fn, "err", err)
		httpapi.WriteError(w, req, http.StatusServiceUnavailable, app.CodeSecretsUnavailable, "the service cannot read its configuration yet; try again")
		return
	}
	defer g.release()
	if g.handler == nil {
		httpapi.WriteError(w, req, http.StatusInternalServerError, app.CodeInternal, "this function serves no HTTP route")
		return
	}
	g.handler.ServeHTTP(w, req)
}

// RunJob runs a scheduled function with the current build.
func (r *Rotating) RunJob(ctx context.Context) (app.JobReport, error) {
	g, err := r.acquire(ctx)
	if err != nil {
		return app.JobReport{}, err
	}
	defer g.release()
	if r.work == nil {
		return app.JobReport{}, fmt.Errorf("%s: no work to run (build it with JobWith)", r.fn)
	}
	return r.work(g.stack.App)(ctx)
}

// Close releases the current build once its invocations are done.
func (r *Rotating) Close() {
	r.closed.Store(true)
	if g := r.cur.Swap(nil); g != nil {
		g.retire()
	}
}

// acquire returns the build to serve with, holding it until release:
// fetching the secret the first time, and refreshing it when due.
func (r *Rotating) acquire(ctx context.Context) (*generation, error) {
	if r.closed.Load() {
		return nil, errors.New("function closed")
	}
	if r.cur.Load() == nil {
		if err := r.load(ctx); err != nil {
			return nil, err
		}
	} else if time.Now().UnixNano() >= r.next.Load() && r.refreshing.CompareAndSwap(false, true) {
		r.refresh(ctx)
		r.refreshing.Store(false)
	}
	for {
		g := r.cur.Load()
		if g == nil {
			return nil, errors.New("function closed")
		}
		g.refs.Add(1)
		// A build replaced between the Load and the Add may already be
		// closing: let it go and take the new one.
		if r.cur.Load() == g {
			return g, nil
		}
		g.release()
	}
}

// load fetches the secret for the first time; concurrent first invocations
// wait for one fetch.
func (r *Rotating) load(ctx context.Context) error {
	r.first.Lock()
	defer r.first.Unlock()
	if r.cur.Load() != nil || r.closed.Load() {
		return nil
	}
	sec, err := r.src.Fetch(ctx)
	if err != nil {
		return fmt.Errorf("fetch secret: %w", err)
	}
	g, err := r.build(sec)
	if err != nil {
		return err
	}
	r.cur.Store(g)
	r.next.Store(time.Now().Add(r.every).UnixNano())
	r.log.InfoContext(ctx, "secret loaded", "function", r.fn, "version", sec.Version)
	return nil
}

// refresh asks the store again. Any failure keeps the current build.
func (r *Rotating) refresh(ctx context.Context) {
	// Not the caller's cancellation: a client that went away does not make
	// the store look down.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
	defer cancel()
	sec, err := r.src.Fetch(ctx)
	if err != nil {
		r.next.Store(time.Now().Add(min(r.every, refreshRetry)).UnixNano())
		r.log.WarnContext(ctx, "secret store unavailable; serving with the secret fetched before", "function", r.fn, "err", err)
		return
	}
	r.next.Store(time.Now().Add(r.every).UnixNano())
	old := r.cur.Load()
	if old == nil || sec.Version == old.version {
		return
	}
	g, err := r.build(sec)
	if err != nil {
		r.log.ErrorContext(ctx, "the secret's new version is unusable; serving with the one before", "function", r.fn, "version", sec.Version, "err", err)
		return
	}
	r.cur.Store(g)
	old.retire() // closes once the invocations running on it finish
	r.log.InfoContext(ctx, "secret rotated", "function", r.fn, "version", sec.Version, "previous_version", old.version)
}

// build makes the function from the environment with the secret laid over
// it. Its errors never quote a secret value.
func (r *Rotating) build(sec secrets.Secret) (*generation, error) {
	getenv := func(k string) string {
		if v, ok := sec.Values[k]; ok {
			return v
		}
		return r.getenv(k)
	}
	var values []string
	for _, v := range sec.Values {
		if len(v) >= 6 {
			values = append(values, v)
		}
	}
	fail := func(err error) error {
		for _, v := range values {
			if strings.Contains(err.Error(), v) {
				return fmt.Errorf("configure %s from secret version %s: the error quoted a secret value and is withheld", r.fn, sec.Version)
			}
		}
		return fmt.Errorf("configure %s from secret version %s: %w", r.fn, sec.Version, err)
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return nil, fail(err)
	}
	if err := cfg.Need(r.parts...); err != nil {
		return nil, fail(err)
	}
	api, st, err := build(cfg, r.parts, r.opts)
	if err != nil {
		return nil, fail(err)
	}
	g := &generation{version: sec.Version, stack: st}
	if r.serve != nil {
		g.handler = r.serve(api)
	}
	return g, nil
}

// alipayCertKeys are Alipay's certificate-mode settings, which a function's
// secret may hold; placeholderCert stands in for them in the cold-start
// check (it passes the settings' format check, nothing more).
var alipayCertKeys = []string{"ALIPAY_APP_CERT", "ALIPAY_ROOT_CERT", "ALIPAY_PUBLIC_CERT"}

const placeholderCert = "-----BEGIN CERTIFICATE-----\nplaceholder\n-----END CERTIFICATE-----\n"

// secretKeys are the settings each part keeps in the function's secret.
// The merchant certificate serial is not secret, but it names the key
// beside it, so the two change together in one secret version.
var secretKeys = map[config.Part][]string{
	config.PartStore:    {"MONGODB_URI"},
	config.PartLogin:    {"WECHAT_APPSECRET"},
	config.PartSessions: {"PAYFN_SESSION_SECRET"},
	config.PartPay:      {"WECHATPAY_MCH_CERT_SERIAL", "WECHATPAY_MCH_PRIVATE_KEY", "WECHATPAY_APIV3_KEY"},
	config.PartAdmin:    {"PAYFN_ADMIN_KEY"},
	config.PartService:  {"PAYFN_SERVICE_KEY"},
	config.PartAlipay:   {"ALIPAY_APP_PRIVATE_KEY"},
}

// SecretKeys lists the keys fn's secret holds (outside a rotation, which
// adds the *_PREVIOUS ones): only the secrets fn uses.
func SecretKeys(fn Function) []string {
	var out []string
	for _, p := range needs[fn] {
		out = append(out, secretKeys[p]...)
	}
	return out
}
