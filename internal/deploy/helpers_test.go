package deploy

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/setup"
)

// root is the repository root, seen from this package's folder.
const root = "../.."

// function is one deployable function as the code defines it.
type function struct {
	Folder   string         // functions/<Folder>
	Name     setup.Function // as shared/setup names it
	Path     string         // route of an HTTP function (a subtree for the service-mode ones)
	Schedule string         // how often a scheduled job runs ("5m", "1h")
}

// functions lists every folder under functions/ that holds a main.go and
// pairs it with its entry in setup.Functions (the folder is the name in
// lower case). The list drives every artifact check, so a new function is
// covered as soon as its folder exists.
func functions(t *testing.T) []function {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(root, "functions"))
	if err != nil {
		t.Fatal(err)
	}
	var out []function
	for _, d := range des {
		if !d.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, "functions", d.Name(), "main.go")); err != nil {
			continue
		}
		f := function{Folder: d.Name()}
		for _, s := range setup.Functions {
			if strings.ToLower(string(s.Name)) == d.Name() {
				f.Name, f.Path, f.Schedule = s.Name, s.Path, s.Schedule
			}
		}
		if f.Name == "" {
			t.Fatalf("functions/%s has no entry in setup.Functions (its folder must be its name in lower case)", d.Name())
		}
		if (f.Path == "") == (f.Schedule == "") {
			t.Fatalf("setup.Functions entry %s must have exactly one of Path and Schedule", f.Name)
		}
		out = append(out, f)
	}
	if len(out) < 5 {
		t.Fatalf("found %d functions, want at least 5", len(out))
	}
	return out
}

// gatewayRoutes returns the routes an API gateway must send to the HTTP
// function fn, as "<METHOD> <path>" in HTTP API route-key syntax, following
// the local stack's mux: a function the mux serves at one path takes POST
// there (its handler answers nothing else); a function serving a subtree
// (the server API under /v1/, the app administration under /admin/apps/)
// takes every method at every path under it, "ANY <base>/{proxy+}", plus
// "ANY <base>" when the mux serves the base itself. The function's own
// router answers 404 and 405 inside its subtree.
func gatewayRoutes(t *testing.T, fn function) []string {
	t.Helper()
	if fn.Path == "" {
		t.Fatalf("%s is a scheduled job; it has no routes", fn.Name)
	}
	mux := httpapi.New(app.New(app.Config{}), nil).Routes()
	pattern := func(path string) string {
		_, p := mux.Handler(httptest.NewRequest(http.MethodPost, path, nil))
		return p
	}
	base := strings.TrimSuffix(fn.Path, "/")
	if pattern(base+"/x") != base+"/" {
		if pattern(fn.Path) != fn.Path {
			t.Fatalf("the local stack does not serve %s at its path %s", fn.Name, fn.Path)
		}
		return []string{"POST " + fn.Path}
	}
	routes := []string{"ANY " + base + "/{proxy+}"}
	if pattern(base) == base {
		routes = append(routes, "ANY "+base)
	}
	slices.Sort(routes)
	return routes
}

// routed reports whether a gateway with routes sends method and path to
// their function.
func routed(routes []string, method, path string) bool {
	for _, r := range routes {
		m, p, _ := strings.Cut(r, " ")
		if m != "ANY" && m != method {
			continue
		}
		if prefix, ok := strings.CutSuffix(p, "{proxy+}"); ok {
			if len(path) > len(prefix) && strings.HasPrefix(path, prefix) {
				return true
			}
		} else if p == path {
			return true
		}
	}
	return false
}

