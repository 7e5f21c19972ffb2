package alipaysim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"time"
)

// Trade statuses as Alipay reports them.
const (
	StatusWaitBuyerPay = "WAIT_BUYER_PAY"
	StatusSuccess      = "TRADE_SUCCESS"  // paid, refundable
	StatusClosed       = "TRADE_CLOSED"   // unpaid and closed or timed out, or fully refunded
	StatusFinished     = "TRADE_FINISHED" // paid, no longer refundable
)

// Product codes the simulator serves.
const (
	ProductWap   = "QUICK_WAP_WAY" // alipay.trade.wap.pay
	ProductJSAPI = "JSAPI_PAY"     // alipay.trade.create (mini-program)
)

const (
	defaultTimeout = 15 * 24 * time.Hour // an unpaid trade without time_expire / timeout_express
	maxTimeout     = 15 * 24 * time.Hour
)

// Errors from the control methods, tested with errors.Is.
var (
	ErrTradeNotExist = errors.New("alipaysim: trade does not exist")
	ErrTradePaid     = errors.New("alipaysim: trade is already paid")
	ErrTradeClosed   = errors.New("alipaysim: trade is closed")
	ErrTradeState    = errors.New("alipaysim: trade is not in a state that allows this")
	ErrRefundUnknown = errors.New("alipaysim: refund does not exist")
	ErrNotifyUnknown = errors.New("alipaysim: notification does not exist")
)

// TradeState is the simulator's record of one trade, as the control API
// shows it and the state file keeps it. Amounts are in fen.
type TradeState struct {
	OutTradeNo     string `json:"out_trade_no"`
	TradeNo        string `json:"trade_no"`
	ProductCode    string `json:"product_code"`
	Subject        string `json:"subject"`
	Body           string `json:"body,omitempty"`
	OrderedFen     int64  `json:"ordered_fen"` // total_amount the merchant asked for
	TotalFen       int64  `json:"total_fen"`   // total_amount Alipay reports (differs after PayOptions.AmountFen)
	RefundedFen    int64  `json:"refunded_fen"`
	NotifyURL      string `json:"notify_url,omitempty"`
	ReturnURL      string `json:"return_url,omitempty"`
	QuitURL        string `json:"quit_url,omitempty"`
	PassbackParams string `json:"passback_params,omitempty"`
	OpAppID        string `json:"op_app_id,omitempty"`
	BuyerID        string `json:"buyer_id,omitempty"`
	BuyerOpenID    string `json:"buyer_open_id,omitempty"`
	BuyerLogonID   string `json:"buyer_logon_id,omitempty"`
	Status         string `json:"trade_status"`

	CreatedAt  time.Time `json:"created_at"`
	Deadline   time.Time `json:"deadline"`
	PaidAt     time.Time `json:"paid_at,omitzero"`
	ClosedAt   time.Time `json:"closed_at,omitzero"`
	RefundedAt time.Time `json:"refunded_at,omitzero"`
}

// PayOptions shape a simulated payment (the buyer's my.tradePay, or the
// cashier page's Pay button).
type PayOptions struct {
	// AmountFen, when positive, is a genuine payment of another amount:
	// total_amount, buyer_pay_amount and receipt_amount in notifications and
	// queries carry it instead of the amount the merchant asked for.
	AmountFen int64 `json:"amount_fen,omitempty"`
	// Finish pays straight into TRADE_FINISHED (a product without refunds).
	Finish bool `json:"finish,omitempty"`
	// NoNotify pays without any notification (a lost one).
	NoNotify bool `json:"no_notify,omitempty"`
	// BuyerID / BuyerOpenID name the payer; by default a JSAPI trade keeps
	// the buyer it was created for and a wap trade gets a random buyer_id.
	BuyerID     string `json:"buyer_id,omitempty"`
	BuyerOpenID string `json:"buyer_open_id,omitempty"`
}

var outTradeNoPattern = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

func newTradeNo(now time.Time) string {
	return now.In(cst).Format("20060102") + "2200" + randDigits(16)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(cst).Format(timeLayout)
}

// findLocked looks a trade up by trade_no (which wins when both are given,
// as at Alipay) or out_trade_no, closing it first if it has timed out.
func (s *Server) findLocked(outTradeNo, tradeNo string) *TradeState {
	if tradeNo != "" {
		outTradeNo = s.byTradeNo[tradeNo]
	}
	t := s.trades[outTradeNo]
	if t != nil {
		s.expireLocked(t)
	}
	return t
}

