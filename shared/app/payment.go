package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/payfn/payfn/shared/order"
)

// WeChat Pay values payfn acts on.
const (
	EventTransactionSuccess = "TRANSACTION.SUCCESS"
	TradeStateSuccess       = "SUCCESS"
	TradeStateClosed        = "CLOSED"
	TradeStateRefund        = "REFUND"
	TradeStateRevoked       = "REVOKED"
	TradeStatePayError      = "PAYERROR"
)

// CodeLatePaymentUnconfirmed answers (503) a genuine payment notification
// for an order closed here that WeChat Pay's query does not confirm yet.
const CodeLatePaymentUnconfirmed = "LATE_PAYMENT_UNCONFIRMED"

// VerifyPayment handles a WeChat Pay payment notification from its exact
// headers and raw body: VerifyNotification for ProviderWeChatPay.
func (a *App) VerifyPayment(ctx context.Context, header http.Header, body []byte) error {
	return a.VerifyNotification(ctx, ProviderWeChatPay, header, body)
}

// VerifyNotification handles a provider's payment notification from its
// exact headers and raw body. A nil error means "acknowledge": the payment
// is recorded (or there was nothing to record). Any error means "do not
// acknowledge", so the provider delivers again; nothing is changed by a
// notification that fails verification or does not match this merchant,
// or names an order paid through another provider.
//
// A genuine payment of the wrong amount is recorded in the ledger, moves the
// order to EXCEPTION, is logged at error level and acknowledged: a retry
// would not change it.
// Errors: INVALID_NOTIFICATION, NOTIFICATION_MISMATCH, ORDER_NOT_FOUND,
// STORE_UNAVAILABLE, PAYMENT_CHANNEL_UNAVAILABLE.
func (a *App) VerifyNotification(ctx context.Context, provider string, header http.Header, body []byte) error {
	ch, err := a.provider(provider)
	if err != nil {
		return channelError("verify notification", err)
	}
	n, err := ch.ParseNotification(ctx, header, body)
	switch {
	case errors.Is(err, ErrBadNotification):
		a.countRejected(ctx, header)
		return &Error{Kind: KindUnauthenticated, Code: CodeInvalidNotification, Message: "the notification failed verification", Err: err}
	case errors.Is(err, ErrChannelUnavailable):
		return channelError("verify notification", err)
	case err != nil:
		return fmt.Errorf("verify notification: %w", err)
	}
	tx := n.Transaction
	// Built only on the paths that log: With formats its attributes at once,
	// and a successful payment is logged by settlePaid instead.
	log := func() *slog.Logger {
		return a.log.With("notification_id", n.ID, "out_trade_no", tx.OutTradeNo, "transaction_id", tx.TransactionID)
	}
	if n.EventType != EventTransactionSuccess || tx.TradeState != TradeStateSuccess {
		log().WarnContext(ctx, "notification is not a successful payment; acknowledged without change", "event_type", n.EventType, "trade_state", tx.TradeState)
		return nil
	}
	if !contains(ch.AppIDs(), tx.AppID) || tx.MchID != ch.MchID() || tx.Currency != order.Currency || tx.TransactionID == "" {
		log().ErrorContext(ctx, "verified notification does not belong to this merchant; rejected", "appid", tx.AppID, "mchid", tx.MchID, "currency", tx.Currency)
		a.count(ctx, "", MetricVerificationFailures, 1)
		return Errorf(KindInvalid, CodeNotificationMismatch, "the notification's appid, mchid, currency or transaction id does not match this merchant")
	}
	if !validOrderID(tx.OutTradeNo) {
		log().ErrorContext(ctx, "verified notification names a malformed out_trade_no")
		return Errorf(KindNotFound, CodeOrderNotFound, "no order %q", tx.OutTradeNo)
	}
	o, err := a.store.Order(ctx, tx.OutTradeNo)
	if errors.Is(err, order.ErrNotFound) {
		log().ErrorContext(ctx, "verified notification for an unknown order")
		return Errorf(KindNotFound, CodeOrderNotFound, "no order %s", tx.OutTradeNo)
	} else if err != nil {
		return storeError("load order", err)
	}
	if oc, err := a.channelOf(o); err != nil || oc.Provider() != provider {
		log().ErrorContext(ctx, "verified notification names an order paid through another channel; rejected", "channel", o.ChannelName())
		a.count(ctx, "", MetricVerificationFailures, 1)
		return Errorf(KindInvalid, CodeNotificationMismatch, "the notification's order is not paid through %s", provider)
	}
	if tx.AppID != a.orderAppID(o) {
		log().ErrorContext(ctx, "verified notification names another appid than its order was paid under; rejected", "appid", tx.AppID)
		a.count(ctx, "", MetricVerificationFailures, 1)
		return Errorf(KindInvalid, CodeNotificationMismatch, "the notification's appid does not match the order's")
	}
	_, err = a.settlePaid(ctx, o, tx, "notification", n.ID)
	return err
}

