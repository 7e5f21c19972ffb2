package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Channel names PAYFN_CHANNELS may list (the app package's Channel*).
var channelNames = []string{"wechat_jsapi", "wechat_h5", "alipay_wap", "alipay_mini"}

// Alipay is the Alipay merchant (ALIPAY_*), for the alipay_wap and
// alipay_mini channels. Exactly one key mode: the Alipay public key, or
// the three public-key certificates (loaded from configuration, never
// downloaded inside an invocation).
type Alipay struct {
	AppID            string        // ALIPAY_APP_ID: the merchant's application id at Alipay
	SellerID         string        // ALIPAY_SELLER_ID: the merchant's PID (2088…), what notifications name as seller_id
	AppPrivateKeyPEM string        // ALIPAY_APP_PRIVATE_KEY (secret): the application's RSA private key (PEM)
	PublicKeyPEM     string        // ALIPAY_PUBLIC_KEY: Alipay's public key (PEM), public-key mode
	AppCertPEM       string        // ALIPAY_APP_CERT: the application's public-key certificate, certificate mode
	RootCertPEM      string        // ALIPAY_ROOT_CERT: Alipay's root certificate, certificate mode
	PublicCertPEM    string        // ALIPAY_PUBLIC_CERT: Alipay's public-key certificate, certificate mode
	GatewayURL       string        // ALIPAY_GATEWAY_URL: default Alipay's; the simulator's locally
	NotifyURL        string        // ALIPAY_NOTIFY_URL: public https URL of alipayNotify, no query
	MiniAppID        string        // ALIPAY_MINI_APPID: the Alipay mini-program (op_app_id); default ALIPAY_APP_ID
	Timeout          time.Duration // ALIPAY_TIMEOUT: default 8s
}

// CertMode reports whether Alipay is configured with certificates.
func (a Alipay) CertMode() bool {
	return a.AppCertPEM != "" || a.RootCertPEM != "" || a.PublicCertPEM != ""
}

// loadChannels reads PAYFN_CHANNELS and the Alipay merchant.
func loadChannels(c *Config, getenv func(string) string, errs []error) []error {
	c.Channels = []string{"wechat_jsapi"}
	if v := strings.TrimSpace(getenv("PAYFN_CHANNELS")); v != "" {
		c.Channels = nil
		for _, n := range strings.Split(v, ",") {
			n = strings.TrimSpace(n)
			if !slices.Contains(channelNames, n) || slices.Contains(c.Channels, n) {
				errs = append(errs, fmt.Errorf("PAYFN_CHANNELS=%q: each must be one of %s, once", v, strings.Join(channelNames, ", ")))
				c.Channels = []string{"wechat_jsapi"}
				break
			}
			c.Channels = append(c.Channels, n)
		}
	}
	a := Alipay{
		AppID:            strings.TrimSpace(getenv("ALIPAY_APP_ID")),
		SellerID:         strings.TrimSpace(getenv("ALIPAY_SELLER_ID")),
		AppPrivateKeyPEM: pemText(getenv("ALIPAY_APP_PRIVATE_KEY")),
		PublicKeyPEM:     pemText(getenv("ALIPAY_PUBLIC_KEY")),
		AppCertPEM:       pemText(getenv("ALIPAY_APP_CERT")),
		RootCertPEM:      pemText(getenv("ALIPAY_ROOT_CERT")),
		PublicCertPEM:    pemText(getenv("ALIPAY_PUBLIC_CERT")),
		GatewayURL:       strings.TrimSpace(getenv("ALIPAY_GATEWAY_URL")),
		NotifyURL:        strings.TrimSpace(getenv("ALIPAY_NOTIFY_URL")),
		MiniAppID:        strings.TrimSpace(getenv("ALIPAY_MINI_APPID")),
		Timeout:          8 * time.Second,
	}
	if v := strings.TrimSpace(getenv("ALIPAY_TIMEOUT")); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("ALIPAY_TIMEOUT=%q is not a positive duration such as 8s", v))
		} else {
			a.Timeout = d
		}
	}
	errs = a.check(errs)
	if a.MiniAppID == "" {
		a.MiniAppID = a.AppID
	}
	c.Alipay = a
	return errs
}

// Alipay's identifiers: an application's app_id is 16 digits, a
// merchant's PID (seller_id) is 2088 and 12 more.
var (
	alipayAppIDRE  = regexp.MustCompile(`^[0-9]{16}$`)
	alipayPIDRE    = regexp.MustCompile(`^2088[0-9]{12}$`)
	pemCertificate = "-----BEGIN CERTIFICATE-----"
)

