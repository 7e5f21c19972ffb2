//go:build !payfn_extstore

package setup_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/store/embedded"
)

var allModes = []faultMode{failInstead, failAfter, dieAfter}

// wantCutOff checks the answer of the call a fault hit: 503 when the store
// errored (never an acknowledgement, never a success), no answer at all when
// the function was killed.
func wantCutOff(t *testing.T, mode faultMode, status int, okStatuses ...int) {
	t.Helper()
	if mode == dieAfter {
		if status != 0 {
			t.Errorf("a killed invocation answered %d", status)
		}
		return
	}
	for _, s := range okStatuses {
		if status == s {
			return
		}
	}
	t.Errorf("answered %d, want one of %v", status, okStatuses)
}

// TestAFaultAtAnySettlementWriteIsRecoveredByTheRetryOrAQuery is design.md
// invariant 5 for verifyPayment: at each write it makes (the ledger row, the
// claim, applying the claim) the store errors instead, errors after writing,
// or the process dies right after writing. The answer is never an
// acknowledgement; then WeChat Pay's retry, or the buyer's queryOrder, brings
// the order to WeChat Pay's state (PAID by its transaction) with one ledger
// row and one decision: nothing paid twice, nothing lost.
func TestAFaultAtAnySettlementWriteIsRecoveredByTheRetryOrAQuery(t *testing.T) {
	tally := &faultTally{answers: map[string]int{}}
	for _, op := range []string{opRecordPayment, opClaim, opApplyClaim} {
		for _, mode := range allModes {
			t.Run(fmt.Sprintf("%s, %s, recovered by the retry", op, mode), func(t *testing.T) {
				t.Parallel()
				r := newRig(t, rigOptions{})
				token := r.login("o-buyer")
				id := r.createOrder(token, "latte", 1)
				prepayID, _ := r.pay(token, id)
				r.faults.arm(op, mode)
				paid, err := r.sim.Pay(context.Background(), prepayID, paysim.PayOptions{})
				if err != nil {
					t.Fatal(err)
				}
				r.waitAcked(id)
				ds := r.sim.Deliveries(id)
				if len(ds) < 2 || ds[0].Acked {
					t.Fatalf("deliveries %+v: the first must fail and a retry succeed", ds)
				}
				wantCutOff(t, mode, ds[0].Status, 503)
				if r.faults.firedCount() != 1 {
					t.Fatalf("the fault fired %d times", r.faults.firedCount())
				}
				tx := r.paidTx(id, "o-buyer", 2800)
				tx.TransactionID = paid.TransactionID
				r.decidedOnce(t, id, tx)
				tally.record(t, ds[0].Status)
			})
			t.Run(fmt.Sprintf("%s, %s, recovered by queryOrder", op, mode), func(t *testing.T) {
				t.Parallel()
				clock := &fakeClock{now: time.Now()}
				r := newRig(t, rigOptions{now: clock.Now})
				id, token, tx := r.paidAtWeChat(t)
				r.faults.arm(op, mode)
				first := r.tryPost("/queryOrder", token, map[string]string{"order_id": id})
				wantCutOff(t, mode, first.status, 503)
				if r.faults.firedCount() != 1 {
					t.Fatalf("the fault fired %d times", r.faults.firedCount())
				}
				// A killed call keeps its query slot: WeChat Pay is asked
				// again in the next window, not before.
				clock.Advance(app.DefaultQueryInterval)
				if q := r.query(token, id).want(t, 200, ""); q.str("status") != "PAID" || q.str("transaction_id") != tx.TransactionID {
					t.Fatalf("queryOrder after the fault = %s", q.raw)
				}
				r.decidedOnce(t, id, tx)
				tally.record(t, first.status)
			})
		}
	}
	t.Cleanup(func() {
		report(t, tally.figures(fmt.Sprintf("settlement write faults (%d points x %d modes x 2 recoveries)", 3, len(allModes))))
	})
}

