package paysim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"time"
	"unicode/utf8"
)

// cst is China Standard Time; WeChat stamps times in +08:00. A fixed zone
// avoids depending on tzdata.
var cst = time.FixedZone("CST", 8*3600)

// Trade states as WeChat Pay reports them.
const (
	StateNotPay  = "NOTPAY"
	StateSuccess = "SUCCESS"
	StateClosed  = "CLOSED"
	StateRefund  = "REFUND" // paid, then (part) refunded
)

// Error codes the simulator answers where WeChat's APIv3 documentation names
// none (see the package comment).
const (
	CodeOrderPaid     = "ORDERPAID"
	CodeOrderClosed   = "ORDER_CLOSED"
	CodeOrderNotExist = "ORDER_NOT_EXIST"
	CodeOutTradeNoUse = "OUT_TRADE_NO_USED"
)

const (
	prepayLifetime  = 2 * time.Hour      // a prepay_id is valid for 2 hours
	defaultDeadline = 7 * 24 * time.Hour // unpaid orders without time_expire
	maxTimeExpire   = 90 * 24 * time.Hour
)

// Errors from Pay, tested with errors.Is.
var (
	ErrUnknownPrepay = errors.New("paysim: unknown prepay_id")
	ErrPrepayExpired = errors.New("paysim: prepay_id expired")
	ErrOrderExpired  = errors.New("paysim: order time_expire has passed")
	ErrOrderClosed   = errors.New("paysim: order is closed")
	ErrOrderPaid     = errors.New("paysim: order is already paid")
)

// Transaction is the APIv3 transaction object as query replies and decrypted
// notifications carry it. Empty fields are left out, as WeChat leaves them
// out for unpaid orders.
type Transaction struct {
	AppID          string  `json:"appid,omitempty"`
	MchID          string  `json:"mchid,omitempty"`
	OutTradeNo     string  `json:"out_trade_no,omitempty"`
	TransactionID  string  `json:"transaction_id,omitempty"`
	TradeType      string  `json:"trade_type,omitempty"`
	TradeState     string  `json:"trade_state,omitempty"`
	TradeStateDesc string  `json:"trade_state_desc,omitempty"`
	BankType       string  `json:"bank_type,omitempty"`
	Attach         string  `json:"attach,omitempty"`
	SuccessTime    string  `json:"success_time,omitempty"` // RFC 3339, +08:00
	Payer          *Payer  `json:"payer,omitempty"`
	Amount         *Amount `json:"amount,omitempty"`
}

// Payer identifies who paid.
type Payer struct {
	OpenID string `json:"openid,omitempty"`
}

// Amount is in fen.
type Amount struct {
	Total         int64  `json:"total"`
	PayerTotal    int64  `json:"payer_total,omitempty"`
	Currency      string `json:"currency,omitempty"`
	PayerCurrency string `json:"payer_currency,omitempty"`
}

// TradeState is the simulator's record of one out_trade_no: the transaction
// a query would return plus what the merchant sent at prepay.
type TradeState struct {
	Transaction
	Description string    `json:"description"`
	NotifyURL   string    `json:"notify_url"`
	PrepayIDs   []string  `json:"prepay_ids"`
	CreatedAt   time.Time `json:"created_at"`
	Deadline    time.Time `json:"deadline"` // time_expire, or creation + 7 days
}

// PayOptions shape a simulated payment.
type PayOptions struct {
	// PaidTotalFen, when non-zero, is a genuine payment of a different
	// amount: amount.total and payer_total carry it instead of the order's.
	PaidTotalFen int64 `json:"paid_total_fen,omitempty"`
	// NoNotify pays without delivering any notification (a lost one).
	NoNotify bool `json:"no_notify,omitempty"`
	// Duplicates delivers this many extra copies of the first notification
	// concurrently with it.
	Duplicates int `json:"duplicates,omitempty"`
}

// PaidTrade is the outcome of Pay.
type PaidTrade struct {
	OutTradeNo     string    `json:"out_trade_no"`
	TransactionID  string    `json:"transaction_id"`
	SuccessTime    time.Time `json:"success_time"`
	TotalFen       int64     `json:"total_fen"`
	PayerTotalFen  int64     `json:"payer_total_fen"`
	OpenID         string    `json:"openid"`
	NotificationID string    `json:"notification_id,omitempty"` // empty with NoNotify
}

// prepayParams are the prepay fields that must match for "原参重入" (the same
// out_trade_no with identical parameters gets a fresh prepay_id).
type prepayParams struct {
	TradeType                                                                  string // "" for JSAPI; MWEB for H5 (h5.go)
	AppID, MchID, Description, OutTradeNo, Attach, NotifyURL, OpenID, Currency string
	Total                                                                      int64
	TimeExpireUnix                                                             int64 // 0: none given
	ProfitSharing                                                              bool  // settle_info.profit_sharing (sharing.go)
}

