package setup_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
)

// Profit sharing through the server API: a product's split rule set with
// POST and PATCH /v1/products, checked there, and copied by each order.

// splitJSON is shareRule as a server sends it.
func splitJSON(merchantBP int) map[string]any {
	return map[string]any{"receivers": []any{
		map[string]any{"type": "MERCHANT_ID", "account": shareMerchant, "name": "上海某某品牌管理有限公司", "relation_type": "BRAND", "share_bp": merchantBP},
		map[string]any{"type": "PERSONAL_OPENID", "account": sharePerson, "relation_type": "DISTRIBUTOR", "fixed_fen": 500, "description": "推广佣金"},
	}}
}

// productSplit decodes a product answer's split (nil when it has none).
func productSplit(t *testing.T, r reply) *order.Split {
	t.Helper()
	var p struct {
		Split *order.Split `json:"split"`
	}
	if err := json.Unmarshal(r.raw, &p); err != nil {
		t.Fatalf("product answer %s: %v", r.raw, err)
	}
	return p.Split
}

func TestSharingRuleThroughTheProductsAPIIsCheckedAndSnapshotByOrders(t *testing.T) {
	h := newServiceHarness(t)
	c := h.newApp("shop")

	created := c.call(http.MethodPost, "/v1/products", map[string]any{"product_id": "box", "title": "Shared box", "price_fen": sharePrice,
		"split": splitJSON(2000)}).want(t, 201, "")
	if got := productSplit(t, created); !reflect.DeepEqual(got, shareRule()) {
		t.Fatalf("created product's split = %+v, want %+v", got, shareRule())
	}

	// Refused rules write nothing, on POST and on PATCH.
	before := h.fullSnapshot()
	person := func(extra map[string]any) map[string]any {
		r := map[string]any{"type": "PERSONAL_OPENID", "account": sharePerson, "relation_type": "USER", "share_bp": 100}
		for k, v := range extra {
			r[k] = v
		}
		return map[string]any{"receivers": []any{r}}
	}
	for name, split := range map[string]any{
		"no receivers":          map[string]any{"receivers": []any{}},
		"receivers not a list":  map[string]any{"receivers": "all"},
		"not an object":         "20%",
		"unknown rule field":    map[string]any{"receivers": []any{}, "max_bp": 3000},
		"unknown receiver key":  person(map[string]any{"percent": 1}),
		"key in another case":   map[string]any{"Receivers": person(nil)["receivers"]},
		"share_bp as a string":  person(map[string]any{"share_bp": "100"}),
		"share_bp and fixed":    person(map[string]any{"fixed_fen": 5}),
		"merchant without name": map[string]any{"receivers": []any{map[string]any{"type": "MERCHANT_ID", "account": shareMerchant, "relation_type": "BRAND", "share_bp": 100}}},
		"custom without text":   person(map[string]any{"relation_type": "CUSTOM"}),
		"negative hold":         map[string]any{"receivers": person(nil)["receivers"], "hold_seconds": -1},
	} {
		r := c.call(http.MethodPost, "/v1/products", map[string]any{"product_id": "bad", "title": "Bad", "price_fen": 100, "split": split})
		if r.status != 400 || r.str("code") != app.CodeInvalidSplit {
			t.Errorf("%s: POST answered %d %s, want 400 %s", name, r.status, r.raw, app.CodeInvalidSplit)
		}
		r = c.call(http.MethodPatch, "/v1/products/box", map[string]any{"split": split})
		if r.status != 400 || r.str("code") != app.CodeInvalidSplit {
			t.Errorf("%s: PATCH answered %d %s, want 400 %s", name, r.status, r.raw, app.CodeInvalidSplit)
		}
	}
	// A key named twice inside the rule (the body as sent, not re-marshalled).
	dup := []byte(`{"product_id": "bad", "title": "Bad", "price_fen": 100, "split": {"receivers": [{"type": "PERSONAL_OPENID", "account": "o-1", "relation_type": "USER", "share_bp": 100, "share_bp": 9000}]}}`)
	do(t, c.signed(http.MethodPost, "/v1/products", dup)).want(t, 400, app.CodeInvalidSplit)
	c.call(http.MethodPatch, "/v1/products/box", map[string]any{"split": splitJSON(1000), "remove_split": true}).want(t, 400, app.CodeInvalidSplit)
	c.call(http.MethodPatch, "/v1/products/box", map[string]any{"remove_split": "yes"}).want(t, 400, app.CodeInvalidRequest)
	// 30.01 % in share_bp (the fixed share is judged against the amount paid, later).
	c.call(http.MethodPost, "/v1/products", map[string]any{"product_id": "over", "title": "Over", "price_fen": 100,
		"split": splitJSON(3001)}).want(t, 400, app.CodeSplitOverMaxRatio)
	c.call(http.MethodPatch, "/v1/products/box", map[string]any{"split": splitJSON(3001)}).want(t, 400, app.CodeSplitOverMaxRatio)
	c.call(http.MethodPatch, "/v1/products/box", map[string]any{"title": "Renamed", "split": splitJSON(3001)}).want(t, 400, app.CodeSplitOverMaxRatio)
	if d := before.fullDiff(h.fullSnapshot()); d != "" {
		t.Fatalf("refused rules changed the store:\n%s", d)
	}

	// An order copies the rule; its payment is frozen for the split.
	r := c.order("box", "u-1", "req-1", "").want(t, 201, "")
	id := r.str("order_id")
	if got := h.order(id).Split; !reflect.DeepEqual(got, shareRule()) {
		t.Fatalf("order's split = %+v, want the product's %+v", got, shareRule())
	}
	paid := c.payOrder(r)
	h.waitAcked(id)
	if v := h.sim.Sharing(paid.TransactionID); v.UnsplitFen != sharePrice {
		t.Errorf("the paid split order's unsplit amount at WeChat Pay = %d, want %d (prepaid with settle_info.profit_sharing)", v.UnsplitFen, sharePrice)
	}

	// A later change of the rule does not reach the order; a new order
	// takes the new rule, and none once it is removed.
	changed := c.call(http.MethodPatch, "/v1/products/box", map[string]any{"split": splitJSON(1000)}).want(t, 200, "")
	if got := productSplit(t, changed); got == nil || got.Receivers[0].ShareBP != 1000 || len(got.Receivers) != 2 {
		t.Fatalf("patched split = %+v", got)
	}
	if got := h.order(id).Split; !reflect.DeepEqual(got, shareRule()) {
		t.Fatalf("after PATCH the order's split = %+v, want the one it was created with %+v", got, shareRule())
	}
	r2 := c.order("box", "u-1", "req-2", "").want(t, 201, "")
	if got := h.order(r2.str("order_id")).Split; got == nil || got.Receivers[0].ShareBP != 1000 {
		t.Fatalf("a new order's split = %+v, want the patched rule", got)
	}
	// A PATCH of another field keeps the rule.
	renamed := c.call(http.MethodPatch, "/v1/products/box", map[string]any{"title": "Box", "split": nil}).want(t, 200, "")
	if got := productSplit(t, renamed); got == nil || got.Receivers[0].ShareBP != 1000 {
		t.Fatalf("a PATCH without split changed it to %+v", got)
	}
	removed := c.call(http.MethodPatch, "/v1/products/box", map[string]any{"remove_split": true}).want(t, 200, "")
	if _, ok := removed.body["split"]; ok {
		t.Fatalf("after remove_split the product answers %s", removed.raw)
	}
	r3 := c.order("box", "u-1", "req-3", "").want(t, 201, "")
	if got := h.order(r3.str("order_id")).Split; got != nil {
		t.Fatalf("an order after remove_split has split %+v", got)
	}
	list := c.call(http.MethodGet, "/v1/products", nil).want(t, 200, "")
	if ps, _ := list.body["products"].([]any); len(ps) != 1 {
		t.Fatalf("products: %s", list.raw)
	}

	// A refund of the split order opens its return at once: the next
	// shareProfits run returns the share without first discovering the
	// refund.
	rf := c.call(http.MethodPost, "/v1/orders/"+id+"/refunds", map[string]any{"refund_id": "rf-1", "amount_fen": 5000}).want(t, 201, "")
	no := rf.str("out_refund_no")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	due, err := h.stack.Store.DueReturnTasks(ctx, time.Now(), time.Time{}, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 1 || due[0].ID != no || due[0].OrderID != id || !due[0].Open || due[0].AppID != "shop" {
		t.Fatalf("return tasks due right after the refund: %+v, want one for %s", due, no)
	}
	// A refund of an order without a rule opens none.
	c.payOrder(r3)
	h.waitAcked(r3.str("order_id"))
	c.call(http.MethodPost, "/v1/orders/"+r3.str("order_id")+"/refunds", map[string]any{"refund_id": "rf-2", "amount_fen": 100}).want(t, 201, "")
	if due, err := h.stack.Store.DueReturnTasks(ctx, time.Now(), time.Time{}, "", 10); err != nil || len(due) != 1 {
		t.Fatalf("return tasks after a refund of an order without a rule: %+v, %v", due, err)
	}
}
