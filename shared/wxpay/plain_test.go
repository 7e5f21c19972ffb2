package wxpay

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/wechatpay-apiv3/wechatpay-go/services/payments"
)

// Bodies and plaintexts as WeChat Pay writes them, then variants around
// every rule of plainJSON's subset.
var plainEnvelopeSeeds = []string{
	`{"id":"EV-2018022511223320873","create_time":"2015-05-20T13:29:35+08:00","resource_type":"encrypt-resource","event_type":"TRANSACTION.SUCCESS","summary":"支付成功","resource":{"original_type":"transaction","algorithm":"AEAD_AES_256_GCM","ciphertext":"YWJjZA==","associated_data":"transaction","nonce":"fdasflkja484"}}`,
	` { "id" : "a" , "resource" : { } } ` + "\n\t\r",
	`{"id":"a","resource":{"nonce":"abcdefghijkl","algorithm":"AEAD_AES_256_GCM","ciphertext":"+/+/"}}`,
	`{}`, `{"resource":{}}`, `{"resource":null}`, `{"id":null}`, `{"create_time":null}`,
	`{"id":"a","id":"b"}`, `{"id":"a","ID":"b"}`, `{"Id":"a"}`, `{"resource":{"nonce":"a","nonce":"b"}}`,
	`{"resource":{"nonce":"a"},"resource":{"algorithm":"b"}}`, `{"resource":{"nonce":"a"},"resource":null}`,
	`{"id":"a\u0062"}`, `{"id":"a\"b"}`, `{"id":"tab	in"}`, "{\"id\":\"\xff\"}", `{"id":"é€😀"}`, "{\"id\":\"\x7f\"}",
	`{"id":1}`, `{"id":true}`, `{"id":["a"]}`, `{"id":{}}`, `{"resource":"x"}`, `{"resource":[]}`,
	`{"create_time":"2015-05-20T13:29:35Z"}`, `{"create_time":"2015-05-20 13:29:35"}`, `{"create_time":"x"}`, `{"create_time":5}`,
	`{"create_time":"2015-05-20T13:29:35.123456789+08:00"}`, `{"create_time":"2015-05-20T24:00:00+08:00"}`,
	`{"summary":"s","resource_type":"r","unknown":1}`, `{"RawRequest":{}}`, `{"rawrequest":null}`, `{"resource":{"Plaintext":"x"}}`,
	`{"id":"a"} x`, `{"id":"a"}{}`, `{"id":"a",}`, `{"id":"a"`, `{"id" "a"}`, `{,}`, `[]`, `null`, ``, `"x"`, `{"id":"a"]`,
}

var plainTransactionSeeds = []string{
	`{"mchid":"1230000109","appid":"wxd678efh567hg6787","out_trade_no":"1217752501201407033233368018","transaction_id":"1217752501201407033233368018","trade_type":"JSAPI","trade_state":"SUCCESS","trade_state_desc":"支付成功","bank_type":"CMC","attach":"自定义数据","success_time":"2018-06-08T10:34:56+08:00","payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},"amount":{"total":100,"payer_total":100,"currency":"CNY","payer_currency":"CNY"}}`,
	`{"amount":{"total":0,"payer_total":-0}}`, `{"amount":{"total":-12}}`, `{"amount":{"total":01}}`, `{"amount":{"total":1.0}}`,
	`{"amount":{"total":1e3}}`, `{"amount":{"total":1E3}}`, `{"amount":{"total":123456789012345678}}`, `{"amount":{"total":1234567890123456789}}`,
	`{"amount":{"total":99999999999999999999}}`, `{"amount":{"total":-}}`, `{"amount":{"total":"1"}}`, `{"amount":{"total":null}}`,
	`{"amount":{"total":1,"total":2}}`, `{"amount":{"total":1},"amount":{"currency":"CNY"}}`, `{"amount":null}`, `{"amount":{}}`,
	`{"payer":{}}`, `{"payer":{"openid":"a"},"payer":null}`, `{"payer":{"OpenID":"a"}}`, `{"payer":{"x":1}}`,
	`{"promotion_detail":[]}`, `{"promotion_detail":[{"amount":1}]}`, `{"promotion_detail":"x"}`, `{"scene_info":{}}`,
	`{"appid":"a","appid":"b"}`, `{"AppID":"a"}`, `{"appid":null}`, `{"appid":"a\nb"}`, `{"appid":"\u00e9"}`, `{"appid":1}`,
	`{"success_time":"not a time"}`, `{"appid":"a"} `, `{"appid":"a"}x`, `{"appid":"a"`, `[1]`, ``,
}

