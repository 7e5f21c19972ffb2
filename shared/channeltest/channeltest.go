// Package channeltest is the conformance suite every payment channel passes
// against its simulator, so that the use cases can treat channels alike: a
// new channel is one package, one registration line in shared/setup, and a
// green Run (the go-cloud drivertest pattern).
//
// A channel package's test implements Harness over its real client and its
// simulator on loopback, and calls Run. The suite only uses app.Channel and
// what the harness does as the buyer; it never looks inside the channel.
package channeltest

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/app"
)

// Harness is one channel wired to its simulator.
type Harness interface {
	// Channel is the channel under test, talking to the simulator.
	Channel() app.Channel
	// Request is a prepay request for a new order numbered outTradeNo of
	// fen, with what the channel needs filled in (payer, client IP, return
	// URL).
	Request(outTradeNo string, fen int64) app.PrepayRequest
	// Pay is the buyer paying a prepaid trade in full, as the front end
	// would with p.Payment (opening the page, calling the simulator).
	Pay(t testing.TB, req app.PrepayRequest, p app.Prepaid)
	// Notification waits for the simulator's payment notification of
	// outTradeNo and returns its exact header and raw body.
	Notification(t testing.TB, outTradeNo string) (http.Header, []byte)
	// Tamper returns a genuine notification changed after it was signed
	// (an amount, say), which must no longer verify.
	Tamper(header http.Header, body []byte) (http.Header, []byte)
	// SettleRefunds makes the simulator finish refunds it is still
	// processing; a simulator that settles at once does nothing.
	SettleRefunds(t testing.TB)
}

