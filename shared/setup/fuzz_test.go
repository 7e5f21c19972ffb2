package setup_test

// Fuzz targets through the real handlers (issue 3, item 5): whatever a
// client sends, or whatever a genuinely signed notification decrypts to, the
// answer is documented and the store changes only as the contract allows.
// Everything is real: wechatpay-go against the simulator over loopback,
// mongo-driver against embedded FerretDB. Seeds live in
// testdata/fuzz/<FuzzName>/; `go test` runs them every time.

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/payfn/payfn/shared/identity"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
)

// clientRoutes are the client functions and the answers README.md
// documents for each: status -> codes (nil for a success). Nothing a client
// sends may earn a 5xx while the store and WeChat Pay are up.
var clientRoutes = []struct {
	path    string
	session bool
	answers map[int][]string
}{
	{"/login", false, map[int][]string{
		200: nil,
		400: {"INVALID_LOGIN_CODE", "INVALID_REQUEST", "UNKNOWN_FIELD"},
		401: {"LOGIN_CODE_REJECTED"},
		413: {"BODY_TOO_LARGE"},
	}},
	{"/createOrder", true, map[int][]string{
		200: nil, 201: nil,
		400: {"UNKNOWN_FIELD", "INVALID_PRODUCT_ID", "INVALID_QUANTITY", "INVALID_REQUEST_ID", "ORDER_TOO_LARGE", "INVALID_REQUEST"},
		401: {"UNAUTHENTICATED"},
		404: {"PRODUCT_NOT_FOUND"},
		409: {"PRODUCT_NOT_ON_SALE", "IDEMPOTENCY_CONFLICT"},
		413: {"BODY_TOO_LARGE"},
	}},
	{"/pay", true, map[int][]string{
		200: nil,
		400: {"INVALID_ORDER_ID", "INVALID_REQUEST", "UNKNOWN_FIELD"},
		401: {"UNAUTHENTICATED"},
		404: {"ORDER_NOT_FOUND"},
		409: {"ORDER_NOT_PAYABLE", "ORDER_EXPIRED"},
		413: {"BODY_TOO_LARGE"},
	}},
	{"/queryOrder", true, map[int][]string{
		200: nil,
		400: {"INVALID_ORDER_ID", "INVALID_REQUEST", "UNKNOWN_FIELD"},
		401: {"UNAUTHENTICATED"},
		404: {"ORDER_NOT_FOUND"},
		413: {"BODY_TOO_LARGE"},
	}},
}

// Session kinds a fuzzed request is sent with.
const (
	sessNone = iota
	sessOwn
	sessForged
	sessExpired
	sessOther // another buyer's valid session
	sessKinds
)

// FuzzClientRequest sends any body to any client function with any kind of
// session. Placeholders in the body let seeds (and the fuzzer) reach real
// orders: {{order}} is the buyer's unpaid order, {{paid}} their paid order,
// {{other}} another buyer's order, {{code}} a fresh wx.login code.
//
// Checked on every input: the answer is one README.md documents for that
// function (never a 5xx); a bad or missing session is 401 whatever the body;
// a refused request leaves every order, ledger row and claim as it was; an
// accepted one changes only what its contract allows: createOrder adds at
// most one NOTPAY order owned by the caller and priced by the server, pay
// only stores a prepay id on the caller's own NOTPAY order, login and
// queryOrder change nothing. No ledger row or decision is ever made.
func FuzzClientRequest(f *testing.F) {
	h := newHarness(f)
	buyer := h.login("o-buyer")
	other := h.login("o-other")
	unpaid := h.createOrder(buyer, "latte", 1)
	paid := h.createOrder(buyer, "latte", 2)
	prepayID, _ := h.pay(buyer, paid)
	if _, err := h.sim.Pay(f.Context(), prepayID, paysim.PayOptions{}); err != nil {
		f.Fatal(err)
	}
	h.waitAcked(paid)
	othersOrder := h.createOrder(other, "latte", 1)
	forger, err := identity.NewTokens([]byte(strings.Repeat("x", 32)), time.Hour, nil)
	if err != nil {
		f.Fatal(err)
	}
	forged, _, _ := forger.Issue("o-buyer")
	expiredIssuer, err := identity.NewTokens([]byte(h.cfg.SessionSecret), time.Hour, func() time.Time { return time.Now().Add(-2 * time.Hour) })
	if err != nil {
		f.Fatal(err)
	}
	expired, _, _ := expiredIssuer.Issue("o-buyer")
	tokens := [sessKinds]string{sessOwn: buyer, sessForged: forged, sessExpired: expired, sessOther: other}
	callers := [sessKinds]string{sessOwn: "o-buyer", sessOther: "o-other"}

	h.dbSnapshot() // connects the snapshot client now: the fuzz function may not register cleanups on f
	capMinimization(f)
	f.Add(uint8(1), uint8(sessOwn), `{"product_id":"latte","quantity":3,"request_id":"fuzz-seed"}`)
	f.Add(uint8(2), uint8(sessOther), `{"order_id":"{{order}}"}`)
	f.Fuzz(func(t *testing.T, route, sess uint8, body string) {
		rt := clientRoutes[int(route)%len(clientRoutes)]
		kind := int(sess) % sessKinds
		body = strings.NewReplacer("{{order}}", unpaid, "{{paid}}", paid, "{{other}}", othersOrder).Replace(body)
		if strings.Contains(body, "{{code}}") {
			body = strings.ReplaceAll(body, "{{code}}", h.sim.NewLoginCode("o-fuzz"))
		}
		hdr := http.Header{"Content-Type": {"application/json"}}
		if tok := tokens[kind]; tok != "" {
			hdr.Set("Authorization", "Bearer "+tok)
		}
		before := h.snapshotFor(t)
		status, raw := serve(t, h.stack.Handler, rt.path, hdr, []byte(body))
		after := h.snapshotFor(t)
		t.Logf("%s %q -> %d %.120s", rt.path, body, status, raw)

		var ans struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			OrderID string `json:"order_id"`
		}
		if err := json.Unmarshal(raw, &ans); err != nil {
			t.Fatalf("%s answered %d with a body that is not JSON: %q", rt.path, status, raw)
		}
		codes, documented := rt.answers[status]
		if !documented || (status >= 400 && !contains(codes, ans.Code)) {
			t.Fatalf("%s %q answered %d %s: not a documented answer", rt.path, body, status, raw)
		}
		if rt.session && callers[kind] == "" && status != 401 {
			t.Fatalf("%s with session kind %d answered %d %s, want 401", rt.path, kind, status, raw)
		}
		for _, coll := range []string{"payments", "claims", "products"} {
			if strings.Join(before[coll], "\n") != strings.Join(after[coll], "\n") {
				t.Fatalf("%s %q (%d) changed %s:\n%s", rt.path, body, status, coll, before.diff(after))
			}
		}
		if status >= 400 {
			if d := before.diff(after); d != "" {
				t.Fatalf("refused %s %q (%d %s) wrote to the store:\n%s", rt.path, body, status, raw, d)
			}
			return
		}
		checkOrderChanges(t, rt.path, callers[kind], ans.OrderID, ordersOf(t, before), ordersOf(t, after))
	})
}

