package alipay_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/alipay"
	"github.com/payfn/payfn/shared/alipaysim"
	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
)

// genuine returns the unsigned parameters of a real notification for a
// paid mini-program trade of fen.
func (r *rig) genuine(t testing.TB, fen int64) url.Values {
	t.Helper()
	_, tradeNo := r.paidMini(t, fen)
	p, err := r.sim.NotificationParams(tradeNo)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func with(p url.Values, kv ...string) url.Values {
	q := url.Values{}
	for k, vs := range p {
		q[k] = append([]string(nil), vs...)
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "\x00" {
			q.Del(kv[i])
		} else {
			q.Set(kv[i], kv[i+1])
		}
	}
	return q
}

// signWith signs params as Alipay does, with another key.
func signWith(t testing.TB, key *rsa.PrivateKey, p url.Values) url.Values {
	t.Helper()
	keys := []string{}
	for k := range p {
		if k != "sign" && k != "sign_type" && p.Get(k) != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k + "=" + p.Get(k))
	}
	sum := sha256.Sum256([]byte(b.String()))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	q := with(p, "sign_type", "RSA2")
	q.Set("sign", base64.StdEncoding.EncodeToString(sig))
	return q
}

var formHeader = http.Header{"Content-Type": {alipaysim.NotifyContentType}}

