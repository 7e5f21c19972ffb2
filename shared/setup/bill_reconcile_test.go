package setup_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/setup"
)

// Daily bill reconciliation (issue 14, part 1): the real wechatpay-go
// channel downloads the simulator's bill, and the job compares it with the
// embedded store.

var chinaTime = time.FixedZone("CST", 8*3600)

// billDay is today in China time, the day of the trades a test makes; a
// test too close to midnight there would straddle two bills, so it waits.
func billDay(t *testing.T) string {
	t.Helper()
	now := time.Now().In(chinaTime)
	if midnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, chinaTime); midnight.Sub(now) < time.Minute {
		time.Sleep(midnight.Sub(now) + time.Second)
		now = time.Now().In(chinaTime)
	}
	return now.Format(time.DateOnly)
}

// diffKey is a difference as a test names it.
type diffKey struct{ kind, outcome, ref string }

func keysOf(r app.BillReport) []diffKey {
	var ks []diffKey
	for _, d := range r.Differences {
		ref := d.TransactionID
		if strings.HasPrefix(d.Kind, "refund_") {
			ref = d.OutRefundNo
		}
		ks = append(ks, diffKey{d.Kind, d.Outcome, ref})
	}
	slices.SortFunc(ks, func(a, b diffKey) int { return strings.Compare(a.kind+a.ref, b.kind+b.ref) })
	return ks
}

// paidUnnotified buys a latte that WeChat Pay takes without telling payfn.
func (h *harness) paidUnnotified(token string) (string, paysim.PaidTrade) {
	h.t.Helper()
	id := h.createOrder(token, "latte", 1)
	prepayID, _ := h.pay(token, id)
	paid, err := h.sim.Pay(context.Background(), prepayID, paysim.PayOptions{NoNotify: true})
	if err != nil {
		h.t.Fatal(err)
	}
	return id, paid
}

func (h *harness) txOf(orderID string) string {
	h.t.Helper()
	st, ok := h.sim.Trade(orderID)
	if !ok {
		h.t.Fatalf("no trade %s at the simulator", orderID)
	}
	return st.TransactionID
}

