package app

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/webhook"
)

// Store persists products, orders, the payments ledger and claims.
// shared/store implements it on MongoDB. Every method wraps its errors with
// context; "missing" is order.ErrNotFound and "unique key taken" is
// order.ErrDuplicate, tested with errors.Is. Any other error means the store
// could not answer (it may be down) and the caller must not assume anything.
type Store interface {
	// Product returns appID's product with id, or order.ErrNotFound.
	Product(ctx context.Context, appID, id string) (order.Product, error)
	// InsertOrder writes a new order. It returns order.ErrDuplicate when the
	// order id or the (owner, request id) idempotency key is already taken.
	InsertOrder(ctx context.Context, o order.Order) error
	// Order returns the order with id (its out_trade_no), or order.ErrNotFound.
	Order(ctx context.Context, id string) (order.Order, error)
	// OrderByRequest returns the owner's order in appID created with
	// requestID, or order.ErrNotFound.
	OrderByRequest(ctx context.Context, appID, owner, requestID string) (order.Order, error)
	// SetPrepay records the prepay id WeChat Pay issued for the order and when
	// it stops being usable. It does not change the status.
	SetPrepay(ctx context.Context, orderID, prepayID string, expiresAt time.Time) error
	// RecordPayment inserts a ledger row keyed by its transaction id. It
	// returns order.ErrDuplicate when the row already exists.
	RecordPayment(ctx context.Context, p order.Payment) error
	// Payments lists the ledger rows of an order.
	Payments(ctx context.Context, outTradeNo string) ([]order.Payment, error)
	// Claim inserts c if no claim with c.Key exists and returns (c, true).
	// If one exists it returns that claim and false. Exactly one of any number
	// of concurrent callers with the same key wins.
	Claim(ctx context.Context, c order.Claim) (order.Claim, bool, error)
	// ApplyClaim writes the claim's decision onto its order: status,
	// transaction id, paid time. Applying the same claim again is harmless.
	ApplyClaim(ctx context.Context, c order.Claim) error

	// InsertRefund writes a new refund. It returns order.ErrDuplicate when
	// the refund number, or the order's refund slot, is already taken.
	InsertRefund(ctx context.Context, r order.Refund) error
	// Refund returns the refund numbered outRefundNo, or order.ErrNotFound.
	Refund(ctx context.Context, outRefundNo string) (order.Refund, error)
	// Refunds lists an order's refunds in slot order.
	Refunds(ctx context.Context, orderID string) ([]order.Refund, error)
	// ClaimRefund decides a refund's outcome once, as Claim does.
	ClaimRefund(ctx context.Context, d order.RefundDecision) (order.RefundDecision, bool, error)
	// ApplyRefund writes a decided outcome onto the refund record.
	ApplyRefund(ctx context.Context, d order.RefundDecision) error

	// Payment decisions and abuse limits.

	// ClaimByKey returns the claim with key, or order.ErrNotFound.
	ClaimByKey(ctx context.Context, key string) (order.Claim, error)
	// SetPaymentDisposition records what a ledger row's payment did to its
	// order (order.Disposition*). unconfirmed adds one to the row's count of
	// deliveries WeChat Pay's query did not confirm.
	SetPaymentDisposition(ctx context.Context, transactionID string, d order.Disposition, unconfirmed bool) error
	// UndecidedPayments lists up to limit ledger rows whose disposition is
	// still pending or unconfirmed, oldest first, after the given transaction
	// id in that order ("" for the start).
	UndecidedPayments(ctx context.Context, after string, limit int) ([]order.Payment, error)
	// CountOpenOrders counts owner's NOTPAY orders in appID that expire
	// after t.
	CountOpenOrders(ctx context.Context, appID, owner string, t time.Time) (int, error)
	// TakeSlot inserts key once per window; it reports whether this caller
	// took it (false: someone did within the window).
	TakeSlot(ctx context.Context, key string, window time.Duration, now time.Time) (bool, error)
	// ReleaseSlot gives back a slot taken in the window holding now.
	ReleaseSlot(ctx context.Context, key string, window time.Duration, now time.Time) error
	// PurgeSlots deletes slots whose window ended before t and says how many.
	PurgeSlots(ctx context.Context, t time.Time) (int64, error)

	// Scheduled-job bookkeeping (jobs.go), kept apart from orders and
	// refunds: only claims write an order's or a refund's status. A cursor
	// is (time, id) in the sweep's sort order; zero starts at the beginning.

	// ExpiredOrdersAfter lists up to limit NOTPAY orders that expired before
	// t, by (expires_at, id), after the cursor.
	ExpiredOrdersAfter(ctx context.Context, before, afterAt time.Time, afterID string, limit int) ([]order.Order, error)
	// UnpaidOrdersAfter lists up to limit NOTPAY orders created before t, by
	// (created_at, id), after the cursor.
	UnpaidOrdersAfter(ctx context.Context, createdBefore, afterAt time.Time, afterID string, limit int) ([]order.Order, error)
	// PendingRefundsAfter lists up to limit refunds still REFUNDING, by
	// (created_at, id), after the cursor.
	PendingRefundsAfter(ctx context.Context, afterAt time.Time, afterID string, limit int) ([]order.Refund, error)
	// JobCursor returns where the named sweep stopped (zero: at the start).
	JobCursor(ctx context.Context, name string) (at time.Time, afterID string, err error)
	// SetJobCursor records where the named sweep stopped.
	SetJobCursor(ctx context.Context, name string, at time.Time, afterID string) error
	// Backoffs returns the failure counts and next-check times of those of
	// keys that are backing off.
	Backoffs(ctx context.Context, keys []string) (failures map[string]int, next map[string]time.Time, err error)
	// SetBackoff records an item's failures in a row and when it is next due.
	SetBackoff(ctx context.Context, key string, failures int, next time.Time, reason string) error
	// ClearBackoff forgets an item's backoff.
	ClearBackoff(ctx context.Context, key string) error

	ServiceStore
	BillStore
	SharingStore // ports_sharing.go
}

