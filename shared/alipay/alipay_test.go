package alipay_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/smartwalle/alipay/v3"

	"github.com/payfn/payfn/shared/alipay"
	"github.com/payfn/payfn/shared/alipaysim"
	"github.com/payfn/payfn/shared/app"
)

func TestWapPurchase(t *testing.T) {
	modes(t, func(t *testing.T, cert bool) {
		r := newRig(t, cert, nil)
		ch := r.client.Wap()
		if ch.Name() != app.ChannelAlipayWap || ch.Provider() != app.ProviderAlipay || ch.AppID() != testAppID || ch.MchID() != testSellerID {
			t.Fatalf("identity %s %s %s %s", ch.Name(), ch.Provider(), ch.AppID(), ch.MchID())
		}
		id := newID("W")
		req := r.request(id, 1230)
		p, err := ch.Prepay(ctxT(t), req)
		if err != nil {
			t.Fatalf("Prepay: %v", err)
		}
		if p.Ref != "" || p.Payment.TradeNo != "" || !strings.HasPrefix(p.Payment.PayURL, r.cfg.GatewayURL+"?") {
			t.Fatalf("Prepay = %+v, want only a pay_url on the gateway", p)
		}
		// What the signed URL asks for.
		u, _ := url.Parse(p.Payment.PayURL)
		q := u.Query()
		var biz map[string]string
		if err := json.Unmarshal([]byte(q.Get("biz_content")), &biz); err != nil {
			t.Fatalf("biz_content: %v", err)
		}
		want := map[string]string{
			"out_trade_no": id, "total_amount": "12.30", "product_code": "QUICK_WAP_WAY", "subject": "Test  goods  more",
			"quit_url": req.QuitURL, "time_expire": req.TimeExpire.In(time.FixedZone("", 8*3600)).Format("2006-01-02 15:04:05"),
			"passback_params": url.QueryEscape(req.Attach),
		}
		for k, v := range want {
			if biz[k] != v {
				t.Errorf("biz_content %s = %q, want %q", k, biz[k], v)
			}
		}
		if q.Get("method") != "alipay.trade.wap.pay" || q.Get("return_url") != req.ReturnURL || q.Get("notify_url") != r.cfg.NotifyURL || q.Get("sign_type") != "RSA2" {
			t.Errorf("pay_url common parameters %v", q)
		}
		if cert != (q.Get("app_cert_sn") != "" && q.Get("alipay_root_cert_sn") != "") {
			t.Errorf("certificate SNs in a %v-mode request: %q %q", cert, q.Get("app_cert_sn"), q.Get("alipay_root_cert_sn"))
		}

		tradeNo, back := r.payWap(t, p.Payment.PayURL)
		if !strings.HasPrefix(back, req.ReturnURL+"?") {
			t.Errorf("after paying the browser goes to %q, want return_url", back)
		}
		got := r.rcv.wait(t, id, paid)
		if ct := got.header.Get("Content-Type"); cert != strings.Contains(ct, "text/html") {
			t.Errorf("notification Content-Type %q", ct)
		}
		n, err := ch.ParseNotification(ctxT(t), got.header, got.body)
		if err != nil {
			t.Fatalf("ParseNotification: %v", err)
		}
		tx := n.Transaction
		if n.EventType != app.EventTransactionSuccess || tx.TradeState != app.TradeStateSuccess || n.ID == "" || n.CreateTime.IsZero() {
			t.Errorf("notification %+v", n)
		}
		if tx.OutTradeNo != id || tx.TransactionID != tradeNo || tx.TotalFen != 1230 || tx.PayerTotalFen != 1230 || tx.Currency != "CNY" ||
			tx.AppID != testAppID || tx.MchID != testSellerID || tx.Attach != req.Attach || tx.SuccessTime.IsZero() || tx.PayerOpenID == "" {
			t.Errorf("notification transaction %+v", tx)
		}

		q2, err := ch.QueryOrder(ctxT(t), id)
		if err != nil {
			t.Fatalf("QueryOrder: %v", err)
		}
		if q2.TradeState != app.TradeStateSuccess || q2.TransactionID != tradeNo || q2.TotalFen != 1230 || q2.AppID != testAppID ||
			q2.MchID != testSellerID || q2.OutTradeNo != id || !q2.SuccessTime.Equal(tx.SuccessTime) {
			t.Errorf("QueryOrder = %+v", q2)
		}
	})
}

