// Package wxpay is payfn's WeChat Pay APIv3 channel: it implements
// app.Channel (JSAPI prepay, wx.requestPayment parameters, query, close and
// payment notifications) on github.com/wechatpay-apiv3/wechatpay-go, and
// the same merchant's H5 channel (Channel.H5, h5.go).
//
// It supports WeChat Pay public-key mode (recommended; new merchants have no
// platform certificates), platform-certificate mode (certificates
// downloaded lazily through a CertificateDownloaderMgr of its own, never the
// SDK's process-wide one), and both at once for the migration period.
//
// It imports shared/app and the SDK only: never shared/store, shared/runtime,
// shared/paysim or a cloud runtime.
package wxpay

import (
	"cmp"
	"context"
	"crypto/cipher"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/downloader"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/jsapi"

	"github.com/payfn/payfn/shared/app"
)

// DefaultTimeout bounds each HTTP call to WeChat Pay. It stays below a
// function's own timeout so a slow WeChat Pay becomes an error we can answer
// with, not a killed invocation.
const DefaultTimeout = 8 * time.Second

// ErrUnboundAppID is returned, before any request is sent, for an appid
// that is neither Config.AppID nor one of Config.ExtraAppIDs.
var ErrUnboundAppID = errors.New("appid not bound to this merchant")

// appIDRE is the shape of a WeChat appid ("wx" + 16 hex digits; letters up to
// z are allowed so WeChat's documentation examples pass).
var appIDRE = regexp.MustCompile(`^wx[0-9a-z]{16}$`)

// certRefreshInterval limits certificate re-downloads triggered by a
// notification whose serial we do not know: WeChat announces a new
// certificate a day ahead, but a forged serial must not make us hammer it.
const certRefreshInterval = time.Minute

// cst is China Standard Time. A fixed zone avoids depending on tzdata.
var cst = time.FixedZone("CST", 8*3600)

// Config configures a Channel. MchID, AppID, MchCertSerial, MchPrivateKey,
// APIv3Key and NotifyURL are required.
type Config struct {
	MchID, AppID string // AppID is the default appid
	// ExtraAppIDs are further appids bound to the merchant (several
	// mini-programs selling through one merchant). Prepay and PaymentParams
	// accept them besides AppID. Each is "wx" and 16 lowercase letters or
	// digits, none repeated.
	ExtraAppIDs   []string
	MchCertSerial string          // serial of the merchant API certificate
	MchPrivateKey *rsa.PrivateKey // merchant API private key: signs requests and paySign
	APIv3Key      string          // exactly 32 bytes: decrypts notifications and certificates
	// APIv3KeyPrevious, when set (32 bytes), also decrypts notifications:
	// WeChat Pay's retries of a notification encrypted before the merchant
	// changed the key still carry the old encryption.
	APIv3KeyPrevious string
	NotifyURL        string // https, no query string
	// RefundNotifyURL receives refund outcomes; default NotifyURL + "/refund".
	RefundNotifyURL string

	// PublicKeyID and PublicKey select WeChat Pay public-key mode. With
	// neither, platform-certificate mode: certificates are downloaded on
	// first use.
	PublicKeyID string
	PublicKey   *rsa.PublicKey
	// PlatformCerts, with a public key set, also accepts notifications
	// signed by a platform certificate (downloaded when first needed): the
	// combined verifier, picking the key by Wechatpay-Serial, for the
	// migration period. API replies are verified with the public key.
	PlatformCerts bool
	// PublicKeyIDPrevious and PublicKeyPrevious, with a public key set, are
	// a second WeChat Pay public key, accepted by its id (notifications and
	// API replies) while WeChat Pay switches from one key to the other.
	PublicKeyIDPrevious string
	PublicKeyPrevious   *rsa.PublicKey

	// BaseURL, when set (e.g. the simulator's http://127.0.0.1:PORT), sends
	// every request (API calls and the certificate download) there instead
	// of https://api.mch.weixin.qq.com. It also allows an http NotifyURL.
	BaseURL string
	Timeout time.Duration // per HTTP call; default DefaultTimeout
	Logger  *slog.Logger  // default discards
}

