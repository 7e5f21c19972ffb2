package wxpay_test

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/payfn/payfn/shared/app"
)

// Issue 10, item 9: a correctly signed notification that names a field
// twice is refused, whichever copy would have won.

const (
	repeatTx = `{"appid":"` + appID + `","mchid":"` + mchID + `","out_trade_no":"PF20260101000000REPEAT000001","transaction_id":"4200000000202601019999999999",` +
		`"trade_type":"JSAPI","trade_state":"SUCCESS","success_time":"2026-01-01T10:00:00+08:00","payer":{"openid":"` + openID + `"},` +
		`"amount":{"total":2800,"payer_total":2800,"currency":"CNY","payer_currency":"CNY"}}`
	repeatRefund = `{"mchid":"` + mchID + `","out_trade_no":"PF20260101000000REPEAT000001","out_refund_no":"RF-1","refund_id":"50000000382019052709732678859",` +
		`"refund_status":"SUCCESS","success_time":"2026-01-01T10:00:00+08:00","amount":{"total":2800,"refund":1000,"payer_total":2800,"payer_refund":1000}}`
)

// sealedResource encrypts plaintext under the test APIv3 key as WeChat Pay
// does and returns the envelope's "resource" object.
func sealedResource(t *testing.T, plaintext, associatedData string) string {
	t.Helper()
	block, err := aes.NewCipher([]byte(apiV3Key))
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	const nonce = "r3p3at3dk3ys"
	ct := gcm.Seal(nil, []byte(nonce), []byte(plaintext), []byte(associatedData))
	return fmt.Sprintf(`{"original_type":%q,"algorithm":"AEAD_AES_256_GCM","ciphertext":%q,"associated_data":%q,"nonce":%q}`,
		associatedData, base64.StdEncoding.EncodeToString(ct), associatedData, nonce)
}

// envelopeWith is a notification body around resource, with extra members
// (each `"key":value`) inserted before "resource".
func envelopeWith(eventType, resource string, extra ...string) string {
	members := append([]string{`"id":"EV-REPEAT-1"`, `"create_time":"2026-01-01T10:00:01+08:00"`, `"resource_type":"encrypt-resource"`,
		`"event_type":"` + eventType + `"`, `"summary":"s"`}, extra...)
	return "{" + strings.Join(members, ",") + `,"resource":` + resource + "}"
}