func TestMiniPurchase(t *testing.T) {
	modes(t, func(t *testing.T, cert bool) {
		r := newRig(t, cert, nil)
		ch := r.client.Mini()
		if ch.Name() != app.ChannelAlipayMini {
			t.Fatalf("Name %q", ch.Name())
		}
		id := newID("M")
		req := r.request(id, 9)
		p, err := ch.Prepay(ctxT(t), req)
		if err != nil {
			t.Fatalf("Prepay: %v", err)
		}
		if p.Ref == "" || p.Payment != (app.PaymentParams{TradeNo: p.Ref}) {
			t.Fatalf("Prepay = %+v, want the trade_no as Ref and Payment.TradeNo", p)
		}
		again, err := ch.Prepay(ctxT(t), req)
		if err != nil || again.Ref != p.Ref {
			t.Errorf("a repeated Prepay = %+v, %v; want trade %s again", again, err, p.Ref)
		}
		if pp, err := ch.PaymentParams("", p.Ref); err != nil || pp.TradeNo != p.Ref {
			t.Errorf("PaymentParams = %+v, %v", pp, err)
		}
		if _, err := ch.PaymentParams("2021000000009999", p.Ref); !errors.Is(err, alipay.ErrUnboundAppID) {
			t.Errorf("PaymentParams for another app: %v", err)
		}
		trade, _ := r.sim.Trade(p.Ref)
		if trade.ProductCode != "JSAPI_PAY" || trade.BuyerOpenID != req.PayerOpenID || trade.OpAppID != testAppID || trade.OrderedFen != 9 || trade.NotifyURL != r.cfg.NotifyURL {
			t.Errorf("the simulator's trade %+v", trade)
		}
		if q, err := ch.QueryOrder(ctxT(t), id); err != nil || q.TradeState != "NOTPAY" || q.TransactionID != p.Ref {
			t.Errorf("QueryOrder before paying = %+v, %v; want NOTPAY", q, err)
		}
		if _, err := r.sim.PayTrade(ctxT(t), p.Ref, alipaysim.PayOptions{}); err != nil {
			t.Fatalf("PayTrade: %v", err)
		}
		got := r.rcv.wait(t, id, paid)
		n, err := ch.ParseNotification(ctxT(t), got.header, got.body)
		if err != nil {
			t.Fatalf("ParseNotification: %v", err)
		}
		if tx := n.Transaction; n.EventType != app.EventTransactionSuccess || tx.TotalFen != 9 || tx.TransactionID != p.Ref || tx.PayerOpenID != req.PayerOpenID {
			t.Errorf("notification %+v", n)
		}
		if _, err := ch.Prepay(ctxT(t), req); alipay.SubCode(err) != "ACQ.TRADE_HAS_SUCCESS" || errors.Is(err, app.ErrChannelUnavailable) {
			t.Errorf("Prepay of a paid trade: %v, want ACQ.TRADE_HAS_SUCCESS", err)
		}
	})
}

// paidMini creates and pays a mini-program trade of fen and waits for its
// notification.
func (r *rig) paidMini(t testing.TB, fen int64) (id, tradeNo string) {
	t.Helper()
	id = newID("P")
	p, err := r.client.Mini().Prepay(ctxT(t), r.request(id, fen))
	if err != nil {
		t.Fatalf("Prepay: %v", err)
	}
	if _, err := r.sim.PayTrade(ctxT(t), p.Ref, alipaysim.PayOptions{}); err != nil {
		t.Fatalf("PayTrade: %v", err)
	}
	r.rcv.wait(t, id, paid)
	return id, p.Ref
}