// configVars reads shared/config's source (config.go, channels.go, ...)
// for the variables it reads and the ones its comments mark "(secret", so
// the artifact checks follow the configuration's own declarations rather
// than a copy of them.
func configVars(t *testing.T) (all, secret map[string]bool) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "shared", "config", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var src []byte
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src = append(append(src, b...), '\n')
	}
	all, secret = map[string]bool{}, map[string]bool{}
	for _, m := range regexp.MustCompile(`\(\s*"((?:MONGODB|WECHAT|WECHATPAY|PAYFN|ALIPAY)_[A-Z0-9_]+)"`).FindAllSubmatch(src, -1) {
		all[string(m[1])] = true
	}
	for _, m := range regexp.MustCompile(`//\s*([A-Z][A-Z0-9_]+)\b[^\n]*\(secret`).FindAllSubmatch(src, -1) {
		secret[string(m[1])] = true
	}
	// A sanity floor: if the comment style changed, fail rather than check
	// nothing.
	for _, v := range []string{"MONGODB_URI", "WECHAT_APPSECRET", "PAYFN_SESSION_SECRET", "WECHATPAY_MCH_PRIVATE_KEY", "WECHATPAY_APIV3_KEY", "ALIPAY_APP_PRIVATE_KEY"} {
		if !secret[v] || !all[v] {
			t.Fatalf("shared/config no longer declares %s as a secret it reads; update configVars", v)
		}
	}
	return all, secret
}

var (
	keyOnce     sync.Once
	merchantKey *rsa.PrivateKey
	merchantPEM string
)

// merchant returns an RSA merchant key made once per test binary (RSA-2048
// generation is slow) and its PKCS#8 PEM.
func merchant(t *testing.T) (*rsa.PrivateKey, string) {
	t.Helper()
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			panic(err)
		}
		merchantKey, merchantPEM = k, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	})
	return merchantKey, merchantPEM
}

// plausible gives a valid value for a configuration variable, for checking
// that a set of variable names is enough for a function to start. Public-key
// mode is off (both public-key variables empty), as the template's defaults.
func plausible(t *testing.T, name string) string {
	_, pemText := merchant(t)
	switch name {
	case "MONGODB_URI":
		return "mongodb://127.0.0.1:27017/"
	case "MONGODB_DATABASE":
		return "payfn"
	case "WECHAT_APPID":
		return "wx1234567890abcdef"
	case "WECHAT_APPSECRET":
		return "app-secret"
	case "PAYFN_SESSION_SECRET", "PAYFN_ADMIN_KEY", "PAYFN_SERVICE_KEY":
		return strings.Repeat("k", 32)
	case "WECHATPAY_EXTRA_APPIDS":
		return "wxfedcba9876543210"
	case "PAYFN_SESSION_TTL":
		return "2h"
	case "PAYFN_ORDER_TTL":
		return "30m"
	case "PAYFN_LOG_LEVEL":
		return "info"
	case "WECHATPAY_MCHID":
		return "1900000109"
	case "WECHATPAY_MCH_CERT_SERIAL":
		return "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
	case "WECHATPAY_MCH_PRIVATE_KEY":
		return pemText
	case "WECHATPAY_APIV3_KEY":
		return strings.Repeat("a", 32)
	case "WECHATPAY_NOTIFY_URL":
		return "https://pay.example.com/notify/wechatpay"
	case "WECHATPAY_REFUND_NOTIFY_URL":
		return "https://pay.example.com/notify/wechatpay/refund"
	case "WECHATPAY_PUBLIC_KEY_ID", "WECHATPAY_PUBLIC_KEY":
		return ""
	case "WECHATPAY_ACCEPT_PLATFORM_CERTS":
		return "false"
	case "PAYFN_SECRET_SOURCE":
		return "aws-secretsmanager"
	case "PAYFN_SECRET_ID":
		return "payfn/function"
	case "PAYFN_SECRET_REFRESH":
		return "5m"
	case "PAYFN_CHANNELS":
		return "wechat_jsapi" // the artifacts' default; checkEnvironment also starts with every channel on
	case "ALIPAY_APP_ID", "ALIPAY_MINI_APPID":
		return "2021000000000001"
	case "ALIPAY_SELLER_ID":
		return "2088000000000001"
	case "ALIPAY_APP_PRIVATE_KEY":
		return pemText
	case "ALIPAY_PUBLIC_KEY":
		return alipayPublicKeyPEM(t)
	case "ALIPAY_NOTIFY_URL":
		return "https://pay.example.com/notify/alipay"
	case "ALIPAY_GATEWAY_URL":
		return "https://openapi.alipay.com/gateway.do"
	}
	t.Fatalf("plausible: no test value for %s; add one", name)
	return ""
}

