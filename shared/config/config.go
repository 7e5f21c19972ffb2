// Package config reads payfn's settings, the one place they are declared.
// Settings are named by environment variable. On a cloud, the secrets (the
// merchant private key, the APIv3 key, the app secret, the session secret,
// the admin key) are not in the environment: PAYFN_SECRET_SOURCE and
// PAYFN_SECRET_ID name a secret-store entry, a JSON object keyed by these
// same names, which shared/setup fetches at run time and lays over the
// environment before calling Load again. Secrets are never logged.
//
// It imports nothing of payfn's.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is every setting. The env var that sets a field is named beside it.
type Config struct {
	LogLevel slog.Level // PAYFN_LOG_LEVEL: debug, info (default), warn, error

	// Channels (PAYFN_CHANNELS, comma-separated) are the payment channels
	// configured here: wechat_jsapi (the default), wechat_h5 (the WeChat
	// Pay merchant's H5 payments), alipay_wap, alipay_mini (Alipay).
	Channels []string
	Alipay   Alipay

	MongoURI      string // MONGODB_URI: e.g. mongodb+srv://user:pass@cluster/ (secret: may hold a password)
	MongoDatabase string // MONGODB_DATABASE: default "payfn"

	AppID        string // WECHAT_APPID: the mini-program's appid
	AppSecret    string // WECHAT_APPSECRET (secret): for jscode2session
	LoginBaseURL string // WECHAT_API_BASE_URL: default https://api.weixin.qq.com

	SessionSecret string        // PAYFN_SESSION_SECRET (secret): at least 32 bytes, signs session tokens
	SessionTTL    time.Duration // PAYFN_SESSION_TTL: default 2h
	// PAYFN_SESSION_SECRET_PREVIOUS (secret): still verifies tokens during
	// a rotation, until they expire; new tokens are signed with SessionSecret.
	SessionSecretPrevious string

	MchID            string // WECHATPAY_MCHID: merchant id
	MchCertSerial    string // WECHATPAY_MCH_CERT_SERIAL: serial of the merchant API certificate
	MchPrivateKeyPEM string // WECHATPAY_MCH_PRIVATE_KEY (secret): PKCS#8 PEM of the merchant API key
	APIv3Key         string // WECHATPAY_APIV3_KEY (secret): exactly 32 bytes
	NotifyURL        string // WECHATPAY_NOTIFY_URL: public https URL of verifyPayment, no query
	PublicKeyID      string // WECHATPAY_PUBLIC_KEY_ID: PUB_KEY_ID_...; empty = platform-certificate mode
	PublicKeyPEM     string // WECHATPAY_PUBLIC_KEY: the WeChat Pay public key (PEM)
	// WECHATPAY_APIV3_KEY_PREVIOUS (secret): still decrypts notifications
	// WeChat Pay encrypted before the key changed.
	APIv3KeyPrevious string
	// WECHATPAY_PUBLIC_KEY_ID_PREVIOUS and WECHATPAY_PUBLIC_KEY_PREVIOUS: a
	// second WeChat Pay public key accepted while WeChat Pay switches keys.
	PublicKeyIDPrevious  string
	PublicKeyPEMPrevious string
	// AcceptPlatformCerts (WECHATPAY_ACCEPT_PLATFORM_CERTS=true), with
	// public-key mode, also accepts notifications signed by a platform
	// certificate: WeChat Pay moves notifications to the public key over
	// days, and both kinds arrive meanwhile.
	AcceptPlatformCerts bool
	PayBaseURL          string        // WECHATPAY_BASE_URL: default the real WeChat Pay; the simulator's URL locally
	PayTimeout          time.Duration // WECHATPAY_TIMEOUT: default 8s, below the function timeout
	// ExtraAppIDs (WECHATPAY_EXTRA_APPIDS, comma-separated) are further
	// appids bound to the merchant (several mini-programs selling through
	// it): orders may be paid under WECHAT_APPID or any of these.
	ExtraAppIDs []string

	RefundNotifyURL string // WECHATPAY_REFUND_NOTIFY_URL: refund outcomes; default WECHATPAY_NOTIFY_URL + "/refund"

	AdminKey string // PAYFN_ADMIN_KEY (secret): at least 32 bytes, authenticates the merchant's refund calls
	// PAYFN_ADMIN_KEY_PREVIOUS (secret): accepted too, so callers can move
	// to a new admin key one by one.
	AdminKeyPrevious string

	OrderTTL time.Duration // PAYFN_ORDER_TTL: how long an order may wait for payment, default 30m

	// Identity is PAYFN_IDENTITY, where the client functions (createOrder,
	// pay, queryOrder) learn who calls them, one place per deployment:
	// "token" (default) is login's session token in Authorization;
	// "platform" is the openid the mini-program platform vouches for
	// (CloudBase's per-invocation environment, the X-WX-* headers of
	// CloudBase HTTP functions and WeChat Cloud Hosting), with WECHAT_APPID
	// the only appid accepted. Each mode ignores the other's credentials.
	Identity string

	// Service mode. ServiceKey (PAYFN_SERVICE_KEY, secret, at least 32
	// bytes) turns it on: it derives the apps' API key secrets and seals
	// their webhook secrets. WebhookAllowPrivate
	// (PAYFN_WEBHOOK_ALLOW_PRIVATE=true) lets webhooks go to loopback and
	// private addresses: for the local stack, never for a public one.
	ServiceKey          string
	WebhookAllowPrivate bool
	// PAYFN_SERVICE_KEY_PREVIOUS (secret): the service key before a
	// rotation; API keys derived from it and webhook secrets it sealed keep
	// working until the apps rotate them.
	ServiceKeyPrevious string

	// Abuse limits and job tuning.
	MaxOpenOrders  int           // PAYFN_MAX_OPEN_ORDERS: a buyer's unpaid, unexpired orders at most, default 20; -1 none
	QueryInterval  time.Duration // PAYFN_QUERY_INTERVAL: queryOrder asks WeChat Pay about one order at most this often, default 5s; -1 every time
	JobParallelism int           // PAYFN_JOB_PARALLELISM: WeChat Pay calls a job makes at once, default 4 (1-32)

	// Where the secrets come from. SecretSource is PAYFN_SECRET_SOURCE:
	// "env" (default: the secrets are environment variables, the weaker
	// option), "aws-secretsmanager", "tencent-ssm" or "file".
	SecretSource   string
	SecretID       string        // PAYFN_SECRET_ID: the secret's name or ARN (a path for "file")
	SecretRefresh  time.Duration // PAYFN_SECRET_REFRESH: how often a warm function looks for a new version, default 5m
	SecretEndpoint string        // PAYFN_SECRET_ENDPOINT: the store's URL, default the platform's regional endpoint (tests set a stand-in)
}

