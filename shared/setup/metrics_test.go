package setup_test

import (
	"context"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/metrics/emftest"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/setup"
)

// TestMetricsOfAScriptedDay runs a day through the real stack (simulator,
// embedded store, every function on its route) and reads the metrics back
// from what the stack wrote: every line is valid EMF, each invocation
// wrote one line, and the counts are the day's: paid orders and their fen,
// one exception (paid the wrong amount), one late payment (paid after the
// order was closed here), one forged notification and one WeChat Pay
// signature probe, each counted apart.
func TestMetricsOfAScriptedDay(t *testing.T) {
	const paidOrders = 3
	out := &syncBuffer{}
	h := newHarnessWith(t, setup.Options{Metrics: out})
	ctx := context.Background()
	token := h.login("o-day")

	var notifications int // verifyPayment invocations
	for range paidOrders {
		id := h.createOrder(token, "latte", 1)
		prepayID, _ := h.pay(token, id)
		if _, err := h.sim.Pay(ctx, prepayID, paysim.PayOptions{}); err != nil {
			t.Fatal(err)
		}
		h.waitAcked(id)
		notifications++
	}

	// An exception: a genuine payment of 1 fen for a 28.00 order.
	odd := h.createOrder(token, "latte", 1)
	prepayID, _ := h.pay(token, odd)
	if _, err := h.sim.Pay(ctx, prepayID, paysim.PayOptions{PaidTotalFen: 1}); err != nil {
		t.Fatal(err)
	}
	h.waitAcked(odd)
	notifications++
	if o := h.order(odd); o.Status != order.StatusException {
		t.Fatalf("wrong amount: order %s, want EXCEPTION", o.Status)
	}

	// A late payment: payfn closed the order (its close raced the buyer)
	// while WeChat Pay still took the payment.
	late := h.createOrder(token, "latte", 1)
	prepayID, _ = h.pay(token, late)
	closeHere(t, h, late)
	if _, err := h.sim.Pay(ctx, prepayID, paysim.PayOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitAcked(late)
	notifications++
	if o := h.order(late); o.Status != order.StatusPaid {
		t.Fatalf("late payment: order %s, want PAID", o.Status)
	}

	// A forged notification (signed with another key) and a signature
	// probe, both for an open order: both refused.
	open := h.createOrder(token, "latte", 1)
	tx := h.paidTx(open, "o-day", 2800)
	if status, body := h.notify(tx, paysim.NotifyOptions{SignWith: otherKey}); status < 400 {
		t.Fatalf("forged notification answered %d %s", status, body)
	}
	if status, body := h.notify(tx, paysim.NotifyOptions{SignatureProbe: true}); status < 400 {
		t.Fatalf("signature probe answered %d %s", status, body)
	}
	notifications += 2
	if o := h.order(open); o.Status != order.StatusNotPay {
		t.Fatalf("refused notifications changed the order to %s", o.Status)
	}

	verify := map[string]string{"Function": string(setup.VerifyPayment)}
	var docs []emftest.Doc
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if docs, err = emftest.Lines([]byte(out.String())); err != nil {
			t.Fatal(err)
		}
		if lines(docs, verify) >= notifications || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := lines(docs, verify); n != notifications {
		t.Errorf("verifyPayment wrote %d metric lines for %d notifications, want one each", n, notifications)
	}
	created := map[string]string{"Function": string(setup.CreateOrder)}
	for _, c := range []struct {
		name string
		dims map[string]string
		want float64
	}{
		{app.MetricOrdersCreated, created, paidOrders + 3},
		{app.MetricOrdersPaid, verify, paidOrders + 1}, // the late one is paid too
		{app.MetricPaidFen, verify, (paidOrders + 1) * 2800},
		{app.MetricPaymentExceptions, verify, 1},
		{app.MetricLatePayments, verify, 1},
		{app.MetricVerificationFailures, verify, 1},
		{app.MetricSignatureProbes, verify, 1},
		{app.MetricExtraPayments, nil, 0},
		{app.MetricOrdersPaid, nil, paidOrders + 1}, // nothing counted twice elsewhere
	} {
		if got := emftest.Sum(docs, c.name, c.dims); got != c.want {
			t.Errorf("%s %v = %v, want %v", c.name, c.dims, got, c.want)
		}
	}
	// Latencies: createOrder's store calls, pay's prepay at WeChat Pay, and
	// the late payment's query from verifyPayment.
	for _, c := range []struct {
		name string
		fn   setup.Function
	}{{app.MetricStoreLatency, setup.CreateOrder}, {app.MetricChannelLatency, setup.Pay}, {app.MetricChannelLatency, setup.VerifyPayment}} {
		if emftest.Sum(docs, c.name, map[string]string{"Function": string(c.fn)}) == 0 {
			t.Errorf("no %s from %s", c.name, c.fn)
		}
	}
	if t.Failed() {
		t.Logf("stack output:\n%s", []byte(out.String()))
	}
}

// lines counts the lines of docs with the dimension values dims.
func lines(docs []emftest.Doc, dims map[string]string) int {
	n := 0
	for _, d := range docs {
		ok := true
		for k, v := range dims {
			if got, _ := d.Values[k].(string); got != v {
				ok = false
			}
		}
		if ok {
			n++
		}
	}
	return n
}

// closeHere decides and writes CLOSED for an order payfn's side only, as a
// close that won just before the buyer paid would.
func closeHere(t *testing.T, h *harness, id string) {
	t.Helper()
	ctx := context.Background()
	c := order.Claim{Key: order.SettleKey(id), OrderID: id, Status: order.StatusClosed, Reason: "expired unpaid", DecidedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if _, won, err := h.stack.Store.Claim(ctx, c); err != nil || !won {
		t.Fatalf("close claim: won %v, err %v", won, err)
	}
	if err := h.stack.Store.ApplyClaim(ctx, c); err != nil {
		t.Fatal(err)
	}
}
