package paysim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/payfn/payfn/shared/internal/simkit"
)

// defaultRetrySchedule is WeChat Pay's wait before each notification retry
// after a failed delivery: 15 retries over about 24 hours.
var defaultRetrySchedule = []time.Duration{
	15 * time.Second, 15 * time.Second, 30 * time.Second, 3 * time.Minute,
	10 * time.Minute, 20 * time.Minute, 30 * time.Minute, 30 * time.Minute,
	30 * time.Minute, 60 * time.Minute, 3 * time.Hour, 3 * time.Hour,
	3 * time.Hour, 6 * time.Hour, 6 * time.Hour,
}

// DefaultRetrySchedule returns a copy of WeChat Pay's notification retry
// schedule (15s,15s,30s,3m,10m,20m,30m,30m,30m,60m,3h,3h,3h,6h,6h).
func DefaultRetrySchedule() []time.Duration {
	return append([]time.Duration(nil), defaultRetrySchedule...)
}

// Options configure a Server. MchID, AppID, AppSecret, APIv3Key,
// MerchantSerial and MerchantPublicKey are required.
type Options struct {
	MchID     string
	AppID     string
	AppSecret string // checked by /sns/jscode2session
	// ExtraAppIDs are further appids bound to the merchant: JSAPI prepay
	// and jscode2session accept them as they accept AppID (with the same
	// AppSecret); any other appid is refused (APPID_MCHID_NOT_MATCH, 40013).
	ExtraAppIDs []string

	APIv3Key          string         // exactly 32 bytes
	MerchantSerial    string         // merchant API certificate serial expected in Authorization
	MerchantPublicKey *rsa.PublicKey // verifies the merchant's request signatures

	PlatformKey *rsa.PrivateKey // generated (RSA 2048) when nil
	PublicKeyID string          // default "PUB_KEY_ID_" + 30 digits

	// NotifyWithPlatformCert signs notifications with the platform
	// certificate serial instead of the public key id.
	NotifyWithPlatformCert bool

	// RetrySchedule is the wait before each notification retry; nil means
	// WeChat's schedule. Tests pass short ones. Waits use real timers.
	RetrySchedule []time.Duration
	// DeliveryTimeout bounds one notification delivery (default 5s): a
	// slower answer counts as a failure, as at WeChat.
	DeliveryTimeout time.Duration
	// HTTPClient delivers notifications (default: a client of its own with
	// DeliveryTimeout that does not follow redirects).
	HTTPClient *http.Client

	// Now stamps replies, notifications and expiry checks. The SDK checks
	// reply timestamps against its own clock, so keep it near real time.
	Now    func() time.Time
	Logger *slog.Logger // default discards

	// StatePath, when set, is a JSON file that keeps the trades, prepay_ids
	// and refunds across restarts (the dev stack's data folder): New loads
	// it if it exists, every change is written soon after (a temporary file
	// renamed over it) and Close writes the last. Empty keeps everything in
	// memory, as tests want.
	StatePath string

	// H5URLLifetime is how long an h5_url (H5 prepay, h5.go) can be
	// opened and paid: 5 minutes at WeChat, the default.
	H5URLLifetime time.Duration
	// H5BaseURL is the scheme and host h5_urls point at (the browser opens
	// them), e.g. http://192.168.1.5:8090 for a phone on the LAN. Default:
	// the host the H5 prepay request was sent to.
	H5BaseURL string
}

// Keys are the simulator's WeChat-side secrets, for tools that act as WeChat
// Pay (forging notifications, configuring a channel against the simulator).
// LogValue redacts the secret parts.
type Keys struct {
	MchID, AppID          string
	ExtraAppIDs           []string // the other bound appids (a copy)
	APIv3Key              string
	PlatformPrivateKeyPEM string // PKCS#8
	PublicKeyPEM          string // PKIX; the WeChat Pay public key
	PublicKeyID           string
	PublicKey             *rsa.PublicKey
	PlatformCertPEM       string
	PlatformCertSerial    string
}

// LogValue keeps the private key and the APIv3 key out of logs.
func (k Keys) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("mchid", k.MchID),
		slog.String("appid", k.AppID),
		slog.Any("extra_appids", k.ExtraAppIDs),
		slog.String("public_key_id", k.PublicKeyID),
		slog.String("platform_cert_serial", k.PlatformCertSerial),
	)
}

