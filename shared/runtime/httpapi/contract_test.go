package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/payfn/payfn/shared/app"
)

// Issue 10, items 7 and 8: what the README's HTTP contract says, on the
// paths that need no use case (so api.app stays nil and is never reached).

func TestFieldNamesMatchExactlySoAnotherCaseIsAnUnknownField(t *testing.T) {
	cases := map[string]func([]byte) error{
		`{"PRODUCT_ID":"latte","quantity":1,"request_id":"r-1"}`: decodeAs[createOrderRequest],
		`{"Product_Id":"latte","quantity":1,"request_id":"r-1"}`: decodeAs[createOrderRequest],
		`{"product_id":"latte","Quantity":1,"request_id":"r-1"}`: decodeAs[createOrderRequest],
		`{"product_id":"latte","quantity":1,"REQUEST_ID":"r-1"}`: decodeAs[createOrderRequest],
		`{"Code":"0a1b2c"}`:                                                     decodeAs[loginRequest],
		`{"ORDER_ID":"PF20260101000000ABCDEFGH0001"}`:                           decodeAs[orderRequest],
		`{"order_id":"PF1","out_refund_no":"RF-1","Amount_Fen":1,"reason":"r"}`: decodeAs[refundRequest],
	}
	for body, dec := range cases {
		if code := codeOf(dec([]byte(body))); code != app.CodeUnknownField {
			t.Errorf("%s: code %q, want UNKNOWN_FIELD", body, code)
		}
	}
	// A case variant beside the real field, before or after it, is one
	// field named twice.
	for _, body := range []string{`{"order_id":"a","Order_Id":"b"}`, `{"Order_Id":"b","order_id":"a"}`} {
		if code := codeOf(decodeAs[orderRequest]([]byte(body))); code != app.CodeInvalidRequest {
			t.Errorf("%s: code %q, want INVALID_REQUEST", body, code)
		}
	}
}

func TestFieldOfTheWrongJSONTypeAnswersItsOwnCode(t *testing.T) {
	cases := []struct {
		body string
		dec  func([]byte) error
		code string
	}{
		{`{"product_id":5,"quantity":1,"request_id":"r-1"}`, decodeAs[createOrderRequest], app.CodeInvalidProductID},
		{`{"product_id":"latte","quantity":1,"request_id":7}`, decodeAs[createOrderRequest], app.CodeInvalidRequestID},
		{`{"product_id":["latte"],"quantity":1,"request_id":"r-1"}`, decodeAs[createOrderRequest], app.CodeInvalidProductID},
		{`{"code":12345}`, decodeAs[loginRequest], app.CodeInvalidLoginCode},
		{`{"code":{"$ne":""}}`, decodeAs[loginRequest], app.CodeInvalidLoginCode},
		{`{"order_id":12345678}`, decodeAs[orderRequest], app.CodeInvalidOrderID},
		{`{"order_id":{"$ne":""}}`, decodeAs[orderRequest], app.CodeInvalidOrderID},
		{`{"order_id":true}`, decodeAs[orderRequest], app.CodeInvalidOrderID},
		{`{"order_id":1,"out_refund_no":"RF-1","amount_fen":1,"reason":"r"}`, decodeAs[refundRequest], app.CodeInvalidOrderID},
		{`{"order_id":"PF1","out_refund_no":9,"amount_fen":1,"reason":"r"}`, decodeAs[refundRequest], app.CodeInvalidRefundNo},
		{`{"order_id":"PF1","out_refund_no":"RF-1","amount_fen":1,"reason":false}`, decodeAs[refundRequest], app.CodeInvalidReason},
	}
	for _, c := range cases {
		if code := codeOf(c.dec([]byte(c.body))); code != c.code {
			t.Errorf("%s: code %q, want %s", c.body, code, c.code)
		}
	}
	// quantity and amount_fen are read raw and judged by wholeNumber, which
	// gives them their codes too.
	for raw, want := range map[string]bool{`"2"`: false, `2`: true, `[2]`: false, `2.0`: false} {
		if _, ok := wholeNumber(json.RawMessage(raw)); ok != want {
			t.Errorf("wholeNumber(%s) ok = %v", raw, ok)
		}
	}
}

func TestMissingContentTypeIsUnsupportedMediaType(t *testing.T) {
	api := New(nil, nil)
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded"} {
		r := httptest.NewRequest(http.MethodPost, PathLogin, strings.NewReader(`{"code":"0a1b2c"}`))
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		w := httptest.NewRecorder()
		api.Login().ServeHTTP(w, r)
		body := checkErrorAnswer(t, w, http.StatusUnsupportedMediaType)
		if body.Code != app.CodeUnsupportedMedia {
			t.Errorf("Content-Type %q: %d %s, want 415 UNSUPPORTED_MEDIA_TYPE", ct, w.Code, w.Body)
		}
	}
}

