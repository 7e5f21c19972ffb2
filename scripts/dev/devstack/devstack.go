// Package devstack assembles the local stack behind `go run ./scripts/dev`,
// so tests can start exactly what a developer starts. Service mode is on: a
// demo app is seeded with a webhook endpoint on the in-process sample
// receiver (scripts/receiver), and the dispatcher runs every second. Every
// payment channel is on (PAYFN_CHANNELS unless set): WeChat Pay JSAPI and
// H5 against the WeChat Pay simulator, Alipay wap and mini-program against
// the Alipay simulator (unless ALIPAY_APP_ID names a real application), and
// the demo app enables all four.
//
// It links the embedded store and the simulators, so no function may import it.
package devstack

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/payfn/payfn/scripts/receiver/receiver"
	"github.com/payfn/payfn/shared/alipaysim"
	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/config"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/setup"
	"github.com/payfn/payfn/shared/store/embedded"
)

// Local merchant identifiers used with the simulator.
const (
	LocalAppID = "wxd0c0ffee0000f00d"
	LocalMchID = "1900000109"
)

// SimStateFile, in the data folder, holds the simulator's trades and refunds.
const SimStateFile = "wechatpay-sim-state.json"

// LocalAlipayAppID is the Alipay application the Alipay simulator plays.
const LocalAlipayAppID = "2021000000000001"

// AlipaySimDir, in the data folder, holds the Alipay simulator's keys and
// certificates under the names Alipay's open platform uses, and its trades
// and refunds (alipaysim-state.json): outside tools act as Alipay or as the
// merchant with them (see shared/alipaysim).
const AlipaySimDir = "alipay-sim"

// AllChannels are the channels the local stack offers unless PAYFN_CHANNELS
// says otherwise.
var AllChannels = []string{app.ChannelWeChatJSAPI, app.ChannelWeChatH5, app.ChannelAlipayWap, app.ChannelAlipayMini}

// Options configure the local stack.
type Options struct {
	Addr    string // functions and checkout page; "127.0.0.1:0" picks a port
	SimAddr string // the WeChat Pay simulator
	// AlipaySimAddr is the Alipay simulator's; "" picks a port.
	AlipaySimAddr string
	DataDir       string // embedded store data and local keys
	// Fresh moves the data folder aside first (keeping the local keys), so
	// the stack starts with an empty store and simulator: the embedded
	// store scans whole collections, and slows as orders accumulate.
	Fresh  bool
	Getenv func(string) string
	Logger *slog.Logger
	// JobInterval is how often closeExpired and reconcile run (default 1m).
	JobInterval time.Duration
	// DispatchInterval is how often the webhook dispatcher runs (default 1s).
	DispatchInterval time.Duration
	// SimRetrySchedule overrides the simulator's notification retry waits
	// (tests use short ones).
	SimRetrySchedule []time.Duration
}

// Stack is the running local stack.
type Stack struct {
	URL      string // functions and checkout page
	SimURL   string // "" when real WeChat Pay is configured
	MongoURI string
	Embedded bool
	DataDir  string
	OldData  string // where Fresh moved the previous data folder; "" if it did not
	Sim      *paysim.Server
	// Alipay is the Alipay simulator and AlipayURL its address; nil and ""
	// when a real Alipay application is configured (ALIPAY_APP_ID) or no
	// Alipay channel is on.
	Alipay    *alipaysim.Server
	AlipayURL string
	App       *setup.Stack
	Config    config.Config
	// AllInterfaces is set when Addr listens on every interface (0.0.0.0,
	// [::]), so the page is reachable from the LAN while URL (and the
	// notify_url) stay on loopback.
	AllInterfaces bool
	// Demo is the service-mode app the stack seeds and its credentials;
	// DemoShown is set on the start that made them (they are shown once).
	Demo      DemoApp
	DemoShown bool

	db       *embedded.Server
	srv      *http.Server
	log      *slog.Logger
	stopJobs context.CancelFunc
	jobs     sync.WaitGroup
	receiver *receiver.Handler

	mu       sync.Mutex
	received []receiver.Event
}

// runJobs plays the cloud schedules locally: closeExpired and reconcile on
// a ticker.
func (s *Stack) runJobs(ctx context.Context, every time.Duration) {
	defer s.jobs.Done()
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, job := range []func(context.Context) (app.JobReport, error){s.App.App.CloseExpired, s.App.App.Reconcile} {
			if rep, err := job(ctx); err != nil {
				s.log.Warn("local job failed", "job", rep.Job, "err", err)
			}
		}
	}
}

