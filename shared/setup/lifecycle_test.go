package setup_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/payfn/payfn/shared/config"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/runtime/awslambda"
	"github.com/payfn/payfn/shared/setup"
)

// fakeClock is the app's clock, moved by tests; WeChat Pay's simulator and
// the SDK keep real time.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func clockedHarness(t *testing.T) (*harness, *fakeClock) {
	t.Helper()
	clock := &fakeClock{now: time.Now()}
	h := newHarnessWith(t, setup.Options{Now: clock.Now}, func(c *config.Config) { c.SessionTTL = 24 * time.Hour })
	return h, clock
}

// refund calls the merchant's refund function with the admin key.
func (h *harness) refund(orderID, no string, amount int64) reply {
	h.t.Helper()
	return h.refundAs("X-Payfn-Admin-Key", testAdminKey, fmt.Sprintf(`{"order_id":%q,"out_refund_no":%q,"amount_fen":%d}`, orderID, no, amount))
}

func (h *harness) refundAs(header, value, body string) reply {
	h.t.Helper()
	hdr := http.Header{"Content-Type": {"application/json"}}
	if header != "" {
		hdr.Set(header, value)
	}
	return h.sendWith("/admin/refund", hdr, body)
}

// paidOrder buys qty lattes and waits until the order is PAID.
func (h *harness) paidOrder(token string, qty int) string {
	h.t.Helper()
	id := h.createOrder(token, "latte", qty)
	prepayID, _ := h.pay(token, id)
	if _, err := h.sim.Pay(context.Background(), prepayID, paysim.PayOptions{}); err != nil {
		h.t.Fatal(err)
	}
	h.waitAcked(id)
	return id
}

func (h *harness) storedRefund(no string) order.Refund {
	h.t.Helper()
	r, err := h.stack.Store.Refund(context.Background(), no)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

func (h *harness) waitRefund(no string, want order.RefundStatus) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.sim.WaitAcked(ctx, no); err != nil {
		h.t.Fatalf("refund notification for %s never acknowledged: %v %+v", no, err, h.sim.Deliveries(no))
	}
	if got := h.storedRefund(no).Status; got != want {
		h.t.Fatalf("refund %s is %s, want %s", no, got, want)
	}
}

