package alipay

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	sdk "github.com/smartwalle/alipay/v3"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
)

// OpenAPI methods the channels call.
const (
	methodWapPay      = "alipay.trade.wap.pay"
	methodCreate      = "alipay.trade.create"
	methodQuery       = "alipay.trade.query"
	methodClose       = "alipay.trade.close"
	methodRefund      = "alipay.trade.refund"
	methodRefundQuery = "alipay.trade.fastpay.refund.query"
)

// Alipay's answers payfn acts on.
const (
	codeSuccess       = "10000"
	subTradeNotExist  = "ACQ.TRADE_NOT_EXIST"
	statusWaitBuyer   = "WAIT_BUYER_PAY"
	statusSuccess     = "TRADE_SUCCESS"
	statusFinished    = "TRADE_FINISHED"
	statusClosed      = "TRADE_CLOSED"
	refundSuccess     = "REFUND_SUCCESS"
	tradeStateNotPay  = "NOTPAY"
	maxSubject        = 256 // characters
	maxPassbackParams = 512 // bytes, after URL-encoding
)

// APIError is Alipay's error answer to a call (a code other than 10000).
// It unwraps to app.ErrChannelUnavailable when the answer cannot be relied
// on or says to retry: an unsigned answer (anyone between us and Alipay
// could have written it), code 20000 (service unavailable), 40005 (call
// limit) or a sub_code of isp.* or *SYSTEM_ERROR; to app.ErrTradeNotFound
// for a signed ACQ.TRADE_NOT_EXIST; other signed answers (our request was
// refused) unwrap to nothing.
type APIError struct {
	Method  string // e.g. alipay.trade.close
	Code    string // e.g. 40004
	Msg     string
	SubCode string // e.g. ACQ.TRADE_STATUS_ERROR
	SubMsg  string // shortened
	Signed  bool   // the answer carried Alipay's valid signature
}

func (e *APIError) Error() string {
	signed := ""
	if !e.Signed {
		signed = " (unsigned)"
	}
	return fmt.Sprintf("alipay %s answered %s %s%s: %s", e.Method, e.Code, e.SubCode, signed, e.SubMsg)
}

// Unwrap classifies the answer for errors.Is.
func (e *APIError) Unwrap() error {
	switch {
	case !e.Signed || e.Code == "20000" || e.Code == "40005" ||
		strings.HasPrefix(e.SubCode, "isp.") || strings.HasSuffix(e.SubCode, "SYSTEM_ERROR"):
		return app.ErrChannelUnavailable
	case e.SubCode == subTradeNotExist:
		return app.ErrTradeNotFound
	}
	return nil
}

// SubCode returns the Alipay sub_code carried by err (e.g.
// "ACQ.TRADE_HAS_SUCCESS"), or "" when err is not an Alipay error answer.
func SubCode(err error) string {
	var e *APIError
	if errors.As(err, &e) {
		return e.SubCode
	}
	return ""
}

// reply is the common part of every answer.
type reply struct {
	Code    string `json:"code"`
	Msg     string `json:"msg"`
	SubCode string `json:"sub_code"`
	SubMsg  string `json:"sub_msg"`
}

func (r *reply) common() *reply { return r }

// call sends a request through the SDK, which signs it and verifies the
// signature of the answer, and decodes the answer into out. A transport
// failure, a status other than 200, an answer that fails verification or
// decoding, or an unsigned error answer wraps app.ErrChannelUnavailable; a
// signed error answer is an *APIError.
func (c *Client) call(ctx context.Context, op string, p *sdk.Payload, out interface{ common() *reply }) error {
	err := c.sdk.Request(ctx, p, out)
	var unsigned *sdk.Error
	switch {
	case errors.As(err, &unsigned):
		// The SDK returns an answer without a signature as its error.
		return fmt.Errorf("%s: %w", op, &APIError{Method: p.APIName(), Code: string(unsigned.Code), Msg: unsigned.Msg,
			SubCode: unsigned.SubCode, SubMsg: short(unsigned.SubMsg)})
	case err != nil:
		// The SDK's errors name URLs and key ids, never keys or bodies.
		return fmt.Errorf("%s: %w: %w", op, app.ErrChannelUnavailable, err)
	}
	if r := out.common(); r.Code != codeSuccess {
		return fmt.Errorf("%s: %w", op, &APIError{Method: p.APIName(), Code: r.Code, Msg: r.Msg, SubCode: r.SubCode, SubMsg: short(r.SubMsg), Signed: true})
	}
	return nil
}

