package alipay

import (
	"crypto/md5"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	sdk "github.com/smartwalle/alipay/v3"

	"github.com/payfn/payfn/shared/app"
)

// DefaultGatewayURL is Alipay's production OpenAPI gateway.
const DefaultGatewayURL = "https://openapi.alipay.com/gateway.do"

// DefaultTimeout bounds each call to the gateway; it stays below a
// function's own timeout.
const DefaultTimeout = 8 * time.Second

// maxReply bounds a gateway reply read into memory.
const maxReply = 1 << 20

// ErrUnboundAppID is returned, before anything is sent, for an appid other
// than Config.AppID.
var ErrUnboundAppID = errors.New("appid is not this Alipay application")

// cst is China Standard Time, in which Alipay writes and reads every time.
// A fixed zone avoids depending on tzdata.
var cst = time.FixedZone("CST", 8*3600)

const timeLayout = "2006-01-02 15:04:05"

// Config configures a Client. AppID, SellerID, AppPrivateKeyPEM, NotifyURL
// and exactly one key mode are required: PublicKeyPEM (public-key mode), or
// AppCertPEM, RootCertPEM and PublicCertPEM (certificate mode). Keys and
// certificates are PEM or bare Base64 DER, as Alipay's key tool writes them.
type Config struct {
	AppID            string // the application's app_id (APPID), what requests and notifications carry
	SellerID         string // the merchant's PID (2088…), what notifications name as seller_id
	AppPrivateKeyPEM string // the application's RSA private key, PKCS#1 or PKCS#8: signs requests
	PublicKeyPEM     string // Alipay's public key (PKIX or PKCS#1): public-key mode

	AppCertPEM    string // appCertPublicKey_<appid>.crt: the application's public-key certificate
	RootCertPEM   string // alipayRootCert.crt: Alipay's root certificates
	PublicCertPEM string // alipayCertPublicKey_RSA2.crt: Alipay's public-key certificate

	// GatewayURL is the OpenAPI gateway; default DefaultGatewayURL (the
	// simulator's http://127.0.0.1:PORT/gateway.do locally, or Alipay's
	// sandbox). A plain-http gateway also allows a plain-http NotifyURL.
	GatewayURL string
	NotifyURL  string // where Alipay posts notifications (the alipayNotify function): http(s), no query
	// MiniAppID is the Alipay mini-program that invokes my.tradePay
	// (op_app_id of alipay.trade.create); default AppID.
	MiniAppID string
	Timeout   time.Duration // per gateway call; default DefaultTimeout
	Logger    *slog.Logger  // default discards
	// HTTPClient, when set, lends its Transport (tests: the simulator's
	// loopback); the Client applies Timeout itself.
	HTTPClient *http.Client
}

// LogValue keeps the private key out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("app_id", c.AppID),
		slog.String("seller_id", c.SellerID),
		slog.Bool("cert_mode", c.certMode()),
		slog.String("gateway_url", c.GatewayURL),
		slog.String("notify_url", c.NotifyURL),
		slog.String("mini_app_id", c.MiniAppID),
	)
}

func (c Config) certMode() bool {
	return c.AppCertPEM != "" || c.RootCertPEM != "" || c.PublicCertPEM != ""
}

// Client is one Alipay application. It is safe for concurrent use; Wap
// and Mini are its two channels.
type Client struct {
	cfg Config
	log *slog.Logger
	sdk *sdk.Client
	// pub verifies notifications: Alipay's public key, or the key of its
	// public-key certificate, whose SN is certSN (certificate mode).
	pub    *rsa.PublicKey
	certSN string
}