func TestExpiredOrdersAreClosedAtWeChatPayThenLocallyOnce(t *testing.T) {
	h, clock := clockedHarness(t)
	token := h.login("o-buyer")
	prepaid := h.createOrder(token, "latte", 1)
	h.pay(token, prepaid)
	neverPrepaid := h.createOrder(token, "latte", 1)

	clock.Advance(31 * time.Minute)
	young := h.createOrder(token, "latte", 1) // created now: not expired
	rep, err := h.stack.App.CloseExpired(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Examined != 2 || len(rep.Fixes) != 2 || rep.Failures != 0 {
		t.Fatalf("report %+v, want 2 examined and closed", rep)
	}
	for _, id := range []string{prepaid, neverPrepaid} {
		if got := h.order(id).Status; got != order.StatusClosed {
			t.Errorf("%s is %s, want CLOSED", id, got)
		}
	}
	if tr, _ := h.sim.Trade(prepaid); tr.TradeState != paysim.StateClosed {
		t.Errorf("WeChat Pay still has %s as %s", prepaid, tr.TradeState)
	}
	if h.order(young).Status != order.StatusNotPay {
		t.Error("an order that had not expired was closed")
	}
	again, err := h.stack.App.CloseExpired(context.Background())
	if err != nil || again.Examined != 0 {
		t.Fatalf("second run examined %d (%v), want 0", again.Examined, err)
	}
	h.postJSON("/pay", token, map[string]string{"order_id": prepaid}).want(t, 409, "ORDER_NOT_PAYABLE")
	claims, _ := h.stack.Store.Claims(context.Background(), prepaid)
	if len(claims) != 1 {
		t.Fatalf("%d claims, want 1", len(claims))
	}
}

func TestExpiryOfAnOrderPaidWithoutNotificationEndsPaidNotClosed(t *testing.T) {
	h, clock := clockedHarness(t)
	token := h.login("o-buyer")
	id := h.createOrder(token, "latte", 1)
	prepayID, _ := h.pay(token, id)
	if _, err := h.sim.Pay(context.Background(), prepayID, paysim.PayOptions{NoNotify: true}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(31 * time.Minute)
	rep, err := h.stack.App.CloseExpired(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Fixes) != 1 || rep.Fixes[0].To != "PAID" {
		t.Fatalf("report %+v, want the order fixed to PAID", rep)
	}
	if h.order(id).Status != order.StatusPaid || len(h.ledger(id)) != 1 {
		t.Fatal("order not PAID with one ledger row")
	}
}

func TestExpiryRacingPaymentNotificationsDecidesOnce(t *testing.T) {
	h, clock := clockedHarness(t)
	token := h.login("o-buyer")
	id := h.createOrder(token, "latte", 1)
	prepayID, _ := h.pay(token, id)
	paid, err := h.sim.Pay(context.Background(), prepayID, paysim.PayOptions{NoNotify: true})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(31 * time.Minute)
	tx := h.paidTx(id, "o-buyer", 2800)
	tx.TransactionID = paid.TransactionID
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(2)
		go func() { defer wg.Done(); h.stack.App.CloseExpired(context.Background()) }()
		go func() {
			defer wg.Done()
			if s, body := h.notify(tx, paysim.NotifyOptions{}); s != 200 {
				t.Errorf("notification answered %d %s", s, body)
			}
		}()
	}
	wg.Wait()
	claims, _ := h.stack.Store.Claims(context.Background(), id)
	if h.order(id).Status != order.StatusPaid || len(h.ledger(id)) != 1 || len(claims) != 1 {
		t.Fatalf("status %s, ledger %d, claims %d; want PAID, 1, 1", h.order(id).Status, len(h.ledger(id)), len(claims))
	}
}

// closeLocally records a local close decision the way a close that raced
// a payment would have.
func (h *harness) closeLocally(id string) {
	h.t.Helper()
	c := order.Claim{Key: order.SettleKey(id), OrderID: id, Status: order.StatusClosed, Reason: "test", DecidedAt: time.Now()}
	if _, won, err := h.stack.Store.Claim(context.Background(), c); err != nil || !won {
		h.t.Fatalf("claim: %v won=%v", err, won)
	}
	if err := h.stack.Store.ApplyClaim(context.Background(), c); err != nil {
		h.t.Fatal(err)
	}
}

func TestPaymentForALocallyClosedOrderIsNeverDropped(t *testing.T) {
	h := newHarness(t)
	token := h.login("o-buyer")

	// WeChat Pay confirms the payment: the order is reopened as PAID.
	confirmed := h.createOrder(token, "latte", 1)
	prepayID, _ := h.pay(token, confirmed)
	paid, err := h.sim.Pay(context.Background(), prepayID, paysim.PayOptions{NoNotify: true})
	if err != nil {
		t.Fatal(err)
	}
	h.closeLocally(confirmed)
	tx := h.paidTx(confirmed, "o-buyer", 2800)
	tx.TransactionID = paid.TransactionID
	for i := 0; i < 3; i++ { // and its duplicates change nothing more
		if s, body := h.notify(tx, paysim.NotifyOptions{}); s != 200 {
			t.Fatalf("answered %d %s", s, body)
		}
	}
	if o := h.order(confirmed); o.Status != order.StatusPaid || o.TransactionID != paid.TransactionID {
		t.Fatalf("order %+v, want PAID by %s", o, paid.TransactionID)
	}
	if l := h.ledger(confirmed); len(l) != 1 {
		t.Fatalf("ledger has %d rows", len(l))
	}

	// WeChat Pay does not confirm it: recorded in the ledger, order stays
	// closed, and the notification is not acknowledged so it comes again.
	unconfirmed := h.createOrder(token, "latte", 1)
	h.pay(token, unconfirmed)
	h.closeLocally(unconfirmed)
	if s, body := h.notify(h.paidTx(unconfirmed, "o-buyer", 2800), paysim.NotifyOptions{}); s != 503 {
		t.Fatalf("answered %d %s, want 503", s, body)
	}
	if h.order(unconfirmed).Status != order.StatusClosed || len(h.ledger(unconfirmed)) != 1 {
		t.Fatalf("unconfirmed late payment: status %s, ledger %d; want CLOSED, 1", h.order(unconfirmed).Status, len(h.ledger(unconfirmed)))
	}
}

func TestRefundsAreIdempotentAndNeverExceedWhatWasPaid(t *testing.T) {
	h := newHarness(t)
	token := h.login("o-buyer")
	id := h.paidOrder(token, 2) // 5600 fen

	first := h.refund(id, "RF-1", 2000).want(t, 201, "")
	if first.str("status") != "REFUNDING" && first.str("status") != "REFUNDED" {
		t.Fatalf("refund answered %s", first.raw)
	}
	h.waitRefund("RF-1", order.RefundSucceeded)
	h.refund(id, "RF-1", 2000).want(t, 200, "")
	h.refund(id, "RF-1", 2500).want(t, 409, "IDEMPOTENCY_CONFLICT")
	h.refund(id, "RF-2", 3601).want(t, 409, "REFUND_EXCEEDS_PAID")
	h.refund(id, "RF-2", 3600).want(t, 201, "")
	h.waitRefund("RF-2", order.RefundSucceeded)
	h.refund(id, "RF-3", 1).want(t, 409, "REFUND_EXCEEDS_PAID")

	q := h.query(token, id).want(t, 200, "")
	ref, _ := q.body["refund"].(map[string]any)
	if ref["refunded_fen"] != float64(5600) || ref["refund_status"] != "REFUNDED" || q.str("status") != "PAID" {
		t.Fatalf("queryOrder = %s", q.raw)
	}
	if st, amt, _ := h.sim.RefundState("RF-2"); st != paysim.RefundSuccess || amt != 3600 {
		t.Fatalf("WeChat Pay has RF-2 %s %d", st, amt)
	}
}

func TestConcurrentRefundsNeverExceedThePaidTotal(t *testing.T) {
	h := newHarness(t)
	token := h.login("o-buyer")
	id := h.paidOrder(token, 2)                                  // 5600 fen
	h.sim.SetRefundBehaviour(paysim.RefundBehaviour{Hold: true}) // all stay in flight
	const tries = 20
	statuses := make(chan int, tries)
	var wg sync.WaitGroup
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- h.refund(id, fmt.Sprintf("RC-%d", i), 1000).status
		}()
	}
	wg.Wait()
	close(statuses)
	admitted := 0
	for s := range statuses {
		switch s {
		case 201:
			admitted++
		case 409:
		default:
			t.Errorf("a refund answered %d", s)
		}
	}
	refunds, err := h.stack.Store.Refunds(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, r := range refunds {
		sum += r.AmountFen
	}
	if admitted != 5 || len(refunds) != 5 || sum != 5000 {
		t.Fatalf("admitted %d, stored %d refunds totalling %d; want 5, 5, 5000 of 5600", admitted, len(refunds), sum)
	}
}

