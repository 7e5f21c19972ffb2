package alipay_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/payfn/payfn/shared/alipaysim"
	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/channeltest"
)

// harness runs shared/channeltest for one of the client's channels
// against the simulator.
type harness struct {
	r  *rig
	ch app.Channel
}

func (h harness) Channel() app.Channel { return h.ch }

func (h harness) Request(outTradeNo string, fen int64) app.PrepayRequest {
	return h.r.request(outTradeNo, fen)
}

// Pay is the buyer: the cashier page for a wap trade, my.tradePay (the
// simulator's PayTrade) for a mini-program one.
func (h harness) Pay(t testing.TB, _ app.PrepayRequest, p app.Prepaid) {
	t.Helper()
	if p.Payment.PayURL != "" {
		h.r.payWap(t, p.Payment.PayURL)
		return
	}
	if _, err := h.r.sim.PayTrade(ctxT(t), p.Payment.TradeNo, alipaysim.PayOptions{}); err != nil {
		t.Fatalf("PayTrade: %v", err)
	}
}

func (h harness) Notification(t testing.TB, outTradeNo string) (http.Header, []byte) {
	n := h.r.rcv.wait(t, outTradeNo, paid)
	return n.header.Clone(), append([]byte(nil), n.body...)
}

// Tamper raises the amount of a signed notification.
func (h harness) Tamper(header http.Header, body []byte) (http.Header, []byte) {
	form, _ := url.ParseQuery(string(body))
	form.Set("total_amount", "99999.00")
	return header, []byte(form.Encode())
}

// SettleRefunds does nothing: the simulator settles refunds at once.
func (harness) SettleRefunds(testing.TB) {}

func TestConformance(t *testing.T) {
	modes(t, func(t *testing.T, cert bool) {
		r := newRig(t, cert, nil)
		t.Run("Wap", func(t *testing.T) {
			channeltest.Run(t, harness{r, r.client.Wap()}, func() string { return newID("CW") })
		})
		t.Run("Mini", func(t *testing.T) {
			channeltest.Run(t, harness{r, r.client.Mini()}, func() string { return newID("CM") })
		})
	})
}
