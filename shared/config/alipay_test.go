package config_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/config"
)

// alipayEnv is a complete public-key-mode Alipay setup beside the WeChat
// settings Load needs to read it.
func alipayEnv() map[string]string {
	return map[string]string{
		"PAYFN_CHANNELS":         "wechat_jsapi,alipay_wap,alipay_mini",
		"ALIPAY_APP_ID":          "2021000000000001",
		"ALIPAY_SELLER_ID":       "2088000000000001",
		"ALIPAY_APP_PRIVATE_KEY": `-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----`,
		"ALIPAY_PUBLIC_KEY":      "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA",
		"ALIPAY_NOTIFY_URL":      "https://pay.example.com/alipay/notify",
	}
}

func TestAlipaySettings(t *testing.T) {
	c, err := config.Load(env(alipayEnv()))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	a := c.Alipay
	if !c.UsesAlipay() || !c.HasChannel("alipay_wap") || !c.HasChannel("alipay_mini") || a.MiniAppID != a.AppID || a.Timeout != 8*time.Second || a.CertMode() {
		t.Errorf("Alipay = %+v, channels %v", a, c.Channels)
	}
	if !strings.Contains(a.AppPrivateKeyPEM, "\nMIIE\n") {
		t.Errorf("escaped newlines in the private key were not restored")
	}
	if err := c.Need(config.PartAlipay); err != nil {
		t.Errorf("Need: %v", err)
	}
	if s := fmt.Sprint(a.LogValue()); strings.Contains(s, "MIIE") || !strings.Contains(s, "2088000000000001") {
		t.Errorf("LogValue %s", s)
	}
}

func TestAlipaySettingsAreChecked(t *testing.T) {
	cert := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
	for name, c := range map[string]struct {
		set  map[string]string
		want string
	}{
		"app id":             {map[string]string{"ALIPAY_APP_ID": "wx1234567890abcdef"}, "ALIPAY_APP_ID"},
		"mini app id":        {map[string]string{"ALIPAY_MINI_APPID": "2021"}, "ALIPAY_MINI_APPID"},
		"seller id":          {map[string]string{"ALIPAY_SELLER_ID": "1088000000000001"}, "ALIPAY_SELLER_ID"},
		"gateway":            {map[string]string{"ALIPAY_GATEWAY_URL": "ftp://x/gateway.do"}, "ALIPAY_GATEWAY_URL"},
		"gateway query":      {map[string]string{"ALIPAY_GATEWAY_URL": "https://openapi.alipay.com/gateway.do?charset=utf-8"}, "ALIPAY_GATEWAY_URL"},
		"notify http":        {map[string]string{"ALIPAY_NOTIFY_URL": "http://pay.example.com/alipay/notify"}, "ALIPAY_NOTIFY_URL must be https"},
		"notify query":       {map[string]string{"ALIPAY_NOTIFY_URL": "https://pay.example.com/n?a=1"}, "ALIPAY_NOTIFY_URL must not"},
		"notify long":        {map[string]string{"ALIPAY_NOTIFY_URL": "https://pay.example.com/" + strings.Repeat("n", 250)}, "256"},
		"timeout":            {map[string]string{"ALIPAY_TIMEOUT": "-1s"}, "ALIPAY_TIMEOUT"},
		"public key swapped": {map[string]string{"ALIPAY_APP_PRIVATE_KEY": "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----"}, "ALIPAY_APP_PRIVATE_KEY holds"},
		"private key public": {map[string]string{"ALIPAY_PUBLIC_KEY": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----"}, "ALIPAY_PUBLIC_KEY holds a private"},
		"cert as public key": {map[string]string{"ALIPAY_PUBLIC_KEY": cert}, "ALIPAY_PUBLIC_KEY holds a certificate"},
		"both modes":         {map[string]string{"ALIPAY_APP_CERT": cert, "ALIPAY_ROOT_CERT": cert, "ALIPAY_PUBLIC_CERT": cert}, "not both"},
		"cert mode partial":  {map[string]string{"ALIPAY_PUBLIC_KEY": "", "ALIPAY_APP_CERT": cert}, "needs all of"},
		"cert not PEM":       {map[string]string{"ALIPAY_PUBLIC_KEY": "", "ALIPAY_APP_CERT": "MIIB", "ALIPAY_ROOT_CERT": cert, "ALIPAY_PUBLIC_CERT": cert}, "ALIPAY_APP_CERT is not"},
		"unknown channel":    {map[string]string{"PAYFN_CHANNELS": "alipay_h5"}, "PAYFN_CHANNELS"},
	} {
		e := alipayEnv()
		for k, v := range c.set {
			e[k] = v
		}
		_, err := config.Load(env(e))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to name %q", name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "MIIB") {
			t.Errorf("%s: the error quotes key material: %v", name, err)
		}
	}
	// Loopback http is the local stack's.
	e := alipayEnv()
	e["ALIPAY_NOTIFY_URL"], e["ALIPAY_GATEWAY_URL"] = "http://127.0.0.1:8080/alipay/notify", "http://127.0.0.1:9090/gateway.do"
	if _, err := config.Load(env(e)); err != nil {
		t.Errorf("loopback URLs: %v", err)
	}
	// Certificate mode alone, and the settings it needs.
	e = alipayEnv()
	delete(e, "ALIPAY_PUBLIC_KEY")
	e["ALIPAY_APP_CERT"], e["ALIPAY_ROOT_CERT"], e["ALIPAY_PUBLIC_CERT"] = cert, cert+"\n"+cert, cert
	c, err := config.Load(env(e))
	if err != nil || !c.Alipay.CertMode() || c.Need(config.PartAlipay) != nil {
		t.Errorf("certificate mode: %v, need %v", err, c.Need(config.PartAlipay))
	}
	delete(e, "ALIPAY_SELLER_ID")
	c, _ = config.Load(env(e))
	if err := c.Need(config.PartAlipay); err == nil || !strings.Contains(err.Error(), "ALIPAY_SELLER_ID") {
		t.Errorf("Need without a seller id: %v", err)
	}
}
