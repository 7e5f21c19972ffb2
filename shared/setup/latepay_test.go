package setup_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/config"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
)

// pausingStore holds the first ApplyClaim of a CLOSED decision until the
// test releases it: the closer has won its claim and stalls before writing.
type pausingStore struct {
	app.Store
	once     sync.Once
	reached  chan struct{}
	release  chan struct{}
	pauseFor order.Status
}

func (p *pausingStore) ApplyClaim(ctx context.Context, c order.Claim) error {
	if c.Status == p.pauseFor && c.Key == order.SettleKey(c.OrderID) {
		paused := false
		p.once.Do(func() { paused = true })
		if paused {
			close(p.reached)
			<-p.release
		}
	}
	return p.Store.ApplyClaim(ctx, c)
}

// closeRacesPayment is WeChat Pay accepting a payment that raced the close:
// the close call succeeds, yet the trade goes on to be paid. It is the fault
// that lets a payment arrive for an order payfn has decided to close.
type closeRacesPayment struct{ app.Channel }

func (closeRacesPayment) CloseOrder(context.Context, string) error { return nil }

func (c closeRacesPayment) Unwrap() app.Channel { return c.Channel }

// TestASlowCloseNeverOverwritesALatePayment: closeExpired wins the CLOSED
// decision and stalls before writing it; meanwhile WeChat Pay takes the
// buyer's payment, the notification wins the late-pay claim, writes PAID
// and is acknowledged. When the stalled CLOSED write lands, the order must
// still end PAID with its transaction, and be refundable.
func TestASlowCloseNeverOverwritesALatePayment(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	ps := &pausingStore{reached: make(chan struct{}), release: make(chan struct{}), pauseFor: order.StatusClosed}
	r := newRig(t, rigOptions{now: clock.Now, ttl: time.Hour, wrap: func(s app.Store, ch app.Channel) (app.Store, app.Channel) {
		ps.Store = s
		return ps, closeRacesPayment{ch}
	}})
	token := r.login("o-late")
	id := r.createOrder(token, "latte", 1)
	prepayID, _ := r.pay(token, id)
	clock.Advance(61 * time.Minute) // past payfn's expiry; WeChat Pay's clock is real

	jobDone := make(chan error, 1)
	go func() {
		_, err := r.stack.App.CloseExpired(context.Background())
		jobDone <- err
	}()
	select {
	case <-ps.reached:
	case <-time.After(20 * time.Second):
		t.Fatal("closeExpired never reached its CLOSED write")
	}
	paid, err := r.sim.Pay(context.Background(), prepayID, paysim.PayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.waitAcked(id) // the late payment was decided and acknowledged
	if o := r.order(id); o.Status != order.StatusPaid {
		t.Fatalf("before the stalled write: order %s, want PAID", o.Status)
	}
	close(ps.release)
	if err := <-jobDone; err != nil {
		t.Fatal(err)
	}
	o := r.order(id)
	if o.Status != order.StatusPaid || o.TransactionID != paid.TransactionID {
		t.Fatalf("after the stalled CLOSED write: order %s by %q, want PAID by %s", o.Status, o.TransactionID, paid.TransactionID)
	}
	if l := r.ledger(id); len(l) != 1 || l[0].Disposition != order.DispositionLate {
		t.Fatalf("ledger %+v, want one row disposed %q", l, order.DispositionLate)
	}
	r.refund(id, "RL-1", 2800).want(t, 201, "")
	ds := r.sim.Deliveries(id)
	answers := map[string]int{}
	for _, d := range ds {
		answers[statusKey(d.Status)]++
	}
	report(t, figures{Case: "closeExpired stalled before its CLOSED write while a late payment was decided", Tried: 1,
		Answers: answers, LedgerRows: len(r.ledger(id)), Transitions: len(r.claims(id)), StateChanges: 0})
}

// TestUnconfirmedLatePaymentIsNotAcknowledgedUntilWeChatPayDecides: a
// genuine notification for an order closed here, that WeChat Pay's query
// does not confirm, is answered 503 (so WeChat Pay delivers again) and
// counted on its ledger row; once the query says the trade is paid it is
// acknowledged and the order reopened; a trade WeChat Pay says was closed
// unpaid is acknowledged without change.
func TestUnconfirmedLatePaymentIsNotAcknowledgedUntilWeChatPayDecides(t *testing.T) {
	h := newHarness(t)
	token := h.login("o-buyer")

	id := h.createOrder(token, "latte", 1)
	prepayID, _ := h.pay(token, id)
	h.closeLocally(id)
	tx := h.paidTx(id, "o-buyer", 2800)
	for i := 1; i <= 2; i++ {
		s, body := h.notify(tx, paysim.NotifyOptions{})
		if s != 503 || !strings.Contains(string(body), `"code":"`+app.CodeLatePaymentUnconfirmed+`"`) {
			t.Fatalf("delivery %d while WeChat Pay says NOTPAY: %d %s, want 503 %s", i, s, body, app.CodeLatePaymentUnconfirmed)
		}
		l := h.ledger(id)
		if len(l) != 1 || l[0].Disposition != order.DispositionUnconfirmed || l[0].Unconfirmed != i {
			t.Fatalf("ledger after delivery %d: %+v", i, l)
		}
		if h.order(id).Status != order.StatusClosed {
			t.Fatal("an unconfirmed payment changed the order")
		}
	}
	// WeChat Pay now has the payment (same transaction): the next delivery
	// is acknowledged and reopens the order.
	paid, err := h.sim.Pay(context.Background(), prepayID, paysim.PayOptions{NoNotify: true})
	if err != nil {
		t.Fatal(err)
	}
	tx.TransactionID = paid.TransactionID
	if s, body := h.notify(tx, paysim.NotifyOptions{}); s != 200 {
		t.Fatalf("confirmed delivery answered %d %s", s, body)
	}
	if o := h.order(id); o.Status != order.StatusPaid || o.TransactionID != paid.TransactionID {
		t.Fatalf("order %s by %s, want PAID by %s", o.Status, o.TransactionID, paid.TransactionID)
	}

	// WeChat Pay says the trade was closed unpaid: acknowledged, recorded only.
	closed := h.createOrder(token, "latte", 1)
	h.pay(token, closed)
	if err := h.sim.CloseSilently(context.Background(), closed); err != nil {
		t.Fatal(err)
	}
	h.closeLocally(closed)
	if s, body := h.notify(h.paidTx(closed, "o-buyer", 2800), paysim.NotifyOptions{}); s != 200 {
		t.Fatalf("delivery for a trade WeChat Pay closed answered %d %s", s, body)
	}
	if l := h.ledger(closed); h.order(closed).Status != order.StatusClosed || len(l) != 1 || l[0].Disposition != order.DispositionNotPaid {
		t.Fatalf("closed trade: order %s, ledger %+v", h.order(closed).Status, l)
	}
	report(t, figures{Case: "genuine notification for a closed order: unconfirmed twice, then confirmed; and one WeChat Pay closed", Tried: 4,
		Answers: map[string]int{"503": 2, "200": 2}, LedgerRows: len(h.ledger(id)) + len(h.ledger(closed)), Transitions: len(h.claims(id)) + len(h.claims(closed))})
}

// TestLedgerTellsTheSettlingPaymentFromAnExtraOne: the ledger row of the
// payment that settled an order says so, a second genuine payment for the
// same order is recorded as extra, and a wrong amount as exception.
func TestLedgerTellsTheSettlingPaymentFromAnExtraOne(t *testing.T) {
	h := newHarness(t)
	token := h.login("o-buyer")
	id := h.paidOrder(token, 1)
	extra := h.paidTx(id, "o-buyer", 2800)
	if s, body := h.notify(extra, paysim.NotifyOptions{}); s != 200 {
		t.Fatalf("second payment answered %d %s", s, body)
	}
	got := map[string]order.Disposition{}
	for _, p := range h.ledger(id) {
		got[p.TransactionID] = p.Disposition
	}
	o := h.order(id)
	if len(got) != 2 || got[o.TransactionID] != order.DispositionSettled || got[extra.TransactionID] != order.DispositionExtra {
		t.Fatalf("dispositions %v (settling %s, extra %s)", got, o.TransactionID, extra.TransactionID)
	}

	wrong := h.createOrder(token, "latte", 1)
	prepayID, _ := h.pay(token, wrong)
	if _, err := h.sim.Pay(context.Background(), prepayID, paysim.PayOptions{PaidTotalFen: 1}); err != nil {
		t.Fatal(err)
	}
	h.waitAcked(wrong)
	if l := h.ledger(wrong); len(l) != 1 || l[0].Disposition != order.DispositionException {
		t.Fatalf("wrong amount ledger %+v", l)
	}
}

// TestRefundAnswered4xxIsAskedAboutBeforeItIsFailed: WeChat Pay answers a
// resend of a refund it already has with a 4xx. payfn asks before deciding,
// so the refund follows WeChat Pay (still REFUNDING, then REFUNDED) and its
// amount is never freed for a second refund.
func TestRefundAnswered4xxIsAskedAboutBeforeItIsFailed(t *testing.T) {
	h := newHarness(t)
	token := h.login("o-buyer")
	id := h.paidOrder(token, 1)
	h.sim.SetRefundBehaviour(paysim.RefundBehaviour{Outcome: paysim.RefundProcessing, NoNotify: true})
	h.refund(id, "R4-1", 2800).want(t, 201, "")

	h.sim.FailNext(1, 400, "PARAM_ERROR") // the resend is refused
	h.refund(id, "R4-1", 2800).want(t, 200, "")
	if r := h.storedRefund("R4-1"); r.Status != order.RefundPending {
		t.Fatalf("refund WeChat Pay still processes is %s, want REFUNDING", r.Status)
	}
	h.refund(id, "R4-2", 2800).want(t, 409, "REFUND_EXCEEDS_PAID")

	// A refund WeChat Pay never heard of and refuses is failed, freeing it.
	other := h.paidOrder(token, 1)
	h.sim.FailNext(1, 400, "PARAM_ERROR")
	h.refund(other, "R4-3", 2800).want(t, 502, "REFUND_REJECTED")
	if r := h.storedRefund("R4-3"); r.Status != order.RefundFailed {
		t.Fatalf("refused unknown refund is %s, want FAILED", r.Status)
	}
}

// TestOpenOrdersPerBuyerAreCappedAndQueriesThrottled: a buyer with the
// maximum of unpaid orders gets 429 TOO_MANY_OPEN_ORDERS and nothing is
// written; another buyer is unaffected. queryOrder asks WeChat Pay about an
// order at most once per interval and answers from the store in between.
func TestOpenOrdersPerBuyerAreCappedAndQueriesThrottled(t *testing.T) {
	var queries atomic.Int64
	h := newRig(t, rigOptions{maxOpen: app.DefaultMaxOpenOrders, wrap: func(s app.Store, ch app.Channel) (app.Store, app.Channel) {
		return s, countingQueries{ch, &queries}
	}})
	token := h.login("o-greedy")
	for i := range app.DefaultMaxOpenOrders {
		h.postJSON("/createOrder", token, map[string]any{"product_id": "latte", "quantity": 1, "request_id": fmt.Sprintf("cap-%d", i)}).want(t, 201, "")
	}
	before := h.dbSnapshot()
	h.postJSON("/createOrder", token, map[string]any{"product_id": "latte", "quantity": 1, "request_id": "cap-over"}).want(t, 429, app.CodeTooManyOpenOrders)
	if d := before.diff(h.dbSnapshot()); d != "" {
		t.Fatalf("a refused order wrote: %s", d)
	}
	h.postJSON("/createOrder", token, map[string]any{"product_id": "latte", "quantity": 1, "request_id": "cap-0"}).want(t, 200, "") // a replay is not a new order
	h.createOrder(h.login("o-other"), "latte", 1)

	poller := h.login("o-poller")
	id := h.createOrder(poller, "latte", 1)
	h.pay(poller, id)
	start := queries.Load()
	for range 5 {
		h.postJSON("/queryOrder", poller, map[string]string{"order_id": id}).want(t, 200, "")
	}
	if n := queries.Load() - start; n < 1 || n > 2 { // one per 5 s window; the loop may straddle two
		t.Fatalf("5 quick queryOrder calls asked WeChat Pay %d times, want 1 (2 across a window edge)", n)
	}
}

// countingQueries counts the WeChat Pay order queries that reach the
// channel.
type countingQueries struct {
	app.Channel
	n *atomic.Int64
}

func (c countingQueries) Unwrap() app.Channel { return c.Channel }

func (c countingQueries) QueryOrder(ctx context.Context, outTradeNo string) (app.Transaction, error) {
	c.n.Add(1)
	return c.Channel.QueryOrder(ctx, outTradeNo)
}

// TestReconcileRepairsClosedOrdersThatWeChatPayPaid: reconcile's payment
// sweep finds every CLOSED order whose payment is on record but whose
// decision never landed — a late-pay claim not applied (its winner died),
// a ledger row left pending (the function died after recording it), a
// payment WeChat Pay did not confirm at first — and follows WeChat Pay:
// PAID where it took the money, CLOSED (the row marked not_paid) where it
// says the trade was closed unpaid.
func TestReconcileRepairsClosedOrdersThatWeChatPayPaid(t *testing.T) {
	h, clock := clockedHarness(t)
	ctx := context.Background()
	token := h.login("o-buyer")

	// paidAtWeChat closes id here although WeChat Pay took its payment, and
	// records the payment's ledger row as pending, as a function that died
	// right after the ledger insert leaves it.
	paidAtWeChat := func() (string, string) {
		id := h.createOrder(token, "latte", 1)
		prepayID, _ := h.pay(token, id)
		paid, err := h.sim.Pay(ctx, prepayID, paysim.PayOptions{NoNotify: true})
		if err != nil {
			t.Fatal(err)
		}
		h.closeLocally(id)
		if err := h.stack.Store.RecordPayment(ctx, order.Payment{
			TransactionID: paid.TransactionID, OutTradeNo: id, AppID: testAppID, MchID: testMchID,
			TradeState: "SUCCESS", TotalFen: 2800, PayerTotalFen: 2800, Currency: "CNY", PayerOpenID: "o-buyer",
			SuccessTime: time.Now(), Source: "notification", Matched: true, RecordedAt: time.Now(),
			Disposition: order.DispositionPending,
		}); err != nil {
			t.Fatal(err)
		}
		return id, paid.TransactionID
	}
	pending, pendingTx := paidAtWeChat()
	claimed, claimedTx := paidAtWeChat()
	if _, won, err := h.stack.Store.Claim(ctx, order.Claim{Key: order.LatePayKey(claimed), OrderID: claimed,
		Status: order.StatusPaid, TransactionID: claimedTx, PaidAt: time.Now(), DecidedAt: time.Now()}); err != nil || !won {
		t.Fatalf("late-pay claim: %v %v", err, won)
	}
	// A payment WeChat Pay did not confirm, then closed unpaid.
	unpaid := h.createOrder(token, "latte", 1)
	h.pay(token, unpaid)
	h.closeLocally(unpaid)
	if s, _ := h.notify(h.paidTx(unpaid, "o-buyer", 2800), paysim.NotifyOptions{}); s != 503 {
		t.Fatalf("unconfirmed delivery answered %d", s)
	}
	if err := h.sim.CloseSilently(ctx, unpaid); err != nil {
		t.Fatal(err)
	}

	clock.Advance(6 * time.Minute)
	rep, err := h.stack.App.Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for id, tx := range map[string]string{pending: pendingTx, claimed: claimedTx} {
		if o := h.order(id); o.Status != order.StatusPaid || o.TransactionID != tx {
			t.Errorf("order %s is %s by %q, want PAID by %s (report %+v)", id, o.Status, o.TransactionID, tx, rep)
		}
		if l := h.ledger(id); len(l) != 1 || l[0].Disposition != order.DispositionLate {
			t.Errorf("ledger of %s: %+v", id, l)
		}
	}
	if l := h.ledger(unpaid); h.order(unpaid).Status != order.StatusClosed || len(l) != 1 || l[0].Disposition != order.DispositionNotPaid {
		t.Errorf("unpaid: order %s, ledger %+v", h.order(unpaid).Status, l)
	}
	fixed := map[string]string{}
	for _, f := range rep.Fixes {
		fixed[f.OrderID] = f.From + "->" + f.To
	}
	if fixed[pending] != "CLOSED->PAID" || fixed[claimed] != "CLOSED->PAID" {
		t.Errorf("report fixes %v", fixed)
	}
	again, err := h.stack.App.Reconcile(ctx)
	if err != nil || len(again.Fixes) != 0 {
		t.Fatalf("second run: %+v %v", again, err)
	}
}

// TestOpenOrdersCapComesFromTheConfiguration: PAYFN_MAX_OPEN_ORDERS reaches
// createOrder through the same wiring every function uses.
func TestOpenOrdersCapComesFromTheConfiguration(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.MaxOpenOrders = 2 })
	token := h.login("o-two")
	h.createOrder(token, "latte", 1)
	h.createOrder(token, "latte", 1)
	h.postJSON("/createOrder", token, map[string]any{"product_id": "latte", "quantity": 1, "request_id": "third"}).want(t, 429, app.CodeTooManyOpenOrders)
}