// runDispatcher plays dispatchWebhooks, faster than its cloud schedule so
// retries show up while you watch.
func (s *Stack) runDispatcher(ctx context.Context, every time.Duration) {
	defer s.jobs.Done()
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.App.App.DispatchWebhooks(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("local webhook dispatcher failed", "err", err)
		}
	}
}

// localSecrets are generated on the first run and kept in the data folder,
// so restarts keep their keys, sessions and orders.
type localSecrets struct {
	MerchantPrivateKeyPEM string `json:"merchant_private_key_pem"`
	MerchantSerial        string `json:"merchant_serial"`
	APIv3Key              string `json:"apiv3_key"`
	AppSecret             string `json:"app_secret"`
	SessionSecret         string `json:"session_secret"`
	AdminKey              string `json:"admin_key"`
	ServiceKey            string `json:"service_key"`
	PlatformPrivateKeyPEM string `json:"platform_private_key_pem"`
}

// Start brings the stack up and returns once every part accepts requests.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	if o.Getenv == nil {
		o.Getenv = func(string) string { return "" }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var oldData string
	if o.Fresh {
		if oldData, err = MoveAside(o.DataDir, time.Now()); err != nil {
			return nil, err
		}
		if oldData != "" {
			o.Logger.Info("moved the old data folder aside", "from", o.DataDir, "to", oldData)
		}
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	sec, err := loadSecrets(filepath.Join(o.DataDir, "local-secrets.json"))
	if err != nil {
		return nil, err
	}
	cfg, err := config.Load(o.Getenv)
	if err != nil {
		return nil, err
	}
	if o.Fresh && cfg.MongoURI != "" {
		o.Logger.Warn("-fresh empties the data folder only; the database MONGODB_URI names keeps its data")
	}
	s := &Stack{DataDir: o.DataDir, OldData: oldData, log: o.Logger}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	if cfg.MongoURI == "" {
		s.db, err = embedded.Start(ctx, embedded.Options{Dir: filepath.Join(o.DataDir, "db"), Logger: o.Logger})
		if err != nil {
			return nil, fmt.Errorf("embedded store: %w", err)
		}
		cfg.MongoURI, s.Embedded = s.db.URI(), true
	}
	s.MongoURI = cfg.MongoURI

	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", o.Addr, err)
	}
	s.URL, s.AllInterfaces = localURL(ln.Addr())
	if cfg.SessionSecret == "" {
		cfg.SessionSecret = sec.SessionSecret
	}
	if cfg.AdminKey == "" {
		cfg.AdminKey = sec.AdminKey
	}
	// Service mode is on: apps, the signed server API and webhooks, which
	// go to loopback here (the sample receiver below).
	if cfg.ServiceKey == "" {
		cfg.ServiceKey = sec.ServiceKey
	}
	cfg.WebhookAllowPrivate = true
	if cfg.MchID == "" {
		if err := s.startSimulator(&cfg, sec, o); err != nil {
			ln.Close()
			return nil, err
		}
	}
	// Every channel, unless PAYFN_CHANNELS chooses.
	if strings.TrimSpace(o.Getenv("PAYFN_CHANNELS")) == "" {
		cfg.Channels = append([]string(nil), AllChannels...)
	}
	if cfg.UsesAlipay() && cfg.Alipay.AppID == "" {
		if err := s.startAlipaySimulator(&cfg, o); err != nil {
			ln.Close()
			return nil, err
		}
	}
	s.Config = cfg

	s.App, err = setup.NewStack(cfg, setup.Options{Logger: o.Logger})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("functions: %w", err)
	}
	seedCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	// The indexes up front, as a deploy step does, so no request of the
	// stack's waits for them.
	if err := s.App.Store.EnsureIndexes(seedCtx); err != nil {
		ln.Close()
		return nil, fmt.Errorf("store indexes: %w", err)
	}
	if err := s.App.Store.UpsertProducts(seedCtx, DemoProducts()...); err != nil {
		ln.Close()
		return nil, fmt.Errorf("seed demo products: %w", err)
	}
	if err := s.seedDemoApp(seedCtx); err != nil {
		ln.Close()
		return nil, fmt.Errorf("seed the demo app: %w", err)
	}
	s.receiver, err = receiver.New(s.Demo.WebhookSecret, o.Logger.With("component", "sample-receiver"), s.record)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("sample receiver: %w", err)
	}

	s.srv = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	jobCtx, stopJobs := context.WithCancel(context.Background())
	s.stopJobs = stopJobs
	s.jobs.Add(2)
	go s.runJobs(jobCtx, o.JobInterval)
	go s.runDispatcher(jobCtx, o.DispatchInterval)
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("local stack server stopped", "err", err)
		}
	}()
	return s, nil
}

