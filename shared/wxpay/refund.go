package wxpay

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/services/refunddomestic"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
)

// refundNotifyURL is where WeChat Pay reports refund outcomes: the payment
// notify_url's /refund sibling, which the refundNotify function serves.
func (c *Channel) refundNotifyURL() string {
	if c.cfg.RefundNotifyURL != "" {
		return c.cfg.RefundNotifyURL
	}
	return strings.TrimRight(c.cfg.NotifyURL, "/") + "/refund"
}

// Refund submits a refund by out_trade_no. Sending the same out_refund_no
// again is how WeChat Pay wants a refund retried: it refunds once. Errors
// wrap app.ErrChannelUnavailable when WeChat Pay could not answer, or carry
// an *APIError (e.g. NOT_ENOUGH, RESOURCE_NOT_EXISTS).
func (c *Channel) Refund(ctx context.Context, req app.RefundRequest) (app.RefundResult, error) {
	op := "refund " + req.OutRefundNo
	if req.OutTradeNo == "" || req.OutRefundNo == "" || req.RefundFen < 1 || req.TotalFen < req.RefundFen {
		return app.RefundResult{}, fmt.Errorf("%s: out_trade_no, out_refund_no and 0 < refund <= total are required", op)
	}
	if err := c.ready(ctx); err != nil {
		return app.RefundResult{}, fmt.Errorf("%s: %w", op, err)
	}
	svc := refunddomestic.RefundsApiService{Client: c.api.Client}
	cr := refunddomestic.CreateRequest{
		OutTradeNo:  core.String(req.OutTradeNo),
		OutRefundNo: core.String(req.OutRefundNo),
		NotifyUrl:   core.String(c.refundNotifyURL()),
		Amount: &refunddomestic.AmountReq{
			Refund: core.Int64(req.RefundFen), Total: core.Int64(req.TotalFen), Currency: core.String(order.Currency),
		},
	}
	if r := sanitizeDescription(req.Reason); r != "" {
		if len([]rune(r)) > 80 {
			r = string([]rune(r)[:80])
		}
		cr.Reason = core.String(r)
	}
	resp, _, err := svc.Create(ctx, cr)
	if err != nil {
		return app.RefundResult{}, classify(op, err)
	}
	return toRefundResult(resp), nil
}

// QueryRefund asks WeChat Pay for a refund by out_refund_no. An unknown
// refund wraps app.ErrTradeNotFound.
func (c *Channel) QueryRefund(ctx context.Context, _, outRefundNo string) (app.RefundResult, error) {
	op := "query refund " + outRefundNo
	if outRefundNo == "" {
		return app.RefundResult{}, errors.New("query refund: empty out_refund_no")
	}
	if err := c.ready(ctx); err != nil {
		return app.RefundResult{}, fmt.Errorf("%s: %w", op, err)
	}
	svc := refunddomestic.RefundsApiService{Client: c.api.Client}
	resp, _, err := svc.QueryByOutRefundNo(ctx, refunddomestic.QueryByOutRefundNoRequest{OutRefundNo: core.String(outRefundNo)})
	if err != nil {
		return app.RefundResult{}, classify(op, err)
	}
	return toRefundResult(resp), nil
}

func toRefundResult(r *refunddomestic.Refund) app.RefundResult {
	res := app.RefundResult{
		OutTradeNo: str(r.OutTradeNo), OutRefundNo: str(r.OutRefundNo), RefundID: str(r.RefundId),
	}
	if r.Status != nil {
		res.Status = string(*r.Status)
	}
	if r.SuccessTime != nil {
		res.SuccessTime = *r.SuccessTime
	}
	if r.Amount != nil {
		res.RefundFen, res.TotalFen = i64(r.Amount.Refund), i64(r.Amount.Total)
	}
	return res
}