// check reports every malformed Alipay setting that is set; missing ones
// are Need's business.
func (a Alipay) check(errs []error) []error {
	if a.AppID != "" && !alipayAppIDRE.MatchString(a.AppID) {
		errs = append(errs, fmt.Errorf("ALIPAY_APP_ID=%q is not an Alipay app id (16 digits)", a.AppID))
	}
	if a.MiniAppID != "" && !alipayAppIDRE.MatchString(a.MiniAppID) {
		errs = append(errs, fmt.Errorf("ALIPAY_MINI_APPID=%q is not an Alipay app id (16 digits)", a.MiniAppID))
	}
	if a.SellerID != "" && !alipayPIDRE.MatchString(a.SellerID) {
		errs = append(errs, fmt.Errorf("ALIPAY_SELLER_ID=%q is not an Alipay PID (2088 and 12 digits)", a.SellerID))
	}
	if a.GatewayURL != "" {
		if u, err := url.Parse(a.GatewayURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			errs = append(errs, fmt.Errorf("ALIPAY_GATEWAY_URL=%q is not an http(s) URL without a query (such as https://openapi.alipay.com/gateway.do)", a.GatewayURL))
		}
	}
	if a.NotifyURL != "" {
		if err := checkAlipayNotifyURL(a.NotifyURL); err != nil {
			errs = append(errs, err)
		}
	}
	// Key material is parsed when the channel is built; here only the
	// mix-ups that are easy to make in a secret store are caught, without
	// quoting the values.
	if strings.Contains(a.AppPrivateKeyPEM, "PUBLIC KEY") || strings.Contains(a.AppPrivateKeyPEM, pemCertificate) {
		errs = append(errs, errors.New("ALIPAY_APP_PRIVATE_KEY holds a public key or certificate, not the application's private key"))
	}
	if strings.Contains(a.PublicKeyPEM, "PRIVATE KEY") {
		errs = append(errs, errors.New("ALIPAY_PUBLIC_KEY holds a private key: it takes Alipay's public key"))
	}
	if strings.Contains(a.PublicKeyPEM, pemCertificate) {
		errs = append(errs, errors.New("ALIPAY_PUBLIC_KEY holds a certificate: certificate mode takes ALIPAY_APP_CERT, ALIPAY_ROOT_CERT and ALIPAY_PUBLIC_CERT instead"))
	}
	for _, c := range []struct{ name, v string }{{"ALIPAY_APP_CERT", a.AppCertPEM}, {"ALIPAY_ROOT_CERT", a.RootCertPEM}, {"ALIPAY_PUBLIC_CERT", a.PublicCertPEM}} {
		if c.v != "" && (!strings.Contains(c.v, pemCertificate) || strings.Contains(c.v, "PRIVATE KEY")) {
			errs = append(errs, fmt.Errorf("%s is not a PEM certificate file (-----BEGIN CERTIFICATE-----)", c.name))
		}
	}
	if a.PublicKeyPEM != "" && a.CertMode() {
		errs = append(errs, errors.New("set ALIPAY_PUBLIC_KEY (public-key mode) or ALIPAY_APP_CERT, ALIPAY_ROOT_CERT and ALIPAY_PUBLIC_CERT (certificate mode), not both"))
	}
	if a.CertMode() && (a.AppCertPEM == "" || a.RootCertPEM == "" || a.PublicCertPEM == "") {
		errs = append(errs, errors.New("certificate mode needs all of ALIPAY_APP_CERT, ALIPAY_ROOT_CERT and ALIPAY_PUBLIC_CERT"))
	}
	return errs
}

// checkAlipayNotifyURL applies Alipay's rules to notify_url: an absolute
// https URL (http only on loopback, where the local stack runs) without a
// query string, at most 256 characters.
func checkAlipayNotifyURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		return fmt.Errorf("ALIPAY_NOTIFY_URL=%q is not a URL", v)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return errors.New("ALIPAY_NOTIFY_URL must not carry a query string")
	}
	host := u.Hostname()
	loopback := host == "127.0.0.1" || host == "localhost" || host == "::1"
	if u.Scheme != "https" && !(u.Scheme == "http" && loopback) {
		return errors.New("ALIPAY_NOTIFY_URL must be https (http only on loopback for local runs)")
	}
	if len(v) > 256 {
		return fmt.Errorf("ALIPAY_NOTIFY_URL is %d characters; Alipay allows 256", len(v))
	}
	return nil
}

// LogValue shows the Alipay settings with the private key replaced by
// whether it is set.
func (a Alipay) LogValue() slog.Value {
	set := func(v string) string {
		if v == "" {
			return "(unset)"
		}
		return "(set)"
	}
	return slog.GroupValue(
		slog.String("alipay_app_id", a.AppID),
		slog.String("alipay_seller_id", a.SellerID),
		slog.String("alipay_app_private_key", set(a.AppPrivateKeyPEM)),
		slog.Bool("alipay_cert_mode", a.CertMode()),
		slog.String("alipay_gateway_url", a.GatewayURL),
		slog.String("alipay_notify_url", a.NotifyURL),
		slog.String("alipay_mini_appid", a.MiniAppID),
		slog.Duration("alipay_timeout", a.Timeout),
	)
}

// HasChannel reports whether PAYFN_CHANNELS lists name.
func (c Config) HasChannel(name string) bool { return slices.Contains(c.Channels, name) }

// UsesAlipay reports whether an Alipay channel is on.
func (c Config) UsesAlipay() bool { return c.HasChannel("alipay_wap") || c.HasChannel("alipay_mini") }

// needAlipay lists the Alipay settings that are missing.
func (c Config) needAlipay(need func(name, v string)) {
	a := c.Alipay
	need("ALIPAY_APP_ID", a.AppID)
	need("ALIPAY_SELLER_ID", a.SellerID)
	need("ALIPAY_APP_PRIVATE_KEY", a.AppPrivateKeyPEM)
	need("ALIPAY_NOTIFY_URL", a.NotifyURL)
	if !a.CertMode() {
		need("ALIPAY_PUBLIC_KEY", a.PublicKeyPEM)
	}
}