// ServiceStore is what service mode adds: apps, their products, the events
// outbox, and insert-once keys with an expiry.
type ServiceStore interface {
	// Products lists appID's products by id (only those on sale when
	// activeOnly).
	Products(ctx context.Context, appID string, activeOnly bool) ([]order.Product, error)
	// InsertProduct writes a new product; order.ErrDuplicate when its app
	// has one with that id.
	InsertProduct(ctx context.Context, p order.Product) error
	// ReplaceProduct overwrites a product; order.ErrNotFound when absent.
	ReplaceProduct(ctx context.Context, p order.Product) error

	// InsertApp writes a new app; order.ErrDuplicate when the id is taken.
	InsertApp(ctx context.Context, a order.App) error
	// App returns the app with id, or order.ErrNotFound.
	App(ctx context.Context, id string) (order.App, error)
	// Apps lists every app by id.
	Apps(ctx context.Context) ([]order.App, error)
	// ReplaceApp overwrites an app; order.ErrNotFound when absent.
	ReplaceApp(ctx context.Context, a order.App) error
	// SetEndpointStatus enables or disables one endpoint of an app and
	// touches nothing else.
	SetEndpointStatus(ctx context.Context, appID, endpointID string, s order.EndpointStatus, reason string) error

	// InsertEvent writes an event; order.ErrDuplicate when its id exists.
	InsertEvent(ctx context.Context, e order.Event) error
	// Event returns the event with id, or order.ErrNotFound.
	Event(ctx context.Context, id string) (order.Event, error)
	// EventsOf lists appID's events newest first, older than the cursor
	// (zero: from the newest); orderID, when set, keeps that order's.
	EventsOf(ctx context.Context, appID, orderID string, beforeAt time.Time, beforeID string, limit int) ([]order.Event, error)
	// InsertDeliveries queues deliveries, leaving ones already queued.
	InsertDeliveries(ctx context.Context, ds []order.Delivery) error
	// DueDeliveries lists queued deliveries due at or before now.
	DueDeliveries(ctx context.Context, now time.Time, limit int) ([]order.Delivery, error)
	// Delivery returns a queued delivery, or order.ErrNotFound.
	Delivery(ctx context.Context, id string) (order.Delivery, error)
	// Deliveries lists an event's deliveries, queued and settled.
	Deliveries(ctx context.Context, eventID string) ([]order.Delivery, error)
	// RecordDeliveries stores attempts' outcomes: pending ones stay queued,
	// settled ones move to the delivered log.
	RecordDeliveries(ctx context.Context, ds []order.Delivery) error
	// MissingEvents returns those of ids no event has.
	MissingEvents(ctx context.Context, ids []string) ([]string, error)
	// OrdersCreatedAfter lists orders of every status created before t, by
	// (created_at, id), after the cursor.
	OrdersCreatedAfter(ctx context.Context, createdBefore, afterAt time.Time, afterID string, limit int) ([]order.Order, error)
	// TakeOnce inserts key unless it exists and reports whether this
	// caller did; the key lives until expireAt (and is purged after).
	TakeOnce(ctx context.Context, key string, expireAt time.Time) (bool, error)
	// TakeOnceMany is TakeOnce for many keys at once.
	TakeOnceMany(ctx context.Context, keys []string, expireAt time.Time) ([]bool, error)
	// OnceExpiry returns when a key TakeOnce inserted expires, or
	// order.ErrNotFound.
	OnceExpiry(ctx context.Context, key string) (time.Time, error)
}

