package config

import (
	"errors"
	"fmt"
	"net/url"
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
	if a.GatewayURL != "" {
		if u, err := url.Parse(a.GatewayURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("ALIPAY_GATEWAY_URL=%q is not an http(s) URL", a.GatewayURL))
		}
	}
	if a.NotifyURL != "" {
		if err := checkNotifyURL(a.NotifyURL); err != nil {
			errs = append(errs, fmt.Errorf("ALIPAY_NOTIFY_URL: %w", err))
		}
	}
	if a.PublicKeyPEM != "" && a.CertMode() {
		errs = append(errs, errors.New("set ALIPAY_PUBLIC_KEY (public-key mode) or ALIPAY_APP_CERT, ALIPAY_ROOT_CERT and ALIPAY_PUBLIC_CERT (certificate mode), not both"))
	}
	if a.CertMode() && (a.AppCertPEM == "" || a.RootCertPEM == "" || a.PublicCertPEM == "") {
		errs = append(errs, errors.New("certificate mode needs all of ALIPAY_APP_CERT, ALIPAY_ROOT_CERT and ALIPAY_PUBLIC_CERT"))
	}
	if a.MiniAppID == "" {
		a.MiniAppID = a.AppID
	}
	c.Alipay = a
	return errs
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
