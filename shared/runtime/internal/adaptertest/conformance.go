package adaptertest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/payfn/payfn/shared/identity"
	"github.com/payfn/payfn/shared/runtime/httpapi"
)

// The adapter conformance table: what every runtime adapter must do with a
// request and its answer, whatever its platform's event looks like. Each
// adapter's test describes how its platform delivers a request (a
// Transport) and runs the table with RunConformance; a new adapter is one
// Transport and one green run, not a parallel copy of these checks.

// Transport is one way a request reaches a handler: an adapter and the
// event or protocol its platform drives it with.
type Transport struct {
	Name string
	// Serve delivers req to h through the adapter, as the platform would,
	// and returns the answer as the caller receives it. Each call is a new
	// invocation of the same adapter instance (a warm process).
	Serve func(t *testing.T, h http.Handler, req Request) Answer
	// RawBody: any body bytes reach the handler byte for byte. Without it
	// the transport carries JSON values only (a data event), and a JSON
	// body arrives as an equal JSON value.
	RawBody bool
	// Headers: the caller's request headers reach the handler, and the
	// answer carries the handler's headers.
	Headers bool
	// Platform: the transport carries a platform caller (Request.Caller),
	// the way the platform does it. Without it, nothing the client sends
	// may become a caller.
	Platform bool
	// Route, when set, is the only path the transport reaches: the
	// function's own route, where a data event is served.
	Route string
}

// Request is what a caller sends, before a platform wraps it.
type Request struct {
	Path   string // default /createOrder
	Header http.Header
	Body   []byte
	// Caller is the platform's caller, delivered the platform's way
	// (Platform transports only); nil for none.
	Caller *identity.PlatformCaller
}

// Answer is what the caller receives.
type Answer struct {
	Status    int
	RequestID string      // from X-Request-Id, or the answer's request_id
	Header    http.Header // nil when the transport's answer has no headers
	Body      []byte
}

// Buyer is a platform caller the table delivers.
var Buyer = identity.PlatformCaller{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", AppID: "wx1234567890abcdef", UnionID: "oTmHYjg-tElZ68xxxxxxxxhy1Rgk", Source: "wx_client", Env: "prod-1a2b3c"}

// RunConformance runs the table against tr.
func RunConformance(t *testing.T, tr Transport) {
	path := tr.Route
	if path == "" {
		path = httpapi.PathCreateOrder
	}
	jsonHeader := func(h http.Header) http.Header {
		if h == nil {
			h = http.Header{}
		}
		h.Set("Content-Type", "application/json")
		return h
	}
	serve := func(t *testing.T, h http.Handler, req Request) Answer {
		t.Helper()
		if req.Path == "" {
			req.Path = path
		}
		req.Header = jsonHeader(req.Header)
		return tr.Serve(t, h, req)
	}
	record := func(t *testing.T, req Request) (Seen, Answer) {
		t.Helper()
		var got Seen
		a := serve(t, RecordingHandler(t, &got), req)
		if a.Status != http.StatusCreated {
			t.Fatalf("status %d (%s), want the handler's 201", a.Status, a.Body)
		}
		return got, a
	}

	t.Run("a JSON body reaches the handler whole, POSTed to the route", func(t *testing.T) {
		body := []byte("{ \"product_id\" : \"p_book_01\",\"quantity\":2,\n\"request_id\":\"r-7f3a\", \"note\":\"\u4e2d\\u00e9\" }")
		got, a := record(t, Request{Body: body})
		if got.Method != http.MethodPost || got.Path != path {
			t.Errorf("handler saw %s %s, want POST %s", got.Method, got.Path, path)
		}
		if ct := got.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q, want application/json", ct)
		}
		if got.ContentLength != int64(len(got.Body)) {
			t.Errorf("ContentLength %d for a body of %d bytes", got.ContentLength, len(got.Body))
		}
		if tr.RawBody {
			if !bytes.Equal(got.Body, body) {
				t.Errorf("body = %q, want %q byte for byte", got.Body, body)
			}
		} else {
			wantJSON(t, got.Body, body)
		}
		if a.RequestID == "" || got.RequestID != a.RequestID {
			t.Errorf("the handler saw request id %q, the answer names %q; want one id, in both", got.RequestID, a.RequestID)
		}
		wantJSON(t, a.Body, []byte(`{"order_id":"ord_1"}`))
	})

	if tr.RawBody {
		t.Run("body bytes that are not UTF-8 arrive byte for byte", func(t *testing.T) {
			body := []byte("\xff\xfe\x00WECHATPAY\r\n\x80\xc3\x28\x7f end")
			got, _ := record(t, Request{Body: body})
			if !bytes.Equal(got.Body, body) || got.ContentLength != int64(len(body)) {
				t.Errorf("body = %q (ContentLength %d), want %q", got.Body, got.ContentLength, body)
			}
		})
	}

	if tr.Headers {
		t.Run("headers reach the handler whole, and its headers come back", func(t *testing.T) {
			h := http.Header{}
			h.Set("Authorization", "Bearer v1.eyJzdWIiOiJvLTEifQ.c2ln")
			h.Set("X-Custom", "a, b;c=\"d,e\"")
			got, a := record(t, Request{Header: h, Body: []byte(`{}`)})
			for _, k := range []string{"Authorization", "X-Custom"} {
				if got.Header.Get(k) != h.Get(k) {
					t.Errorf("%s = %q, want %q", k, got.Header.Get(k), h.Get(k))
				}
			}
			if a.Header.Get("Content-Type") != "application/json" || a.Header.Get(httpapi.HeaderRequestID) != a.RequestID {
				t.Errorf("answer headers %v: want the handler's Content-Type and the request id", a.Header)
			}
		})
	}

	forged := func() http.Header {
		h := http.Header{}
		h.Set(identity.HeaderOpenID, "o-forged")
		h.Set(identity.HeaderAppID, Buyer.AppID)
		h.Set(identity.HeaderSource, "wx_client")
		return h
	}
	t.Run("a caller in the body is never the caller", func(t *testing.T) {
		body := []byte(`{"order_id":"PF20240312000000ABCDEFGHJKMN","userInfo":{"openId":"o-forged","appId":"wx1234567890abcdef"}}`)
		got, _ := record(t, Request{Body: body})
		if someone(got.Caller) {
			t.Errorf("the body's userInfo became caller %+v", got.Caller)
		}
		if !tr.RawBody {
			// A data event's userInfo is the platform's addition of older
			// base libraries: cut out before the handler's strict decoder.
			wantJSON(t, got.Body, []byte(`{"order_id":"PF20240312000000ABCDEFGHJKMN"}`))
		}
	})
	if !tr.Platform {
		t.Run("X-WX headers a client sends are never the caller", func(t *testing.T) {
			got, _ := record(t, Request{Header: forged(), Body: []byte(`{}`)})
			if someone(got.Caller) {
				t.Errorf("client headers became caller %+v", got.Caller)
			}
		})
	}
	if tr.Platform {
		t.Run("the platform's caller reaches the handler, per invocation", func(t *testing.T) {
			buyer := Buyer
			got, _ := record(t, Request{Caller: &buyer, Body: []byte(`{}`)})
			if diff := cmp.Diff(Buyer, got.Caller); diff != "" {
				t.Errorf("caller (-want +got):\n%s", diff)
			}
			// The same warm adapter, invoked next without a caller, has
			// none: nothing of the previous invocation remains.
			got, _ = record(t, Request{Body: []byte(`{}`)})
			if someone(got.Caller) {
				t.Errorf("an invocation without a caller saw %+v", got.Caller)
			}
		})
	}

	t.Run("an error answer passes through with its request id", func(t *testing.T) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			httpapi.WriteError(w, r, http.StatusConflict, "IDEMPOTENCY_CONFLICT", "request_id already used")
		})
		a := serve(t, h, Request{Body: []byte(`{}`)})
		checkError(t, a, http.StatusConflict, "IDEMPOTENCY_CONFLICT")
	})

	t.Run("a panic answers 500 INTERNAL and the adapter serves on", func(t *testing.T) {
		panicky := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, `{"half":`)
			panic("boom")
		})
		a := serve(t, panicky, Request{Body: []byte(`{}`)})
		checkError(t, a, http.StatusInternalServerError, "INTERNAL")
		if strings.Contains(string(a.Body), "boom") {
			t.Errorf("the panic's value reached the caller: %s", a.Body)
		}
		record(t, Request{Body: []byte(`{}`)})
	})

	t.Run("the adapter cuts no body short: limits are the handler's", func(t *testing.T) {
		body := []byte(`{"pad":"` + strings.Repeat("x", 1<<20) + `"}`)
		got, _ := record(t, Request{Body: body})
		if len(got.Body) != len(body) {
			t.Errorf("the handler read %d bytes of %d", len(got.Body), len(body))
		}
	})
}

