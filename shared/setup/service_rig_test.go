package setup_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/config"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/setup"
	"github.com/payfn/payfn/shared/webhook"
)

// testServiceKey turns service mode on in the test stacks.
const testServiceKey = "service-key-service-key-service-key-0123"

// newServiceHarness is newHarness with service mode on and webhooks allowed
// to reach loopback receivers.
func newServiceHarness(t testing.TB, edit ...func(*config.Config)) *harness {
	t.Helper()
	return newHarness(t, append([]func(*config.Config){func(c *config.Config) {
		c.ServiceKey = testServiceKey
		c.WebhookAllowPrivate = true
	}}, edit...)...)
}

// admin sends an operator request to the app administration.
func (h *harness) admin(method, path string, body any) reply {
	h.t.Helper()
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	req, err := http.NewRequest(method, h.url+path, bytes.NewReader(raw))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("X-Payfn-Admin-Key", testAdminKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return do(h.t, req)
}

func do(t testing.TB, req *http.Request) reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, raw: raw}
	json.Unmarshal(raw, &r.body)
	return r
}

// client is a project's server: its app id and API key.
type client struct {
	h      *harness
	app    string
	keyID  string
	secret string
	now    func() time.Time // the clock it signs with; nil: time.Now
}

// newApp registers an app through the admin API and returns its server.
func (h *harness) newApp(id string) *client {
	h.t.Helper()
	r := h.admin(http.MethodPost, "/admin/apps", map[string]any{"app_id": id, "name": "App " + id}).want(h.t, 201, "")
	key, _ := r.body["api_key"].(map[string]any)
	c := &client{h: h, app: id}
	c.keyID, _ = key["id"].(string)
	c.secret, _ = key["secret"].(string)
	if c.keyID == "" || c.secret == "" {
		h.t.Fatalf("create app answered no key: %s", r.raw)
	}
	return c
}

func nonce() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// signed builds a server-API request signed now with a fresh nonce.
func (c *client) signed(method, path string, body []byte) *http.Request {
	c.h.t.Helper()
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	ts := strconv.FormatInt(now().Unix(), 10)
	n := nonce()
	req, err := http.NewRequest(method, c.h.url+path, bytes.NewReader(body))
	if err != nil {
		c.h.t.Fatal(err)
	}
	req.Header.Set("X-Payfn-Key-Id", c.keyID)
	req.Header.Set("X-Payfn-Timestamp", ts)
	req.Header.Set("X-Payfn-Nonce", n)
	req.Header.Set("X-Payfn-Signature", app.SignServerRequest(c.secret, method, path, ts, n, body))
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// call sends a signed server-API request with a JSON body (nil: none).
func (c *client) call(method, path string, body any) reply {
	c.h.t.Helper()
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	return do(c.h.t, c.signed(method, path, raw))
}

func (c *client) product(id string, price int64) {
	c.h.t.Helper()
	c.call(http.MethodPost, "/v1/products", map[string]any{"product_id": id, "title": "Product " + id, "price_fen": price}).want(c.h.t, 201, "")
}

// order creates an order for buyer and returns the reply (201 with payment).
func (c *client) order(product, buyer, requestID, attach string) reply {
	c.h.t.Helper()
	return c.call(http.MethodPost, "/v1/orders", map[string]any{"product_id": product, "quantity": 1, "request_id": requestID,
		"buyer": buyer, "attach": attach, "payer_openid": "openid-" + buyer})
}

// payOrder pays an order at the simulator from its reply's payment package.
func (c *client) payOrder(r reply) paysim.PaidTrade {
	c.h.t.Helper()
	payment, _ := r.body["payment"].(map[string]any)
	pkg, _ := payment["package"].(string)
	paid, err := c.h.sim.Pay(context.Background(), strings.TrimPrefix(pkg, "prepay_id="), paysim.PayOptions{})
	if err != nil {
		c.h.t.Fatalf("pay %s: %v", r.raw, err)
	}
	return paid
}

// receiver is a project's webhook endpoint on loopback.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []receivedHook
	seen   int             // requests begun
	perID  map[string]int  // requests begun per webhook-id
	answer func(n int) int // status for the n-th request (0-based)
	// respond, when set, answers instead of answer: it may set headers or
	// block, and returns the status. attempt counts the requests for this
	// webhook-id (0-based).
	respond func(w http.ResponseWriter, r *http.Request, attempt int) int
	secret  string
	now     func() time.Time // the clock signatures are verified at; nil: time.Now
}

