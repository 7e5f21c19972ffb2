// Package setup wires payfn together from its configuration: the MongoDB
// store, the WeChat Pay channel, session tokens and the login exchange, the
// use cases and their HTTP handlers. Function mains call it once per process
// (outside the handler, so warm invocations reuse every client) and the local
// stack calls it with its own settings.
//
// It may import every shared package except the test-only ones (paysim,
// store/embedded, store/storetest) and the cloud runtimes.
package setup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/config"
	"github.com/payfn/payfn/shared/identity"
	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/store"
	"github.com/payfn/payfn/shared/webhook"
	"github.com/payfn/payfn/shared/wxpay"
)

// Function names one deployable function.
type Function string

// The functions.
const (
	Login         Function = "login"
	CreateOrder   Function = "createOrder"
	Pay           Function = "pay"
	QueryOrder    Function = "queryOrder"
	VerifyPayment Function = "verifyPayment"
	Refund        Function = "refund"
	Bills         Function = "bills"
	VerifyRefund  Function = "verifyRefund"
	AlipayNotify  Function = "alipayNotify"
	CloseExpired  Function = "closeExpired"
	Reconcile     Function = "reconcile"
	ReconcileBill Function = "reconcileBill"
	ShareProfits  Function = "shareProfits"
	// Service mode.
	ServerAPI        Function = "serverApi"
	AdminApps        Function = "adminApps"
	DispatchWebhooks Function = "dispatchWebhooks"
)

// Functions lists every function: an HTTP function has its route, a
// scheduled job its schedule.
var Functions = []struct {
	Name     Function
	Path     string // POST route of an HTTP function
	Schedule string // how often a job runs
}{
	{Name: Login, Path: httpapi.PathLogin},
	{Name: CreateOrder, Path: httpapi.PathCreateOrder},
	{Name: Pay, Path: httpapi.PathPay},
	{Name: QueryOrder, Path: httpapi.PathQueryOrder},
	{Name: VerifyPayment, Path: httpapi.PathVerifyPayment},
	{Name: Refund, Path: httpapi.PathRefund},
	{Name: Bills, Path: httpapi.PathBills},
	{Name: VerifyRefund, Path: httpapi.PathVerifyRefund},
	{Name: AlipayNotify, Path: httpapi.PathAlipayNotify},
	{Name: ServerAPI, Path: httpapi.PathServerAPI},
	{Name: AdminApps, Path: httpapi.PathAdminApps},
	{Name: CloseExpired, Schedule: "5m"},
	{Name: Reconcile, Schedule: "1h"},
	{Name: ReconcileBill, Schedule: "12h"},
	{Name: ShareProfits, Schedule: "10m"},
	{Name: DispatchWebhooks, Schedule: "1m"},
}

// needs lists the settings each function cannot run without. Each function
// gets only the secrets it uses: verifyPayment never sees the session secret,
// login never sees the merchant key.
var needs = map[Function][]config.Part{
	Login:         {config.PartLogin, config.PartSessions},
	CreateOrder:   {config.PartStore, config.PartSessions},
	Pay:           {config.PartStore, config.PartSessions, config.PartPay},
	QueryOrder:    {config.PartStore, config.PartSessions, config.PartPay},
	VerifyPayment: {config.PartStore, config.PartPay},
	Refund:        {config.PartStore, config.PartPay, config.PartAdmin},
	Bills:         {config.PartStore, config.PartAdmin},
	VerifyRefund:  {config.PartStore, config.PartPay},
	AlipayNotify:  {config.PartStore, config.PartAlipay},
	CloseExpired:  {config.PartStore, config.PartPay},
	Reconcile:     {config.PartStore, config.PartPay},
	ReconcileBill: {config.PartStore, config.PartPay},
	ShareProfits:  {config.PartStore, config.PartPay},
	// Service mode needs PAYFN_SERVICE_KEY in these three. In a service
	// deployment every function that decides (the ones above) must hold it
	// too: with it, a decision records its event and makes the first
	// delivery attempt at once; without it, no event is recorded. It stays
	// optional there so a lone mini-program deployment needs no such key.
	ServerAPI:        {config.PartStore, config.PartPay, config.PartService},
	AdminApps:        {config.PartStore, config.PartAdmin, config.PartService},
	DispatchWebhooks: {config.PartStore, config.PartService},
}