// The secret sources PAYFN_SECRET_SOURCE accepts.
const (
	SourceEnv     = "env"
	SourceAWS     = "aws-secretsmanager"
	SourceTencent = "tencent-ssm"
	SourceFile    = "file"
)

// The identity modes PAYFN_IDENTITY accepts.
const (
	IdentityToken    = "token"
	IdentityPlatform = "platform"
)

// DefaultSecretRefresh is how often a warm function asks the secret store
// for a new version: a rotation reaches every warm function within it.
const DefaultSecretRefresh = 5 * time.Minute

// Part is a group of settings a function needs.
type Part int

// The parts functions need.
const (
	PartStore    Part = iota // MongoDB
	PartLogin                // jscode2session
	PartSessions             // session tokens
	PartPay                  // WeChat Pay merchant
	PartAdmin                // the merchant's admin key
	PartService              // service mode's key
	PartPlatform             // the appid platform callers must come from (PAYFN_IDENTITY=platform)
	PartAlipay               // the Alipay merchant (ALIPAY_*)
)

// Load reads the settings through getenv (os.Getenv in a function) and
// checks the format of every one that is set. All problems come back
// together.
func Load(getenv func(string) string) (Config, error) {
	var errs []error
	duration := func(name string, def time.Duration) time.Duration {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q is not a positive duration such as 30m", name, v))
			return def
		}
		return d
	}
	// integer reads a whole number from lo to hi, or -1 where off is
	// allowed ("-1" turns the limit off).
	integer := func(name string, def, lo, hi int, off bool) int {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err == nil && (n >= lo && n <= hi || off && n == -1) {
			return n
		}
		if off {
			errs = append(errs, fmt.Errorf("%s=%q is not a whole number from %d to %d, or -1 for no limit", name, v, lo, hi))
		} else {
			errs = append(errs, fmt.Errorf("%s=%q is not a whole number from %d to %d", name, v, lo, hi))
		}
		return def
	}
	boolean := func(name string) bool {
		switch v := strings.ToLower(strings.TrimSpace(getenv(name))); v {
		case "", "false", "0":
			return false
		case "true", "1":
			return true
		default:
			errs = append(errs, fmt.Errorf("%s=%q is not true or false", name, v))
			return false
		}
	}
	c := Config{
		MongoURI:              strings.TrimSpace(getenv("MONGODB_URI")),
		MongoDatabase:         strings.TrimSpace(getenv("MONGODB_DATABASE")),
		AppID:                 strings.TrimSpace(getenv("WECHAT_APPID")),
		AppSecret:             strings.TrimSpace(getenv("WECHAT_APPSECRET")),
		LoginBaseURL:          strings.TrimSpace(getenv("WECHAT_API_BASE_URL")),
		SessionSecret:         getenv("PAYFN_SESSION_SECRET"),
		SessionTTL:            duration("PAYFN_SESSION_TTL", 2*time.Hour),
		SessionSecretPrevious: getenv("PAYFN_SESSION_SECRET_PREVIOUS"),
		MchID:                 strings.TrimSpace(getenv("WECHATPAY_MCHID")),
		MchCertSerial:         strings.TrimSpace(getenv("WECHATPAY_MCH_CERT_SERIAL")),
		MchPrivateKeyPEM:      pemText(getenv("WECHATPAY_MCH_PRIVATE_KEY")),
		APIv3Key:              getenv("WECHATPAY_APIV3_KEY"),
		NotifyURL:             strings.TrimSpace(getenv("WECHATPAY_NOTIFY_URL")),
		PublicKeyID:           strings.TrimSpace(getenv("WECHATPAY_PUBLIC_KEY_ID")),
		PublicKeyPEM:          pemText(getenv("WECHATPAY_PUBLIC_KEY")),
		APIv3KeyPrevious:      getenv("WECHATPAY_APIV3_KEY_PREVIOUS"),
		PublicKeyIDPrevious:   strings.TrimSpace(getenv("WECHATPAY_PUBLIC_KEY_ID_PREVIOUS")),
		PublicKeyPEMPrevious:  pemText(getenv("WECHATPAY_PUBLIC_KEY_PREVIOUS")),
		AcceptPlatformCerts:   boolean("WECHATPAY_ACCEPT_PLATFORM_CERTS"),
		PayBaseURL:            strings.TrimSpace(getenv("WECHATPAY_BASE_URL")),
		PayTimeout:            duration("WECHATPAY_TIMEOUT", 8*time.Second),
		RefundNotifyURL:       strings.TrimSpace(getenv("WECHATPAY_REFUND_NOTIFY_URL")),
		AdminKey:              getenv("PAYFN_ADMIN_KEY"),
		AdminKeyPrevious:      getenv("PAYFN_ADMIN_KEY_PREVIOUS"),
		OrderTTL:              duration("PAYFN_ORDER_TTL", 30*time.Minute),
		ServiceKey:            getenv("PAYFN_SERVICE_KEY"),
		ServiceKeyPrevious:    getenv("PAYFN_SERVICE_KEY_PREVIOUS"),
		WebhookAllowPrivate:   boolean("PAYFN_WEBHOOK_ALLOW_PRIVATE"),
		MaxOpenOrders:         integer("PAYFN_MAX_OPEN_ORDERS", 20, 1, 10000, true),
		JobParallelism:        integer("PAYFN_JOB_PARALLELISM", 4, 1, 32, false),
		SecretSource:          strings.TrimSpace(getenv("PAYFN_SECRET_SOURCE")),
		SecretID:              strings.TrimSpace(getenv("PAYFN_SECRET_ID")),
		SecretRefresh:         duration("PAYFN_SECRET_REFRESH", DefaultSecretRefresh),
		SecretEndpoint:        strings.TrimSpace(getenv("PAYFN_SECRET_ENDPOINT")),
		Identity:              strings.ToLower(strings.TrimSpace(getenv("PAYFN_IDENTITY"))),
	}
	switch c.Identity {
	case "":
		c.Identity = IdentityToken
	case IdentityToken, IdentityPlatform:
	default:
		errs = append(errs, fmt.Errorf("PAYFN_IDENTITY=%q is not token or platform", c.Identity))
		c.Identity = IdentityToken
	}
	errs = loadChannels(&c, getenv, errs)
	c.ExtraAppIDs, errs = appIDList("WECHATPAY_EXTRA_APPIDS", getenv("WECHATPAY_EXTRA_APPIDS"), c.AppID, errs)
	// -1 asks WeChat Pay on every queryOrder; anything else is a duration.
	if v := strings.TrimSpace(getenv("PAYFN_QUERY_INTERVAL")); v == "-1" {
		c.QueryInterval = -1
	} else {
		c.QueryInterval = duration("PAYFN_QUERY_INTERVAL", 5*time.Second)
	}
	switch c.SecretSource {
	case "":
		c.SecretSource = SourceEnv
	case SourceEnv, SourceAWS, SourceTencent, SourceFile:
	default:
		errs = append(errs, fmt.Errorf("PAYFN_SECRET_SOURCE=%q is not one of env, aws-secretsmanager, tencent-ssm, file", c.SecretSource))
	}
	if c.SecretSource != SourceEnv && c.SecretID == "" {
		errs = append(errs, fmt.Errorf("PAYFN_SECRET_SOURCE=%s needs PAYFN_SECRET_ID, the secret's name or ARN", c.SecretSource))
	}
	if c.SecretEndpoint != "" {
		if u, err := url.Parse(c.SecretEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, errors.New("PAYFN_SECRET_ENDPOINT is not an http(s) URL"))
		}
	}
	if c.MongoDatabase == "" {
		c.MongoDatabase = "payfn"
	}
	if v := strings.TrimSpace(getenv("PAYFN_LOG_LEVEL")); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			errs = append(errs, fmt.Errorf("PAYFN_LOG_LEVEL=%q is not one of debug, info, warn, error", v))
		}
	}
	for _, k := range []struct{ name, v string }{
		{"PAYFN_SESSION_SECRET", c.SessionSecret}, {"PAYFN_SESSION_SECRET_PREVIOUS", c.SessionSecretPrevious},
		{"PAYFN_ADMIN_KEY", c.AdminKey}, {"PAYFN_ADMIN_KEY_PREVIOUS", c.AdminKeyPrevious},
		{"PAYFN_SERVICE_KEY", c.ServiceKey}, {"PAYFN_SERVICE_KEY_PREVIOUS", c.ServiceKeyPrevious},
	} {
		if k.v != "" && len(k.v) < 32 {
			errs = append(errs, fmt.Errorf("%s is %d bytes; use at least 32 random bytes", k.name, len(k.v)))
		}
	}
	if c.RefundNotifyURL != "" {
		if err := checkNotifyURL(c.RefundNotifyURL); err != nil {
			errs = append(errs, fmt.Errorf("WECHATPAY_REFUND_NOTIFY_URL: %w", err))
		}
	}
	if c.APIv3Key != "" && len(c.APIv3Key) != 32 {
		errs = append(errs, fmt.Errorf("WECHATPAY_APIV3_KEY is %d bytes; the APIv3 key is exactly 32", len(c.APIv3Key)))
	}
	if c.APIv3KeyPrevious != "" && len(c.APIv3KeyPrevious) != 32 {
		errs = append(errs, fmt.Errorf("WECHATPAY_APIV3_KEY_PREVIOUS is %d bytes; the APIv3 key is exactly 32", len(c.APIv3KeyPrevious)))
	}
	if (c.PublicKeyIDPrevious == "") != (c.PublicKeyPEMPrevious == "") {
		errs = append(errs, errors.New("set WECHATPAY_PUBLIC_KEY_ID_PREVIOUS and WECHATPAY_PUBLIC_KEY_PREVIOUS together or neither"))
	}
	if c.PublicKeyIDPrevious != "" && c.PublicKeyID == "" {
		errs = append(errs, errors.New("WECHATPAY_PUBLIC_KEY_ID_PREVIOUS is a second public key during a switch: set WECHATPAY_PUBLIC_KEY_ID and WECHATPAY_PUBLIC_KEY too"))
	}
	if c.NotifyURL != "" {
		if err := checkNotifyURL(c.NotifyURL); err != nil {
			errs = append(errs, err)
		}
	}
	for name, v := range map[string]string{"WECHAT_API_BASE_URL": c.LoginBaseURL, "WECHATPAY_BASE_URL": c.PayBaseURL} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s=%q is not an http(s) URL", name, v))
		}
	}
	if (c.PublicKeyID == "") != (c.PublicKeyPEM == "") {
		errs = append(errs, errors.New("set WECHATPAY_PUBLIC_KEY_ID and WECHATPAY_PUBLIC_KEY together (public-key mode) or neither (platform-certificate mode)"))
	}
	if c.AcceptPlatformCerts && c.PublicKeyID == "" {
		errs = append(errs, errors.New("WECHATPAY_ACCEPT_PLATFORM_CERTS is for public-key mode (platform-certificate mode already accepts them): set WECHATPAY_PUBLIC_KEY_ID and WECHATPAY_PUBLIC_KEY too, or leave it unset"))
	}
	return c, errors.Join(errs...)
}

