package setup_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/alipaysim"
	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/setup"
)

// Bills per provider: WeChat Pay's bill holds only WeChat Pay's money,
// Alipay's only Alipay's, and each is compared with payfn's records of its
// own channels.

// paidChannelOrder buys through channel and waits until the order is PAID.
func paidChannelOrder(t *testing.T, h *harness, c *client, ali *alipaysim.Server, channel, req string) string {
	t.Helper()
	o := c.channelOrder(channel, "buyer-"+req, req).want(t, 201, "")
	payAsBuyer(t, h, ali, channel, o, true)
	id := o.str("order_id")
	c.waitOrder(id, "PAID", false)
	return id
}

// refundAndWait refunds amount of order id through the server API and waits
// until nothing of the order's refunds is pending.
func refundAndWait(t *testing.T, c *client, id, refundID string, amount int64) {
	t.Helper()
	r := c.call(http.MethodPost, "/v1/orders/"+id+"/refunds", map[string]any{"refund_id": refundID, "amount_fen": amount, "reason": "test"})
	if r.status != 201 {
		t.Fatalf("refund %s: %d %s", refundID, r.status, r.raw)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		v := c.call(http.MethodGet, "/v1/orders/"+id, nil)
		refund, _ := v.body["refund"].(map[string]any)
		if p, ok := refund["pending_fen"].(float64); ok && p == 0 && refund["refunded_fen"].(float64) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("refund %s of %s never settled: %s", refundID, id, v.raw)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// TestWeChatBillIgnoresOtherProvidersMoney: an Alipay payment and refund of
// the day are in payfn's ledger and refunds, not in WeChat Pay's bill, and
// are not differences of it (they used to be reported missing_there).
func TestWeChatBillIgnoresOtherProvidersMoney(t *testing.T) {
	h, ali := newChannelsHarness(t, setup.Options{})
	day := billDay(t)
	c := channelShop(t, h, "billmix", 1200)
	wx := paidChannelOrder(t, h, c, ali, app.ChannelWeChatJSAPI, "mix-wx")
	al := paidChannelOrder(t, h, c, ali, app.ChannelAlipayMini, "mix-ali")
	refundAndWait(t, c, wx, "mix-wx-r", 200)
	refundAndWait(t, c, al, "mix-ali-r", 300)

	rep, err := h.stack.App.ReconcileBill(context.Background(), day)
	if err != nil {
		t.Fatalf("reconcile WeChat Pay's bill: %v", err)
	}
	if !rep.Clean || rep.Status != app.BillClean || len(rep.Differences) != 0 || rep.Channel != app.ProviderWeChatPay {
		t.Fatalf("WeChat Pay's bill with an Alipay payment and refund on the day: %s", mustJSON(rep))
	}
	if rep.Rows != 2 || rep.HerePayments != 1 || rep.HereRefunds != 1 {
		t.Errorf("rows %d, here %d payments %d refunds; want 2 rows, 1 and 1 (WeChat Pay's only)", rep.Rows, rep.HerePayments, rep.HereRefunds)
	}
	// The operator names the provider; another name is refused.
	h.admin("GET", "/admin/bills/"+day+"?channel=wechatpay", nil).want(t, 200, "")
	h.admin("GET", "/admin/bills/"+day+"?channel=paypal", nil).want(t, 400, app.CodeInvalidBillChannel)
	if _, err := h.stack.App.ReconcileProviderBill(context.Background(), "paypal", day); app.ErrorOf(err).Code != app.CodeInvalidBillChannel {
		t.Errorf("ReconcileProviderBill(paypal): %v", err)
	}
}