// partsOf is what fn needs under the deployment's identity mode
// (PAYFN_IDENTITY). In platform mode the client functions take their caller
// from the platform: instead of the session secret they need the appid the
// caller must come from.
//
// With an Alipay channel on (PAYFN_CHANNELS), the functions that act on
// orders of any channel need the Alipay merchant too.
func partsOf(fn Function, cfg config.Config) ([]config.Part, bool) {
	parts, ok := needs[fn]
	if !ok {
		return parts, ok
	}
	if cfg.UsesAlipay() && slices.Contains(anyChannel, fn) {
		parts = append(slices.Clone(parts), config.PartAlipay)
	}
	if cfg.Identity != config.IdentityPlatform || (fn != CreateOrder && fn != Pay && fn != QueryOrder) {
		return parts, ok
	}
	out := slices.DeleteFunc(slices.Clone(parts), func(p config.Part) bool { return p == config.PartSessions })
	return append(out, config.PartPlatform), true
}

// anyChannel are the functions that act on orders of every channel.
var anyChannel = []Function{Refund, CloseExpired, Reconcile, ReconcileBill, ServerAPI}

// Logger returns the JSON logger a function writes to stdout, at the level
// PAYFN_LOG_LEVEL names (info when unset or unreadable).
func Logger(getenv func(string) string) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(getenv("PAYFN_LOG_LEVEL")))
	return slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: level}))
}

// Serve picks an HTTP function's handler from the API.
type Serve func(api *httpapi.API) http.Handler

// Handler builds the HTTP handler of one function from the environment,
// with the handler route names for it: for tests and the local stack.
func Handler(fn Function, getenv func(string) string, logger *slog.Logger) (http.Handler, error) {
	if _, err := route(nil, fn); err != nil {
		return nil, err
	}
	return HandlerWith(fn, func(api *httpapi.API) http.Handler { h, _ := route(api, fn); return h }, getenv, logger)
}

// HandlerWith builds the HTTP function fn, which serves what serve picks,
// from the environment. It does no network I/O: clients connect on first
// use. As with JobWith, a function's main names its own handler so its
// binary links only its own routes' code; a test holds each main's choice
// to route's.
//
// With PAYFN_SECRET_SOURCE set to a secret store, the secrets are not read
// here but fetched by the first invocation (see Rotating).
func HandlerWith(fn Function, serve Serve, getenv func(string) string, logger *slog.Logger) (http.Handler, error) {
	if scheduled(fn) || !known(fn) {
		return nil, fmt.Errorf("%s is not an HTTP function", fn)
	}
	if r, err := storeBacked(fn, getenv, logger); r != nil || err != nil {
		if err != nil {
			return nil, err
		}
		r.serve = serve
		return withMetrics(fn, getenv, r), nil
	}
	api, _, err := fromEnv(fn, getenv, logger)
	if err != nil {
		return nil, err
	}
	return withMetrics(fn, getenv, serve(api)), nil
}

// route picks fn's handler from api (nil api: only whether fn is an HTTP
// function).
func route(api *httpapi.API, fn Function) (http.Handler, error) {
	if api == nil {
		for _, f := range Functions {
			if f.Name == fn && f.Path != "" {
				return nil, nil
			}
		}
		return nil, fmt.Errorf("%s is not an HTTP function", fn)
	}
	switch fn {
	case Login:
		return api.Login(), nil
	case CreateOrder:
		return api.CreateOrder(), nil
	case Pay:
		return api.Pay(), nil
	case QueryOrder:
		return api.QueryOrder(), nil
	case VerifyPayment:
		return api.VerifyPayment(), nil
	case Refund:
		return api.Refund(), nil
	case Bills:
		return api.Bills(), nil
	case VerifyRefund:
		return api.VerifyRefund(), nil
	case AlipayNotify:
		return api.AlipayNotify(), nil
	case ServerAPI:
		return api.ServerAPI(), nil
	case AdminApps:
		return api.AdminApps(), nil
	}
	return nil, fmt.Errorf("%s is not an HTTP function", fn)
}

// Job is a scheduled function's work.
type Job func(ctx context.Context) (app.JobReport, error)

// JobWork is a scheduled function's work: the App method it runs.
type JobWork func(a *app.App) Job

// JobFor builds a scheduled function from the environment, like Handler,
// with the work jobOf names for it: for tests and the local stack.
func JobFor(fn Function, getenv func(string) string, logger *slog.Logger) (Job, error) {
	if _, err := jobOf(fn, nil); err != nil {
		return nil, err
	}
	return JobWith(fn, func(a *app.App) Job { j, _ := jobOf(fn, a); return j }, getenv, logger)
}

// JobWith builds the scheduled function fn, which does work, from the
// environment. A job's main names its own work, rather than having setup
// look it up by name, so that its binary links only its own job's code:
// the five jobs together are half a megabyte more than any one of them,
// and the binaries must stay within 12 MB. A test holds each main's work
// to jobOf's.
func JobWith(fn Function, work JobWork, getenv func(string) string, logger *slog.Logger) (Job, error) {
	if !scheduled(fn) {
		return nil, fmt.Errorf("%s is not a scheduled function", fn)
	}
	if r, err := storeBacked(fn, getenv, logger); r != nil || err != nil {
		if err != nil {
			return nil, err
		}
		r.work = work
		return jobWithMetrics(fn, getenv, r.RunJob), nil
	}
	_, st, err := fromEnv(fn, getenv, logger)
	if err != nil {
		return nil, err
	}
	return jobWithMetrics(fn, getenv, work(st.App)), nil
}

