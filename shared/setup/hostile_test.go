package setup_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
)

// hostileCase is one notification verifyPayment must refuse (or acknowledge
// without acting on), and the documented answer.
type hostileCase struct {
	name   string
	build  func(t *testing.T) (http.Header, []byte)
	status int
	code   string
}

// TestHostileNotificationsAreAnsweredAsDocumentedAndChangeNothing is
// design.md invariant 3 as a matrix: every way a notification can be forged,
// replayed stale, tampered with, malformed, or genuine but not ours. Each is
// sent straight into the real handler (a panic escaping it fails the test)
// and again over loopback HTTP as WeChat Pay would send it; each must get
// its documented answer and leave every order, ledger row and claim in the
// store exactly as it was.
func TestHostileNotificationsAreAnsweredAsDocumentedAndChangeNothing(t *testing.T) {
	h := newHarness(t)
	token := h.login("o-buyer")
	id := h.createOrder(token, "latte", 1)
	h.pay(token, id) // the order exists at WeChat Pay too: only the notification is hostile
	f := h.forger()
	k := h.sim.Keys()
	tx := func() paysim.Transaction { return h.paidTx(id, "o-buyer", 2800) }

	sim := func(o paysim.NotifyOptions) func(*testing.T) (http.Header, []byte) {
		return func(t *testing.T) (http.Header, []byte) {
			hdr, body, err := h.sim.BuildNotification(tx(), o)
			if err != nil {
				t.Fatal(err)
			}
			return hdr, body
		}
	}
	// header edits a genuine notification's headers after signing.
	header := func(edit func(http.Header)) func(*testing.T) (http.Header, []byte) {
		return func(t *testing.T) (http.Header, []byte) {
			hdr, body := sim(paysim.NotifyOptions{})(t)
			edit(hdr)
			return hdr, body
		}
	}
	// signed builds a genuine notification, edits its envelope and signs the
	// result validly, so the check after the signature is what must refuse it.
	signed := func(edit func(env map[string]any)) func(*testing.T) (http.Header, []byte) {
		return func(t *testing.T) (http.Header, []byte) {
			env := f.envelope(t, plaintext(t, tx()))
			edit(env)
			return f.build(t, env)
		}
	}
	// content is a genuine, verified notification whose transaction differs.
	content := func(edit func(*paysim.Transaction)) func(*testing.T) (http.Header, []byte) {
		return func(t *testing.T) (http.Header, []byte) {
			x := tx()
			edit(&x)
			return f.build(t, f.envelope(t, plaintext(t, x)))
		}
	}
	// flip flips one bit of the sealed resource at pos(len).
	flip := func(pos func(n int) int) func(env map[string]any) {
		return func(env map[string]any) {
			res := env["resource"].(map[string]any)
			ct, _ := base64.StdEncoding.DecodeString(res["ciphertext"].(string))
			ct[pos(len(ct))] ^= 0x01
			res["ciphertext"] = base64.StdEncoding.EncodeToString(ct)
		}
	}
	resource := func(env map[string]any) map[string]any { return env["resource"].(map[string]any) }
	randomSig := func() string {
		b := make([]byte, 256)
		rand.Read(b)
		return base64.StdEncoding.EncodeToString(b)
	}
	dup := func(name, forged string) func(http.Header) {
		return func(hdr http.Header) { hdr[name] = []string{forged, hdr.Get(name)} }
	}
	const bad, badCode = http.StatusUnauthorized, "INVALID_NOTIFICATION"

	cases := []hostileCase{
		// Signature and headers (wechatpay-v3.md §2).
		{"bad signature", header(func(h http.Header) { h.Set("Wechatpay-Signature", randomSig()) }), bad, badCode},
		{"signature not base64", header(func(h http.Header) { h.Set("Wechatpay-Signature", "!!not base64!!") }), bad, badCode},
		{"signed by another key", sim(paysim.NotifyOptions{SignWith: otherKey}), bad, badCode},
		{"unknown serial", sim(paysim.NotifyOptions{Serial: "PUB_KEY_ID_0000000000000000000000000000000099"}), bad, badCode},
		{"certificate serial in public-key mode", sim(paysim.NotifyOptions{Serial: k.PlatformCertSerial}), bad, badCode},
		{"timestamp 301 s old", sim(paysim.NotifyOptions{TimestampShift: -301 * time.Second}), bad, badCode},
		{"timestamp 301 s ahead", sim(paysim.NotifyOptions{TimestampShift: 301 * time.Second}), bad, badCode},
		{"timestamp not a number", header(func(h http.Header) { h.Set("Wechatpay-Timestamp", "soon") }), bad, badCode},
		{"missing Wechatpay-Serial", header(func(h http.Header) { h.Del("Wechatpay-Serial") }), bad, badCode},
		{"missing Wechatpay-Signature", header(func(h http.Header) { h.Del("Wechatpay-Signature") }), bad, badCode},
		{"missing Wechatpay-Timestamp", header(func(h http.Header) { h.Del("Wechatpay-Timestamp") }), bad, badCode},
		{"missing Wechatpay-Nonce", header(func(h http.Header) { h.Del("Wechatpay-Nonce") }), bad, badCode},
		{"no Wechatpay headers at all", header(func(h http.Header) {
			for _, n := range []string{"Wechatpay-Serial", "Wechatpay-Signature", "Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature-Type"} {
				h.Del(n)
			}
		}), bad, badCode},
		{"duplicated Wechatpay-Signature, forged copy first", header(func(h http.Header) { dup("Wechatpay-Signature", randomSig())(h) }), bad, badCode},
		{"duplicated Wechatpay-Serial, forged copy first", header(dup("Wechatpay-Serial", "PUB_KEY_ID_0000000000000000000000000000000099")), bad, badCode},
		{"duplicated Wechatpay-Timestamp, stale copy first", header(func(h http.Header) {
			ts, _ := strconv.ParseInt(h.Get("Wechatpay-Timestamp"), 10, 64)
			dup("Wechatpay-Timestamp", strconv.FormatInt(ts-400, 10))(h)
		}), bad, badCode},
		{"duplicated Wechatpay-Nonce, other copy first", header(dup("Wechatpay-Nonce", "another-nonce")), bad, badCode},
		{"duplicated Wechatpay-Signature joined by a gateway", header(func(h http.Header) {
			h.Set("Wechatpay-Signature", h.Get("Wechatpay-Signature")+", "+h.Get("Wechatpay-Signature"))
		}), bad, badCode},
		{"unsupported signature type", header(func(h http.Header) { h.Set("Wechatpay-Signature-Type", "WECHATPAY2-SM2-WITH-SM3") }), bad, badCode},
		{"body changed after signing", sim(paysim.NotifyOptions{TamperBody: func(b []byte) []byte {
			return bytes.Replace(b, []byte("TRANSACTION.SUCCESS"), []byte("TRANSACTION.SUCCESS "), 1)
		}}), bad, badCode},
		{"amount changed after signing", sim(paysim.NotifyOptions{TamperBody: func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"summary":"`), []byte(`"summary":"x`), 1)
		}}), bad, badCode},
		{"WeChat signature probe", sim(paysim.NotifyOptions{SignatureProbe: true}), bad, badCode},

		// Decryption and format, each behind a valid signature (§3).
		{"ciphertext flipped", signed(flip(func(int) int { return 0 })), bad, badCode},
		{"GCM tag flipped", signed(flip(func(n int) int { return n - 1 })), bad, badCode},
		{"associated_data changed", signed(func(env map[string]any) {
			resource(env)["associated_data"] = "refund"
		}), bad, badCode},
		{"algorithm not AEAD_AES_256_GCM", signed(func(env map[string]any) {
			resource(env)["algorithm"] = "AEAD_SM4_GCM"
		}), bad, badCode},
		{"wrong APIv3 key", sim(paysim.NotifyOptions{APIv3Key: "ffffffffffffffffffffffffffffffff"}), bad, badCode},
		{"nonce 11 bytes", sim(paysim.NotifyOptions{Nonce: "abcdefghijk"}), bad, badCode},
		{"nonce 13 bytes", sim(paysim.NotifyOptions{Nonce: "abcdefghijklm"}), bad, badCode},
		{"nonce empty", signed(func(env map[string]any) { resource(env)["nonce"] = "" }), bad, badCode},
		{"missing resource", sim(paysim.NotifyOptions{OmitResource: true}), bad, badCode},
		{"resource null", signed(func(env map[string]any) { env["resource"] = nil }), bad, badCode},
		{"resource not an object", signed(func(env map[string]any) { env["resource"] = "x" }), bad, badCode},
		{"create_time not RFC 3339", signed(func(env map[string]any) { env["create_time"] = "2024-01-01 10:00:00" }), bad, badCode},
		{"plaintext not JSON", signed(func(env map[string]any) {
			resource(env)["ciphertext"] = f.seal(t, "abcdefghijkl", "transaction", []byte("not json"))
		}), bad, badCode},
		{"amount.total not a number", signed(func(env map[string]any) {
			resource(env)["ciphertext"] = f.seal(t, "abcdefghijkl", "transaction",
				[]byte(`{"appid":"`+testAppID+`","mchid":"`+testMchID+`","out_trade_no":"`+id+`","transaction_id":"4200000001","trade_state":"SUCCESS","amount":{"total":"2800","currency":"CNY"}}`))
		}), bad, badCode},
		{"success_time not RFC 3339", content(func(x *paysim.Transaction) { x.SuccessTime = "yesterday" }), bad, badCode},
		{"validly signed non-JSON body", func(t *testing.T) (http.Header, []byte) {
			return f.sign(t, []byte("not json")), []byte("not json")
		}, bad, badCode},
		{"validly signed JSON array", func(t *testing.T) (http.Header, []byte) { return f.sign(t, []byte("[]")), []byte("[]") }, bad, badCode},
		{"unsigned non-JSON body", func(*testing.T) (http.Header, []byte) { return http.Header{}, []byte("not json at all") }, bad, badCode},
		{"empty body", func(*testing.T) (http.Header, []byte) { return http.Header{}, nil }, bad, badCode},
		{"oversized unsigned body", func(*testing.T) (http.Header, []byte) {
			return http.Header{}, []byte(`{"id":"` + strings.Repeat("x", 70<<10) + `"}`)
		}, http.StatusRequestEntityTooLarge, "BODY_TOO_LARGE"},
		{"oversized validly signed body", signed(func(env map[string]any) {
			env["summary"] = strings.Repeat("支", 30<<10) // 90 KiB of UTF-8
		}), http.StatusRequestEntityTooLarge, "BODY_TOO_LARGE"},

		// Verified, but not a payment of ours (§9 step 3).
		{"appid mismatch", content(func(x *paysim.Transaction) { x.AppID = "wx0000000000000000" }), 400, "NOTIFICATION_MISMATCH"},
		{"mchid mismatch", content(func(x *paysim.Transaction) { x.MchID = "1900000999" }), 400, "NOTIFICATION_MISMATCH"},
		{"currency mismatch", content(func(x *paysim.Transaction) { x.Amount.Currency = "USD" }), 400, "NOTIFICATION_MISMATCH"},
		{"no transaction_id", content(func(x *paysim.Transaction) { x.TransactionID = "" }), 400, "NOTIFICATION_MISMATCH"},
		{"unknown out_trade_no", content(func(x *paysim.Transaction) { x.OutTradeNo = "PF20260101000000UNKNOWN00000" }), 404, "ORDER_NOT_FOUND"},
		{"malformed out_trade_no", content(func(x *paysim.Transaction) { x.OutTradeNo = "../orders/" + id }), 404, "ORDER_NOT_FOUND"},
		// Genuine and ours but not a success: acknowledged (a retry would not
		// change it) and not acted on.
		{"trade_state NOTPAY", content(func(x *paysim.Transaction) { x.TradeState = "NOTPAY" }), 200, "SUCCESS"},
		{"trade_state CLOSED", content(func(x *paysim.Transaction) { x.TradeState = "CLOSED" }), 200, "SUCCESS"},
		{"trade_state PAYERROR", content(func(x *paysim.Transaction) { x.TradeState = "PAYERROR" }), 200, "SUCCESS"},
		{"event_type REFUND.SUCCESS", sim(paysim.NotifyOptions{EventType: "REFUND.SUCCESS"}), 200, "SUCCESS"},
	}

	answers := map[string]int{}
	start := h.dbSnapshot()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := h.dbSnapshot()
			hdr, body := c.build(t)
			status, raw := serve(t, h.stack.Handler, "/notify/wechatpay", hdr, body)
			answers[statusKey(status)]++
			if status != c.status || !strings.Contains(string(raw), `"`+c.code+`"`) {
				t.Errorf("handler answered %d %s, want %d %s", status, raw, c.status, c.code)
			}
			// The same bytes over loopback, as WeChat Pay would deliver them.
			status, err := h.sim.Deliver(context.Background(), h.url+"/notify/wechatpay", hdr, body)
			answers[statusKey(status)]++
			if err != nil || status != c.status {
				t.Errorf("over HTTP: answered %d (%v), want %d", status, err, c.status)
			}
			if d := before.diff(h.dbSnapshot()); d != "" {
				t.Errorf("the store changed:\n%s", d)
			}
		})
	}
	end := h.dbSnapshot()
	changes := 0
	if d := start.diff(end); d != "" {
		changes = 1
	}
	if o := h.order(id); o.Status != order.StatusNotPay || o.TransactionID != "" {
		t.Fatalf("order changed: %+v", o)
	}
	report(t, figures{Case: "hostile notifications (" + strconv.Itoa(len(cases)) + " kinds)", Tried: 2 * len(cases), Answers: answers,
		LedgerRows: len(end["payments"]), Transitions: len(end["claims"]), StateChanges: changes})

	// Controls: each builder, with nothing edited, makes a notification that
	// pays a fresh order. So every refusal above is caused by the one thing
	// its case got wrong, not by a forger that cannot forge.
	noop := func(http.Header) {}
	controls := map[string]func(*testing.T) (http.Header, []byte){
		"simulator":    sim(paysim.NotifyOptions{}),
		"header edit":  header(noop),
		"signed edit":  signed(func(map[string]any) {}),
		"content edit": content(func(*paysim.Transaction) {}),
	}
	for name, build := range controls {
		t.Run("control "+name, func(t *testing.T) {
			id = h.createOrder(token, "latte", 1)
			hdr, body := build(t)
			if status, raw := serve(t, h.stack.Handler, "/notify/wechatpay", hdr, body); status != 200 || h.order(id).Status != order.StatusPaid {
				t.Fatalf("unedited notification answered %d %s; order %s", status, raw, h.order(id).Status)
			}
		})
	}
}

// TestGenuinePaymentsAreRecordedAndDecidedOnce covers the genuine
// notifications that do change something (invariants 4 and 8): a payment of
// the wrong amount is recorded and parks the order in EXCEPTION, acknowledged;
// a replay after success, with the same or a fresh signature, changes
// nothing; a second, different payment for a settled order is recorded in the
// ledger and leaves the order as it was decided.
func TestGenuinePaymentsAreRecordedAndDecidedOnce(t *testing.T) {
	h := newHarness(t)
	token := h.login("o-buyer")

	for name, paid := range map[string]int64{"one fen short": 2799, "one fen over": 2801} {
		t.Run("amount.total "+name, func(t *testing.T) {
			id := h.createOrder(token, "latte", 1)
			hdr, body, err := h.sim.BuildNotification(h.paidTx(id, "o-buyer", paid), paysim.NotifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if status, raw := serve(t, h.stack.Handler, "/notify/wechatpay", hdr, body); status != 200 {
				t.Fatalf("answered %d %s, want 200 (a retry would not change it)", status, raw)
			}
			o := h.order(id)
			l := h.ledger(id)
			cs := h.claims(id)
			if o.Status != order.StatusException || o.PaidAt == nil {
				t.Errorf("order is %s (paid_at %v), want EXCEPTION", o.Status, o.PaidAt)
			}
			if len(l) != 1 || l[0].Matched || l[0].TotalFen != paid {
				t.Errorf("ledger = %+v, want one unmatched row of %d", l, paid)
			}
			if len(cs) != 1 || cs[0].Status != order.StatusException {
				t.Errorf("claims = %+v", cs)
			}
			// Delivered again: still one row, one decision.
			if status, _ := serve(t, h.stack.Handler, "/notify/wechatpay", hdr, body); status != 200 || len(h.ledger(id)) != 1 || len(h.claims(id)) != 1 {
				t.Errorf("repeat answered %d, ledger %d, claims %d", status, len(h.ledger(id)), len(h.claims(id)))
			}
		})
	}

	t.Run("replayed after success", func(t *testing.T) {
		id := h.createOrder(token, "latte", 1)
		tx := h.paidTx(id, "o-buyer", 2800)
		hdr, body, err := h.sim.BuildNotification(tx, paysim.NotifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if status, raw := serve(t, h.stack.Handler, "/notify/wechatpay", hdr, body); status != 200 || h.order(id).Status != order.StatusPaid {
			t.Fatalf("genuine notification answered %d %s", status, raw)
		}
		settled := h.dbSnapshot()
		// The captured bytes, as an attacker would replay them within the
		// five-minute window, and WeChat's own re-signed retries.
		for i := 0; i < 3; i++ {
			if status, raw := serve(t, h.stack.Handler, "/notify/wechatpay", hdr, body); status != 200 {
				t.Fatalf("replay answered %d %s", status, raw)
			}
			hdr2, body2, _ := h.sim.BuildNotification(tx, paysim.NotifyOptions{})
			if status, raw := serve(t, h.stack.Handler, "/notify/wechatpay", hdr2, body2); status != 200 {
				t.Fatalf("re-signed retry answered %d %s", status, raw)
			}
		}
		if d := settled.diff(h.dbSnapshot()); d != "" {
			t.Fatalf("replays changed the store:\n%s", d)
		}
	})

	t.Run("second payment for a paid order", func(t *testing.T) {
		id := h.createOrder(token, "latte", 1)
		first := h.paidTx(id, "o-buyer", 2800)
		hdr, body, _ := h.sim.BuildNotification(first, paysim.NotifyOptions{})
		if status, _ := serve(t, h.stack.Handler, "/notify/wechatpay", hdr, body); status != 200 {
			t.Fatal("first payment not acknowledged")
		}
		second := h.paidTx(id, "o-buyer", 2800)
		second.TransactionID = first.TransactionID[:len(first.TransactionID)-1] + "9"
		if second.TransactionID == first.TransactionID {
			second.TransactionID = first.TransactionID[:len(first.TransactionID)-1] + "8"
		}
		hdr, body, _ = h.sim.BuildNotification(second, paysim.NotifyOptions{})
		if status, _ := serve(t, h.stack.Handler, "/notify/wechatpay", hdr, body); status != 200 {
			t.Fatal("second payment not acknowledged")
		}
		o := h.order(id)
		if o.Status != order.StatusPaid || o.TransactionID != first.TransactionID {
			t.Errorf("order = %s %s, want PAID by the first transaction", o.Status, o.TransactionID)
		}
		if l, cs := h.ledger(id), h.claims(id); len(l) != 2 || len(cs) != 1 {
			t.Errorf("ledger %d rows, claims %d: want both payments on record and one decision", len(l), len(cs))
		}
	})
}