// LogValue keeps the private key and the APIv3 key out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("mchid", c.MchID),
		slog.String("appid", c.AppID),
		slog.Any("extra_appids", c.ExtraAppIDs),
		slog.String("mch_cert_serial", c.MchCertSerial),
		slog.String("public_key_id", c.PublicKeyID),
		slog.String("public_key_id_previous", c.PublicKeyIDPrevious),
		slog.String("notify_url", c.NotifyURL),
		slog.String("base_url", c.BaseURL),
	)
}

type mode int

const (
	modePublicKey mode = iota
	modeCertificate
	modeCombined
)

// Channel is the WeChat Pay channel. It is safe for concurrent use.
type Channel struct {
	cfg       Config
	mode      mode
	log       *slog.Logger
	transport *http.Transport
	api       *jsapi.JsapiApiService
	verifier  auth.Verifier
	aead      cipher.AEAD // AES-256-GCM with the APIv3 key, for notification resources
	aeadPrev  cipher.AEAD // the same with the previous APIv3 key; nil when none

	// Platform-certificate state; nil/zero in public-key mode.
	mgr         *downloader.CertificateDownloaderMgr
	certs       core.CertificateVisitor
	dlClient    *core.Client
	certMu      sync.Mutex
	certsReady  bool
	lastRefresh time.Time
	closeOnce   sync.Once
}

var (
	_ app.Channel        = (*Channel)(nil)
	_ app.Resigner       = (*Channel)(nil)
	_ app.RefundNotifier = (*Channel)(nil)
)

// Name is the channel orders record: WeChat Pay JSAPI.
func (c *Channel) Name() string { return app.ChannelWeChatJSAPI }

// Provider is WeChat Pay: its notifications come to verifyPayment.
func (c *Channel) Provider() string { return app.ProviderWeChatPay }

// New validates cfg and builds the channel. It does no network I/O: in
// platform-certificate mode the certificates are downloaded on first use.
func New(cfg Config) (*Channel, error) {
	cfg.ExtraAppIDs = slices.Clone(cfg.ExtraAppIDs) // the caller's slice may change
	if err := validate(&cfg); err != nil {
		return nil, fmt.Errorf("wxpay config: %w", err)
	}
	c := &Channel{cfg: cfg, log: cfg.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		c.transport = t.Clone() // our own pool; the global transport stays untouched
	} else {
		c.transport = &http.Transport{}
	}
	var rt http.RoundTripper = c.transport
	if cfg.BaseURL != "" {
		to, _ := url.Parse(cfg.BaseURL) // validated
		rt = rewriteTransport{to: to, base: c.transport}
	}
	hc := &http.Client{Timeout: cfg.Timeout, Transport: rt}

	ctx := context.Background()
	switch {
	case cfg.PublicKeyID == "":
		c.mode = modeCertificate
	case cfg.PlatformCerts:
		c.mode = modeCombined
	default:
		c.mode = modePublicKey
	}
	if c.mode != modePublicKey {
		// The manager only starts a 24-hour refresh ticker here; nothing is
		// downloaded until a downloader is registered in ensureCerts.
		c.mgr = downloader.NewCertificateDownloaderMgr(ctx)
		c.certs = c.mgr.GetCertificateVisitor(cfg.MchID)
		dl, err := core.NewClient(ctx,
			option.WithMerchantCredential(cfg.MchID, cfg.MchCertSerial, cfg.MchPrivateKey),
			option.WithoutValidator(), // the SDK checks refreshes against the first download
			option.WithHTTPClient(hc))
		if err != nil {
			c.mgr.Stop()
			return nil, fmt.Errorf("wxpay certificate client: %w", err)
		}
		c.dlClient = dl
	}
	switch {
	case cfg.PublicKeyIDPrevious != "":
		c.verifier = newKeysVerifier(cfg, c.certs)
	case c.mode == modePublicKey:
		c.verifier = verifiers.NewSHA256WithRSAPubkeyVerifier(cfg.PublicKeyID, *cfg.PublicKey)
	case c.mode == modeCertificate:
		c.verifier = verifiers.NewSHA256WithRSAVerifier(c.certs)
	case c.mode == modeCombined:
		c.verifier = verifiers.NewSHA256WithRSACombinedVerifier(c.certs, cfg.PublicKeyID, *cfg.PublicKey)
	}
	client, err := core.NewClient(ctx,
		option.WithMerchantCredential(cfg.MchID, cfg.MchCertSerial, cfg.MchPrivateKey),
		option.WithVerifier(c.verifier),
		option.WithHTTPClient(hc))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("wxpay client: %w", err)
	}
	c.api = &jsapi.JsapiApiService{Client: client}
	if c.aead, err = newAEAD(cfg.APIv3Key); err == nil && cfg.APIv3KeyPrevious != "" {
		c.aeadPrev, err = newAEAD(cfg.APIv3KeyPrevious)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("wxpay notification cipher: %w", err)
	}
	return c, nil
}