// TestAFaultAtCreateOrderOrPayIsRecoveredWithoutDuplicates covers the writes
// before payment: the order insert and the prepay id. A fault there loses
// nothing and duplicates nothing: the retried createOrder (same request_id)
// finds the one order, the retried pay re-prepays with identical parameters,
// queryOrder meanwhile reports WeChat Pay's state (NOTPAY), and the payment
// then settles the order once.
func TestAFaultAtCreateOrderOrPayIsRecoveredWithoutDuplicates(t *testing.T) {
	tally := &faultTally{answers: map[string]int{}}
	for _, mode := range allModes {
		t.Run(fmt.Sprintf("%s, %s", opInsertOrder, mode), func(t *testing.T) {
			t.Parallel()
			r := newRig(t, rigOptions{})
			token := r.login("o-buyer")
			req := map[string]any{"product_id": "latte", "quantity": 1, "request_id": "tap-1"}
			r.faults.arm(opInsertOrder, mode)
			first := r.tryPost("/createOrder", token, req)
			wantCutOff(t, mode, first.status, 503)
			if mode == failInstead && len(r.dbSnapshot()["orders"]) != 0 {
				t.Fatal("a refused insert left an order behind")
			}
			// The client retries its tap with the same request_id.
			again := r.postJSON("/createOrder", token, req)
			if again.status != 201 && again.status != 200 {
				t.Fatalf("retried createOrder = %d %s", again.status, again.raw)
			}
			if n := len(r.dbSnapshot()["orders"]); n != 1 {
				t.Fatalf("%d orders for one request_id", n)
			}
			id := again.str("order_id")
			prepayID, _ := r.pay(token, id)
			r.paysOnce(t, id, prepayID)
			tally.record(t, first.status)
		})
		t.Run(fmt.Sprintf("%s, %s", opSetPrepay, mode), func(t *testing.T) {
			t.Parallel()
			r := newRig(t, rigOptions{})
			token := r.login("o-buyer")
			id := r.createOrder(token, "latte", 1)
			r.faults.arm(opSetPrepay, mode)
			first := r.tryPost("/pay", token, map[string]string{"order_id": id})
			wantCutOff(t, mode, first.status, 503)
			if tr, ok := r.sim.Trade(id); !ok || tr.TradeState != paysim.StateNotPay {
				t.Fatalf("WeChat Pay has %+v (%v), want the prepaid NOTPAY trade", tr, ok)
			}
			// Meanwhile the order reads as WeChat Pay has it: unpaid.
			if q := r.query(token, id).want(t, 200, ""); q.str("status") != "NOTPAY" {
				t.Fatalf("queryOrder = %s", q.raw)
			}
			prepayID, _ := r.pay(token, id)
			if got := r.order(id).PrepayID; got != prepayID {
				t.Fatalf("stored prepay id %q, the buyer got %q", got, prepayID)
			}
			r.paysOnce(t, id, prepayID)
			tally.record(t, first.status)
		})
	}
	// pay reconciles when WeChat Pay refuses a prepay because the order is
	// already paid (a lost notification, then the prepay window passed):
	// the settlement writes on that path are faulted too.
	for _, op := range []string{opRecordPayment, opClaim, opApplyClaim} {
		for _, mode := range allModes {
			t.Run(fmt.Sprintf("pay reconciling, %s, %s", op, mode), func(t *testing.T) {
				t.Parallel()
				var cmu sync.Mutex
				now := time.Now()
				clock := func() time.Time { cmu.Lock(); defer cmu.Unlock(); return now }
				r := newRig(t, rigOptions{now: clock, ttl: 3 * time.Hour})
				id, token, tx := r.paidAtWeChat(t)
				cmu.Lock()
				now = now.Add(111 * time.Minute) // past the prepay reuse window: pay asks WeChat Pay again
				cmu.Unlock()
				r.faults.arm(op, mode)
				first := r.tryPost("/pay", token, map[string]string{"order_id": id})
				wantCutOff(t, mode, first.status, 502, 503)
				if r.faults.firedCount() != 1 {
					t.Fatalf("the fault fired %d times (answer %d %s)", r.faults.firedCount(), first.status, first.raw)
				}
				r.postJSON("/pay", token, map[string]string{"order_id": id}).want(t, 409, "ORDER_NOT_PAYABLE")
				r.decidedOnce(t, id, tx)
				tally.record(t, first.status)
			})
		}
	}
	t.Cleanup(func() {
		report(t, tally.figures("createOrder/pay write faults (insert, prepay id, pay's reconcile x 3 modes)"))
	})
}

