package wxpay

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/jsapi"

	"github.com/payfn/payfn/shared/app"
)

const (
	maxDescription = 127 // characters, WeChat's limit for description
	maxAttach      = 128
)

// APIError is WeChat Pay's error answer to an API call. It unwraps to
// app.ErrChannelUnavailable for 5xx and 429 answers and to
// app.ErrTradeNotFound for 404 / ORDER_NOT_EXIST / RESOURCE_NOT_EXISTS; other 4xx answers (our
// request was refused) unwrap to nothing.
type APIError struct {
	Status  int    // HTTP status
	Code    string // WeChat's code, e.g. OUT_TRADE_NO_USED
	Message string // WeChat's message, shortened
}

func (e *APIError) Error() string {
	return fmt.Sprintf("wechat pay answered %d %s: %s", e.Status, e.Code, e.Message)
}

// Unwrap classifies the answer for errors.Is.
func (e *APIError) Unwrap() error {
	switch {
	case e.Status >= 500 || e.Status == http.StatusTooManyRequests:
		return app.ErrChannelUnavailable
	case e.Status == http.StatusNotFound || e.Code == "ORDER_NOT_EXIST" || e.Code == "ORDERNOTEXIST" || e.Code == "RESOURCE_NOT_EXISTS":
		return app.ErrTradeNotFound
	}
	return nil
}

// Code returns the WeChat Pay error code carried by err (e.g.
// "OUT_TRADE_NO_USED", "SYSTEM_ERROR"), or "" when err is not a WeChat Pay
// error answer.
func Code(err error) string {
	var e *APIError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// classify turns an SDK error into ours. An error answer becomes an
// *APIError; anything else (transport error, timeout, a 2xx reply that
// failed signature validation or decoding) means WeChat Pay's answer could
// not be had or trusted, which is app.ErrChannelUnavailable.
func classify(op string, err error) error {
	var ae *core.APIError
	if errors.As(err, &ae) {
		msg := ae.Message
		if utf8.RuneCountInString(msg) > 200 {
			msg = string([]rune(msg)[:200])
		}
		return fmt.Errorf("%s: %w", op, &APIError{Status: ae.StatusCode, Code: ae.Code, Message: msg})
	}
	return unavailable(op, err)
}

// unavailable wraps err as app.ErrChannelUnavailable. The SDK's transport
// and validation errors carry URLs, serials and request ids, never keys or
// bodies, so they are kept for diagnosis.
func unavailable(op string, err error) error {
	var ae *core.APIError
	if errors.As(err, &ae) { // APIError.Error() lists every reply header; keep it short
		return fmt.Errorf("%s: %w: %w", op, app.ErrChannelUnavailable, &APIError{Status: ae.StatusCode, Code: ae.Code, Message: ae.Message})
	}
	return fmt.Errorf("%s: %w: %w", op, app.ErrChannelUnavailable, err)
}

// PrepayID creates the JSAPI order under req.AppID (the default AppID when
// empty) and returns its prepay_id. An appid not in AppIDs wraps
// ErrUnboundAppID and sends nothing. The same out_trade_no with identical
// parameters returns a fresh prepay_id; changed parameters (the appid too)
// fail with Code OUT_TRADE_NO_USED. The description is cut to
// 127 characters and stripped of characters WeChat refuses (4-byte UTF-8
// such as emoji). Errors wrap app.ErrChannelUnavailable when WeChat Pay
// could not answer, or carry an *APIError.
func (c *Channel) PrepayID(ctx context.Context, req app.PrepayRequest) (string, error) {
	op := "prepay " + req.OutTradeNo
	desc, err := checkPrepay("prepay", req)
	if err != nil {
		return "", err
	}
	if req.PayerOpenID == "" {
		return "", fmt.Errorf("%s: empty payer openid", op)
	}
	appID, err := c.appID(req.AppID)
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	if err := c.ready(ctx); err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	r := jsapi.PrepayRequest{
		Appid:       core.String(appID),
		Mchid:       core.String(c.cfg.MchID),
		Description: core.String(desc),
		OutTradeNo:  core.String(req.OutTradeNo),
		NotifyUrl:   core.String(c.cfg.NotifyURL),
		Amount:      &jsapi.Amount{Total: core.Int64(req.TotalFen), Currency: core.String("CNY")},
		Payer:       &jsapi.Payer{Openid: core.String(req.PayerOpenID)},
	}
	r.TimeExpire, r.Attach = timeExpire(req.TimeExpire), optional(req.Attach)
	if req.ProfitSharing {
		r.SettleInfo = &jsapi.SettleInfo{ProfitSharing: core.Bool(true)}
	}
	resp, _, err := c.api.Prepay(ctx, r)
	if err != nil {
		return "", classify(op, err)
	}
	if resp.PrepayId == nil || *resp.PrepayId == "" {
		return "", fmt.Errorf("%s: %w: reply without prepay_id", op, app.ErrChannelUnavailable)
	}
	return *resp.PrepayId, nil
}

// Prepay creates the JSAPI order (PrepayID) and signs the
// wx.requestPayment parameters for it (PaymentParams).
func (c *Channel) Prepay(ctx context.Context, req app.PrepayRequest) (app.Prepaid, error) {
	id, err := c.PrepayID(ctx, req)
	if err != nil {
		return app.Prepaid{}, err
	}
	params, err := c.PaymentParams(req.AppID, id)
	if err != nil {
		return app.Prepaid{}, err
	}
	return app.Prepaid{Ref: id, Payment: params}, nil
}

// checkPrepay checks what every prepay (JSAPI, H5) sends and returns the
// description as it is sent. what names the call in errors.
func checkPrepay(what string, req app.PrepayRequest) (string, error) {
	op := what + " " + req.OutTradeNo
	desc := sanitizeDescription(req.Description)
	switch {
	case req.OutTradeNo == "":
		return "", fmt.Errorf("%s: empty out_trade_no", what)
	case req.TotalFen < 1:
		return "", fmt.Errorf("%s: total %d fen is not positive", op, req.TotalFen)
	case desc == "":
		return "", fmt.Errorf("%s: empty description", op)
	case utf8.RuneCountInString(req.Attach) > maxAttach:
		// attach comes back verbatim; cutting it would corrupt it.
		return "", fmt.Errorf("%s: attach longer than %d characters", op, maxAttach)
	}
	return desc, nil
}

// timeExpire is time_expire as WeChat documents it, yyyy-MM-DDTHH:mm:ss+08:00
// (the SDK marshals with RFC3339Nano, so whole seconds in +08:00); nil when
// t is zero.
func timeExpire(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	te := t.Truncate(time.Second).In(cst)
	return &te
}

// optional is s for an optional field: nil when empty.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return core.String(s)
}

