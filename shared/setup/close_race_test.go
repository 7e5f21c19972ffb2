package setup_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
)

// TestCloseRacingPayEndsInWeChatPaysState: the closeExpired job runs while
// buyers pay their expired orders at WeChat Pay (the simulator still accepts
// them: time_expire is WeChat's deadline, the job goes by payfn's clock,
// which the test moves past every order's expiry). Whichever reaches WeChat
// Pay first wins there; payfn must end in that state for every order: PAID
// with one ledger row when the payment won, CLOSED with none when the close
// won, and one decision either way (design.md invariant 4, "payment after
// close, close after payment").
func TestCloseRacingPayEndsInWeChatPaysState(t *testing.T) {
	n := reliabilityNFrom(t, "PAYFN_RELIABILITY_CLOSE_N", 40)
	var cmu sync.Mutex
	now := time.Now()
	clock := func() time.Time { cmu.Lock(); defer cmu.Unlock(); return now }
	r := newRig(t, rigOptions{now: clock})
	ctx := context.Background()

	// n orders, prepaid, set up a few at a time.
	ids, prepays := make([]string, n), make([]string, n)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	token := r.login("o-buyer")
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res := r.tryPost("/createOrder", token, map[string]any{"product_id": "latte", "quantity": 1, "request_id": fmt.Sprintf("race-%d", i)})
			id, _ := res.body["order_id"].(string)
			p := r.tryPost("/pay", token, map[string]string{"order_id": id})
			pay, _ := p.body["payment"].(map[string]any)
			pkg, _ := pay["package"].(string)
			ids[i], prepays[i] = id, pkg[len("prepay_id="):]
		}()
	}
	wg.Wait()
	for i := range n {
		if ids[i] == "" || prepays[i] == "" {
			t.Fatalf("order %d was not set up", i)
		}
	}
	cmu.Lock()
	now = now.Add(31 * time.Minute) // every order is past its expiry for payfn
	cmu.Unlock()

	// The race: buyers pay from the newest order backwards while two
	// closeExpired runs sweep from the oldest forwards, so they meet in the
	// middle and both orders of events happen.
	paidAt := make([]string, n) // transaction id when the payment won at WeChat Pay
	start := make(chan struct{})
	for lane := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			// Pay once the sweep has closed the oldest order at WeChat Pay,
			// so both orders of events are certain to occur.
			if !r.pollUntil(10*time.Second, func() bool { tr, _ := r.sim.Trade(ids[0]); return tr.TradeState == paysim.StateClosed }) {
				t.Error("the sweep never closed the oldest order")
			}
			for i := n - 1 - lane; i >= 0; i -= 2 {
				p, err := r.sim.Pay(ctx, prepays[i], paysim.PayOptions{})
				switch {
				case err == nil:
					paidAt[i] = p.TransactionID
				case errors.Is(err, paysim.ErrOrderClosed):
				default:
					t.Errorf("pay %s: %v", ids[i], err)
				}
			}
		}()
	}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := r.stack.App.CloseExpired(ctx); err != nil {
				t.Errorf("closeExpired: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	// Let the winners' notifications land, then sweep what is left (an
	// order whose close lost at WeChat Pay is left for the next run).
	for i := range n {
		if paidAt[i] != "" {
			r.waitAcked(ids[i])
		}
	}
	for sweep := 0; ; sweep++ {
		rep, err := r.stack.App.CloseExpired(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Examined == 0 {
			break
		}
		if sweep > 5 {
			t.Fatalf("closeExpired still finds work after %d sweeps: %+v", sweep, rep)
		}
	}

	paid, closed := 0, 0
	for i, id := range ids {
		tr, _ := r.sim.Trade(id)
		o, l, cs := r.order(id), r.ledger(id), r.claims(id)
		switch tr.TradeState {
		case paysim.StateSuccess:
			paid++
			if o.Status != order.StatusPaid || o.TransactionID != paidAt[i] || len(l) != 1 || len(cs) != 1 {
				t.Errorf("%s paid at WeChat Pay by %s: order %s %q, %d ledger rows, %d claims", id, paidAt[i], o.Status, o.TransactionID, len(l), len(cs))
			}
		case paysim.StateClosed:
			closed++
			if paidAt[i] != "" || o.Status != order.StatusClosed || len(l) != 0 || len(cs) != 1 {
				t.Errorf("%s closed at WeChat Pay: order %s, %d ledger rows, %d claims, paid %q", id, o.Status, len(l), len(cs), paidAt[i])
			}
		default:
			t.Errorf("%s is %s at WeChat Pay after the sweeps", id, tr.TradeState)
		}
	}
	// The store is the record of decisions: one claim per order (checked
	// above). The wins counted at the wrapper can fall short of it under
	// load: a delivery the simulator gave up on (5 s) cancels a claim insert
	// the store still makes, and the retry then finds it (not won) and
	// applies it. They can never exceed it.
	decisions := len(r.dbSnapshot()["claims"])
	if decisions != n || r.faults.allWins() > n {
		t.Errorf("%d decisions stored (%d won) for %d orders", decisions, r.faults.allWins(), n)
	}
	t.Logf("%d orders: %d paid first, %d closed first", n, paid, closed)
	if closed == 0 {
		t.Error("no order was closed first: the race did not happen")
	}
	report(t, figures{Case: fmt.Sprintf("closeExpired racing pay on %d orders (%d paid first, %d closed first)", n, paid, closed),
		Tried: n, Answers: map[string]int{"paid": paid, "closed": closed}, LedgerRows: paid,
		Transitions: decisions, DuplicatesFulfilled: decisions - n})
}

// pollUntil checks cond every millisecond until it holds or d passes.
func (h *harness) pollUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}