// Run runs the suite. newID returns a fresh out_trade_no for each order,
// so runs against a long-lived simulator do not collide.
func Run(t *testing.T, h Harness, newID func() string) {
	t.Run("Identity", func(t *testing.T) { testIdentity(t, h) })
	t.Run("QueryUnknownTrade", func(t *testing.T) { testQueryUnknown(t, h, newID()) })
	t.Run("PurchaseNotifyQueryRefund", func(t *testing.T) { testPurchase(t, h, newID()) })
	t.Run("PrepayRepeats", func(t *testing.T) { testPrepayRepeats(t, h, newID()) })
	t.Run("CloseUnpaid", func(t *testing.T) { testCloseUnpaid(t, h, newID()) })
	t.Run("RejectsForgedNotifications", func(t *testing.T) { testForged(t, h, newID()) })
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func testIdentity(t *testing.T, h Harness) {
	ch := h.Channel()
	if !slices.Contains(app.KnownChannels, ch.Name()) {
		t.Errorf("Name() = %q, not one of %v", ch.Name(), app.KnownChannels)
	}
	if p := ch.Provider(); p != app.ProviderWeChatPay && p != app.ProviderAlipay {
		t.Errorf("Provider() = %q", p)
	}
	if ids := ch.AppIDs(); len(ids) == 0 || ids[0] != ch.AppID() || ch.AppID() == "" {
		t.Errorf("AppIDs() = %v, AppID() = %q: want the default appid first", ids, ch.AppID())
	}
	if ch.MchID() == "" {
		t.Error("MchID() is empty")
	}
}

func testQueryUnknown(t *testing.T, h Harness, id string) {
	ch := h.Channel()
	if _, err := ch.QueryOrder(ctx(t), id); !errors.Is(err, app.ErrTradeNotFound) {
		t.Errorf("QueryOrder of a trade never prepaid: err = %v, want ErrTradeNotFound", err)
	}
	if _, err := ch.QueryRefund(ctx(t), id, id+"R1"); !errors.Is(err, app.ErrTradeNotFound) {
		t.Errorf("QueryRefund of a refund never made: err = %v, want ErrTradeNotFound", err)
	}
}

// checkPayment holds the payment parameters to what the channel's front end
// needs, and nothing of another channel's.
func checkPayment(t testing.TB, name string, p app.PaymentParams) {
	t.Helper()
	jsapi := p.AppID != "" || p.TimeStamp != "" || p.NonceStr != "" || p.Package != "" || p.SignType != "" || p.PaySign != ""
	var ok bool
	switch name {
	case app.ChannelWeChatJSAPI:
		ok = p.AppID != "" && p.TimeStamp != "" && p.NonceStr != "" && p.Package != "" && p.PaySign != "" && p.H5URL == "" && p.PayURL == "" && p.TradeNo == ""
	case app.ChannelWeChatH5:
		ok = !jsapi && p.H5URL != "" && p.PayURL == "" && p.TradeNo == ""
	case app.ChannelAlipayWap:
		ok = !jsapi && p.PayURL != "" && p.H5URL == "" && p.TradeNo == ""
	case app.ChannelAlipayMini:
		ok = !jsapi && p.TradeNo != "" && p.H5URL == "" && p.PayURL == ""
	}
	if !ok {
		t.Errorf("channel %s prepay gave payment %+v", name, p)
	}
}

func testPurchase(t *testing.T, h Harness, id string) {
	ch := h.Channel()
	const fen = 1234
	req := h.Request(id, fen)
	p, err := ch.Prepay(ctx(t), req)
	if err != nil {
		t.Fatalf("Prepay: %v", err)
	}
	checkPayment(t, ch.Name(), p.Payment)
	h.Pay(t, req, p)

	header, body := h.Notification(t, id)
	n, err := ch.ParseNotification(ctx(t), header, body)
	if err != nil {
		t.Fatalf("ParseNotification of the simulator's notification: %v", err)
	}
	tx := n.Transaction
	if n.EventType != app.EventTransactionSuccess || tx.TradeState != app.TradeStateSuccess {
		t.Errorf("notification event %q state %q, want %s %s", n.EventType, tx.TradeState, app.EventTransactionSuccess, app.TradeStateSuccess)
	}
	if tx.OutTradeNo != id || tx.TotalFen != fen || tx.Currency != "CNY" || tx.TransactionID == "" || n.ID == "" {
		t.Errorf("notification transaction %+v (id %q): want out_trade_no %s, %d CNY fen, a transaction id", tx, n.ID, id, fen)
	}
	if !slices.Contains(ch.AppIDs(), tx.AppID) || tx.MchID != ch.MchID() {
		t.Errorf("notification names appid %q mchid %q; the channel is %v %q", tx.AppID, tx.MchID, ch.AppIDs(), ch.MchID())
	}

	q, err := ch.QueryOrder(ctx(t), id)
	if err != nil {
		t.Fatalf("QueryOrder after paying: %v", err)
	}
	if q.TradeState != app.TradeStateSuccess || q.TransactionID != tx.TransactionID || q.TotalFen != fen || q.OutTradeNo != id {
		t.Errorf("query after paying = %+v, want SUCCESS %s %d fen", q, tx.TransactionID, fen)
	}
	if q.AppID != tx.AppID || q.MchID != ch.MchID() {
		t.Errorf("query names appid %q mchid %q, the notification %q %q", q.AppID, q.MchID, tx.AppID, ch.MchID())
	}

	// A partial refund, sent twice: refunded once.
	part := app.RefundRequest{OutTradeNo: id, OutRefundNo: id + "R1", RefundFen: 200, TotalFen: fen, Reason: "conformance"}
	for i := range 2 {
		r, err := ch.Refund(ctx(t), part)
		if err != nil {
			t.Fatalf("Refund (send %d): %v", i+1, err)
		}
		if r.OutRefundNo != part.OutRefundNo || (r.Status != app.RefundStateSuccess && r.Status != app.RefundStateProcessing) {
			t.Errorf("Refund (send %d) = %+v, want SUCCESS or PROCESSING for %s", i+1, r, part.OutRefundNo)
		}
	}
	settled := waitRefund(t, h, id, part.OutRefundNo)
	if settled.RefundFen != 200 {
		t.Errorf("refund %s settled at %d fen, want 200", part.OutRefundNo, settled.RefundFen)
	}
	// The rest, refunded in full.
	rest := app.RefundRequest{OutTradeNo: id, OutRefundNo: id + "R2", RefundFen: fen - 200, TotalFen: fen, Reason: "conformance"}
	if _, err := ch.Refund(ctx(t), rest); err != nil {
		t.Fatalf("Refund of the rest: %v", err)
	}
	if r := waitRefund(t, h, id, rest.OutRefundNo); r.RefundFen != fen-200 {
		t.Errorf("refund %s settled at %d fen, want %d", rest.OutRefundNo, r.RefundFen, fen-200)
	}
	// Nothing is left to refund.
	if r, err := ch.Refund(ctx(t), app.RefundRequest{OutTradeNo: id, OutRefundNo: id + "R3", RefundFen: 1, TotalFen: fen}); err == nil && r.Status == app.RefundStateSuccess {
		t.Errorf("a refund beyond the paid total succeeded: %+v", r)
	}
}

// waitRefund asks until the refund succeeds.
func waitRefund(t *testing.T, h Harness, orderID, refundNo string) app.RefundResult {
	t.Helper()
	var last app.RefundResult
	var err error
	for range 50 {
		last, err = h.Channel().QueryRefund(ctx(t), orderID, refundNo)
		if err == nil && last.Status == app.RefundStateSuccess {
			if last.OutRefundNo != refundNo {
				t.Errorf("QueryRefund(%s) names %q", refundNo, last.OutRefundNo)
			}
			return last
		}
		h.SettleRefunds(t)
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("refund %s never succeeded: last %+v, err %v", refundNo, last, err)
	return last
}

func testPrepayRepeats(t *testing.T, h Harness, id string) {
	ch := h.Channel()
	req := h.Request(id, 99)
	for i := range 2 {
		p, err := ch.Prepay(ctx(t), req)
		if err != nil {
			t.Fatalf("Prepay with identical parameters (call %d): %v", i+1, err)
		}
		checkPayment(t, ch.Name(), p.Payment)
	}
}

func testCloseUnpaid(t *testing.T, h Harness, id string) {
	ch := h.Channel()
	if _, err := ch.Prepay(ctx(t), h.Request(id, 500)); err != nil {
		t.Fatalf("Prepay: %v", err)
	}
	// A trade the provider creates only when the buyer opens its page may
	// not exist yet: either way, nothing can pay it after the close.
	if err := ch.CloseOrder(ctx(t), id); err != nil && !errors.Is(err, app.ErrTradeNotFound) {
		t.Fatalf("CloseOrder of an unpaid trade: %v", err)
	}
	q, err := ch.QueryOrder(ctx(t), id)
	switch {
	case errors.Is(err, app.ErrTradeNotFound):
	case err != nil:
		t.Fatalf("QueryOrder after close: %v", err)
	case q.TradeState != app.TradeStateClosed:
		t.Errorf("query after close: state %q, want CLOSED", q.TradeState)
	}
	if err := ch.CloseOrder(ctx(t), "never"+id); !errors.Is(err, app.ErrTradeNotFound) && err != nil {
		t.Errorf("CloseOrder of a trade never prepaid: %v, want ErrTradeNotFound or nil", err)
	}
}

func testForged(t *testing.T, h Harness, id string) {
	ch := h.Channel()
	req := h.Request(id, 300)
	p, err := ch.Prepay(ctx(t), req)
	if err != nil {
		t.Fatalf("Prepay: %v", err)
	}
	h.Pay(t, req, p)
	header, body := h.Notification(t, id)
	if _, err := ch.ParseNotification(ctx(t), header, body); err != nil {
		t.Fatalf("the genuine notification does not verify: %v", err)
	}
	th, tb := h.Tamper(header.Clone(), append([]byte(nil), body...))
	if _, err := ch.ParseNotification(ctx(t), th, tb); !errors.Is(err, app.ErrBadNotification) {
		t.Errorf("a notification changed after signing: err = %v, want ErrBadNotification", err)
	}
	for name, b := range map[string][]byte{"empty": nil, "garbage": []byte("\x00{not a notification%%"), "truncated": body[:len(body)/2]} {
		if _, err := ch.ParseNotification(ctx(t), header.Clone(), b); !errors.Is(err, app.ErrBadNotification) {
			t.Errorf("%s body: err = %v, want ErrBadNotification", name, err)
		}
	}
}
