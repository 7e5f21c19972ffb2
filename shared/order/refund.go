package order

import (
	"fmt"
	"time"
)

// ChannelName is the refund's channel, DefaultChannel when it names none.
func (r Refund) ChannelName() string {
	if r.Channel == "" {
		return DefaultChannel
	}
	return r.Channel
}

// RefundStatus is where a refund is in its life.
type RefundStatus string

// Refund statuses. REFUNDING is the only one a refund starts in; the others
// are final and reached once, through a claim. WeChat Pay's ABNORMAL is not
// final (a person resolves it, and it may still succeed), so such a refund
// stays REFUNDING.
const (
	RefundPending   RefundStatus = "REFUNDING"     // sent to WeChat Pay, outcome not known yet
	RefundSucceeded RefundStatus = "REFUNDED"      // the money went back
	RefundFailed    RefundStatus = "REFUND_FAILED" // WeChat Pay closed it; the amount is free again
)

// Valid reports whether s is a known refund status.
func (s RefundStatus) Valid() bool {
	switch s {
	case RefundPending, RefundSucceeded, RefundFailed:
		return true
	}
	return false
}

// Final reports whether the refund's outcome is decided.
func (s RefundStatus) Final() bool { return s.Valid() && s != RefundPending }

// Refund is money going back to the buyer of a paid order. Its ID is the
// merchant's out_refund_no, so asking twice refunds once. Slot numbers an
// order's refunds 1, 2, 3…; (order, slot) is unique, so refunds of one
// order are admitted one at a time and their sum can be checked exactly.
type Refund struct {
	ID          string       `bson:"_id" json:"out_refund_no"`
	AppID       string       `bson:"app_id,omitempty" json:"-"`     // DefaultApp when read back empty
	RequestID   string       `bson:"request_id,omitempty" json:"-"` // a service app's own refund id
	OrderID     string       `bson:"order_id" json:"order_id"`
	Channel     string       `bson:"channel,omitempty" json:"-"` // the order's; wechat_jsapi when empty
	Slot        int          `bson:"slot" json:"-"`
	AmountFen   int64        `bson:"amount_fen" json:"amount_fen"`
	Reason      string       `bson:"reason,omitempty" json:"reason,omitempty"`
	Status      RefundStatus `bson:"status" json:"status"`
	RefundID    string       `bson:"refund_id,omitempty" json:"refund_id,omitempty"` // WeChat's
	CreatedAt   time.Time    `bson:"created_at" json:"created_at"`
	UpdatedAt   time.Time    `bson:"updated_at" json:"updated_at"`
	SucceededAt *time.Time   `bson:"succeeded_at,omitempty" json:"succeeded_at,omitempty"`
}

// Holds reports whether the refund counts against the order's paid total:
// every refund does unless WeChat Pay closed it.
func (r Refund) Holds() bool { return r.Status != RefundFailed }

// RefundDecision is a refund's final outcome, decided once by a claim keyed
// RefundKey(ID) and then applied to the refund record.
type RefundDecision struct {
	Key         string       `bson:"_id"`
	RefundNo    string       `bson:"out_refund_no"`
	OrderID     string       `bson:"order_id"`
	Status      RefundStatus `bson:"refund_status"`
	RefundID    string       `bson:"refund_id,omitempty"`
	SucceededAt time.Time    `bson:"succeeded_at,omitempty"`
	DecidedAt   time.Time    `bson:"decided_at"`
}

// RefundKey is the claim key of a refund's final outcome.
func RefundKey(outRefundNo string) string { return "refund:" + outRefundNo }

// RefundSummary is an order's refunds added up: derived from the refund
// records whenever it is read, so no counter on the order can drift.
type RefundSummary struct {
	RefundedFen int64  `json:"refunded_fen"`            // succeeded
	PendingFen  int64  `json:"pending_fen"`             // still REFUNDING
	Status      string `json:"refund_status,omitempty"` // REFUNDING, REFUNDED, PARTIALLY_REFUNDED
}

// Summarize adds up an order's refunds against its total.
func Summarize(total int64, refunds []Refund) RefundSummary {
	var s RefundSummary
	for _, r := range refunds {
		switch r.Status {
		case RefundSucceeded:
			s.RefundedFen += r.AmountFen
		case RefundPending:
			s.PendingFen += r.AmountFen
		}
	}
	switch {
	case s.PendingFen > 0:
		s.Status = "REFUNDING"
	case s.RefundedFen > 0 && s.RefundedFen >= total:
		s.Status = "REFUNDED"
	case s.RefundedFen > 0:
		s.Status = "PARTIALLY_REFUNDED"
	}
	return s
}

// CheckRefund reports whether amount can be refunded from a paid total of
// which held is already taken by earlier refunds.
func CheckRefund(total, held, amount int64) error {
	if amount < 1 {
		return fmt.Errorf("refund amount %d fen is not positive", amount)
	}
	if held+amount > total {
		return fmt.Errorf("refund of %d fen would bring refunds to %d fen, above the paid %d fen", amount, held+amount, total)
	}
	return nil
}