// findAnyLocked finds a trade by either number.
func (s *Server) findAnyLocked(no string) *TradeState {
	if t := s.findLocked("", no); t != nil {
		return t
	}
	return s.findLocked(no, "")
}

// expireLocked closes an unpaid trade whose deadline has passed. Alipay
// sends no notification for it.
func (s *Server) expireLocked(t *TradeState) {
	if t.Status == StatusWaitBuyerPay && !s.now().Before(t.Deadline) {
		t.Status, t.ClosedAt = StatusClosed, t.Deadline
		s.changedLocked()
	}
}

// orderParams are the biz_content fields of wap.pay and create.
type orderParams struct {
	OutTradeNo     string    `json:"out_trade_no"`
	TotalAmount    yuanField `json:"total_amount"`
	Subject        string    `json:"subject"`
	Body           string    `json:"body"`
	ProductCode    string    `json:"product_code"`
	TimeExpire     string    `json:"time_expire"`
	TimeoutExpress string    `json:"timeout_express"`
	PassbackParams string    `json:"passback_params"`
	QuitURL        string    `json:"quit_url"`
	BuyerID        string    `json:"buyer_id"`
	BuyerOpenID    string    `json:"buyer_open_id"`
	OpAppID        string    `json:"op_app_id"`
}

var timeoutPattern = regexp.MustCompile(`^([1-9][0-9]*)([mhd])$`)