type trade struct {
	p           prepayParams
	createdAt   time.Time
	deadline    time.Time
	state       string
	txID        string
	successTime time.Time
	paidTotal   int64
	prepayIDs   []string
	refunded    bool // a refund succeeded: queries say REFUND
}

type prepay struct {
	id         string
	outTradeNo string
	expiresAt  time.Time
}

var outTradeNoRE = regexp.MustCompile(`^[0-9A-Za-z_\-|*]{6,32}$`)

type prepayBody struct {
	AppID       *string `json:"appid"`
	MchID       *string `json:"mchid"`
	Description *string `json:"description"`
	OutTradeNo  *string `json:"out_trade_no"`
	TimeExpire  *string `json:"time_expire"`
	Attach      *string `json:"attach"`
	NotifyURL   *string `json:"notify_url"`
	Amount      *struct {
		Total    *int64  `json:"total"`
		Currency *string `json:"currency"`
	} `json:"amount"`
	Payer *struct {
		OpenID *string `json:"openid"`
	} `json:"payer"`
}

func has4ByteRune(s string) bool {
	for _, r := range s {
		if r > 0xFFFF {
			return true
		}
	}
	return false
}

// validNotifyURL applies WeChat's rule (HTTPS, no query string), relaxed to
// allow plain HTTP on loopback and private (LAN) addresses because tests and
// the dev stack run there (`-addr 192.168.1.5:8080` to reach it from a phone).
func validNotifyURL(raw string) string {
	if len(raw) > 255 {
		return "longer than 255 characters"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "not an absolute URL"
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "must not carry a query string"
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		host := u.Hostname()
		if host == "localhost" {
			return ""
		}
		if ip := net.ParseIP(host); ip != nil && (ip.IsLoopback() || ip.IsPrivate()) {
			return ""
		}
		return "must be https"
	}
	return "must be https"
}

func (s *Server) handlePrepay(_ *http.Request, body []byte) reply {
	return s.prepay(body, "", prepayLifetime)
}