func (s *Stack) startSimulator(cfg *config.Config, sec localSecrets, o Options) error {
	mchKey, err := parseKey(sec.MerchantPrivateKeyPEM)
	if err != nil {
		return fmt.Errorf("local merchant key: %w", err)
	}
	platformKey, err := parseKey(sec.PlatformPrivateKeyPEM)
	if err != nil {
		return fmt.Errorf("local platform key: %w", err)
	}
	cfg.AppID, cfg.MchID = LocalAppID, LocalMchID
	cfg.AppSecret, cfg.APIv3Key = sec.AppSecret, sec.APIv3Key
	cfg.MchCertSerial, cfg.MchPrivateKeyPEM = sec.MerchantSerial, sec.MerchantPrivateKeyPEM
	cfg.NotifyURL = s.URL + "/notify/wechatpay"
	sim, err := paysim.New(paysim.Options{
		MchID: cfg.MchID, AppID: cfg.AppID, AppSecret: cfg.AppSecret, APIv3Key: cfg.APIv3Key,
		MerchantSerial: cfg.MchCertSerial, MerchantPublicKey: &mchKey.PublicKey,
		PlatformKey: platformKey, PublicKeyID: "PUB_KEY_ID_0114000000000000000000000000000001",
		RetrySchedule: o.SimRetrySchedule, Logger: o.Logger,
		// Trades and refunds outlive a restart, as the orders in the store
		// do: without this, paying or refunding an order made before the
		// restart failed with "unknown prepay_id" or REFUND_REJECTED.
		StatePath: filepath.Join(s.DataDir, SimStateFile),
	})
	if err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	s.Sim = sim
	if err := sim.Listen(o.SimAddr); err != nil {
		return fmt.Errorf("simulator listen %s: %w", o.SimAddr, err)
	}
	s.SimURL = sim.URL()
	keys := sim.Keys()
	cfg.PublicKeyID, cfg.PublicKeyPEM = keys.PublicKeyID, keys.PublicKeyPEM
	cfg.PayBaseURL, cfg.LoginBaseURL = s.SimURL, s.SimURL
	return writeSimKeys(filepath.Join(s.DataDir, "wechatpay-sim.json"), keys, s.SimURL, cfg.MchCertSerial)
}

// startAlipaySimulator starts the Alipay simulator with its keys and state
// in the data folder, and points the Alipay settings at it: public-key mode,
// the merchant key the simulator generated (kept in its folder), and
// alipayNotify on this stack as the notify URL.
func (s *Stack) startAlipaySimulator(cfg *config.Config, o Options) error {
	sim, err := alipaysim.New(alipaysim.Options{
		AppID: LocalAlipayAppID, MerchantName: "payfn local stack",
		DataDir: filepath.Join(s.DataDir, AlipaySimDir),
		// Alipay's 8 tries over 25 hours, in 25 seconds, so a failed
		// notification is seen retried while you watch.
		RetryScale: 1.0 / 3600, Logger: o.Logger,
	})
	if err != nil {
		return fmt.Errorf("alipay simulator: %w", err)
	}
	s.Alipay = sim
	addr := o.AlipaySimAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if err := sim.Listen(addr); err != nil {
		return fmt.Errorf("alipay simulator listen %s: %w", addr, err)
	}
	s.AlipayURL = sim.URL()
	k := sim.Keys()
	cfg.Alipay.AppID, cfg.Alipay.SellerID, cfg.Alipay.MiniAppID = k.AppID, k.SellerID, k.AppID
	cfg.Alipay.AppPrivateKeyPEM, cfg.Alipay.PublicKeyPEM = k.AppPrivateKeyPEM, k.AlipayPublicKeyPEM
	cfg.Alipay.GatewayURL = sim.GatewayURL()
	cfg.Alipay.NotifyURL = s.URL + "/notify/alipay"
	return nil
}

