package config_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/config"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadAppliesDefaults(t *testing.T) {
	c, err := config.Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.MongoDatabase != "payfn" || c.OrderTTL != 30*time.Minute || c.SessionTTL != 2*time.Hour || c.PayTimeout != 8*time.Second {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

func TestLoadReportsEveryBadSettingTogether(t *testing.T) {
	_, err := config.Load(env(map[string]string{
		"PAYFN_SESSION_SECRET":    "short",
		"WECHATPAY_APIV3_KEY":     "not-32-bytes",
		"WECHATPAY_NOTIFY_URL":    "http://pay.example.com/notify?x=1",
		"PAYFN_ORDER_TTL":         "-5m",
		"WECHATPAY_PUBLIC_KEY_ID": "PUB_KEY_ID_1",
		"PAYFN_LOG_LEVEL":         "loud",
	}))
	if err == nil {
		t.Fatal("Load accepted bad settings")
	}
	for _, want := range []string{"PAYFN_SESSION_SECRET", "WECHATPAY_APIV3_KEY", "WECHATPAY_NOTIFY_URL", "PAYFN_ORDER_TTL", "WECHATPAY_PUBLIC_KEY", "PAYFN_LOG_LEVEL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "short") || strings.Contains(err.Error(), "not-32-bytes") {
		t.Errorf("error echoes a secret value: %v", err)
	}
}

func TestNotifyURLMustBeHTTPSExceptOnLoopback(t *testing.T) {
	for url, ok := range map[string]bool{
		"https://pay.example.com/notify/wechatpay": true,
		"http://127.0.0.1:8080/notify/wechatpay":   true,
		"http://pay.example.com/notify/wechatpay":  false,
	} {
		_, err := config.Load(env(map[string]string{"WECHATPAY_NOTIFY_URL": url}))
		if (err == nil) != ok {
			t.Errorf("%s: err = %v, want ok=%v", url, err, ok)
		}
	}
}

func TestNeedNamesMissingSettingsOfEachPart(t *testing.T) {
	c, _ := config.Load(env(nil))
	err := c.Need(config.PartStore, config.PartPay)
	if err == nil {
		t.Fatal("Need found nothing missing")
	}
	for _, want := range []string{"MONGODB_URI", "WECHATPAY_MCHID", "WECHATPAY_MCH_PRIVATE_KEY", "WECHATPAY_APIV3_KEY", "WECHATPAY_NOTIFY_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %s not reported: %v", want, err)
		}
	}
}

func TestLogValueRedactsSecrets(t *testing.T) {
	c, err := config.Load(env(map[string]string{
		"MONGODB_URI":               "mongodb://user:hunter2@db/",
		"WECHAT_APPSECRET":          "app-secret-value",
		"PAYFN_SESSION_SECRET":      strings.Repeat("s", 40),
		"WECHATPAY_MCH_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\\nMIIkeymaterial\\n-----END PRIVATE KEY-----",
		"WECHATPAY_APIV3_KEY":       strings.Repeat("k", 32),
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.MchPrivateKeyPEM, "\nMIIkeymaterial\n") {
		t.Errorf("escaped newlines in the PEM were not restored")
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "cfg", c)
	out := buf.String()
	if !strings.Contains(out, `"wechatpay_apiv3_key":"(set)"`) {
		t.Errorf("LogValue was not used: %s", out)
	}
	for _, secret := range []string{"hunter2", "app-secret-value", strings.Repeat("s", 40), "MIIkeymaterial", strings.Repeat("k", 32)} {
		if strings.Contains(out, secret) {
			t.Errorf("LogValue shows a secret: %s", out)
		}
	}
}

func TestAcceptPlatformCertsIsABooleanForPublicKeyModeOnly(t *testing.T) {
	publicKey := map[string]string{"WECHATPAY_PUBLIC_KEY_ID": "PUB_KEY_ID_1", "WECHATPAY_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----"}
	with := func(v string, m map[string]string) map[string]string {
		out := map[string]string{"WECHATPAY_ACCEPT_PLATFORM_CERTS": v}
		for k, x := range m {
			out[k] = x
		}
		return out
	}
	for _, c := range []struct {
		value  string
		env    map[string]string
		want   bool
		errHas string
	}{
		{"", publicKey, false, ""},
		{"false", publicKey, false, ""},
		{"TRUE", publicKey, true, ""},
		{"1", publicKey, true, ""},
		{"yes", publicKey, false, "WECHATPAY_ACCEPT_PLATFORM_CERTS"},
		{"true", nil, false, "public-key mode"},
	} {
		cfg, err := config.Load(env(with(c.value, c.env)))
		if c.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), c.errHas) {
				t.Errorf("%q: err = %v, want one naming %q", c.value, err, c.errHas)
			}
			continue
		}
		if err != nil || cfg.AcceptPlatformCerts != c.want {
			t.Errorf("%q: AcceptPlatformCerts = %v, err = %v; want %v", c.value, cfg.AcceptPlatformCerts, err, c.want)
		}
	}
}

