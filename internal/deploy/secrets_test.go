package deploy

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/payfn/payfn/bench"
	"github.com/payfn/payfn/shared/identity"
	"github.com/payfn/payfn/shared/secrets/secretstest"
	"github.com/payfn/payfn/shared/setup"
)

// secretEnv is what a function's platform gives it to reach its secret,
// when the artifact configures one (names holds PAYFN_SECRET_SOURCE): the
// role's temporary credentials, as Lambda and SCF put them in the
// environment, and the secret's id, pointed at this stack's stand-in. The
// stand-in holds a secret of the function's own with exactly the keys
// setup.SecretKeys names and the optional ones that turn service mode on
// (optionalSecretKeys), readable with these credentials only.
func (s *stack) secretEnv(t *testing.T, platform, name string, names []string) []string {
	t.Helper()
	if !slices.Contains(names, "PAYFN_SECRET_SOURCE") {
		return nil
	}
	val := s.values(t)
	content := map[string]string{}
	for _, k := range append(setup.SecretKeys(setup.Function(name)), optionalSecretKeys(t, setup.Function(name))...) {
		content[k] = val[k]
		s.secrets = append(s.secrets, val[k])
	}
	raw, _ := json.Marshal(content)
	key, token := randomText(t), randomText(t)
	s.secrets = append(s.secrets, key, token)
	switch platform {
	case "aws":
		id, ak := "payfn/"+name, "ASIA"+strings.ToUpper(name)
		s.aws.Put(id, string(raw))
		s.aws.Grant(ak, key, token, id)
		return []string{"PAYFN_SECRET_SOURCE=aws-secretsmanager", "PAYFN_SECRET_ID=" + id, "PAYFN_SECRET_ENDPOINT=" + s.aws.URL(),
			"AWS_ACCESS_KEY_ID=" + ak, "AWS_SECRET_ACCESS_KEY=" + key, "AWS_SESSION_TOKEN=" + token}
	case "scf":
		id, sid := "payfn-"+strings.ToLower(name), "AKID"+strings.ToUpper(name)
		s.ssm.Put(id, string(raw))
		s.ssm.Grant(sid, key, token, id)
		return []string{"PAYFN_SECRET_SOURCE=tencent-ssm", "PAYFN_SECRET_ID=" + id, "PAYFN_SECRET_ENDPOINT=" + s.ssm.URL(),
			"TENCENTCLOUD_SECRETID=" + sid, "TENCENTCLOUD_SECRETKEY=" + key, "TENCENTCLOUD_SESSIONTOKEN=" + token}
	}
	t.Fatalf("unknown platform %s", platform)
	return nil
}

