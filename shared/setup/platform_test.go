package setup_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/payfn/payfn/shared/identity"
	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/setup"
)

// TestPlatformModeClientFunctionsNeedTheAppIDNotTheSessionSecret builds
// createOrder in platform mode from the environment and from a secret store
// whose secret holds no session secret: both start, and both take the caller
// from the platform (an answer of 400 INVALID_QUANTITY shows the caller was
// accepted; the body is judged after it) and refuse a call without one. In
// token mode the same settings lack the session secret.
func TestPlatformModeClientFunctionsNeedTheAppIDNotTheSessionSecret(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret.json")
	b, _ := json.Marshal(map[string]string{"MONGODB_URI": "mongodb://127.0.0.1:1/"})
	if err := os.WriteFile(secret, b, 0o600); err != nil {
		t.Fatal(err)
	}
	fromEnv := map[string]string{"PAYFN_IDENTITY": "platform", "WECHAT_APPID": "wx1234567890abcdef", "MONGODB_URI": "mongodb://127.0.0.1:1/"}
	fromStore := map[string]string{"PAYFN_IDENTITY": "platform", "WECHAT_APPID": "wx1234567890abcdef", "PAYFN_SECRET_SOURCE": "file", "PAYFN_SECRET_ID": secret}
	call := func(t *testing.T, h http.Handler, ctx context.Context) (int, string) {
		r := httptest.NewRequestWithContext(ctx, http.MethodPost, httpapi.PathCreateOrder, strings.NewReader(`{"product_id":"latte","quantity":"x","request_id":"r-1"}`))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var body struct{ Code string }
		json.Unmarshal(w.Body.Bytes(), &body)
		return w.Code, body.Code
	}
	buyer := identity.WithPlatformCaller(context.Background(), identity.PlatformCaller{OpenID: "o-buyer", AppID: "wx1234567890abcdef", Source: "wx_client"})
	for name, env := range map[string]map[string]string{"environment": fromEnv, "secret store": fromStore} {
		t.Run(name, func(t *testing.T) {
			h, err := setup.Handler(setup.CreateOrder, func(k string) string { return env[k] }, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatalf("platform-mode createOrder does not start: %v", err)
			}
			if status, code := call(t, h, buyer); status != 400 || code != "INVALID_QUANTITY" {
				t.Errorf("with the platform's caller: %d %s, want 400 INVALID_QUANTITY", status, code)
			}
			if status, code := call(t, h, context.Background()); status != 401 || code != "UNAUTHENTICATED" {
				t.Errorf("without a caller: %d %s, want 401 UNAUTHENTICATED", status, code)
			}
		})
	}
	token := map[string]string{"WECHAT_APPID": "wx1234567890abcdef", "MONGODB_URI": "mongodb://127.0.0.1:1/"}
	if _, err := setup.Handler(setup.CreateOrder, func(k string) string { return token[k] }, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "PAYFN_SESSION_SECRET") {
		t.Errorf("token-mode createOrder without a session secret: err = %v, want it named", err)
	}
	noApp := map[string]string{"PAYFN_IDENTITY": "platform", "MONGODB_URI": "mongodb://127.0.0.1:1/"}
	if _, err := setup.Handler(setup.CreateOrder, func(k string) string { return noApp[k] }, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "WECHAT_APPID") {
		t.Errorf("platform-mode createOrder without an appid: err = %v, want WECHAT_APPID named", err)
	}
}
