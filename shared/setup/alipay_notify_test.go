package setup_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/payfn/payfn/shared/alipaysim"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/setup"
)

// alipayPaid creates an alipay_mini order of price fen through the server
// API and has the buyer pay it at alipaysim with the notification held
// back, so the test decides what reaches alipayNotify. It returns the
// order id and the genuine notification's parameters (unsigned).
func alipayPaid(t *testing.T, h *harness, ali *alipaysim.Server, c *client, requestID string) (string, url.Values) {
	t.Helper()
	o := c.channelOrder("alipay_mini", "ali-buyer", requestID).want(t, 201, "")
	id := o.str("order_id")
	payment, _ := o.body["payment"].(map[string]any)
	tradeNo, _ := payment["trade_no"].(string)
	if _, err := ali.PayTrade(context.Background(), tradeNo, alipaysim.PayOptions{NoNotify: true}); err != nil {
		t.Fatal(err)
	}
	p, err := ali.NotificationParams(tradeNo)
	if err != nil {
		t.Fatal(err)
	}
	return id, p
}

var formHeader = http.Header{"Content-Type": {"application/x-www-form-urlencoded; charset=utf-8"}}

// postNotify sends a form to alipayNotify through the real handler (a panic
// fails the test).
func postNotify(t *testing.T, h *harness, hdr http.Header, form string) (int, string) {
	t.Helper()
	status, raw := serve(t, h.stack.Handler, "/notify/alipay", hdr, []byte(form))
	return status, string(raw)
}

// TestHostileAlipayNotificationsAreAnsweredAsDocumentedAndChangeNothing is
// the WeChat Pay notification matrix repeated for Alipay's: each hostile
// notification gets its documented answer (never "success") and leaves
// every order, ledger row and claim as it was.
func TestHostileAlipayNotificationsAreAnsweredAsDocumentedAndChangeNothing(t *testing.T) {
	h, ali := newChannelsHarness(t, setup.Options{})
	c := channelShop(t, h, "alihost", 10) // 10 fen: "0.1", "0.10" and "1e-1" all mean it
	id, genuine := alipayPaid(t, h, ali, c, "host-1")
	signed := func(edit func(url.Values)) string {
		p := url.Values{}
		for k, v := range genuine {
			p[k] = append([]string(nil), v...)
		}
		edit(p)
		return ali.SignedNotification(p).Encode()
	}
	after := func(edit func(url.Values)) string { // changed after signing
		p := ali.SignedNotification(genuine)
		edit(p)
		return p.Encode()
	}
	other := "2088" + "999999999999"
	cases := []struct {
		name, form string
		status     int
		code       string
	}{
		{"bad signature", after(func(p url.Values) { p.Set("sign", base64.StdEncoding.EncodeToString(make([]byte, 256))) }), 401, "INVALID_NOTIFICATION"},
		{"signature missing", after(func(p url.Values) { p.Del("sign") }), 401, "INVALID_NOTIFICATION"},
		{"total_amount changed after signing", after(func(p url.Values) { p.Set("total_amount", "0.09") }), 401, "INVALID_NOTIFICATION"},
		{"out_trade_no changed after signing", after(func(p url.Values) { p.Set("out_trade_no", otherID(id)) }), 401, "INVALID_NOTIFICATION"},
		{"a parameter added after signing", after(func(p url.Values) { p.Set("refund_fee", "0.10") }), 401, "INVALID_NOTIFICATION"},
		{"sign_type RSA", after(func(p url.Values) { p.Set("sign_type", "RSA") }), 401, "INVALID_NOTIFICATION"},
		{"sign_type missing", after(func(p url.Values) { p.Del("sign_type") }), 401, "INVALID_NOTIFICATION"},
		{"total_amount 1e-1, signed", signed(func(p url.Values) { p.Set("total_amount", "1e-1") }), 401, "INVALID_NOTIFICATION"},
		{"another app_id, signed", signed(func(p url.Values) { p.Set("app_id", "2021000000009999") }), 400, "NOTIFICATION_MISMATCH"},
		{"another seller_id, signed", signed(func(p url.Values) { p.Set("seller_id", other) }), 400, "NOTIFICATION_MISMATCH"},
		{"an unknown order, signed", signed(func(p url.Values) { p.Set("out_trade_no", "PF20260101000000AAAAAAAAAAAA") }), 404, "ORDER_NOT_FOUND"},
		{"WAIT_BUYER_PAY, signed", signed(func(p url.Values) { p.Set("trade_status", "WAIT_BUYER_PAY") }), 200, ""},
		{"TRADE_CLOSED, signed", signed(func(p url.Values) { p.Set("trade_status", "TRADE_CLOSED") }), 200, ""},
		{"empty body", "", 401, "INVALID_NOTIFICATION"},
		{"not a form", "%zz&&==", 401, "INVALID_NOTIFICATION"},
	}
	before := h.dbSnapshot()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, raw := postNotify(t, h, formHeader, tc.form)
			if status != tc.status || (tc.code != "" && !strings.Contains(raw, `"code":"`+tc.code+`"`)) {
				t.Fatalf("answered %d %s, want %d %s", status, raw, tc.status, tc.code)
			}
			if (raw == "success") != (tc.status == 200) {
				t.Errorf("body %q: only an acknowledged notification answers success", raw)
			}
			if d := before.diff(h.dbSnapshot()); d != "" {
				t.Fatalf("the store changed:\n%s", d)
			}
		})
	}
	// Parameters in the query string never count: only the signed body.
	status, raw := serve(t, h.stack.Handler, "/notify/alipay?total_amount=0.01&trade_status=TRADE_SUCCESS", formHeader, []byte(after(func(p url.Values) { p.Del("trade_status") })))
	if status == 200 || h.order(id).Status != order.StatusNotPay {
		t.Errorf("query-string parameters were read: %d %s", status, raw)
	}
}

