package setup_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sameAsMissing fails unless got (an answer about realID) is exactly the
// answer about a missing missingID: 404, the same code, the same message
// but for the id. Anything else would tell the caller the record exists.
func sameAsMissing(t *testing.T, what string, got, missing reply, realID, missingID string) {
	t.Helper()
	if got.status != http.StatusNotFound || missing.status != http.StatusNotFound {
		t.Errorf("%s: answered %d %s; a missing one %d %s; want both 404", what, got.status, got.raw, missing.status, missing.raw)
		return
	}
	gotMsg := strings.ReplaceAll(got.str("message"), realID, "<id>")
	missingMsg := strings.ReplaceAll(missing.str("message"), missingID, "<id>")
	if got.str("code") != missing.str("code") || gotMsg != missingMsg {
		t.Errorf("%s: answered %s, a missing one %s: they differ", what, got.raw, missing.raw)
	}
}

func eventIDs(events []map[string]any) []string {
	var ids []string
	for _, e := range events {
		id, _ := e["id"].(string)
		ids = append(ids, id)
	}
	return ids
}

func TestServiceAppsAreIsolatedEveryRouteAnswersAnotherAppsRecordsAsMissingAndChangesNothing(t *testing.T) {
	h := newServiceHarness(t)
	a, b := h.newApp("shopa"), h.newApp("shopb")
	rcB := newReceiver(t)
	b.endpoint(rcB)
	rcA := newReceiver(t)
	a.endpoint(rcA)
	// The same product id in both apps: two products, each its app's.
	a.product("p", 500)
	b.product("p", 1200)
	b.product("bonly", 900)

	// B sells, is paid, and refunds part: orders, events and a refund of B's.
	rb := b.order("p", "buyer1", "req-1", "b-attach").want(t, 201, "")
	bOrder := rb.str("order_id")
	b.payOrder(rb)
	h.waitAcked(bOrder)
	ref := b.call(http.MethodPost, "/v1/orders/"+bOrder+"/refunds", map[string]any{"refund_id": "rf-1", "amount_fen": 100}).want(t, 201, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.sim.WaitAcked(ctx, ref.str("out_refund_no")); err != nil {
		t.Fatalf("refund notification never acknowledged: %v", err)
	}
	bEvents := b.events(bOrder)
	if len(bEvents) != 3 {
		t.Fatalf("B's order has %d events, want created, paid, refund.succeeded: %+v", len(bEvents), bEvents)
	}
	// A sells too, with the same buyer and request id, so each list has
	// something of A's to show.
	ra := a.order("p", "buyer1", "req-1", "").want(t, 201, "")
	aOrder := ra.str("order_id")
	if aOrder == bOrder || ra.body["total_fen"] != float64(500) {
		t.Fatalf("A's order %s", ra.raw)
	}
	// A mini-program buyer's order in the default app.
	token := h.login("o-mini")
	defOrder := h.createOrder(token, "latte", 1)

	before := h.fullSnapshot()
	hooksB, hooksA := len(rcB.hooks()), len(rcA.hooks())

	const missingOrder, missingEvent, missingProduct = "NoSuchOrder000000000001", "evt_000000000000000000000000", "nosuch"

	// Lists show A's own records only.
	ps := a.call(http.MethodGet, "/v1/products", nil).want(t, 200, "")
	if list, _ := ps.body["products"].([]any); len(list) != 1 || list[0].(map[string]any)["price_fen"] != float64(500) {
		t.Errorf("A's product list %s, want its one product p at 500", ps.raw)
	}
	all := a.call(http.MethodGet, "/v1/events?limit=100", nil).want(t, 200, "")
	list, _ := all.body["events"].([]any)
	if len(list) != 1 {
		t.Errorf("A's event list has %d events, want its one order.created: %s", len(list), all.raw)
	}
	for _, e := range list {
		if m := e.(map[string]any); m["app_id"] != "shopa" || m["order_id"] != aOrder {
			t.Errorf("A's event list shows %v", m)
		}
	}

	// Every route, about B's records and the default app's, answers as
	// about a missing one.
	type probe struct {
		name, method string
		path         func(id string) string
		body         any
	}
	orderProbes := []probe{
		{"get order", http.MethodGet, func(id string) string { return "/v1/orders/" + id }, nil},
		{"refresh order", http.MethodGet, func(id string) string { return "/v1/orders/" + id + "?refresh=true" }, nil},
		{"refund order", http.MethodPost, func(id string) string { return "/v1/orders/" + id + "/refunds" }, map[string]any{"refund_id": "rf-1", "amount_fen": 100}},
	}
	for _, other := range []struct{ who, id string }{{"B's", bOrder}, {"the default app's", defOrder}} {
		for _, p := range orderProbes {
			got := a.call(p.method, p.path(other.id), p.body)
			missing := a.call(p.method, p.path(missingOrder), p.body)
			sameAsMissing(t, p.name+" of "+other.who+" order", got, missing, other.id, missingOrder)
		}
		got := a.call(http.MethodGet, "/v1/events?order_id="+other.id, nil).want(t, 200, "")
		if l, _ := got.body["events"].([]any); len(l) != 0 {
			t.Errorf("A's events of %s order %s: %s", other.who, other.id, got.raw)
		}
	}
	for _, id := range eventIDs(bEvents) {
		for _, p := range []probe{
			{"get event", http.MethodGet, func(id string) string { return "/v1/events/" + id }, nil},
			{"redeliver event", http.MethodPost, func(id string) string { return "/v1/events/" + id + "/redeliver" }, map[string]any{}},
		} {
			sameAsMissing(t, p.name+" of B's", a.call(p.method, p.path(id), p.body), a.call(p.method, p.path(missingEvent), p.body), id, missingEvent)
		}
	}
	patch := map[string]any{"price_fen": 1, "active": false}
	sameAsMissing(t, "patch B's product", a.call(http.MethodPatch, "/v1/products/bonly", patch),
		a.call(http.MethodPatch, "/v1/products/"+missingProduct, patch), "bonly", missingProduct)
	buy := func(product string) map[string]any {
		return map[string]any{"product_id": product, "quantity": 1, "request_id": "req-x-" + product, "buyer": "buyer9", "payer_openid": "openid-buyer9"}
	}
	sameAsMissing(t, "order B's product", a.call(http.MethodPost, "/v1/orders", buy("bonly")),
		a.call(http.MethodPost, "/v1/orders", buy(missingProduct)), "bonly", missingProduct)

	// A mini-program buyer, even one whose openid is B's buyer or payer,
	// cannot see or pay a service app's order.
	for _, openid := range []string{"buyer1", "openid-buyer1"} {
		tok := h.login(openid)
		for _, path := range []string{"/queryOrder", "/pay"} {
			got := h.postJSON(path, tok, map[string]string{"order_id": bOrder})
			missing := h.postJSON(path, tok, map[string]string{"order_id": missingOrder})
			sameAsMissing(t, "mini-program "+path+" of B's order as "+openid, got, missing, bOrder, missingOrder)
		}
	}

	if d := before.fullDiff(h.fullSnapshot()); d != "" {
		t.Errorf("requests about another app's records changed the store:\n%s", d)
	}
	if n := len(rcB.hooks()); n != hooksB {
		t.Errorf("B's endpoint received %d more webhooks", n-hooksB)
	}
	if n := len(rcA.hooks()); n != hooksA {
		t.Errorf("A's endpoint received %d more webhooks: %+v", n-hooksA, rcA.hooks()[hooksA:])
	}
	// B still sees all of its own.
	b.call(http.MethodGet, "/v1/orders/"+bOrder, nil).want(t, 200, "")
	for _, id := range eventIDs(bEvents) {
		b.call(http.MethodGet, "/v1/events/"+id, nil).want(t, 200, "")
	}
}