// settlePaid records a payment WeChat Pay reports as successful and decides,
// once, what it does to the order: PAID when amount and currency match,
// EXCEPTION otherwise. It returns the order as decided.
func (a *App) settlePaid(ctx context.Context, o order.Order, tx Transaction, source, notificationID string) (order.Order, error) {
	now := a.now().UTC().Truncate(time.Millisecond)
	currency := tx.Currency
	if currency == "" && source == "query" {
		currency = order.Currency // a query reply may leave the only currency implicit
	}
	matched := tx.TotalFen == o.TotalFen && currency == order.Currency
	paidAt := tx.SuccessTime.UTC().Truncate(time.Millisecond)
	if paidAt.IsZero() {
		paidAt = now
	}
	// The ledger row comes first: whatever the order's fate, the money that
	// arrived is on record.
	err := a.store.RecordPayment(ctx, order.Payment{
		TransactionID: tx.TransactionID, App: o.AppID, OutTradeNo: o.ID, Channel: o.Channel, AppID: tx.AppID, MchID: tx.MchID,
		TradeState: tx.TradeState, TotalFen: tx.TotalFen, PayerTotalFen: tx.PayerTotalFen,
		Currency: currency, PayerOpenID: tx.PayerOpenID, SuccessTime: paidAt,
		Source: source, NotificationID: notificationID, Matched: matched, RecordedAt: now,
		Disposition: order.DispositionPending,
	})
	if err != nil && !errors.Is(err, order.ErrDuplicate) {
		return order.Order{}, storeError("record payment", err)
	}
	decision := order.Claim{
		Key: order.SettleKey(o.ID), OrderID: o.ID, Status: order.StatusPaid,
		TransactionID: tx.TransactionID, PaidAt: paidAt, DecidedAt: now,
	}
	if !matched {
		decision.Status = order.StatusException
		decision.Reason = fmt.Sprintf("paid %d %s, order total %d %s", tx.TotalFen, currency, o.TotalFen, o.Currency)
	}
	c, won, err := a.store.Claim(ctx, decision)
	if err != nil {
		return order.Order{}, storeError("claim settlement", err)
	}
	if !won && c.Status == order.StatusClosed {
		return a.latePayment(ctx, o, tx, decision, source)
	}
	disposition := order.DispositionSettled
	switch {
	case c.TransactionID != tx.TransactionID:
		disposition = order.DispositionExtra
	case c.Status == order.StatusException:
		disposition = order.DispositionException
	}
	// The order's attributes are passed with each line rather than through
	// Logger.With, which formats them at once even when nothing is logged;
	// the output is the same.
	log := func() *slog.Logger {
		return a.log.With("order_id", o.ID, "transaction_id", tx.TransactionID, "source", source)
	}
	switch {
	case won && c.Status == order.StatusPaid:
		a.log.LogAttrs(ctx, slog.LevelInfo, "order paid",
			slog.String("order_id", o.ID), slog.String("transaction_id", tx.TransactionID),
			slog.String("source", source), slog.Int64("total_fen", tx.TotalFen))
		a.countSettled(ctx, o.AppID, c.Status, tx.TotalFen)
	case won:
		log().ErrorContext(ctx, "paid amount does not match the order; order moved to EXCEPTION", "paid_fen", tx.TotalFen, "currency", currency, "order_total_fen", o.TotalFen)
		a.countSettled(ctx, o.AppID, c.Status, tx.TotalFen)
	case c.TransactionID != tx.TransactionID:
		// The order was already decided otherwise (closed, or paid by another
		// transaction). The payment is in the ledger; a person must look.
		log().ErrorContext(ctx, "payment arrived for an order already settled; recorded in the ledger", "settled_status", c.Status, "settled_transaction_id", c.TransactionID)
		a.count(ctx, o.AppID, MetricExtraPayments, 1)
	}
	after, err := a.apply(ctx, o, c)
	if err != nil {
		return order.Order{}, err
	}
	return after, a.dispose(ctx, tx.TransactionID, disposition, false)
}

