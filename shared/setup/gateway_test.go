package setup_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	scfevents "github.com/tencentyun/scf-go-lib/events"

	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/runtime/awslambda"
	"github.com/payfn/payfn/shared/runtime/tencentscf"
)

func flatten(h http.Header) map[string]string {
	m := map[string]string{}
	for k := range h {
		m[k] = h.Get(k)
	}
	return m
}

// TestNotificationThroughEachGatewayIsVerifiedOnItsRawBytes sends a genuine
// notification (its body has multi-byte UTF-8: "支付成功") through the AWS
// HTTP API and Tencent API gateway adapters, base64-encoded and plain, into
// the real verifyPayment: the signature only verifies if the bytes arrive
// exactly as signed.
func TestNotificationThroughEachGatewayIsVerifiedOnItsRawBytes(t *testing.T) {
	h := newHarness(t)
	token := h.login("o-buyer")
	gateways := map[string]func(hdr http.Header, body []byte) int{
		"aws base64": func(hdr http.Header, body []byte) int {
			ev := events.APIGatewayV2HTTPRequest{
				RawPath: "/notify/wechatpay", Headers: flatten(hdr),
				Body: base64.StdEncoding.EncodeToString(body), IsBase64Encoded: true,
				RequestContext: events.APIGatewayV2HTTPRequestContext{RequestID: "aws-req-1",
					HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: "/notify/wechatpay"}},
			}
			res, err := awslambda.NewHandler(h.stack.Handler, nil)(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			return res.StatusCode
		},
		"aws plain": func(hdr http.Header, body []byte) int {
			ev := events.APIGatewayV2HTTPRequest{
				RawPath: "/notify/wechatpay", Headers: flatten(hdr), Body: string(body),
				RequestContext: events.APIGatewayV2HTTPRequestContext{RequestID: "aws-req-2",
					HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: "/notify/wechatpay"}},
			}
			res, err := awslambda.NewHandler(h.stack.Handler, nil)(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			return res.StatusCode
		},
		"scf base64": func(hdr http.Header, body []byte) int {
			ev := tencentscf.Request{IsBase64Encoded: true, APIGatewayRequest: scfevents.APIGatewayRequest{
				Method: "POST", Path: "/notify/wechatpay", Headers: flatten(hdr), Body: base64.StdEncoding.EncodeToString(body)}}
			res, err := tencentscf.NewHandler(h.stack.Handler, nil)(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			return res.StatusCode
		},
		"scf plain": func(hdr http.Header, body []byte) int {
			ev := tencentscf.Request{APIGatewayRequest: scfevents.APIGatewayRequest{
				Method: "POST", Path: "/notify/wechatpay", Headers: flatten(hdr), Body: string(body)}}
			res, err := tencentscf.NewHandler(h.stack.Handler, nil)(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			return res.StatusCode
		},
	}
	for name, deliver := range gateways {
		t.Run(name, func(t *testing.T) {
			id := h.createOrder(token, "latte", 1)
			hdr, body, err := h.sim.BuildNotification(h.paidTx(id, "o-buyer", 2800), paysim.NotifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if status := deliver(hdr, body); status != 200 {
				t.Fatalf("gateway answered %d", status)
			}
			if got := h.order(id).Status; got != order.StatusPaid {
				t.Fatalf("order is %s, want PAID", got)
			}
			// One byte changed in transit must fail verification.
			id2 := h.createOrder(token, "latte", 1)
			hdr, body, _ = h.sim.BuildNotification(h.paidTx(id2, "o-buyer", 2800), paysim.NotifyOptions{})
			body[len(body)-2] = ' '
			if status := deliver(hdr, body); status != 401 {
				t.Fatalf("altered body answered %d, want 401", status)
			}
		})
	}
}