// Need reports every missing setting of the given parts.
func (c Config) Need(parts ...Part) error {
	var missing []string
	need := func(name, v string) {
		if v == "" {
			missing = append(missing, name)
		}
	}
	for _, p := range parts {
		switch p {
		case PartStore:
			need("MONGODB_URI", c.MongoURI)
		case PartLogin:
			need("WECHAT_APPID", c.AppID)
			need("WECHAT_APPSECRET", c.AppSecret)
		case PartSessions:
			need("PAYFN_SESSION_SECRET", c.SessionSecret)
		case PartAdmin:
			need("PAYFN_ADMIN_KEY", c.AdminKey)
		case PartService:
			need("PAYFN_SERVICE_KEY", c.ServiceKey)
		case PartPlatform:
			need("WECHAT_APPID", c.AppID)
		case PartAlipay:
			c.needAlipay(need)
		case PartPay:
			need("WECHAT_APPID", c.AppID)
			need("WECHATPAY_MCHID", c.MchID)
			need("WECHATPAY_MCH_CERT_SERIAL", c.MchCertSerial)
			need("WECHATPAY_MCH_PRIVATE_KEY", c.MchPrivateKeyPEM)
			need("WECHATPAY_APIV3_KEY", c.APIv3Key)
			need("WECHATPAY_NOTIFY_URL", c.NotifyURL)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing settings: %s", strings.Join(dedupe(missing), ", "))
	}
	return nil
}

// LogValue shows the settings with every secret replaced by whether it is set.
func (c Config) LogValue() slog.Value {
	set := func(v string) string {
		if v == "" {
			return "(unset)"
		}
		return "(set)"
	}
	return slog.GroupValue(
		slog.String("mongodb_uri", set(c.MongoURI)),
		slog.String("mongodb_database", c.MongoDatabase),
		slog.String("wechat_appid", c.AppID),
		slog.String("wechat_appsecret", set(c.AppSecret)),
		slog.String("wechat_api_base_url", c.LoginBaseURL),
		slog.String("session_secret", set(c.SessionSecret)),
		slog.String("session_secret_previous", set(c.SessionSecretPrevious)),
		slog.Duration("session_ttl", c.SessionTTL),
		slog.String("wechatpay_mchid", c.MchID),
		slog.String("wechatpay_mch_cert_serial", c.MchCertSerial),
		slog.String("wechatpay_mch_private_key", set(c.MchPrivateKeyPEM)),
		slog.String("wechatpay_apiv3_key", set(c.APIv3Key)),
		slog.String("wechatpay_apiv3_key_previous", set(c.APIv3KeyPrevious)),
		slog.String("wechatpay_notify_url", c.NotifyURL),
		slog.String("wechatpay_public_key_id", c.PublicKeyID),
		slog.String("wechatpay_public_key_id_previous", c.PublicKeyIDPrevious),
		slog.Bool("wechatpay_accept_platform_certs", c.AcceptPlatformCerts),
		slog.String("wechatpay_base_url", c.PayBaseURL),
		slog.Any("wechatpay_extra_appids", c.ExtraAppIDs),
		slog.String("wechatpay_refund_notify_url", c.RefundNotifyURL),
		slog.String("admin_key", set(c.AdminKey)),
		slog.String("admin_key_previous", set(c.AdminKeyPrevious)),
		slog.String("service_key", set(c.ServiceKey)),
		slog.String("service_key_previous", set(c.ServiceKeyPrevious)),
		slog.Bool("webhook_allow_private", c.WebhookAllowPrivate),
		slog.Duration("order_ttl", c.OrderTTL),
		slog.String("identity", c.Identity),
		slog.Int("max_open_orders", c.MaxOpenOrders),
		slog.Duration("query_interval", c.QueryInterval),
		slog.Int("job_parallelism", c.JobParallelism),
		slog.String("secret_source", c.SecretSource),
		slog.String("secret_id", c.SecretID),
		slog.Duration("secret_refresh", c.SecretRefresh),
	)
}

// checkNotifyURL applies WeChat Pay's rules: https, no query string. Plain
// http is accepted only for loopback, where the local stack runs.
func checkNotifyURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		return fmt.Errorf("WECHATPAY_NOTIFY_URL=%q is not a URL", v)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("WECHATPAY_NOTIFY_URL must not carry a query string")
	}
	host := u.Hostname()
	loopback := host == "127.0.0.1" || host == "localhost" || host == "::1"
	if u.Scheme != "https" && !(u.Scheme == "http" && loopback) {
		return fmt.Errorf("WECHATPAY_NOTIFY_URL must be https (http only on loopback for local runs)")
	}
	if len(v) > 255 {
		return fmt.Errorf("WECHATPAY_NOTIFY_URL is %d characters; WeChat Pay allows 255", len(v))
	}
	return nil
}

