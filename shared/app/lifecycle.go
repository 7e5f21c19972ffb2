package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/payfn/payfn/shared/order"
)

// Lifecycle error codes.
const (
	CodeInvalidRefundNo     = "INVALID_OUT_REFUND_NO"
	CodeInvalidAmount       = "INVALID_AMOUNT"
	CodeInvalidReason       = "INVALID_REASON"
	CodeOrderNotRefundable  = "ORDER_NOT_REFUNDABLE"
	CodeRefundExceedsPaid   = "REFUND_EXCEEDS_PAID"
	CodeRefundNotFound      = "REFUND_NOT_FOUND"
	CodeRefundRejected      = "REFUND_REJECTED"
	CodeAdminUnauthorized   = "ADMIN_UNAUTHENTICATED"
	defaultJobBatch         = 100
	maxRefundSlotAttempts   = 50
	reconcileUnpaidAfterAge = 5 * time.Minute
)

var refundNoPattern = regexp.MustCompile(`^[0-9A-Za-z_|*@-]{1,64}$`)

// RefundInput is the merchant's refund request.
type RefundInput struct {
	OrderID     string
	OutRefundNo string // the merchant's idempotency key for this refund
	AmountFen   int64
	Reason      string
}

// Refund refunds part or all of a paid order. The same out_refund_no with
// the same order and amount returns the same refund (created false); the
// sum of an order's refunds never exceeds what was paid, however many
// arrive at once. The outcome comes from WeChat Pay's answer, its refund
// notification, or Reconcile.
// Errors: INVALID_ORDER_ID, INVALID_OUT_REFUND_NO, INVALID_AMOUNT,
// INVALID_REASON, ORDER_NOT_FOUND, ORDER_NOT_REFUNDABLE, REFUND_EXCEEDS_PAID,
// IDEMPOTENCY_CONFLICT, REFUND_REJECTED, STORE_UNAVAILABLE,
// PAYMENT_CHANNEL_UNAVAILABLE (the refund stays REFUNDING: retry it).
func (a *App) Refund(ctx context.Context, in RefundInput) (order.Refund, bool, error) {
	return a.refund(ctx, in, "", "")
}

// refund is Refund for the operator (appID "") or for a service app, whose
// own refund id is kept on the record.
func (a *App) refund(ctx context.Context, in RefundInput, appID, requestID string) (order.Refund, bool, error) {
	switch {
	case !validOrderID(in.OrderID):
		return order.Refund{}, false, Errorf(KindInvalid, CodeInvalidOrderID, "order_id must be a payfn order id")
	case !refundNoPattern.MatchString(in.OutRefundNo):
		return order.Refund{}, false, Errorf(KindInvalid, CodeInvalidRefundNo, "out_refund_no must be 1-64 characters of A-Z a-z 0-9 _ - | * @")
	case in.AmountFen < 1 || in.AmountFen > order.MaxTotalFen:
		return order.Refund{}, false, Errorf(KindInvalid, CodeInvalidAmount, "amount_fen must be a whole number of fen from 1 to %d", order.MaxTotalFen)
	case utf8.RuneCountInString(in.Reason) > 80:
		return order.Refund{}, false, Errorf(KindInvalid, CodeInvalidReason, "reason is at most 80 characters")
	}
	if r, found, err := a.refundReplay(ctx, in); found || err != nil {
		return r, false, err
	}
	o, err := a.store.Order(ctx, in.OrderID)
	if err == nil && appID != "" && o.AppID != appID {
		err = order.ErrNotFound
	}
	if errors.Is(err, order.ErrNotFound) {
		return order.Refund{}, false, Errorf(KindNotFound, CodeOrderNotFound, "no order %s", in.OrderID)
	} else if err != nil {
		return order.Refund{}, false, storeError("load order", err)
	}
	paid, err := a.paidTotal(ctx, o)
	if err != nil {
		return order.Refund{}, false, err
	}
	r, created, err := a.admitRefund(ctx, in, paid, o, requestID)
	if err != nil || !created {
		return r, false, err
	}
	a.log.InfoContext(ctx, "refund admitted", "order_id", o.ID, "out_refund_no", r.ID, "amount_fen", r.AmountFen)
	a.count(ctx, o.AppID, MetricRefundsRequested, 1)
	if o.Split != nil {
		// Due at once for the next shareProfits run; its discovery of new
		// refunds opens the task anyway if this write is lost.
		if err := a.openReturn(ctx, r); err != nil {
			a.log.WarnContext(ctx, "return task not opened; the shareProfits job finds the refund", "order_id", o.ID, "out_refund_no", r.ID, "err", err)
		}
	}
	r, err = a.submitRefund(ctx, r, paid)
	return r, true, err
}