func TestSignedNotificationNamingAFieldTwiceIsRejected(t *testing.T) {
	sim := startSim(t, nil)
	ch := newChannel(t, config(sim, "https://merchant.example.com/notify"))
	good := sealedResource(t, repeatTx, "transaction")
	other := sealedResource(t, strings.Replace(repeatTx, `"total":2800`, `"total":1`, 1), "transaction")
	withTx := func(plaintext string) string {
		return envelopeWith("TRANSACTION.SUCCESS", sealedResource(t, plaintext, "transaction"))
	}

	// Control: the same construction without a repeat is accepted, so each
	// refusal below is the repeat's doing.
	h, body := resign(t, sim, []byte(envelopeWith("TRANSACTION.SUCCESS", good)))
	n, err := ch.ParseNotification(ctxTimeout(t), h, body)
	if err != nil || n.Transaction.TotalFen != 2800 || n.EventType != "TRANSACTION.SUCCESS" {
		t.Fatalf("control: %+v, %v", n, err)
	}

	cases := map[string]string{
		"resource twice":              envelopeWith("TRANSACTION.SUCCESS", good, `"resource":`+other),
		"event_type twice":            envelopeWith("TRANSACTION.SUCCESS", good, `"event_type":"TRANSACTION.CLOSED"`),
		"event_type in another case":  envelopeWith("TRANSACTION.CLOSED", good, `"EVENT_TYPE":"TRANSACTION.SUCCESS"`),
		"id twice":                    envelopeWith("TRANSACTION.SUCCESS", good, `"id":"EV-REPEAT-2"`),
		"resource nonce twice":        envelopeWith("TRANSACTION.SUCCESS", strings.Replace(good, `"nonce"`, `"nonce":"abcdefghijkl","nonce"`, 1)),
		"resource ciphertext twice":   envelopeWith("TRANSACTION.SUCCESS", strings.Replace(good, `"ciphertext"`, `"ciphertext":"AAAA","ciphertext"`, 1)),
		"out_trade_no twice":          withTx(strings.Replace(repeatTx, `"out_trade_no"`, `"out_trade_no":"PF20260101000000OTHER0000001","out_trade_no"`, 1)),
		"out_trade_no in other case":  withTx(strings.Replace(repeatTx, `}}`, `},"OUT_TRADE_NO":"PF20260101000000OTHER0000001"}`, 1)),
		"amount twice":                withTx(strings.Replace(repeatTx, `"amount"`, `"amount":{"total":1,"currency":"CNY"},"amount"`, 1)),
		"total twice":                 withTx(strings.Replace(repeatTx, `"total":2800`, `"total":1,"total":2800`, 1)),
		"total in other case":         withTx(strings.Replace(repeatTx, `"total":2800`, `"total":2800,"Total":1`, 1)),
		"trade_state twice":           withTx(strings.Replace(repeatTx, `"trade_state"`, `"trade_state":"NOTPAY","trade_state"`, 1)),
		"openid twice":                withTx(strings.Replace(repeatTx, `"openid"`, `"openid":"o-other","openid"`, 1)),
		"transaction_id twice, later": withTx(strings.Replace(repeatTx, `}}`, `},"transaction_id":"4200000000202601010000000001"}`, 1)),
	}
	for name, env := range cases {
		t.Run(name, func(t *testing.T) {
			h, body := resign(t, sim, []byte(env))
			n, err := ch.ParseNotification(ctxTimeout(t), h, body)
			if !errors.Is(err, app.ErrBadNotification) {
				t.Fatalf("err = %v (notification %+v), want ErrBadNotification", err, n)
			}
		})
	}
}

func TestSignedRefundNotificationNamingAFieldTwiceIsRejected(t *testing.T) {
	sim := startSim(t, nil)
	ch := newChannel(t, config(sim, "https://merchant.example.com/notify"))
	withRefund := func(plaintext string, extra ...string) string {
		return envelopeWith("REFUND.SUCCESS", sealedResource(t, plaintext, "refund"), extra...)
	}

	h, body := resign(t, sim, []byte(withRefund(repeatRefund)))
	n, err := ch.ParseRefundNotification(ctxTimeout(t), h, body)
	if err != nil || n.Refund.RefundFen != 1000 || n.Refund.OutRefundNo != "RF-1" {
		t.Fatalf("control: %+v, %v", n, err)
	}

	cases := map[string]string{
		"event_type twice":            withRefund(repeatRefund, `"event_type":"REFUND.CLOSED"`),
		"out_refund_no twice":         withRefund(strings.Replace(repeatRefund, `"out_refund_no"`, `"out_refund_no":"RF-2","out_refund_no"`, 1)),
		"refund_status twice":         withRefund(strings.Replace(repeatRefund, `"refund_status"`, `"refund_status":"CLOSED","refund_status"`, 1)),
		"refund amount twice":         withRefund(strings.Replace(repeatRefund, `"refund":1000`, `"refund":1,"refund":1000`, 1)),
		"amount twice":                withRefund(strings.Replace(repeatRefund, `"amount"`, `"amount":{"total":1,"refund":1},"amount"`, 1)),
		"mchid in another case":       withRefund(strings.Replace(repeatRefund, `"mchid"`, `"MchID":"1900000000","mchid"`, 1)),
		"refund_status in other case": withRefund(strings.Replace(repeatRefund, `}}`, `},"Refund_Status":"CLOSED"}`, 1)),
	}
	for name, env := range cases {
		t.Run(name, func(t *testing.T) {
			h, body := resign(t, sim, []byte(env))
			n, err := ch.ParseRefundNotification(ctxTimeout(t), h, body)
			if !errors.Is(err, app.ErrBadNotification) {
				t.Fatalf("err = %v (notification %+v), want ErrBadNotification", err, n)
			}
		})
	}
}