// TestNotificationHostile is the hostile matrix of issue 12 for Alipay's
// notification, each case built from a genuine one.
func TestNotificationHostile(t *testing.T) {
	r := newRig(t, false, nil)
	ch := r.client.Mini()
	base := r.genuine(t, 1234)
	signed := r.sim.SignedNotification(base)
	parse := func(body string) (app.Notification, error) {
		return ch.ParseNotification(context.Background(), formHeader.Clone(), []byte(body))
	}
	if n, err := parse(signed.Encode()); err != nil || n.Transaction.TotalFen != 1234 || n.EventType != app.EventTransactionSuccess {
		t.Fatalf("the genuine notification: %+v, %v", n, err)
	}

	bad := map[string]string{
		"empty body":             "",
		"garbage":                "\x00{not a notification%%",
		"bad escape":             signed.Encode() + "&x=%zz",
		"semicolon":              signed.Encode() + ";x=1",
		"signed by another key":  signWith(t, otherKey, base).Encode(),
		"sign mangled":           with(signed, "sign", mangle(signed.Get("sign"))).Encode(),
		"sign not base64":        with(signed, "sign", "!!").Encode(),
		"sign missing":           with(signed, "sign", "\x00").Encode(),
		"amount changed":         with(signed, "total_amount", "0.01").Encode(),
		"status changed":         with(r.sim.SignedNotification(with(base, "trade_status", "WAIT_BUYER_PAY")), "trade_status", "TRADE_SUCCESS").Encode(),
		"out_trade_no changed":   with(signed, "out_trade_no", "PF000000000000000000000000").Encode(),
		"parameter added":        with(signed, "refund_fee", "12.34").Encode(),
		"parameter removed":      with(signed, "buyer_id", "\x00", "buyer_open_id", "\x00").Encode(),
		"sign_type RSA":          with(signed, "sign_type", "RSA").Encode(),
		"sign_type rsa2":         with(signed, "sign_type", "rsa2").Encode(),
		"sign_type absent":       with(signed, "sign_type", "\x00").Encode(),
		"duplicated key":         signed.Encode() + "&total_amount=12.34",
		"duplicated same value":  signed.Encode() + "&trade_status=TRADE_SUCCESS",
		"cert SN in public mode": r.sim.SignedNotification(with(base, "alipay_cert_sn", "abc")).Encode(),
	}
	// Amounts that are not plain yuan, genuinely signed: nothing can be
	// recorded from them, so they are refused like a forgery.
	for _, a := range []string{"1e-1", "+1", " 1", "1.", ".5", "1.234", "-1", "0x1", "１", "12.340", "100000000.01"} {
		bad["total_amount "+a] = r.sim.SignedNotification(with(base, "total_amount", a)).Encode()
	}
	bad["buyer_pay_amount 1e2"] = r.sim.SignedNotification(with(base, "buyer_pay_amount", "1e2")).Encode()
	bad["refund_fee 0.001"] = r.sim.SignedNotification(with(base, "refund_fee", "0.001")).Encode()
	bad["gmt_payment malformed"] = r.sim.SignedNotification(with(base, "gmt_payment", "2026-12-01T10:00:00Z")).Encode()
	bad["no trade_status"] = r.sim.SignedNotification(with(base, "trade_status", "\x00")).Encode()
	bad["no total_amount"] = r.sim.SignedNotification(with(base, "total_amount", "\x00")).Encode()
	bad["paid without trade_no"] = r.sim.SignedNotification(with(base, "trade_no", "\x00")).Encode()
	for name, body := range bad {
		if n, err := parse(body); !errors.Is(err, app.ErrBadNotification) {
			t.Errorf("%s: %+v, %v; want ErrBadNotification", name, n, err)
		}
	}

	// Genuinely signed variations that verify and come through as data,
	// for payfn to judge.
	good := []struct {
		name   string
		params url.Values
		check  func(app.Notification) bool
	}{
		{"0.1 is 10 fen", with(base, "total_amount", "0.1"), func(n app.Notification) bool { return n.Transaction.TotalFen == 10 }},
		{"0.10 is 10 fen", with(base, "total_amount", "0.10"), func(n app.Notification) bool { return n.Transaction.TotalFen == 10 }},
		{"whole yuan", with(base, "total_amount", "20"), func(n app.Notification) bool { return n.Transaction.TotalFen == 2000 }},
		{"off by 0.01", with(base, "total_amount", "12.33"), func(n app.Notification) bool { return n.Transaction.TotalFen == 1233 }},
		{"another app_id", with(base, "app_id", "2021000000009999"), func(n app.Notification) bool {
			return n.Transaction.AppID == "2021000000009999" && n.Transaction.MchID == testSellerID
		}},
		{"another seller_id", with(base, "seller_id", "2088999999999999"), func(n app.Notification) bool {
			return n.Transaction.MchID == "2088999999999999" && n.Transaction.AppID == testAppID
		}},
		{"no seller_id", with(base, "seller_id", "\x00"), func(n app.Notification) bool { return n.Transaction.MchID == "" }},
		{"WAIT_BUYER_PAY is not paid", with(base, "trade_status", "WAIT_BUYER_PAY", "gmt_payment", "\x00"), func(n app.Notification) bool {
			return n.EventType != app.EventTransactionSuccess && n.Transaction.TradeState == "NOTPAY"
		}},
		{"TRADE_CLOSED unpaid is not paid", with(base, "trade_status", "TRADE_CLOSED", "gmt_payment", "\x00"), func(n app.Notification) bool {
			return n.EventType != app.EventTransactionSuccess && n.Transaction.TradeState == app.TradeStateClosed
		}},
		{"TRADE_FINISHED is paid", with(base, "trade_status", "TRADE_FINISHED"), func(n app.Notification) bool {
			return n.EventType == app.EventTransactionSuccess && n.Transaction.TradeState == app.TradeStateSuccess
		}},
		{"an unknown status is not paid", with(base, "trade_status", "TRADE_PENDING"), func(n app.Notification) bool {
			return n.EventType != app.EventTransactionSuccess && n.Transaction.TradeState == "TRADE_PENDING"
		}},
		{"empty values are not signed", with(base, "body", ""), func(n app.Notification) bool { return n.Transaction.TotalFen == 1234 }},
		{"a new field is signed too", with(base, "merchant_app_id", "2021000000000002"), func(n app.Notification) bool { return n.Transaction.TotalFen == 1234 }},
		{"spaces and unicode", with(base, "subject", "红 色 & T恤 +1"), func(n app.Notification) bool { return n.Transaction.TotalFen == 1234 }},
	}
	for _, c := range good {
		n, err := parse(r.sim.SignedNotification(c.params).Encode())
		if err != nil || !c.check(n) {
			t.Errorf("%s: %+v, %v", c.name, n, err)
		}
	}
}