// writeSimKeys leaves the simulator's WeChat-side secrets where outside
// tools (a script forging a notification, say) can act as WeChat Pay.
func writeSimKeys(path string, k paysim.Keys, url, merchantSerial string) error {
	b, err := json.MarshalIndent(map[string]string{
		"simulator_url":            url,
		"mchid":                    k.MchID,
		"appid":                    k.AppID,
		"apiv3_key":                k.APIv3Key,
		"platform_private_key_pem": k.PlatformPrivateKeyPEM,
		"public_key_pem":           k.PublicKeyPEM,
		"public_key_id":            k.PublicKeyID,
		"platform_cert_pem":        k.PlatformCertPEM,
		"platform_cert_serial":     k.PlatformCertSerial,
		"merchant_serial":          merchantSerial,
	}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// localURL is the base URL for a listener: its own address, or loopback when
// it listens on every interface ("http://0.0.0.0:8080" is no address to
// send a notification or a browser to).
func localURL(a net.Addr) (string, bool) {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return "http://" + a.String(), false
	}
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp.Port)), true
}

// lanURLs lists the page's addresses on this machine's private networks, for
// opening it from a phone or another computer.
func lanURLs(base string) []string {
	u, err := url.Parse(base)
	if err != nil {
		return nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.IsPrivate() {
			out = append(out, "http://"+net.JoinHostPort(n.IP.String(), u.Port())+"/")
		}
	}
	return out
}

// Summary says where everything is.
func (s *Stack) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "payfn local stack\n")
	fmt.Fprintf(&b, "  checkout page   %s/\n", s.URL)
	if s.AllInterfaces {
		for _, u := range lanURLs(s.URL) {
			fmt.Fprintf(&b, "                  %s (LAN)\n", u)
		}
	}
	fmt.Fprintf(&b, "  functions       POST %s/login /createOrder /pay /queryOrder\n", s.URL)
	fmt.Fprintf(&b, "  merchant        POST %s/admin/refund (X-Payfn-Admin-Key in %s)\n", s.URL, filepath.Join(s.DataDir, "local-secrets.json"))
	fmt.Fprintf(&b, "  notify_url      %s (refunds: /refund)\n", s.Config.NotifyURL)
	fmt.Fprintf(&b, "  jobs            closeExpired and reconcile every minute, dispatchWebhooks every second\n")
	if s.Embedded {
		fmt.Fprintf(&b, "  store           embedded FerretDB at %s (data in %s)\n", s.MongoURI, filepath.Join(s.DataDir, "db"))
	} else {
		fmt.Fprintf(&b, "  store           MONGODB_URI (database %s)\n", s.Config.MongoDatabase)
	}
	if s.Sim != nil {
		fmt.Fprintf(&b, "  WeChat Pay      simulator at %s (keys in %s)\n", s.SimURL, filepath.Join(s.DataDir, "wechatpay-sim.json"))
	} else {
		fmt.Fprintf(&b, "  WeChat Pay      merchant %s (real)\n", s.Config.MchID)
	}
	switch {
	case s.Alipay != nil:
		fmt.Fprintf(&b, "  Alipay          simulator at %s (gateway %s, keys in %s)\n", s.AlipayURL, s.Config.Alipay.GatewayURL, filepath.Join(s.DataDir, AlipaySimDir))
		fmt.Fprintf(&b, "                  notify_url %s\n", s.Config.Alipay.NotifyURL)
	case s.Config.UsesAlipay():
		fmt.Fprintf(&b, "  Alipay          application %s (real)\n", s.Config.Alipay.AppID)
	}
	fmt.Fprintf(&b, "  channels        %s\n", strings.Join(s.Config.Channels, ", "))
	if s.OldData != "" {
		fmt.Fprintf(&b, "  old data        moved to %s (keys kept here; delete it when you no longer need it)\n", s.OldData)
	}
	fmt.Fprintf(&b, "  service mode    signed server API %s/v1/, apps at %s/admin/apps (go run ./scripts/payfnctl)\n", s.URL, s.URL)
	fmt.Fprintf(&b, "  demo app        %q, product %s, webhooks to the sample receiver at %s (it logs each one)\n", s.Demo.AppID, DemoProductID, s.Demo.EndpointURL)
	demoFile := filepath.Join(s.DataDir, DemoFile)
	if s.DemoShown {
		fmt.Fprintf(&b, "                  API key %s, secret %s\n", s.Demo.KeyID, s.Demo.KeySecret)
		fmt.Fprintf(&b, "                  webhook secret %s\n", s.Demo.WebhookSecret)
		fmt.Fprintf(&b, "                  (new secrets: shown once here, kept in %s)\n", demoFile)
	} else {
		fmt.Fprintf(&b, "                  API key %s (secrets in %s)\n", s.Demo.KeyID, demoFile)
	}
	fmt.Fprintf(&b, "  try it          %s\n", s.TryCommand())
	fmt.Fprintf(&b, "press Ctrl-C to stop\n")
	return b.String()
}