func TestRefundOutcomeIsDecidedOnceAndForgeriesChangeNothing(t *testing.T) {
	h := newHarness(t)
	token := h.login("o-buyer")
	id := h.paidOrder(token, 1)
	h.sim.SetRefundBehaviour(paysim.RefundBehaviour{Hold: true})
	h.refund(id, "RD-1", 2800).want(t, 201, "")
	if got := h.storedRefund("RD-1").Status; got != order.RefundPending {
		t.Fatalf("refund is %s while WeChat Pay is still processing", got)
	}
	res := paysim.RefundResource{MchID: testMchID, OutTradeNo: id, OutRefundNo: "RD-1", RefundID: "50000000000000000000000000001", RefundStatus: "SUCCESS", SuccessTime: time.Now().Format(time.RFC3339)}
	res.Amount.Total, res.Amount.Refund = 2800, 2800
	deliver := func(opts paysim.NotifyOptions, mutate func(*paysim.RefundResource)) int {
		r := res
		if mutate != nil {
			mutate(&r)
		}
		hdr, body, err := h.sim.BuildRefundNotification(r, opts)
		if err != nil {
			t.Fatal(err)
		}
		s, err := h.sim.Deliver(context.Background(), h.url+"/notify/wechatpay/refund", hdr, body)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for name, c := range map[string]struct {
		opts   paysim.NotifyOptions
		mutate func(*paysim.RefundResource)
		status int
	}{
		"signed by another key": {paysim.NotifyOptions{SignWith: otherKey}, nil, 401},
		"stale":                 {paysim.NotifyOptions{TimestampShift: -301 * time.Second}, nil, 401},
		"other merchant":        {paysim.NotifyOptions{}, func(r *paysim.RefundResource) { r.MchID = "1900000999" }, 400},
		"other amount":          {paysim.NotifyOptions{}, func(r *paysim.RefundResource) { r.Amount.Refund = 1 }, 400},
		"unknown refund":        {paysim.NotifyOptions{}, func(r *paysim.RefundResource) { r.OutRefundNo = "nope" }, 404},
	} {
		if s := deliver(c.opts, c.mutate); s != c.status {
			t.Errorf("%s: answered %d, want %d", name, s, c.status)
		}
	}
	if got := h.storedRefund("RD-1").Status; got != order.RefundPending {
		t.Fatalf("a rejected notification changed the refund to %s", got)
	}
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s := deliver(paysim.NotifyOptions{}, nil); s != 200 {
				t.Errorf("genuine refund notification answered %d", s)
			}
		}()
	}
	wg.Wait()
	// A later CLOSED for the same refund cannot undo the decision.
	deliver(paysim.NotifyOptions{}, func(r *paysim.RefundResource) { r.RefundStatus = "CLOSED"; r.SuccessTime = "" })
	if got := h.storedRefund("RD-1").Status; got != order.RefundSucceeded {
		t.Fatalf("refund is %s, want REFUNDED", got)
	}
	claims, _ := h.stack.Store.Claims(context.Background(), id)
	if len(claims) != 2 { // the order's settle claim and the refund's
		t.Fatalf("%d claims, want 2", len(claims))
	}
}

