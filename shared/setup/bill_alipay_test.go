package setup_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/alipaysim"
	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
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

// unpaidHere buys through channel and pays at Alipay without a
// notification: paid there, NOTPAY here.
func unpaidHere(t *testing.T, h *harness, c *client, ali *alipaysim.Server, channel, req string) string {
	t.Helper()
	o := c.channelOrder(channel, "buyer-"+req, req).want(t, 201, "")
	payAsBuyer(t, h, ali, channel, o, false)
	return o.str("order_id")
}

func aliTrade(t *testing.T, ali *alipaysim.Server, id string) alipaysim.TradeState {
	t.Helper()
	tr, ok := ali.Trade(id)
	if !ok {
		t.Fatalf("no Alipay trade %s", id)
	}
	return tr
}

// TestAlipayBillWithEveryKindOfDifferenceIsRepairedOrReportedExactlyOnce is
// issue 14's bill test for Alipay: the real Alipay client downloads
// alipaysim's bill (a ZIP of GBK CSV), and each kind of difference is
// repaired by the usual claims (through the order's Alipay channel) or
// reported, once; a WeChat Pay payment of the day is not Alipay's.
func TestAlipayBillWithEveryKindOfDifferenceIsRepairedOrReportedExactlyOnce(t *testing.T) {
	h, ali := newChannelsHarness(t, setup.Options{})
	day := billDay(t)
	ctx := context.Background()
	c := channelShop(t, h, "alibill", 1500)
	mini, wap := app.ChannelAlipayMini, app.ChannelAlipayWap

	clean := paidChannelOrder(t, h, c, ali, mini, "ab-clean")
	paidChannelOrder(t, h, c, ali, wap, "ab-wap")
	paidChannelOrder(t, h, c, ali, app.ChannelWeChatJSAPI, "ab-wechat") // WeChat Pay's, not in Alipay's bill
	lost := unpaidHere(t, h, c, ali, mini, "ab-lost")                   // missing here: repaired by query
	amount := paidChannelOrder(t, h, c, ali, mini, "ab-amount")         // the bill says another amount
	dropped := paidChannelOrder(t, h, c, ali, wap, "ab-dropped")        // the bill lacks it
	undecided := unpaidHere(t, h, c, ali, mini, "ab-undecided")
	// The ledger row was written, then the function died before the order.
	ut := aliTrade(t, ali, undecided)
	err := h.stack.Store.RecordPayment(ctx, order.Payment{
		TransactionID: ut.TradeNo, App: "alibill", OutTradeNo: undecided, Channel: mini, AppID: testAlipayAppID, MchID: ali.Keys().SellerID,
		TradeState: "SUCCESS", TotalFen: 1500, PayerTotalFen: 1500, Currency: "CNY", SuccessTime: ut.PaidAt.UTC(), Source: "notification",
		Matched: true, RecordedAt: time.Now().UTC().Truncate(time.Millisecond), Disposition: order.DispositionPending,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Refunds: one the bill gives another amount, one it lacks, and one
	// Alipay settled without telling payfn (still REFUNDING here).
	refunded := paidChannelOrder(t, h, c, ali, mini, "ab-refunds")
	refundAndWait(t, c, refunded, "ab-r-amount", 300)
	refundAndWait(t, c, refunded, "ab-r-dropped", 200)
	ali.SetFaults(alipaysim.Faults{AsyncRefunds: true, DropNotifications: true})
	if r := c.call(http.MethodPost, "/v1/orders/"+refunded+"/refunds", map[string]any{"refund_id": "ab-r-silent", "amount_fen": 500, "reason": "test"}); r.status != 201 {
		t.Fatalf("refund: %d %s", r.status, r.raw)
	}
	refundNo := map[int64]string{}
	for _, r := range ali.Refunds(refunded) {
		refundNo[r.AmountFen] = r.OutRequestNo
	}
	amountRefund, droppedRefund, silentRefund := refundNo[300], refundNo[200], refundNo[500]
	if err := ali.SettleRefund(refunded, silentRefund); err != nil {
		t.Fatal(err)
	}
	ali.SetFaults(alipaysim.Faults{})
	if r := h.storedRefund(silentRefund); r.Status != order.RefundPending {
		t.Fatalf("the silent refund is %s here before the bill, want REFUNDING", r.Status)
	}

	amountTx, droppedTx, cleanTx := aliTrade(t, ali, amount).TradeNo, aliTrade(t, ali, dropped).TradeNo, aliTrade(t, ali, clean).TradeNo
	ali.SetBillEdit(func(r *alipaysim.BillRow) bool {
		switch {
		case r.Type == alipaysim.BillTrade && r.TradeNo == amountTx:
			r.AmountFen, r.ReceivedFen = r.AmountFen+1, r.ReceivedFen+1
		case r.Type == alipaysim.BillTrade && r.TradeNo == droppedTx:
			return false
		case r.OutRequestNo == amountRefund:
			r.AmountFen, r.ReceivedFen = 250, 250
		case r.OutRequestNo == droppedRefund:
			return false
		}
		return true
	})
	// Money payfn never handled: a payment of an order it does not know,
	// and a refund made in Alipay's merchant portal.
	const elsewhere = "2026120122001499999999999999"
	when := time.Now()
	ali.AddBillRows(day, 2, func(i int) alipaysim.BillRow {
		if i == 0 {
			return alipaysim.BillRow{TradeNo: elsewhere, OutTradeNo: "ELSEWHERE0001", Type: alipaysim.BillTrade, Subject: "门店收款",
				CreatedAt: when, FinishedAt: when, AmountFen: 990, ReceivedFen: 990}
		}
		return alipaysim.BillRow{TradeNo: cleanTx, OutTradeNo: clean, Type: alipaysim.BillRefund, Subject: "Product tea",
			CreatedAt: when, FinishedAt: when, AmountFen: 100, ReceivedFen: 100, OutRequestNo: "PORTAL-1"}
	})

	rep, err := h.stack.App.ReconcileProviderBill(ctx, app.ProviderAlipay, day)
	if err != nil {
		t.Fatalf("reconcile Alipay's bill: %v (report %s)", err, mustJSON(rep))
	}
	want := []diffKey{
		{app.BillAmountDiffers, app.OutcomeReported, amountTx},
		{app.BillMissingHere, app.OutcomeReported, elsewhere},
		{app.BillMissingHere, app.OutcomeRepaired, aliTrade(t, ali, lost).TradeNo},
		{app.BillMissingThere, app.OutcomeReported, droppedTx},
		{app.BillRefundAmountDiffers, app.OutcomeReported, amountRefund},
		{app.BillRefundMissingHere, app.OutcomeReported, "PORTAL-1"},
		{app.BillRefundMissingThere, app.OutcomeReported, droppedRefund},
		{app.BillRefundStatusDiffers, app.OutcomeRepaired, silentRefund},
		{app.BillStatusDiffers, app.OutcomeRepaired, ut.TradeNo},
	}
	slices.SortFunc(want, func(a, b diffKey) int { return strings.Compare(a.kind+a.ref, b.kind+b.ref) })
	if got := keysOf(rep); !slices.Equal(got, want) {
		t.Fatalf("differences:\n got  %v\n want %v\nreport %s", got, want, mustJSON(rep))
	}
	// In the bill: 7 payments (clean, wap, lost, amount, undecided,
	// refunded, elsewhere) and 3 refunds (amount, silent, portal). Here
	// after the repairs: 7 payments (the dropped one, the lost one now
	// recorded; not the WeChat Pay one) and 3 refunds.
	if rep.Status != app.BillDifferences || rep.Clean || rep.Channel != app.ProviderAlipay || rep.Rows != 10 || rep.PaymentRows != 7 ||
		rep.RefundRows != 3 || rep.BillTotals.Rows != 10 || rep.HerePayments != 7 || rep.HereRefunds != 3 {
		t.Errorf("report: %s", mustJSON(rep))
	}
	for _, id := range []string{lost, undecided} {
		if o := h.order(id); o.Status != order.StatusPaid {
			t.Errorf("order %s is %s after the repair, want PAID", id, o.Status)
		}
	}
	if r := h.storedRefund(silentRefund); r.Status != order.RefundSucceeded {
		t.Errorf("refund %s is %s after the repair, want REFUNDED", silentRefund, r.Status)
	}
	claimsBefore := len(h.claims(lost)) + len(h.claims(undecided))

	// Again: the same report, nothing repaired twice.
	again, err := h.stack.App.ReconcileProviderBill(ctx, app.ProviderAlipay, day)
	if err != nil {
		t.Fatal(err)
	}
	if !sameReport(rep, again) || again.Runs != 2 {
		t.Errorf("second run differs:\n first  %s\n second %s", mustJSON(rep), mustJSON(again))
	}
	if n := len(h.claims(lost)) + len(h.claims(undecided)); n != claimsBefore {
		t.Errorf("claims %d after the second run, %d before", n, claimsBefore)
	}

	// WeChat Pay's bill of the day is clean: Alipay's money is not in it.
	wx, err := h.stack.App.ReconcileBill(ctx, day)
	if err != nil || !wx.Clean || wx.HerePayments != 1 {
		t.Errorf("WeChat Pay's bill: %v %s", err, mustJSON(wx))
	}

	// The operator reads each.
	r := h.admin("GET", "/admin/bills/"+day+"?channel=alipay", nil).want(t, 200, "")
	if r.str("status") != app.BillDifferences || r.str("channel") != "alipay" {
		t.Errorf("GET ?channel=alipay: %s", r.raw)
	}
	if diffs, _ := r.body["differences"].([]any); len(diffs) != len(want) {
		t.Errorf("GET ?channel=alipay lists %d differences, want %d", len(diffs), len(want))
	}
	if r := h.admin("GET", "/admin/bills/"+day, nil).want(t, 200, ""); r.str("channel") != "wechatpay" || r.body["clean"] != true {
		t.Errorf("GET (WeChat Pay): %s", r.raw)
	}
}

// TestBillJobTakesUpEachProvidersBill: the daily job reconciles yesterday
// for WeChat Pay and Alipay, each its own report; a corrupt Alipay archive
// fails loudly and compares nothing.
func TestBillJobTakesUpEachProvidersBill(t *testing.T) {
	h, ali := newChannelsHarness(t, setup.Options{})
	rep, err := h.stack.App.ReconcileBills(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	yesterday := time.Now().In(chinaTime).AddDate(0, 0, -1).Format(time.DateOnly)
	var names []string
	for _, sw := range rep.Sweeps {
		names = append(names, sw.Name)
	}
	if !slices.Equal(names, []string{"bill:" + yesterday, "bill:alipay:" + yesterday}) {
		t.Fatalf("sweeps %v: %s", names, mustJSON(rep))
	}
	h.admin("GET", "/admin/bills/"+yesterday+"?channel=alipay", nil).want(t, 200, "")

	day := billDay(t)
	c := channelShop(t, h, "alijob", 800)
	lost := unpaidHere(t, h, c, ali, app.ChannelAlipayMini, "aj-lost")
	ali.SetBillFaults(alipaysim.BillFaults{CorruptData: true})
	br, err := h.stack.App.ReconcileProviderBill(context.Background(), app.ProviderAlipay, day)
	if err == nil || br.Status != app.BillDownloadFailed || len(br.Differences) != 0 {
		t.Fatalf("corrupt archive: %v %s", err, mustJSON(br))
	}
	if o := h.order(lost); o.Status != order.StatusNotPay {
		t.Errorf("a corrupt bill repaired order %s to %s", lost, o.Status)
	}
	ali.SetBillFaults(alipaysim.BillFaults{})
	br, err = h.stack.App.ReconcileProviderBill(context.Background(), app.ProviderAlipay, day)
	if err != nil || len(br.Differences) != 1 || br.Differences[0].Outcome != app.OutcomeRepaired {
		t.Fatalf("after the fault: %v %s", err, mustJSON(br))
	}
}
