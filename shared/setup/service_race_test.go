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
	// Nothing is left due, even once every lease and grace period has
	// passed, and the receiver heard order.paid once.
	clock.Advance(time.Minute)
	if rep := h.dispatch(); rep.Due != 0 {
		t.Errorf("the dispatcher found %d deliveries due after order.paid was delivered", rep.Due)
	}
	var paidHooks []receivedHook
	for _, hk := range rc.hooks() {
		if hk.Type == order.EventOrderPaid {
			paidHooks = append(paidHooks, hk)
		}
	}
	if len(paidHooks) != 1 || !paidHooks[0].OK() || paidHooks[0].ID != paidEvt["id"] || paidHooks[0].Verified != nil {
		t.Errorf("receiver got order.paid %d times (%+v), want once, verified, with webhook-id %v", len(paidHooks), paidHooks, paidEvt["id"])
	}
	if l := h.ledger(id); len(l) != 1 {
		t.Errorf("ledger has %d rows, want 1", len(l))
	}
	t.Logf("%d concurrent notifications: answers %v", n, answers)
}