// deadline reads time_expire ("yyyy-MM-dd HH:mm:ss", or "yyyy-MM-dd HH:mm"
// as smartwalle documents for wap) or timeout_express ("90m", "2h", "1d",
// "1c" for the end of today).
func (o orderParams) deadline(now time.Time) (time.Time, *apiResult) {
	bad := func(msg string) (time.Time, *apiResult) {
		r := invalidParam(msg)
		return time.Time{}, &r
	}
	if o.TimeExpire != "" {
		t, err := time.ParseInLocation(timeLayout, o.TimeExpire, cst)
		if err != nil {
			t, err = time.ParseInLocation("2006-01-02 15:04", o.TimeExpire, cst)
		}
		if err != nil {
			return bad("time_expire 格式错误 (" + o.TimeExpire + ")")
		}
		if !t.After(now) || t.Sub(now) > maxTimeout {
			return bad("time_expire 超出范围")
		}
		return t, nil
	}
	switch te := o.TimeoutExpress; {
	case te == "":
		return now.Add(defaultTimeout), nil
	case te == "1c":
		y, m, d := now.In(cst).Date()
		return time.Date(y, m, d+1, 0, 0, 0, 0, cst), nil
	default:
		m := timeoutPattern.FindStringSubmatch(te)
		if m == nil {
			return bad("timeout_express 格式错误 (" + te + ")")
		}
		n, _ := strconv.Atoi(m[1])
		unit := map[string]time.Duration{"m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[m[2]]
		d := time.Duration(n) * unit
		if d > maxTimeout || n > 100000 {
			return bad("timeout_express 超出范围")
		}
		return now.Add(d), nil
	}
}

// openTrade creates the trade for a wap.pay or create call, or returns the
// existing one when the same out_trade_no comes again with the same amount
// and subject while unpaid.
func (s *Server) openTrade(p url.Values, o orderParams, product string) (*TradeState, *apiResult) {
	if !outTradeNoPattern.MatchString(o.OutTradeNo) {
		r := invalidParam("out_trade_no 不能为空, 至多 64 位字母、数字、下划线")
		return nil, &r
	}
	if o.Subject == "" || len([]rune(o.Subject)) > 256 {
		r := invalidParam("subject 不能为空, 至多 256 个字符")
		return nil, &r
	}
	fen, bad := o.TotalAmount.fen("total_amount", true)
	if bad != nil {
		return nil, bad
	}
	if o.ProductCode != "" && o.ProductCode != product {
		r := invalidParam("product_code 应为 " + product)
		return nil, &r
	}
	if product == ProductJSAPI && o.BuyerID == "" && o.BuyerOpenID == "" {
		r := invalidParam("buyer_id 与 buyer_open_id 不能同时为空")
		return nil, &r
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	deadline, bad := o.deadline(now)
	if bad != nil {
		return nil, bad
	}
	if t := s.findLocked(o.OutTradeNo, ""); t != nil {
		switch {
		case t.Status == StatusSuccess:
			r := bizError(SubTradeHasSuccess, "交易已被支付")
			return nil, &r
		case t.Status == StatusFinished:
			r := bizError(SubTradeHasFinished, "交易已经完结")
			return nil, &r
		case t.Status == StatusClosed:
			r := bizError(SubTradeHasClose, "交易已经关闭")
			return nil, &r
		case t.ProductCode != product || t.OrderedFen != fen || t.Subject != o.Subject:
			r := bizError(SubContextInconsistent, "交易信息被篡改")
			return nil, &r
		}
		// The buyer opens the page again: the latest return / quit URLs win.
		if product == ProductWap {
			t.ReturnURL, t.QuitURL = p.Get("return_url"), o.QuitURL
			s.changedLocked()
		}
		return t, nil
	}
	t := &TradeState{
		OutTradeNo: o.OutTradeNo, TradeNo: newTradeNo(now), ProductCode: product,
		Subject: o.Subject, Body: o.Body, OrderedFen: fen, TotalFen: fen,
		NotifyURL: p.Get("notify_url"), PassbackParams: o.PassbackParams,
		OpAppID: o.OpAppID, BuyerID: o.BuyerID, BuyerOpenID: o.BuyerOpenID,
		Status: StatusWaitBuyerPay, CreatedAt: now, Deadline: deadline,
	}
	if product == ProductWap {
		t.ReturnURL, t.QuitURL = p.Get("return_url"), o.QuitURL
	}
	s.trades[t.OutTradeNo] = t
	s.byTradeNo[t.TradeNo] = t.OutTradeNo
	s.changedLocked()
	s.log.Info("alipaysim trade created", "out_trade_no", t.OutTradeNo, "trade_no", t.TradeNo, "product_code", product, "total_fen", fen)
	return t, nil
}

// alipay.trade.create: a mini-program (JSAPI_PAY) trade for a known buyer.
func (s *Server) apiCreate(p url.Values, biz map[string]json.RawMessage) apiResult {
	var o orderParams
	if r := decodeBiz(biz, &o); r != nil {
		return *r
	}
	t, bad := s.openTrade(p, o, ProductJSAPI)
	if bad != nil {
		return *bad
	}
	return success(obj{{"out_trade_no", t.OutTradeNo}, {"trade_no", t.TradeNo}})
}

type tradeRef struct {
	OutTradeNo   string   `json:"out_trade_no"`
	TradeNo      string   `json:"trade_no"`
	QueryOptions []string `json:"query_options"`
}

func (r tradeRef) missing() *apiResult {
	if r.OutTradeNo == "" && r.TradeNo == "" {
		res := invalidParam("out_trade_no 与 trade_no 不能同时为空")
		return &res
	}
	return nil
}

// alipay.trade.query
func (s *Server) apiQuery(biz map[string]json.RawMessage) apiResult {
	var ref tradeRef
	if r := decodeBiz(biz, &ref); r != nil {
		return *r
	}
	if r := ref.missing(); r != nil {
		return *r
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.findLocked(ref.OutTradeNo, ref.TradeNo)
	if t == nil {
		return bizError(SubTradeNotExist, "交易不存在")
	}
	paid := !t.PaidAt.IsZero()
	paidFen := int64(0)
	if paid {
		paidFen = t.TotalFen
	}
	o := obj{{"trade_no", t.TradeNo}, {"out_trade_no", t.OutTradeNo}}
	o = o.set("buyer_logon_id", t.BuyerLogonID)
	o = append(o, field{"trade_status", t.Status}, field{"total_amount", yuan(t.TotalFen)},
		field{"buyer_pay_amount", yuan(paidFen)}, field{"point_amount", "0.00"},
		field{"invoice_amount", yuan(paidFen)})
	o = o.set("send_pay_date", fmtTime(t.PaidAt))
	o = append(o, field{"receipt_amount", yuan(paidFen)})
	o = o.set("buyer_user_id", t.BuyerID).set("buyer_open_id", t.BuyerOpenID)
	if paid && contains(ref.QueryOptions, "fund_bill_list") {
		o = append(o, field{"fund_bill_list", []obj{{{"fund_channel", "ALIPAYACCOUNT"}, {"amount", yuan(paidFen)}, {"real_amount", yuan(paidFen)}}}})
	}
	return success(o)
}

// alipay.trade.close: only an unpaid trade closes; Alipay notifies nothing.
func (s *Server) apiClose(biz map[string]json.RawMessage) apiResult {
	var ref tradeRef
	if r := decodeBiz(biz, &ref); r != nil {
		return *r
	}
	if r := ref.missing(); r != nil {
		return *r
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.findLocked(ref.OutTradeNo, ref.TradeNo)
	if t == nil {
		return bizError(SubTradeNotExist, "交易不存在")
	}
	if t.Status != StatusWaitBuyerPay {
		return bizError(SubTradeStatusError, "交易状态不合法", field{"out_trade_no", t.OutTradeNo}, field{"trade_no", t.TradeNo})
	}
	t.Status, t.ClosedAt = StatusClosed, s.now()
	s.changedLocked()
	return success(obj{{"trade_no", t.TradeNo}, {"out_trade_no", t.OutTradeNo}})
}

// PayTrade pays a WAIT_BUYER_PAY trade, named by trade_no or out_trade_no,
// as the buyer would (my.tradePay for a JSAPI trade, the cashier page for a
// wap one), and delivers the TRADE_SUCCESS (or TRADE_FINISHED) notification
// unless told not to. It fails with ErrTradeNotExist, ErrTradePaid or
// ErrTradeClosed.
func (s *Server) PayTrade(ctx context.Context, no string, opts PayOptions) (TradeState, error) {
	if err := ctx.Err(); err != nil {
		return TradeState{}, err
	}
	if opts.AmountFen < 0 || opts.AmountFen > maxAmountFen {
		return TradeState{}, fmt.Errorf("alipaysim pay %s: amount_fen out of range", no)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.findAnyLocked(no)
	if t == nil {
		return TradeState{}, fmt.Errorf("pay %s: %w", no, ErrTradeNotExist)
	}
	switch t.Status {
	case StatusSuccess, StatusFinished:
		return TradeState{}, fmt.Errorf("pay %s: %w", no, ErrTradePaid)
	case StatusClosed:
		return TradeState{}, fmt.Errorf("pay %s: %w", no, ErrTradeClosed)
	}
	now := s.now()
	t.PaidAt, t.Status = now, StatusSuccess
	if opts.Finish {
		t.Status, t.ClosedAt = StatusFinished, now
	}
	if opts.AmountFen > 0 {
		t.TotalFen = opts.AmountFen
	}
	if opts.BuyerID != "" || opts.BuyerOpenID != "" {
		t.BuyerID, t.BuyerOpenID = opts.BuyerID, opts.BuyerOpenID
	}
	if t.BuyerID == "" && t.BuyerOpenID == "" {
		t.BuyerID = "2088" + randDigits(12)
	}
	t.BuyerLogonID = "159******" + randDigits(2)
	s.changedLocked()
	s.log.Info("alipaysim trade paid", "out_trade_no", t.OutTradeNo, "trade_no", t.TradeNo, "total_fen", t.TotalFen, "status", t.Status)
	if !opts.NoNotify {
		s.notifyLocked(t, s.tradeNotifyParams(t, t.Status))
	}
	return *t, nil
}

// FinishTrade turns a TRADE_SUCCESS trade into TRADE_FINISHED (the refund
// period has ended) and notifies it, as Alipay does. It fails with
// ErrTradeNotExist or ErrTradeState.
func (s *Server) FinishTrade(no string, notify bool) (TradeState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.findAnyLocked(no)
	if t == nil {
		return TradeState{}, fmt.Errorf("finish %s: %w", no, ErrTradeNotExist)
	}
	if t.Status != StatusSuccess {
		return TradeState{}, fmt.Errorf("finish %s (%s): %w", no, t.Status, ErrTradeState)
	}
	t.Status, t.ClosedAt = StatusFinished, s.now()
	s.changedLocked()
	if notify {
		s.notifyLocked(t, s.tradeNotifyParams(t, StatusFinished))
	}
	return *t, nil
}

// CloseTrade closes an unpaid trade without telling the merchant (as a
// timeout does). It fails with ErrTradeNotExist or ErrTradeState.
func (s *Server) CloseTrade(no string) (TradeState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.findAnyLocked(no)
	if t == nil {
		return TradeState{}, fmt.Errorf("close %s: %w", no, ErrTradeNotExist)
	}
	if t.Status != StatusWaitBuyerPay {
		return TradeState{}, fmt.Errorf("close %s (%s): %w", no, t.Status, ErrTradeState)
	}
	t.Status, t.ClosedAt = StatusClosed, s.now()
	s.changedLocked()
	return *t, nil
}

// Trade returns the trade named by trade_no or out_trade_no.
func (s *Server) Trade(no string) (TradeState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.findAnyLocked(no)
	if t == nil {
		return TradeState{}, false
	}
	return *t, true
}

// Trades returns every trade, oldest first.
func (s *Server) Trades() []TradeState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TradeState, 0, len(s.trades))
	for _, t := range s.trades {
		s.expireLocked(t)
		out = append(out, *t)
	}
	sortTrades(out)
	return out
}
