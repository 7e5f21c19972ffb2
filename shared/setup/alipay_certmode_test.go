package setup_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/alipaysim"
	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/setup"
	"github.com/payfn/payfn/shared/store/storetest"
)

// TestAlipayCertificateModeFromTheFunctionsSecret: Alipay's three
// certificates are too large for a function's environment, so a deployed
// function takes them from its secret. alipayNotify started that way
// verifies a notification signed by the certificate's key (a genuine
// notification for an unknown order is 404, a forged one 401); with a
// secret that lacks them it still starts, and its first call answers 503
// rather than guessing.
func TestAlipayCertificateModeFromTheFunctionsSecret(t *testing.T) {
	ali, err := alipaysim.New(alipaysim.Options{AppID: testAlipayAppID, CertMode: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := ali.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ali.Close() })
	k := ali.Keys()
	uri, db := storetest.URI(t)
	secret := func(t *testing.T, values map[string]string) string {
		path := filepath.Join(t.TempDir(), "secret.json")
		b, _ := json.Marshal(values)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	start := func(t *testing.T, secretPath string) http.Handler {
		env := map[string]string{
			"PAYFN_SECRET_SOURCE": "file", "PAYFN_SECRET_ID": secretPath, "MONGODB_DATABASE": db,
			"PAYFN_CHANNELS": "alipay_mini", "ALIPAY_APP_ID": k.AppID, "ALIPAY_SELLER_ID": k.SellerID,
			"ALIPAY_NOTIFY_URL": "https://payfn.example/notify/alipay", "ALIPAY_GATEWAY_URL": ali.GatewayURL(),
		}
		h, err := setup.Handler(setup.AlipayNotify, func(k string) string { return env[k] }, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("alipayNotify does not start with its certificates in the secret: %v", err)
		}
		return h
	}
	now := time.Now().In(time.FixedZone("CST", 8*3600)).Format(time.DateTime)
	genuine := ali.SignedNotification(url.Values{
		"notify_time": {now}, "notify_type": {"trade_status_sync"}, "notify_id": {"cert-mode-1"}, "charset": {"utf-8"},
		"version": {"1.0"}, "app_id": {k.AppID}, "seller_id": {k.SellerID}, "trade_no": {"2026120122001400000000000001"},
		"out_trade_no": {"PF20260101000000AAAAAAAAAAAA"}, "trade_status": {"TRADE_SUCCESS"}, "total_amount": {"1.00"},
		"gmt_payment": {now},
	})
	forged := url.Values{}
	for key, v := range genuine {
		forged[key] = v
	}
	forged.Set("total_amount", "0.01")
	post := func(h http.Handler, form url.Values) (int, string) {
		r := httptest.NewRequest(http.MethodPost, httpapi.PathAlipayNotify, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var body struct{ Code string }
		json.Unmarshal(w.Body.Bytes(), &body)
		return w.Code, body.Code
	}

	t.Run("certificates in the secret", func(t *testing.T) {
		h := start(t, secret(t, map[string]string{
			"MONGODB_URI": uri, "ALIPAY_APP_PRIVATE_KEY": k.AppPrivateKeyPEM,
			"ALIPAY_APP_CERT": k.AppCertPEM, "ALIPAY_ROOT_CERT": k.RootCertPEM, "ALIPAY_PUBLIC_CERT": k.AlipayCertPEM,
		}))
		if status, code := post(h, genuine); status != 404 || code != "ORDER_NOT_FOUND" {
			t.Errorf("a genuine notification: %d %s, want 404 ORDER_NOT_FOUND (verified, no such order)", status, code)
		}
		if status, code := post(h, forged); status != 401 || code != "INVALID_NOTIFICATION" {
			t.Errorf("a forged notification: %d %s, want 401 INVALID_NOTIFICATION", status, code)
		}
	})
	t.Run("no key of Alipay anywhere", func(t *testing.T) {
		h := start(t, secret(t, map[string]string{"MONGODB_URI": uri, "ALIPAY_APP_PRIVATE_KEY": k.AppPrivateKeyPEM}))
		if status, code := post(h, genuine); status != 503 || code != "SECRETS_UNAVAILABLE" {
			t.Errorf("first call without Alipay's key or certificates: %d %s, want 503 SECRETS_UNAVAILABLE", status, code)
		}
	})
}
