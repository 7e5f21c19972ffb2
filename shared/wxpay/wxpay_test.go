package wxpay_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/wxpay"
)

const (
	mchID          = "1900000109"
	appID          = "wxd678efh567hg6787"
	apiV3Key       = "0123456789abcdefABCDEFGHIJKLMNOP"
	merchantSerial = "3775B6A45ACD588826D15E583A95F5DD12345678"
	openID         = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
	extraAppID     = "wx0123456789abcdef" // a second mini-program of the merchant
	unboundAppID   = "wx0000000000000000"
)

// RSA-2048 generation is slow, so the test binary makes its keys once.
var (
	keysOnce    sync.Once
	merchantKey *rsa.PrivateKey
	platformKey *rsa.PrivateKey
	otherKey    *rsa.PrivateKey
)

func testKeys() {
	keysOnce.Do(func() {
		var err error
		for _, k := range []**rsa.PrivateKey{&merchantKey, &platformKey, &otherKey} {
			if *k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
				panic(err) // test setup only
			}
		}
	})
}

func startSim(t testing.TB, mutate func(*paysim.Options)) *paysim.Server {
	t.Helper()
	testKeys()
	opts := paysim.Options{
		MchID: mchID, AppID: appID, AppSecret: "secret", APIv3Key: apiV3Key,
		MerchantSerial: merchantSerial, MerchantPublicKey: &merchantKey.PublicKey,
		PlatformKey:   platformKey,
		RetrySchedule: []time.Duration{5 * time.Millisecond, 5 * time.Millisecond},
	}
	if mutate != nil {
		mutate(&opts)
	}
	sim, err := paysim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

// receiver is the merchant's notify_url: it runs ParseNotification on what
// arrives and answers 204 or 400 accordingly, as verifyPayment would.
type receiver struct {
	srv     *httptest.Server
	channel atomic.Pointer[wxpay.Channel]
	results chan result
}

type result struct {
	n   app.Notification
	err error
}

func newReceiver(t testing.TB) *receiver {
	t.Helper()
	rc := &receiver{results: make(chan result, 20)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n, err := rc.channel.Load().ParseNotification(r.Context(), r.Header, body)
		rc.results <- result{n, err}
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) url() string { return rc.srv.URL + "/pay/notify" }

func (rc *receiver) next(t testing.TB) result {
	t.Helper()
	select {
	case r := <-rc.results:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no notification within 10s")
		return result{}
	}
}

func config(sim *paysim.Server, notifyURL string) wxpay.Config {
	k := sim.Keys()
	return wxpay.Config{
		MchID: mchID, AppID: appID, MchCertSerial: merchantSerial, MchPrivateKey: merchantKey,
		APIv3Key: apiV3Key, NotifyURL: notifyURL,
		PublicKeyID: k.PublicKeyID, PublicKey: k.PublicKey,
		BaseURL: sim.URL(), Timeout: 5 * time.Second,
	}
}

func newChannel(t testing.TB, cfg wxpay.Config) *wxpay.Channel {
	t.Helper()
	ch, err := wxpay.New(cfg)
	if err != nil {
		t.Fatalf("wxpay.New: %v", err)
	}
	t.Cleanup(ch.Close)
	return ch
}

func ctxTimeout(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func order(no string, total int64) app.PrepayRequest {
	return app.PrepayRequest{OutTradeNo: no, Description: "Paid reading: chapter 7", TotalFen: total, PayerOpenID: openID, Attach: "order=" + no}
}

func TestPrepayPaymentParamsPayQueryAndNotificationEndToEnd(t *testing.T) {
	sim := startSim(t, nil)
	rc := newReceiver(t)
	ch := newChannel(t, config(sim, rc.url()))
	rc.channel.Store(ch)
	ctx := ctxTimeout(t)

	expire := time.Now().Add(time.Hour).UTC().Truncate(time.Second).Add(600 * time.Millisecond)
	req := order("E2E_000001", 2990)
	req.TimeExpire = expire
	req.Description = strings.Repeat("书", 125) + "🍰ab" + "cdef" // 4-byte rune dropped, cut at 127
	prepayID, err := ch.PrepayID(ctx, req)
	if err != nil {
		t.Fatalf("Prepay: %v", err)
	}

	ts, _ := sim.Trade("E2E_000001")
	if want := strings.Repeat("书", 125) + "ab"; ts.Description != want {
		t.Errorf("description sent = %q (%d runes), want %q", ts.Description, utf8.RuneCountInString(ts.Description), want)
	}
	if !ts.Deadline.Equal(expire.Truncate(time.Second)) {
		t.Errorf("time_expire = %v, want %v", ts.Deadline, expire.Truncate(time.Second))
	}
	if _, off := ts.Deadline.Zone(); off != 8*3600 {
		t.Errorf("time_expire offset = %d s, want +08:00", off)
	}

	pp, err := ch.PaymentParams("", prepayID)
	if err != nil {
		t.Fatal(err)
	}
	if pp.AppID != appID || pp.Package != "prepay_id="+prepayID || pp.SignType != "RSA" || len(pp.NonceStr) != 32 {
		t.Errorf("payment params = %+v", pp)
	}
	if sec, err := strconv.ParseInt(pp.TimeStamp, 10, 64); err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Minute {
		t.Errorf("timeStamp %q is not current Unix seconds", pp.TimeStamp)
	}
	sig, _ := base64.StdEncoding.DecodeString(pp.PaySign)
	sum := sha256.Sum256([]byte(pp.AppID + "\n" + pp.TimeStamp + "\n" + pp.NonceStr + "\n" + pp.Package + "\n"))
	if err := rsa.VerifyPKCS1v15(&merchantKey.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		t.Errorf("paySign does not verify with the merchant public key: %v", err)
	}

	before, err := ch.QueryOrder(ctx, "E2E_000001")
	if err != nil {
		t.Fatal(err)
	}
	if before.TradeState != "NOTPAY" || before.TransactionID != "" || !before.SuccessTime.IsZero() || before.TotalFen != 2990 {
		t.Errorf("before payment = %+v", before)
	}

	paid, err := sim.Pay(ctx, prepayID, paysim.PayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := app.Transaction{
		AppID: appID, MchID: mchID, OutTradeNo: "E2E_000001", TransactionID: paid.TransactionID,
		TradeType: "JSAPI", TradeState: "SUCCESS", TradeStateDesc: "支付成功", BankType: "OTHERS",
		Attach: "order=E2E_000001", SuccessTime: paid.SuccessTime, PayerOpenID: openID,
		TotalFen: 2990, PayerTotalFen: 2990, Currency: "CNY", PayerCurrency: "CNY",
	}
	timeEq := cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })

	got := rc.next(t)
	if got.err != nil {
		t.Fatalf("ParseNotification: %v", got.err)
	}
	if got.n.ID != paid.NotificationID || got.n.EventType != "TRANSACTION.SUCCESS" || time.Since(got.n.CreateTime).Abs() > time.Minute {
		t.Errorf("notification = %+v", got.n)
	}
	if diff := cmp.Diff(want, got.n.Transaction, timeEq); diff != "" {
		t.Errorf("notified transaction (-want +got):\n%s", diff)
	}
	if err := sim.WaitAcked(ctx, "E2E_000001"); err != nil {
		t.Fatal(err)
	}

	after, err := ch.QueryOrder(ctx, "E2E_000001")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, after, timeEq); diff != "" {
		t.Errorf("queried transaction (-want +got):\n%s", diff)
	}
}

func TestPrepayWithIdenticalParametersReturnsAFreshPrepayID(t *testing.T) {
	sim := startSim(t, nil)
	ch := newChannel(t, config(sim, "https://merchant.example.com/notify"))
	ctx := ctxTimeout(t)
	req := order("REENTRY_01", 100)
	req.TimeExpire = time.Now().Add(time.Hour)
	a, err := ch.PrepayID(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ch.PrepayID(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Errorf("same prepay_id %q twice", a)
	}
	req.TotalFen = 101
	_, err = ch.PrepayID(ctx, req)
	if wxpay.Code(err) != "OUT_TRADE_NO_USED" || errors.Is(err, app.ErrChannelUnavailable) {
		t.Errorf("changed amount: err = %v, want OUT_TRADE_NO_USED and not unavailable", err)
	}
}

func TestParseNotificationRejectsForgeriesWithoutPanicking(t *testing.T) {
	sim := startSim(t, nil)
	ch := newChannel(t, config(sim, "https://merchant.example.com/notify"))
	tx := paysim.Transaction{
		AppID: appID, MchID: mchID, OutTradeNo: "FORGED_001", TransactionID: "4200000000202401011234567890",
		TradeState: "SUCCESS", SuccessTime: "2024-01-01T10:00:00+08:00", Amount: &paysim.Amount{Total: 1, Currency: "CNY"},
	}
	h, body, err := sim.BuildNotification(tx, paysim.NotifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ch.ParseNotification(ctxTimeout(t), h, body); err != nil || n.Transaction.OutTradeNo != "FORGED_001" {
		t.Fatalf("genuine notification: %+v, %v", n, err)
	}

	cases := map[string]paysim.NotifyOptions{
		"signed with another key":      {SignWith: otherKey},
		"unknown serial":               {Serial: "PUB_KEY_ID_000000000000000000000000000099"},
		"certificate serial":           {Serial: sim.Keys().PlatformCertSerial},
		"stale by 301s":                {TimestampShift: -301 * time.Second},
		"301s in the future":           {TimestampShift: 301 * time.Second},
		"tampered body":                {TamperBody: func(b []byte) []byte { return bytes.Replace(b, []byte(`"summary":"`), []byte(`"summary":"x`), 1) }},
		"wrong APIv3 key":              {APIv3Key: "ffffffffffffffffffffffffffffffff"},
		"11-byte nonce":                {Nonce: "abcdefghijk"},
		"13-byte nonce":                {Nonce: "abcdefghijklm"},
		"missing resource":             {OmitResource: true},
		"signature probe":              {SignatureProbe: true},
		"not JSON but validly signed":  {},
		"signature type not supported": {},
	}
	for name, o := range cases {
		t.Run(name, func(t *testing.T) {
			h, body, err := sim.BuildNotification(tx, o)
			if err != nil {
				t.Fatal(err)
			}
			switch name {
			case "not JSON but validly signed":
				h, body = resign(t, sim, []byte("not json"))
			case "signature type not supported":
				h.Set("Wechatpay-Signature-Type", "WECHATPAY2-SM2-WITH-SM3")
			}
			n, err := ch.ParseNotification(ctxTimeout(t), h, body)
			if !errors.Is(err, app.ErrBadNotification) {
				t.Fatalf("err = %v (notification %+v), want ErrBadNotification", err, n)
			}
			if strings.Contains(err.Error(), "ciphertext") || strings.Contains(err.Error(), h.Get("Wechatpay-Signature")) {
				t.Errorf("error leaks the request: %v", err)
			}
		})
	}
	t.Run("missing headers", func(t *testing.T) {
		for _, name := range []string{"Wechatpay-Serial", "Wechatpay-Signature", "Wechatpay-Timestamp", "Wechatpay-Nonce"} {
			h2 := h.Clone()
			h2.Del(name)
			if _, err := ch.ParseNotification(ctxTimeout(t), h2, body); !errors.Is(err, app.ErrBadNotification) {
				t.Errorf("without %s: err = %v, want ErrBadNotification", name, err)
			}
		}
	})
}

// resign signs body as the simulator would, with its platform key and
// public key id, so content checks are reached past signature checks.
func resign(t testing.TB, sim *paysim.Server, body []byte) (http.Header, []byte) {
	t.Helper()
	h, _, err := sim.BuildNotification(paysim.Transaction{}, paysim.NotifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ts, nonce := h.Get("Wechatpay-Timestamp"), h.Get("Wechatpay-Nonce")
	sum := sha256.Sum256([]byte(ts + "\n" + nonce + "\n" + string(body) + "\n"))
	sig, err := rsa.SignPKCS1v15(rand.Reader, platformKey, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	h.Set("Wechatpay-Signature", base64.StdEncoding.EncodeToString(sig))
	return h, body
}

func TestDeliveredNotificationWithFaultsIsRejectedAndRetried(t *testing.T) {
	sim := startSim(t, nil)
	rc := newReceiver(t)
	ch := newChannel(t, config(sim, rc.url()))
	rc.channel.Store(ch)
	ctx := ctxTimeout(t)
	id, err := ch.PrepayID(ctx, order("FAULTY_001", 1))
	if err != nil {
		t.Fatal(err)
	}
	sim.SetFaults(paysim.Faults{NotifyTimestampShift: -10 * time.Minute})
	if _, err := sim.Pay(ctx, id, paysim.PayOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := rc.next(t); !errors.Is(r.err, app.ErrBadNotification) {
		t.Fatalf("stale delivery: err = %v, want ErrBadNotification", r.err)
	}
	sim.SetFaults(paysim.Faults{})
	// The receiver answered 400, so WeChat retries; a fresh retry passes.
	if err := sim.WaitAcked(ctx, "FAULTY_001"); err != nil {
		t.Fatal(err)
	}
}

func TestQueryUnknownOrderIsTradeNotFound(t *testing.T) {
	sim := startSim(t, nil)
	ch := newChannel(t, config(sim, "https://merchant.example.com/notify"))
	_, err := ch.QueryOrder(ctxTimeout(t), "NO_SUCH_ORDER")
	if !errors.Is(err, app.ErrTradeNotFound) || errors.Is(err, app.ErrChannelUnavailable) {
		t.Fatalf("err = %v, want ErrTradeNotFound only", err)
	}
	if wxpay.Code(err) != "ORDER_NOT_EXIST" {
		t.Errorf("Code = %q, want ORDER_NOT_EXIST", wxpay.Code(err))
	}
	if err := ch.CloseOrder(ctxTimeout(t), "NO_SUCH_ORDER"); !errors.Is(err, app.ErrTradeNotFound) {
		t.Errorf("close unknown: err = %v, want ErrTradeNotFound", err)
	}
}

func TestCloseOrderClosesAndAPaidOrderKeepsItsWeChatCode(t *testing.T) {
	sim := startSim(t, nil)
	ch := newChannel(t, config(sim, "https://merchant.example.com/notify"))
	ctx := ctxTimeout(t)
	if _, err := ch.PrepayID(ctx, order("CLOSE_0001", 1)); err != nil {
		t.Fatal(err)
	}
	if err := ch.CloseOrder(ctx, "CLOSE_0001"); err != nil {
		t.Fatalf("close: %v", err)
	}
	if tx, err := ch.QueryOrder(ctx, "CLOSE_0001"); err != nil || tx.TradeState != "CLOSED" {
		t.Fatalf("after close: %+v, %v", tx, err)
	}

	id, err := ch.PrepayID(ctx, order("CLOSE_0002", 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Pay(ctx, id, paysim.PayOptions{NoNotify: true}); err != nil {
		t.Fatal(err)
	}
	err = ch.CloseOrder(ctx, "CLOSE_0002")
	if wxpay.Code(err) != paysim.CodeOrderPaid || errors.Is(err, app.ErrChannelUnavailable) || errors.Is(err, app.ErrTradeNotFound) {
		t.Errorf("close paid: err = %v, want code %s and no sentinel", err, paysim.CodeOrderPaid)
	}
}

func TestFaultsAndTransportErrorsAreChannelUnavailable(t *testing.T) {
	sim := startSim(t, nil)
	ch := newChannel(t, config(sim, "https://merchant.example.com/notify"))
	ctx := ctxTimeout(t)

	for _, f := range []struct {
		status int
		code   string
	}{{500, "SYSTEM_ERROR"}, {503, "SYSTEM_ERROR"}, {429, "FREQUENCY_LIMITED"}} {
		sim.FailNext(1, f.status, f.code)
		_, err := ch.QueryOrder(ctx, "ANY_000001")
		if !errors.Is(err, app.ErrChannelUnavailable) || wxpay.Code(err) != f.code {
			t.Errorf("%d %s: err = %v, want ErrChannelUnavailable with the code", f.status, f.code, err)
		}
	}

	sim.SetFaults(paysim.Faults{BadResponseSignature: true})
	_, err := ch.PrepayID(ctx, order("BADSIG_001", 1))
	sim.SetFaults(paysim.Faults{})
	if !errors.Is(err, app.ErrChannelUnavailable) {
		t.Errorf("badly signed reply: err = %v, want ErrChannelUnavailable", err)
	}

	sim.SetFaults(paysim.Faults{ResponseDelay: 2 * time.Second})
	cfg := config(sim, "https://merchant.example.com/notify")
	cfg.Timeout = 100 * time.Millisecond
	slow := newChannel(t, cfg)
	_, err = slow.QueryOrder(ctx, "ANY_000001")
	sim.SetFaults(paysim.Faults{})
	if !errors.Is(err, app.ErrChannelUnavailable) {
		t.Errorf("slow reply: err = %v, want ErrChannelUnavailable", err)
	}

	cfg = config(sim, "https://merchant.example.com/notify")
	cfg.BaseURL = closedPortURL(t)
	down := newChannel(t, cfg)
	if err := down.CloseOrder(ctx, "ANY_000001"); !errors.Is(err, app.ErrChannelUnavailable) {
		t.Errorf("connection refused: err = %v, want ErrChannelUnavailable", err)
	}
}

func closedPortURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return "http://" + addr
}

func TestNewDoesNoNetworkIO(t *testing.T) {
	testKeys()
	for name, withPublicKey := range map[string]bool{"public-key mode": true, "platform-certificate mode": false} {
		t.Run(name, func(t *testing.T) {
			cfg := wxpay.Config{
				MchID: mchID, AppID: appID, MchCertSerial: merchantSerial, MchPrivateKey: merchantKey,
				APIv3Key: apiV3Key, NotifyURL: "https://merchant.example.com/notify", BaseURL: closedPortURL(t),
			}
			if withPublicKey {
				cfg.PublicKeyID, cfg.PublicKey = "PUB_KEY_ID_0000000000000000000000000000001", &platformKey.PublicKey
			}
			ch, err := wxpay.New(cfg)
			if err != nil {
				t.Fatalf("New against a closed port: %v", err)
			}
			defer ch.Close()
			if _, err := ch.PrepayID(ctxTimeout(t), order("NOIO_00001", 1)); !errors.Is(err, app.ErrChannelUnavailable) {
				t.Errorf("first call: err = %v, want ErrChannelUnavailable", err)
			}
		})
	}
}

func TestPlatformCertificateModeEndToEnd(t *testing.T) {
	sim := startSim(t, func(o *paysim.Options) { o.NotifyWithPlatformCert = true })
	rc := newReceiver(t)
	cfg := config(sim, rc.url())
	cfg.PublicKeyID, cfg.PublicKey = "", nil
	ch := newChannel(t, cfg)
	rc.channel.Store(ch)
	ctx := ctxTimeout(t)

	id, err := ch.PrepayID(ctx, order("CERTMODE_1", 500))
	if err != nil {
		t.Fatalf("Prepay: %v", err)
	}
	if _, err := sim.Pay(ctx, id, paysim.PayOptions{}); err != nil {
		t.Fatal(err)
	}
	got := rc.next(t)
	if got.err != nil || got.n.Transaction.TotalFen != 500 {
		t.Fatalf("notification: %+v, %v", got.n, got.err)
	}
	tx, err := ch.QueryOrder(ctx, "CERTMODE_1")
	if err != nil || tx.TradeState != "SUCCESS" {
		t.Fatalf("query: %+v, %v", tx, err)
	}
	// A public-key-id notification is not acceptable in certificate mode.
	h, body, err := sim.BuildNotification(paysim.Transaction{OutTradeNo: "CERTMODE_1"}, paysim.NotifyOptions{Serial: sim.Keys().PublicKeyID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.ParseNotification(ctx, h, body); !errors.Is(err, app.ErrBadNotification) {
		t.Errorf("public-key serial in certificate mode: err = %v, want ErrBadNotification", err)
	}
}

func TestPlatformCertificateDownloadFailureIsChannelUnavailableAndRetried(t *testing.T) {
	sim := startSim(t, func(o *paysim.Options) { o.NotifyWithPlatformCert = true })
	cfg := config(sim, "https://merchant.example.com/notify")
	cfg.PublicKeyID, cfg.PublicKey = "", nil
	ch := newChannel(t, cfg)
	h, body, err := sim.BuildNotification(paysim.Transaction{OutTradeNo: "DLFAIL_001", TradeState: "SUCCESS"}, paysim.NotifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sim.FailNext(1, 500, "SYSTEM_ERROR")
	_, err = ch.ParseNotification(ctxTimeout(t), h, body)
	if !errors.Is(err, app.ErrChannelUnavailable) || errors.Is(err, app.ErrBadNotification) {
		t.Fatalf("download failed: err = %v, want ErrChannelUnavailable", err)
	}
	if n, err := ch.ParseNotification(ctxTimeout(t), h, body); err != nil || n.Transaction.OutTradeNo != "DLFAIL_001" {
		t.Fatalf("after the fault: %+v, %v", n, err)
	}
}

func TestCombinedModeAcceptsPublicKeyAndCertificateSerials(t *testing.T) {
	sim := startSim(t, nil)
	cfg := config(sim, "https://merchant.example.com/notify")
	cfg.PlatformCerts = true
	ch := newChannel(t, cfg)
	ctx := ctxTimeout(t)
	if _, err := ch.PrepayID(ctx, order("COMBINED_1", 1)); err != nil {
		t.Fatalf("Prepay: %v", err)
	}
	for name, serial := range map[string]string{"public key id": sim.Keys().PublicKeyID, "certificate serial": sim.Keys().PlatformCertSerial} {
		h, body, err := sim.BuildNotification(paysim.Transaction{OutTradeNo: "COMBINED_1"}, paysim.NotifyOptions{Serial: serial})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.ParseNotification(ctx, h, body); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestNewValidatesConfig(t *testing.T) {
	testKeys()
	valid := func() wxpay.Config {
		return wxpay.Config{
			MchID: mchID, AppID: appID, MchCertSerial: merchantSerial, MchPrivateKey: merchantKey,
			APIv3Key: apiV3Key, NotifyURL: "https://merchant.example.com/notify",
		}
	}
	cases := map[string]func(*wxpay.Config){
		"APIv3 key of 31 bytes":     func(c *wxpay.Config) { c.APIv3Key = apiV3Key[:31] },
		"APIv3 key of 16 bytes":     func(c *wxpay.Config) { c.APIv3Key = apiV3Key[:16] },
		"no mchid":                  func(c *wxpay.Config) { c.MchID = "" },
		"no appid":                  func(c *wxpay.Config) { c.AppID = "" },
		"no private key":            func(c *wxpay.Config) { c.MchPrivateKey = nil },
		"no serial":                 func(c *wxpay.Config) { c.MchCertSerial = "" },
		"notify URL with query":     func(c *wxpay.Config) { c.NotifyURL += "?x=1" },
		"http notify URL":           func(c *wxpay.Config) { c.NotifyURL = "http://merchant.example.com/notify" },
		"public key id without key": func(c *wxpay.Config) { c.PublicKeyID = "PUB_KEY_ID_1" },
		"base URL not http":         func(c *wxpay.Config) { c.BaseURL = "ftp://127.0.0.1" },
		"relative notify URL":       func(c *wxpay.Config) { c.NotifyURL = "/notify" },
		"extra appid malformed":     func(c *wxpay.Config) { c.ExtraAppIDs = []string{"wx0123456789ABCDEF"} },
		"extra appid empty":         func(c *wxpay.Config) { c.ExtraAppIDs = []string{""} },
		"extra appid is AppID":      func(c *wxpay.Config) { c.ExtraAppIDs = []string{appID} },
		"extra appid twice":         func(c *wxpay.Config) { c.ExtraAppIDs = []string{extraAppID, extraAppID} },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := valid()
			mutate(&cfg)
			if ch, err := wxpay.New(cfg); err == nil {
				ch.Close()
				t.Fatal("New accepted an invalid config")
			}
		})
	}
	ch, err := wxpay.New(valid())
	if err != nil {
		t.Fatalf("valid config: %v", err)
	}
	ch.Close()
}

func TestLoadKeysAcceptsPKCS8PKCS1AndPKIX(t *testing.T) {
	testKeys()
	p8, _ := x509.MarshalPKCS8PrivateKey(merchantKey)
	p1 := x509.MarshalPKCS1PrivateKey(merchantKey)
	pub, _ := x509.MarshalPKIXPublicKey(&merchantKey.PublicKey)
	for name, text := range map[string]string{
		"PKCS#8": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8})),
		"PKCS#1": string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: p1})),
	} {
		k, err := wxpay.LoadPrivateKey(text)
		if err != nil || !k.Equal(merchantKey) {
			t.Errorf("%s: %v", name, err)
		}
	}
	k, err := wxpay.LoadPublicKey(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})))
	if err != nil || !k.Equal(&merchantKey.PublicKey) {
		t.Errorf("PKIX public key: %v", err)
	}
	if _, err := wxpay.LoadPrivateKey("not a key"); err == nil {
		t.Error("LoadPrivateKey accepted garbage")
	}
	if _, err := wxpay.LoadPublicKey(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")}))); err == nil {
		t.Error("LoadPublicKey accepted junk")
	}
}

// verifyPaySign checks paySign with the merchant public key over
// "appId\ntimeStamp\nnonceStr\npackage\n", as the mini-program would.
func verifyPaySign(t testing.TB, pp app.PaymentParams) {
	t.Helper()
	sig, _ := base64.StdEncoding.DecodeString(pp.PaySign)
	sum := sha256.Sum256([]byte(pp.AppID + "\n" + pp.TimeStamp + "\n" + pp.NonceStr + "\n" + pp.Package + "\n"))
	if err := rsa.VerifyPKCS1v15(&merchantKey.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		t.Errorf("paySign over appid %s does not verify with the merchant public key: %v", pp.AppID, err)
	}
}

func TestExtraAppIDPrepayPaymentParamsAndNotification(t *testing.T) {
	sim := startSim(t, func(o *paysim.Options) { o.ExtraAppIDs = []string{extraAppID} })
	rc := newReceiver(t)
	cfg := config(sim, rc.url())
	extras := []string{extraAppID}
	cfg.ExtraAppIDs = extras
	ch := newChannel(t, cfg)
	rc.channel.Store(ch)
	ctx := ctxTimeout(t)

	extras[0] = unboundAppID // New kept its own copy
	ids := ch.AppIDs()
	if want := []string{appID, extraAppID}; !slices.Equal(ids, want) {
		t.Fatalf("AppIDs() = %v, want %v", ids, want)
	}
	ids[0] = unboundAppID
	if got := ch.AppIDs(); got[0] != appID || ch.AppID() != appID {
		t.Errorf("AppIDs() shares its slice: %v", got)
	}

	req := order("EXTRA_0001", 700)
	req.AppID = extraAppID
	prepayID, err := ch.PrepayID(ctx, req)
	if err != nil {
		t.Fatalf("Prepay under %s: %v", extraAppID, err)
	}
	if ts, _ := sim.Trade("EXTRA_0001"); ts.AppID != extraAppID {
		t.Errorf("appid sent = %q, want %q", ts.AppID, extraAppID)
	}
	pp, err := ch.PaymentParams(extraAppID, prepayID)
	if err != nil {
		t.Fatal(err)
	}
	if pp.AppID != extraAppID || pp.Package != "prepay_id="+prepayID {
		t.Errorf("payment params = %+v", pp)
	}
	verifyPaySign(t, pp)
	if def, err := ch.PaymentParams("", prepayID); err != nil || def.AppID != appID {
		t.Errorf("default payment params = %+v, %v; want appid %s", def, err, appID)
	} else {
		verifyPaySign(t, def)
	}

	if _, err := sim.Pay(ctx, prepayID, paysim.PayOptions{}); err != nil {
		t.Fatal(err)
	}
	got := rc.next(t)
	if got.err != nil || got.n.Transaction.AppID != extraAppID || got.n.Transaction.MchID != mchID {
		t.Errorf("notification = %+v, %v; want appid %s", got.n.Transaction, got.err, extraAppID)
	}
	tx, err := ch.QueryOrder(ctx, "EXTRA_0001")
	if err != nil || tx.AppID != extraAppID || tx.TradeState != "SUCCESS" {
		t.Errorf("query = %+v, %v; want SUCCESS under %s", tx, err, extraAppID)
	}
}

func TestUnboundAppIDIsRefusedBeforeAnyRequest(t *testing.T) {
	testKeys()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	for name, withPublicKey := range map[string]bool{"public-key mode": true, "platform-certificate mode": false} {
		t.Run(name, func(t *testing.T) {
			cfg := wxpay.Config{
				MchID: mchID, AppID: appID, ExtraAppIDs: []string{extraAppID}, MchCertSerial: merchantSerial,
				MchPrivateKey: merchantKey, APIv3Key: apiV3Key, NotifyURL: "https://merchant.example.com/notify", BaseURL: srv.URL,
			}
			if withPublicKey {
				cfg.PublicKeyID, cfg.PublicKey = "PUB_KEY_ID_0000000000000000000000000000001", &platformKey.PublicKey
			}
			ch := newChannel(t, cfg)
			req := order("UNBOUND_01", 1)
			req.AppID = unboundAppID
			_, err := ch.PrepayID(ctxTimeout(t), req)
			if !errors.Is(err, wxpay.ErrUnboundAppID) || errors.Is(err, app.ErrChannelUnavailable) {
				t.Errorf("Prepay: err = %v, want ErrUnboundAppID only", err)
			}
			if _, err := ch.PaymentParams(unboundAppID, "wx201410272009395522657a690389285100"); !errors.Is(err, wxpay.ErrUnboundAppID) {
				t.Errorf("PaymentParams: err = %v, want ErrUnboundAppID", err)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("%d requests reached WeChat Pay for an unbound appid", n)
	}
}