// known reports whether fn is one of Functions.
func known(fn Function) bool {
	for _, f := range Functions {
		if f.Name == fn {
			return true
		}
	}
	return false
}

// scheduled reports whether fn is a scheduled function.
func scheduled(fn Function) bool {
	for _, f := range Functions {
		if f.Name == fn {
			return f.Schedule != ""
		}
	}
	return false
}

// jobOf is the scheduled function fn's work on a (nil a: only whether fn is
// a scheduled function): the table JobFor, the tests and the local stack
// use. Function binaries do not link it (see JobWith).
func jobOf(fn Function, a *app.App) (Job, error) {
	switch fn {
	case CloseExpired:
		return a.CloseExpired, nil
	case Reconcile:
		return a.Reconcile, nil
	case ReconcileBill:
		return a.ReconcileBills, nil
	case ShareProfits:
		return a.ShareProfits, nil
	case DispatchWebhooks:
		return a.DispatchJob, nil
	}
	return nil, fmt.Errorf("%s is not a scheduled function", fn)
}

// storeBacked returns fn built from a secret store when PAYFN_SECRET_SOURCE
// names one, and nil when the secrets are in the environment.
func storeBacked(fn Function, getenv func(string) string, logger *slog.Logger) (*Rotating, error) {
	cfg, err := config.Load(getenv)
	if err != nil {
		return nil, fmt.Errorf("load configuration: %w", err)
	}
	if cfg.SecretSource == config.SourceEnv {
		return nil, nil
	}
	return fromStore(fn, getenv, cfg, logger)
}

func fromEnv(fn Function, getenv func(string) string, logger *slog.Logger) (*httpapi.API, *Stack, error) {
	cfg, err := config.Load(getenv)
	if err != nil {
		return nil, nil, fmt.Errorf("load configuration: %w", err)
	}
	parts, ok := partsOf(fn, cfg)
	if !ok {
		return nil, nil, fmt.Errorf("unknown function %q", fn)
	}
	if err := cfg.Need(parts...); err != nil {
		return nil, nil, fmt.Errorf("configure %s: %w", fn, err)
	}
	api, st, err := build(cfg, parts, Options{Logger: logger})
	if err != nil {
		return nil, nil, fmt.Errorf("configure %s: %w", fn, err)
	}
	return api, st, nil
}

// Options adjust how the pieces are built, for the local stack and tests.
type Options struct {
	Logger     *slog.Logger
	Now        func() time.Time // default time.Now
	HTTPClient *http.Client     // for jscode2session; default a 5 s client
	Metrics    io.Writer        // where the stack writes its EMF lines; nil: nowhere
}

// Stack is every function on one mux, and what it holds open.
type Stack struct {
	Handler http.Handler
	Store   *store.Store
	Channel *wxpay.Channel
	App     *app.App
}

// Close releases the store's connections and the channel's background work.
func (s *Stack) Close(ctx context.Context) error {
	var errs []error
	if s.Channel != nil {
		s.Channel.Close()
	}
	if s.Store != nil {
		errs = append(errs, s.Store.Close(ctx))
	}
	return errors.Join(errs...)
}

// NewStack builds every function from cfg and serves them on their routes.
func NewStack(cfg config.Config, opts Options) (*Stack, error) {
	all := []config.Part{config.PartStore, config.PartLogin, config.PartSessions, config.PartPay, config.PartAdmin}
	if err := cfg.Need(all...); err != nil {
		return nil, err
	}
	if cfg.ServiceKey != "" {
		all = append(all, config.PartService)
	}
	if cfg.Identity == config.IdentityPlatform {
		all = append(all, config.PartPlatform)
	}
	if cfg.UsesAlipay() {
		all = append(all, config.PartAlipay)
	}
	api, st, err := build(cfg, all, opts)
	if err != nil {
		return nil, err
	}
	st.Handler = stackWithMetrics(opts.Metrics, api.Routes())
	return st, nil
}

