package app

import (
	"context"
	"time"

	"github.com/payfn/payfn/shared/order"
)

// Profit sharing (sharing.go): what the shareProfits job needs from the
// store and from the channel.

// SharingStore keeps the split tasks and their claims. Tasks are
// bookkeeping, rewritten freely; plans, outcomes and returns are claims,
// inserted once under their key (order.ErrDuplicate tells a loser, who
// then reads the winner's).
type SharingStore interface {
	// PaidSplitOrders lists up to limit PAID orders carrying a split rule
	// whose decision was written in [from, to), by (updated_at, id) after
	// the cursor.
	PaidSplitOrders(ctx context.Context, from, to, afterAt time.Time, afterID string, limit int) ([]order.Order, error)
	// RefundsCreated lists up to limit refunds created in [from, to), by
	// (created_at, id) after the cursor.
	RefundsCreated(ctx context.Context, from, to, afterAt time.Time, afterID string, limit int) ([]order.Refund, error)

	// InsertSplitTask writes a new task; order.ErrDuplicate when the order
	// has one.
	InsertSplitTask(ctx context.Context, t order.SplitTask) error
	// SplitTask returns an order's task, or order.ErrNotFound.
	SplitTask(ctx context.Context, orderID string) (order.SplitTask, error)
	// SaveSplitTask overwrites a task.
	SaveSplitTask(ctx context.Context, t order.SplitTask) error
	// DueSplitTasks lists up to limit open tasks due at or before now, by
	// (due_at, id) after the cursor.
	DueSplitTasks(ctx context.Context, now, afterAt time.Time, afterID string, limit int) ([]order.SplitTask, error)

	// InsertReturnTask, SaveReturnTask and DueReturnTasks are the same for
	// returns after refunds.
	InsertReturnTask(ctx context.Context, t order.ReturnTask) error
	SaveReturnTask(ctx context.Context, t order.ReturnTask) error
	DueReturnTasks(ctx context.Context, now, afterAt time.Time, afterID string, limit int) ([]order.ReturnTask, error)

	// ClaimSharing inserts the claim doc under key (the doc's _id) unless
	// one exists, and reports whether this caller did; either way out
	// receives the claim as stored.
	ClaimSharing(ctx context.Context, key string, doc, out any) (bool, error)
	// SharingClaim decodes the claim under key into out, or returns
	// order.ErrNotFound.
	SharingClaim(ctx context.Context, key string, out any) error
}

// ProfitSharer is a channel that can split a payment (WeChat Pay's
// 分账); shared/wxpay implements it. A channel without it (Alipay) leaves
// split orders unsplit, and the job reports each one as failed. Errors wrap
// ErrChannelUnavailable when the provider could not answer; a refusal
// carries the provider's code (wxpay.Code).
type ProfitSharer interface {
	// AddReceiver adds (or re-adds: harmless) a receiver to the merchant's
	// relations, under appID ("" for the default) for a personal openid.
	AddReceiver(ctx context.Context, appID string, r order.Receiver) error
	// CreateSplit asks the provider to split a payment. The same
	// out_order_no splits once however often it is sent.
	CreateSplit(ctx context.Context, req SplitRequest) (SplitResult, error)
	// QuerySplit asks for a split (or an unfreeze) by its out_order_no.
	// An unknown one wraps ErrTradeNotFound.
	QuerySplit(ctx context.Context, transactionID, outOrderNo string) (SplitResult, error)
	// UnfreezeSplit releases what is left of a payment to the merchant.
	UnfreezeSplit(ctx context.Context, transactionID, outOrderNo, description string) (SplitResult, error)
	// UnsplitAmount is what is left to split of a payment.
	UnsplitAmount(ctx context.Context, transactionID string) (int64, error)
	// CreateReturn takes part of a merchant receiver's share back.
	CreateReturn(ctx context.Context, req ReturnRequest) (ReturnResult, error)
	// QueryReturn asks for a return; an unknown one wraps ErrTradeNotFound.
	QueryReturn(ctx context.Context, outOrderNo, outReturnNo string) (ReturnResult, error)
}

// Split states and receiver results as WeChat Pay reports them.
const (
	SplitStateProcessing = "PROCESSING"
	SplitStateFinished   = "FINISHED"
	ShareResultPending   = "PENDING"
	ShareResultSuccess   = "SUCCESS"
	ShareResultClosed    = "CLOSED"
	ReturnResultSucceded = "SUCCESS"
	ReturnResultFailed   = "FAILED"
	ReturnResultPending  = "PROCESSING"
)

// SplitRequest is one split of a payment.
type SplitRequest struct {
	AppID           string // for personal receivers; "" for the default
	TransactionID   string
	OutOrderNo      string
	Shares          []order.Share
	UnfreezeUnsplit bool
}

// SplitResult is the provider's view of a split or an unfreeze.
type SplitResult struct {
	OrderID       string // the provider's
	OutOrderNo    string
	TransactionID string
	State         string // PROCESSING, FINISHED
	Results       []order.ShareResult
}

// ReturnRequest returns part of a merchant receiver's share.
type ReturnRequest struct {
	OutOrderNo  string // the split's
	OutReturnNo string
	ReturnMchID string
	AmountFen   int64
	Description string
}

// ReturnResult is the provider's view of a return.
type ReturnResult struct {
	ReturnID    string
	OutReturnNo string
	AmountFen   int64
	Result      string // PROCESSING, SUCCESS, FAILED
	FailReason  string
}