func TestUnknownRouteAnswersJSON404NotFoundWithRequestID(t *testing.T) {
	var logs lockedBuffer
	routes := New(nil, slog.New(slog.NewJSONHandler(&logs, nil))).Routes()
	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/nope"}, {http.MethodGet, "/"}, {http.MethodPost, "/login/"}, {http.MethodPost, "/notify"},
		{http.MethodPut, "/admin/refund/x"},
	} {
		w := httptest.NewRecorder()
		routes.ServeHTTP(w, httptest.NewRequest(c.method, c.path, strings.NewReader(`{}`)))
		body := checkErrorAnswer(t, w, http.StatusNotFound)
		if body.Code != app.CodeNotFound || body.Message == "" {
			t.Errorf("%s %s: %d %s, want 404 NOT_FOUND with a message", c.method, c.path, w.Code, w.Body)
		}
		if !strings.Contains(logs.String(), `"request_id":"`+body.RequestID+`"`) {
			t.Errorf("%s %s: no log line names request %s", c.method, c.path, body.RequestID)
		}
	}
}

func TestWrongMethodAnswers405WithRequestID(t *testing.T) {
	routes := New(nil, nil).Routes()
	for _, path := range []string{PathLogin, PathPay, PathVerifyPayment, PathRefund} {
		w := httptest.NewRecorder()
		routes.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if body := checkErrorAnswer(t, w, http.StatusMethodNotAllowed); body.Code != app.CodeMethodNotAllowed || w.Header().Get("Allow") != http.MethodPost {
			t.Errorf("GET %s: %d %s (Allow %q)", path, w.Code, w.Body, w.Header().Get("Allow"))
		}
	}
}

func TestLocalRequestIDIsGeneratedPerRequestAndNeverTakenFromTheClient(t *testing.T) {
	routes := New(nil, nil).Routes()
	seen := map[string]bool{}
	for range 3 {
		r := httptest.NewRequest(http.MethodPost, "/nope", nil)
		r.Header.Set(HeaderRequestID, "client-chosen")
		w := httptest.NewRecorder()
		routes.ServeHTTP(w, r)
		id := checkErrorAnswer(t, w, http.StatusNotFound).RequestID
		if id == "client-chosen" || seen[id] {
			t.Errorf("request id %q: want a fresh one of our own", id)
		}
		seen[id] = true
	}
	// An id the adapter put in the context is kept.
	r := httptest.NewRequest(http.MethodPost, "/nope", nil)
	w := httptest.NewRecorder()
	routes.ServeHTTP(w, r.WithContext(WithRequestID(r.Context(), "gw-1")))
	if id := checkErrorAnswer(t, w, http.StatusNotFound).RequestID; id != "gw-1" {
		t.Errorf("request id %q, want the platform's gw-1", id)
	}
}

func TestLogHandlerNamesTheRequestOnEveryLineLoggedWithItsContext(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(LogHandler(LogHandler(slog.NewJSONHandler(&buf, nil)))) // wrapping twice wraps once
	ctx := WithRequestID(context.Background(), "req-7")
	log.InfoContext(ctx, "order created", "order_id", "PF1")
	log.With("component", "store").WarnContext(ctx, "slow")
	log.InfoContext(ctx, "explicit", "request_id", "req-7")
	log.Info("no context")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines: %s", len(lines), buf.String())
	}
	for _, l := range lines[:3] {
		if strings.Count(l, `"request_id":"req-7"`) != 1 {
			t.Errorf("want request_id once: %s", l)
		}
	}
	if strings.Contains(lines[3], "request_id") {
		t.Errorf("a line without a request context names one: %s", lines[3])
	}
}

// decodeAs decodes body into a T as the endpoints do.
func decodeAs[T any](body []byte) error {
	_, err := decodeLikeEndpoint[T](body)
	return err
}

func codeOf(err error) string {
	if err == nil {
		return ""
	}
	_, code := classify(err)
	return code
}

// checkErrorAnswer checks that w is a JSON error of status whose body and
// X-Request-Id name the same, non-empty request id, and returns the body.
func checkErrorAnswer(t *testing.T, w *httptest.ResponseRecorder, status int) errorBody {
	t.Helper()
	var body errorBody
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Errorf("%d body is not JSON: %q", w.Code, w.Body)
	}
	if !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Errorf("Content-Type %q", w.Header().Get("Content-Type"))
	}
	if w.Code != status {
		t.Errorf("status %d, want %d (%s)", w.Code, status, w.Body)
	}
	if id := w.Header().Get(HeaderRequestID); id == "" || id != body.RequestID {
		t.Errorf("X-Request-Id %q, body request_id %q: want one id in both", id, body.RequestID)
	}
	return body
}

// lockedBuffer is a log sink safe to write from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