// build makes the parts a function needs and the API over them.
func build(cfg config.Config, parts []config.Part, opts Options) (*httpapi.API, *Stack, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	// The core's lines name the request they were logged for.
	logger = slog.New(httpapi.LogHandler(logger.Handler()))
	st := &Stack{}
	var platform *identity.Platform
	ac := app.Config{OrderTTL: cfg.OrderTTL, Now: opts.Now, Logger: logger, AdminKey: cfg.AdminKey, AdminKeyPrevious: cfg.AdminKeyPrevious,
		MaxOpenOrders: cfg.MaxOpenOrders, QueryInterval: cfg.QueryInterval, Jobs: app.JobOptions{Parallelism: cfg.JobParallelism},
		BoundAppIDs: boundAppIDs(cfg)}
	if cfg.ServiceKey != "" {
		// Any function holding the key delivers a decision's webhooks at
		// once; the dispatcher retries. Without it, events are recorded
		// and the dispatcher alone delivers them.
		ac.ServiceKey = []byte(cfg.ServiceKey)
		if cfg.ServiceKeyPrevious != "" {
			ac.ServiceKeyPrevious = []byte(cfg.ServiceKeyPrevious)
		}
		ac.Webhooks = app.WebhookOptions{
			Sender:       webhook.NewSender(webhook.SenderOptions{AllowPrivate: cfg.WebhookAllowPrivate}),
			AllowPrivate: cfg.WebhookAllowPrivate,
			Inline:       true,
		}
	}
	for _, p := range parts {
		switch p {
		case config.PartStore:
			s, err := store.New(store.Options{URI: cfg.MongoURI, Database: cfg.MongoDatabase, Logger: logger})
			if err != nil {
				return nil, nil, fmt.Errorf("store: %w", err)
			}
			st.Store, ac.Store = s, s
		case config.PartLogin:
			ex, err := identity.NewCodeExchange(identity.CodeExchangeOptions{
				BaseURL: cfg.LoginBaseURL, AppID: cfg.AppID, AppSecret: cfg.AppSecret, HTTPClient: opts.HTTPClient,
			})
			if err != nil {
				return nil, nil, fmt.Errorf("login: %w", err)
			}
			ac.Codes = ex
		case config.PartSessions:
			tok, err := identity.NewTokens([]byte(cfg.SessionSecret), cfg.SessionTTL, opts.Now, []byte(cfg.SessionSecretPrevious))
			if err != nil {
				return nil, nil, fmt.Errorf("sessions: %w", err)
			}
			ac.Sessions = tok
		case config.PartPay:
			ch, err := channel(cfg, logger)
			if err != nil {
				return nil, nil, fmt.Errorf("wechat pay: %w", err)
			}
			st.Channel, ac.Channel = ch, ch
		case config.PartPlatform:
			p, err := identity.NewPlatform(cfg.AppID)
			if err != nil {
				return nil, nil, fmt.Errorf("platform identity: %w", err)
			}
			platform = p
		}
	}
	more, err := moreChannels(cfg, parts, st.Channel, logger)
	if err != nil {
		return nil, nil, err
	}
	ac.Channels = more
	Instrument(&ac) // metrics, and the store's and channel's latency
	st.App = app.New(ac)
	api := httpapi.New(st.App, logger)
	if platform != nil {
		api.UsePlatformIdentity(platform)
	}
	return api, st, nil
}

func channel(cfg config.Config, logger *slog.Logger) (*wxpay.Channel, error) {
	key, err := wxpay.LoadPrivateKey(cfg.MchPrivateKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("merchant private key: %w", err)
	}
	wc := wxpay.Config{
		MchID: cfg.MchID, AppID: cfg.AppID, MchCertSerial: cfg.MchCertSerial, MchPrivateKey: key,
		APIv3Key: cfg.APIv3Key, APIv3KeyPrevious: cfg.APIv3KeyPrevious, NotifyURL: cfg.NotifyURL, RefundNotifyURL: cfg.RefundNotifyURL,
		BaseURL: cfg.PayBaseURL, Timeout: cfg.PayTimeout, Logger: logger, ExtraAppIDs: cfg.ExtraAppIDs,
	}
	if cfg.PublicKeyID != "" {
		pub, err := wxpay.LoadPublicKey(cfg.PublicKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("wechat pay public key: %w", err)
		}
		wc.PublicKeyID, wc.PublicKey = cfg.PublicKeyID, pub
		if cfg.PublicKeyIDPrevious != "" {
			prev, err := wxpay.LoadPublicKey(cfg.PublicKeyPEMPrevious)
			if err != nil {
				return nil, fmt.Errorf("previous wechat pay public key: %w", err)
			}
			wc.PublicKeyIDPrevious, wc.PublicKeyPrevious = cfg.PublicKeyIDPrevious, prev
		}
		wc.PlatformCerts = cfg.AcceptPlatformCerts
	}
	return wxpay.New(wc)
}

// boundAppIDs are the merchant's appids as configured, the default first.
func boundAppIDs(cfg config.Config) []string {
	var ids []string
	if cfg.AppID != "" {
		ids = append(ids, cfg.AppID)
	}
	return append(ids, cfg.ExtraAppIDs...)
}
