package setup_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/payfn/payfn/shared/config"
	"github.com/payfn/payfn/shared/setup"
)

// restack serves the same database and simulator as h with cfg edited: a
// second deployment of the functions, as after a configuration change.
func (h *harness) restack(edit func(*config.Config)) *harness {
	h.t.Helper()
	cfg := h.cfg
	edit(&cfg)
	st, err := setup.NewStack(cfg, setup.Options{})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { st.Close(context.Background()) })
	srv := httptest.NewServer(st.Handler)
	h.t.Cleanup(srv.Close)
	return &harness{t: h.t, sim: h.sim, stack: st, url: srv.URL, cfg: cfg}
}

func TestServiceKeyRotationKeepsOldAPIKeysAndWebhookSecretsWorkingWhileThePreviousKeyIsSet(t *testing.T) {
	h := newServiceHarness(t)
	a := h.newApp("shopa")
	rc := newReceiver(t)
	a.endpoint(rc)
	a.product("a", 900)
	const newKey = "new-service-key-new-service-key-new-0123"

	// The new service key, with the old one as previous: the app's key made
	// under the old one still signs, and the endpoint's secret sealed by it
	// still signs deliveries the receiver verifies.
	during := h.restack(func(c *config.Config) { c.ServiceKey, c.ServiceKeyPrevious = newKey, testServiceKey })
	old := &client{h: during, app: a.app, keyID: a.keyID, secret: a.secret}
	old.call(http.MethodGet, "/v1/products", nil).want(t, 200, "")
	old.order("a", "buyer-1", "req-1", "").want(t, 201, "")
	hooks := rc.waitFor(t, 1)
	if hooks[0].Verified != nil || hooks[0].Type != "order.created" {
		t.Fatalf("delivery during the rotation: %+v", hooks[0])
	}
	r := during.admin(http.MethodPost, "/admin/apps/shopa/keys", map[string]any{"overlap_hours": 1}).want(t, 201, "")
	key, _ := r.body["api_key"].(map[string]any)
	fresh := &client{h: during, app: a.app, keyID: key["id"].(string), secret: key["secret"].(string)}
	fresh.call(http.MethodGet, "/v1/products", nil).want(t, 200, "")

	// Once the previous key is gone, only keys made under the new one work.
	after := h.restack(func(c *config.Config) { c.ServiceKey, c.ServiceKeyPrevious = newKey, "" })
	(&client{h: after, app: a.app, keyID: a.keyID, secret: a.secret}).call(http.MethodGet, "/v1/products", nil).want(t, 401, "INVALID_SIGNATURE")
	(&client{h: after, app: a.app, keyID: fresh.keyID, secret: fresh.secret}).call(http.MethodGet, "/v1/products", nil).want(t, 200, "")
}