// New validates cfg, loads the keys (and certificates) and builds the
// client. It does no network I/O.
//
// smartwalle/alipay signs requests and verifies replies. It is built in
// its sandbox mode with the gateway set explicitly, because in its
// production mode a reply naming an alipay_cert_sn it has not loaded makes
// it download that certificate from Alipay inside the call (getVerifier);
// in sandbox mode the same reply is an error, which payfn treats as the
// channel unavailable (the operator loads Alipay's new certificate).
// Notifications never go through the SDK (see ParseNotification).
func New(cfg Config) (*Client, error) {
	if err := validate(&cfg); err != nil {
		return nil, fmt.Errorf("alipay config: %w", err)
	}
	c := &Client{cfg: cfg, log: cfg.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	priv, err := parsePrivateKey(cfg.AppPrivateKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("alipay app private key: %w", err)
	}
	var base http.RoundTripper
	if cfg.HTTPClient != nil {
		base = cfg.HTTPClient.Transport
	}
	if base == nil {
		if t, ok := http.DefaultTransport.(*http.Transport); ok {
			base = t.Clone() // a pool of our own; the global transport stays untouched
		} else {
			base = &http.Transport{}
		}
	}
	hc := &http.Client{
		Timeout:   cfg.Timeout,
		Transport: gatewayTransport{base},
		// The gateway answers every call itself; a redirect is a fault.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	// The SDK is handed the keys and certificates re-encoded as the PEM it
	// expects, whatever form the configuration gave them in.
	s, err := sdk.New(cfg.AppID, pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(priv)), false,
		sdk.WithSandboxGateway(cfg.GatewayURL), sdk.WithHTTPClient(hc), sdk.WithTimeLocation(cst))
	if err != nil {
		return nil, errors.New("alipay app private key: refused by the SDK")
	}
	c.sdk = s
	if !cfg.certMode() {
		if c.pub, err = parsePublicKey(cfg.PublicKeyPEM); err != nil {
			return nil, fmt.Errorf("alipay public key: %w", err)
		}
		der, _ := x509.MarshalPKIXPublicKey(c.pub) // cannot fail for an RSA key
		if err := s.LoadAliPayPublicKey(pemOf("PUBLIC KEY", der)); err != nil {
			return nil, fmt.Errorf("alipay public key: %w", err)
		}
		return c, nil
	}
	appCert, err := parseCert(cfg.AppCertPEM)
	if err != nil {
		return nil, fmt.Errorf("alipay app certificate: %w", err)
	}
	if !priv.PublicKey.Equal(appCert.PublicKey) {
		return nil, errors.New("alipay app certificate: it does not hold the public half of the app private key")
	}
	alipayCert, err := parseCert(cfg.PublicCertPEM)
	if err != nil {
		return nil, fmt.Errorf("alipay public-key certificate: %w", err)
	}
	pub, ok := alipayCert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("alipay public-key certificate: not an RSA key")
	}
	if err := checkRootCerts(cfg.RootCertPEM); err != nil {
		return nil, fmt.Errorf("alipay root certificate: %w", err)
	}
	c.pub, c.certSN = pub, certSN(alipayCert)
	if err := s.LoadAppCertPublicKey(pemOf("CERTIFICATE", appCert.Raw)); err != nil {
		return nil, fmt.Errorf("alipay app certificate: %w", err)
	}
	if err := s.LoadAliPayRootCert(cfg.RootCertPEM); err != nil {
		return nil, fmt.Errorf("alipay root certificate: %w", err)
	}
	if err := s.LoadAlipayCertPublicKey(pemOf("CERTIFICATE", alipayCert.Raw)); err != nil {
		return nil, fmt.Errorf("alipay public-key certificate: %w", err)
	}
	return c, nil
}

func validate(cfg *Config) error {
	var errs []error
	if cfg.AppID == "" {
		errs = append(errs, errors.New("AppID is empty"))
	}
	if cfg.SellerID == "" {
		errs = append(errs, errors.New("SellerID is empty"))
	}
	if cfg.AppPrivateKeyPEM == "" {
		errs = append(errs, errors.New("AppPrivateKeyPEM is empty"))
	}
	switch {
	case cfg.certMode() && cfg.PublicKeyPEM != "":
		errs = append(errs, errors.New("set PublicKeyPEM (public-key mode) or the three certificates (certificate mode), not both"))
	case cfg.certMode() && (cfg.AppCertPEM == "" || cfg.RootCertPEM == "" || cfg.PublicCertPEM == ""):
		errs = append(errs, errors.New("certificate mode needs AppCertPEM, RootCertPEM and PublicCertPEM"))
	case !cfg.certMode() && cfg.PublicKeyPEM == "":
		errs = append(errs, errors.New("PublicKeyPEM is empty (or give the three certificates)"))
	}
	if cfg.GatewayURL == "" {
		cfg.GatewayURL = DefaultGatewayURL
	}
	gw, err := url.Parse(cfg.GatewayURL)
	if err != nil || (gw.Scheme != "http" && gw.Scheme != "https") || gw.Host == "" || gw.RawQuery != "" {
		errs = append(errs, fmt.Errorf("GatewayURL %q is not an http(s) URL without a query", cfg.GatewayURL))
		gw = &url.URL{Scheme: "https"}
	}
	if u, err := url.Parse(cfg.NotifyURL); err != nil || u.Host == "" {
		errs = append(errs, fmt.Errorf("NotifyURL %q is not an absolute URL", cfg.NotifyURL))
	} else {
		if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
			errs = append(errs, errors.New("NotifyURL must not have a query string"))
		}
		if u.Scheme != "https" && !(u.Scheme == "http" && gw.Scheme == "http") {
			errs = append(errs, errors.New("NotifyURL must be https"))
		}
		if len(cfg.NotifyURL) > 256 {
			errs = append(errs, errors.New("NotifyURL is longer than Alipay's 256 characters"))
		}
	}
	if cfg.MiniAppID == "" {
		cfg.MiniAppID = cfg.AppID
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return errors.Join(errs...)
}

// Close releases idle connections.
func (c *Client) Close() {
	if t, ok := c.sdk.Client.Transport.(gatewayTransport); ok {
		if ci, ok := t.base.(interface{ CloseIdleConnections() }); ok {
			ci.CloseIdleConnections()
		}
	}
}

// Wap is the alipay_wap channel: alipay.trade.wap.pay from a mobile
// browser.
func (c *Client) Wap() *WapChannel { return &WapChannel{c} }

