package alipay_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/alipay"
	"github.com/payfn/payfn/shared/alipaysim"
	"github.com/payfn/payfn/shared/app"
)

const (
	testAppID    = "2021000000000001"
	testSellerID = "2088000000000001"
)

// RSA-2048 generation is slow, so the test binary makes its keys once.
var (
	keysOnce                             sync.Once
	alipayKey, appKey, rootKey, otherKey *rsa.PrivateKey
)

func testKeys() {
	keysOnce.Do(func() {
		for _, k := range []**rsa.PrivateKey{&alipayKey, &appKey, &rootKey, &otherKey} {
			var err error
			if *k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
				panic(err) // test setup only
			}
		}
	})
}

// notice is one notification the receiver got, exactly as it came.
type notice struct {
	header http.Header
	body   []byte
	form   url.Values
}

// receiver is the merchant's notify_url on loopback: it records every
// notification and answers "success".
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     map[string][]notice // by out_trade_no
	changed chan struct{}
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{got: map[string][]notice{}, changed: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/return" || req.URL.Path == "/quit" {
			io.WriteString(w, "back at the merchant")
			return
		}
		body, _ := io.ReadAll(req.Body)
		form, _ := url.ParseQuery(string(body))
		r.mu.Lock()
		no := form.Get("out_trade_no")
		r.got[no] = append(r.got[no], notice{req.Header.Clone(), body, form})
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
		io.WriteString(w, "success")
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// wait returns the first notification of outTradeNo that match accepts.
func (r *receiver) wait(t testing.TB, outTradeNo string, match func(url.Values) bool) notice {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		for _, n := range r.got[outTradeNo] {
			if match(n.form) {
				r.mu.Unlock()
				return n
			}
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no matching notification of %s arrived", outTradeNo)
		}
	}
}

func paid(f url.Values) bool {
	return f.Get("trade_status") == alipaysim.StatusSuccess && f.Get("refund_fee") == ""
}

// rig is a client and its simulator on loopback, in one key mode.
type rig struct {
	sim    *alipaysim.Server
	rcv    *receiver
	client *alipay.Client
	cfg    alipay.Config
}

func newRig(t testing.TB, certMode bool, mutate func(*alipaysim.Options)) *rig {
	t.Helper()
	testKeys()
	opts := alipaysim.Options{
		AppID: testAppID, SellerID: testSellerID, CertMode: certMode,
		AppKey: appKey, AlipayKey: alipayKey, RootKey: rootKey,
		RetrySchedule: []time.Duration{20 * time.Millisecond, 20 * time.Millisecond},
		// Real notifications have carried a Content-Type Go's ParseForm
		// refuses; certificate mode gets it, so both are exercised.
		LegacyNotifyContentType: certMode,
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
	rcv := newReceiver(t)
	k := sim.Keys()
	cfg := alipay.Config{
		AppID: k.AppID, SellerID: k.SellerID, AppPrivateKeyPEM: k.AppPrivateKeyPEM,
		GatewayURL: sim.GatewayURL(), NotifyURL: rcv.srv.URL + "/alipay/notify",
		Timeout: 3 * time.Second,
	}
	if certMode {
		cfg.AppCertPEM, cfg.RootCertPEM, cfg.PublicCertPEM = k.AppCertPEM, k.RootCertPEM, k.AlipayCertPEM
	} else {
		cfg.PublicKeyPEM = k.AlipayPublicKeyPEM
	}
	c, err := alipay.New(cfg)
	if err != nil {
		t.Fatalf("alipay.New: %v", err)
	}
	t.Cleanup(c.Close)
	return &rig{sim: sim, rcv: rcv, client: c, cfg: cfg}
}

var seq atomic.Int64

func newID(prefix string) string {
	return fmt.Sprintf("%s%d%d", prefix, time.Now().UnixNano()%1e9, seq.Add(1))
}

func (r *rig) request(outTradeNo string, fen int64) app.PrepayRequest {
	return app.PrepayRequest{
		OutTradeNo: outTradeNo, Description: "Test / goods & more", TotalFen: fen,
		PayerOpenID: "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5",
		TimeExpire:  time.Now().Add(30 * time.Minute), Attach: "cart=7&note=你好",
		ClientIP: "203.0.113.9", ReturnURL: r.rcv.srv.URL + "/return", QuitURL: r.rcv.srv.URL + "/quit",
	}
}

// noRedirect is a browser that shows each redirect instead of following it.
var noRedirect = &http.Client{
	Timeout:       5 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// payWap is the buyer opening pay_url and paying on the cashier page. It
// returns the trade_no and where the browser went after paying.
func (r *rig) payWap(t testing.TB, payURL string) (tradeNo, back string) {
	t.Helper()
	resp, err := noRedirect.Get(payURL)
	if err != nil {
		t.Fatalf("open pay_url: %v", err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "/cashier/") {
		t.Fatalf("pay_url answered %d %q (sub_code %q), want a redirect to the cashier", resp.StatusCode, loc, resp.Header.Get("X-Alipaysim-Sub-Code"))
	}
	tradeNo = strings.TrimPrefix(loc, "/cashier/")
	resp, err = noRedirect.Post(r.sim.URL()+loc+"/pay", "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatalf("pay on the cashier: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("cashier pay answered %d", resp.StatusCode)
	}
	return tradeNo, resp.Header.Get("Location")
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// modes runs f in public-key and certificate mode.
func modes(t *testing.T, f func(t *testing.T, cert bool)) {
	for _, cert := range []bool{false, true} {
		name := "PublicKey"
		if cert {
			name = "Cert"
		}
		t.Run(name, func(t *testing.T) { f(t, cert) })
	}
}

func publicPEM(t testing.TB, k *rsa.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}