// TestNotificationBodyOnly sends notifications over HTTP the way the
// runtime hands them on: header and raw body. A URL query string never
// counts, and the legacy Content-Type is no obstacle.
func TestNotificationBodyOnly(t *testing.T) {
	r := newRig(t, false, nil)
	ch := r.client.Wap()
	base := r.genuine(t, 500)
	signed := r.sim.SignedNotification(base)
	type result struct {
		n   app.Notification
		err error
	}
	var mu sync.Mutex
	var last result
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		n, err := ch.ParseNotification(req.Context(), req.Header, body)
		mu.Lock()
		last = result{n, err}
		mu.Unlock()
	}))
	defer srv.Close()
	post := func(query, contentType, body string) result {
		t.Helper()
		resp, err := http.Post(srv.URL+"/alipay/notify"+query, contentType, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		mu.Lock()
		defer mu.Unlock()
		return last
	}
	if res := post("?total_amount=0.01&trade_status=WAIT_BUYER_PAY", alipaysim.NotifyContentType, signed.Encode()); res.err != nil || res.n.Transaction.TotalFen != 500 || res.n.EventType != app.EventTransactionSuccess {
		t.Errorf("query string beside a genuine body: %+v, %v; want the body's values", res.n, res.err)
	}
	if res := post("?sign_type=RSA2", alipaysim.NotifyContentType, with(signed, "sign_type", "\x00").Encode()); !errors.Is(res.err, app.ErrBadNotification) {
		t.Errorf("sign_type only in the query string: %v, want ErrBadNotification", res.err)
	}
	if res := post("", alipaysim.LegacyNotifyContentType, signed.Encode()); res.err != nil {
		t.Errorf("legacy Content-Type: %v", res.err)
	}
	if res := post("", "", signed.Encode()); res.err != nil {
		t.Errorf("no Content-Type: %v", res.err)
	}
}

func TestNotificationCertMode(t *testing.T) {
	r := newRig(t, true, nil)
	ch := r.client.Mini()
	base := r.genuine(t, 700)
	sn := r.sim.Keys().AlipayCertSN
	if _, err := ch.ParseNotification(context.Background(), formHeader, []byte(r.sim.SignedNotification(base).Encode())); err != nil {
		t.Errorf("genuine: %v", err)
	}
	if _, err := ch.ParseNotification(context.Background(), formHeader, []byte(r.sim.SignedNotification(with(base, "alipay_cert_sn", sn)).Encode())); err != nil {
		t.Errorf("naming the configured certificate: %v", err)
	}
	_, err := ch.ParseNotification(context.Background(), formHeader, []byte(r.sim.SignedNotification(with(base, "alipay_cert_sn", "0123456789abcdef0123456789abcdef")).Encode()))
	if !errors.Is(err, app.ErrChannelUnavailable) || errors.Is(err, app.ErrBadNotification) {
		t.Errorf("naming another certificate: %v, want ErrChannelUnavailable (configure it; Alipay retries)", err)
	}
	if _, err := ch.ParseNotification(context.Background(), formHeader, []byte(signWith(t, otherKey, base).Encode())); !errors.Is(err, app.ErrBadNotification) {
		t.Errorf("signed by another key: %v", err)
	}
}