func randomText(t *testing.T) string {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// noSecretWritten fails if any secret value handed to a function, or any
// of its credentials, appears in what a function process wrote (its whole
// stdout and stderr, debug logs included) or answered.
func (s *stack) noSecretWritten(t *testing.T, answers string) {
	t.Helper()
	if len(s.secrets) == 0 {
		t.Fatal("no function was given a secret to look for")
	}
	var out strings.Builder
	for _, p := range s.procs {
		out.WriteString(p.output.String())
	}
	written := out.String()
	if !strings.Contains(written, `"secret loaded"`) {
		t.Errorf("no function logged fetching its secret")
	}
	if n := leaks(s.secrets, written+answers); n > 0 {
		t.Errorf("%d secret values appear in the functions' output or answers", n)
	}
}

// leaks counts the secrets that appear in text: whole, with newlines
// escaped as JSON writes them, or by one inner line (a PEM body line).
func leaks(secrets []string, text string) int {
	n := 0
	for _, v := range secrets {
		probes := []string{v, strings.ReplaceAll(v, "\n", `\n`)}
		if lines := strings.Split(v, "\n"); len(lines) > 2 {
			probes = append(probes, lines[1])
		}
		for _, p := range probes {
			if len(p) >= 8 && strings.Contains(text, p) {
				n++
				break
			}
		}
	}
	return n
}

func TestLeaksFindsASecretWholeEscapedOrByALine(t *testing.T) {
	_, pemText := merchant(t)
	secrets := []string{pemText, "0123456789abcdef0123456789abcdef"}
	line := strings.Split(pemText, "\n")[1]
	for text, want := range map[string]int{
		`{"msg":"ok"}`: 0,
		`{"err":"bad key 0123456789abcdef0123456789abcdef"}`:      1,
		`{"v":"` + strings.ReplaceAll(pemText, "\n", `\n`) + `"}`: 1,
		"panic: " + line: 1,
		`{"a":"0123456789abcdef0123456789abcdef","b":"` + line + `"}`: 2,
	} {
		if got := leaks(secrets, text); got != want {
			t.Errorf("leaks in %.40q... = %d, want %d", text, got, want)
		}
	}
}

// TestStoreBackedColdStartIsNetworkFree starts every function's bootstrap
// as template.yaml configures it (secrets in a store, none in the
// environment) and measures exec to its first GET /next: the secret store
// and every dependency must see no connection, and the median must stay
// within 10 ms (asserted at 50 ms: the test host is shared; the figure is
// logged).
func TestStoreBackedColdStartIsNetworkFree(t *testing.T) {
	dist := built(t)
	f, err := bench.Shared()
	if err != nil {
		t.Fatal(err)
	}
	api, err := bench.NewRuntimeAPI()
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	store := secretstest.NewAWS(t, "ap-east-1")
	_, secret := configVars(t)
	var env []string
	for _, kv := range api.GoEnv(f) {
		name, _, _ := strings.Cut(kv, "=")
		if !secret[name] && name != "WECHATPAY_MCH_CERT_SERIAL" {
			env = append(env, kv)
		}
	}
	// alipayNotify checks its Alipay settings at start as the others check
	// WeChat Pay's.
	for _, n := range []string{"ALIPAY_APP_ID", "ALIPAY_SELLER_ID", "ALIPAY_PUBLIC_KEY", "ALIPAY_NOTIFY_URL"} {
		env = append(env, n+"="+plausible(t, n))
	}
	env = append(env, "PAYFN_SECRET_SOURCE=aws-secretsmanager", "PAYFN_SECRET_ID=payfn/bench", "PAYFN_SECRET_ENDPOINT="+store.URL(),
		"AWS_ACCESS_KEY_ID=ASIABENCH", "AWS_SECRET_ACCESS_KEY=bench-secret-key", "AWS_SESSION_TOKEN=bench-token")
	for _, fn := range functions(t) {
		bin := unzipOnly(t, filepath.Join(dist, "aws", goruntime.GOARCH, fn.Folder+".zip"), "bootstrap", t.TempDir())
		ds, conns, err := api.ReadyTimes([]string{bin}, env, 5)
		if err != nil {
			t.Fatalf("%s: %v", fn.Folder, err)
		}
		med := bench.MedianDuration(ds)
		t.Logf("%s: ready in %s (median of 5)", fn.Folder, med.Round(100*time.Microsecond))
		if conns != 0 || store.Fetches()+store.Refused() != 0 {
			t.Errorf("%s: cold start opened %d dependency connections and %d secret-store requests", fn.Folder, conns, store.Fetches()+store.Refused())
		}
		if med > 50*time.Millisecond {
			t.Errorf("%s: cold start median %s, want within 10 ms", fn.Folder, med)
		}
	}
}

// TestWarmBinariesPickUpARotatedSecretAndRideOutAStoreOutage runs the real
// login binary on both platforms, configured by its artifact with its
// secret refreshed every 200 ms: a new secret version reaches the warm
// process (its tokens are signed with the new session secret), and while
// the store is down the warm process keeps serving with what it has.
func TestWarmBinariesPickUpARotatedSecretAndRideOutAStoreOutage(t *testing.T) {
	dist := built(t)
	oldSecret, newSecret := strings.Repeat("s", 32), "rotated-session-secret-rotated-session"
	for _, platform := range []string{"aws", "scf"} {
		t.Run(platform, func(t *testing.T) {
			s := newStack(t)
			var fn runner
			var down func(bool)
			var put func(string)
			if platform == "aws" {
				bin := unzipOnly(t, filepath.Join(dist, "aws", goruntime.GOARCH, "login.zip"), "bootstrap", t.TempDir())
				fn = startLambdaWith(t, s, bin, "login", templateVars(t, "login"), "PAYFN_SECRET_REFRESH=200ms")
				down, put = s.aws.SetDown, func(v string) { s.aws.Put("payfn/login", v) }
			} else {
				bin := unzipOnly(t, filepath.Join(dist, "scf", goruntime.GOARCH, "login.zip"), "login", t.TempDir())
				fn = startSCFWith(t, s, bin, "login", slsVars(t, "login"), "PAYFN_SECRET_REFRESH=200ms")
				down, put = s.ssm.SetDown, func(v string) { s.ssm.Put("payfn-login", v) }
			}
			login := func() string {
				t.Helper()
				r := fn.invoke(t, jsonRequest("", map[string]string{"code": s.sim.NewLoginCode("o-warm")}).at("/login")).want(t, 200, "")
				return r.field(t, "token")
			}
			signedWith := func(secret, token string) bool {
				tok, err := identity.NewTokens([]byte(secret), time.Hour, nil)
				if err != nil {
					t.Fatal(err)
				}
				_, err = tok.Verify(token)
				return err == nil
			}
			if tok := login(); !signedWith(oldSecret, tok) {
				t.Fatal("the cold invocation's token is not signed with the secret in the store")
			}
			rotated, _ := json.Marshal(map[string]string{
				"WECHAT_APPSECRET": "app-secret", "PAYFN_SESSION_SECRET": newSecret, "PAYFN_SESSION_SECRET_PREVIOUS": oldSecret,
			})
			put(string(rotated))
			s.secrets = append(s.secrets, newSecret)
			time.Sleep(300 * time.Millisecond)
			if tok := login(); !signedWith(newSecret, tok) || signedWith(oldSecret, tok) {
				t.Fatal("the warm process still signs with the old session secret after a refresh interval")
			}
			down(true)
			time.Sleep(300 * time.Millisecond)
			if tok := login(); !signedWith(newSecret, tok) {
				t.Fatal("during the store outage the warm process lost its secret")
			}
			down(false)
			var out strings.Builder
			for _, p := range s.procs {
				out.WriteString(p.output.String())
			}
			for _, want := range []string{`"secret rotated"`, `"secret store unavailable; serving with the secret fetched before"`} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("the process did not log %s", want)
				}
			}
			s.noSecretWritten(t, "")
		})
	}
}

// at sets the route a request is sent on.
func (r request) at(path string) request { r.path = path; return r }