// checkEnvelope fails t if the fast decoder accepts body but decodes it
// otherwise than encoding/json with notify.Request, or accepts what that
// rejects.
func checkEnvelope(t *testing.T, body []byte) {
	t.Helper()
	var fast, slow envelope
	if !fastEnvelope(body, &fast) {
		return // decoded by slowEnvelope itself
	}
	if !slowEnvelope(body, &slow) {
		t.Fatalf("fast path accepted what encoding/json rejects: %q", body)
	}
	if !reflect.DeepEqual(normal(fast), normal(slow)) {
		t.Fatalf("%q:\nfast %+v\nslow %+v", body, fast, slow)
	}
}

// normal makes nil and empty byte slices compare alike: encoding/json gives
// "" for a missing field and for an empty one, and so do the decoders.
func normal(e envelope) envelope {
	for _, b := range []*[]byte{&e.algorithm, &e.ciphertext, &e.nonce, &e.associatedData} {
		if len(*b) == 0 {
			*b = nil
		}
	}
	return e
}

func checkTransaction(t *testing.T, plaintext []byte) {
	t.Helper()
	var fast, slow payments.Transaction
	ok := fastTransaction(plaintext, &fast)
	err := json.Unmarshal(plaintext, &slow)
	if !ok {
		return // decoded by encoding/json itself
	}
	if err != nil {
		t.Fatalf("fast path accepted what encoding/json rejects (%v): %q", err, plaintext)
	}
	if !reflect.DeepEqual(fast, slow) {
		ft, _ := json.Marshal(fast)
		st, _ := json.Marshal(slow)
		t.Fatalf("%q:\nfast %s\nslow %s", plaintext, ft, st)
	}
}

func TestPlainDecodeMatchesEncodingJSON(t *testing.T) {
	for _, s := range plainEnvelopeSeeds {
		checkEnvelope(t, []byte(s))
	}
	for _, s := range plainTransactionSeeds {
		checkTransaction(t, []byte(s))
	}
	// Every prefix of the real shapes, so each early end is tried.
	for _, s := range []string{plainEnvelopeSeeds[0], plainTransactionSeeds[0]} {
		for i := range len(s) {
			checkEnvelope(t, []byte(s[:i]))
			checkTransaction(t, []byte(s[:i]))
		}
	}
}

// TestPlainDecodeTakesTheFastPath: the shapes WeChat Pay sends are in the
// subset (otherwise the fast path would be dead code).
func TestPlainDecodeTakesTheFastPath(t *testing.T) {
	var env envelope
	if !fastEnvelope([]byte(plainEnvelopeSeeds[0]), &env) || !env.hasResource || string(env.nonce) != "fdasflkja484" || env.createTime.IsZero() {
		t.Errorf("envelope not decoded by the fast path: %+v", env)
	}
	var tx payments.Transaction
	if !fastTransaction([]byte(plainTransactionSeeds[0]), &tx) || *tx.Amount.Total != 100 || *tx.Payer.Openid == "" {
		t.Errorf("transaction not decoded by the fast path")
	}
	for _, s := range []string{`{"id":"a","id":"b"}`, `{"id":"a\u0062"}`, `{"id":null}`, `{"Id":"a"}`} {
		if fastEnvelope([]byte(s), &env) {
			t.Errorf("fast path accepted %s", s)
		}
	}
}

// FuzzPlainDecodeMatchesEncodingJSON: whatever the fast decoders accept,
// they decode exactly as encoding/json does.
func FuzzPlainDecodeMatchesEncodingJSON(f *testing.F) {
	for _, s := range plainEnvelopeSeeds {
		f.Add([]byte(s))
	}
	for _, s := range plainTransactionSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkEnvelope(t, b)
		checkTransaction(t, b)
	})
}