func TestSecretSourceSettings(t *testing.T) {
	c, err := config.Load(env(nil))
	if err != nil || c.SecretSource != config.SourceEnv || c.SecretRefresh != config.DefaultSecretRefresh {
		t.Fatalf("defaults: source %q refresh %s, %v", c.SecretSource, c.SecretRefresh, err)
	}
	c, err = config.Load(env(map[string]string{"PAYFN_SECRET_SOURCE": "aws-secretsmanager", "PAYFN_SECRET_ID": "arn:aws:secretsmanager:ap-east-1:1:secret:payfn/pay-AbCdEf", "PAYFN_SECRET_REFRESH": "30s"}))
	if err != nil || c.SecretSource != config.SourceAWS || c.SecretRefresh != 30*time.Second {
		t.Fatalf("aws: %+v, %v", c, err)
	}
	for name, e := range map[string]map[string]string{
		"unknown source": {"PAYFN_SECRET_SOURCE": "vault", "PAYFN_SECRET_ID": "x"},
		"no id":          {"PAYFN_SECRET_SOURCE": "tencent-ssm"},
		"bad refresh":    {"PAYFN_SECRET_REFRESH": "soon"},
		"bad endpoint":   {"PAYFN_SECRET_ENDPOINT": "ftp://x"},
	} {
		if _, err := config.Load(env(e)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPreviousKeysAreCheckedLikeTheCurrentOnes(t *testing.T) {
	for name, e := range map[string]map[string]string{
		"short previous session secret":   {"PAYFN_SESSION_SECRET_PREVIOUS": "short"},
		"short previous admin key":        {"PAYFN_ADMIN_KEY_PREVIOUS": "short"},
		"previous APIv3 key not 32":       {"WECHATPAY_APIV3_KEY_PREVIOUS": "short"},
		"previous public key id alone":    {"WECHATPAY_PUBLIC_KEY_ID": "PUB_KEY_ID_1", "WECHATPAY_PUBLIC_KEY": "pem", "WECHATPAY_PUBLIC_KEY_ID_PREVIOUS": "PUB_KEY_ID_0"},
		"previous public key, no current": {"WECHATPAY_PUBLIC_KEY_ID_PREVIOUS": "PUB_KEY_ID_0", "WECHATPAY_PUBLIC_KEY_PREVIOUS": "pem"},
	} {
		_, err := config.Load(env(e))
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "short") {
			t.Errorf("%s: the error quotes the value: %v", name, err)
		}
	}
	c, err := config.Load(env(map[string]string{
		"PAYFN_SESSION_SECRET": strings.Repeat("n", 32), "PAYFN_SESSION_SECRET_PREVIOUS": strings.Repeat("o", 32),
		"PAYFN_ADMIN_KEY_PREVIOUS": strings.Repeat("p", 32), "WECHATPAY_APIV3_KEY_PREVIOUS": strings.Repeat("q", 32),
	}))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "cfg", c)
	for _, v := range []string{"ooooo", "ppppp", "qqqqq"} {
		if strings.Contains(buf.String(), v) {
			t.Errorf("LogValue shows a previous secret: %s", buf.String())
		}
	}
}

func TestAbuseLimitsAndJobParallelismHaveDefaultsOffSwitchesAndBounds(t *testing.T) {
	c, err := config.Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxOpenOrders != 20 || c.QueryInterval != 5*time.Second || c.JobParallelism != 4 {
		t.Fatalf("defaults: open %d, interval %s, parallelism %d", c.MaxOpenOrders, c.QueryInterval, c.JobParallelism)
	}
	c, err = config.Load(env(map[string]string{"PAYFN_MAX_OPEN_ORDERS": "-1", "PAYFN_QUERY_INTERVAL": "-1", "PAYFN_JOB_PARALLELISM": "8"}))
	if err != nil || c.MaxOpenOrders != -1 || c.QueryInterval != -1 || c.JobParallelism != 8 {
		t.Fatalf("off switches: %+v %v", c, err)
	}
	_, err = config.Load(env(map[string]string{"PAYFN_MAX_OPEN_ORDERS": "0", "PAYFN_QUERY_INTERVAL": "soon", "PAYFN_JOB_PARALLELISM": "-1"}))
	for _, want := range []string{"PAYFN_MAX_OPEN_ORDERS", "PAYFN_QUERY_INTERVAL", "PAYFN_JOB_PARALLELISM"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
}

func TestExtraAppIDsAreACheckedCommaSeparatedList(t *testing.T) {
	const appID, a, b = "wxd678efh567hg6787", "wx0123456789abcdef", "wxfedcba9876543210"
	c, err := config.Load(env(map[string]string{"WECHAT_APPID": appID, "WECHATPAY_EXTRA_APPIDS": " " + a + ", ," + b + " "}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.ExtraAppIDs) != 2 || c.ExtraAppIDs[0] != a || c.ExtraAppIDs[1] != b {
		t.Errorf("ExtraAppIDs = %q, want [%s %s]", c.ExtraAppIDs, a, b)
	}
	if c, err := config.Load(env(nil)); err != nil || c.ExtraAppIDs != nil {
		t.Errorf("unset: %q, %v; want none", c.ExtraAppIDs, err)
	}
	for _, bad := range []string{"wx0123", "WX0123456789ABCDEF", a + "," + a, appID, a + ";" + b} {
		_, err := config.Load(env(map[string]string{"WECHAT_APPID": appID, "WECHATPAY_EXTRA_APPIDS": bad}))
		if err == nil || !strings.Contains(err.Error(), "WECHATPAY_EXTRA_APPIDS") {
			t.Errorf("%q: err = %v, want one naming WECHATPAY_EXTRA_APPIDS", bad, err)
		}
	}
}

func TestIdentityModeIsTokenUnlessPlatformIsChosen(t *testing.T) {
	for v, want := range map[string]string{"": config.IdentityToken, "token": config.IdentityToken, " Platform ": config.IdentityPlatform} {
		c, err := config.Load(env(map[string]string{"PAYFN_IDENTITY": v}))
		if err != nil || c.Identity != want {
			t.Errorf("PAYFN_IDENTITY=%q: Identity %q, err %v; want %q", v, c.Identity, err, want)
		}
	}
	// A mode nobody chose is refused rather than read as either.
	if _, err := config.Load(env(map[string]string{"PAYFN_IDENTITY": "header"})); err == nil || !strings.Contains(err.Error(), "PAYFN_IDENTITY") {
		t.Errorf("PAYFN_IDENTITY=header: err = %v, want one naming the setting", err)
	}
	if err := (config.Config{}).Need(config.PartPlatform); err == nil || !strings.Contains(err.Error(), "WECHAT_APPID") {
		t.Errorf("Need(PartPlatform) without an appid: %v", err)
	}
}
