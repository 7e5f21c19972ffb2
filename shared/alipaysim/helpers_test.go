package alipaysim_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/alipaysim"
)

const appID = "2021000000000001"

// RSA-2048 generation is slow, so the test binary makes its keys once.
var (
	keysOnce                             sync.Once
	alipayKey, appKey, rootKey, otherKey *rsa.PrivateKey
)

func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		for _, k := range []**rsa.PrivateKey{&alipayKey, &appKey, &rootKey, &otherKey} {
			if *k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
				panic(err) // test setup only
			}
		}
	})
}

func startSim(t testing.TB, mutate func(*alipaysim.Options)) *alipaysim.Server {
	t.Helper()
	testKeys(t)
	opts := alipaysim.Options{
		AppID: appID, SellerID: "2088000000000001", MerchantName: "Test Shop",
		AppKey: appKey, AlipayKey: alipayKey, RootKey: rootKey,
		RetrySchedule: []time.Duration{5 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond},
	}
	if mutate != nil {
		mutate(&opts)
	}
	sim, err := alipaysim.New(opts)
	if err != nil {
		t.Fatalf("alipaysim.New: %v", err)
	}
	if err := sim.Listen("127.0.0.1:0"); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

func ctxTimeout(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// client is a small Alipay OpenAPI client written for these tests from
// Alipay's rules (and what smartwalle/alipay v3.2.25 does): common
// parameters plus biz_content, signed RSA2 over every parameter but sign,
// posted as a form; replies verified over the raw bytes of the response
// object.
type client struct {
	sim            *alipaysim.Server
	key            *rsa.PrivateKey
	alipayPub      *rsa.PublicKey
	appSN, rootSN  string
	notifyURL      string
	now            func() time.Time
	skipVerifyResp bool
}

func newClient(sim *alipaysim.Server) *client {
	k := sim.Keys()
	return &client{sim: sim, key: appKey, alipayPub: k.AlipayPublicKey, appSN: k.AppCertSN, rootSN: k.RootCertSN, now: time.Now}
}

func signValues(key *rsa.PrivateKey, p url.Values, skip ...string) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		skipped := false
		for _, s := range skip {
			skipped = skipped || s == k
		}
		if !skipped && p.Get(k) != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+p.Get(k))
	}
	sum := sha256.Sum256([]byte(strings.Join(parts, "&")))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// verifyValues checks a notification or return signature as merchants must:
// every parameter but sign and sign_type, sorted, "k=v" joined by "&".
func verifyValues(pub *rsa.PublicKey, p url.Values) error {
	var keys []string
	for k := range p {
		if k != "sign" && k != "sign_type" && p.Get(k) != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+p.Get(k))
	}
	sig, err := base64.StdEncoding.DecodeString(p.Get("sign"))
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(strings.Join(parts, "&")))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig)
}

func (c *client) params(method string, biz any) url.Values {
	p := url.Values{}
	p.Set("app_id", appID)
	p.Set("method", method)
	p.Set("format", "JSON")
	p.Set("charset", "utf-8")
	p.Set("sign_type", "RSA2")
	p.Set("timestamp", c.now().In(time.FixedZone("CST", 8*3600)).Format("2006-01-02 15:04:05"))
	p.Set("version", "1.0")
	if c.notifyURL != "" {
		p.Set("notify_url", c.notifyURL)
	}
	if c.appSN != "" {
		p.Set("app_cert_sn", c.appSN)
		p.Set("alipay_root_cert_sn", c.rootSN)
	}
	b, _ := json.Marshal(biz)
	p.Set("biz_content", string(b))
	p.Set("sign", signValues(c.key, p, "sign"))
	return p
}

// reply is a decoded gateway answer.
type reply struct {
	name   string
	fields map[string]any
	raw    map[string]json.RawMessage
	signed bool
}

func (r reply) str(k string) string {
	v, _ := r.fields[k].(string)
	return v
}

func (r reply) sub() string { return r.str("sub_code") }

