package setup_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
)

func TestServiceConcurrentDuplicatePaymentNotificationsMakeOneOrderPaidEventReceivedOnce(t *testing.T) {
	n := reliabilityN(t, defaultRaceN)
	h, clock := clockedServiceHarness(t)
	a := h.clockedApp("shopa", clock)
	rc := newReceiver(t)
	a.endpoint(rc)
	a.product("p", 1200)
	r := a.order("p", "buyer1", "req-1", "race").want(t, 201, "")
	id := r.str("order_id")
	payment, _ := r.body["payment"].(map[string]any)
	pkg, _ := payment["package"].(string)
	paid, err := h.sim.Pay(context.Background(), strings.TrimPrefix(pkg, "prepay_id="), paysim.PayOptions{NoNotify: true})
	if err != nil {
		t.Fatal(err)
	}
	tx := h.paidTx(id, "openid-buyer1", 1200)
	tx.TransactionID = paid.TransactionID
	hdr, body, err := h.sim.BuildNotification(tx, paysim.NotifyOptions{})
	if err != nil {
		t.Fatal(err)
	}

	c := raceClient(n)
	answers := race(n, func(int) int { return postRaw(c, h.url+"/notify/wechatpay", hdr, body) })
	if answers["200"] != n {
		t.Errorf("answers %v: every copy of a genuine notification must be acknowledged", answers)
	}
	if o := h.order(id); o.Status != order.StatusPaid || o.TransactionID != tx.TransactionID {
		t.Errorf("order is %s by %q, want PAID by %s", o.Status, o.TransactionID, tx.TransactionID)
	}
	paidEvt := a.eventOf(id, order.EventOrderPaid) // fails unless exactly one
	if es := a.events(id); len(es) != 2 {
		t.Errorf("order has %d events, want order.created and one order.paid: %v", len(es), es)
	}
	// Once every lease and grace period has passed, the dispatcher sends
	// what the inline attempt did not (on a loaded machine the 2 s budget
	// of the attempt made while 1,000 notifications are answered can run
	// out), and after that nothing is left due; the receiver heard
	// order.paid once.
	clock.Advance(time.Minute)
	if rep := h.dispatch(); rep.Due > 1 {
		t.Errorf("the dispatcher found %d deliveries due; at most order.paid's may be", rep.Due)
	}
	clock.Advance(time.Hour)
	if rep := h.dispatch(); rep.Due != 0 {
		t.Errorf("the dispatcher found %d deliveries due after order.paid was delivered", rep.Due)
	}
	var paidHooks []receivedHook
	for _, hk := range rc.hooks() {
		if hk.Type == order.EventOrderPaid {
			paidHooks = append(paidHooks, hk)
		}
	}
	// One event; its delivery is at least once. More than one arrival can
	// only be the same webhook-id again (an attempt whose outcome was not
	// recorded in time on a loaded machine), which receivers dedupe.
	ok := 0
	for _, hk := range paidHooks {
		if hk.ID != paidEvt["id"] || hk.Verified != nil {
			t.Errorf("receiver got order.paid %+v, want webhook-id %v, verified", hk, paidEvt["id"])
		}
		if hk.OK() {
			ok++
		}
	}
	if ok == 0 || len(paidHooks) > 2 {
		t.Errorf("receiver got order.paid %d times, %d answered 2xx; want it delivered, once unless an outcome was lost", len(paidHooks), ok)
	}
	if l := h.ledger(id); len(l) != 1 {
		t.Errorf("ledger has %d rows, want 1", len(l))
	}
	t.Logf("%d concurrent notifications: answers %v", n, answers)
}