// refundReplay answers a refund number seen before.
func (a *App) refundReplay(ctx context.Context, in RefundInput) (order.Refund, bool, error) {
	r, err := a.store.Refund(ctx, in.OutRefundNo)
	if errors.Is(err, order.ErrNotFound) {
		return order.Refund{}, false, nil
	} else if err != nil {
		return order.Refund{}, false, storeError("load refund", err)
	}
	if r.OrderID != in.OrderID || r.AmountFen != in.AmountFen {
		return order.Refund{}, true, Errorf(KindConflict, CodeIdempotencyConflict, "out_refund_no %s was already used for a different refund", in.OutRefundNo)
	}
	if r.Status == order.RefundPending {
		// Resending the same out_refund_no is how WeChat Pay wants a refund
		// retried; it refunds once.
		o, err := a.store.Order(ctx, r.OrderID)
		if err != nil {
			return order.Refund{}, true, storeError("load order", err)
		}
		paid, err := a.paidTotal(ctx, o)
		if err != nil {
			return order.Refund{}, true, err
		}
		r, err = a.submitRefund(ctx, r, paid)
		return r, true, err
	}
	return r, true, nil
}

// paidTotal is what the buyer actually paid for a paid order: the ledger
// row of its transaction (for an EXCEPTION order it differs from the total).
func (a *App) paidTotal(ctx context.Context, o order.Order) (int64, error) {
	if o.Status != order.StatusPaid && o.Status != order.StatusException {
		return 0, Errorf(KindConflict, CodeOrderNotRefundable, "order %s is %s; only a paid order can be refunded", o.ID, o.Status)
	}
	ps, err := a.store.Payments(ctx, o.ID)
	if err != nil {
		return 0, storeError("load payments", err)
	}
	for _, p := range ps {
		if p.TransactionID == o.TransactionID {
			return p.TotalFen, nil
		}
	}
	return 0, fmt.Errorf("order %s is %s but has no ledger row for transaction %s", o.ID, o.Status, o.TransactionID)
}

// admitRefund takes the order's next refund slot if the amount still fits.
// Slots are unique per order, so concurrent refunds are admitted one at a
// time, each checking the sum of those admitted before it.
func (a *App) admitRefund(ctx context.Context, in RefundInput, paid int64, o order.Order, requestID string) (order.Refund, bool, error) {
	for range maxRefundSlotAttempts {
		refunds, err := a.store.Refunds(ctx, in.OrderID)
		if err != nil {
			return order.Refund{}, false, storeError("list refunds", err)
		}
		var held int64
		slot := 0
		for _, r := range refunds {
			if r.ID == in.OutRefundNo { // a concurrent request with the same number won
				return a.refundReplay(ctx, in)
			}
			if r.Holds() {
				held += r.AmountFen
			}
			slot = max(slot, r.Slot)
		}
		if err := order.CheckRefund(paid, held, in.AmountFen); err != nil {
			return order.Refund{}, false, &Error{Kind: KindConflict, Code: CodeRefundExceedsPaid,
				Message: fmt.Sprintf("refunding %d fen would exceed the %d fen paid (%d fen already refunded or refunding)", in.AmountFen, paid, held), Err: err}
		}
		now := a.now().UTC().Truncate(time.Millisecond)
		r := order.Refund{ID: in.OutRefundNo, AppID: o.AppID, RequestID: requestID, OrderID: in.OrderID, Channel: o.Channel, Slot: slot + 1, AmountFen: in.AmountFen,
			Reason: in.Reason, Status: order.RefundPending, CreatedAt: now, UpdatedAt: now}
		err = a.store.InsertRefund(ctx, r)
		if err == nil {
			return r, true, nil
		}
		if !errors.Is(err, order.ErrDuplicate) {
			return order.Refund{}, false, storeError("insert refund", err)
		}
		// Either the same number (a concurrent retry) or the slot was taken:
		// look again.
	}
	return order.Refund{}, false, Errorf(KindUnavailable, CodeStoreUnavailable, "too many concurrent refunds of order %s; try again", in.OrderID)
}

