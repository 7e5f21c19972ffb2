package httpapi

// Fuzz targets for every client request decoder (issue 3, item 5). Each
// target runs the decoder exactly as its endpoint does (the same body limit,
// the same strict decode, the same integer check) and holds the result to an
// oracle built from plain encoding/json and math/big, not from the code
// under test:
//
//   - accepted: the body is one JSON object whose keys are all fields of the
//     request, spelt exactly (case included), no two alike even ignoring
//     case; plain json.Unmarshal reads the same request (no parser
//     differential); and the request re-encoded decodes to itself.
//   - rejected: a 400 INVALID_REQUEST or UNKNOWN_FIELD, a field's own
//     INVALID_<FIELD> only when plain json.Unmarshal finds that field of the
//     wrong type, or 413 BODY_TOO_LARGE, with a message, never a 5xx; and
//     the oracle agrees it had to be.
//
// Seeds live in testdata/fuzz/<FuzzName>/; `go test` runs them every time.

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/payfn/payfn/shared/app"
)

func FuzzDecodeLoginRequest(f *testing.F) {
	f.Add([]byte(`{"code":"0a1b2c3d"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		checkDecode[loginRequest](t, body, nil)
	})
}

func FuzzDecodeCreateOrderRequest(f *testing.F) {
	f.Add([]byte(`{"product_id":"latte","quantity":2,"request_id":"tap-1"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		checkDecode(t, body, func(t *testing.T, req createOrderRequest) {
			checkWholeNumber(t, req.Quantity)
		})
	})
}

// FuzzDecodeOrderRequest covers pay and queryOrder, which share the body.
func FuzzDecodeOrderRequest(f *testing.F) {
	f.Add([]byte(`{"order_id":"PF20260101000000ABCDEFGH0001"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		checkDecode[orderRequest](t, body, nil)
	})
}

func FuzzDecodeRefundRequest(f *testing.F) {
	f.Add([]byte(`{"order_id":"PF20260101000000ABCDEFGH0001","out_refund_no":"RF-1","amount_fen":100,"reason":"broken cup"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		checkDecode(t, body, func(t *testing.T, req refundRequest) {
			checkWholeNumber(t, req.AmountFen)
		})
	})
}

// checkDecode decodes body into a T as the endpoints do and checks the
// outcome against the oracle; then, for an accepted body, runs more, the
// endpoint's own checks of the decoded fields.
func checkDecode[T any](t *testing.T, body []byte, more func(*testing.T, T)) {
	t.Helper()
	got, err := decodeLikeEndpoint[T](body)
	oracleErr := oracleAccepts[T](body)
	if err != nil {
		status, code := classify(err)
		switch {
		case status == http.StatusRequestEntityTooLarge && code == app.CodeBodyTooLarge:
			if len(body) <= MaxClientBody {
				t.Fatalf("a %d-byte body was refused as too large", len(body))
			}
		case status == http.StatusBadRequest && (code == app.CodeInvalidRequest || code == app.CodeUnknownField):
		case status == http.StatusBadRequest && wrongType[T](body, code):
		default:
			t.Fatalf("refused with %d %s (%v): want 400 INVALID_REQUEST/UNKNOWN_FIELD, a field of the wrong type's code, or 413", status, code, err)
		}
		if app.ErrorOf(err).Message == "" && status != http.StatusRequestEntityTooLarge {
			t.Fatalf("refused without a message: %v", err)
		}
		if oracleErr == nil && len(body) <= MaxClientBody {
			t.Fatalf("refused %q (%v), but it is one object of known, distinct fields", body, err)
		}
		return
	}
	if len(body) > MaxClientBody {
		t.Fatalf("accepted a %d-byte body over the limit", len(body))
	}
	if oracleErr != nil {
		t.Fatalf("accepted %q as %+v, but %v", body, got, oracleErr)
	}
	// No parser differential: lenient encoding/json reads the same request.
	var plain T
	if err := json.Unmarshal(body, &plain); err != nil {
		t.Fatalf("accepted %q, which encoding/json refuses: %v", body, err)
	}
	if !sameRequest(plain, got) {
		t.Fatalf("decoded %+v, encoding/json reads %+v", got, plain)
	}
	// Round trip: what was accepted, re-encoded, decodes to itself.
	enc, err := json.Marshal(got)
	if err != nil {
		t.Fatalf("re-encode %+v: %v", got, err)
	}
	again, err := decodeLikeEndpoint[T](enc)
	if err != nil || !sameRequest(again, got) {
		t.Fatalf("round trip: %+v encodes as %s, which decodes as %+v (%v)", got, enc, again, err)
	}
	if more != nil {
		more(t, got)
	}
}

// decodeLikeEndpoint runs decode behind the endpoint's body limit.
func decodeLikeEndpoint[T any](body []byte) (T, error) {
	var v T
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, MaxClientBody)
	err := decode(r, &v)
	return v, err
}

// classify returns the status and code the endpoint would answer err with.
func classify(err error) (int, string) {
	var he *httpError
	if errors.As(err, &he) {
		return he.status, he.code
	}
	e := app.ErrorOf(err)
	status, ok := statusOf[e.Kind]
	if !ok {
		status = http.StatusInternalServerError
	}
	return status, e.Code
}

// wrongType reports whether plain json.Unmarshal of body into a T fails on
// a value of the wrong type for a field whose code is code.
func wrongType[T any](body []byte, code string) bool {
	var v T
	var te *json.UnmarshalTypeError
	return errors.As(json.Unmarshal(body, &v), &te) && fieldCodes[te.Field] == code
}

// oracleAccepts says why body is not a request T, or nil if it is one: a
// single JSON object, each key naming a field of T exactly (case
// included), no two keys alike even ignoring case (as encoding/json
// matches), and every value of the field's type.
func oracleAccepts[T any](body []byte) error {
	trimmed := bytes.Trim(body, " \t\r\n") // JSON's own white space only
	if !json.Valid(trimmed) || len(trimmed) == 0 || trimmed[0] != '{' {
		return errors.New("not a single JSON object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &fields); err != nil {
		return err
	}
	// The map holds each distinct key once; counting keys in the text tells
	// whether one was repeated verbatim.
	if n := countTopLevelKeys(trimmed); n != len(fields) {
		return errors.New("a key appears twice")
	}
	tags := jsonTags(reflect.TypeFor[T]())
	var keys []string
	for k := range fields {
		known := false
		for _, tag := range tags {
			known = known || k == tag
		}
		if !known {
			return errors.New("unknown field " + k)
		}
		for _, other := range keys {
			if strings.EqualFold(k, other) {
				return errors.New("two keys name one field: " + k + ", " + other)
			}
		}
		keys = append(keys, k)
	}
	var v T
	return json.Unmarshal(trimmed, &v)
}

// countTopLevelKeys counts the members of a valid JSON object by scanning
// its text: a string at depth 1 followed by a colon is a key.
func countTopLevelKeys(obj []byte) int {
	depth, n := 0, 0
	for i := 0; i < len(obj); i++ {
		switch obj[i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case '"':
			j := i + 1
			for ; obj[j] != '"'; j++ {
				if obj[j] == '\\' {
					j++
				}
			}
			k := j + 1
			for k < len(obj) && strings.ContainsRune(" \t\r\n", rune(obj[k])) {
				k++
			}
			if depth == 1 && k < len(obj) && obj[k] == ':' {
				n++
			}
			i = j
		}
	}
	return n
}

func jsonTags(t reflect.Type) []string {
	var tags []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		tags = append(tags, name)
	}
	return tags
}

// sameRequest compares two decoded requests, reading raw numbers by value
// (whitespace and a missing field versus null do not matter to wholeNumber).
func sameRequest[T any](a, b T) bool {
	norm := func(v T) []byte {
		rv := reflect.ValueOf(&v).Elem()
		for i := range rv.NumField() {
			if raw, ok := rv.Field(i).Interface().(json.RawMessage); ok {
				var buf bytes.Buffer
				if len(raw) == 0 || json.Compact(&buf, raw) != nil {
					buf.Reset()
					buf.WriteString("null")
				}
				rv.Field(i).Set(reflect.ValueOf(json.RawMessage(buf.Bytes())))
			}
		}
		b, _ := json.Marshal(v)
		return b
	}
	return bytes.Equal(norm(a), norm(b))
}

// checkWholeNumber holds wholeNumber to its contract: a bare JSON integer
// (no string, fraction or exponent) of at most 18 digits, read exactly.
func checkWholeNumber(t *testing.T, raw json.RawMessage) {
	t.Helper()
	n, ok := wholeNumber(raw)
	lit := strings.TrimSpace(string(raw))
	isInt := json.Valid([]byte(lit)) && lit != "" && (lit[0] == '-' || ('0' <= lit[0] && lit[0] <= '9')) && !strings.ContainsAny(lit, ".eE")
	want, small := new(big.Int), false
	if isInt {
		want.SetString(lit, 10)
		limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)
		small = new(big.Int).Abs(want).Cmp(limit) < 0
	}
	switch {
	case ok && !(isInt && small):
		t.Fatalf("wholeNumber accepted %q as %d", lit, n)
	case !ok && isInt && small:
		t.Fatalf("wholeNumber refused the integer %q", lit)
	case ok && big.NewInt(n).Cmp(want) != 0:
		t.Fatalf("wholeNumber read %q as %d", lit, n)
	}
}
