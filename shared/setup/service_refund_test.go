package setup_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
)

func TestServiceRefundIsIdempotentByRefundIDReportsRefundSucceededAndNeverExceedsWhatWasPaid(t *testing.T) {
	h := newServiceHarness(t)
	a := h.newApp("shopa")
	rc := newReceiver(t)
	a.endpoint(rc)
	a.product("p", 1200)
	r := a.order("p", "buyer1", "req-1", "gift").want(t, 201, "")
	id := r.str("order_id")
	path := "/v1/orders/" + id + "/refunds"

	// Not yet paid: nothing to refund.
	a.call(http.MethodPost, path, map[string]any{"refund_id": "rf-0", "amount_fen": 100}).want(t, 409, app.CodeOrderNotRefundable)
	a.payOrder(r)
	h.waitAcked(id)

	first := a.call(http.MethodPost, path, map[string]any{"refund_id": "rf-1", "amount_fen": 500, "reason": "broken"}).want(t, 201, "")
	no := first.str("out_refund_no")
	if first.str("refund_id") != "rf-1" || first.str("order_id") != id || first.body["amount_fen"] != float64(500) || no == "" {
		t.Fatalf("refund answered %s", first.raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.sim.WaitAcked(ctx, no); err != nil {
		t.Fatalf("refund notification never acknowledged: %v", err)
	}
	again := a.call(http.MethodPost, path, map[string]any{"refund_id": "rf-1", "amount_fen": 500, "reason": "broken"}).want(t, 200, "")
	if again.str("out_refund_no") != no || again.str("refund_id") != "rf-1" || again.str("status") != string(order.RefundSucceeded) {
		t.Errorf("the repeat answered %s, want the same refund, now %s", again.raw, order.RefundSucceeded)
	}
	a.call(http.MethodPost, path, map[string]any{"refund_id": "rf-1", "amount_fen": 400}).want(t, 409, app.CodeIdempotencyConflict)

	// 700 fen are left: 701 is too much, whatever the refund id.
	a.call(http.MethodPost, path, map[string]any{"refund_id": "rf-2", "amount_fen": 701}).want(t, 409, app.CodeRefundExceedsPaid)
	a.call(http.MethodPost, path, map[string]any{"refund_id": "rf-3", "amount_fen": 1300}).want(t, 409, app.CodeRefundExceedsPaid)
	refunds, err := h.stack.Store.Refunds(context.Background(), id)
	if err != nil || len(refunds) != 1 {
		t.Errorf("order has refunds %+v (%v), want the one", refunds, err)
	}

	ev := a.eventOf(id, order.EventRefundSucceeded) // fails unless exactly one
	data, _ := ev["data"].(map[string]any)
	ref, _ := data["refund"].(map[string]any)
	eo, _ := data["order"].(map[string]any)
	if ref["refund_id"] != "rf-1" || ref["out_refund_no"] != no || ref["amount_fen"] != float64(500) ||
		ref["status"] != string(order.RefundSucceeded) || ref["succeeded_at"] == nil || eo["order_id"] != id || data["attach"] != "gift" {
		t.Errorf("refund.succeeded event data %v", data)
	}
	got := a.call(http.MethodGet, "/v1/orders/"+id, nil).want(t, 200, "")
	if s, _ := got.body["refund"].(map[string]any); s == nil {
		t.Errorf("order after a refund shows no refund summary: %s", got.raw)
	}
	n := 0
	for _, hk := range rc.hooks() {
		if hk.Type == order.EventRefundSucceeded && hk.OK() && hk.ID == ev["id"] {
			n++
		}
	}
	if n != 1 {
		t.Errorf("receiver got refund.succeeded %d times, want once", n)
	}
}