func short(s string) string {
	if utf8.RuneCountInString(s) > 200 {
		return string([]rune(s)[:200])
	}
	return s
}

// unavailable reports an answer that verified but cannot be used.
func unavailable(op, format string, args ...any) error {
	return fmt.Errorf("%s: %w: %s", op, app.ErrChannelUnavailable, fmt.Sprintf(format, args...))
}

// orderPayload is what wap.pay and create share: the order, its amount in
// yuan, its deadline in +08:00, passback_params and notify_url. Bad input
// is refused before anything is signed.
func (c *Client) orderPayload(method, productCode string, req app.PrepayRequest) (*sdk.Payload, error) {
	op := "prepay " + req.OutTradeNo
	subject := sanitizeSubject(req.Description)
	passback := url.QueryEscape(req.Attach) // Alipay wants it URL-encoded and returns it as sent
	switch {
	case req.OutTradeNo == "":
		return nil, errors.New("prepay: empty out_trade_no")
	case req.TotalFen < 1 || req.TotalFen > MaxYuanFen:
		return nil, fmt.Errorf("%s: total %d fen is outside 0.01 to 100000000 yuan", op, req.TotalFen)
	case subject == "":
		return nil, fmt.Errorf("%s: empty description", op)
	case len(passback) > maxPassbackParams:
		return nil, fmt.Errorf("%s: attach longer than %d bytes URL-encoded", op, maxPassbackParams)
	case req.ProfitSharing:
		// Alipay splits through its own royalty products, which payfn does
		// not drive: taking the money unfrozen would make the split impossible.
		return nil, fmt.Errorf("%s: profit sharing is not available on Alipay channels", op)
	}
	if err := c.appID(req.AppID); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	p := sdk.NewPayload(method)
	p.AddParam("notify_url", c.cfg.NotifyURL)
	p.AddBizField("out_trade_no", req.OutTradeNo)
	p.AddBizField("total_amount", FormatYuan(req.TotalFen))
	p.AddBizField("subject", subject)
	p.AddBizField("product_code", productCode)
	if !req.TimeExpire.IsZero() {
		p.AddBizField("time_expire", req.TimeExpire.In(cst).Format(timeLayout))
	}
	if req.Attach != "" {
		p.AddBizField("passback_params", passback)
	}
	return p, nil
}

// sanitizeSubject drops invalid UTF-8, control characters and the "/", "="
// and "&" Alipay refuses in a subject, and cuts it to 256 characters.
func sanitizeSubject(s string) string {
	var b strings.Builder
	n := 0
	for _, r := range strings.ToValidUTF8(s, "") {
		if unicode.IsControl(r) || r == '/' || r == '=' || r == '&' {
			continue
		}
		if r == ',' {
			// The trade bill is a CSV whose 商品名称 column may not be
			// quoted: a full-width comma reads the same and cannot split it.
			r = '，'
		}
		if n == maxSubject {
			break
		}
		b.WriteRune(r)
		n++
	}
	return strings.TrimSpace(b.String())
}

// Prepay signs the alipay.trade.wap.pay URL (QUICK_WAP_WAY) the buyer's
// browser opens; Alipay creates the trade when it is opened. Nothing is
// sent: the URL is built and signed here on every call (so Prepaid.Ref is
// empty), with return_url and quit_url from the request and notify_url
// from the configuration.
func (w *WapChannel) Prepay(_ context.Context, req app.PrepayRequest) (app.Prepaid, error) {
	p, err := w.orderPayload(methodWapPay, "QUICK_WAP_WAY", req)
	if err != nil {
		return app.Prepaid{}, err
	}
	p.AddParam("return_url", req.ReturnURL)
	if req.QuitURL != "" {
		p.AddBizField("quit_url", req.QuitURL)
	}
	u, err := w.sdk.BuildURL(p)
	if err != nil {
		return app.Prepaid{}, fmt.Errorf("prepay %s: sign pay_url: %w", req.OutTradeNo, err)
	}
	return app.Prepaid{Payment: app.PaymentParams{PayURL: u.String()}}, nil
}