// post sends p to the gateway and decodes (and, when signed, verifies) the
// reply for method.
func (c *client) post(t testing.TB, method string, p url.Values) reply {
	t.Helper()
	resp, err := http.PostForm(c.sim.GatewayURL(), p)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: HTTP %d %s", method, resp.StatusCode, body)
	}
	return c.decode(t, method, body)
}

func (c *client) decode(t testing.TB, method string, body []byte) reply {
	t.Helper()
	r := reply{raw: map[string]json.RawMessage{}}
	if err := json.Unmarshal(body, &r.raw); err != nil {
		t.Fatalf("%s: reply is not JSON: %v: %s", method, err, body)
	}
	r.name = strings.ReplaceAll(method, ".", "_") + "_response"
	inner, ok := r.raw[r.name]
	if !ok {
		r.name = "error_response"
		inner = r.raw[r.name]
	}
	if err := json.Unmarshal(inner, &r.fields); err != nil {
		t.Fatalf("%s: no response object: %s", method, body)
	}
	var sign string
	_ = json.Unmarshal(r.raw["sign"], &sign)
	if sign != "" {
		r.signed = true
		sig, _ := base64.StdEncoding.DecodeString(sign)
		sum := sha256.Sum256(inner)
		if err := rsa.VerifyPKCS1v15(c.alipayPub, crypto.SHA256, sum[:], sig); err != nil && !c.skipVerifyResp {
			t.Fatalf("%s: reply signature does not verify: %v: %s", method, err, body)
		}
	}
	return r
}

func (c *client) call(t testing.TB, method string, biz any) reply {
	t.Helper()
	return c.post(t, method, c.params(method, biz))
}

type m = map[string]any

// receiver is the merchant's notify_url.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []received
	answer func(n int, form url.Values) (int, string)
	ch     chan struct{}
}

type received struct {
	form     url.Values
	header   http.Header
	parseErr error
	at       time.Time
}

func newReceiver(t testing.TB, answer func(n int, form url.Values) (int, string)) *receiver {
	t.Helper()
	rc := &receiver{answer: answer, ch: make(chan struct{}, 100)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		// What Go's own ParseForm makes of it (the legacy header trips it).
		r2, _ := http.NewRequest(http.MethodPost, "/", strings.NewReader(string(body)))
		r2.Header = r.Header.Clone()
		perr := r2.ParseForm()
		rc.mu.Lock()
		n := len(rc.got)
		rc.got = append(rc.got, received{form: form, header: r.Header.Clone(), parseErr: perr, at: time.Now()})
		rc.mu.Unlock()
		status, text := http.StatusOK, "success"
		if rc.answer != nil {
			status, text = rc.answer(n, form)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, text)
		rc.ch <- struct{}{}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) url() string { return rc.srv.URL + "/notify" }

func (rc *receiver) all() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// wait waits for n notifications in all.
func (rc *receiver) wait(t testing.TB, n int) []received {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if got := rc.all(); len(got) >= n {
			return got
		}
		select {
		case <-rc.ch:
		case <-deadline:
			t.Fatalf("waited for %d notifications, got %d", n, len(rc.all()))
		}
	}
}

// createAndPay creates a JSAPI trade of fen and pays it.
func createAndPay(t testing.TB, c *client, no, amount string) alipaysim.TradeState {
	t.Helper()
	r := c.call(t, alipaysim.MethodCreate, m{"out_trade_no": no, "total_amount": amount, "subject": "Test " + no,
		"product_code": "JSAPI_PAY", "buyer_open_id": "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5"})
	if r.str("code") != "10000" {
		t.Fatalf("create %s: %v", no, r.fields)
	}
	ts, err := c.sim.PayTrade(ctxTimeout(t), r.str("trade_no"), alipaysim.PayOptions{})
	if err != nil {
		t.Fatalf("pay %s: %v", no, err)
	}
	return ts
}

func mustPrivatePEM(k *rsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