// Server is the simulator. It is safe for concurrent use.
type Server struct {
	// The state of the areas kept in files of their own (bill.go,
	// merchants.go, sharing.go), made on first use.
	billOnce, merchantOnce, sharingOnce sync.Once
	billSt                              *billState
	merchantSt                          *merchantCerts
	sharingSt                           *sharingState

	mchID, appID, appSecret string
	extraAppIDs             []string
	apiV3Key                string
	merchantSerial          string
	merchantPub             *rsa.PublicKey
	platformKey             *rsa.PrivateKey
	publicKeyID             string
	privPEM, pubPEM         string
	certPEM                 string
	certSerial              string
	certNotBefore           time.Time
	certNotAfter            time.Time
	notifyWithCert          bool
	schedule                []time.Duration
	deliveryTimeout         time.Duration
	hc                      *http.Client
	transport               *http.Transport // owned, for HTTPClient and deliveries
	now                     func() time.Time
	log                     *slog.Logger
	mux                     *http.ServeMux

	// run owns the listener and the background goroutines; its Context
	// ends pending deliveries and slow replies on Close.
	run *simkit.Server

	mu         sync.Mutex
	trades     map[string]*trade
	byTxID     map[string]string
	prepays    map[string]*prepay
	codes      map[string]*loginCode
	deliveries map[string][]Delivery
	jobs       map[string]int // running delivery goroutines per out_trade_no
	refunds    map[string]*refund
	refundCfg  RefundBehaviour
	changed    simkit.Changes // broadcast whenever a delivery is recorded or a job ends
	faults     Faults
	failNext   failure

	h5Lifetime time.Duration // h5.go
	h5Base     string

	state *simkit.StateFile // nil without Options.StatePath
}

type failure struct {
	n       int
	status  int
	code    string
	message string
}

// New validates opts, generates what is missing (platform key, certificate,
// public key id) and returns a Server that is not yet listening.
func New(opts Options) (*Server, error) {
	var errs []error
	if opts.MchID == "" {
		errs = append(errs, errors.New("MchID is empty"))
	}
	if opts.AppID == "" {
		errs = append(errs, errors.New("AppID is empty"))
	}
	for i, id := range opts.ExtraAppIDs {
		if id == "" || id == opts.AppID || slices.Contains(opts.ExtraAppIDs[:i], id) {
			errs = append(errs, fmt.Errorf("ExtraAppIDs[%d] %q is empty or bound already", i, id))
		}
	}
	if opts.AppSecret == "" {
		errs = append(errs, errors.New("AppSecret is empty"))
	}
	if len(opts.APIv3Key) != 32 {
		errs = append(errs, fmt.Errorf("APIv3Key must be 32 bytes, got %d", len(opts.APIv3Key)))
	}
	if opts.MerchantSerial == "" {
		errs = append(errs, errors.New("MerchantSerial is empty"))
	}
	if opts.MerchantPublicKey == nil {
		errs = append(errs, errors.New("MerchantPublicKey is nil"))
	}
	if u, err := url.Parse(opts.H5BaseURL); opts.H5BaseURL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		errs = append(errs, fmt.Errorf("H5BaseURL %q is not an http(s) URL", opts.H5BaseURL))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("paysim options: %w", errors.Join(errs...))
	}

	s := &Server{
		mchID:          opts.MchID,
		appID:          opts.AppID,
		extraAppIDs:    slices.Clone(opts.ExtraAppIDs),
		appSecret:      opts.AppSecret,
		apiV3Key:       opts.APIv3Key,
		merchantSerial: opts.MerchantSerial,
		merchantPub:    opts.MerchantPublicKey,
		platformKey:    opts.PlatformKey,
		publicKeyID:    opts.PublicKeyID,
		notifyWithCert: opts.NotifyWithPlatformCert,
		schedule:       opts.RetrySchedule,
		now:            opts.Now,
		log:            opts.Logger,
		trades:         map[string]*trade{},
		byTxID:         map[string]string{},
		refunds:        map[string]*refund{},
		prepays:        map[string]*prepay{},
		codes:          map[string]*loginCode{},
		deliveries:     map[string][]Delivery{},
		jobs:           map[string]int{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.schedule == nil {
		s.schedule = DefaultRetrySchedule()
	}
	s.deliveryTimeout = opts.DeliveryTimeout
	if s.deliveryTimeout <= 0 {
		s.deliveryTimeout = 5 * time.Second
	}
	if s.platformKey == nil {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("generate platform key: %w", err)
		}
		s.platformKey = k
	}
	if s.publicKeyID == "" {
		s.publicKeyID = "PUB_KEY_ID_" + randDigits(30)
	}
	if err := s.makeCertificate(); err != nil {
		return nil, err
	}
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		s.transport = t.Clone()
	} else {
		s.transport = &http.Transport{}
	}
	s.hc = opts.HTTPClient
	if s.hc == nil {
		s.hc = &http.Client{
			Timeout:   s.deliveryTimeout,
			Transport: s.transport,
			// WeChat does not follow redirects: a 3xx is a failed delivery.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	s.h5Lifetime, s.h5Base = opts.H5URLLifetime, strings.TrimRight(opts.H5BaseURL, "/")
	if s.h5Lifetime <= 0 {
		s.h5Lifetime = defaultH5URLLifetime
	}
	s.state = simkit.NewStateFile("paysim", opts.StatePath, s.encodeState, s.log)
	if err := s.loadState(); err != nil {
		return nil, err
	}
	s.run = simkit.NewServer("paysim", &s.mu, s.log)
	if s.state != nil {
		s.run.Go(func() { s.state.Run(s.run.Context()) })
	}
	s.routes()
	return s, nil
}

// bound reports whether appid is bound to the merchant.
func (s *Server) bound(appid string) bool {
	return appid == s.appID || slices.Contains(s.extraAppIDs, appid)
}

// makeCertificate wraps the platform key in a self-signed certificate whose
// serial prints as 40 uppercase hex digits, like WeChat's, and keeps the PEM
// forms Keys hands out.
func (s *Server) makeCertificate() error {
	serialBytes := make([]byte, 20)
	if _, err := rand.Read(serialBytes); err != nil {
		return fmt.Errorf("certificate serial: %w", err)
	}
	// A first byte in 0x10..0x7f keeps 40 hex digits and a positive
	// 20-octet DER integer.
	serialBytes[0] = 0x10 + serialBytes[0]%0x70
	serial := new(big.Int).SetBytes(serialBytes)
	now := s.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Country: []string{"CN"}, Organization: []string{"Tenpay.com (paysim)"},
			OrganizationalUnit: []string{"Tenpay.com CA Center"}, CommonName: "Tenpay.com Root CA (paysim)",
		},
		NotBefore: now.Add(-time.Hour),
		NotAfter:  now.AddDate(5, 0, 0),
		KeyUsage:  x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &s.platformKey.PublicKey, s.platformKey)
	if err != nil {
		return fmt.Errorf("create platform certificate: %w", err)
	}
	priv, err := x509.MarshalPKCS8PrivateKey(s.platformKey)
	if err != nil {
		return fmt.Errorf("encode platform key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&s.platformKey.PublicKey)
	if err != nil {
		return fmt.Errorf("encode public key: %w", err)
	}
	s.privPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}))
	s.pubPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	s.certPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	s.certSerial = fmt.Sprintf("%X", serial.Bytes())
	s.certNotBefore, s.certNotAfter = tmpl.NotBefore, tmpl.NotAfter
	return nil
}