type createReply struct {
	reply
	TradeNo    string `json:"trade_no"`
	OutTradeNo string `json:"out_trade_no"`
}

// Prepay creates the mini-program trade (alipay.trade.create, JSAPI_PAY,
// buyer_open_id = PayerOpenID, op_app_id = Config.MiniAppID) and returns
// its trade_no for my.tradePay, as Payment.TradeNo and as the Ref a
// repeated pay reuses. The same out_trade_no with identical parameters
// returns the same trade; a paid one fails with sub_code
// ACQ.TRADE_HAS_SUCCESS. Errors wrap app.ErrChannelUnavailable or carry an
// *APIError.
func (m *MiniChannel) Prepay(ctx context.Context, req app.PrepayRequest) (app.Prepaid, error) {
	p, err := m.orderPayload(methodCreate, "JSAPI_PAY", req)
	if err != nil {
		return app.Prepaid{}, err
	}
	op := "prepay " + req.OutTradeNo
	if req.PayerOpenID == "" {
		return app.Prepaid{}, fmt.Errorf("%s: empty buyer_open_id", op)
	}
	p.AddBizField("buyer_open_id", req.PayerOpenID)
	p.AddBizField("op_app_id", m.cfg.MiniAppID)
	var out createReply
	if err := m.call(ctx, op, p, &out); err != nil {
		return app.Prepaid{}, err
	}
	if out.TradeNo == "" || (out.OutTradeNo != "" && out.OutTradeNo != req.OutTradeNo) {
		return app.Prepaid{}, unavailable(op, "reply names trade_no %q out_trade_no %q", out.TradeNo, out.OutTradeNo)
	}
	return app.Prepaid{Ref: out.TradeNo, Payment: app.PaymentParams{TradeNo: out.TradeNo}}, nil
}

// PaymentParams returns the my.tradePay parameters of a trade created
// before: its trade_no. Nothing is signed or sent. An appid other than
// AppID wraps ErrUnboundAppID.
func (m *MiniChannel) PaymentParams(appID, tradeNo string) (app.PaymentParams, error) {
	if tradeNo == "" {
		return app.PaymentParams{}, errors.New("payment params: empty trade_no")
	}
	if err := m.appID(appID); err != nil {
		return app.PaymentParams{}, fmt.Errorf("payment params: %w", err)
	}
	return app.PaymentParams{TradeNo: tradeNo}, nil
}

type queryReply struct {
	reply
	TradeNo        string `json:"trade_no"`
	OutTradeNo     string `json:"out_trade_no"`
	TradeStatus    string `json:"trade_status"`
	TotalAmount    string `json:"total_amount"`
	BuyerPayAmount string `json:"buyer_pay_amount"`
	TransCurrency  string `json:"trans_currency"`
	SendPayDate    string `json:"send_pay_date"`
	BuyerOpenID    string `json:"buyer_open_id"`
	BuyerUserID    string `json:"buyer_user_id"`
}

