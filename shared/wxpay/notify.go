package wxpay

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments"

	"github.com/payfn/payfn/shared/app"
)

const (
	signatureType        = "WECHATPAY2-SHA256-RSA2048"
	signatureProbePrefix = "WECHATPAY/SIGNTEST/"
	// aeadAlgorithm is the only resource encryption WeChat Pay uses.
	aeadAlgorithm = "AEAD_AES_256_GCM"
	// notifyWindow is the SDK's freshness rule: |now - timestamp| < 300 s.
	// Together with idempotent handling it bounds replays of captured
	// genuine notifications.
	notifyWindow = 300 * time.Second
)

func badNotification(reason string) error {
	return fmt.Errorf("%w: %s", app.ErrBadNotification, reason)
}

// ParseNotification verifies a payment notification from its exact headers
// and raw body: signature by Wechatpay-Serial (public key or platform
// certificate), the five-minute timestamp window, then AES-256-GCM
// decryption with the APIv3 key. Every failure wraps app.ErrBadNotification
// with a short reason of our own (the SDK's error text embeds the whole
// request); signature probes fail too. It never panics. In
// platform-certificate mode a failed certificate download wraps
// app.ErrChannelUnavailable instead, so the caller answers 5xx and WeChat
// Pay retries. It does not check event type, trade state, appid, mchid or
// amounts: that is the caller's business.
func (c *Channel) ParseNotification(ctx context.Context, header http.Header, body []byte) (app.Notification, error) {
	var tx payments.Transaction
	nr, err := c.parse(ctx, header, body, &tx)
	if err != nil {
		return app.Notification{}, err
	}
	t, err := toTransaction(&tx)
	if err != nil {
		return app.Notification{}, badNotification("success_time is not RFC 3339")
	}
	n := app.Notification{ID: nr.ID, EventType: nr.EventType, Transaction: t}
	if nr.CreateTime != nil {
		n.CreateTime = *nr.CreateTime
	}
	return n, nil
}

// refundResource is a decrypted refund notification; the SDK has no model
// for it.
type refundResource struct {
	MchID       string `json:"mchid"`
	OutTradeNo  string `json:"out_trade_no"`
	OutRefundNo string `json:"out_refund_no"`
	RefundID    string `json:"refund_id"`
	Status      string `json:"refund_status"`
	SuccessTime string `json:"success_time"`
	Amount      struct {
		Total  int64 `json:"total"`
		Refund int64 `json:"refund"`
	} `json:"amount"`
}

// ParseRefundNotification verifies and decrypts a refund notification with
// exactly the checks of ParseNotification.
func (c *Channel) ParseRefundNotification(ctx context.Context, header http.Header, body []byte) (app.RefundNotification, error) {
	var r refundResource
	nr, err := c.parse(ctx, header, body, &r)
	if err != nil {
		return app.RefundNotification{}, err
	}
	res := app.RefundResult{
		MchID: r.MchID, OutTradeNo: r.OutTradeNo, OutRefundNo: r.OutRefundNo, RefundID: r.RefundID,
		Status: r.Status, RefundFen: r.Amount.Refund, TotalFen: r.Amount.Total,
	}
	if r.SuccessTime != "" {
		t, err := time.Parse(time.RFC3339, r.SuccessTime)
		if err != nil {
			return app.RefundNotification{}, badNotification("success_time is not RFC 3339")
		}
		res.SuccessTime = t
	}
	return app.RefundNotification{ID: nr.ID, EventType: nr.EventType, Refund: res}, nil
}

// parse verifies a notification and decrypts its resource into content.
func (c *Channel) parse(ctx context.Context, header http.Header, body []byte, content any) (nr *notify.Request, err error) {
	defer func() {
		// The SDK panics on some signed-but-malformed input; the checks below
		// should stop it first, this is the backstop.
		if p := recover(); p != nil {
			nr, err = nil, badNotification("malformed notification")
		}
	}()
	serial := strings.TrimSpace(header.Get("Wechatpay-Serial"))
	sig := strings.TrimSpace(header.Get("Wechatpay-Signature"))
	tsText := strings.TrimSpace(header.Get("Wechatpay-Timestamp"))
	nonce := strings.TrimSpace(header.Get("Wechatpay-Nonce"))
	if serial == "" || sig == "" || tsText == "" || nonce == "" {
		return nil, badNotification("missing Wechatpay signature headers")
	}
	if strings.HasPrefix(sig, signatureProbePrefix) {
		return nil, badNotification("signature probe")
	}
	if st := header.Get("Wechatpay-Signature-Type"); st != "" && st != signatureType {
		return nil, badNotification("unsupported signature type")
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return nil, badNotification("malformed timestamp")
	}
	// time.Now, not an injected clock: the SDK's validator below uses it too.
	if d := time.Since(time.Unix(ts, 0)); d >= notifyWindow || d <= -notifyWindow {
		return nil, badNotification("timestamp outside the 5-minute window")
	}
	if c.mode == modeCertificate || (c.mode == modeCombined && serial != c.cfg.PublicKeyID) {
		if err := c.ensureCerts(ctx, serial); err != nil {
			return nil, fmt.Errorf("notification: %w", err)
		}
	}
	msg := tsText + "\n" + nonce + "\n" + string(body) + "\n"
	if err := c.verifier.Verify(ctx, serial, msg, sig); err != nil {
		return nil, badNotification("signature verification failed")
	}
	// The signature is good. Decrypt as the SDK's notify.Handler does
	// (ParseNotifyRequest: envelope, algorithm, AES-256-GCM open, plaintext
	// into content), without its second verification of the same signature:
	// an RSA verify is most of a notification's CPU.
	nr = new(notify.Request)
	if err := json.Unmarshal(body, nr); err != nil {
		return nil, badNotification("body is not JSON")
	}
	if nr.Resource == nil {
		return nil, badNotification("no resource")
	}
	if len(nr.Resource.Nonce) != c.aead.NonceSize() {
		return nil, badNotification("resource nonce is not 12 bytes")
	}
	if nr.Resource.Algorithm != aeadAlgorithm {
		return nil, badNotification("decryption or parsing failed")
	}
	ciphertext, err := base64.StdEncoding.DecodeString(nr.Resource.Ciphertext)
	if err != nil {
		return nil, badNotification("decryption or parsing failed")
	}
	plaintext, err := c.aead.Open(ciphertext[:0], []byte(nr.Resource.Nonce), ciphertext, []byte(nr.Resource.AssociatedData))
	if err != nil {
		return nil, badNotification("decryption or parsing failed")
	}
	if err := json.Unmarshal(plaintext, content); err != nil {
		return nil, badNotification("decryption or parsing failed")
	}
	return nr, nil
}