// Mini is the alipay_mini channel: alipay.trade.create for my.tradePay in
// an Alipay mini-program.
func (c *Client) Mini() *MiniChannel { return &MiniChannel{c} }

// WapChannel is the alipay_wap channel. Its pay_url is built and signed
// locally on every prepay, so it keeps nothing to reuse.
type WapChannel struct{ *Client }

// MiniChannel is the alipay_mini channel. Its trade_no is reused by a
// repeated pay (app.Resigner).
type MiniChannel struct{ *Client }

var (
	_ app.Channel  = (*WapChannel)(nil)
	_ app.Channel  = (*MiniChannel)(nil)
	_ app.Resigner = (*MiniChannel)(nil)
)

// Name is app.ChannelAlipayWap.
func (*WapChannel) Name() string { return app.ChannelAlipayWap }

// Name is app.ChannelAlipayMini.
func (*MiniChannel) Name() string { return app.ChannelAlipayMini }

// Provider is app.ProviderAlipay: both channels' notifications come to
// alipayNotify.
func (*Client) Provider() string { return app.ProviderAlipay }

// AppID is the application's app_id.
func (c *Client) AppID() string { return c.cfg.AppID }

// AppIDs is just AppID: an Alipay application is one app_id.
func (c *Client) AppIDs() []string { return []string{c.cfg.AppID} }

// MchID is the seller_id notifications must carry.
func (c *Client) MchID() string { return c.cfg.SellerID }

// appID resolves a requested appid: "" or AppID, anything else wraps
// ErrUnboundAppID.
func (c *Client) appID(id string) error {
	if id == "" || id == c.cfg.AppID {
		return nil
	}
	return fmt.Errorf("%w: %q (app %s)", ErrUnboundAppID, id, c.cfg.AppID)
}

// gatewayTransport refuses what the gateway never answers: a status other
// than 200 (a proxy's or a broken gateway's error page) and a reply larger
// than maxReply. The SDK would otherwise try to read such a page as JSON.
type gatewayTransport struct{ base http.RoundTripper }

func (t gatewayTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		resp.Body.Close()
		return nil, fmt.Errorf("gateway answered HTTP %d", resp.StatusCode)
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.LimitReader(resp.Body, maxReply), resp.Body}
	return resp, nil
}

// Keys and certificates: PEM, or the bare Base64 DER Alipay's key tool and
// console show. Errors never carry key material.

func derOf(text, kind string) ([]byte, string, error) {
	text = strings.TrimSpace(text)
	if strings.HasPrefix(text, "-----") {
		block, _ := pem.Decode([]byte(text))
		if block == nil {
			return nil, "", fmt.Errorf("no PEM block in the %s", kind)
		}
		return block.Bytes, block.Type, nil
	}
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(text), ""))
	if err != nil {
		return nil, "", fmt.Errorf("the %s is neither PEM nor Base64", kind)
	}
	return der, "", nil
}

func pemOf(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func parsePrivateKey(text string) (*rsa.PrivateKey, error) {
	der, _, err := derOf(text, "private key")
	if err != nil {
		return nil, err
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("not a PKCS#1 or PKCS#8 private key")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an RSA private key")
	}
	return rk, nil
}

func parsePublicKey(text string) (*rsa.PublicKey, error) {
	der, typ, err := derOf(text, "public key")
	if err != nil {
		return nil, err
	}
	if typ == "CERTIFICATE" {
		return nil, errors.New("a certificate, not a public key: certificate mode takes ALIPAY_APP_CERT, ALIPAY_ROOT_CERT and ALIPAY_PUBLIC_CERT")
	}
	if k, err := x509.ParsePKIXPublicKey(der); err == nil {
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, errors.New("not an RSA public key")
		}
		return rk, nil
	}
	k, err := x509.ParsePKCS1PublicKey(der)
	if err != nil {
		return nil, errors.New("not a PKIX or PKCS#1 public key")
	}
	return k, nil
}

// parseCert reads the first certificate of a file (Alipay's public-key
// certificate file holds the certificate, then its issuer).
func parseCert(text string) (*x509.Certificate, error) {
	der, _, err := derOf(text, "certificate")
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, errors.New("not an X.509 certificate")
	}
	return cert, nil
}

// checkRootCerts requires at least one RSA-signed certificate in Alipay's
// root file: only those make up alipay_root_cert_sn.
func checkRootCerts(text string) error {
	rest := []byte(strings.TrimSpace(text))
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return errors.New("no RSA-signed certificate in the root file")
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err == nil && (cert.SignatureAlgorithm == x509.SHA256WithRSA || cert.SignatureAlgorithm == x509.SHA1WithRSA) {
			return nil
		}
	}
}

// certSN is Alipay's serial number of a certificate: the hex MD5 of the
// issuer's name (as Go prints it) followed by the decimal serial number.
func certSN(cert *x509.Certificate) string {
	sum := md5.Sum([]byte(cert.Issuer.String() + cert.SerialNumber.String()))
	return hex.EncodeToString(sum[:])
}