// appIDRE is the shape of a WeChat appid: "wx" and 16 hex digits (letters
// up to z pass, as in WeChat's documentation examples).
var appIDRE = regexp.MustCompile(`^wx[0-9a-z]{16}$`)

// appIDList splits a comma-separated list of appids, dropping blanks, and
// reports malformed ones and any repeated (or equal to def, the default
// appid) in errs.
func appIDList(name, v, def string, errs []error) ([]string, []error) {
	var out []string
	for _, id := range strings.Split(v, ",") {
		id = strings.TrimSpace(id)
		switch {
		case id == "":
		case !appIDRE.MatchString(id):
			errs = append(errs, fmt.Errorf("%s: %q is not an appid (wx and 16 lowercase letters or digits)", name, id))
		case id == def || slices.Contains(out, id):
			errs = append(errs, fmt.Errorf("%s: %q is listed twice or is WECHAT_APPID", name, id))
		default:
			out = append(out, id)
		}
	}
	return out, errs
}

// pemText accepts a PEM block with real newlines or with "\n" escapes, as
// some secret stores and .env files deliver it.
func pemText(v string) string {
	v = strings.TrimSpace(v)
	if !strings.Contains(v, "\n") {
		v = strings.ReplaceAll(v, `\n`, "\n")
	}
	return v
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	out := s[:0]
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
