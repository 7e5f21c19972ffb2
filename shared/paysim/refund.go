package paysim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"time"
)

// Refund states as WeChat Pay reports them.
const (
	RefundSuccess    = "SUCCESS"
	RefundClosed     = "CLOSED"
	RefundProcessing = "PROCESSING"
	RefundAbnormal   = "ABNORMAL"
)

// CodeResourceNotExists answers a refund for an unknown or unpaid order, or
// a query for an unknown refund.
const CodeResourceNotExists = "RESOURCE_NOT_EXISTS"

var outRefundNoPattern = regexp.MustCompile(`^[0-9A-Za-z_\-|*@]{1,64}$`)

// RefundBehaviour decides how the simulator settles the refunds it accepts.
// The zero value settles each one SUCCESS straight away and notifies.
type RefundBehaviour struct {
	Outcome  string        // SUCCESS (default), CLOSED or ABNORMAL
	Delay    time.Duration // wait before settling
	NoNotify bool          // settle without notifying (WeChat and the merchant disagree)
	Hold     bool          // leave refunds PROCESSING until SettleRefund
}

// SetRefundBehaviour changes how later refunds are settled.
func (s *Server) SetRefundBehaviour(b RefundBehaviour) {
	s.mu.Lock()
	s.refundCfg = b
	s.mu.Unlock()
}

type refund struct {
	OutTradeNo  string
	OutRefundNo string
	RefundID    string
	TxID        string
	Status      string
	Reason      string
	NotifyURL   string
	Refund      int64
	Total       int64
	CreatedAt   time.Time
	SuccessTime time.Time
}

// refundJSON is the Refund object of the refund APIs.
type refundJSON struct {
	RefundID            string     `json:"refund_id"`
	OutRefundNo         string     `json:"out_refund_no"`
	TransactionID       string     `json:"transaction_id"`
	OutTradeNo          string     `json:"out_trade_no"`
	Channel             string     `json:"channel"`
	UserReceivedAccount string     `json:"user_received_account"`
	SuccessTime         string     `json:"success_time,omitempty"`
	CreateTime          string     `json:"create_time"`
	Status              string     `json:"status"`
	FundsAccount        string     `json:"funds_account,omitempty"`
	Amount              refundAmnt `json:"amount"`
}

type refundAmnt struct {
	Total            int64  `json:"total"`
	Refund           int64  `json:"refund"`
	PayerTotal       int64  `json:"payer_total"`
	PayerRefund      int64  `json:"payer_refund"`
	SettlementRefund int64  `json:"settlement_refund"`
	SettlementTotal  int64  `json:"settlement_total"`
	DiscountRefund   int64  `json:"discount_refund"`
	Currency         string `json:"currency"`
}

func (r *refund) json() refundJSON {
	j := refundJSON{
		RefundID: r.RefundID, OutRefundNo: r.OutRefundNo, TransactionID: r.TxID, OutTradeNo: r.OutTradeNo,
		Channel: "ORIGINAL", UserReceivedAccount: "支付用户零钱", CreateTime: r.CreatedAt.In(cst).Format(time.RFC3339),
		Status: r.Status, FundsAccount: "AVAILABLE",
		Amount: refundAmnt{Total: r.Total, Refund: r.Refund, PayerTotal: r.Total, PayerRefund: r.Refund,
			SettlementRefund: r.Refund, SettlementTotal: r.Total, Currency: "CNY"},
	}
	if !r.SuccessTime.IsZero() {
		j.SuccessTime = r.SuccessTime.In(cst).Format(time.RFC3339)
	}
	return j
}

// RefundResource is the decrypted resource of a refund notification.
type RefundResource struct {
	MchID               string `json:"mchid"`
	OutTradeNo          string `json:"out_trade_no"`
	TransactionID       string `json:"transaction_id"`
	OutRefundNo         string `json:"out_refund_no"`
	RefundID            string `json:"refund_id"`
	RefundStatus        string `json:"refund_status"`
	SuccessTime         string `json:"success_time,omitempty"`
	UserReceivedAccount string `json:"user_received_account"`
	Amount              struct {
		Total       int64 `json:"total"`
		Refund      int64 `json:"refund"`
		PayerTotal  int64 `json:"payer_total"`
		PayerRefund int64 `json:"payer_refund"`
	} `json:"amount"`
}