func TestCloseOrder(t *testing.T) {
	r := newRig(t, false, nil)
	ch := r.client.Mini()
	id := newID("C")
	if _, err := ch.Prepay(ctxT(t), r.request(id, 500)); err != nil {
		t.Fatalf("Prepay: %v", err)
	}
	if err := ch.CloseOrder(ctxT(t), id); err != nil {
		t.Fatalf("CloseOrder: %v", err)
	}
	if q, err := ch.QueryOrder(ctxT(t), id); err != nil || q.TradeState != app.TradeStateClosed {
		t.Errorf("QueryOrder after close = %+v, %v; want CLOSED", q, err)
	}
	paidID, _ := r.paidMini(t, 100)
	err := ch.CloseOrder(ctxT(t), paidID)
	if alipay.SubCode(err) != "ACQ.TRADE_STATUS_ERROR" || errors.Is(err, app.ErrTradeNotFound) || errors.Is(err, app.ErrChannelUnavailable) {
		t.Errorf("CloseOrder of a paid trade: %v, want ACQ.TRADE_STATUS_ERROR, neither not-found nor unavailable", err)
	}
	// A wap trade exists only once its page is opened.
	wapID := newID("CW")
	if _, err := r.client.Wap().Prepay(ctxT(t), r.request(wapID, 500)); err != nil {
		t.Fatalf("Prepay: %v", err)
	}
	if err := r.client.Wap().CloseOrder(ctxT(t), wapID); !errors.Is(err, app.ErrTradeNotFound) {
		t.Errorf("CloseOrder of a wap trade never opened: %v, want ErrTradeNotFound", err)
	}
}

func TestRefunds(t *testing.T) {
	modes(t, func(t *testing.T, cert bool) {
		r := newRig(t, cert, nil)
		ch := r.client.Mini()
		id, tradeNo := r.paidMini(t, 1234)

		part := app.RefundRequest{OutTradeNo: id, OutRefundNo: id + "R1", RefundFen: 200, TotalFen: 1234, Reason: "size / fit"}
		res, err := ch.Refund(ctxT(t), part)
		if err != nil || res.Status != app.RefundStateSuccess || res.RefundFen != 200 || res.OutRefundNo != part.OutRefundNo || res.SuccessTime.IsZero() {
			t.Fatalf("partial Refund = %+v, %v", res, err)
		}
		// The same out_refund_no again moves no money: PROCESSING, to be
		// followed by query, which finds it done.
		if res, err := ch.Refund(ctxT(t), part); err != nil || res.Status != app.RefundStateProcessing {
			t.Errorf("Refund resent = %+v, %v; want PROCESSING", res, err)
		}
		if q, err := ch.QueryRefund(ctxT(t), id, part.OutRefundNo); err != nil || q.Status != app.RefundStateSuccess || q.RefundFen != 200 || q.TotalFen != 1234 || q.SuccessTime.IsZero() {
			t.Errorf("QueryRefund = %+v, %v", q, err)
		}
		// The partial refund's notification: still the payment, of the
		// original total, so payfn settles it again idempotently.
		rn := r.rcv.wait(t, id, func(f url.Values) bool { return f.Get("refund_fee") == "2.00" })
		n, err := ch.ParseNotification(ctxT(t), rn.header, rn.body)
		if err != nil {
			t.Fatalf("ParseNotification of the refund notification: %v", err)
		}
		if tx := n.Transaction; n.EventType != app.EventTransactionSuccess || tx.TradeState != app.TradeStateSuccess || tx.TotalFen != 1234 ||
			tx.TransactionID != tradeNo || !strings.Contains(tx.TradeStateDesc, "refunded 2.00") {
			t.Errorf("partial refund notification %+v", n)
		}

		rest := app.RefundRequest{OutTradeNo: id, OutRefundNo: id + "R2", RefundFen: 1034, TotalFen: 1234}
		if res, err := ch.Refund(ctxT(t), rest); err != nil || res.Status != app.RefundStateSuccess {
			t.Fatalf("Refund of the rest = %+v, %v", res, err)
		}
		// Refunded in full, Alipay closes the trade: payfn reads REFUND
		// (paid, then refunded), never "not paid".
		if q, err := ch.QueryOrder(ctxT(t), id); err != nil || q.TradeState != app.TradeStateRefund || q.TotalFen != 1234 {
			t.Errorf("QueryOrder after the full refund = %+v, %v; want REFUND", q, err)
		}
		cn := r.rcv.wait(t, id, func(f url.Values) bool { return f.Get("trade_status") == alipaysim.StatusClosed })
		n, err = ch.ParseNotification(ctxT(t), cn.header, cn.body)
		if err != nil {
			t.Fatalf("ParseNotification of TRADE_CLOSED: %v", err)
		}
		if n.EventType == app.EventTransactionSuccess || n.Transaction.TradeState != app.TradeStateRefund {
			t.Errorf("full refund notification %+v: want REFUND, not a payment", n)
		}
		if _, err := ch.Refund(ctxT(t), app.RefundRequest{OutTradeNo: id, OutRefundNo: id + "R3", RefundFen: 1, TotalFen: 1234}); alipay.SubCode(err) != "ACQ.TRADE_HAS_CLOSE" {
			t.Errorf("Refund beyond the total: %v, want ACQ.TRADE_HAS_CLOSE", err)
		}
		if _, err := ch.QueryRefund(ctxT(t), id, id+"R9"); !errors.Is(err, app.ErrTradeNotFound) {
			t.Errorf("QueryRefund of a refund never made: %v, want ErrTradeNotFound", err)
		}
	})
}