// sanitizeDescription drops invalid UTF-8 and 4-byte characters (WeChat
// accepts only 1-3-byte UTF-8) and cuts the rest to 127 characters.
func sanitizeDescription(s string) string {
	var b strings.Builder
	n := 0
	for _, r := range strings.ToValidUTF8(s, "") {
		if r > 0xFFFF {
			continue
		}
		if n == maxDescription {
			break
		}
		b.WriteRune(r)
		n++
	}
	return strings.TrimSpace(b.String())
}

// PaymentParams signs the wx.requestPayment parameters for prepayID,
// issued under appID (the default AppID when empty), locally (no network
// call), so a still-valid prepay_id can be reused:
// paySign = Base64(SHA256withRSA("appId\ntimeStamp\nnonceStr\npackage\n")).
// An appid not in AppIDs wraps ErrUnboundAppID.
func (c *Channel) PaymentParams(appID, prepayID string) (app.PaymentParams, error) {
	if prepayID == "" {
		return app.PaymentParams{}, errors.New("payment params: empty prepay_id")
	}
	appID, err := c.appID(appID)
	if err != nil {
		return app.PaymentParams{}, fmt.Errorf("payment params: %w", err)
	}
	nonce, err := nonceStr(32)
	if err != nil {
		return app.PaymentParams{}, fmt.Errorf("payment params: %w", err)
	}
	p := app.PaymentParams{
		AppID:     appID,
		TimeStamp: strconv.FormatInt(time.Now().Unix(), 10),
		NonceStr:  nonce,
		Package:   "prepay_id=" + prepayID,
		SignType:  "RSA",
	}
	msg := p.AppID + "\n" + p.TimeStamp + "\n" + p.NonceStr + "\n" + p.Package + "\n"
	sum := sha256.Sum256([]byte(msg))
	sig, err := rsa.SignPKCS1v15(rand.Reader, c.cfg.MchPrivateKey, crypto.SHA256, sum[:])
	if err != nil {
		return app.PaymentParams{}, fmt.Errorf("payment params: sign: %w", err)
	}
	p.PaySign = base64.StdEncoding.EncodeToString(sig)
	return p, nil
}

const nonceAlphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// nonceStr returns n characters from [0-9a-zA-Z], as the SDK makes them.
func nonceStr(n int) (string, error) {
	b := make([]byte, n)
	max := big.NewInt(int64(len(nonceAlphabet)))
	for i := range b {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("nonce: %w", err)
		}
		b[i] = nonceAlphabet[v.Int64()]
	}
	return string(b), nil
}

// QueryOrder asks WeChat Pay for the order by out_trade_no. An unknown
// order wraps app.ErrTradeNotFound; a fault wraps app.ErrChannelUnavailable.
func (c *Channel) QueryOrder(ctx context.Context, outTradeNo string) (app.Transaction, error) {
	op := "query " + outTradeNo
	if outTradeNo == "" {
		return app.Transaction{}, errors.New("query: empty out_trade_no")
	}
	if err := c.ready(ctx); err != nil {
		return app.Transaction{}, fmt.Errorf("%s: %w", op, err)
	}
	tx, _, err := c.api.QueryOrderByOutTradeNo(ctx, jsapi.QueryOrderByOutTradeNoRequest{
		OutTradeNo: core.String(outTradeNo), Mchid: core.String(c.cfg.MchID),
	})
	if err != nil {
		return app.Transaction{}, classify(op, err)
	}
	t, err := toTransaction(tx)
	if err != nil {
		return app.Transaction{}, fmt.Errorf("%s: %w: %w", op, app.ErrChannelUnavailable, err)
	}
	return t, nil
}

// CloseOrder closes an unpaid order. Closing a paid order fails with
// WeChat's code (the simulator answers ORDERPAID); an unknown order wraps
// app.ErrTradeNotFound.
func (c *Channel) CloseOrder(ctx context.Context, outTradeNo string) error {
	op := "close " + outTradeNo
	if outTradeNo == "" {
		return errors.New("close: empty out_trade_no")
	}
	if err := c.ready(ctx); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	_, err := c.api.CloseOrder(ctx, jsapi.CloseOrderRequest{
		OutTradeNo: core.String(outTradeNo), Mchid: core.String(c.cfg.MchID),
	})
	if err != nil {
		return classify(op, err)
	}
	return nil
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func i64(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// toTransaction maps the SDK model; missing fields stay zero.
func toTransaction(tx *payments.Transaction) (app.Transaction, error) {
	if tx == nil {
		return app.Transaction{}, errors.New("empty transaction")
	}
	t := app.Transaction{
		AppID:          str(tx.Appid),
		MchID:          str(tx.Mchid),
		OutTradeNo:     str(tx.OutTradeNo),
		TransactionID:  str(tx.TransactionId),
		TradeType:      str(tx.TradeType),
		TradeState:     str(tx.TradeState),
		TradeStateDesc: str(tx.TradeStateDesc),
		BankType:       str(tx.BankType),
		Attach:         str(tx.Attach),
	}
	if tx.Payer != nil {
		t.PayerOpenID = str(tx.Payer.Openid)
	}
	if tx.Amount != nil {
		t.TotalFen = i64(tx.Amount.Total)
		t.PayerTotalFen = i64(tx.Amount.PayerTotal)
		t.Currency = str(tx.Amount.Currency)
		t.PayerCurrency = str(tx.Amount.PayerCurrency)
	}
	if s := str(tx.SuccessTime); s != "" {
		st, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return app.Transaction{}, fmt.Errorf("success_time %q is not RFC 3339", s)
		}
		t.SuccessTime = st
	}
	return t, nil
}