// submitRefund sends an admitted refund to WeChat Pay and records a final
// answer if there is one.
func (a *App) submitRefund(ctx context.Context, r order.Refund, paid int64) (order.Refund, error) {
	ch, err := a.channelNamed(r.ChannelName())
	if err != nil {
		return r, channelError("refund "+r.ID, err)
	}
	res, err := ch.Refund(ctx, RefundRequest{OutTradeNo: r.OrderID, OutRefundNo: r.ID, RefundFen: r.AmountFen, TotalFen: paid, Reason: r.Reason})
	switch {
	case errors.Is(err, ErrChannelUnavailable):
		return r, channelError("refund "+r.ID, err)
	case err != nil:
		return a.refundRefused(ctx, r, err)
	}
	return a.decideRefund(ctx, r, res)
}

// refundRefused handles a 4xx answer to a refund. A resend of a refund whose
// first submission succeeded can be answered that way, so WeChat Pay is
// asked first: only when it does not know the refund at all is the refund
// failed and its amount freed. While WeChat Pay cannot be asked, the refund
// stays REFUNDING and holds its amount: it may still be paid.
func (a *App) refundRefused(ctx context.Context, r order.Refund, refusal error) (order.Refund, error) {
	res, err := a.queryRefund(ctx, r)
	switch {
	case errors.Is(err, ErrTradeNotFound):
		if _, derr := a.decideRefund(ctx, r, RefundResult{OutRefundNo: r.ID, Status: RefundStateClosed}); derr != nil {
			return r, derr
		}
		return r, &Error{Kind: KindBadGateway, Code: CodeRefundRejected, Message: "WeChat Pay refused the refund", Err: refusal}
	case err != nil:
		a.log.WarnContext(ctx, "WeChat Pay refused a refund and could not be asked about it; it stays REFUNDING for reconcile", "order_id", r.OrderID, "out_refund_no", r.ID, "refusal", refusal, "err", err)
		return r, channelError("query refused refund "+r.ID, errors.Join(ErrChannelUnavailable, err))
	}
	a.log.WarnContext(ctx, "WeChat Pay refused a refund resend but knows the refund; following its state", "order_id", r.OrderID, "out_refund_no", r.ID, "status", res.Status)
	return a.decideRefund(ctx, r, res)
}

// decideRefund records WeChat Pay's final answer on a refund, once.
func (a *App) decideRefund(ctx context.Context, r order.Refund, res RefundResult) (order.Refund, error) {
	var status order.RefundStatus
	switch res.Status {
	case RefundStateSuccess:
		status = order.RefundSucceeded
	case RefundStateClosed:
		status = order.RefundFailed
	case RefundStateAbnormal:
		a.log.ErrorContext(ctx, "WeChat Pay reports the refund abnormal; it needs a person in the merchant portal", "order_id", r.OrderID, "out_refund_no", r.ID)
		a.count(ctx, r.AppID, MetricRefundsAbnormal, 1)
		return r, nil
	default:
		return r, nil // still processing
	}
	now := a.now().UTC().Truncate(time.Millisecond)
	d := order.RefundDecision{Key: order.RefundKey(r.ID), RefundNo: r.ID, OrderID: r.OrderID, Status: status,
		RefundID: res.RefundID, DecidedAt: now}
	if status == order.RefundSucceeded {
		d.SucceededAt = res.SuccessTime.UTC().Truncate(time.Millisecond)
		if d.SucceededAt.IsZero() {
			d.SucceededAt = now
		}
	}
	d, won, err := a.store.ClaimRefund(ctx, d)
	if err != nil {
		return r, storeError("claim refund outcome", err)
	}
	if r.Status != d.Status {
		after := r
		after.Status, after.RefundID, after.UpdatedAt = d.Status, d.RefundID, d.DecidedAt
		if !d.SucceededAt.IsZero() {
			t := d.SucceededAt
			after.SucceededAt = &t
		}
		ev, err := a.emitRefund(ctx, d, after)
		if err != nil {
			return r, err
		}
		if err := a.store.ApplyRefund(ctx, d); err != nil {
			return r, storeError("apply refund outcome", err)
		}
		r = after
		a.deliverNow(ctx, ev)
	}
	if won {
		a.log.InfoContext(ctx, "refund decided", "order_id", r.OrderID, "out_refund_no", r.ID, "status", d.Status, "amount_fen", r.AmountFen)
		a.countRefund(ctx, r.AppID, d.Status, r.AmountFen)
	}
	return r, nil
}