// Keys returns the simulator's identifiers and keys.
func (s *Server) Keys() Keys {
	return Keys{
		MchID:                 s.mchID,
		AppID:                 s.appID,
		ExtraAppIDs:           slices.Clone(s.extraAppIDs),
		APIv3Key:              s.apiV3Key,
		PlatformPrivateKeyPEM: s.privPEM,
		PublicKeyPEM:          s.pubPEM,
		PublicKeyID:           s.publicKeyID,
		PublicKey:             &s.platformKey.PublicKey,
		PlatformCertPEM:       s.certPEM,
		PlatformCertSerial:    s.certSerial,
	}
}

// ServeHTTP serves the WeChat Pay API, /sns/jscode2session and the /sim/
// control API. Mount it at the root: signatures cover r.RequestURI.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Listen serves on addr (e.g. "127.0.0.1:0") in the background.
func (s *Server) Listen(addr string) error { return s.run.Listen(addr, s) }

// URL is "http://127.0.0.1:PORT" after Listen, "" before.
func (s *Server) URL() string { return s.run.URL() }

// HTTPClient returns a client that sends every request, whatever its host
// (e.g. https://api.mch.weixin.qq.com), to the simulator. Pass it to
// wechatpay-go with option.WithHTTPClient. Call it after Listen.
func (s *Server) HTTPClient() *http.Client {
	to, _ := url.Parse(s.URL())
	return &http.Client{Timeout: 10 * time.Second, Transport: rewriteTransport{to: to, base: s.transport}}
}

type rewriteTransport struct {
	to   *url.URL
	base http.RoundTripper
}

func (t rewriteTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.to == nil || t.to.Host == "" {
		return nil, errors.New("paysim: HTTPClient used before Listen")
	}
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host, r.Host = t.to.Scheme, t.to.Host, t.to.Host
	return t.base.RoundTrip(r)
}

// Close stops serving and ends pending notification retries and slow
// replies, then waits for them.
func (s *Server) Close() error {
	return s.run.Close(func() error {
		s.transport.CloseIdleConnections()
		// The saver has stopped; whatever changed since its last write is
		// written now.
		return s.state.Save()
	})
}
