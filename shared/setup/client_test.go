package setup_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/identity"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
)

// noOrderFor fails if the caller's request id created an order.
func (h *harness) noOrderFor(owner, requestID string) {
	h.t.Helper()
	if _, err := h.stack.Store.OrderByRequest(context.Background(), order.DefaultApp, owner, requestID); !errors.Is(err, order.ErrNotFound) {
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
		"client-sent price":     {`{"product_id":"latte","quantity":1,"request_id":"bad-1","total_fen":1}`, 400, "UNKNOWN_FIELD"},
		"client-sent amount":    {`{"product_id":"latte","quantity":1,"request_id":"bad-1","amount":{"total":1}}`, 400, "UNKNOWN_FIELD"},
		"client-sent status":    {`{"product_id":"latte","quantity":1,"request_id":"bad-1","status":"PAID"}`, 400, "UNKNOWN_FIELD"},
		"client-sent owner":     {`{"product_id":"latte","quantity":1,"request_id":"bad-1","openid":"o-other"}`, 400, "UNKNOWN_FIELD"},
		"client-sent txn id":    {`{"product_id":"latte","quantity":1,"request_id":"bad-1","transaction_id":"42"}`, 400, "UNKNOWN_FIELD"},
		"client-sent total":     {`{"product_id":"latte","quantity":1,"request_id":"bad-1","total":1}`, 400, "UNKNOWN_FIELD"},
		"client-sent owner key": {`{"product_id":"latte","quantity":1,"request_id":"bad-1","owner":"o-other"}`, 400, "UNKNOWN_FIELD"},
		"field in other case":   {`{"product_id":"latte","quantity":1,"request_id":"bad-1","Status":"PAID"}`, 400, "UNKNOWN_FIELD"},
		"quantity zero":         {`{"product_id":"latte","quantity":0,"request_id":"bad-1"}`, 400, "INVALID_QUANTITY"},
		"quantity negative":     {`{"product_id":"latte","quantity":-1,"request_id":"bad-1"}`, 400, "INVALID_QUANTITY"},
		"quantity 10^9":         {`{"product_id":"latte","quantity":1000000000,"request_id":"bad-1"}`, 400, "INVALID_QUANTITY"},
		"quantity 1e30":         {`{"product_id":"latte","quantity":1000000000000000000000000000000,"request_id":"bad-1"}`, 400, "INVALID_QUANTITY"},
		"quantity fraction":     {`{"product_id":"latte","quantity":1.5,"request_id":"bad-1"}`, 400, "INVALID_QUANTITY"},
		"quantity 1.0":          {`{"product_id":"latte","quantity":1.0,"request_id":"bad-1"}`, 400, "INVALID_QUANTITY"},
		"quantity string":       {`{"product_id":"latte","quantity":"2","request_id":"bad-1"}`, 400, "INVALID_QUANTITY"},
		"quantity missing":      {`{"product_id":"latte","request_id":"bad-1"}`, 400, "INVALID_QUANTITY"},
		"quantity named twice":  {`{"product_id":"latte","quantity":1,"quantity":999,"request_id":"bad-1"}`, 400, "INVALID_REQUEST"},
		"quantity twice, case":  {`{"product_id":"latte","quantity":1,"Quantity":999,"request_id":"bad-1"}`, 400, "INVALID_REQUEST"},
		"quantity 1000":         {`{"product_id":"latte","quantity":1000,"request_id":"bad-1"}`, 400, "INVALID_QUANTITY"},
		"quantity -0":           {`{"product_id":"latte","quantity":-0,"request_id":"bad-1"}`, 400, "INVALID_QUANTITY"},
		"quantity 1e3":          {`{"product_id":"latte","quantity":1e3,"request_id":"bad-1"}`, 400, "INVALID_QUANTITY"},
		"quantity null":         {`{"product_id":"latte","quantity":null,"request_id":"bad-1"}`, 400, "INVALID_QUANTITY"},
		"quantity an object":    {`{"product_id":"latte","quantity":{"$gt":0},"request_id":"bad-1"}`, 400, "INVALID_QUANTITY"},
		"unknown product":       {`{"product_id":"nope","quantity":1,"request_id":"bad-1"}`, 404, "PRODUCT_NOT_FOUND"},
		"inactive product":      {`{"product_id":"mug","quantity":1,"request_id":"bad-1"}`, 409, "PRODUCT_NOT_ON_SALE"},
		"malformed product id":  {`{"product_id":"a b","quantity":1,"request_id":"bad-1"}`, 400, "INVALID_PRODUCT_ID"},
		"missing request id":    {`{"product_id":"latte","quantity":1}`, 400, "INVALID_REQUEST_ID"},
		"malformed JSON":        {`{"product_id":"latte",`, 400, "INVALID_REQUEST"},
		"not an object":         {`[1,2]`, 400, "INVALID_REQUEST"},
		"two objects":           {`{"product_id":"latte","quantity":1,"request_id":"bad-1"}{}`, 400, "INVALID_REQUEST"},
		"empty body":            {``, 400, "INVALID_REQUEST"},
		"oversized body":        {`{"product_id":"latte","quantity":1,"request_id":"bad-1","x":"` + strings.Repeat("a", 10000) + `"}`, 413, "BODY_TOO_LARGE"},
	}
	// Sessions that are not the buyer's valid one, with a body that would
	// otherwise create an order.
	forger, _ := identity.NewTokens([]byte(strings.Repeat("x", 32)), time.Hour, nil)
	forged, _, _ := forger.Issue("o-buyer")
	expiredIssuer, _ := identity.NewTokens([]byte(h.cfg.SessionSecret), time.Hour, func() time.Time { return time.Now().Add(-2 * time.Hour) })
	expired, _, _ := expiredIssuer.Issue("o-buyer")
	other := h.login("o-other")
	spliced := strings.Split(other, ".")[0] + "." + strings.Split(token, ".")[1] + "." + strings.Split(other, ".")[2]
	good := `{"product_id":"latte","quantity":1,"request_id":"bad-1"}`
	sessions := map[string]string{"no token": "", "forged token": forged, "expired token": expired, "garbage token": "v1.abc.def", "payload swapped into a token": spliced}

	before := h.dbSnapshot()
	answers := map[string]int{}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r := h.post("/createOrder", token, c.body)
			answers[statusKey(r.status)]++
			r.want(t, c.status, c.code)
			h.noOrderFor("o-buyer", "bad-1")
		})
	}
	for name, tok := range sessions {
		t.Run(name, func(t *testing.T) {
			r := h.post("/createOrder", tok, good)
			answers[statusKey(r.status)]++
			r.want(t, 401, "UNAUTHENTICATED")
			h.noOrderFor("o-buyer", "bad-1")
		})
	}
	after := h.dbSnapshot()
	changes := 0
	if d := before.diff(after); d != "" {
		changes = 1
		t.Errorf("rejected requests wrote to the store:\n%s", d)
	}
	report(t, figures{Case: "client attacks on createOrder (" + strconv.Itoa(len(cases)+len(sessions)) + " kinds)", Tried: len(cases) + len(sessions),
		Answers: answers, StateChanges: changes})
	// Control: the same buyer's valid session and body do create the order,
	// so each refusal above is the fault of the one thing its case got wrong.
	h.post("/createOrder", token, good).want(t, 201, "")
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