func (s *Server) refundResourceLocked(r *refund) RefundResource {
	res := RefundResource{
		MchID: s.mchID, OutTradeNo: r.OutTradeNo, TransactionID: r.TxID, OutRefundNo: r.OutRefundNo,
		RefundID: r.RefundID, RefundStatus: r.Status, UserReceivedAccount: "支付用户零钱",
	}
	if !r.SuccessTime.IsZero() {
		res.SuccessTime = r.SuccessTime.In(cst).Format(time.RFC3339)
	}
	res.Amount.Total, res.Amount.Refund = r.Total, r.Refund
	res.Amount.PayerTotal, res.Amount.PayerRefund = r.Total, r.Refund
	return res
}

// BuildRefundNotification builds a REFUND.<status> notification for res,
// signed and encrypted as opts say (zero opts: genuine).
func (s *Server) BuildRefundNotification(res RefundResource, opts NotifyOptions) (http.Header, []byte, error) {
	if opts.EventType == "" {
		opts.EventType = "REFUND." + res.RefundStatus
	}
	if opts.Summary == "" {
		opts.Summary = "退款成功"
	}
	if opts.AssociatedData == nil {
		ad := "refund"
		opts.AssociatedData = &ad
	}
	o := s.envelopeDefaults(opts)
	env, err := buildEnvelope(res, "refund", o)
	if err != nil {
		return nil, nil, fmt.Errorf("build refund notification: %w", err)
	}
	h, err := s.signNotification(env.bytes, o)
	if err != nil {
		return nil, nil, fmt.Errorf("build refund notification: %w", err)
	}
	return h, env.bytes, nil
}