// prepay checks a prepay body of tradeType ("" for JSAPI, which requires a
// payer; MWEB for H5, h5.go) and answers {"prepay_id"} with one valid for
// lifetime, or the error reply.
func (s *Server) prepay(body []byte, tradeType string, lifetime time.Duration) reply {
	var b prepayBody
	if err := json.Unmarshal(body, &b); err != nil {
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "body is not valid JSON")
	}
	switch {
	case b.AppID == nil || *b.AppID == "":
		return paramError("/appid", "required")
	case b.MchID == nil || *b.MchID == "":
		return paramError("/mchid", "required")
	case *b.MchID != s.mchID:
		return paramError("/mchid", "does not match the mchid of the request signature")
	case !s.bound(*b.AppID):
		return errReply(http.StatusBadRequest, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
	case b.Description == nil || *b.Description == "":
		return paramError("/description", "required")
	case !utf8.ValidString(*b.Description) || has4ByteRune(*b.Description):
		return paramError("/description", "only 1-3 byte UTF-8 characters are accepted")
	case utf8.RuneCountInString(*b.Description) > 127:
		return paramError("/description", "longer than 127 characters")
	case b.OutTradeNo == nil || !outTradeNoRE.MatchString(*b.OutTradeNo):
		return paramError("/out_trade_no", "must be 6-32 characters of [0-9A-Za-z_-|*]")
	case b.Amount == nil || b.Amount.Total == nil:
		return paramError("/amount/total", "required")
	case *b.Amount.Total < 1:
		return paramError("/amount/total", "must be at least 1")
	case b.Amount.Currency != nil && *b.Amount.Currency != "CNY":
		return paramError("/amount/currency", "must be CNY")
	case tradeType == "" && (b.Payer == nil || b.Payer.OpenID == nil || *b.Payer.OpenID == ""):
		return paramError("/payer/openid", "required")
	case b.NotifyURL == nil || *b.NotifyURL == "":
		return paramError("/notify_url", "required")
	case b.Attach != nil && (utf8.RuneCountInString(*b.Attach) > 128 || has4ByteRune(*b.Attach)):
		return paramError("/attach", "longer than 128 characters or has 4-byte characters")
	}
	if reason := validNotifyURL(*b.NotifyURL); reason != "" {
		return paramError("/notify_url", reason)
	}
	now := s.now()
	p := prepayParams{
		AppID: *b.AppID, MchID: *b.MchID, Description: *b.Description, OutTradeNo: *b.OutTradeNo,
		NotifyURL: *b.NotifyURL, Currency: "CNY", Total: *b.Amount.Total, TradeType: tradeType,
	}
	if b.Payer != nil && b.Payer.OpenID != nil {
		p.OpenID = *b.Payer.OpenID
	}
	p.ProfitSharing = prepayProfitSharing(body) // sharing.go
	if b.Attach != nil {
		p.Attach = *b.Attach
	}
	deadline := now.Add(defaultDeadline)
	if b.TimeExpire != nil {
		te, err := time.Parse(time.RFC3339, *b.TimeExpire)
		if err != nil {
			return paramError("/time_expire", "must be an RFC3339 date-time")
		}
		if te.After(now.Add(maxTimeExpire)) {
			return paramError("/time_expire", "more than 90 days ahead")
		}
		p.TimeExpireUnix = te.Unix()
		deadline = te
		if min := now.Add(time.Minute); deadline.Before(min) {
			deadline = min // WeChat raises a deadline under a minute away
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.trades[p.OutTradeNo]
	if ok {
		switch {
		case t.p != p:
			return errReply(http.StatusForbidden, CodeOutTradeNoUse, "商户订单号重复")
		case t.state == StateSuccess:
			return errReply(http.StatusBadRequest, CodeOrderPaid, "该订单已支付")
		case t.state == StateClosed:
			return errReply(http.StatusBadRequest, CodeOrderClosed, "订单已关闭")
		}
	} else {
		t = &trade{p: p, createdAt: now, deadline: deadline, state: StateNotPay}
		s.trades[p.OutTradeNo] = t
	}
	id := "wx" + now.In(cst).Format("20060102150405") + randHex(10)
	t.prepayIDs = append(t.prepayIDs, id)
	s.prepays[id] = &prepay{id: id, outTradeNo: p.OutTradeNo, expiresAt: now.Add(lifetime)}
	s.changedLocked()
	s.log.Info("paysim prepay", "out_trade_no", p.OutTradeNo, "total_fen", p.Total, "reentry", ok)
	return reply{status: http.StatusOK, body: map[string]string{"prepay_id": id}}
}

// transactionLocked renders t as WeChat would answer a query.
func (s *Server) transactionLocked(t *trade) Transaction {
	tx := Transaction{
		AppID:      t.p.AppID,
		MchID:      t.p.MchID,
		OutTradeNo: t.p.OutTradeNo,
		TradeState: t.state,
		Amount:     &Amount{Total: t.p.Total, Currency: t.p.Currency, PayerCurrency: t.p.Currency},
	}
	switch t.state {
	case StateNotPay:
		tx.TradeStateDesc = "订单未支付"
	case StateClosed:
		tx.TradeStateDesc = "订单已关闭"
	case StateSuccess:
		tx.TradeStateDesc = "支付成功"
		tx.TransactionID = t.txID
		tx.TradeType = t.tradeType()
		tx.BankType = "OTHERS"
		tx.Attach = t.p.Attach
		tx.SuccessTime = t.successTime.In(cst).Format(time.RFC3339)
		if t.p.OpenID != "" { // H5 trades are prepaid without a payer
			tx.Payer = &Payer{OpenID: t.p.OpenID}
		}
		tx.Amount.Total = t.paidTotal
		tx.Amount.PayerTotal = t.paidTotal
		if t.refunded {
			tx.TradeState, tx.TradeStateDesc = StateRefund, "转入退款"
		}
	}
	return tx
}

func (s *Server) checkMchIDQuery(r *http.Request) (reply, bool) {
	switch m := r.URL.Query().Get("mchid"); {
	case m == "":
		return paramError("mchid", "required query parameter"), false
	case m != s.mchID:
		return paramError("mchid", "does not match the mchid of the request signature"), false
	}
	return reply{}, true
}

func (s *Server) handleQueryByOutTradeNo(r *http.Request, _ []byte) reply {
	if rep, ok := s.checkMchIDQuery(r); !ok {
		return rep
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.trades[r.PathValue("no")]
	if !ok {
		return errReply(http.StatusNotFound, CodeOrderNotExist, "订单不存在")
	}
	return reply{status: http.StatusOK, body: s.transactionLocked(t)}
}

func (s *Server) handleQueryByID(r *http.Request, _ []byte) reply {
	if rep, ok := s.checkMchIDQuery(r); !ok {
		return rep
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.trades[s.byTxID[r.PathValue("id")]]
	if !ok {
		return errReply(http.StatusNotFound, CodeOrderNotExist, "订单不存在")
	}
	return reply{status: http.StatusOK, body: s.transactionLocked(t)}
}

func (s *Server) handleClose(r *http.Request, body []byte) reply {
	var b struct {
		MchID string `json:"mchid"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "body is not valid JSON")
	}
	if b.MchID != s.mchID {
		return paramError("/mchid", "missing or does not match the mchid of the request signature")
	}
	no := r.PathValue("no")
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.trades[no]
	switch {
	case !ok:
		return errReply(http.StatusNotFound, CodeOrderNotExist, "订单不存在")
	case t.state == StateSuccess:
		return errReply(http.StatusBadRequest, CodeOrderPaid, "订单已支付，不能关单")
	}
	t.state = StateClosed
	s.changedLocked()
	s.log.Info("paysim close", "out_trade_no", no)
	return reply{status: http.StatusNoContent}
}

// Trade returns the simulator's record of outTradeNo.
func (s *Server) Trade(outTradeNo string) (TradeState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.trades[outTradeNo]
	if !ok {
		return TradeState{}, false
	}
	return s.tradeStateLocked(t), true
}

// TradeByPrepay returns the record of the order prepayID belongs to (the
// checkout page shows it before "paying").
func (s *Server) TradeByPrepay(prepayID string) (TradeState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.prepays[prepayID]
	if !ok {
		return TradeState{}, false
	}
	return s.tradeStateLocked(s.trades[p.outTradeNo]), true
}

func (s *Server) tradeStateLocked(t *trade) TradeState {
	return TradeState{
		Transaction: s.transactionLocked(t),
		Description: t.p.Description,
		NotifyURL:   t.p.NotifyURL,
		PrepayIDs:   append([]string(nil), t.prepayIDs...),
		CreatedAt:   t.createdAt,
		Deadline:    t.deadline,
	}
}

// Pay simulates the user paying prepayID: the order becomes SUCCESS with a
// new transaction id, and (unless opts.NoNotify) a TRANSACTION.SUCCESS
// notification is delivered asynchronously to the order's notify_url, with
// retries per the RetrySchedule until a 2xx answer. It fails with
// ErrUnknownPrepay, ErrPrepayExpired, ErrOrderExpired, ErrOrderClosed or
// ErrOrderPaid.
func (s *Server) Pay(ctx context.Context, prepayID string, opts PayOptions) (PaidTrade, error) {
	if err := ctx.Err(); err != nil {
		return PaidTrade{}, fmt.Errorf("pay %s: %w", prepayID, err)
	}
	if opts.PaidTotalFen < 0 || opts.Duplicates < 0 {
		return PaidTrade{}, fmt.Errorf("pay %s: negative PaidTotalFen or Duplicates", prepayID)
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.prepays[prepayID]
	if !ok {
		return PaidTrade{}, fmt.Errorf("pay %s: %w", prepayID, ErrUnknownPrepay)
	}
	t := s.trades[p.outTradeNo]
	switch {
	case t.state == StateSuccess:
		return PaidTrade{}, fmt.Errorf("pay %s (%s): %w", prepayID, p.outTradeNo, ErrOrderPaid)
	case t.state == StateClosed:
		return PaidTrade{}, fmt.Errorf("pay %s (%s): %w", prepayID, p.outTradeNo, ErrOrderClosed)
	case now.After(t.deadline):
		return PaidTrade{}, fmt.Errorf("pay %s (%s): %w", prepayID, p.outTradeNo, ErrOrderExpired)
	case now.After(p.expiresAt):
		return PaidTrade{}, fmt.Errorf("pay %s (%s): %w", prepayID, p.outTradeNo, ErrPrepayExpired)
	}
	t.state = StateSuccess
	// 28 digits like WeChat's: a prefix, the date, then random digits.
	t.txID = "4200" + now.In(cst).Format("20060102") + randDigits(16)
	t.successTime = now.Truncate(time.Second)
	t.paidTotal = t.p.Total
	if opts.PaidTotalFen != 0 {
		t.paidTotal = opts.PaidTotalFen
	}
	s.byTxID[t.txID] = t.p.OutTradeNo
	s.changedLocked()
	paid := PaidTrade{
		OutTradeNo:    t.p.OutTradeNo,
		TransactionID: t.txID,
		SuccessTime:   t.successTime.In(cst),
		TotalFen:      t.paidTotal,
		PayerTotalFen: t.paidTotal,
		OpenID:        t.p.OpenID,
	}
	s.log.Info("paysim paid", "out_trade_no", paid.OutTradeNo, "transaction_id", paid.TransactionID,
		"paid_total_fen", paid.TotalFen, "notify", !opts.NoNotify)
	if opts.NoNotify {
		return paid, nil
	}
	body, err := buildEnvelope(s.transactionLocked(t), "transaction", s.envelopeDefaults(NotifyOptions{}))
	if err != nil {
		return paid, fmt.Errorf("pay %s: notification: %w", prepayID, err)
	}
	paid.NotificationID = body.id
	s.startDeliveryLocked(t.p.OutTradeNo, t.p.NotifyURL, body.bytes, opts.Duplicates)
	return paid, nil
}