// checkOrderChanges holds an accepted client request to what its function
// may write to the orders collection.
func checkOrderChanges(t *testing.T, path, caller, answered string, before, after map[string]order.Order) {
	t.Helper()
	for id, a := range after {
		b, existed := before[id]
		switch {
		case !existed:
			if path != "/createOrder" || id != answered || len(after) != len(before)+1 {
				t.Fatalf("%s created order %s (answered %s)", path, id, answered)
			}
			if a.Owner != caller || a.Status != order.StatusNotPay || a.ProductID != "latte" ||
				a.Quantity < 1 || a.Quantity > order.MaxQuantity || a.TotalFen != 2800*a.Quantity || a.TransactionID != "" {
				t.Fatalf("createOrder stored %+v for %s: want a NOTPAY latte order priced 2800 fen each", a, caller)
			}
		case path == "/pay" && id == answered:
			// What pay may write: the prepay id, its expiry, the update time.
			b.PrepayID, b.PrepayExpiresAt, b.UpdatedAt = a.PrepayID, a.PrepayExpiresAt, a.UpdatedAt
			if a.Owner != caller || a.Status != order.StatusNotPay || !sameOrder(a, b) {
				t.Fatalf("pay changed order %s:\nbefore %+v\nafter  %+v", id, before[id], a)
			}
		default:
			if !sameOrder(a, b) {
				t.Fatalf("%s changed order %s:\nbefore %+v\nafter  %+v", path, id, b, a)
			}
		}
	}
	if len(after) < len(before) {
		t.Fatalf("%s deleted an order", path)
	}
}

func sameOrder(a, b order.Order) bool {
	x, _ := bson.Marshal(a)
	y, _ := bson.Marshal(b)
	return string(x) == string(y)
}

