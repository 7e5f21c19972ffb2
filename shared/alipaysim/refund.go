package alipaysim

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// Refund statuses (refund_status of alipay.trade.fastpay.refund.query; a
// processing refund has none on the wire).
const (
	RefundSuccess    = "REFUND_SUCCESS"
	RefundProcessing = "REFUND_PROCESSING"
)

// RefundState is one refund request (out_request_no) of a trade.
type RefundState struct {
	OutTradeNo   string    `json:"out_trade_no"`
	TradeNo      string    `json:"trade_no"`
	OutRequestNo string    `json:"out_request_no"`
	AmountFen    int64     `json:"amount_fen"`
	Reason       string    `json:"reason,omitempty"`
	Status       string    `json:"status"`
	CreatedAt    time.Time `json:"created_at"`
	SettledAt    time.Time `json:"settled_at,omitzero"`
}

func refundKey(outTradeNo, outRequestNo string) string { return outTradeNo + "\x00" + outRequestNo }

type refundParams struct {
	tradeRef
	RefundAmount yuanField `json:"refund_amount"`
	OutRequestNo string    `json:"out_request_no"`
	RefundReason string    `json:"refund_reason"`
}

// alipay.trade.refund
func (s *Server) apiRefund(biz map[string]json.RawMessage) apiResult {
	var rp refundParams
	if r := decodeBiz(biz, &rp); r != nil {
		return *r
	}
	if r := rp.missing(); r != nil {
		return *r
	}
	amount, bad := rp.RefundAmount.fen("refund_amount", true)
	if bad != nil {
		return *bad
	}
	if len(rp.OutRequestNo) > 64 {
		return invalidParam("out_request_no 至多 64 位")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.findLocked(rp.OutTradeNo, rp.TradeNo)
	if t == nil {
		return bizError(SubTradeNotExist, "交易不存在")
	}
	fail := func(sub, msg string) apiResult {
		return bizError(sub, msg, field{"out_trade_no", t.OutTradeNo}, field{"refund_fee", "0.00"}, field{"send_back_fee", "0.00"})
	}
	reqNo := rp.OutRequestNo
	if reqNo == "" {
		// Alipay's rule: without out_request_no the request is named by
		// out_trade_no and must refund the whole amount.
		reqNo = t.OutTradeNo
	}
	if r := s.refunds[refundKey(t.OutTradeNo, reqNo)]; r != nil {
		if r.AmountFen != amount {
			return fail(SubInvalidParamACQ, "参数无效: out_request_no "+reqNo+" 已用于金额 "+yuan(r.AmountFen)+" 的退款")
		}
		// The same request again: no money moves this time.
		return success(s.refundReplyLocked(t, "N"))
	}
	switch t.Status {
	case StatusWaitBuyerPay:
		return fail(SubTradeStatusError, "交易状态不合法")
	case StatusClosed:
		return fail(SubTradeHasClose, "交易已经关闭")
	case StatusFinished:
		return fail(SubTradeHasFinished, "交易已完结")
	}
	if rp.OutRequestNo == "" && amount != t.TotalFen {
		return fail(SubRefundAmtNotEqual, "撤销或退款金额与订单金额不一致")
	}
	var pending int64
	for _, r := range s.refunds {
		if r.OutTradeNo == t.OutTradeNo && r.Status == RefundProcessing {
			pending += r.AmountFen
		}
	}
	if t.RefundedFen+pending+amount > t.TotalFen {
		return fail(SubRefundFeeErr, "退款金额无效")
	}
	if s.faults.RefundBalanceNotEnough {
		return fail(SubSellerBalance, "卖家余额不足")
	}
	r := &RefundState{
		OutTradeNo: t.OutTradeNo, TradeNo: t.TradeNo, OutRequestNo: reqNo, AmountFen: amount,
		Reason: rp.RefundReason, Status: RefundProcessing, CreatedAt: s.now(),
	}
	s.refunds[refundKey(t.OutTradeNo, reqNo)] = r
	s.changedLocked()
	if s.faults.AsyncRefunds {
		if d := s.faults.RefundSettleDelay; d > 0 && !s.run.ClosedLocked() {
			s.run.Go(func() { s.settleLater(r, d) })
		}
		return success(s.refundReplyLocked(t, "N"))
	}
	s.settleLocked(r)
	return success(s.refundReplyLocked(t, "Y"))
}

func (s *Server) refundReplyLocked(t *TradeState, fundChange string) obj {
	o := obj{{"trade_no", t.TradeNo}, {"out_trade_no", t.OutTradeNo}}
	o = o.set("buyer_logon_id", t.BuyerLogonID)
	o = append(o, field{"fund_change", fundChange}, field{"refund_fee", yuan(t.RefundedFen)})
	o = o.set("gmt_refund_pay", fmtTime(t.RefundedAt))
	return o.set("buyer_user_id", t.BuyerID).set("buyer_open_id", t.BuyerOpenID)
}

// settleLocked completes a processing refund: the money goes back, a full
// refund closes the trade, and the merchant is notified at the payment's
// notify_url (TRADE_SUCCESS with refund_fee / gmt_refund / out_biz_no, or
// TRADE_CLOSED with gmt_close after a full refund).
func (s *Server) settleLocked(r *RefundState) {
	t := s.trades[r.OutTradeNo]
	now := s.now()
	r.Status, r.SettledAt = RefundSuccess, now
	t.RefundedFen += r.AmountFen
	t.RefundedAt = now
	if t.RefundedFen >= t.TotalFen {
		t.Status, t.ClosedAt = StatusClosed, now
	}
	s.changedLocked()
	s.log.Info("alipaysim refund settled", "out_trade_no", t.OutTradeNo, "out_request_no", r.OutRequestNo, "amount_fen", r.AmountFen, "refunded_fen", t.RefundedFen)
	p := s.tradeNotifyParams(t, t.Status)
	p.Set("out_biz_no", r.OutRequestNo)
	p.Set("refund_fee", yuan(t.RefundedFen))
	p.Set("gmt_refund", now.In(cst).Format("2006-01-02 15:04:05.000"))
	s.notifyLocked(t, p)
}

func (s *Server) settleLater(r *RefundState, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-s.run.Context().Done():
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Status == RefundProcessing && s.refunds[refundKey(r.OutTradeNo, r.OutRequestNo)] == r {
		s.settleLocked(r)
	}
}

// SettleRefund completes a refund left processing by Faults.AsyncRefunds.
// outTradeNo may also be the trade_no. It fails with ErrRefundUnknown, or
// ErrTradeState when the refund is not processing.
func (s *Server) SettleRefund(outTradeNo, outRequestNo string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.findAnyLocked(outTradeNo)
	if t == nil {
		return fmt.Errorf("settle refund %s/%s: %w", outTradeNo, outRequestNo, ErrRefundUnknown)
	}
	r := s.refunds[refundKey(t.OutTradeNo, outRequestNo)]
	if r == nil {
		return fmt.Errorf("settle refund %s/%s: %w", outTradeNo, outRequestNo, ErrRefundUnknown)
	}
	if r.Status != RefundProcessing {
		return fmt.Errorf("settle refund %s/%s (%s): %w", outTradeNo, outRequestNo, r.Status, ErrTradeState)
	}
	s.settleLocked(r)
	return nil
}

// Refunds returns the refunds of a trade (by trade_no or out_trade_no), or
// of every trade when no is empty, oldest first.
func (s *Server) Refunds(no string) []RefundState {
	s.mu.Lock()
	defer s.mu.Unlock()
	outTradeNo := ""
	if no != "" {
		t := s.findAnyLocked(no)
		if t == nil {
			return []RefundState{}
		}
		outTradeNo = t.OutTradeNo
	}
	out := []RefundState{}
	for _, r := range s.refunds {
		if outTradeNo == "" || r.OutTradeNo == outTradeNo {
			out = append(out, *r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return refundKey(out[i].OutTradeNo, out[i].OutRequestNo) < refundKey(out[j].OutTradeNo, out[j].OutRequestNo)
	})
	return out
}

type refundQueryParams struct {
	tradeRef
	OutRequestNo string `json:"out_request_no"`
}

// alipay.trade.fastpay.refund.query: a refund that is unknown answers
// 10000 with no refund data; one still processing answers without
// refund_status (Alipay: "未返回该字段表示退款请求未收到或者退款失败").
func (s *Server) apiRefundQuery(biz map[string]json.RawMessage) apiResult {
	var q refundQueryParams
	if r := decodeBiz(biz, &q); r != nil {
		return *r
	}
	if r := q.missing(); r != nil {
		return *r
	}
	if q.OutRequestNo == "" {
		return invalidParam("out_request_no 不能为空")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.findLocked(q.OutTradeNo, q.TradeNo)
	if t == nil {
		return bizError(SubTradeNotExist, "交易不存在")
	}
	r := s.refunds[refundKey(t.OutTradeNo, q.OutRequestNo)]
	if r == nil {
		return success(nil)
	}
	o := obj{{"trade_no", t.TradeNo}, {"out_trade_no", t.OutTradeNo}, {"out_request_no", r.OutRequestNo},
		{"total_amount", yuan(t.TotalFen)}, {"refund_amount", yuan(r.AmountFen)}}
	if r.Status == RefundSuccess {
		o = append(o, field{"refund_status", RefundSuccess})
		if contains(q.QueryOptions, "gmt_refund_pay") {
			o = append(o, field{"gmt_refund_pay", fmtTime(r.SettledAt)})
		}
	}
	o = o.set("refund_reason", r.Reason)
	return success(o)
}