type receivedHook struct {
	ID, Type string
	Status   int // 0: the sender gave up before the answer
	Verified error
	Body     map[string]any
	Raw      []byte
	Header   http.Header
}

// OK reports whether the sender got a 2xx answer to this request.
func (hk receivedHook) OK() bool { return hk.Status >= 200 && hk.Status <= 299 }

func newReceiver(t testing.TB) *receiver {
	t.Helper()
	rc := &receiver{answer: func(int) int { return 204 }, perID: map[string]int{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := r.Header.Get("webhook-id")
		rc.mu.Lock()
		n, attempt := rc.seen, rc.perID[id]
		rc.seen++
		rc.perID[id]++
		answer, respond, secret, now := rc.answer, rc.respond, rc.secret, rc.now
		rc.mu.Unlock()
		var status int
		if respond != nil {
			status = respond(w, r, attempt)
		} else {
			status = answer(n)
		}
		h := receivedHook{ID: id, Status: status, Raw: body, Header: r.Header.Clone()}
		if r.Context().Err() != nil {
			h.Status = 0 // the sender hung up: it never saw an answer
		}
		if secret != "" {
			if now == nil {
				now = time.Now
			}
			h.Verified = webhook.VerifyAt(secret, r.Header, body, now(), 0)
		}
		json.Unmarshal(body, &h.Body)
		h.Type, _ = h.Body["type"].(string)
		rc.mu.Lock()
		rc.got = append(rc.got, h)
		rc.mu.Unlock()
		if h.Status > 0 {
			w.WriteHeader(status)
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// respondWith makes fn answer the receiver's requests from now on.
func (rc *receiver) respondWith(fn func(w http.ResponseWriter, r *http.Request, attempt int) int) {
	rc.mu.Lock()
	rc.respond = fn
	rc.mu.Unlock()
}

// verifyAt makes the receiver check timestamps against now (a fake clock).
func (rc *receiver) verifyAt(now func() time.Time) {
	rc.mu.Lock()
	rc.now = now
	rc.mu.Unlock()
}

func (rc *receiver) hooks() []receivedHook {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]receivedHook(nil), rc.got...)
}

// waitFor waits until the receiver has n requests.
func (rc *receiver) waitFor(t testing.TB, n int) []receivedHook {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if hs := rc.hooks(); len(hs) >= n {
			return hs
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("receiver got %d requests, want %d: %+v", len(rc.hooks()), n, rc.hooks())
	return nil
}

// endpoint registers rc as an endpoint of c's app and keeps its secret.
func (c *client) endpoint(rc *receiver) string {
	c.h.t.Helper()
	r := c.h.admin(http.MethodPost, "/admin/apps/"+c.app+"/endpoints", map[string]any{"url": rc.srv.URL + "/hooks"}).want(c.h.t, 201, "")
	rc.mu.Lock()
	rc.secret = r.str("secret")
	rc.mu.Unlock()
	ep, _ := r.body["endpoint"].(map[string]any)
	id, _ := ep["id"].(string)
	return id
}

// clockedServiceHarness is newServiceHarness on a fake clock: the core's
// time (request windows, leases, the retry schedule) moves only when the
// test moves it. WeChat Pay's simulator keeps real time.
func clockedServiceHarness(t *testing.T, edit ...func(*config.Config)) (*harness, *fakeClock) {
	t.Helper()
	clock := &fakeClock{now: time.Now()}
	h := newHarnessWith(t, setup.Options{Now: clock.Now}, append([]func(*config.Config){func(c *config.Config) {
		c.ServiceKey = testServiceKey
		c.WebhookAllowPrivate = true
		c.SessionTTL = 24 * time.Hour
	}}, edit...)...)
	return h, clock
}

// clockedApp is newApp for a harness on clock: its server signs with it.
func (h *harness) clockedApp(id string, clock *fakeClock) *client {
	h.t.Helper()
	c := h.newApp(id)
	c.now = clock.Now
	return c
}

// dispatch runs the webhook dispatcher once, as its schedule would.
func (h *harness) dispatch() app.DispatchReport {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := h.stack.App.DispatchWebhooks(ctx)
	if err != nil {
		h.t.Fatalf("dispatch: %v (report %+v)", err, rep)
	}
	return rep
}

// events lists the app's events of one order through the server API,
// newest first.
func (c *client) events(orderID string) []map[string]any {
	c.h.t.Helper()
	r := c.call(http.MethodGet, "/v1/events?limit=100&order_id="+orderID, nil).want(c.h.t, 200, "")
	list, _ := r.body["events"].([]any)
	out := make([]map[string]any, 0, len(list))
	for _, e := range list {
		m, _ := e.(map[string]any)
		out = append(out, m)
	}
	return out
}

// eventOf returns the order's one event of type typ, failing unless there
// is exactly one.
func (c *client) eventOf(orderID, typ string) map[string]any {
	c.h.t.Helper()
	var found []map[string]any
	for _, e := range c.events(orderID) {
		if e["type"] == typ {
			found = append(found, e)
		}
	}
	if len(found) != 1 {
		c.h.t.Fatalf("order %s has %d %s events, want 1: %+v", orderID, len(found), typ, c.events(orderID))
	}
	return found[0]
}

// received counts, per webhook-id, the requests a receiver answered 2xx.
func received(hooks []receivedHook) map[string]int {
	n := map[string]int{}
	for _, hk := range hooks {
		if hk.OK() {
			n[hk.ID]++
		}
	}
	return n
}

// fullSnapshot is every collection a request could change, as canonical
// extended JSON, whatever the store's layout: orders, ledger, claims,
// products, refunds, apps, events and their deliveries. Nonces and leases
// (slots) and job cursors are left out: an authenticated request spends a
// nonce by design.
func (h *harness) fullSnapshot() snapshot {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db := h.snapshotDB(h.t)
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		h.t.Fatalf("snapshot: %v", err)
	}
	snap := snapshot{}
	for _, coll := range names {
		if coll == "slots" || coll == "jobstate" || strings.HasPrefix(coll, "system.") {
			continue
		}
		cur, err := db.Collection(coll).Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			h.t.Fatalf("snapshot %s: %v", coll, err)
		}
		var docs []bson.Raw
		if err := cur.All(ctx, &docs); err != nil {
			h.t.Fatalf("snapshot %s: %v", coll, err)
		}
		snap[coll] = []string{}
		for _, d := range docs {
			b, err := bson.MarshalExtJSON(d, true, false)
			if err != nil {
				h.t.Fatal(err)
			}
			snap[coll] = append(snap[coll], string(b))
		}
	}
	return snap
}

// fullDiff is diff over every collection either snapshot has.
func (a snapshot) fullDiff(b snapshot) string {
	colls := map[string]bool{}
	for c := range a {
		colls[c] = true
	}
	for c := range b {
		colls[c] = true
	}
	var out []string
	for coll := range colls {
		x, y := a[coll], b[coll]
		if strings.Join(x, "\n") != strings.Join(y, "\n") {
			out = append(out, fmt.Sprintf("%s: before %d docs %v\nafter %d docs %v", coll, len(x), x, len(y), y))
		}
	}
	return strings.Join(out, "\n")
}

// forgetEvent deletes an event and whatever the store keeps of its
// deliveries, through the driver: as if it had never been recorded.
func (h *harness) forgetEvent(id string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db := h.snapshotDB(h.t)
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		h.t.Fatal(err)
	}
	deleted := 0
	for _, coll := range names {
		if strings.HasPrefix(coll, "system.") {
			continue
		}
		res, err := db.Collection(coll).DeleteMany(ctx, bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "event_id", Value: id}},
		}}})
		if err != nil {
			h.t.Fatalf("forget event %s in %s: %v", id, coll, err)
		}
		deleted += int(res.DeletedCount)
	}
	if deleted == 0 {
		h.t.Fatalf("forget event %s: no document had it", id)
	}
}