func validate(cfg *Config) error {
	var errs []error
	if cfg.MchID == "" {
		errs = append(errs, errors.New("MchID is empty"))
	}
	if cfg.AppID == "" {
		errs = append(errs, errors.New("AppID is empty"))
	}
	for i, id := range cfg.ExtraAppIDs {
		switch {
		case !appIDRE.MatchString(id):
			errs = append(errs, fmt.Errorf("ExtraAppIDs[%d] %q is not an appid (wx and 16 lowercase letters or digits)", i, id))
		case id == cfg.AppID:
			errs = append(errs, fmt.Errorf("ExtraAppIDs[%d] %q is AppID already", i, id))
		case slices.Contains(cfg.ExtraAppIDs[:i], id):
			errs = append(errs, fmt.Errorf("ExtraAppIDs[%d] %q is listed twice", i, id))
		}
	}
	if cfg.MchCertSerial == "" {
		errs = append(errs, errors.New("MchCertSerial is empty"))
	}
	if cfg.MchPrivateKey == nil {
		errs = append(errs, errors.New("MchPrivateKey is nil"))
	}
	if len(cfg.APIv3Key) != 32 {
		// aes.NewCipher would silently accept 16 or 24 bytes as AES-128/192.
		errs = append(errs, fmt.Errorf("APIv3Key must be 32 bytes, got %d", len(cfg.APIv3Key)))
	}
	if (cfg.PublicKeyID == "") != (cfg.PublicKey == nil) {
		errs = append(errs, errors.New("PublicKeyID and PublicKey must be set together"))
	}
	if cfg.APIv3KeyPrevious != "" && len(cfg.APIv3KeyPrevious) != 32 {
		errs = append(errs, fmt.Errorf("APIv3KeyPrevious must be 32 bytes, got %d", len(cfg.APIv3KeyPrevious)))
	}
	if (cfg.PublicKeyIDPrevious == "") != (cfg.PublicKeyPrevious == nil) {
		errs = append(errs, errors.New("PublicKeyIDPrevious and PublicKeyPrevious must be set together"))
	}
	if cfg.PublicKeyIDPrevious != "" && cfg.PublicKeyID == "" {
		errs = append(errs, errors.New("PublicKeyIDPrevious needs a current PublicKeyID"))
	}
	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("BaseURL %q is not an http(s) URL", cfg.BaseURL))
		}
	}
	if u, err := url.Parse(cfg.NotifyURL); err != nil || u.Host == "" {
		errs = append(errs, fmt.Errorf("NotifyURL %q is not an absolute URL", cfg.NotifyURL))
	} else {
		if u.RawQuery != "" || u.ForceQuery {
			errs = append(errs, errors.New("NotifyURL must not have a query string"))
		}
		if u.Scheme != "https" && !(u.Scheme == "http" && cfg.BaseURL != "") {
			errs = append(errs, errors.New("NotifyURL must be https"))
		}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return errors.Join(errs...)
}

