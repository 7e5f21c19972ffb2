package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/identity"
	"github.com/payfn/payfn/shared/runtime/httpapi"
)

// clientCall sends a createOrder whose quantity is malformed: an answer of
// 400 INVALID_QUANTITY shows the caller was authenticated (the body is judged
// after the caller), 401 UNAUTHENTICATED that it was not.
func clientCall(t *testing.T, api *httpapi.API, ctx context.Context, header http.Header) (int, string) {
	t.Helper()
	r := httptest.NewRequestWithContext(ctx, http.MethodPost, httpapi.PathCreateOrder,
		strings.NewReader(`{"product_id":"latte","quantity":"two","request_id":"r-1"}`))
	r.Header = header.Clone()
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	api.CreateOrder().ServeHTTP(w, r)
	var body struct{ Code string }
	json.Unmarshal(w.Body.Bytes(), &body)
	return w.Code, body.Code
}

// platformHeaders are what a client could send to pose as a mini-program
// user: in token mode they mean nothing.
func platformHeaders(openid string) http.Header {
	h := http.Header{}
	h.Set("X-WX-OPENID", openid)
	h.Set("X-WX-APPID", appID)
	h.Set("X-WX-SOURCE", "wx_client")
	return h
}

func TestIdentityComesFromOnePlacePerDeployment(t *testing.T) {
	tokens, err := identity.NewTokens([]byte(strings.Repeat("s", 32)), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := tokens.Issue("o-buyer")
	if err != nil {
		t.Fatal(err)
	}
	bearer := http.Header{"Authorization": {"Bearer " + token}}
	buyer := identity.PlatformCaller{OpenID: "o-buyer", AppID: appID, Source: "wx_client"}
	withCaller := identity.WithPlatformCaller(context.Background(), buyer)

	tokenMode := httpapi.New(app.New(app.Config{Sessions: tokens}), nil)
	platformMode := httpapi.New(app.New(app.Config{Sessions: tokens}), nil)
	p, err := identity.NewPlatform(appID)
	if err != nil {
		t.Fatal(err)
	}
	platformMode.UsePlatformIdentity(p)

	for _, tc := range []struct {
		name   string
		api    *httpapi.API
		ctx    context.Context
		header http.Header
		status int
		code   string
	}{
		{"token mode: session token", tokenMode, context.Background(), bearer, 400, app.CodeInvalidQuantity},
		// The headers and even an adapter's platform caller choose nothing
		// in token mode.
		{"token mode: X-WX headers only", tokenMode, context.Background(), platformHeaders("o-buyer"), 401, app.CodeUnauthenticated},
		{"token mode: platform caller only", tokenMode, withCaller, http.Header{}, 401, app.CodeUnauthenticated},
		{"platform mode: platform caller", platformMode, withCaller, http.Header{}, 400, app.CodeInvalidQuantity},
		// A valid session token, or headers no adapter vouched for, choose
		// nothing in platform mode.
		{"platform mode: session token only", platformMode, context.Background(), bearer, 401, app.CodeUnauthenticated},
		{"platform mode: X-WX headers only", platformMode, context.Background(), platformHeaders("o-buyer"), 401, app.CodeUnauthenticated},
		{"platform mode: another mini-program", platformMode,
			identity.WithPlatformCaller(context.Background(), identity.PlatformCaller{OpenID: "o-buyer", AppID: "wxfedcba9876543210", Source: "wx_client"}),
			http.Header{}, 401, app.CodeUnauthenticated},
		{"platform mode: not a mini-program client", platformMode,
			identity.WithPlatformCaller(context.Background(), identity.PlatformCaller{OpenID: "o-buyer", AppID: appID, Source: "wx_http"}),
			http.Header{}, 401, app.CodeUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, code := clientCall(t, tc.api, tc.ctx, tc.header); status != tc.status || code != tc.code {
				t.Errorf("answered %d %s, want %d %s", status, code, tc.status, tc.code)
			}
		})
	}
}