// TestGenuineAlipayNotificationsSettleExactAmountsOnce: "0.1" and "0.10"
// are both ten fen and pay a ten-fen order; a genuine payment one fen off
// is EXCEPTION with its ledger row, acknowledged; the legacy content type
// is read; and repeats change nothing.
func TestGenuineAlipayNotificationsSettleExactAmountsOnce(t *testing.T) {
	h, ali := newChannelsHarness(t, setup.Options{})
	c := channelShop(t, h, "aliok", 10)
	for i, amount := range []string{"0.1", "0.10"} {
		t.Run("total_amount "+amount, func(t *testing.T) {
			id, p := alipayPaid(t, h, ali, c, fmt.Sprintf("ok-%d", i))
			p.Set("total_amount", amount)
			form := ali.SignedNotification(p).Encode()
			legacy := http.Header{"Content-Type": {"application/x-www-form-urlencoded; text/html; charset=UTF-8"}}
			for range 3 {
				if status, raw := postNotify(t, h, legacy, form); status != 200 || raw != "success" {
					t.Fatalf("answered %d %q, want 200 success", status, raw)
				}
			}
			if o := h.order(id); o.Status != order.StatusPaid || o.TransactionID != p.Get("trade_no") {
				t.Errorf("order is %s by %q, want PAID by %s", o.Status, o.TransactionID, p.Get("trade_no"))
			}
			if l, cs := h.ledger(id), h.claims(id); len(l) != 1 || !l[0].Matched || len(cs) != 1 {
				t.Errorf("ledger %+v, claims %d: want one matched row and one decision", l, len(cs))
			}
		})
	}
	t.Run("total_amount one fen over", func(t *testing.T) {
		id, p := alipayPaid(t, h, ali, c, "over")
		p.Set("total_amount", "0.11")
		if status, raw := postNotify(t, h, formHeader, ali.SignedNotification(p).Encode()); status != 200 || raw != "success" {
			t.Fatalf("answered %d %q, want 200 success (a retry would not change it)", status, raw)
		}
		o := h.order(id)
		l := h.ledger(id)
		if o.Status != order.StatusException || len(l) != 1 || l[0].Matched || l[0].TotalFen != 11 {
			t.Errorf("order %s, ledger %+v: want EXCEPTION and one unmatched row of 11 fen", o.Status, l)
		}
	})
}

// TestConcurrentDuplicateAlipayNotificationsDecideOnce: Alipay resends a
// notification with the same notify_id; N copies at once all get
// "success" and make one ledger row and one decision.
func TestConcurrentDuplicateAlipayNotificationsDecideOnce(t *testing.T) {
	n := reliabilityN(t, defaultRaceN)
	h, ali := newChannelsHarness(t, setup.Options{})
	c := channelShop(t, h, "alirace", 2800)
	id, p := alipayPaid(t, h, ali, c, "race-1")
	form := []byte(ali.SignedNotification(p).Encode())
	cl := raceClient(n)
	answers := race(n, func(int) int { return postRaw(cl, h.url+"/notify/alipay", formHeader, form) })
	if answers["200"] != n {
		t.Errorf("answers %v: every copy of a genuine notification must be acknowledged", answers)
	}
	o := h.order(id)
	if o.Status != order.StatusPaid || o.TransactionID != p.Get("trade_no") {
		t.Errorf("order is %s by %q, want PAID by %s", o.Status, o.TransactionID, p.Get("trade_no"))
	}
	if l, cs := h.ledger(id), h.claims(id); len(l) != 1 || len(cs) != 1 {
		t.Errorf("%d copies made %d ledger rows and %d claims, want 1 and 1", n, len(l), len(cs))
	}
}

// otherID is a well-formed order id that differs from id in its last
// character.
func otherID(id string) string {
	if strings.HasSuffix(id, "Z") {
		return id[:len(id)-1] + "Y"
	}
	return id[:len(id)-1] + "Z"
}

// TestAProvidersNotificationForAnOrderOfAnotherProviderChangesNothing: a
// genuine WeChat Pay notification naming an order paid through Alipay is
// NOTIFICATION_MISMATCH, as README says, and changes nothing.
func TestAProvidersNotificationForAnOrderOfAnotherProviderChangesNothing(t *testing.T) {
	h, ali := newChannelsHarness(t, setup.Options{})
	c := channelShop(t, h, "crossed", 2800)
	id, _ := alipayPaid(t, h, ali, c, "cross-1")
	hdr, body, err := h.sim.BuildNotification(h.paidTx(id, "o-buyer", 2800), paysim.NotifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := h.dbSnapshot()
	if status, raw := serve(t, h.stack.Handler, "/notify/wechatpay", hdr, body); status != 400 || !strings.Contains(string(raw), `"code":"NOTIFICATION_MISMATCH"`) {
		t.Fatalf("answered %d %s, want 400 NOTIFICATION_MISMATCH", status, raw)
	}
	if d := before.diff(h.dbSnapshot()); d != "" {
		t.Fatalf("the store changed:\n%s", d)
	}
}