// TestStoreStoppedMeansNoAcknowledgementUntilItReturns stops a dedicated
// embedded store (not storetest's shared one) while a payment's notification
// is being delivered. Every delivery during the outage is answered 503,
// never acknowledged; the client functions answer 503 too. When the store
// restarts on the same data and address, WeChat Pay's next retry is
// acknowledged and the order is paid once.
func TestStoreStoppedMeansNoAcknowledgementUntilItReturns(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr()
	t.Cleanup(func() { srv.Close() })
	retry := make([]time.Duration, 60)
	for i := range retry {
		retry[i] = 100 * time.Millisecond
	}
	r := newRig(t, rigOptions{uri: srv.URI(), db: "outage", sst: 400 * time.Millisecond, retry: retry})
	token := r.login("o-buyer")
	id := r.createOrder(token, "latte", 1)
	prepayID, _ := r.pay(token, id)

	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	r.postJSON("/createOrder", token, map[string]any{"product_id": "latte", "quantity": 1, "request_id": "during-outage"}).want(t, 503, "STORE_UNAVAILABLE")
	r.postJSON("/queryOrder", token, map[string]string{"order_id": id}).want(t, 503, "STORE_UNAVAILABLE")
	paid, err := r.sim.Pay(ctx, prepayID, paysim.PayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	down, err := r.sim.WaitDeliveries(wctx, id, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range down {
		if d.Acked || d.Status != 503 {
			t.Fatalf("during the outage a delivery got %d (acked %v), want 503", d.Status, d.Acked)
		}
	}

	restarted := time.Now()
	srv2, err := embedded.Start(ctx, embedded.Options{Dir: dir, Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv2.Close() })
	if err := r.sim.WaitAcked(wctx, id); err != nil {
		t.Fatalf("never acknowledged after the store returned: %v; deliveries %+v", err, r.sim.Deliveries(id))
	}
	ds := r.sim.Deliveries(id)
	unacked := 0
	for _, d := range ds {
		if d.Acked && d.Time.Before(restarted) {
			t.Errorf("a delivery was acknowledged while the store was down: %+v", d)
		}
		if !d.Acked {
			unacked++
		}
	}
	tx := r.paidTx(id, "o-buyer", 2800)
	tx.TransactionID = paid.TransactionID
	ledger, _ := r.decidedOnce(t, id, tx)
	report(t, figures{Case: "store stopped during delivery, then restarted", Tried: len(ds),
		Answers: map[string]int{"503": unacked, "200": len(ds) - unacked}, LedgerRows: ledger,
		Transitions: r.faults.allWins(), DuplicatesFulfilled: r.faults.winsOf(order.StatusPaid) - 1})
}

// faultTally sums the fault cases of one test for its figures line.
type faultTally struct {
	mu               sync.Mutex
	tried, recovered int
	answers          map[string]int
}

// record counts a case whose first answer was status; call it last in the
// subtest, so that a failed check means the case did not recover.
func (ft *faultTally) record(t *testing.T, status int) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	ft.tried++
	ft.answers[statusKey(status)]++
	if !t.Failed() {
		ft.recovered++
	}
}

func (ft *faultTally) figures(name string) figures {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return figures{Case: name, Tried: ft.tried, Answers: ft.answers, LedgerRows: ft.recovered,
		Transitions: ft.recovered, StateChanges: ft.tried - ft.recovered}
}

// paysOnce has the buyer pay prepayID at WeChat Pay and checks that the
// notification settles order id once.
func (r *rig) paysOnce(t *testing.T, id, prepayID string) {
	t.Helper()
	paid, err := r.sim.Pay(context.Background(), prepayID, paysim.PayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.waitAcked(id)
	tx := r.paidTx(id, "o-buyer", 2800)
	tx.TransactionID = paid.TransactionID
	r.decidedOnce(t, id, tx)
}
