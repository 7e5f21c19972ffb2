package setup_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/identity"
	"github.com/payfn/payfn/shared/order"
)

// noOrderFor fails if the caller's request id created an order.
func (h *harness) noOrderFor(owner, requestID string) {
	h.t.Helper()
	if _, err := h.stack.Store.OrderByRequest(context.Background(), owner, requestID); !errors.Is(err, order.ErrNotFound) {
		h.t.Fatalf("an order exists for %s/%s (err %v)", owner, requestID, err)
	}
}

func TestCreateOrderRejectsEveryBadInputAndWritesNothing(t *testing.T) {
	h := newHarness(t)
	token := h.login("o-buyer")
	cases := map[string]struct {
		body   string
		status int
		code   string
	}{
		"client-sent price":    {`{"product_id":"latte","quantity":1,"request_id":"bad-1","total_fen":1}`, 400, "UNKNOWN_FIELD"},
		"client-sent amount":   {`{"product_id":"latte","quantity":1,"request_id":"bad-1","amount":{"total":1}}`, 400, "UNKNOWN_FIELD"},
		"client-sent status":   {`{"product_id":"latte","quantity":1,"request_id":"bad-1","status":"PAID"}`, 400, "UNKNOWN_FIELD"},
		"client-sent owner":    {`{"product_id":"latte","quantity":1,"request_id":"bad-1","openid":"o-other"}`, 400, "UNKNOWN_FIELD"},
		"client-sent txn id":   {`{"product_id":"latte","quantity":1,"request_id":"bad-1","transaction_id":"42"}`, 400, "UNKNOWN_FIELD"},
		"quantity zero":        {`{"product_id":"latte","quantity":0,"request_id":"bad-1"}`, 400, "INVALID_QUANTITY"},
		"quantity negative":    {`{"product_id":"latte","quantity":-1,"request_id":"bad-1"}`, 400, "INVALID_QUANTITY"},
		"quantity 10^9":        {`{"product_id":"latte","quantity":1000000000,"request_id":"bad-1"}`, 400, "INVALID_QUANTITY"},
		"quantity 1e30":        {`{"product_id":"latte","quantity":1000000000000000000000000000000,"request_id":"bad-1"}`, 400, "INVALID_QUANTITY"},
		"quantity fraction":    {`{"product_id":"latte","quantity":1.5,"request_id":"bad-1"}`, 400, "INVALID_QUANTITY"},
		"quantity 1.0":         {`{"product_id":"latte","quantity":1.0,"request_id":"bad-1"}`, 400, "INVALID_QUANTITY"},
		"quantity string":      {`{"product_id":"latte","quantity":"2","request_id":"bad-1"}`, 400, "INVALID_QUANTITY"},
		"quantity missing":     {`{"product_id":"latte","request_id":"bad-1"}`, 400, "INVALID_QUANTITY"},
		"quantity named twice": {`{"product_id":"latte","quantity":1,"quantity":999,"request_id":"bad-1"}`, 400, "INVALID_REQUEST"},
		"unknown product":      {`{"product_id":"nope","quantity":1,"request_id":"bad-1"}`, 404, "PRODUCT_NOT_FOUND"},
		"inactive product":     {`{"product_id":"mug","quantity":1,"request_id":"bad-1"}`, 409, "PRODUCT_NOT_ON_SALE"},
		"malformed product id": {`{"product_id":"a b","quantity":1,"request_id":"bad-1"}`, 400, "INVALID_PRODUCT_ID"},
		"missing request id":   {`{"product_id":"latte","quantity":1}`, 400, "INVALID_REQUEST_ID"},
		"malformed JSON":       {`{"product_id":"latte",`, 400, "INVALID_REQUEST"},
		"not an object":        {`[1,2]`, 400, "INVALID_REQUEST"},
		"two objects":          {`{"product_id":"latte","quantity":1,"request_id":"bad-1"}{}`, 400, "INVALID_REQUEST"},
		"empty body":           {``, 400, "INVALID_REQUEST"},
		"oversized body":       {`{"product_id":"latte","quantity":1,"request_id":"bad-1","x":"` + strings.Repeat("a", 10000) + `"}`, 413, "BODY_TOO_LARGE"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			h.post("/createOrder", token, c.body).want(t, c.status, c.code)
			h.noOrderFor("o-buyer", "bad-1")
		})
	}
}