// dispose records what a payment did to its order on its ledger row, once
// the order carries the decision: a row still pending after a crash is
// taken up again by reconcile's payment sweep.
func (a *App) dispose(ctx context.Context, transactionID string, d order.Disposition, unconfirmed bool) error {
	if err := a.store.SetPaymentDisposition(ctx, transactionID, d, unconfirmed); err != nil {
		return storeError("record payment disposition", err)
	}
	return nil
}

// latePayment handles a payment for an order already closed here. Money
// arrived, so it is never dropped: once WeChat Pay confirms the payment, the
// order is reopened as decided (PAID, or EXCEPTION for a wrong amount), once,
// by its own claim. Until WeChat Pay confirms it, or says for certain that
// the trade was not paid, the notification is not acknowledged, so WeChat
// Pay delivers it again (for about a day) and reconcile's payment sweep asks
// meanwhile.
func (a *App) latePayment(ctx context.Context, o order.Order, tx Transaction, decision order.Claim, source string) (order.Order, error) {
	log := a.log.With("order_id", o.ID, "transaction_id", tx.TransactionID, "source", source)
	if source != "query" {
		q, err := a.queryTrade(ctx, o)
		confirmed := err == nil && paidState(q.TradeState) && q.TransactionID == tx.TransactionID
		switch {
		case confirmed:
		case err == nil && notPaidState(q.TradeState):
			log.ErrorContext(ctx, "payment notification for a closed order that WeChat Pay says was not paid; recorded in the ledger only", "wechat_trade_state", q.TradeState)
			return o, a.dispose(ctx, tx.TransactionID, order.DispositionNotPaid, false)
		case err == nil && paidState(q.TradeState):
			log.ErrorContext(ctx, "payment notification for a closed order that WeChat Pay says another transaction paid; recorded in the ledger only", "wechat_transaction_id", q.TransactionID)
			return o, a.dispose(ctx, tx.TransactionID, order.DispositionNotPaid, false)
		default:
			state := q.TradeState
			if err != nil {
				state = "query failed: " + err.Error()
			}
			// Counted on the ledger row (unconfirmed_deliveries) by dispose.
			log.WarnContext(ctx, "payment notification for a closed order that WeChat Pay does not confirm yet; not acknowledged so it comes again",
				"wechat_trade_state", state, "metric", "late_payment_unconfirmed")
			a.count(ctx, o.AppID, MetricLatePaymentsUnconfirmed, 1)
			if derr := a.dispose(ctx, tx.TransactionID, order.DispositionUnconfirmed, true); derr != nil {
				return order.Order{}, derr
			}
			return order.Order{}, Errorf(KindUnavailable, CodeLatePaymentUnconfirmed,
				"order %s was closed and WeChat Pay does not confirm this payment yet; deliver it again", o.ID)
		}
	}
	decision.Key = order.LatePayKey(o.ID)
	c, won, err := a.store.Claim(ctx, decision)
	if err != nil {
		return order.Order{}, storeError("claim late payment", err)
	}
	if won {
		log.ErrorContext(ctx, "payment arrived for an order closed here; WeChat Pay confirms it, so the order is reopened", "status", c.Status, "total_fen", tx.TotalFen)
		a.count(ctx, o.AppID, MetricLatePayments, 1)
		a.countSettled(ctx, o.AppID, c.Status, tx.TotalFen)
	}
	after, err := a.apply(ctx, o, c)
	if err != nil {
		return order.Order{}, err
	}
	d := order.DispositionLate
	if c.TransactionID != tx.TransactionID {
		d = order.DispositionExtra
	}
	return after, a.dispose(ctx, tx.TransactionID, d, false)
}

