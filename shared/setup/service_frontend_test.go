package setup_test

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

// The front end (c) never holds the app's secret: its server (s) creates
// the order and hands it only wx.requestPayment's parameters. These tests
// prove that what c holds fixes price, app and buyer.

// paySignValid checks a wx.requestPayment paySign with the merchant's key,
// as WeChat does before it shows the payment sheet.
func paySignValid(p map[string]any) bool {
	msg := p["appId"].(string) + "\n" + p["timeStamp"].(string) + "\n" + p["nonceStr"].(string) + "\n" + p["package"].(string) + "\n"
	sig, err := base64.StdEncoding.DecodeString(p["paySign"].(string))
	if err != nil {
		return false
	}
	sum := sha256.Sum256([]byte(msg))
	return rsa.VerifyPKCS1v15(&merchantKey.PublicKey, crypto.SHA256, sum[:], sig) == nil
}

func TestServiceFrontEndHoldsOnlySignedPaymentParamsThatFixPriceAppAndBuyer(t *testing.T) {
	h := newServiceHarness(t)
	a := h.newApp("shopa")
	a.product("a", 1200)
	r := a.order("a", "buyer-1", "req-front", "").want(t, 201, "")
	payment, _ := r.body["payment"].(map[string]any)
	if payment == nil || !paySignValid(payment) {
		t.Fatalf("payment parameters missing or not signed by the merchant: %s", r.raw)
	}
	for _, secret := range []string{a.secret, a.keyID, testServiceKey} {
		if strings.Contains(string(r.raw), secret) {
			t.Fatal("the answer meant for the front end carries a credential")
		}
	}

	// What WeChat Pay will charge was fixed by the server at prepay: the
	// product's price, the app's appid, the buyer's openid.
	prepay := strings.TrimPrefix(payment["package"].(string), "prepay_id=")
	trade, ok := h.sim.TradeByPrepay(prepay)
	if !ok {
		t.Fatal("prepay unknown to the simulator")
	}
	if trade.Amount == nil || trade.Amount.Total != 1200 || trade.AppID != testAppID {
		t.Fatalf("prepay at WeChat Pay: %+v", trade.Transaction)
	}
	a.payOrder(r)
	h.waitAcked(r.str("order_id"))
	if paid, _ := h.sim.Trade(r.str("order_id")); paid.Payer == nil || paid.Payer.OpenID != "openid-buyer-1" || paid.Amount.Total != 1200 {
		t.Fatalf("paid at WeChat Pay: %+v", paid.Transaction)
	}

	// A front end that edits the parameters (another appid, another
	// prepay) breaks the merchant's signature, so WeChat refuses the sheet.
	for field, v := range map[string]string{"appId": "wx0000000000000000", "package": "prepay_id=wx_forged"} {
		forged := map[string]any{}
		for k, x := range payment {
			forged[k] = x
		}
		forged[field] = v
		if paySignValid(forged) {
			t.Errorf("paySign still verifies with %s changed", field)
		}
	}

	// The order's price stays the server's even if the front end's server
	// call were replayed with other fields: the request id is bound to the
	// first order's product, quantity, buyer and attach.
	a.call(http.MethodPost, "/v1/orders", map[string]any{"product_id": "a", "quantity": 2, "request_id": "req-front",
		"buyer": "buyer-1", "payer_openid": "openid-buyer-1"}).want(t, 409, "IDEMPOTENCY_CONFLICT")
	a.call(http.MethodPost, "/v1/orders", map[string]any{"product_id": "a", "quantity": 1, "request_id": "req-front",
		"buyer": "buyer-1", "payer_openid": "openid-someone-else"}).want(t, 409, "IDEMPOTENCY_CONFLICT")
	// Price, amount or total are not fields a caller may send at all.
	a.call(http.MethodPost, "/v1/orders", map[string]any{"product_id": "a", "quantity": 1, "request_id": "req-front-2",
		"buyer": "buyer-1", "payer_openid": "openid-buyer-1", "total_fen": 1}).want(t, 400, "UNKNOWN_FIELD")
}