func TestCreateOrderIsIdempotentPerRequestID(t *testing.T) {
	h := newHarness(t)
	token := h.login("o-buyer")
	first := h.post("/createOrder", token, `{"product_id":"latte","quantity":2,"request_id":"tap-1"}`).want(t, 201, "")
	again := h.post("/createOrder", token, `{"product_id":"latte","quantity":2,"request_id":"tap-1"}`).want(t, 200, "")
	if first.str("order_id") != again.str("order_id") {
		t.Fatalf("repeat made a new order: %s vs %s", first.raw, again.raw)
	}
	h.post("/createOrder", token, `{"product_id":"latte","quantity":3,"request_id":"tap-1"}`).want(t, 409, "IDEMPOTENCY_CONFLICT")
	// Another buyer's identical request id is theirs alone.
	other := h.login("o-other")
	h.post("/createOrder", other, `{"product_id":"latte","quantity":2,"request_id":"tap-1"}`).want(t, 201, "")
}

func TestSessionTokensAreRequiredAndChecked(t *testing.T) {
	h := newHarness(t)
	token := h.login("o-buyer")
	id := h.createOrder(token, "latte", 1)
	forger, _ := identity.NewTokens([]byte(strings.Repeat("x", 32)), time.Hour, nil)
	forged, _, _ := forger.Issue("o-buyer")
	expiredIssuer, _ := identity.NewTokens([]byte(h.cfg.SessionSecret), time.Hour, func() time.Time { return time.Now().Add(-2 * time.Hour) })
	expired, _, _ := expiredIssuer.Issue("o-buyer")
	for name, tok := range map[string]string{"missing": "", "forged": forged, "expired": expired, "garbage": "v1.abc.def"} {
		t.Run(name, func(t *testing.T) {
			h.post("/createOrder", tok, `{"product_id":"latte","quantity":1,"request_id":"tok-1"}`).want(t, 401, "UNAUTHENTICATED")
			h.post("/pay", tok, `{"order_id":"`+id+`"}`).want(t, 401, "UNAUTHENTICATED")
			h.post("/queryOrder", tok, `{"order_id":"`+id+`"}`).want(t, 401, "UNAUTHENTICATED")
			h.noOrderFor("o-buyer", "tok-1")
		})
	}
}

func TestSomeoneElsesOrderLooksMissing(t *testing.T) {
	h := newHarness(t)
	owner := h.login("o-owner")
	id := h.createOrder(owner, "latte", 1)
	thief := h.login("o-thief")
	h.post("/pay", thief, `{"order_id":"`+id+`"}`).want(t, 404, "ORDER_NOT_FOUND")
	h.post("/queryOrder", thief, `{"order_id":"`+id+`"}`).want(t, 404, "ORDER_NOT_FOUND")
	h.post("/queryOrder", thief, `{"order_id":"PF20260101000000NOSUCHORDER0"}`).want(t, 404, "ORDER_NOT_FOUND")
	h.post("/pay", owner, `{"order_id":"x"}`).want(t, 400, "INVALID_ORDER_ID")
	h.post("/pay", owner, `{"order_id":"`+id+`","status":"PAID"}`).want(t, 400, "UNKNOWN_FIELD")
	if o := h.order(id); o.PrepayID != "" || o.Status != order.StatusNotPay {
		t.Fatalf("the thief's calls changed the order: %+v", o)
	}
}

func TestLoginRejectsUsedAndUnknownCodes(t *testing.T) {
	h := newHarness(t)
	code := h.sim.NewLoginCode("o-buyer")
	h.postJSON("/login", "", map[string]string{"code": code}).want(t, 200, "")
	h.postJSON("/login", "", map[string]string{"code": code}).want(t, 401, "LOGIN_CODE_REJECTED")
	h.postJSON("/login", "", map[string]string{"code": "nosuchcode"}).want(t, 401, "LOGIN_CODE_REJECTED")
	h.postJSON("/login", "", map[string]string{"code": ""}).want(t, 400, "INVALID_LOGIN_CODE")
	h.post("/login", "", `{"code":"abc","openid":"o-admin"}`).want(t, 400, "UNKNOWN_FIELD")
}

func TestWrongMethodAndMediaTypeAreRefused(t *testing.T) {
	h := newHarness(t)
	resp, err := h.getRaw("/pay")
	if err != nil || resp != 405 {
		t.Fatalf("GET /pay = %d %v, want 405", resp, err)
	}
	h.send("/login", "text/plain", "", `{"code":"abc"}`).want(t, 415, "UNSUPPORTED_MEDIA_TYPE")
}
