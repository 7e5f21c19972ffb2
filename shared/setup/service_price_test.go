package setup_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
)

// priced fails unless the order answers total and a product snapshot at price.
func priced(t *testing.T, what string, r reply, total, price float64) {
	t.Helper()
	p, _ := r.body["product"].(map[string]any)
	if r.body["total_fen"] != total || p["price_fen"] != price {
		t.Errorf("%s: %s, want total_fen %v and product.price_fen %v", what, r.raw, total, price)
	}
}

func TestServicePriceChangeAfterAnOrderKeepsItsPriceAndANotificationOfTheNewPriceIsAnException(t *testing.T) {
	h := newServiceHarness(t)
	a := h.newApp("shopa")
	rc := newReceiver(t)
	a.endpoint(rc)
	a.product("a", 1200)
	r1 := a.order("a", "buyer1", "req-1", "one").want(t, 201, "")
	r2 := a.order("a", "buyer2", "req-2", "two").want(t, 201, "")
	o1, o2 := r1.str("order_id"), r2.str("order_id")

	up := a.call(http.MethodPatch, "/v1/products/a", map[string]any{"price_fen": 1500}).want(t, 200, "")
	if up.body["price_fen"] != float64(1500) {
		t.Fatalf("patch answered %s", up.raw)
	}
	for _, id := range []string{o1, o2} {
		priced(t, "order created before the change", a.call(http.MethodGet, "/v1/orders/"+id, nil).want(t, 200, ""), 1200, 1200)
	}
	priced(t, "order created after the change", a.order("a", "buyer3", "req-3", "").want(t, 201, ""), 1500, 1500)
	// Retrying the first order's request id returns it as it was priced.
	priced(t, "the first order's request repeated", a.order("a", "buyer1", "req-1", "one").want(t, 200, ""), 1200, 1200)

	// A genuine payment of the new price for the old order: EXCEPTION.
	pkg := func(r reply) string {
		p, _ := r.body["payment"].(map[string]any)
		s, _ := p["package"].(string)
		return strings.TrimPrefix(s, "prepay_id=")
	}
	if _, err := h.sim.Pay(context.Background(), pkg(r1), paysim.PayOptions{PaidTotalFen: 1500}); err != nil {
		t.Fatal(err)
	}
	h.waitAcked(o1)
	got := a.call(http.MethodGet, "/v1/orders/"+o1, nil).want(t, 200, "")
	if got.str("status") != string(order.StatusException) {
		t.Errorf("order paid at the new price is %s, want EXCEPTION", got.raw)
	}
	priced(t, "order paid at the new price", got, 1200, 1200)
	if l := h.ledger(o1); len(l) != 1 || l[0].Matched || l[0].TotalFen != 1500 {
		t.Errorf("ledger of the order paid at the new price: %+v, want one unmatched row of 1500", l)
	}
	exc := a.eventOf(o1, order.EventOrderException)
	data, _ := exc["data"].(map[string]any)
	eo, _ := data["order"].(map[string]any)
	if eo["status"] != string(order.StatusException) || eo["total_fen"] != float64(1200) || data["attach"] != "one" {
		t.Errorf("order.exception event %+v", exc)
	}
	for _, e := range a.events(o1) {
		if e["type"] == order.EventOrderPaid {
			t.Errorf("an order paid the wrong amount has an order.paid event: %+v", e)
		}
	}

	// The order's own total: PAID.
	a.payOrder(r2)
	h.waitAcked(o2)
	if got := a.call(http.MethodGet, "/v1/orders/"+o2, nil).want(t, 200, ""); got.str("status") != string(order.StatusPaid) {
		t.Errorf("order paid its own total is %s, want PAID", got.raw)
	}
	a.eventOf(o2, order.EventOrderPaid)

	// The project's server heard both decisions, each verified.
	byType := map[string]string{}
	for _, hk := range rc.waitFor(t, 5) { // created ×3, exception, paid
		if hk.Verified != nil {
			t.Errorf("webhook %s does not verify: %v", hk.ID, hk.Verified)
		}
		d, _ := hk.Body["data"].(map[string]any)
		o, _ := d["order"].(map[string]any)
		if id, _ := o["order_id"].(string); hk.Type != order.EventOrderCreated {
			byType[hk.Type] = id
		}
	}
	if byType[order.EventOrderException] != o1 || byType[order.EventOrderPaid] != o2 {
		t.Errorf("decision webhooks by type: %v, want exception for %s and paid for %s", byType, o1, o2)
	}
}
