package order

import (
	"fmt"
	"time"
)

// Status is where an order is in its life.
type Status string

// The order statuses. NOTPAY is the only status a client's order is created
// in; every other status is reached only through a claimed decision.
const (
	StatusNotPay    Status = "NOTPAY"    // created, waiting for payment
	StatusPaid      Status = "PAID"      // WeChat Pay confirmed the full amount
	StatusClosed    Status = "CLOSED"    // will never be paid
	StatusException Status = "EXCEPTION" // paid, but not what the order asked for
)

// transitions lists, for each status, the statuses it may move to.
// CLOSED may still become PAID or EXCEPTION: a payment WeChat Pay confirms
// for an order closed here is money received, and is never dropped.
var transitions = map[Status][]Status{
	StatusNotPay:    {StatusPaid, StatusClosed, StatusException},
	StatusPaid:      {},
	StatusClosed:    {StatusPaid, StatusException},
	StatusException: {},
}

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	_, ok := transitions[s]
	return ok
}

// CanTransitionTo reports whether an order in status s may move to t.
func (s Status) CanTransitionTo(t Status) bool {
	for _, next := range transitions[s] {
		if next == t {
			return true
		}
	}
	return false
}

// Transition checks a move from s to t and returns ErrInvalidTransition,
// wrapped with both statuses, when it is not allowed.
func Transition(from, to Status) error {
	if !from.CanTransitionTo(to) {
		return fmt.Errorf("%s -> %s: %w", from, to, ErrInvalidTransition)
	}
	return nil
}

// Payment is one row of the payments ledger: a genuine WeChat Pay payment as
// verified, keyed by WeChat's transaction_id. It is written for every verified
// payment, matching or not, and doubles as the audit trail.
type Payment struct {
	TransactionID  string    `bson:"_id" json:"transaction_id"`
	App            string    `bson:"app_id,omitempty" json:"app_id,omitempty"` // the payfn app of the order
	OutTradeNo     string    `bson:"out_trade_no" json:"out_trade_no"`
	Channel        string    `bson:"channel,omitempty" json:"channel,omitempty"` // the order's; wechat_jsapi when empty
	AppID          string    `bson:"appid" json:"appid"`
	MchID          string    `bson:"mchid" json:"mchid"`
	TradeState     string    `bson:"trade_state" json:"trade_state"`
	TotalFen       int64     `bson:"total_fen" json:"total_fen"`
	PayerTotalFen  int64     `bson:"payer_total_fen" json:"payer_total_fen"`
	Currency       string    `bson:"currency" json:"currency"`
	PayerOpenID    string    `bson:"payer_openid" json:"payer_openid"`
	SuccessTime    time.Time `bson:"success_time" json:"success_time"`
	Source         string    `bson:"source" json:"source"` // "notification" or "query"
	NotificationID string    `bson:"notification_id,omitempty" json:"notification_id,omitempty"`
	Matched        bool      `bson:"matched" json:"matched"` // amount and currency equal the order's
	RecordedAt     time.Time `bson:"recorded_at" json:"recorded_at"`
	// Disposition is what this payment did to its order, so a reader of the
	// ledger tells the settling payment from an extra one without the logs.
	Disposition Disposition `bson:"disposition" json:"disposition"`
	// Unconfirmed counts deliveries for a closed order that WeChat Pay's
	// query did not (yet) confirm; each was answered 503 so it comes again.
	Unconfirmed int `bson:"unconfirmed_deliveries,omitempty" json:"unconfirmed_deliveries,omitempty"`
}

// Disposition is what a ledger row's payment did to its order.
type Disposition string

// The dispositions. Pending and unconfirmed rows are not decided yet:
// reconcile's payment sweep takes them up again.
const (
	DispositionPending     Disposition = "pending"     // recorded; its decision not yet written
	DispositionSettled     Disposition = "settled"     // this payment made the order PAID
	DispositionException   Disposition = "exception"   // this payment (wrong amount) made the order EXCEPTION
	DispositionLate        Disposition = "late"        // reopened an order closed here, as WeChat Pay confirmed
	DispositionExtra       Disposition = "extra"       // the order was already settled by another transaction: a person must refund it
	DispositionUnconfirmed Disposition = "unconfirmed" // for a closed order; WeChat Pay's query does not confirm it yet
	DispositionNotPaid     Disposition = "not_paid"    // for a closed order; WeChat Pay's query says the trade was not paid
)

// Decided reports whether d is final: the row needs no more work.
func (d Disposition) Decided() bool {
	return d != "" && d != DispositionPending && d != DispositionUnconfirmed
}

// Claim is an exactly-once decision. Its Key is unique in the store: the one
// caller whose insert wins performs the decision; every other caller finds the
// claim already there and rolls the same decision forward, so a crash between
// claiming and applying loses nothing.
type Claim struct {
	Key           string    `bson:"_id"`
	OrderID       string    `bson:"order_id"`
	Status        Status    `bson:"status"`
	TransactionID string    `bson:"transaction_id,omitempty"`
	PaidAt        time.Time `bson:"paid_at,omitempty"`
	Reason        string    `bson:"reason,omitempty"`
	DecidedAt     time.Time `bson:"decided_at"`
}

// SettleKey is the claim key for an order leaving NOTPAY: it is decided once,
// whatever decides it (a notification, a query, a close).
func SettleKey(orderID string) string { return "settle:" + orderID }

// LatePayKey is the claim key for a payment WeChat Pay confirms for an order
// already closed here: it reopens the order once.
func LatePayKey(orderID string) string { return "late-pay:" + orderID }