// emitRefund records the event of a refund's decision, before the decision
// is written onto the refund (see apply).
func (a *App) emitRefund(ctx context.Context, d order.RefundDecision, r order.Refund) (*queued, error) {
	if a.svc == nil {
		return nil, nil
	}
	o, err := a.store.Order(ctx, r.OrderID)
	if err != nil {
		return nil, storeError("load order "+r.OrderID, err)
	}
	typ := order.EventRefundSucceeded
	if d.Status == order.RefundFailed {
		typ = order.EventRefundFailed
	}
	return a.emit(ctx, d.Key, typ, o, &r)
}

// VerifyRefund handles a WeChat Pay refund notification exactly as
// VerifyPayment handles a payment: verified, checked against our records,
// decided once. nil means acknowledge.
// Errors: INVALID_NOTIFICATION, NOTIFICATION_MISMATCH, REFUND_NOT_FOUND,
// STORE_UNAVAILABLE, PAYMENT_CHANNEL_UNAVAILABLE.
func (a *App) VerifyRefund(ctx context.Context, header http.Header, body []byte) error {
	wx, err := a.provider(ProviderWeChatPay)
	if err != nil {
		return channelError("verify refund notification", err)
	}
	rn, ok := capability[RefundNotifier](wx)
	if !ok {
		return channelError("verify refund notification", fmt.Errorf("channel %s has no refund notifications: %w", wx.Name(), ErrChannelUnavailable))
	}
	n, err := rn.ParseRefundNotification(ctx, header, body)
	switch {
	case errors.Is(err, ErrBadNotification):
		a.countRejected(ctx, header)
		return &Error{Kind: KindUnauthenticated, Code: CodeInvalidNotification, Message: "the notification failed verification", Err: err}
	case errors.Is(err, ErrChannelUnavailable):
		return channelError("verify refund notification", err)
	case err != nil:
		return fmt.Errorf("verify refund notification: %w", err)
	}
	res := n.Refund
	log := a.log.With("notification_id", n.ID, "out_refund_no", res.OutRefundNo, "order_id", res.OutTradeNo)
	if res.MchID != wx.MchID() {
		log.ErrorContext(ctx, "verified refund notification for another merchant; rejected", "mchid", res.MchID)
		a.count(ctx, "", MetricVerificationFailures, 1)
		return Errorf(KindInvalid, CodeNotificationMismatch, "the notification's mchid does not match this merchant")
	}
	if !refundNoPattern.MatchString(res.OutRefundNo) {
		return Errorf(KindNotFound, CodeRefundNotFound, "no refund %q", res.OutRefundNo)
	}
	r, err := a.store.Refund(ctx, res.OutRefundNo)
	if errors.Is(err, order.ErrNotFound) {
		log.ErrorContext(ctx, "verified refund notification for an unknown refund")
		return Errorf(KindNotFound, CodeRefundNotFound, "no refund %s", res.OutRefundNo)
	} else if err != nil {
		return storeError("load refund", err)
	}
	if r.OrderID != res.OutTradeNo || r.AmountFen != res.RefundFen {
		log.ErrorContext(ctx, "verified refund notification does not match the refund; rejected", "refund_fen", res.RefundFen, "recorded_fen", r.AmountFen)
		return Errorf(KindInvalid, CodeNotificationMismatch, "the notification's order or amount does not match refund %s", r.ID)
	}
	_, err = a.decideRefund(ctx, r, res)
	return err
}