func TestRefundProcessing(t *testing.T) {
	r := newRig(t, false, nil)
	ch := r.client.Wap()
	id, _ := r.paidMini(t, 500)
	r.sim.SetFaults(alipaysim.Faults{AsyncRefunds: true})
	req := app.RefundRequest{OutTradeNo: id, OutRefundNo: id + "R1", RefundFen: 500, TotalFen: 500}
	if res, err := ch.Refund(ctxT(t), req); err != nil || res.Status != app.RefundStateProcessing {
		t.Fatalf("Refund = %+v, %v; want PROCESSING", res, err)
	}
	if q, err := ch.QueryRefund(ctxT(t), id, req.OutRefundNo); err != nil || q.Status != app.RefundStateProcessing || q.RefundFen != 500 {
		t.Errorf("QueryRefund while processing = %+v, %v", q, err)
	}
	if err := r.sim.SettleRefund(id, req.OutRefundNo); err != nil {
		t.Fatal(err)
	}
	if q, err := ch.QueryRefund(ctxT(t), id, req.OutRefundNo); err != nil || q.Status != app.RefundStateSuccess {
		t.Errorf("QueryRefund after settling = %+v, %v", q, err)
	}
	r.sim.SetFaults(alipaysim.Faults{RefundBalanceNotEnough: true})
	other, _ := r.paidMini(t, 100)
	_, err := ch.Refund(ctxT(t), app.RefundRequest{OutTradeNo: other, OutRefundNo: other + "R1", RefundFen: 100, TotalFen: 100})
	if alipay.SubCode(err) != "ACQ.SELLER_BALANCE_NOT_ENOUGH" || errors.Is(err, app.ErrChannelUnavailable) || errors.Is(err, app.ErrTradeNotFound) {
		t.Errorf("refused Refund: %v", err)
	}
}

func TestUnknownTrade(t *testing.T) {
	r := newRig(t, false, nil)
	ch := r.client.Mini()
	id := newID("U")
	if _, err := ch.QueryOrder(ctxT(t), id); !errors.Is(err, app.ErrTradeNotFound) {
		t.Errorf("QueryOrder: %v", err)
	}
	if err := ch.CloseOrder(ctxT(t), id); !errors.Is(err, app.ErrTradeNotFound) {
		t.Errorf("CloseOrder: %v", err)
	}
	if _, err := ch.Refund(ctxT(t), app.RefundRequest{OutTradeNo: id, OutRefundNo: id + "R", RefundFen: 1, TotalFen: 1}); !errors.Is(err, app.ErrTradeNotFound) {
		t.Errorf("Refund: %v", err)
	}
	if _, err := ch.QueryRefund(ctxT(t), id, id+"R"); !errors.Is(err, app.ErrTradeNotFound) {
		t.Errorf("QueryRefund: %v", err)
	}
}