// Close stops the server, the simulator and the store.
func (s *Stack) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	if s.stopJobs != nil {
		s.stopJobs()
		s.jobs.Wait()
	}
	if s.srv != nil {
		errs = append(errs, s.srv.Shutdown(ctx))
	}
	if s.Sim != nil {
		errs = append(errs, s.Sim.Close())
	}
	if s.Alipay != nil {
		errs = append(errs, s.Alipay.Close())
	}
	if s.App != nil {
		errs = append(errs, s.App.Close(ctx))
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
	}
	return errors.Join(errs...)
}

// DemoProducts are seeded into the local store on every start.
func DemoProducts() []order.Product {
	return []order.Product{
		{ID: "coffee-latte", Title: "Latte (large)", Summary: "Scan-to-order at the counter", Description: "Double shot, whole milk.", Image: "☕", PriceFen: 2800, Active: true},
		{ID: "article-42", Title: "Paid article: The answer", Summary: "Paid reading", Description: "One article, yours to keep.", Image: "📄", PriceFen: 100, Active: true},
		{ID: "member-month", Title: "Membership, 1 month", Summary: "Membership", Description: "All articles for 30 days.", Image: "⭐", PriceFen: 1990, Active: true},
		{ID: "retired-mug", Title: "Retired mug", Summary: "No longer sold", Description: "Kept to show an inactive product.", Image: "🍵", PriceFen: 5000, Active: false},
	}
}

// MoveAside renames the data folder dir to dir-old-<UTC time> and starts a
// new dir holding only the local keys (local-secrets.json), so admin keys
// and merchant settings stay the same while the store and the simulator
// start empty. It returns where the old folder went, or "" when dir did not
// exist. Nothing is deleted: the old folder is the user's to remove.
func MoveAside(dir string, now time.Time) (string, error) {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("fresh data folder: %w", err)
	}
	old := filepath.Clean(dir) + "-old-" + now.UTC().Format("20060102T150405Z")
	if err := os.Rename(dir, old); err != nil {
		return "", fmt.Errorf("fresh data folder: move %s aside: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return old, fmt.Errorf("fresh data folder: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(old, "local-secrets.json"))
	if errors.Is(err, os.ErrNotExist) {
		return old, nil
	}
	if err != nil {
		return old, fmt.Errorf("fresh data folder: keep local keys: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "local-secrets.json"), b, 0o600); err != nil {
		return old, fmt.Errorf("fresh data folder: keep local keys: %w", err)
	}
	return old, nil
}

func loadSecrets(path string) (localSecrets, error) {
	var sec localSecrets
	b, err := os.ReadFile(path)
	if err == nil {
		if err := json.Unmarshal(b, &sec); err != nil {
			return sec, fmt.Errorf("read %s: %w (delete it to make new local keys)", path, err)
		}
		if sec.AdminKey != "" && sec.ServiceKey != "" {
			return sec, nil
		}
		// A data folder from before refunds (the admin key) or service
		// mode (the service key) existed.
		if sec.AdminKey == "" {
			sec.AdminKey = randomHex(32)
		}
		if sec.ServiceKey == "" {
			sec.ServiceKey = randomHex(32)
		}
		return sec, saveSecrets(path, sec)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return sec, fmt.Errorf("read %s: %w", path, err)
	}
	if sec.MerchantPrivateKeyPEM, err = newKeyPEM(); err != nil {
		return sec, err
	}
	if sec.PlatformPrivateKeyPEM, err = newKeyPEM(); err != nil {
		return sec, err
	}
	sec.MerchantSerial = strings.ToUpper(randomHex(20))
	sec.APIv3Key = randomHex(16) // 32 ASCII bytes
	sec.AppSecret = randomHex(16)
	sec.SessionSecret = randomHex(32)
	sec.AdminKey = randomHex(32)
	sec.ServiceKey = randomHex(32)
	return sec, saveSecrets(path, sec)
}

func saveSecrets(path string, sec localSecrets) error {
	b, err := json.MarshalIndent(sec, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func newKeyPEM() (string, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", fmt.Errorf("generate RSA key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", fmt.Errorf("encode RSA key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

func parseKey(pemText string) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an RSA key")
	}
	return rk, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
