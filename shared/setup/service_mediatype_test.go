package setup_test

import (
	"bytes"
	"net/http"
	"testing"
)

// README: a POST or PATCH that sends a body must say application/json; one
// sent without a body needs no Content-Type; a POST, PATCH or DELETE takes
// no query string.
func TestServiceBodylessPostsNeedNoMediaTypeAndWritesTakeNoQuery(t *testing.T) {
	h := newServiceHarness(t)
	a := h.newApp("shopa")
	rc := newReceiver(t)
	a.endpoint(rc)
	a.product("p", 900)
	orderID := a.order("p", "buyer-1", "req-1", "").want(t, 201, "").str("order_id")
	evt, _ := a.events(orderID)[0]["id"].(string)

	// Signed, no body, no Content-Type: the redelivery runs.
	do(t, a.signed(http.MethodPost, "/v1/events/"+evt+"/redeliver", nil)).want(t, 200, "")
	// The operator's key rotation, no body, no Content-Type: 201.
	req, _ := http.NewRequest(http.MethodPost, h.url+"/admin/apps/shopa/keys", nil)
	req.Header.Set("X-Payfn-Admin-Key", testAdminKey)
	do(t, req).want(t, 201, "")

	// A body without the type is refused before anything else.
	req, _ = http.NewRequest(http.MethodPost, h.url+"/v1/products", bytes.NewReader([]byte(`{"product_id":"q"}`)))
	do(t, req).want(t, 415, "UNSUPPORTED_MEDIA_TYPE")
	// A query string on a write is refused, signed or not.
	signed := a.signed(http.MethodPost, "/v1/products?draft=1", []byte(`{"product_id":"q","title":"Q","price_fen":1}`))
	do(t, signed).want(t, 400, "UNKNOWN_FIELD")
	a.call(http.MethodGet, "/v1/products", nil).want(t, 200, "")
}