// QueryOrder asks Alipay for the trade by out_trade_no
// (alipay.trade.query). An unknown trade (for a wap order: one whose page
// was never opened) wraps app.ErrTradeNotFound.
//
// Alipay's reply names neither app_id nor seller_id: the transaction
// carries this client's, which is sound only because the reply is the
// signature-verified answer to a request this application signed.
func (c *Client) QueryOrder(ctx context.Context, outTradeNo string) (app.Transaction, error) {
	op := "query " + outTradeNo
	if outTradeNo == "" {
		return app.Transaction{}, errors.New("query: empty out_trade_no")
	}
	p := sdk.NewPayload(methodQuery)
	p.AddBizField("out_trade_no", outTradeNo)
	var out queryReply
	if err := c.call(ctx, op, p, &out); err != nil {
		return app.Transaction{}, err
	}
	if out.OutTradeNo != outTradeNo || out.TradeNo == "" {
		return app.Transaction{}, unavailable(op, "reply names out_trade_no %q trade_no %q", out.OutTradeNo, out.TradeNo)
	}
	t := app.Transaction{
		AppID: c.cfg.AppID, MchID: c.cfg.SellerID, // see above
		OutTradeNo: out.OutTradeNo, TransactionID: out.TradeNo,
		TradeStateDesc: out.TradeStatus, PayerOpenID: firstOf(out.BuyerOpenID, out.BuyerUserID),
		Currency: firstOf(out.TransCurrency, order.Currency),
	}
	var err error
	if t.TotalFen, err = ParseYuan(out.TotalAmount); err != nil {
		return app.Transaction{}, unavailable(op, "total_amount %q: %v", out.TotalAmount, err)
	}
	if out.BuyerPayAmount != "" {
		if t.PayerTotalFen, err = ParseYuan(out.BuyerPayAmount); err != nil {
			return app.Transaction{}, unavailable(op, "buyer_pay_amount %q: %v", out.BuyerPayAmount, err)
		}
	}
	if t.SuccessTime, err = parseTime(out.SendPayDate); err != nil {
		return app.Transaction{}, unavailable(op, "send_pay_date %q is not yyyy-MM-dd HH:mm:ss", out.SendPayDate)
	}
	t.TradeState = tradeState(out.TradeStatus, !t.SuccessTime.IsZero())
	return t, nil
}

// tradeState maps Alipay's trade_status to payfn's: TRADE_SUCCESS and
// TRADE_FINISHED are SUCCESS, WAIT_BUYER_PAY is NOTPAY, TRADE_CLOSED is
// CLOSED, unless the trade was paid (a payment time is known): Alipay
// closes a trade refunded in full, which payfn calls REFUND (paid, then
// refunded), never "not paid". Anything else passes through unchanged and
// never means paid.
func tradeState(status string, paid bool) string {
	switch status {
	case statusSuccess, statusFinished:
		return app.TradeStateSuccess
	case statusWaitBuyer:
		return tradeStateNotPay
	case statusClosed:
		if paid {
			return app.TradeStateRefund
		}
		return app.TradeStateClosed
	}
	return status
}

// parseTime reads Alipay's "yyyy-MM-dd HH:mm:ss" in +08:00; "" is zero.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.ParseInLocation(timeLayout, s, cst)
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// CloseOrder closes an unpaid trade (alipay.trade.close). A trade Alipay
// does not know (a wap order whose page was never opened) wraps
// app.ErrTradeNotFound; a paid one fails with sub_code
// ACQ.TRADE_STATUS_ERROR.
func (c *Client) CloseOrder(ctx context.Context, outTradeNo string) error {
	if outTradeNo == "" {
		return errors.New("close: empty out_trade_no")
	}
	p := sdk.NewPayload(methodClose)
	p.AddBizField("out_trade_no", outTradeNo)
	var out reply
	return c.call(ctx, "close "+outTradeNo, p, &out)
}

type refundReply struct {
	reply
	TradeNo      string `json:"trade_no"`
	OutTradeNo   string `json:"out_trade_no"`
	FundChange   string `json:"fund_change"`
	GmtRefundPay string `json:"gmt_refund_pay"`
}

