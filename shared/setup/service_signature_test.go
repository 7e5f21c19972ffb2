package setup_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
)

// signedReq is a server-API request with each part of its signing set by
// the test: what the signature covers, and what is actually sent.
type signedReq struct {
	keyID, secret string
	at            time.Time
	nonce         string
	method, path  string // what the signature covers
	body          []byte
	sendMethod    string // empty: method
	sendPath      string // empty: path
	sendBody      []byte // nil: body
	signature     string // non-empty: sent instead of the computed one
}

// request builds the HTTP request; send it with do, or keep it to replay.
func (s signedReq) request(h *harness) *http.Request {
	h.t.Helper()
	ts := strconv.FormatInt(s.at.Unix(), 10)
	sig := app.SignServerRequest(s.secret, s.method, s.path, ts, s.nonce, s.body)
	if s.signature != "" {
		sig = s.signature
	}
	method, path, body := s.method, s.path, s.body
	if s.sendMethod != "" {
		method = s.sendMethod
	}
	if s.sendPath != "" {
		path = s.sendPath
	}
	if s.sendBody != nil {
		body = s.sendBody
	}
	req, err := http.NewRequest(method, h.url+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("X-Payfn-Key-Id", s.keyID)
	req.Header.Set("X-Payfn-Timestamp", ts)
	req.Header.Set("X-Payfn-Nonce", s.nonce)
	req.Header.Set("X-Payfn-Signature", sig)
	if method != http.MethodGet && method != http.MethodDelete {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// replay sends a copy of req, headers and body as they were.
func replay(t *testing.T, req *http.Request, body []byte) reply {
	t.Helper()
	again := req.Clone(context.Background())
	again.Body, again.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	return do(t, again)
}

// rotate makes a new API key for c's app with the given overlap body and
// returns a client holding it.
func (c *client) rotate(body map[string]any) *client {
	c.h.t.Helper()
	r := c.h.admin(http.MethodPost, "/admin/apps/"+c.app+"/keys", body).want(c.h.t, 201, "")
	key, _ := r.body["api_key"].(map[string]any)
	next := *c
	next.keyID, _ = key["id"].(string)
	next.secret, _ = key["secret"].(string)
	if next.keyID == "" || next.secret == "" || next.keyID == c.keyID {
		c.h.t.Fatalf("rotate answered %s", r.raw)
	}
	return &next
}

// works fails unless c's key authenticates a request now.
func (c *client) works(t *testing.T, what string) {
	t.Helper()
	if r := c.call(http.MethodGet, "/v1/products", nil); r.status != 200 {
		t.Errorf("%s: key %s answered %d %s, want 200", what, c.keyID, r.status, r.raw)
	}
}

// refused fails unless c's key is refused now, 401 INVALID_SIGNATURE.
func (c *client) refused(t *testing.T, what string) {
	t.Helper()
	if r := c.call(http.MethodGet, "/v1/products", nil); r.status != 401 || r.str("code") != app.CodeInvalidSignature {
		t.Errorf("%s: key %s answered %d %s, want 401 %s", what, c.keyID, r.status, r.raw, app.CodeInvalidSignature)
	}
}

func TestServiceRequestsWithABadExpiredReplayedOrWrongKeySignatureAre401AndChangeNothing(t *testing.T) {
	h, clock := clockedServiceHarness(t)
	a := h.clockedApp("shopa", clock)
	b := h.clockedApp("shopb", clock)
	a.product("p", 1200)
	a.product("q", 800)
	revoked := a.rotate(map[string]any{})
	h.admin(http.MethodDelete, "/admin/apps/shopa/keys/"+revoked.keyID, nil).want(t, 200, "")

	orderBody := []byte(`{"product_id":"p","quantity":1,"request_id":"req-sig","buyer":"buyer1","payer_openid":"openid-buyer1"}`)
	// good is a correctly signed POST /v1/orders by A; each case breaks one thing.
	good := func() signedReq {
		return signedReq{keyID: a.keyID, secret: a.secret, at: clock.Now(), nonce: nonce(),
			method: http.MethodPost, path: "/v1/orders", body: orderBody}
	}
	cases := []struct {
		name string
		req  func() signedReq
		code string
	}{
		{"signature of other bytes", func() signedReq {
			s := good()
			s.signature = app.SignServerRequest(a.secret, "POST", "/v1/orders", "1", s.nonce, s.body)
			return s
		}, app.CodeInvalidSignature},
		{"malformed signature", func() signedReq { s := good(); s.signature = "v1=not-hex"; return s }, app.CodeInvalidSignature},
		{"no signature scheme", func() signedReq {
			s := good()
			s.signature = app.SignServerRequest(a.secret, s.method, s.path, strconv.FormatInt(s.at.Unix(), 10), s.nonce, s.body)[3:]
			return s
		}, app.CodeInvalidSignature},
		{"signed 6 minutes ago", func() signedReq { s := good(); s.at = s.at.Add(-6 * time.Minute); return s }, app.CodeRequestExpired},
		{"signed 6 minutes ahead", func() signedReq { s := good(); s.at = s.at.Add(6 * time.Minute); return s }, app.CodeRequestExpired},
		{"another app's secret", func() signedReq { s := good(); s.secret = b.secret; return s }, app.CodeInvalidSignature},
		{"another app's key id with this app's secret", func() signedReq { s := good(); s.keyID = b.keyID; return s }, app.CodeInvalidSignature},
		{"a revoked key", func() signedReq { s := good(); s.keyID, s.secret = revoked.keyID, revoked.secret; return s }, app.CodeInvalidSignature},
		{"a made-up key id of the app", func() signedReq { s := good(); s.keyID = "ak_shopa_0123456789abcdef"; return s }, app.CodeInvalidSignature},
		{"a made-up key id of no app", func() signedReq { s := good(); s.keyID = "ak_nosuch_0123456789abcdef"; return s }, app.CodeInvalidSignature},
		{"body tampered after signing", func() signedReq {
			s := good()
			s.sendBody = bytes.Replace(orderBody, []byte(`"quantity":1`), []byte(`"quantity":2`), 1)
			return s
		}, app.CodeInvalidSignature},
		{"body re-encoded after signing", func() signedReq {
			s := good()
			s.sendBody = append(append([]byte{}, orderBody...), '\n')
			return s
		}, app.CodeInvalidSignature},
		{"path tampered", func() signedReq {
			s := good()
			s.method, s.path, s.body = http.MethodPatch, "/v1/products/p", []byte(`{"price_fen":1}`)
			s.sendPath = "/v1/products/q"
			return s
		}, app.CodeInvalidSignature},
		{"query tampered", func() signedReq {
			s := good()
			s.method, s.path, s.body = http.MethodGet, "/v1/events?limit=1", nil
			s.sendPath = "/v1/events?limit=2"
			return s
		}, app.CodeInvalidSignature},
		{"method changed", func() signedReq {
			s := good()
			s.method, s.path, s.body = http.MethodGet, "/v1/products", nil
			s.sendMethod = http.MethodPost
			return s
		}, app.CodeInvalidSignature},
	}
	before := h.fullSnapshot()
	for _, c := range cases {
		r := do(t, c.req().request(h))
		if r.status != 401 || r.str("code") != c.code {
			t.Errorf("%s: answered %d %s, want 401 %s", c.name, r.status, r.raw, c.code)
		}
	}
	if d := before.fullDiff(h.fullSnapshot()); d != "" {
		t.Errorf("refused requests changed the store:\n%s", d)
	}
	if _, err := h.stack.Store.OrderByRequest(context.Background(), "shopa", "buyer1", "req-sig"); !errors.Is(err, order.ErrNotFound) {
		t.Errorf("a refused POST /v1/orders created an order (%v)", err)
	}

	// The same request, signed right, goes through: the refusals above were
	// each about the one thing broken.
	do(t, good().request(h)).want(t, 201, "")

	// A replay of a request that changed something is refused, within the
	// window, and does not change it back.
	first := good()
	first.method, first.path, first.body = http.MethodPatch, "/v1/products/p", []byte(`{"price_fen":1300}`)
	req := first.request(h)
	do(t, req).want(t, 200, "")
	a.call(http.MethodPatch, "/v1/products/p", map[string]any{"price_fen": 1400}).want(t, 200, "")
	clock.Advance(4 * time.Minute)
	replay(t, req, first.body).want(t, 401, app.CodeNonceReused)
	if p, err := h.stack.Store.Product(context.Background(), "shopa", "p"); err != nil || p.PriceFen != 1400 {
		t.Errorf("after the replay product p is %+v (%v), want price 1400", p, err)
	}
	// The nonce is spent only by a request that authenticated: a forged
	// request with a real nonce does not burn it.
	spent := good()
	forged := spent
	forged.secret = b.secret
	do(t, forged.request(h)).want(t, 401, app.CodeInvalidSignature)
	spent.method, spent.path, spent.body = http.MethodGet, "/v1/products", nil
	do(t, spent.request(h)).want(t, 200, "")
}

func TestServiceKeyRotationKeepsBothKeysValidThroughTheOverlapAndRevocationOrZeroOverlapEndsTheOldAtOnce(t *testing.T) {
	h, clock := clockedServiceHarness(t)
	k1 := h.clockedApp("shopa", clock)

	k2 := k1.rotate(map[string]any{}) // default overlap: 24 h
	k1.works(t, "old key during the overlap")
	k2.works(t, "new key during the overlap")
	v := h.admin(http.MethodGet, "/admin/apps/shopa", nil).want(t, 200, "")
	if keys, _ := v.body["keys"].([]any); len(keys) != 2 {
		t.Errorf("app shows %d keys during the overlap, want 2: %s", len(keys), v.raw)
	}

	h.admin(http.MethodDelete, "/admin/apps/shopa/keys/"+k1.keyID, nil).want(t, 200, "")
	k1.refused(t, "old key after DELETE")
	k2.works(t, "new key after DELETE of the old")

	k3 := k2.rotate(map[string]any{"overlap_hours": 0})
	k2.refused(t, "old key after a rotation with overlap_hours 0")
	k3.works(t, "new key after a rotation with overlap_hours 0")

	k4 := k3.rotate(map[string]any{"overlap_hours": 1})
	k3.works(t, "old key inside a 1 h overlap")
	k4.works(t, "new key inside a 1 h overlap")
	clock.Advance(time.Hour + time.Second)
	k3.refused(t, "old key after its 1 h overlap")
	k4.works(t, "new key after the overlap")
}
