// Package order is payfn's domain: products, orders, money in fen, the order
// status machine, and the records of payments and exactly-once decisions.
//
// It imports nothing of payfn's and no I/O package: no net/http, no database
// driver, no WeChat Pay SDK, no cloud runtime. Struct tags describe how the
// store and the HTTP layer spell the fields; they import nothing.
package order

import (
	"errors"
	"fmt"
	"time"
)

// Currency is the only currency a domestic WeChat Pay merchant charges in.
const Currency = "CNY"

// Limits on what a buyer may order. They bound the total far below int64
// overflow and below anything WeChat Pay would accept for one JSAPI order.
const (
	MaxQuantity = 999
	MaxTotalFen = 100_000_000 // 1,000,000.00 CNY
)

// Sentinel errors shared by the store and the use cases. Callers test them
// with errors.Is; implementations wrap them with context.
var (
	// ErrNotFound means the product, order or record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrDuplicate means a unique key (order id, idempotency key, claim key,
	// ledger transaction id) is already taken.
	ErrDuplicate = errors.New("duplicate key")
	// ErrInvalidTransition means the status machine forbids the change.
	ErrInvalidTransition = errors.New("invalid status transition")
)

// Product is something the merchant sells. Prices live only here, on the
// server: a client never sends one.
type Product struct {
	// ID is the product's id within its app; the store keys it by
	// ProductKey(AppID, ID).
	ID          string `bson:"-" json:"id"`
	AppID       string `bson:"app_id,omitempty" json:"-"`
	Title       string `bson:"title" json:"title"`
	Summary     string `bson:"summary" json:"summary"`
	Description string `bson:"description" json:"description"`
	Image       string `bson:"image" json:"image"`
	PriceFen    int64  `bson:"price_fen" json:"price_fen"`
	Active      bool   `bson:"active" json:"active"`
	// Split is the product's profit-sharing rule (sharing.go); nil: none.
	Split *Split `bson:"split,omitempty" json:"split,omitempty"`
}

// Validate reports whether the product can be stored and sold.
func (p Product) Validate() error {
	switch {
	case p.ID == "":
		return errors.New("product id is empty")
	case p.Title == "":
		return fmt.Errorf("product %s: title is empty", p.ID)
	case p.PriceFen < 1 || p.PriceFen > MaxTotalFen:
		return fmt.Errorf("product %s: price %d fen is outside 1..%d", p.ID, p.PriceFen, MaxTotalFen)
	}
	return nil
}

// Snapshot is the product as it was when the order was created, so a later
// price or title change never alters what the buyer agreed to pay for.
type Snapshot struct {
	Title    string `bson:"title" json:"title"`
	Summary  string `bson:"summary" json:"summary"`
	Image    string `bson:"image" json:"image"`
	PriceFen int64  `bson:"price_fen" json:"price_fen"`
}