// Metrics receives what the use cases decide, counted for the operator's
// dashboards and alarms (metrics.go names them); shared/metrics writes them
// as CloudWatch EMF lines. app is the client app in service mode, "" for
// none. It must be cheap and never fail; the default does nothing.
type Metrics interface {
	// Count adds n to the named counter.
	Count(ctx context.Context, app, name string, n int64)
	// Observe records one value, a latency in milliseconds say.
	Observe(ctx context.Context, app, name string, v float64)
}

// WebhookSender posts one signed webhook; shared/webhook implements it.
// It never returns an error: the outcome of the attempt is the result.
type WebhookSender interface {
	Send(ctx context.Context, url string, header http.Header, body []byte) webhook.Result
}

// Channel is one way to take money: WeChat Pay JSAPI or H5, Alipay wap or
// mini-program. An order records its channel's Name and everything after
// prepay (verify, reconcile, refund, close, jobs) dispatches on it.
// shared/wxpay and shared/alipay implement it; shared/channeltest holds the
// conformance suite each implementation passes against its simulator.
// Errors wrap ErrChannelUnavailable when the provider could not be reached
// or answered with a fault, and ErrTradeNotFound when it does not know the
// order.
type Channel interface {
	// Name is the channel an order records (Channel* constants).
	Name() string
	// Provider is whose notifications the channel reads (Provider*).
	// Channels of one provider share a merchant, a notify URL and a
	// notification format.
	Provider() string
	// Prepay creates the trade at the provider (a repeat with identical
	// parameters re-creates or re-issues it) and returns what the payer's
	// front end needs.
	Prepay(ctx context.Context, req PrepayRequest) (Prepaid, error)
	// QueryOrder asks the provider for the order's current state.
	QueryOrder(ctx context.Context, outTradeNo string) (Transaction, error)
	// CloseOrder closes an unpaid order at the provider. An order the
	// provider never saw wraps ErrTradeNotFound.
	CloseOrder(ctx context.Context, outTradeNo string) error
	// ParseNotification verifies a payment notification from its exact
	// headers and raw body and translates it (a paid trade is EventType
	// TRANSACTION.SUCCESS, TradeState SUCCESS). A notification that fails
	// verification returns an error wrapping ErrBadNotification; it never
	// panics.
	ParseNotification(ctx context.Context, header http.Header, body []byte) (Notification, error)
	// Refund asks the provider to refund part or all of a paid order. The
	// same out_refund_no refunds once however often it is sent.
	Refund(ctx context.Context, req RefundRequest) (RefundResult, error)
	// QueryRefund asks the provider for the state of the order's refund.
	QueryRefund(ctx context.Context, outTradeNo, outRefundNo string) (RefundResult, error)
	// AppID and MchID are the merchant identifiers notifications must carry
	// (for Alipay: app_id and seller_id). AppID is the default appid; AppIDs
	// lists every appid bound to the merchant, the default first. An order is
	// paid under one of them.
	AppID() string
	AppIDs() []string
	MchID() string
}

// Channel names, as orders record them. An order stored before channels
// existed has none and is ChannelWeChatJSAPI.
const (
	ChannelWeChatJSAPI = "wechat_jsapi" // WeChat Pay inside a mini-program (wx.requestPayment)
	ChannelWeChatH5    = "wechat_h5"    // WeChat Pay from a mobile browser (h5_url)
	ChannelAlipayWap   = "alipay_wap"   // Alipay from a mobile browser (alipay.trade.wap.pay)
	ChannelAlipayMini  = "alipay_mini"  // Alipay inside an Alipay mini-program (my.tradePay)
)

// Providers: whose notifications a channel reads.
const (
	ProviderWeChatPay = "wechatpay"
	ProviderAlipay    = "alipay"
)

// Prepaid is a channel's answer to prepay.
type Prepaid struct {
	// Ref is what a repeat may reuse instead of asking the provider again
	// (WeChat's prepay_id, Alipay's trade_no); "" when nothing can be.
	Ref string
	// Payment is what the front end passes to the provider.
	Payment PaymentParams
}

// Resigner is a channel whose payment parameters are signed afresh from a
// stored Ref (WeChat JSAPI's paySign over a prepay_id), so a repeated pay
// needs no call to the provider while the Ref is valid.
type Resigner interface {
	// PaymentParams signs the front end's parameters for ref, issued under
	// appID ("" for the channel's default appid).
	PaymentParams(appID, ref string) (PaymentParams, error)
}