func TestRefundClosedByWeChatPayFreesTheAmount(t *testing.T) {
	h := newHarness(t)
	token := h.login("o-buyer")
	id := h.paidOrder(token, 1)
	h.sim.SetRefundBehaviour(paysim.RefundBehaviour{Outcome: paysim.RefundClosed})
	h.refund(id, "RX-1", 2800).want(t, 201, "")
	h.waitRefund("RX-1", order.RefundFailed)
	h.sim.SetRefundBehaviour(paysim.RefundBehaviour{})
	h.refund(id, "RX-2", 2800).want(t, 201, "")
	h.waitRefund("RX-2", order.RefundSucceeded)
}

func TestRefundNeedsTheAdminKeyNeverASessionToken(t *testing.T) {
	h := newHarness(t)
	token := h.login("o-buyer")
	id := h.paidOrder(token, 1)
	body := fmt.Sprintf(`{"order_id":%q,"out_refund_no":"RA-1","amount_fen":100}`, id)
	h.refundAs("Authorization", "Bearer "+token, body).want(t, 401, "ADMIN_UNAUTHENTICATED")
	h.refundAs("X-Payfn-Admin-Key", token, body).want(t, 401, "ADMIN_UNAUTHENTICATED")
	h.refundAs("X-Payfn-Admin-Key", testAdminKey+"x", body).want(t, 401, "ADMIN_UNAUTHENTICATED")
	h.refundAs("", "", body).want(t, 401, "ADMIN_UNAUTHENTICATED")
	if rs, _ := h.stack.Store.Refunds(context.Background(), id); len(rs) != 0 {
		t.Fatalf("%d refunds written without the admin key", len(rs))
	}
	unpaid := h.createOrder(token, "latte", 1)
	h.refund(unpaid, "RA-2", 100).want(t, 409, "ORDER_NOT_REFUNDABLE")
	h.refund(id, "bad no!", 100).want(t, 400, "INVALID_OUT_REFUND_NO")
	h.refundAs("X-Payfn-Admin-Key", testAdminKey, fmt.Sprintf(`{"order_id":%q,"out_refund_no":"RA-3","amount_fen":1.5}`, id)).want(t, 400, "INVALID_AMOUNT")
	h.refund(id, "RA-4", 0).want(t, 400, "INVALID_AMOUNT")
}