// Order is one purchase. Its ID is the out_trade_no sent to WeChat Pay.
type Order struct {
	ID        string   `bson:"_id" json:"order_id"`
	AppID     string   `bson:"app_id,omitempty" json:"-"` // DefaultApp when read back empty
	Owner     string   `bson:"owner" json:"-"`            // the buyer: an openid, or an app's buyer reference
	RequestID string   `bson:"request_id" json:"request_id"`
	ProductID string   `bson:"product_id" json:"product_id"`
	Quantity  int64    `bson:"quantity" json:"quantity"`
	TotalFen  int64    `bson:"total_fen" json:"total_fen"`
	Currency  string   `bson:"currency" json:"currency"`
	Status    Status   `bson:"status" json:"status"`
	Product   Snapshot `bson:"product" json:"product"`

	// Attach is the app's text carried to every event of the order.
	Attach string `bson:"attach,omitempty" json:"-"`
	// PayerOpenID is who pays at WeChat Pay when it is not the owner (a
	// service app names its buyers its own way); WeChatAppID is the appid
	// the order is paid under when it is not the channel's default.
	PayerOpenID string `bson:"payer_openid,omitempty" json:"-"`
	WeChatAppID string `bson:"wechat_appid,omitempty" json:"-"`

	// Channel is how the order is paid (wechat_jsapi when empty: orders
	// stored before channels existed). ClientIP, ReturnURL and QuitURL are
	// what the H5 channels send with each prepay.
	Channel   string `bson:"channel,omitempty" json:"-"`
	ClientIP  string `bson:"client_ip,omitempty" json:"-"`
	ReturnURL string `bson:"return_url,omitempty" json:"-"`
	QuitURL   string `bson:"quit_url,omitempty" json:"-"`

	// Split is the product's split rule as it was when the order was
	// created (nil: none); the shareProfits job follows it once paid.
	Split *Split `bson:"split,omitempty" json:"-"`

	PrepayID        string    `bson:"prepay_id,omitempty" json:"-"`
	PrepayExpiresAt time.Time `bson:"prepay_expires_at,omitempty" json:"-"`
	TransactionID   string    `bson:"transaction_id,omitempty" json:"transaction_id,omitempty"`

	CreatedAt time.Time  `bson:"created_at" json:"created_at"`
	ExpiresAt time.Time  `bson:"expires_at" json:"expires_at"`
	PaidAt    *time.Time `bson:"paid_at,omitempty" json:"paid_at,omitempty"`
	UpdatedAt time.Time  `bson:"updated_at" json:"updated_at"`
}

// DefaultChannel is the channel of an order that names none.
const DefaultChannel = "wechat_jsapi"

// ChannelName is the order's channel, DefaultChannel when it names none.
func (o Order) ChannelName() string {
	if o.Channel == "" {
		return DefaultChannel
	}
	return o.Channel
}

// RequestKey is the order's idempotency key as stored: one buyer's request id
// never collides with another buyer's.
func (o Order) RequestKey() string { return AppRequestKey(o.AppID, o.Owner, o.RequestID) }

// RequestKey joins an owner and a request id into the unique idempotency key.
func RequestKey(owner, requestID string) string { return owner + "/" + requestID }

// AppRequestKey is RequestKey within an app. The default app's keys are
// unchanged; another app's start with its id and a colon, which no openid
// contains, so apps never share a key.
func AppRequestKey(appID, owner, requestID string) string {
	if appID == DefaultApp || appID == "" {
		return RequestKey(owner, requestID)
	}
	return appID + ":" + RequestKey(owner, requestID)
}

// Payer is the openid that pays the order at WeChat Pay.
func (o Order) Payer() string {
	if o.PayerOpenID != "" {
		return o.PayerOpenID
	}
	return o.Owner
}

// NewOrder prices an order from the product on the server. It returns an
// error for an inactive product or a quantity outside 1..MaxQuantity.
func NewOrder(id, owner, requestID string, p Product, quantity int64, now time.Time, ttl time.Duration) (Order, error) {
	if !p.Active {
		return Order{}, fmt.Errorf("product %s is not on sale", p.ID)
	}
	if quantity < 1 || quantity > MaxQuantity {
		return Order{}, fmt.Errorf("quantity %d is outside 1..%d", quantity, MaxQuantity)
	}
	if p.PriceFen < 1 || p.PriceFen > MaxTotalFen {
		return Order{}, fmt.Errorf("product %s has an invalid price", p.ID)
	}
	// Both factors are bounded above, so the product cannot overflow int64.
	total := p.PriceFen * quantity
	if total > MaxTotalFen {
		return Order{}, fmt.Errorf("total %d fen exceeds the limit of %d", total, MaxTotalFen)
	}
	now = now.UTC().Truncate(time.Millisecond) // BSON dates keep milliseconds
	return Order{
		ID:        id,
		AppID:     DefaultApp,
		Owner:     owner,
		RequestID: requestID,
		ProductID: p.ID,
		Quantity:  quantity,
		TotalFen:  total,
		Currency:  Currency,
		Status:    StatusNotPay,
		Product:   Snapshot{Title: p.Title, Summary: p.Summary, Image: p.Image, PriceFen: p.PriceFen},
		Split:     p.Split.Clone(),
		CreatedAt: now,
		ExpiresAt: now.Add(ttl),
		UpdatedAt: now,
	}, nil
}