// RefundNotifier is a channel whose provider notifies refunds on their own
// (WeChat Pay); Alipay's refunds arrive as payment notifications.
type RefundNotifier interface {
	// ParseRefundNotification verifies a refund notification exactly like
	// ParseNotification and decrypts its refund.
	ParseRefundNotification(ctx context.Context, header http.Header, body []byte) (RefundNotification, error)
}

// Channel errors, tested with errors.Is.
var (
	ErrChannelUnavailable = errors.New("payment channel unavailable")
	ErrTradeNotFound      = errors.New("trade not found at payment channel")
	ErrBadNotification    = errors.New("notification failed verification")
)

// PrepayRequest is what a channel sends to create a trade. appid, mchid
// and notify_url come from the channel's own configuration.
type PrepayRequest struct {
	AppID       string // one of the channel's AppIDs; "" for its default
	OutTradeNo  string
	Description string
	TotalFen    int64
	PayerOpenID string    // JSAPI: the payer's openid; alipay_mini: buyer_open_id
	TimeExpire  time.Time // sent in +08:00
	Attach      string
	ClientIP    string // H5 channels: the payer's IP as the buyer's browser sent it
	ReturnURL   string // H5 channels: where the buyer's browser goes after paying
	QuitURL     string // alipay_wap: where the buyer's browser goes on cancel
	// ProfitSharing asks the provider to freeze the payment for a later
	// split (WeChat Pay settle_info.profit_sharing).
	ProfitSharing bool
}

// PaymentParams is what the front end passes to the provider: for
// wechat_jsapi the arguments of wx.requestPayment, spelled as the
// mini-program API spells them; for wechat_h5 the h5_url to open; for
// alipay_wap the pay_url to open; for alipay_mini the trade_no for
// my.tradePay. A channel fills its own fields only.
type PaymentParams struct {
	AppID     string `json:"appId,omitempty"`
	TimeStamp string `json:"timeStamp,omitempty"`
	NonceStr  string `json:"nonceStr,omitempty"`
	Package   string `json:"package,omitempty"`
	SignType  string `json:"signType,omitempty"`
	PaySign   string `json:"paySign,omitempty"`

	H5URL   string `json:"h5_url,omitempty"`
	PayURL  string `json:"pay_url,omitempty"`
	TradeNo string `json:"trade_no,omitempty"`
}

// Transaction is WeChat Pay's view of an order, from a verified notification
// or a query. Amounts are fen.
type Transaction struct {
	AppID          string
	MchID          string
	OutTradeNo     string
	TransactionID  string
	TradeType      string
	TradeState     string // SUCCESS, NOTPAY, CLOSED, REFUND, ...
	TradeStateDesc string
	BankType       string
	Attach         string
	SuccessTime    time.Time
	PayerOpenID    string
	TotalFen       int64
	PayerTotalFen  int64
	Currency       string
	PayerCurrency  string
}

// Notification is a verified, decrypted payment notification.
type Notification struct {
	ID          string // WeChat's notification id
	EventType   string // TRANSACTION.SUCCESS for payments
	CreateTime  time.Time
	Transaction Transaction
}

// RefundRequest is what the channel sends to refund. notify_url comes from
// the channel's configuration.
type RefundRequest struct {
	OutTradeNo  string
	OutRefundNo string
	RefundFen   int64
	TotalFen    int64 // the order's paid total
	Reason      string
}

// WeChat Pay's refund states.
const (
	RefundStateSuccess    = "SUCCESS"
	RefundStateClosed     = "CLOSED"
	RefundStateProcessing = "PROCESSING"
	RefundStateAbnormal   = "ABNORMAL"
)

// RefundResult is WeChat Pay's view of a refund.
type RefundResult struct {
	MchID       string // only in notifications
	OutTradeNo  string
	OutRefundNo string
	RefundID    string
	Status      string // SUCCESS, CLOSED, PROCESSING, ABNORMAL
	SuccessTime time.Time
	RefundFen   int64
	TotalFen    int64
}

// RefundNotification is a verified, decrypted refund notification.
type RefundNotification struct {
	ID        string
	EventType string // REFUND.SUCCESS, REFUND.ABNORMAL, REFUND.CLOSED
	Refund    RefundResult
}

