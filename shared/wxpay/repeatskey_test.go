package wxpay

import (
	"testing"

	"github.com/wechatpay-apiv3/wechatpay-go/services/payments"
)

func TestRepeatsKeyFindsARepeatAtAnyDepthFoldedAsEncodingJSON(t *testing.T) {
	for doc, want := range map[string]bool{
		`{"a":1,"b":2}`:             false,
		`{"a":1,"a":2}`:             true,
		`{"a":1,"A":2}`:             true,
		`{"\u0061":1,"a":2}`:        true, // the same key, escaped
		`{"k":1,"\u212a":2}`:        true, // KELVIN SIGN folds to k, as bytes.EqualFold says
		`{"a":"a","b":"a"}`:         false,
		`{"a":{"a":1},"b":{"a":1}}`: false, // one key per object
		`{"a":{"x":1,"x":2}}`:       true,
		`{"a":[{"x":1},{"x":2}]}`:   false,
		`{"a":[{"x":1,"x":2}]}`:     true,
		`{"a":[[{}],{"y":[1,{"z":0}]}],"b":{"c":{"d":{"d":1,"D":2}}}}`: true,
		`{"a":[],"b":{},"c":null,"d":true}`:                            false,
		`{"a":"}{\"a\":","b":1}`:                                       false,
		`[{"a":1},{"a":1}]`:                                            false,
		`[{"a":1,"a":1}]`:                                              true,
		`{"a":1}{"a":2}`:                                               false, // a second document is json.Unmarshal's to refuse
		`{"a":1,"b"`:                                                   false,
		`"a"`:                                                          false,
		``:                                                             false,
	} {
		if got := repeatsKey([]byte(doc)); got != want {
			t.Errorf("repeatsKey(%s) = %v, want %v", doc, got, want)
		}
	}
}

// TestDecodersRefuseWhatTheFastPathLeftForARepeat: a repeat makes the fast
// path give up, and the encoding/json fallback must then refuse rather than
// keep the last copy.
func TestDecodersRefuseWhatTheFastPathLeftForARepeat(t *testing.T) {
	var env envelope
	for _, s := range []string{`{"id":"a","id":"b"}`, `{"id":"a","ID":"b"}`, `{"resource":{"nonce":"a","nonce":"b"}}`,
		`{"resource":{"nonce":"a"},"resource":null}`} {
		if decodeEnvelope([]byte(s), &env) {
			t.Errorf("decodeEnvelope accepted %s", s)
		}
	}
	for _, s := range []string{`{"amount":{"total":1,"total":2}}`, `{"amount":{"total":1},"amount":{"currency":"CNY"}}`,
		`{"appid":"a","AppID":"b"}`, `{"promotion_detail":[{"amount":1,"amount":2}]}`} {
		var tx payments.Transaction
		if err := decodeTransaction([]byte(s), &tx); err == nil {
			t.Errorf("decodeTransaction accepted %s", s)
		}
	}
}
