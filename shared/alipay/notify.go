package alipay

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
)

func badNotification(reason string) error {
	return fmt.Errorf("%w: %s", app.ErrBadNotification, reason)
}

// ParseNotification verifies an Alipay asynchronous notification from its
// raw body and translates it. It is written here rather than taken from
// the SDK, which reads the request's form (mixing in the URL's query
// string, and failing on the legacy Content-Type real notifications have
// carried), keeps empty values in the signed string, and may download a
// certificate inside the call.
//
// The parameters come from the form-encoded body only: the header
// (Content-Type included, whatever its parameters) and any query string
// play no part. A body that does not parse, or names a key twice, is
// refused. sign_type must be RSA2; the signature is SHA256withRSA
// (PKCS#1 v1.5, Base64) over every parameter but sign and sign_type whose
// value is not empty, sorted by key and joined "k=v" with "&", checked with
// Alipay's public key or, in certificate mode, its public-key
// certificate's key. Every such failure wraps app.ErrBadNotification. A
// notification naming an alipay_cert_sn other than the configured
// certificate's wraps app.ErrChannelUnavailable instead: Alipay has
// changed its certificate and the new one must be configured (nothing is
// downloaded); the 5xx answer makes Alipay deliver it again later.
//
// Then it translates: app_id is AppID, seller_id MchID, trade_no the
// TransactionID, notify_id the notification ID, gmt_payment SuccessTime,
// buyer_open_id (else buyer_id) the payer, passback_params (URL-decoded
// once more) Attach, total_amount TotalFen and buyer_pay_amount
// PayerTotalFen, parsed exactly (ParseYuan): an amount that is not a plain
// yuan decimal with at most two places ("1e-1", "1.234", "+1") cannot be
// Alipay's, nothing can be recorded from it, and it wraps
// app.ErrBadNotification. TRADE_SUCCESS and TRADE_FINISHED are EventType
// TRANSACTION.SUCCESS with TradeState SUCCESS; any other status is
// EventType "ALIPAY." + trade_status, never paid (see tradeState).
//
// A refund is notified on the payment's own notify_url: a partial one as
// TRADE_SUCCESS plus refund_fee (the total refunded so far) and
// gmt_refund, with the original total_amount and trade_no, so it settles
// as the payment it reports, idempotently; a full one as TRADE_CLOSED,
// which is TradeState REFUND (paid, then refunded) and acknowledged
// without change. TradeStateDesc names the refund.
//
// It checks nothing against this merchant (app_id, seller_id) or the
// order: that is the caller's business. It never panics.
func (c *Client) ParseNotification(_ context.Context, _ http.Header, body []byte) (app.Notification, error) {
	form, err := c.verifyForm(body)
	if err != nil {
		return app.Notification{}, err
	}
	return translate(form)
}

// verifyForm parses and verifies the body.
func (c *Client) verifyForm(body []byte) (url.Values, error) {
	if len(body) == 0 {
		return nil, badNotification("empty body")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badNotification("body is not form-encoded")
	}
	for _, vs := range form {
		if len(vs) != 1 {
			return nil, badNotification("a parameter appears more than once")
		}
	}
	if st := form.Get("sign_type"); st != "RSA2" {
		return nil, badNotification("sign_type is not RSA2")
	}
	sig, err := base64.StdEncoding.DecodeString(form.Get("sign"))
	if err != nil || len(sig) == 0 {
		return nil, badNotification("sign is missing or not Base64")
	}
	if sn := form.Get("alipay_cert_sn"); sn != "" && sn != c.certSN {
		if c.certSN == "" {
			return nil, badNotification("alipay_cert_sn in public-key mode")
		}
		return nil, fmt.Errorf("alipay notification signed with certificate %s, configured %s: %w", sn, c.certSN, app.ErrChannelUnavailable)
	}
	sum := sha256.Sum256(signContent(form))
	if rsa.VerifyPKCS1v15(c.pub, crypto.SHA256, sum[:], sig) != nil {
		return nil, badNotification("signature does not verify")
	}
	return form, nil
}

// signContent is the string Alipay signs: every parameter but sign and
// sign_type with a non-empty value, sorted by key, "k=v" joined with "&".
// It expects one value per key.
func signContent(form url.Values) []byte {
	keys := make([]string, 0, len(form))
	n := 0
	for k, vs := range form {
		if k == "sign" || k == "sign_type" || vs[0] == "" {
			continue
		}
		keys = append(keys, k)
		n += len(k) + len(vs[0]) + 2
	}
	slices.Sort(keys)
	b := make([]byte, 0, n)
	for i, k := range keys {
		if i > 0 {
			b = append(b, '&')
		}
		b = append(b, k...)
		b = append(b, '=')
		b = append(b, form[k][0]...)
	}
	return b
}

// translate turns verified parameters into payfn's notification.
func translate(form url.Values) (app.Notification, error) {
	get := func(k string) string {
		if vs := form[k]; len(vs) > 0 {
			return vs[0]
		}
		return ""
	}
	status := get("trade_status")
	if status == "" {
		return app.Notification{}, badNotification("no trade_status")
	}
	t := app.Transaction{
		AppID: get("app_id"), MchID: get("seller_id"),
		OutTradeNo: get("out_trade_no"), TransactionID: get("trade_no"),
		TradeStateDesc: status, PayerOpenID: firstOf(get("buyer_open_id"), get("buyer_id")),
		Currency: firstOf(get("trans_currency"), order.Currency),
	}
	n := app.Notification{ID: get("notify_id"), EventType: "ALIPAY." + status}
	var err error
	switch amount := get("total_amount"); {
	case amount == "":
		return app.Notification{}, badNotification("no total_amount")
	default:
		if t.TotalFen, err = ParseYuan(amount); err != nil {
			return app.Notification{}, badNotification("total_amount is not a plain yuan amount")
		}
	}
	if v := get("buyer_pay_amount"); v != "" {
		if t.PayerTotalFen, err = ParseYuan(v); err != nil {
			return app.Notification{}, badNotification("buyer_pay_amount is not a plain yuan amount")
		}
	}
	if t.SuccessTime, err = parseTime(get("gmt_payment")); err != nil {
		return app.Notification{}, badNotification("gmt_payment is not yyyy-MM-dd HH:mm:ss")
	}
	if n.CreateTime, err = parseTime(get("notify_time")); err != nil {
		return app.Notification{}, badNotification("notify_time is not yyyy-MM-dd HH:mm:ss")
	}
	if v := get("passback_params"); v != "" {
		if t.Attach, err = url.QueryUnescape(v); err != nil {
			t.Attach = v // not ours (we always encode it): passed on as sent
		}
	}
	refunded := get("refund_fee") != ""
	if refunded {
		fen, err := ParseYuan(get("refund_fee"))
		if err != nil {
			return app.Notification{}, badNotification("refund_fee is not a plain yuan amount")
		}
		t.TradeStateDesc = status + ", refunded " + FormatYuan(fen) + " yuan so far"
	}
	t.TradeState = tradeState(status, !t.SuccessTime.IsZero() || refunded)
	if t.TradeState == app.TradeStateSuccess {
		n.EventType = app.EventTransactionSuccess
		if t.OutTradeNo == "" || t.TransactionID == "" || n.ID == "" {
			return app.Notification{}, badNotification("a paid trade without out_trade_no, trade_no or notify_id")
		}
	}
	n.Transaction = t
	return n, nil
}