// Sessions issues and checks the signed session tokens that identify a
// mini-program user. shared/identity implements it.
type Sessions interface {
	// Issue returns a token for openid and when it expires.
	Issue(openid string) (token string, expires time.Time, err error)
	// Verify returns the openid a token was issued for. Every failure
	// (malformed, forged, expired) wraps ErrBadToken.
	Verify(token string) (openid string, err error)
}

// ErrBadToken means a session token is missing, malformed, forged or expired.
var ErrBadToken = errors.New("invalid session token")

// CodeExchanger turns a wx.login code into the user's openid
// (jscode2session). shared/identity implements it. An invalid, used or
// expired code wraps ErrBadLoginCode; a WeChat fault wraps
// ErrChannelUnavailable.
type CodeExchanger interface {
	Exchange(ctx context.Context, code string) (openid string, err error)
}

// ErrBadLoginCode means WeChat rejected the login code.
var ErrBadLoginCode = errors.New("login code rejected")

// Daily bill reconciliation (bills.go).

// BillSource is a payment channel's daily trade bill; shared/wxpay
// implements it for WeChat Pay. A channel without bills does not implement
// it, and the bill job reports so.
type BillSource interface {
	// TradeBill opens the bill of every trade of day (YYYY-MM-DD, China
	// Standard Time). Errors wrap ErrBillNotReady (not generated yet),
	// ErrChannelUnavailable, or carry the channel's refusal.
	TradeBill(ctx context.Context, day string) (BillStream, error)
}

// BillStream yields a bill's rows in file order, reading as it goes. Next
// returns io.EOF after the last row only when the whole file was read, was
// well formed and matched its digest; otherwise an error wrapping
// ErrBillDigest or ErrBillMalformed (or the transport's). Summary is the
// bill's own totals, valid after io.EOF.
type BillStream interface {
	Next() (BillRow, error)
	Summary() BillSummary
	Close() error
}

// BillRow is one row of a trade bill: a payment (TradeState SUCCESS) or a
// refund (TradeState REFUND). Amounts are fen.
type BillRow struct {
	Time          time.Time
	AppID         string
	MchID         string
	TransactionID string
	OutTradeNo    string
	TradeType     string
	TradeState    string // SUCCESS, REFUND, REVOKED
	Currency      string
	SettlementFen int64 // 应结订单金额
	TotalFen      int64 // 订单金额 (应结订单金额 when the bill has no such column)
	RefundID      string
	OutRefundNo   string
	RefundFen     int64  // 退款金额
	RefundAskFen  int64  // 申请退款金额 (退款金额 when absent)
	RefundStatus  string // SUCCESS, REFUNDCLOSE, PROCESSING, CHANGE
}

// BillSummary is a bill's own totals (its summary row), in fen.
type BillSummary struct {
	Rows          int   `bson:"rows" json:"rows"`
	SettlementFen int64 `bson:"settlement_fen" json:"settlement_fen"`
	RefundFen     int64 `bson:"refund_fen" json:"refund_fen"`
	TotalFen      int64 `bson:"total_fen" json:"total_fen"`
	RefundAskFen  int64 `bson:"refund_ask_fen" json:"refund_ask_fen"`
}

// Bill errors, tested with errors.Is.
var (
	ErrBillNotReady  = errors.New("bill not generated yet")
	ErrBillDigest    = errors.New("bill digest does not match")
	ErrBillMalformed = errors.New("bill malformed")
)

// BillStore is what the bill job reads and writes. Lookups by id return
// the records found, in no particular order, and skip missing ids. Windows
// are [from, to).
type BillStore interface {
	// PaymentsByID returns the ledger rows with these transaction ids.
	PaymentsByID(ctx context.Context, ids []string) ([]order.Payment, error)
	// OrdersByID returns the orders with these ids.
	OrdersByID(ctx context.Context, ids []string) ([]order.Order, error)
	// RefundsByID returns the refunds with these out_refund_no.
	RefundsByID(ctx context.Context, ids []string) ([]order.Refund, error)
	// ScanBillPayments calls fn with each ledger row paid in the window,
	// in no particular order, leaving out those WeChat Pay said were not
	// paid (order.DispositionNotPaid). One pass, bounded by ctx only: the
	// bill job reads a day at once.
	ScanBillPayments(ctx context.Context, from, to time.Time, fn func(order.Payment) error) error
	// ScanBillRefunds calls fn with each refund created in the window that
	// did not fail, likewise.
	ScanBillRefunds(ctx context.Context, from, to time.Time, fn func(order.Refund) error) error
	// BillReport decodes the stored report with id into v, or returns
	// order.ErrNotFound; SaveBillReport replaces it.
	BillReport(ctx context.Context, id string, v any) error
	SaveBillReport(ctx context.Context, id string, report any) error
}