// ordersOf reads the orders of a snapshot by id.
func ordersOf(t *testing.T, s snapshot) map[string]order.Order {
	t.Helper()
	m := map[string]order.Order{}
	for _, doc := range s["orders"] {
		var o order.Order
		if err := bson.UnmarshalExtJSON([]byte(doc), true, &o); err != nil {
			t.Fatalf("snapshot order %s: %v", doc, err)
		}
		m[o.ID] = o
	}
	return m
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// FuzzSignedNotificationContent lets the fuzzer choose what a notification
// says once decrypted (any event type, any plaintext), then encrypts it with
// the APIv3 key and signs it with the platform key exactly as WeChat Pay
// does, and delivers it to verifyPayment through the real handler. So every
// check behind the signature is fuzzed: appid, mchid, currency, out_trade_no,
// trade_state, amount, the ledger and the settlement claim. {{order}} in the
// plaintext is an unpaid order of the merchant's.
//
// Checked on every input: no panic, never a 5xx; a refusal changes nothing;
// an acknowledgement changes something only for a successful payment of
// ours (right appid, mchid, CNY, a transaction id, a known order), and then
// exactly: one ledger row for that transaction, and the order decided once
// (PAID when the amount matches, EXCEPTION otherwise) and never decided
// again by a later payment.
func FuzzSignedNotificationContent(f *testing.F) {
	h := newHarness(f)
	buyer := h.login("o-buyer")
	unpaid := h.createOrder(buyer, "latte", 1)
	fg := h.forger()
	h.dbSnapshot() // connects the snapshot client now, as in FuzzClientRequest
	capMinimization(f)
	f.Add("TRANSACTION.SUCCESS", []byte(`{"appid":"`+testAppID+`","mchid":"`+testMchID+`","out_trade_no":"{{order}}","transaction_id":"4200000001202601010000000001","trade_state":"SUCCESS","amount":{"total":2800,"currency":"CNY"}}`))
	f.Fuzz(func(t *testing.T, eventType string, plain []byte) {
		plain = []byte(strings.ReplaceAll(string(plain), "{{order}}", unpaid))
		env := fg.envelope(t, plain)
		env["event_type"] = eventType
		hdr, body := fg.build(t, env)
		before := h.snapshotFor(t)
		status, raw := serve(t, h.stack.Handler, "/notify/wechatpay", hdr, body)
		after := h.snapshotFor(t)
		t.Logf("%s %.100q -> %d %s", eventType, plain, status, raw)

		var ans struct{ Code string }
		json.Unmarshal(raw, &ans)
		refusals := map[int]string{400: "NOTIFICATION_MISMATCH", 401: "INVALID_NOTIFICATION", 404: "ORDER_NOT_FOUND", 413: "BODY_TOO_LARGE"}
		if want, ok := refusals[status]; status != 200 && (!ok || ans.Code != want) {
			t.Fatalf("answered %d %s for %q: not a documented answer", status, raw, plain)
		}
		if status != 200 {
			if d := before.diff(after); d != "" {
				t.Fatalf("a refused notification (%d %s) changed the store:\n%s", status, raw, d)
			}
			return
		}
		if before.diff(after) == "" {
			return // acknowledged without change: not a payment of ours, or already recorded
		}
		// Something changed: it must be a genuine successful payment of ours.
		var tx struct {
			AppID, MchID  string
			OutTradeNo    string `json:"out_trade_no"`
			TransactionID string `json:"transaction_id"`
			TradeState    string `json:"trade_state"`
			Amount        struct {
				Total    int64
				Currency string
			}
		}
		if err := json.Unmarshal(plain, &tx); err != nil {
			t.Fatalf("a notification that does not decode changed the store: %q", plain)
		}
		if eventType != "TRANSACTION.SUCCESS" || tx.TradeState != "SUCCESS" || tx.AppID != testAppID || tx.MchID != testMchID ||
			tx.Amount.Currency != "CNY" || tx.TransactionID == "" {
			t.Fatalf("a notification that is not a successful payment of ours changed the store: %s %q", eventType, plain)
		}
		if d := diffCollection(before, after, "products"); d != "" {
			t.Fatalf("products changed: %s", d)
		}
		if n := len(after["payments"]) - len(before["payments"]); n != 1 {
			t.Fatalf("%d ledger rows added for one payment", n)
		}
		o := ordersOf(t, after)[tx.OutTradeNo]
		was := ordersOf(t, before)[tx.OutTradeNo]
		switch {
		case was.Status == order.StatusNotPay:
			want := order.StatusPaid
			if tx.Amount.Total != was.TotalFen {
				want = order.StatusException
			}
			if o.Status != want || o.TransactionID != tx.TransactionID || len(after["claims"]) != len(before["claims"])+1 {
				t.Fatalf("paid %d for a %d order: now %s by %q, want %s by %s", tx.Amount.Total, was.TotalFen, o.Status, o.TransactionID, want, tx.TransactionID)
			}
		default:
			// Already decided: the payment is on record, the decision stands.
			if !sameOrder(o, was) || len(after["claims"]) != len(before["claims"]) {
				t.Fatalf("a later payment changed decided order %s: %+v -> %+v", tx.OutTradeNo, was, o)
			}
		}
	})
}

// capMinimization caps how long the fuzzer minimises each new input, unless
// -fuzzminimizetime was given. These targets run a whole stack (embedded
// store, loopback servers, driver goroutines), so coverage varies from run
// to run and nearly every input looks new; minimising each for the default
// 60 s stalls fuzzing at 0 execs/s. Ten executions per input keeps the
// corpus small enough and the fuzzer moving.
func capMinimization(f *testing.F) {
	set := false
	flag.Visit(func(fl *flag.Flag) { set = set || fl.Name == "test.fuzzminimizetime" })
	if !set {
		if err := flag.Set("test.fuzzminimizetime", "10x"); err != nil {
			f.Fatal(err)
		}
	}
}

func diffCollection(a, b snapshot, coll string) string {
	if x, y := strings.Join(a[coll], "\n"), strings.Join(b[coll], "\n"); x != y {
		return fmt.Sprintf("%s: %d docs -> %d docs", coll, len(a[coll]), len(b[coll]))
	}
	return ""
}