// someone reports whether c names a user or where the call came from (the
// environment id alone is the function's own).
func someone(c identity.PlatformCaller) bool {
	return c.OpenID != "" || c.AppID != "" || c.UnionID != "" || c.Source != ""
}

// checkError fails unless a is a {code, message, request_id} error of
// status and code naming the answer's request id.
func checkError(t *testing.T, a Answer, status int, code string) {
	t.Helper()
	var b struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(a.Body, &b); err != nil || a.Status != status || b.Code != code || b.Message == "" {
		t.Fatalf("answer %d %s (%v), want %d with code %s", a.Status, a.Body, err, status, code)
	}
	if a.RequestID == "" || b.RequestID != a.RequestID {
		t.Errorf("error names request %q, the answer %q; want one id", b.RequestID, a.RequestID)
	}
	if a.Header != nil && a.Header.Get(httpapi.HeaderRequestID) != a.RequestID {
		t.Errorf("X-Request-Id = %q, want %q", a.Header.Get(httpapi.HeaderRequestID), a.RequestID)
	}
}

// wantJSON fails unless got and want are equal JSON values.
func wantJSON(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(w, g); diff != "" {
		t.Errorf("JSON (-want +got):\n%s", diff)
	}
}

// GatewayHeaders is h as an API gateway event carries headers: lower-case
// names, repeated values joined with commas.
func GatewayHeaders(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, vs := range h {
		out[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	return out
}

// GatewayBody is body as an API gateway event carries it: text as is,
// anything else base64-encoded and flagged.
func GatewayBody(body []byte) (string, bool) {
	if utf8.Valid(body) {
		return string(body), false
	}
	return base64.StdEncoding.EncodeToString(body), true
}

// GatewayAnswer is the Answer of an API gateway integration response.
func GatewayAnswer(t *testing.T, status int, headers map[string]string, body string, b64 bool) Answer {
	t.Helper()
	a := Answer{Status: status, Header: http.Header{}, Body: []byte(body)}
	for k, v := range headers {
		a.Header.Set(k, v)
	}
	if b64 {
		var err error
		if a.Body, err = base64.StdEncoding.DecodeString(body); err != nil {
			t.Fatalf("answer body flagged base64 is not: %v", err)
		}
	}
	a.RequestID = a.Header.Get(httpapi.HeaderRequestID)
	return a
}
