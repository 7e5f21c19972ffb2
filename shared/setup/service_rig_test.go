package setup_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/config"
	"github.com/payfn/payfn/shared/paysim"
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
	ts := strconv.FormatInt(time.Now().Unix(), 10)
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
	answer func(n int) int // status for the n-th request (0-based)
	secret string
}

type receivedHook struct {
	ID, Type string
	Status   int
	Verified error
	Body     map[string]any
	Header   http.Header
}

func newReceiver(t testing.TB) *receiver {
	t.Helper()
	rc := &receiver{answer: func(int) int { return 204 }}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.got)
		status := rc.answer(n)
		h := receivedHook{ID: r.Header.Get("webhook-id"), Status: status, Header: r.Header.Clone()}
		if rc.secret != "" {
			h.Verified = webhook.Verify(rc.secret, r.Header, body)
		}
		json.Unmarshal(body, &h.Body)
		h.Type, _ = h.Body["type"].(string)
		rc.got = append(rc.got, h)
		rc.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
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
	rc.secret = r.str("secret")
	ep, _ := r.body["endpoint"].(map[string]any)
	id, _ := ep["id"].(string)
	return id
}