// TestVerifyNotificationRefunds runs Alipay's notifications through payfn's
// own VerifyNotification: the payment settles the order once; the partial
// refund's TRADE_SUCCESS (same trade_no, original total_amount, plus
// refund_fee) settles nothing new; the full refund's TRADE_CLOSED is
// acknowledged without change; a genuine notification of another app_id or
// seller_id, or a wrong amount, is handled as for WeChat Pay.
func TestVerifyNotificationRefunds(t *testing.T) {
	r := newRig(t, false, nil)
	mini := r.client.Mini()
	st := newFakeStore()
	a := app.New(app.Config{Store: st, Channels: []app.Channel{r.client.Wap(), mini}})
	verify := func(n notice) error {
		return a.VerifyNotification(context.Background(), app.ProviderAlipay, n.header, n.body)
	}

	id := app.NewOrderID()
	st.orders[id] = order.Order{ID: id, AppID: order.DefaultApp, TotalFen: 1234, Currency: "CNY", Status: order.StatusNotPay,
		Channel: app.ChannelAlipayMini, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	p, err := mini.Prepay(ctxT(t), r.request(id, 1234))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.sim.PayTrade(ctxT(t), p.Ref, alipaysim.PayOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := verify(r.rcv.wait(t, id, paid)); err != nil {
		t.Fatalf("the payment: %v", err)
	}
	if o := st.orders[id]; o.Status != order.StatusPaid || o.TransactionID != p.Ref {
		t.Fatalf("order after the payment: %+v", o)
	}
	claims, payments := len(st.claims), len(st.payments)

	if _, err := mini.Refund(ctxT(t), app.RefundRequest{OutTradeNo: id, OutRefundNo: id + "R1", RefundFen: 234, TotalFen: 1234}); err != nil {
		t.Fatal(err)
	}
	if err := verify(r.rcv.wait(t, id, func(f url.Values) bool {
		return f.Get("refund_fee") != "" && f.Get("trade_status") == alipaysim.StatusSuccess
	})); err != nil {
		t.Errorf("the partial refund's TRADE_SUCCESS: %v", err)
	}
	if _, err := mini.Refund(ctxT(t), app.RefundRequest{OutTradeNo: id, OutRefundNo: id + "R2", RefundFen: 1000, TotalFen: 1234}); err != nil {
		t.Fatal(err)
	}
	if err := verify(r.rcv.wait(t, id, func(f url.Values) bool { return f.Get("trade_status") == alipaysim.StatusClosed })); err != nil {
		t.Errorf("the full refund's TRADE_CLOSED: %v", err)
	}
	if o := st.orders[id]; o.Status != order.StatusPaid || len(st.claims) != claims || len(st.payments) != payments {
		t.Errorf("after the refund notifications: order %s, %d claims (was %d), %d ledger rows (was %d)", o.Status, len(st.claims), claims, len(st.payments), payments)
	}

	// Another app_id or seller_id, genuinely signed: rejected, nothing
	// changes. A wrong amount: recorded, the order in EXCEPTION.
	other := app.NewOrderID()
	st.orders[other] = order.Order{ID: other, AppID: order.DefaultApp, TotalFen: 1234, Currency: "CNY", Status: order.StatusNotPay,
		Channel: app.ChannelAlipayWap, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	params := with(r.genuine(t, 1234), "out_trade_no", other, "trade_no", "2026120122001400000000000001")
	for name, p := range map[string]url.Values{
		"another app_id":    with(params, "app_id", "2021000000009999"),
		"another seller_id": with(params, "seller_id", "2088999999999999"),
	} {
		body := []byte(r.sim.SignedNotification(p).Encode())
		var e *app.Error
		if err := a.VerifyNotification(context.Background(), app.ProviderAlipay, formHeader, body); !errors.As(err, &e) || e.Code != app.CodeNotificationMismatch {
			t.Errorf("%s: %v, want NOTIFICATION_MISMATCH", name, err)
		}
	}
	if o := st.orders[other]; o.Status != order.StatusNotPay {
		t.Errorf("order after foreign notifications: %s", o.Status)
	}
	body := []byte(r.sim.SignedNotification(with(params, "total_amount", "12.33")).Encode())
	if err := a.VerifyNotification(context.Background(), app.ProviderAlipay, formHeader, body); err != nil {
		t.Errorf("a genuine wrong amount: %v, want acknowledged", err)
	}
	if o := st.orders[other]; o.Status != order.StatusException {
		t.Errorf("order after a wrong amount: %s, want EXCEPTION", o.Status)
	}
	if pay, ok := st.payments["2026120122001400000000000001"]; !ok || pay.TotalFen != 1233 || pay.Matched {
		t.Errorf("ledger row of the wrong amount: %+v", pay)
	}
	// A forged one changes nothing and is refused.
	forged := []byte(signWith(t, otherKey, with(params, "out_trade_no", id)).Encode())
	var e *app.Error
	if err := a.VerifyNotification(context.Background(), app.ProviderAlipay, formHeader, forged); !errors.As(err, &e) || e.Code != app.CodeInvalidNotification {
		t.Errorf("forged: %v, want INVALID_NOTIFICATION", err)
	}
}

// fakeStore is the part of app.Store VerifyNotification uses, in memory;
// any other method panics on the nil embedded interface.
type fakeStore struct {
	app.Store
	mu       sync.Mutex
	orders   map[string]order.Order
	payments map[string]order.Payment
	claims   map[string]order.Claim
}

func newFakeStore() *fakeStore {
	return &fakeStore{orders: map[string]order.Order{}, payments: map[string]order.Payment{}, claims: map[string]order.Claim{}}
}

func (s *fakeStore) Order(_ context.Context, id string) (order.Order, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[id]
	if !ok {
		return order.Order{}, order.ErrNotFound
	}
	return o, nil
}

func (s *fakeStore) RecordPayment(_ context.Context, p order.Payment) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.payments[p.TransactionID]; ok {
		return order.ErrDuplicate
	}
	s.payments[p.TransactionID] = p
	return nil
}

func (s *fakeStore) Claim(_ context.Context, c order.Claim) (order.Claim, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.claims[c.Key]; ok {
		return old, false, nil
	}
	s.claims[c.Key] = c
	return c, true, nil
}

func (s *fakeStore) ClaimByKey(_ context.Context, key string) (order.Claim, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.claims[key]
	if !ok {
		return order.Claim{}, order.ErrNotFound
	}
	return c, nil
}

func (s *fakeStore) ApplyClaim(_ context.Context, c order.Claim) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.orders[c.OrderID]
	o.Status, o.TransactionID = c.Status, c.TransactionID
	s.orders[c.OrderID] = o
	return nil
}

func (s *fakeStore) SetPaymentDisposition(_ context.Context, transactionID string, d order.Disposition, _ bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.payments[transactionID]
	p.Disposition = d
	s.payments[transactionID] = p
	return nil
}

// mangle changes one Base64 character of a signature.
func mangle(sig string) string {
	b := []byte(sig)
	if b[10] == 'A' {
		b[10] = 'B'
	} else {
		b[10] = 'A'
	}
	return string(b)
}

// FuzzParseNotification: whatever the body, ParseNotification never
// panics, and anything it accepts says exactly what the genuine
// notification says (the signature cannot be forged, so only re-encodings
// of the genuine parameters can verify). Every fuzzing worker runs this
// setup in a coverage-instrumented build, where generating an RSA key takes
// minutes, so it reads a fixed test key (testdata/fuzz_key.pem, made for
// this test only) and signs itself, without the simulator.
func FuzzParseNotification(f *testing.F) {
	raw, err := os.ReadFile("testdata/fuzz_key.pem")
	if err != nil {
		f.Fatal(err)
	}
	// Labelled TESTING KEY on disk so secret scanners leave it alone (as
	// the Go standard library does with its test keys).
	keyPEM := []byte(strings.ReplaceAll(string(raw), "TESTING KEY", "PRIVATE KEY"))
	key, err := alipaysim.ParsePrivateKey(keyPEM)
	if err != nil {
		f.Fatal(err)
	}
	c, err := alipay.New(alipay.Config{
		AppID: testAppID, SellerID: testSellerID, NotifyURL: "https://pay.example.com/alipay/notify",
		AppPrivateKeyPEM: string(keyPEM), PublicKeyPEM: publicPEM(f, &key.PublicKey),
	})
	if err != nil {
		f.Fatal(err)
	}
	ch := c.Mini()
	params := url.Values{
		"notify_time": {"2026-12-01 10:00:05"}, "notify_type": {"trade_status_sync"}, "notify_id": {"2026120100222100005000000000000001"},
		"app_id": {testAppID}, "seller_id": {testSellerID}, "charset": {"utf-8"}, "version": {"1.0"},
		"trade_no": {"2026120122001400000000000001"}, "out_trade_no": {"PF20261201100000ABCDEFGHJKMN"},
		"trade_status": {"TRADE_SUCCESS"}, "total_amount": {"12.34"}, "buyer_pay_amount": {"12.34"},
		"gmt_payment": {"2026-12-01 10:00:04"}, "buyer_open_id": {"074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5"},
		"subject": {"红色 T恤 & more"}, "passback_params": {url.QueryEscape("cart=7")},
	}
	body := signWith(f, key, params).Encode()
	want, err := ch.ParseNotification(context.Background(), nil, []byte(body))
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(body))
	f.Add([]byte(strings.Replace(body, "total_amount=12.34", "total_amount=12.340", 1)))
	f.Add([]byte(body + "&total_amount=1"))
	f.Add([]byte(strings.ReplaceAll(body, "&", ";")))
	f.Add([]byte(strings.Replace(body, "sign_type=RSA2", "sign_type=RSA", 1)))
	f.Add([]byte("sign_type=RSA2&sign=AAAA&total_amount=1e-1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ch.ParseNotification(context.Background(), nil, b)
		if err == nil && (n.ID != want.ID || n.Transaction != want.Transaction || n.EventType != want.EventType) {
			t.Fatalf("accepted %q as %+v; the genuine one is %+v", b, n, want)
		}
		if err != nil && !errors.Is(err, app.ErrBadNotification) {
			t.Fatalf("error %v does not wrap ErrBadNotification", err)
		}
	})
}