// TestPayAndQueryOrderAttacksAreRefusedAndWriteNothing is design.md
// invariants 1 and 2 for the order functions: bad sessions (missing, forged,
// expired, re-signed payload, wrong scheme), another buyer's orders reached
// by their id or a variant of it (IDOR), and fields a client may not send
// each get their documented 4xx and leave the whole store, and WeChat Pay,
// untouched.
func TestPayAndQueryOrderAttacksAreRefusedAndWriteNothing(t *testing.T) {
	h := newHarness(t)
	owner := h.login("o-owner")
	unpaid := h.createOrder(owner, "latte", 1)
	paidID := h.createOrder(owner, "latte", 2)
	prepayID, _ := h.pay(owner, paidID)
	if _, err := h.sim.Pay(context.Background(), prepayID, paysim.PayOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitAcked(paidID)
	thief := h.login("o-thief")
	own := h.createOrder(thief, "latte", 1)

	forger, _ := identity.NewTokens([]byte(strings.Repeat("x", 32)), time.Hour, nil)
	forged, _, _ := forger.Issue("o-owner")
	expiredIssuer, _ := identity.NewTokens([]byte(h.cfg.SessionSecret), time.Hour, func() time.Time { return time.Now().Add(-2 * time.Hour) })
	expired, _, _ := expiredIssuer.Issue("o-owner")
	// The thief's own valid token with its payload swapped for the owner's:
	// the MAC no longer matches.
	parts := strings.Split(thief, ".")
	ownerParts := strings.Split(owner, ".")
	spliced := parts[0] + "." + ownerParts[1] + "." + parts[2]

	type attack struct {
		token, body string
		header      string // Authorization header as sent, when not "Bearer <token>"
		status      int
		code        string
	}
	body := func(id string) string { return `{"order_id":"` + id + `"}` }
	attacks := map[string]attack{
		"no token":                     {token: "", body: body(unpaid), status: 401, code: "UNAUTHENTICATED"},
		"forged token":                 {token: forged, body: body(unpaid), status: 401, code: "UNAUTHENTICATED"},
		"expired token":                {token: expired, body: body(unpaid), status: 401, code: "UNAUTHENTICATED"},
		"garbage token":                {token: "v1.abc.def", body: body(unpaid), status: 401, code: "UNAUTHENTICATED"},
		"payload swapped into a token": {token: spliced, body: body(unpaid), status: 401, code: "UNAUTHENTICATED"},
		"token in another scheme":      {header: "Basic " + owner, body: body(unpaid), status: 401, code: "UNAUTHENTICATED"},
		"another buyer's unpaid order": {token: thief, body: body(unpaid), status: 404, code: "ORDER_NOT_FOUND"},
		"another buyer's paid order":   {token: thief, body: body(paidID), status: 404, code: "ORDER_NOT_FOUND"},
		"order id in lower case":       {token: thief, body: body(strings.ToLower(unpaid)), status: 404, code: "ORDER_NOT_FOUND"},
		"order id with a suffix":       {token: thief, body: body(unpaid + "X"), status: 404, code: "ORDER_NOT_FOUND"},
		"order id with a space":        {token: thief, body: body(unpaid + " "), status: 400, code: "INVALID_ORDER_ID"},
		"order id as a path":           {token: thief, body: body("../" + unpaid), status: 400, code: "INVALID_ORDER_ID"},
		"order id as a query":          {token: thief, body: `{"order_id":{"$ne":""}}`, status: 400, code: "INVALID_ORDER_ID"},
		"order id as a number":         {token: thief, body: `{"order_id":12345678}`, status: 400, code: "INVALID_ORDER_ID"},
		"unknown order id":             {token: thief, body: body("PF20260101000000NOSUCHORDER0"), status: 404, code: "ORDER_NOT_FOUND"},
		"order id named twice":         {token: thief, body: `{"order_id":"` + own + `","order_id":"` + unpaid + `"}`, status: 400, code: "INVALID_REQUEST"},
		"client-sent status":           {token: owner, body: `{"order_id":"` + unpaid + `","status":"PAID"}`, status: 400, code: "UNKNOWN_FIELD"},
		"client-sent total":            {token: owner, body: `{"order_id":"` + unpaid + `","total":1}`, status: 400, code: "UNKNOWN_FIELD"},
		"client-sent total_fen":        {token: owner, body: `{"order_id":"` + unpaid + `","total_fen":1}`, status: 400, code: "UNKNOWN_FIELD"},
		"client-sent openid":           {token: thief, body: `{"order_id":"` + unpaid + `","openid":"o-owner"}`, status: 400, code: "UNKNOWN_FIELD"},
		"client-sent transaction_id":   {token: owner, body: `{"order_id":"` + unpaid + `","transaction_id":"4200000000"}`, status: 400, code: "UNKNOWN_FIELD"},
		"client-sent amount":           {token: owner, body: `{"order_id":"` + unpaid + `","amount":{"total":1}}`, status: 400, code: "UNKNOWN_FIELD"},
		"no order id":                  {token: owner, body: `{}`, status: 400, code: "INVALID_ORDER_ID"},
		"not an object":                {token: owner, body: `["` + unpaid + `"]`, status: 400, code: "INVALID_REQUEST"},
		"oversized body":               {token: owner, body: `{"order_id":"` + strings.Repeat("A", 9000) + `"}`, status: 413, code: "BODY_TOO_LARGE"},
	}
	before := h.dbSnapshot()
	tried := 0
	answers := map[string]int{}
	for _, path := range []string{"/pay", "/queryOrder"} {
		for name, a := range attacks {
			t.Run(path+" "+name, func(t *testing.T) {
				req, _ := http.NewRequest(http.MethodPost, h.url+path, strings.NewReader(a.body))
				req.Header.Set("Content-Type", "application/json")
				switch {
				case a.header != "":
					req.Header.Set("Authorization", a.header)
				case a.token != "":
					req.Header.Set("Authorization", "Bearer "+a.token)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				tried++
				answers[statusKey(resp.StatusCode)]++
				if resp.StatusCode != a.status || !strings.Contains(string(raw), `"`+a.code+`"`) {
					t.Fatalf("got %d %s, want %d %s", resp.StatusCode, raw, a.status, a.code)
				}
				// Nothing of the owner's order may leak into the answer: a
				// foreign order answers exactly like a missing one.
				var fields map[string]any
				json.Unmarshal(raw, &fields)
				for k := range fields {
					if k != "code" && k != "message" && k != "request_id" {
						t.Errorf("the error answer carries %q: %s", k, raw)
					}
				}
				if strings.Contains(string(raw), "o-owner") {
					t.Errorf("the answer names the owner: %s", raw)
				}
			})
		}
	}
	after := h.dbSnapshot()
	if d := before.diff(after); d != "" {
		t.Fatalf("refused requests wrote to the store:\n%s", d)
	}
	if tr, ok := h.sim.Trade(unpaid); ok {
		t.Fatalf("a refused pay reached WeChat Pay: %+v", tr)
	}
	report(t, figures{Case: "client attacks on pay/queryOrder (" + strconv.Itoa(len(attacks)) + " kinds)", Tried: tried, Answers: answers,
		LedgerRows: len(after["payments"]) - len(before["payments"]), Transitions: len(after["claims"]) - len(before["claims"])})
}