// Close stops the certificate refresher and releases idle connections.
func (c *Channel) Close() {
	c.closeOnce.Do(func() {
		if c.mgr != nil {
			c.mgr.Stop()
		}
		c.transport.CloseIdleConnections()
	})
}

// AppID is the default appid: Prepay and PaymentParams use it when given
// none.
func (c *Channel) AppID() string { return c.cfg.AppID }

// AppIDs returns every appid bound to the merchant, AppID first, then
// Config.ExtraAppIDs in order. The slice is a copy.
func (c *Channel) AppIDs() []string {
	return append([]string{c.cfg.AppID}, c.cfg.ExtraAppIDs...)
}

// appID resolves a requested appid: "" is the default, a bound one is
// itself, anything else wraps ErrUnboundAppID.
func (c *Channel) appID(id string) (string, error) {
	if id == "" || id == c.cfg.AppID || slices.Contains(c.cfg.ExtraAppIDs, id) {
		return cmp.Or(id, c.cfg.AppID), nil
	}
	return "", fmt.Errorf("%w: %q (merchant %s)", ErrUnboundAppID, id, c.cfg.MchID)
}

// MchID is the merchant id notifications must carry.
func (c *Channel) MchID() string { return c.cfg.MchID }

// ensureCerts makes sure platform certificates are loaded, downloading
// them the first time. When serial is given and unknown, it re-downloads at
// most once per certRefreshInterval (WeChat rotates certificates). A failed
// download wraps app.ErrChannelUnavailable, so a notification handler
// answers 5xx and WeChat Pay retries.
func (c *Channel) ensureCerts(ctx context.Context, serial string) error {
	c.certMu.Lock()
	defer c.certMu.Unlock()
	if !c.certsReady {
		if err := c.mgr.RegisterDownloaderWithClient(ctx, c.dlClient, c.cfg.MchID, c.cfg.APIv3Key); err != nil {
			return unavailable("download platform certificates", err)
		}
		c.certsReady = true
		c.lastRefresh = time.Now()
		c.log.InfoContext(ctx, "wxpay platform certificates downloaded", "serial", c.certs.GetNewestSerial(ctx))
		return nil
	}
	if serial == "" {
		return nil
	}
	if _, ok := c.certs.Get(ctx, serial); ok || time.Since(c.lastRefresh) < certRefreshInterval {
		return nil
	}
	c.lastRefresh = time.Now()
	c.mgr.DownloadCertificates(ctx) // errors keep the old certificates, which is what we want
	return nil
}

// ready loads certificates before an API call when replies can only be
// verified with them (platform-certificate mode).
func (c *Channel) ready(ctx context.Context) error {
	if c.mode != modeCertificate {
		return nil
	}
	return c.ensureCerts(ctx, "")
}

type rewriteTransport struct {
	to   *url.URL
	base http.RoundTripper
}

// RoundTrip sends the request to the configured base URL. The request
// signature covers only path and query, so rewriting the host keeps it valid.
func (t rewriteTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host, r.Host = t.to.Scheme, t.to.Host, t.to.Host
	return t.base.RoundTrip(r)
}

// LoadPrivateKey parses a PEM RSA private key, PKCS#8 ("PRIVATE KEY", as
// WeChat's tool exports it) or PKCS#1 ("RSA PRIVATE KEY"). Errors never
// contain key material.
func LoadPrivateKey(pemText string) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		return nil, errors.New("private key: no PEM block")
	}
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("private key: invalid PKCS#8")
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, errors.New("private key: not RSA")
		}
		return rk, nil
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("private key: invalid PKCS#1")
		}
		return k, nil
	}
	return nil, fmt.Errorf("private key: unexpected PEM type %q", block.Type)
}

// LoadPublicKey parses a PEM RSA public key: PKIX ("PUBLIC KEY", as WeChat
// Pay's pub_key.pem) or PKCS#1 ("RSA PUBLIC KEY").
func LoadPublicKey(pemText string) (*rsa.PublicKey, error) {
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		return nil, errors.New("public key: no PEM block")
	}
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, errors.New("public key: not RSA")
		}
		return rk, nil
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("public key: unexpected PEM type %q", block.Type)
}