// Refund refunds part or all of a paid trade (alipay.trade.refund), with
// out_request_no = OutRefundNo: the same number refunds once however often
// it is sent. fund_change "Y" (money moved on this call) is SUCCESS;
// anything else is PROCESSING, and payfn follows it with QueryRefund (a
// resend of a refund that succeeded before also answers "N"). Errors wrap
// app.ErrChannelUnavailable or carry an *APIError (e.g.
// ACQ.SELLER_BALANCE_NOT_ENOUGH, ACQ.TRADE_HAS_CLOSE).
func (c *Client) Refund(ctx context.Context, req app.RefundRequest) (app.RefundResult, error) {
	op := "refund " + req.OutRefundNo
	if req.OutTradeNo == "" || req.OutRefundNo == "" || req.RefundFen < 1 || req.TotalFen < req.RefundFen {
		return app.RefundResult{}, fmt.Errorf("%s: out_trade_no, out_refund_no and 0 < refund <= total are required", op)
	}
	p := sdk.NewPayload(methodRefund)
	p.AddBizField("out_trade_no", req.OutTradeNo)
	p.AddBizField("out_request_no", req.OutRefundNo)
	p.AddBizField("refund_amount", FormatYuan(req.RefundFen))
	if r := sanitizeSubject(req.Reason); r != "" {
		p.AddBizField("refund_reason", r)
	}
	var out refundReply
	if err := c.call(ctx, op, p, &out); err != nil {
		return app.RefundResult{}, err
	}
	if out.OutTradeNo != "" && out.OutTradeNo != req.OutTradeNo {
		return app.RefundResult{}, unavailable(op, "reply names out_trade_no %q", out.OutTradeNo)
	}
	res := app.RefundResult{
		OutTradeNo: req.OutTradeNo, OutRefundNo: req.OutRefundNo, Status: app.RefundStateProcessing,
		RefundFen: req.RefundFen, TotalFen: req.TotalFen,
	}
	if out.FundChange == "Y" {
		res.Status = app.RefundStateSuccess
		res.SuccessTime, _ = parseTime(out.GmtRefundPay) // informative; zero when unreadable
	}
	return res, nil
}

type refundQueryReply struct {
	reply
	TradeNo      string `json:"trade_no"`
	OutTradeNo   string `json:"out_trade_no"`
	OutRequestNo string `json:"out_request_no"`
	TotalAmount  string `json:"total_amount"`
	RefundAmount string `json:"refund_amount"`
	RefundStatus string `json:"refund_status"`
	GmtRefundPay string `json:"gmt_refund_pay"`
}

// QueryRefund asks Alipay about the trade's refund numbered outRefundNo
// (alipay.trade.fastpay.refund.query). REFUND_SUCCESS is SUCCESS; a refund
// Alipay lists without a status is PROCESSING; one it does not list at all
// (never received, or refused) and an unknown trade wrap
// app.ErrTradeNotFound.
func (c *Client) QueryRefund(ctx context.Context, outTradeNo, outRefundNo string) (app.RefundResult, error) {
	op := "query refund " + outRefundNo
	if outTradeNo == "" || outRefundNo == "" {
		return app.RefundResult{}, errors.New("query refund: out_trade_no and out_refund_no are required")
	}
	p := sdk.NewPayload(methodRefundQuery)
	p.AddBizField("out_trade_no", outTradeNo)
	p.AddBizField("out_request_no", outRefundNo)
	p.AddBizField("query_options", []string{"gmt_refund_pay"})
	var out refundQueryReply
	if err := c.call(ctx, op, p, &out); err != nil {
		return app.RefundResult{}, err
	}
	if out.OutRequestNo == "" {
		return app.RefundResult{}, fmt.Errorf("%s: Alipay lists no such refund of %s: %w", op, outTradeNo, app.ErrTradeNotFound)
	}
	if out.OutRequestNo != outRefundNo || (out.OutTradeNo != "" && out.OutTradeNo != outTradeNo) {
		return app.RefundResult{}, unavailable(op, "reply names out_trade_no %q out_request_no %q", out.OutTradeNo, out.OutRequestNo)
	}
	res := app.RefundResult{OutTradeNo: outTradeNo, OutRefundNo: outRefundNo, Status: app.RefundStateProcessing}
	var err error
	if res.RefundFen, err = ParseYuan(out.RefundAmount); err != nil {
		return app.RefundResult{}, unavailable(op, "refund_amount %q: %v", out.RefundAmount, err)
	}
	if out.TotalAmount != "" {
		if res.TotalFen, err = ParseYuan(out.TotalAmount); err != nil {
			return app.RefundResult{}, unavailable(op, "total_amount %q: %v", out.TotalAmount, err)
		}
	}
	if out.RefundStatus == refundSuccess {
		res.Status = app.RefundStateSuccess
		res.SuccessTime, _ = parseTime(out.GmtRefundPay) // informative; zero when unreadable
	}
	return res, nil
}