func (s *Server) handleRefund(_ *http.Request, body []byte) reply {
	var b struct {
		TransactionID string `json:"transaction_id"`
		OutTradeNo    string `json:"out_trade_no"`
		OutRefundNo   string `json:"out_refund_no"`
		Reason        string `json:"reason"`
		NotifyURL     string `json:"notify_url"`
		Amount        *struct {
			Refund   int64  `json:"refund"`
			Total    int64  `json:"total"`
			Currency string `json:"currency"`
		} `json:"amount"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "body is not valid JSON")
	}
	switch {
	case !outRefundNoPattern.MatchString(b.OutRefundNo):
		return paramError("/out_refund_no", "required, 1-64 characters of [0-9A-Za-z_-|*@]")
	case b.Amount == nil || b.Amount.Refund < 1 || b.Amount.Total < 1:
		return paramError("/amount", "refund and total are required positive integers")
	case b.Amount.Currency != "CNY":
		return paramError("/amount/currency", "must be CNY")
	case len([]rune(b.Reason)) > 80:
		return paramError("/reason", "at most 80 characters")
	case b.NotifyURL != "" && validNotifyURL(b.NotifyURL) != "":
		return paramError("/notify_url", validNotifyURL(b.NotifyURL))
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	no := b.OutTradeNo
	if no == "" {
		no = s.byTxID[b.TransactionID]
	}
	t, ok := s.trades[no]
	if !ok || t.state != StateSuccess {
		return errReply(http.StatusNotFound, CodeResourceNotExists, "订单不存在或未支付")
	}
	if r, ok := s.refunds[b.OutRefundNo]; ok {
		// The same out_refund_no again is a retry: answer, never refund twice.
		if r.OutTradeNo != no || r.Refund != b.Amount.Refund {
			return errReply(http.StatusBadRequest, "INVALID_REQUEST", "out_refund_no was used with different parameters")
		}
		return reply{status: http.StatusOK, body: r.json()}
	}
	if b.Amount.Total != t.paidTotal {
		return paramError("/amount/total", "does not match the order's paid total")
	}
	var held int64
	for _, r := range s.refunds {
		if r.OutTradeNo == no && r.Status != RefundClosed {
			held += r.Refund
		}
	}
	if held+b.Amount.Refund > t.paidTotal {
		return errReply(http.StatusBadRequest, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
	}
	r := &refund{
		OutTradeNo: no, OutRefundNo: b.OutRefundNo, RefundID: "50" + now.In(cst).Format("20060102") + randDigits(20),
		TxID: t.txID, Status: RefundProcessing, Reason: b.Reason, NotifyURL: b.NotifyURL,
		Refund: b.Amount.Refund, Total: b.Amount.Total, CreatedAt: now.Truncate(time.Second),
	}
	s.refunds[r.OutRefundNo] = r
	s.changedLocked()
	s.log.Info("paysim refund accepted", "out_trade_no", no, "out_refund_no", r.OutRefundNo, "refund_fen", r.Refund)
	if !s.refundCfg.Hold {
		cfg := s.refundCfg
		s.run.Go(func() {
			if cfg.Delay > 0 {
				select {
				case <-time.After(cfg.Delay):
				case <-s.run.Context().Done():
					return
				}
			}
			outcome := cfg.Outcome
			if outcome == "" {
				outcome = RefundSuccess
			}
			s.settleRefund(r.OutRefundNo, outcome, !cfg.NoNotify)
		})
	}
	return reply{status: http.StatusOK, body: r.json()}
}

// SettleRefund decides a held refund (see RefundBehaviour.Hold) and, if
// notify, tells the merchant.
func (s *Server) SettleRefund(outRefundNo, outcome string, notify bool) error {
	switch outcome {
	case RefundSuccess, RefundClosed, RefundAbnormal:
	default:
		return fmt.Errorf("settle refund %s: outcome %q is not SUCCESS, CLOSED or ABNORMAL", outRefundNo, outcome)
	}
	if !s.settleRefund(outRefundNo, outcome, notify) {
		return fmt.Errorf("settle refund %s: no such refund still processing", outRefundNo)
	}
	return nil
}

func (s *Server) settleRefund(outRefundNo, outcome string, notify bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.refunds[outRefundNo]
	if !ok || r.Status != RefundProcessing {
		return false
	}
	r.Status = outcome
	if outcome == RefundSuccess {
		r.SuccessTime = s.now().Truncate(time.Second)
		s.trades[r.OutTradeNo].refunded = true
	}
	s.changedLocked()
	s.log.Info("paysim refund settled", "out_refund_no", outRefundNo, "status", outcome, "notify", notify && r.NotifyURL != "")
	if !notify || r.NotifyURL == "" {
		return true
	}
	o := s.envelopeDefaults(NotifyOptions{EventType: "REFUND." + outcome, Summary: "退款结果", AssociatedData: ptr("refund")})
	env, err := buildEnvelope(s.refundResourceLocked(r), "refund", o)
	if err != nil {
		s.log.Error("paysim refund notification", "out_refund_no", outRefundNo, "err", err)
		return true
	}
	// Deliveries of a refund are filed under its out_refund_no.
	s.startDeliveryLocked(outRefundNo, r.NotifyURL, env.bytes, 0)
	return true
}

func ptr[T any](v T) *T { return &v }

func (s *Server) handleQueryRefund(r *http.Request, _ []byte) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	rf, ok := s.refunds[r.PathValue("no")]
	if !ok {
		return errReply(http.StatusNotFound, CodeResourceNotExists, "退款单不存在")
	}
	return reply{status: http.StatusOK, body: rf.json()}
}

// RefundState returns the simulator's record of a refund.
func (s *Server) RefundState(outRefundNo string) (status string, refundFen int64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.refunds[outRefundNo]
	if !ok {
		return "", 0, false
	}
	return r.Status, r.Refund, true
}

// CloseSilently closes an unpaid trade at "WeChat Pay" without the merchant
// asking, so the merchant's record disagrees until it reconciles.
func (s *Server) CloseSilently(ctx context.Context, outTradeNo string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.trades[outTradeNo]
	switch {
	case !ok:
		return fmt.Errorf("close %s: %w", outTradeNo, ErrUnknownPrepay)
	case t.state != StateNotPay:
		return fmt.Errorf("close %s: trade is %s", outTradeNo, t.state)
	}
	t.state = StateClosed
	s.changedLocked()
	return nil
}