// notPaidState reports whether a WeChat Pay trade state says for certain
// that the trade was not, and will not be, paid.
func notPaidState(s string) bool {
	return s == TradeStateClosed || s == TradeStateRevoked || s == TradeStatePayError
}

// paidState reports whether a WeChat Pay trade state means the buyer paid.
// REFUND means paid, then (partly) refunded.
func paidState(s string) bool { return s == TradeStateSuccess || s == TradeStateRefund }

// settleClosed decides, once, that an unpaid order is closed because WeChat
// Pay says so. If a payment decided the order first, that decision stands.
func (a *App) settleClosed(ctx context.Context, o order.Order, reason string) (order.Order, error) {
	now := a.now().UTC().Truncate(time.Millisecond)
	c, won, err := a.store.Claim(ctx, order.Claim{
		Key: order.SettleKey(o.ID), OrderID: o.ID, Status: order.StatusClosed, Reason: reason, DecidedAt: now,
	})
	if err != nil {
		return order.Order{}, storeError("claim settlement", err)
	}
	if won {
		a.log.InfoContext(ctx, "order closed", "order_id", o.ID, "reason", reason)
	}
	return a.apply(ctx, o, c)
}

// apply writes a claimed decision onto the order unless it is already there.
// Whoever finds a claim not yet applied (its winner died, say) applies it:
// the decision rolls forward and nothing is lost.
//
// A CLOSED decision may be written late, by a closer that stalled after
// winning its claim, on top of a late payment that has since reopened the
// order. So after writing CLOSED, apply looks for the order's late-pay
// claim and, if there is one, writes it again. The late payment inserts its
// claim before writing PAID, and the closer reads for it after writing
// CLOSED, so whichever write lands last, the order ends as the payment
// decided.
func (a *App) apply(ctx context.Context, o order.Order, c order.Claim) (order.Order, error) {
	if o.Status == c.Status && o.TransactionID == c.TransactionID {
		return o, nil
	}
	if err := order.Transition(o.Status, c.Status); err != nil {
		return order.Order{}, fmt.Errorf("apply claim %s to order %s: %w", c.Key, o.ID, err)
	}
	// The event first: an order never shows a decision whose event is not
	// recorded, and rolling the claim forward again inserts it at most once.
	ev, err := a.emit(ctx, c.Key, claimEventType(c.Status), withClaim(o, c), nil)
	if err != nil {
		return order.Order{}, err
	}
	if err := a.store.ApplyClaim(ctx, c); err != nil {
		return order.Order{}, storeError("apply settlement", err)
	}
	o = withClaim(o, c)
	a.deliverNow(ctx, ev)
	if c.Status != order.StatusClosed {
		return o, nil
	}
	late, err := a.store.ClaimByKey(ctx, order.LatePayKey(o.ID))
	if errors.Is(err, order.ErrNotFound) {
		return o, nil
	} else if err != nil {
		return order.Order{}, storeError("look for a late payment", err)
	}
	ev, err = a.emit(ctx, late.Key, claimEventType(late.Status), withClaim(o, late), nil)
	if err != nil {
		return order.Order{}, err
	}
	if err := a.store.ApplyClaim(ctx, late); err != nil {
		return order.Order{}, storeError("apply late payment", err)
	}
	a.deliverNow(ctx, ev)
	a.log.WarnContext(ctx, "a late CLOSED write met a late payment; the payment's decision was written again", "order_id", o.ID, "transaction_id", late.TransactionID)
	return withClaim(o, late), nil
}

