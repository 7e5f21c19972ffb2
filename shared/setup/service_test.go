package setup_test

import (
	"net/http"
	"testing"
)

func TestServicePurchaseNotifiesTheProjectServerOfCreationAndPaymentWithItsAttach(t *testing.T) {
	h := newServiceHarness(t)
	a := h.newApp("shopa")
	rc := newReceiver(t)
	a.endpoint(rc)
	a.product("a", 1200)

	r := a.order("a", "15705420001", "req-1", "xxxxxx").want(t, 201, "")
	orderID := r.str("order_id")
	if r.str("buyer") != "15705420001" || r.str("attach") != "xxxxxx" || r.body["payment"] == nil {
		t.Fatalf("create order answered %s", r.raw)
	}
	a.payOrder(r)
	h.waitAcked(orderID)

	hooks := rc.waitFor(t, 2)
	types := map[string]receivedHook{}
	for _, hk := range hooks {
		if hk.Verified != nil {
			t.Fatalf("webhook %s does not verify: %v", hk.ID, hk.Verified)
		}
		types[hk.Type] = hk
	}
	for _, typ := range []string{"order.created", "order.paid"} {
		hk, ok := types[typ]
		if !ok {
			t.Fatalf("no %s webhook among %+v", typ, hooks)
		}
		data, _ := hk.Body["data"].(map[string]any)
		o, _ := data["order"].(map[string]any)
		if data["attach"] != "xxxxxx" || o["order_id"] != orderID || o["buyer"] != "15705420001" || o["product_id"] != "a" {
			t.Fatalf("%s body %+v", typ, hk.Body)
		}
	}
	got := a.call(http.MethodGet, "/v1/orders/"+orderID+"?refresh=true", nil).want(t, 200, "")
	if got.str("status") != "PAID" {
		t.Fatalf("order %s", got.raw)
	}
	events := a.call(http.MethodGet, "/v1/events?order_id="+orderID, nil).want(t, 200, "")
	if list, _ := events.body["events"].([]any); len(list) != 2 {
		t.Fatalf("events %s", events.raw)
	}
}