// alipayPublicKeyPEM is the test merchant key's public half, PKIX PEM: a
// well-formed stand-in for Alipay's public key.
func alipayPublicKeyPEM(t *testing.T) string {
	key, _ := merchant(t)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// allChannels turns every payment channel on (PAYFN_CHANNELS).
const allChannels = "wechat_jsapi,wechat_h5,alipay_wap,alipay_mini"

var (
	derivedOnce sync.Once
	derivedMemo map[string]access
	alipayMu    sync.Mutex
	alipayMemo  = map[setup.Function]bool{}
)

// optionalSecretKeys lists the keys fn's secret holds beyond the ones it
// needs to start in every deployment: PAYFN_SERVICE_KEY, in service mode,
// for every function that records events (derived from the source: it
// inserts into events), which records a decision's event and makes its
// first webhook attempt only with the key; and ALIPAY_APP_PRIVATE_KEY, with
// an Alipay channel on, for every function that then needs the Alipay
// merchant (the ones acting on orders of any channel).
func optionalSecretKeys(t *testing.T, fn setup.Function) []string {
	t.Helper()
	derivedOnce.Do(func() { derivedMemo = derivedAccess(t) })
	var out []string
	if slices.Contains(derivedMemo[string(fn)]["events"], "insert") && !slices.Contains(setup.SecretKeys(fn), "PAYFN_SERVICE_KEY") {
		out = append(out, "PAYFN_SERVICE_KEY")
	}
	if needsAlipayWhenOn(t, fn) && !slices.Contains(setup.SecretKeys(fn), "ALIPAY_APP_PRIVATE_KEY") {
		out = append(out, "ALIPAY_APP_PRIVATE_KEY")
	}
	return out
}

// needsAlipayWhenOn reports whether fn, with every channel on and its
// secrets in the environment, refuses to start for want of the Alipay
// merchant's private key: what shared/setup says fn needs then, derived
// from the function itself rather than a copy of setup's list.
func needsAlipayWhenOn(t *testing.T, fn setup.Function) bool {
	t.Helper()
	alipayMu.Lock()
	defer alipayMu.Unlock()
	if v, ok := alipayMemo[fn]; ok {
		return v
	}
	f := function{Name: fn}
	for _, d := range setup.Functions {
		if d.Name == fn {
			f.Path, f.Schedule = d.Path, d.Schedule
		}
	}
	names := []string{"MONGODB_URI", "MONGODB_DATABASE", "WECHAT_APPID", "WECHAT_APPSECRET", "PAYFN_SESSION_SECRET",
		"PAYFN_ADMIN_KEY", "PAYFN_SERVICE_KEY", "WECHATPAY_MCHID", "WECHATPAY_MCH_CERT_SERIAL", "WECHATPAY_MCH_PRIVATE_KEY",
		"WECHATPAY_APIV3_KEY", "WECHATPAY_NOTIFY_URL", "WECHATPAY_REFUND_NOTIFY_URL", "ALIPAY_APP_ID", "ALIPAY_SELLER_ID",
		"ALIPAY_PUBLIC_KEY", "ALIPAY_NOTIFY_URL", "PAYFN_CHANNELS", "PAYFN_SECRET_SOURCE"}
	err := startsOverriding(t, f, names, map[string]string{"PAYFN_CHANNELS": allChannels, "PAYFN_SECRET_SOURCE": "env"})
	v := err != nil && strings.Contains(err.Error(), "ALIPAY_APP_PRIVATE_KEY")
	alipayMemo[fn] = v
	return v
}

// starts builds fn from exactly the named variables (with plausible values)
// the way its main does, and returns the error that would stop its cold start.
func starts(t *testing.T, fn function, names []string) error {
	t.Helper()
	return startsOverriding(t, fn, names, nil)
}

// startsOverriding is starts with some of the variables given other values.
func startsOverriding(t *testing.T, fn function, names []string, values map[string]string) error {
	t.Helper()
	env := map[string]string{}
	for _, n := range names {
		env[n] = plausible(t, n)
		if v, ok := values[n]; ok {
			env[n] = v
		}
	}
	getenv := func(k string) string { return env[k] }
	logger := slog.New(slog.DiscardHandler)
	if fn.Path != "" {
		_, err := setup.Handler(fn.Name, getenv, logger)
		return err
	}
	_, err := setup.JobFor(fn.Name, getenv, logger)
	return err
}

// checkEnvironment proves a function's variable set is right: every name is
// one the configuration reads, the set is enough to start the function, and
// every secret in it is needed (removing it stops the cold start), so no
// function holds a secret it does not use.
func checkEnvironment(t *testing.T, where string, fn function, names []string) {
	t.Helper()
	all, secret := configVars(t)
	for _, n := range names {
		if !all[n] {
			t.Errorf("%s: %s sets %s, which shared/config does not read", where, fn.Name, n)
		}
	}
	// A function that checks appids against the merchant's (the WeChat Pay
	// channel; the app administration, without a channel) must know all of
	// them, or an order paid under an extra appid fails there.
	if slices.Contains(setup.SecretKeys(fn.Name), "WECHATPAY_APIV3_KEY") || fn.Name == setup.AdminApps {
		for _, n := range []string{"WECHAT_APPID", "WECHATPAY_EXTRA_APPIDS"} {
			if !slices.Contains(names, n) {
				t.Errorf("%s: %s checks appids but is not given %s", where, fn.Name, n)
			}
		}
	}
	// A function that takes payments of a provider dispatches on the
	// channels the deployment offers: it must know them, and with every
	// channel on it must still start (the Alipay settings it then needs are
	// in its variables, the Alipay key in its secret).
	paysAny := slices.Contains(setup.SecretKeys(fn.Name), "WECHATPAY_APIV3_KEY") || slices.Contains(setup.SecretKeys(fn.Name), "ALIPAY_APP_PRIVATE_KEY")
	if paysAny && !slices.Contains(names, "PAYFN_CHANNELS") {
		t.Errorf("%s: %s takes payments but is not given PAYFN_CHANNELS", where, fn.Name)
	}
	if slices.Contains(names, "PAYFN_CHANNELS") {
		if err := startsOverriding(t, fn, names, map[string]string{"PAYFN_CHANNELS": allChannels}); err != nil {
			t.Errorf("%s: %s cannot start with every channel on (PAYFN_CHANNELS=%s) and its variables %v: %v", where, fn.Name, allChannels, names, err)
		}
	}
	// Webhooks to private addresses are for the local stack only.
	if slices.Contains(names, "PAYFN_WEBHOOK_ALLOW_PRIVATE") {
		t.Errorf("%s: %s is given PAYFN_WEBHOOK_ALLOW_PRIVATE; a cloud deployment never sends webhooks to private addresses", where, fn.Name)
	}
	if err := starts(t, fn, names); err != nil {
		t.Errorf("%s: %s cannot start with its variables %v: %v", where, fn.Name, names, err)
		return
	}
	for _, n := range names {
		if !secret[n] {
			continue
		}
		rest := slices.DeleteFunc(slices.Clone(names), func(s string) bool { return s == n })
		if err := starts(t, fn, rest); err == nil {
			t.Errorf("%s: %s gets secret %s but starts without it; give it only the secrets it uses", where, fn.Name, n)
		}
	}
}

// cronFor turns a setup schedule ("5m", "1h") into what each platform wants.
func scheduleFor(t *testing.T, every string) (awsRate, scfCron string) {
	t.Helper()
	var n int
	var unit string
	if _, err := fmt.Sscanf(every, "%d%s", &n, &unit); err != nil || n <= 0 {
		t.Fatalf("schedule %q is not <n>m or <n>h", every)
	}
	plural := func(s string) string {
		if n == 1 {
			return s
		}
		return s + "s"
	}
	switch unit {
	case "m":
		if n == 1 {
			return "rate(1 minute)", "* * * * *"
		}
		return fmt.Sprintf("rate(%d %s)", n, plural("minute")), fmt.Sprintf("*/%d * * * *", n)
	case "h":
		if n == 1 {
			return "rate(1 hour)", "0 * * * *"
		}
		return fmt.Sprintf("rate(%d %s)", n, plural("hour")), fmt.Sprintf("0 */%d * * *", n)
	}
	t.Fatalf("schedule %q: unit must be m or h", every)
	return "", ""
}