// withClaim is o as the claim c leaves it.
func withClaim(o order.Order, c order.Claim) order.Order {
	o.Status = c.Status
	o.TransactionID = c.TransactionID
	if !c.PaidAt.IsZero() {
		paid := c.PaidAt
		o.PaidAt = &paid
	}
	o.UpdatedAt = c.DecidedAt
	return o
}

// reconcile asks WeChat Pay about an unpaid order and settles it to
// WeChat Pay's truth: paid (or paid wrongly) or closed.
func (a *App) reconcile(ctx context.Context, o order.Order) (order.Order, error) {
	tx, err := a.queryTrade(ctx, o)
	if errors.Is(err, ErrTradeNotFound) {
		return o, nil // never prepaid: WeChat Pay has nothing to say
	} else if err != nil {
		return order.Order{}, channelError("query "+o.ID, err)
	}
	if err := a.checkQueryReply(o, tx); err != nil {
		return order.Order{}, err
	}
	switch {
	case paidState(tx.TradeState):
		if tx.TransactionID == "" {
			return order.Order{}, fmt.Errorf("query %s: SUCCESS without a transaction id", o.ID)
		}
		return a.settlePaid(ctx, o, tx, "query", "")
	case tx.TradeState == TradeStateClosed:
		return a.settleClosed(ctx, o, "closed at WeChat Pay")
	default:
		return o, nil
	}
}

// checkQueryReply refuses a query reply about another merchant or order.
func (a *App) checkQueryReply(o order.Order, tx Transaction) error {
	ch, err := a.channelOf(o)
	if err != nil {
		return channelError("query "+o.ID, err)
	}
	if tx.AppID != a.orderAppID(o) || tx.MchID != ch.MchID() || tx.OutTradeNo != o.ID {
		return fmt.Errorf("query %s: reply names appid %q mchid %q out_trade_no %q", o.ID, tx.AppID, tx.MchID, tx.OutTradeNo)
	}
	return nil
}

// redecidePayment takes up a ledger row whose decision was never written
// (the function died between the ledger and the order) or that WeChat Pay
// did not confirm yet: it asks WeChat Pay and settles the order as for a
// query, which repairs an order closed here although WeChat Pay took its
// payment. It reports the order before and after; an error leaves the row
// for the next sweep.
func (a *App) redecidePayment(ctx context.Context, p order.Payment) (before, after order.Order, err error) {
	o, err := a.store.Order(ctx, p.OutTradeNo)
	if err != nil {
		return o, o, storeError("load order "+p.OutTradeNo, err)
	}
	q, err := a.queryTrade(ctx, o)
	if err != nil {
		return o, o, channelError("query "+o.ID, err)
	}
	switch {
	case paidState(q.TradeState) && q.TransactionID == p.TransactionID:
		if err := a.checkQueryReply(o, q); err != nil {
			return o, o, err
		}
		after, err := a.settlePaid(ctx, o, q, "query", "")
		return o, after, err
	case notPaidState(q.TradeState), paidState(q.TradeState):
		// Not paid at all, or paid by another transaction: this row moved
		// no money into this order.
		return o, o, a.dispose(ctx, p.TransactionID, order.DispositionNotPaid, false)
	default:
		return o, o, nil // WeChat Pay does not confirm it yet: ask again next run
	}
}

// orderAppID is the appid an order is paid under: its own, or its
// channel's default.
func (a *App) orderAppID(o order.Order) string {
	if o.WeChatAppID != "" {
		return o.WeChatAppID
	}
	if ch, err := a.channelOf(o); err == nil {
		return ch.AppID()
	}
	return ""
}