func TestGatewayFaults(t *testing.T) {
	r := newRig(t, false, nil)
	ch := r.client.Mini()
	id, _ := r.paidMini(t, 100)
	unavailable := func(name string) {
		t.Helper()
		_, err := ch.QueryOrder(ctxT(t), id)
		if !errors.Is(err, app.ErrChannelUnavailable) || errors.Is(err, app.ErrTradeNotFound) {
			t.Errorf("%s: QueryOrder err = %v, want ErrChannelUnavailable", name, err)
		}
	}
	r.sim.FailNext(1, alipaysim.Failure{Status: 502})
	unavailable("HTTP 502")
	r.sim.FailNext(1, alipaysim.Failure{}) // an unsigned 20000 error_response
	unavailable("20000 isp.unknow-error")
	r.sim.SetFaults(alipaysim.Faults{BadResponseSignature: true})
	unavailable("reply signed over other bytes")
	r.sim.SetFaults(alipaysim.Faults{})

	slow := r.cfg
	slow.Timeout = 100 * time.Millisecond
	sc, err := alipay.New(slow)
	if err != nil {
		t.Fatal(err)
	}
	r.sim.FailNext(1, alipaysim.Failure{Hang: time.Second})
	if _, err := sc.QueryOrder(ctxT(t), id); !errors.Is(err, app.ErrChannelUnavailable) {
		t.Errorf("a hanging gateway: %v, want ErrChannelUnavailable", err)
	}

	// Replies that do not verify with the configured Alipay key.
	wrong := r.cfg
	wrong.PublicKeyPEM = publicPEM(t, &otherKey.PublicKey)
	wc, err := alipay.New(wrong)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wc.QueryOrder(ctxT(t), id); !errors.Is(err, app.ErrChannelUnavailable) {
		t.Errorf("a reply signed by another key: %v, want ErrChannelUnavailable", err)
	}
	// An unknown trade in an unverifiable reply is not ErrTradeNotFound.
	if err := wc.CloseOrder(ctxT(t), newID("X")); !errors.Is(err, app.ErrChannelUnavailable) || errors.Is(err, app.ErrTradeNotFound) {
		t.Errorf("an unverifiable ACQ.TRADE_NOT_EXIST: %v", err)
	}
	// Nothing listening.
	down := r.cfg
	down.GatewayURL = "http://127.0.0.1:1/gateway.do"
	dc, err := alipay.New(down)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dc.Mini().Prepay(ctxT(t), r.request(newID("D"), 1)); !errors.Is(err, app.ErrChannelUnavailable) {
		t.Errorf("a gateway that is down: %v", err)
	}
}

func TestCertModeUnknownReplyCert(t *testing.T) {
	// A client holding another Alipay public-key certificate (Alipay has
	// rotated): replies name an alipay_cert_sn it has not loaded. It must
	// fail as unavailable, without downloading anything.
	r := newRig(t, true, nil)
	other := newRig(t, true, func(o *alipaysim.Options) { o.AlipayKey = otherKey })
	cfg := r.cfg
	cfg.PublicCertPEM = other.sim.Keys().AlipayCertPEM
	calls := &countingTransport{base: http.DefaultTransport}
	cfg.HTTPClient = &http.Client{Transport: calls}
	c, err := alipay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := r.paidMini(t, 100)
	if _, err := c.QueryOrder(ctxT(t), id); !errors.Is(err, app.ErrChannelUnavailable) || !errors.Is(err, sdk.ErrAliPublicKeyNotFound) {
		t.Errorf("a reply naming an unknown certificate: %v, want ErrChannelUnavailable", err)
	}
	if n := calls.n.Load(); n != 1 {
		t.Errorf("%d gateway calls for one query, want 1 (no certificate download)", n)
	}
	// The client's own certificates work, through the same transport.
	if _, err := r.client.QueryOrder(ctxT(t), id); err != nil {
		t.Errorf("QueryOrder with the right certificate: %v", err)
	}
}

type countingTransport struct {
	base http.RoundTripper
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

func TestPrepayRefusesBadInput(t *testing.T) {
	r := newRig(t, false, nil)
	for name, edit := range map[string]func(*app.PrepayRequest){
		"no out_trade_no": func(q *app.PrepayRequest) { q.OutTradeNo = "" },
		"zero amount":     func(q *app.PrepayRequest) { q.TotalFen = 0 },
		"above the max":   func(q *app.PrepayRequest) { q.TotalFen = alipay.MaxYuanFen + 1 },
		"no subject":      func(q *app.PrepayRequest) { q.Description = " /&= " },
		"profit sharing":  func(q *app.PrepayRequest) { q.ProfitSharing = true },
		"another appid":   func(q *app.PrepayRequest) { q.AppID = "2021000000009999" },
		"attach too long": func(q *app.PrepayRequest) { q.Attach = strings.Repeat("你", 100) },
		"no buyer (mini)": func(q *app.PrepayRequest) { q.PayerOpenID = "" },
	} {
		req := r.request(newID("B"), 100)
		edit(&req)
		var err error
		if name == "no buyer (mini)" {
			_, err = r.client.Mini().Prepay(ctxT(t), req)
		} else {
			_, err = r.client.Wap().Prepay(ctxT(t), req)
		}
		if err == nil || errors.Is(err, app.ErrChannelUnavailable) {
			t.Errorf("%s: err = %v, want a refusal", name, err)
		}
	}
	if len(r.sim.Trades()) != 0 {
		t.Errorf("refused prepays reached the simulator: %+v", r.sim.Trades())
	}
}