func TestReconcileFollowsWeChatPayOnEveryDisagreement(t *testing.T) {
	h, clock := clockedHarness(t)
	token := h.login("o-buyer")
	paidThere := h.createOrder(token, "latte", 1)
	prepayID, _ := h.pay(token, paidThere)
	if _, err := h.sim.Pay(context.Background(), prepayID, paysim.PayOptions{NoNotify: true}); err != nil {
		t.Fatal(err)
	}
	closedThere := h.createOrder(token, "latte", 1)
	h.pay(token, closedThere)
	if err := h.sim.CloseSilently(context.Background(), closedThere); err != nil {
		t.Fatal(err)
	}
	agreed := h.createOrder(token, "latte", 1)
	h.pay(token, agreed)
	refunded := h.paidOrder(token, 1)
	h.sim.SetRefundBehaviour(paysim.RefundBehaviour{NoNotify: true})
	h.refund(refunded, "RR-1", 2800).want(t, 201, "")
	deadline := time.Now().Add(5 * time.Second)
	for st, _, _ := h.sim.RefundState("RR-1"); st != paysim.RefundSuccess && time.Now().Before(deadline); st, _, _ = h.sim.RefundState("RR-1") {
		time.Sleep(5 * time.Millisecond)
	}

	clock.Advance(6 * time.Minute)
	rep, err := h.stack.App.Reconcile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range rep.Fixes {
		got[f.OrderID+f.RefundNo] = f.From + "->" + f.To
	}
	want := map[string]string{paidThere: "NOTPAY->PAID", closedThere: "NOTPAY->CLOSED", refunded + "RR-1": "REFUNDING->REFUNDED"}
	if fmt.Sprint(got) != fmt.Sprint(want) || rep.Failures != 0 {
		t.Fatalf("fixes %v (failures %d), want %v", got, rep.Failures, want)
	}
	if h.order(agreed).Status != order.StatusNotPay {
		t.Error("an order both sides agree on was changed")
	}
	again, _ := h.stack.App.Reconcile(context.Background())
	if len(again.Fixes) != 0 {
		t.Fatalf("second run fixed %v", again.Fixes)
	}
}

// TestScheduledJobRunsThroughTheLambdaRuntime invokes closeExpired the way
// an EventBridge schedule does, through aws-lambda-go's handler path.
func TestScheduledJobRunsThroughTheLambdaRuntime(t *testing.T) {
	h, clock := clockedHarness(t)
	token := h.login("o-buyer")
	id := h.createOrder(token, "latte", 1)
	clock.Advance(31 * time.Minute)
	event := `{"version":"0","id":"a1b2","detail-type":"Scheduled Event","source":"aws.events","time":"2026-11-23T08:00:00Z","resources":["arn:aws:events:ap-east-1:123456789012:rule/payfn-closeExpired"],"detail":{}}`
	out, err := lambda.NewHandler(awslambda.JobHandler(h.stack.App.CloseExpired, nil)).Invoke(context.Background(), []byte(event))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"job":"closeExpired"`) || !strings.Contains(string(out), id) {
		t.Fatalf("job answered %s", out)
	}
	if h.order(id).Status != order.StatusClosed {
		t.Fatal("the scheduled job did not close the expired order")
	}
}