func TestBillWithEveryKindOfDifferenceIsRepairedOrReportedExactlyOnce(t *testing.T) {
	h := newHarness(t)
	day := billDay(t)
	ctx := context.Background()
	token := h.login("o-bill")

	clean := h.paidOrder(token, 1)
	lost, lostPaid := h.paidUnnotified(token) // missing here: repaired by query
	amount := h.paidOrder(token, 1)           // the bill says another amount
	dropped := h.paidOrder(token, 1)          // the bill lacks it
	undecided, undecidedPaid := h.paidUnnotified(token)
	// The ledger row was written, then the function died before the
	// order: the bill has the payment, the order does not show it.
	err := h.stack.Store.RecordPayment(ctx, order.Payment{
		TransactionID: undecidedPaid.TransactionID, OutTradeNo: undecided, AppID: testAppID, MchID: testMchID,
		TradeState: "SUCCESS", TotalFen: 2800, PayerTotalFen: 2800, Currency: "CNY", PayerOpenID: "o-bill",
		SuccessTime: undecidedPaid.SuccessTime.UTC(), Source: "notification", Matched: true,
		RecordedAt: time.Now().UTC().Truncate(time.Millisecond), Disposition: order.DispositionPending,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Refunds: one WeChat Pay settled without telling payfn, one the bill
	// gives another amount, one the bill lacks.
	refundOrder := h.paidOrder(token, 3)
	h.sim.SetRefundBehaviour(paysim.RefundBehaviour{NoNotify: true})
	h.refund(refundOrder, "RB-silent", 1000).want(t, 201, "")
	h.waitSimRefunds([]string{"RB-silent"}, paysim.RefundSuccess)
	h.sim.SetRefundBehaviour(paysim.RefundBehaviour{})
	h.refund(refundOrder, "RB-amount", 500).want(t, 201, "")
	h.waitRefund("RB-amount", order.RefundSucceeded)
	h.refund(refundOrder, "RB-dropped", 700).want(t, 201, "")
	h.waitRefund("RB-dropped", order.RefundSucceeded)

	amountTx, droppedTx := h.txOf(amount), h.txOf(dropped)
	h.sim.SetBillEdit(func(r *paysim.BillRow) bool {
		switch {
		case r.TradeState == "SUCCESS" && r.TransactionID == amountTx:
			r.TotalFen, r.SettlementFen = r.TotalFen+1, r.SettlementFen+1
		case r.TradeState == "SUCCESS" && r.TransactionID == droppedTx:
			return false
		case r.OutRefundNo == "RB-amount":
			r.RefundFen, r.RefundAskFen = 400, 400
		case r.OutRefundNo == "RB-dropped":
			return false
		}
		return true
	})
	// Rows of money payfn never handled: a payment of an order it does not
	// know, and a refund made in the merchant portal.
	when := time.Now()
	h.sim.AddBillRows(day, 2, func(i int) paysim.BillRow {
		r := paysim.BillRow{Time: when, AppID: testAppID, MchID: testMchID, TradeType: "JSAPI", BankType: "OTHERS", Currency: "CNY"}
		if i == 0 {
			r.TransactionID, r.OutTradeNo, r.TradeState, r.SettlementFen, r.TotalFen = "4200000000202612019999999999", "ELSEWHERE0001", "SUCCESS", 990, 990
		} else {
			r.TransactionID, r.OutTradeNo, r.TradeState = h.txOf(clean), clean, "REFUND"
			r.RefundID, r.OutRefundNo, r.RefundFen, r.RefundAskFen, r.RefundType, r.RefundStatus = "50300000000001", "PORTAL-1", 100, 100, "ORIGINAL", "SUCCESS"
		}
		return r
	})

	if got := h.order(lost).Status; got != order.StatusNotPay {
		t.Fatalf("before: lost payment's order is %s", got)
	}
	rep, err := h.stack.App.ReconcileBill(ctx, day)
	if err != nil {
		t.Fatalf("reconcile bill: %v (report %+v)", err, rep)
	}
	want := []diffKey{
		{app.BillAmountDiffers, app.OutcomeReported, amountTx},
		{app.BillMissingHere, app.OutcomeReported, "4200000000202612019999999999"},
		{app.BillMissingHere, app.OutcomeRepaired, lostPaid.TransactionID},
		{app.BillMissingThere, app.OutcomeReported, droppedTx},
		{app.BillRefundAmountDiffers, app.OutcomeReported, "RB-amount"},
		{app.BillRefundMissingHere, app.OutcomeReported, "PORTAL-1"},
		{app.BillRefundMissingThere, app.OutcomeReported, "RB-dropped"},
		{app.BillRefundStatusDiffers, app.OutcomeRepaired, "RB-silent"},
		{app.BillStatusDiffers, app.OutcomeRepaired, undecidedPaid.TransactionID},
	}
	slices.SortFunc(want, func(a, b diffKey) int { return strings.Compare(a.kind+a.ref, b.kind+b.ref) })
	if got := keysOf(rep); !slices.Equal(got, want) {
		t.Fatalf("differences:\n got  %v\n want %v\nreport %s", got, want, mustJSON(rep))
	}
	if rep.Status != app.BillDifferences || rep.Clean || rep.Rows != 9 || rep.PaymentRows != 6 || rep.RefundRows != 3 {
		t.Errorf("report %s: status %s clean %v rows %d (%d payments, %d refunds), want differences, 9 rows (6, 3)", day, rep.Status, rep.Clean, rep.Rows, rep.PaymentRows, rep.RefundRows)
	}
	// Here, after the repairs: six payments (the lost one now recorded) and
	// three refunds.
	if rep.BillTotals.Rows != 9 || rep.HerePayments != 6 || rep.HereRefunds != 3 {
		t.Errorf("totals %+v, here %d payments %d refunds; want 9 rows, 6 and 3", rep.BillTotals, rep.HerePayments, rep.HereRefunds)
	}
	// The repairs took: the orders are paid, the refund decided.
	for _, id := range []string{lost, undecided} {
		if o := h.order(id); o.Status != order.StatusPaid {
			t.Errorf("order %s is %s after the repair, want PAID", id, o.Status)
		}
	}
	if r := h.storedRefund("RB-silent"); r.Status != order.RefundSucceeded {
		t.Errorf("refund RB-silent is %s after the repair, want REFUNDED", r.Status)
	}
	t.Logf("report: %s", mustJSON(rep))
	claimsBefore := len(h.claims(lost)) + len(h.claims(undecided))

	// Again: the same report, nothing repaired twice.
	again, err := h.stack.App.ReconcileBill(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	if !sameReport(rep, again) {
		t.Errorf("second run differs:\n first  %s\n second %s", mustJSON(rep), mustJSON(again))
	}
	if again.Runs != 2 {
		t.Errorf("runs %d, want 2", again.Runs)
	}
	if n := len(h.claims(lost)) + len(h.claims(undecided)); n != claimsBefore {
		t.Errorf("claims %d after the second run, %d before", n, claimsBefore)
	}
	for _, id := range []string{lost, undecided} {
		if ps := h.ledger(id); len(ps) != 1 {
			t.Errorf("order %s has %d ledger rows, want 1", id, len(ps))
		}
	}

	// The operator reads it.
	r := h.admin("GET", "/admin/bills/"+day, nil).want(t, 200, "")
	if r.str("status") != app.BillDifferences || r.str("bill_date") != day {
		t.Errorf("GET /admin/bills/%s: %s", day, r.raw)
	}
	if diffs, _ := r.body["differences"].([]any); len(diffs) != len(want) {
		t.Errorf("GET /admin/bills/%s lists %d differences, want %d", day, len(diffs), len(want))
	}
	h.admin("GET", "/admin/bills/2020-01-01", nil).want(t, 404, app.CodeBillReportNotFound)
	h.admin("GET", "/admin/bills/yesterday", nil).want(t, 400, app.CodeInvalidBillDate)
	req, _ := http.NewRequest(http.MethodGet, h.url+"/admin/bills/"+day, nil)
	if r := do(t, req); r.status != 401 || r.str("code") != app.CodeAdminUnauthorized {
		t.Errorf("without the admin key: %d %s", r.status, r.raw)
	}
}

// sameReport compares what a run found and did, not when it ran.
func sameReport(a, b app.BillReport) bool {
	a.Runs, b.Runs = 0, 0
	a.UpdatedAt, b.UpdatedAt = time.Time{}, time.Time{}
	a.DurationMS, b.DurationMS = 0, 0
	a.CreatedAt, b.CreatedAt = a.CreatedAt.UTC(), b.CreatedAt.UTC()
	return mustJSON(a) == mustJSON(b)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestCleanBillDaySaysSo(t *testing.T) {
	h := newHarness(t)
	day := billDay(t)
	token := h.login("o-clean")
	id := h.paidOrder(token, 2)
	h.refund(id, "RC-1", 100).want(t, 201, "")
	h.waitRefund("RC-1", order.RefundSucceeded)
	rep, err := h.stack.App.ReconcileBill(context.Background(), day)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean || rep.Status != app.BillClean || len(rep.Differences) != 0 || rep.Rows != 2 || rep.HerePayments != 1 || rep.HereRefunds != 1 {
		t.Fatalf("clean day: %s", mustJSON(rep))
	}
	r := h.admin("GET", "/admin/bills/"+day, nil).want(t, 200, "")
	if r.body["clean"] != true || r.str("status") != "clean" {
		t.Errorf("GET: %s", r.raw)
	}

	// A day without any trade: WeChat Pay has no bill (NO_STATEMENT_EXIST),
	// payfn has nothing either: clean.
	empty := time.Now().In(chinaTime).AddDate(0, 0, -3).Format(time.DateOnly)
	rep, err = h.stack.App.ReconcileBill(context.Background(), empty)
	if err != nil || !rep.Clean || rep.Rows != 0 {
		t.Fatalf("empty day: %v %s", err, mustJSON(rep))
	}
}

func TestBillWithAWrongDigestFailsLoudlyAndComparesNothing(t *testing.T) {
	var logs syncBuffer
	h := newHarnessWith(t, setup.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	day := billDay(t)
	token := h.login("o-digest")
	lost, _ := h.paidUnnotified(token) // a difference the run must not repair
	h.paidOrder(token, 1)
	h.sim.SetBillFaults(paysim.BillFaults{WrongDigest: true})

	rep, err := h.stack.App.ReconcileBill(context.Background(), day)
	if err == nil || !errors.Is(err, app.ErrBillDigest) {
		t.Fatalf("err %v, want ErrBillDigest", err)
	}
	if rep.Status != app.BillDownloadFailed || rep.Clean || len(rep.Differences) != 0 || !strings.Contains(rep.Error, "SHA1") {
		t.Fatalf("report %s, want download_failed with nothing compared", mustJSON(rep))
	}
	if o := h.order(lost); o.Status != order.StatusNotPay {
		t.Errorf("a tampered bill repaired order %s to %s", lost, o.Status)
	}
	if !strings.Contains(logs.String(), `"level":"ERROR","msg":"bill reconciliation failed"`) {
		t.Errorf("no error-level line for the failed bill; logs:\n%s", logs.String())
	}
	stored := h.admin("GET", "/admin/bills/"+day, nil).want(t, 200, "")
	if stored.str("status") != app.BillDownloadFailed {
		t.Errorf("stored report: %s", stored.raw)
	}

	// The job fails the same way, and the next good download repairs.
	h.sim.SetBillFaults(paysim.BillFaults{})
	rep, err = h.stack.App.ReconcileBill(context.Background(), day)
	if err != nil || rep.Status != app.BillDifferences || len(rep.Differences) != 1 || rep.Differences[0].Outcome != app.OutcomeRepaired {
		t.Fatalf("after the fault: %v %s", err, mustJSON(rep))
	}
}

func TestBillJobTakesUpYesterdayAndDaysNotFinal(t *testing.T) {
	h := newHarness(t)
	h.sim.SetBillFaults(paysim.BillFaults{NotReady: true})
	rep, err := h.stack.App.ReconcileBills(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	yesterday := time.Now().In(chinaTime).AddDate(0, 0, -1).Format(time.DateOnly)
	if len(rep.Sweeps) != 1 || rep.Sweeps[0].Name != "bill:"+yesterday {
		t.Fatalf("job report %s", mustJSON(rep))
	}
	h.admin("GET", "/admin/bills/"+yesterday, nil).want(t, 200, "")
	// Not ready yesterday, so the next run takes it up again; once clean
	// it is left alone.
	h.sim.SetBillFaults(paysim.BillFaults{})
	rep, err = h.stack.App.ReconcileBills(context.Background())
	if err != nil || len(rep.Sweeps) != 1 || !rep.Complete {
		t.Fatalf("second run: %v %s", err, mustJSON(rep))
	}
	rep, err = h.stack.App.ReconcileBills(context.Background())
	if err != nil || len(rep.Sweeps) != 0 {
		t.Fatalf("third run: %v %s", err, mustJSON(rep))
	}
}
