package app

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/payfn/payfn/shared/order"
)

// DefaultOrderTTL is how long an order may wait for payment.
const DefaultOrderTTL = 30 * time.Minute

// Abuse-limit defaults (see Config).
const (
	DefaultMaxOpenOrders = 20
	DefaultQueryInterval = 5 * time.Second
)

// prepayReuseWindow is how long a prepay_id is reused. WeChat keeps one valid
// for two hours; stopping earlier leaves margin for a slow buyer.
const prepayReuseWindow = 110 * time.Minute

// Config is what the use cases need. Only the parts a function uses must be
// set: login needs Sessions and Codes; the order functions need Store and
// Channel (and Sessions to authenticate).
type Config struct {
	Store Store
	// Channel is the default channel (WeChat Pay JSAPI): the mini-program's
	// and the one an order naming none is paid through.
	Channel Channel
	// Channels are the other channels configured here (WeChat Pay H5,
	// Alipay); an app enables which of them its orders may use.
	Channels []Channel
	Sessions Sessions
	Codes    CodeExchanger

	// AdminKey authenticates the merchant's refund calls. Empty refuses
	// every admin call.
	AdminKey string
	// AdminKeyPrevious, when set, is accepted as well: during a rotation
	// both keys are valid, so callers switch one at a time.
	AdminKeyPrevious string

	// MaxOpenOrders caps a buyer's unpaid, unexpired orders, so one buyer
	// cannot spend the merchant's WeChat Pay quota or flood the jobs.
	// Default DefaultMaxOpenOrders; negative means no cap.
	MaxOpenOrders int
	// QueryInterval is how often queryOrder may ask WeChat Pay about one
	// order; in between it answers from the store. Default
	// DefaultQueryInterval; negative asks every time.
	QueryInterval time.Duration
	// Jobs tunes closeExpired and reconcile; the zero value is the defaults.
	Jobs JobOptions

	// ServiceKey turns service mode on (client apps, the signed server API,
	// webhooks): it derives the apps' API key secrets and seals their
	// webhook secrets. At least 32 bytes; nil leaves service mode off.
	ServiceKey []byte
	// ServiceKeyPrevious, during a rotation of the service key, keeps the
	// API keys derived from it valid and the webhook secrets it sealed
	// readable, until the apps have rotated theirs.
	ServiceKeyPrevious []byte
	// Webhooks configure delivery in service mode.
	Webhooks WebhookOptions
	// BoundAppIDs are the merchant's appids, for a function without the
	// channel (the operator's app administration); the channel's own list
	// wins when there is one.
	BoundAppIDs []string

	OrderTTL   time.Duration    // default DefaultOrderTTL
	Now        func() time.Time // default time.Now
	NewOrderID func() string    // default NewOrderID
	Logger     *slog.Logger     // default discards
	Metrics    Metrics          // default counts nothing
}

// App runs payfn's use cases.
type App struct {
	store    Store
	channel  Channel
	channels map[string]Channel // by name, the default channel included
	sessions Sessions
	codes    CodeExchanger
	adminKey [32]byte // SHA-256 of the admin key; zero when unset
	hasAdmin bool
	prevKey  [32]byte // SHA-256 of the previous admin key
	hasPrev  bool
	ttl      time.Duration
	maxOpen  int
	queryGap time.Duration
	jobs     JobOptions
	svc      *serviceKeys // nil: service mode is off
	bound    []string
	hooks    WebhookOptions
	now      func() time.Time
	newID    func() string
	log      *slog.Logger
	metrics  Metrics
}

// New returns an App. It does no I/O.
func New(cfg Config) *App {
	a := &App{
		store: cfg.Store, channel: cfg.Channel, sessions: cfg.Sessions, codes: cfg.Codes,
		ttl: cfg.OrderTTL, now: cfg.Now, newID: cfg.NewOrderID, log: cfg.Logger,
		maxOpen: cfg.MaxOpenOrders, queryGap: cfg.QueryInterval, jobs: cfg.Jobs,
	}
	a.channels = channelsByName(cfg.Channel, cfg.Channels)
	if a.maxOpen == 0 {
		a.maxOpen = DefaultMaxOpenOrders
	}
	if a.queryGap == 0 {
		a.queryGap = DefaultQueryInterval
	}
	if cfg.AdminKey != "" {
		a.adminKey, a.hasAdmin = sha256.Sum256([]byte(cfg.AdminKey)), true
		if cfg.AdminKeyPrevious != "" {
			a.prevKey, a.hasPrev = sha256.Sum256([]byte(cfg.AdminKeyPrevious)), true
		}
	}
	if a.ttl <= 0 {
		a.ttl = DefaultOrderTTL
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.newID == nil {
		a.newID = NewOrderID
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.metrics = cfg.Metrics; a.metrics == nil {
		a.metrics = noMetrics{}
	}
	a.hooks = cfg.Webhooks
	a.bound = cfg.BoundAppIDs
	if cfg.ServiceKey != nil {
		svc, err := newServiceKeys(cfg.ServiceKey)
		if err == nil && cfg.ServiceKeyPrevious != nil {
			svc.prev, err = newServiceKeys(cfg.ServiceKeyPrevious)
		}
		if err != nil {
			a.log.Error("service mode is off: the service key is unusable", "err", err)
		} else {
			a.svc = svc
		}
	}
	return a
}

// idAlphabet is Crockford's base32: 32 symbols, so a random byte maps onto
// it without bias, and no I/O/L/U to misread.
const idAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewOrderID returns a fresh out_trade_no: "PF", the UTC time to the second,
// and 12 random characters; 28 characters in all, within WeChat's 6-32 of
// [0-9A-Za-z_-|*], sortable by creation time and not guessable.
func NewOrderID() string {
	var b [12]byte
	rand.Read(b[:]) // never fails: the runtime aborts if the OS has no entropy
	for i := range b {
		b[i] = idAlphabet[b[i]%32]
	}
	return "PF" + time.Now().UTC().Format("20060102150405") + string(b[:])
}

var (
	productIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)
	loginCodePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
)

// LoginResult is a fresh session.
type LoginResult struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Login exchanges a wx.login code for a session token.
// Errors: INVALID_LOGIN_CODE, LOGIN_CODE_REJECTED, PAYMENT_CHANNEL_UNAVAILABLE.
func (a *App) Login(ctx context.Context, code string) (LoginResult, error) {
	if !loginCodePattern.MatchString(code) {
		return LoginResult{}, Errorf(KindInvalid, CodeInvalidLoginCode, "code must be the 1-128 character code from wx.login")
	}
	openid, err := a.codes.Exchange(ctx, code)
	switch {
	case errors.Is(err, ErrBadLoginCode):
		return LoginResult{}, &Error{Kind: KindUnauthenticated, Code: CodeLoginRejected, Message: "WeChat rejected the login code; call wx.login again", Err: err}
	case errors.Is(err, ErrChannelUnavailable):
		return LoginResult{}, &Error{Kind: KindUnavailable, Code: CodeChannelUnavailable, Message: "WeChat login is unavailable, try again", Err: err}
	case err != nil:
		return LoginResult{}, fmt.Errorf("exchange login code: %w", err)
	}
	token, exp, err := a.sessions.Issue(openid)
	if err != nil {
		return LoginResult{}, fmt.Errorf("issue session: %w", err)
	}
	return LoginResult{Token: token, ExpiresAt: exp}, nil
}

// Authenticate returns the openid of a session token.
// Errors: UNAUTHENTICATED.
func (a *App) Authenticate(token string) (string, error) {
	if token == "" {
		return "", Errorf(KindUnauthenticated, CodeUnauthenticated, "a session token is required: send Authorization: Bearer <token> from login")
	}
	openid, err := a.sessions.Verify(token)
	if err != nil {
		return "", &Error{Kind: KindUnauthenticated, Code: CodeUnauthenticated, Message: "the session token is invalid or expired; log in again", Err: err}
	}
	return openid, nil
}

// AuthenticateAdmin checks the merchant's admin key. A mini-program session
// token never passes: it is a different secret. Both sides are hashed first
// so the comparison takes the same time whatever the key's length. During a
// rotation the previous key passes too, and both are always compared, so
// timing does not tell which one matched.
// Errors: ADMIN_UNAUTHENTICATED.
func (a *App) AuthenticateAdmin(key string) error {
	got := sha256.Sum256([]byte(key))
	cur := subtle.ConstantTimeCompare(got[:], a.adminKey[:])
	prev := subtle.ConstantTimeCompare(got[:], a.prevKey[:])
	if a.hasPrev && prev == 1 {
		cur = 1
	}
	if !a.hasAdmin || key == "" || cur != 1 {
		return Errorf(KindUnauthenticated, CodeAdminUnauthorized, "send the merchant admin key in X-Payfn-Admin-Key")
	}
	return nil
}

// CreateOrderInput is everything a client may say about a new order. The
// price, status and owner are never among it.
type CreateOrderInput struct {
	ProductID string
	Quantity  int64
	RequestID string // idempotency key chosen by the client
}

// CreateOrder prices and stores a new NOTPAY order for caller. Repeating a
// request id with the same product and quantity returns the first order
// (created false); with different ones it is a conflict.
// Errors: INVALID_PRODUCT_ID, INVALID_QUANTITY, INVALID_REQUEST_ID,
// PRODUCT_NOT_FOUND, PRODUCT_NOT_ON_SALE, ORDER_TOO_LARGE,
// IDEMPOTENCY_CONFLICT, TOO_MANY_OPEN_ORDERS, STORE_UNAVAILABLE.
func (a *App) CreateOrder(ctx context.Context, caller string, in CreateOrderInput) (o order.Order, created bool, err error) {
	return a.createOrder(ctx, newOrder{app: order.DefaultApp, owner: caller}, in)
}

// newOrder is who an order is created for: its app, its buyer, and for a
// service app the payer's openid, the appid and the attach text.
type newOrder struct {
	app, owner, payer, wechatAppID, attach string
	// channel is "" for the default channel; clientIP, returnURL and
	// quitURL only for the H5 channels.
	channel, clientIP, returnURL, quitURL string
}

func (a *App) createOrder(ctx context.Context, who newOrder, in CreateOrderInput) (o order.Order, created bool, err error) {
	switch {
	case !productIDPattern.MatchString(in.ProductID):
		return order.Order{}, false, Errorf(KindInvalid, CodeInvalidProductID, "product_id must be 1-64 characters of A-Z a-z 0-9 _ -")
	case in.Quantity < 1 || in.Quantity > order.MaxQuantity:
		return order.Order{}, false, Errorf(KindInvalid, CodeInvalidQuantity, "quantity must be a whole number from 1 to %d", order.MaxQuantity)
	case !requestIDPattern.MatchString(in.RequestID):
		return order.Order{}, false, Errorf(KindInvalid, CodeInvalidRequestID, "request_id must be 1-64 characters of A-Z a-z 0-9 _ . : -")
	}
	if prev, found, err := a.replay(ctx, who, in); found || err != nil {
		return prev, false, err
	}
	p, err := a.store.Product(ctx, who.app, in.ProductID)
	if errors.Is(err, order.ErrNotFound) {
		return order.Order{}, false, Errorf(KindNotFound, CodeProductNotFound, "no product %q", in.ProductID)
	} else if err != nil {
		return order.Order{}, false, storeError("load product", err)
	}
	if !p.Active {
		return order.Order{}, false, Errorf(KindConflict, CodeProductNotOnSale, "product %q is not on sale", in.ProductID)
	}
	if err := a.checkOpenOrders(ctx, who); err != nil {
		return order.Order{}, false, err
	}
	o, err = order.NewOrder(a.newID(), who.owner, in.RequestID, p, in.Quantity, a.now(), a.ttl)
	if err != nil {
		return order.Order{}, false, &Error{Kind: KindInvalid, Code: CodeOrderTooLarge, Message: fmt.Sprintf("the order total is over the limit of %d fen", order.MaxTotalFen), Err: err}
	}
	o.AppID, o.PayerOpenID, o.WeChatAppID, o.Attach = who.app, who.payer, who.wechatAppID, who.attach
	o.Channel, o.ClientIP, o.ReturnURL, o.QuitURL = who.channel, who.clientIP, who.returnURL, who.quitURL
	err = a.store.InsertOrder(ctx, o)
	if errors.Is(err, order.ErrDuplicate) {
		// A concurrent request with the same request id won the insert.
		if prev, found, rerr := a.replay(ctx, who, in); found || rerr != nil {
			return prev, false, rerr
		}
		return order.Order{}, false, storeError("insert order", err)
	} else if err != nil {
		return order.Order{}, false, storeError("insert order", err)
	}
	a.log.InfoContext(ctx, "order created", "order_id", o.ID, "app_id", o.AppID, "product_id", o.ProductID, "quantity", o.Quantity, "total_fen", o.TotalFen)
	a.count(ctx, o.AppID, MetricOrdersCreated, 1)
	ev, err := a.ensureCreated(ctx, o)
	if err != nil {
		// The order stands; the dispatcher's sweep records its event.
		a.log.WarnContext(ctx, "order.created event not recorded yet; the dispatcher repairs it", "order_id", o.ID, "err", err)
	}
	a.deliverNow(ctx, ev)
	return o, true, nil
}

// checkOpenOrders refuses a new order while the caller has MaxOpenOrders
// unpaid ones that can still be paid. Concurrent requests each count before
// inserting, so a burst can pass the cap by its width: it bounds abuse, it
// is not an exact quota.
func (a *App) checkOpenOrders(ctx context.Context, who newOrder) error {
	if a.maxOpen < 0 {
		return nil
	}
	n, err := a.store.CountOpenOrders(ctx, who.app, who.owner, a.now())
	if err != nil {
		return storeError("count open orders", err)
	}
	if n >= a.maxOpen {
		return Errorf(KindTooMany, CodeTooManyOpenOrders, "you have %d unpaid orders; pay or let one expire before creating another (limit %d)", n, a.maxOpen)
	}
	return nil
}

// replay finds the caller's earlier order for the same request id.
func (a *App) replay(ctx context.Context, who newOrder, in CreateOrderInput) (order.Order, bool, error) {
	prev, err := a.store.OrderByRequest(ctx, who.app, who.owner, in.RequestID)
	if errors.Is(err, order.ErrNotFound) {
		return order.Order{}, false, nil
	} else if err != nil {
		return order.Order{}, false, storeError("load order by request id", err)
	}
	if prev.ProductID != in.ProductID || prev.Quantity != in.Quantity || prev.Attach != who.attach ||
		prev.PayerOpenID != who.payer || (who.wechatAppID != "" && prev.WeChatAppID != who.wechatAppID) ||
		prev.Channel != who.channel || prev.ReturnURL != who.returnURL || prev.QuitURL != who.quitURL {
		return order.Order{}, true, Errorf(KindConflict, CodeIdempotencyConflict, "request_id %q was already used for a different order", in.RequestID)
	}
	if _, err := a.ensureCreated(ctx, prev); err != nil {
		a.log.WarnContext(ctx, "order.created event not recorded yet; the dispatcher repairs it", "order_id", prev.ID, "err", err)
	}
	return prev, true, nil
}

// PayResult is what the mini-program passes to wx.requestPayment.
type PayResult struct {
	OrderID string        `json:"order_id"`
	Payment PaymentParams `json:"payment"`
}

// Pay returns signed wx.requestPayment parameters for the caller's own
// unpaid order. A repeat reuses the prepay_id while it is valid.
// Errors: INVALID_ORDER_ID, ORDER_NOT_FOUND, ORDER_NOT_PAYABLE, ORDER_EXPIRED,
// STORE_UNAVAILABLE, PAYMENT_CHANNEL_UNAVAILABLE, PAYMENT_CHANNEL_ERROR.
func (a *App) Pay(ctx context.Context, caller, orderID string) (PayResult, error) {
	o, err := a.ownOrder(ctx, caller, orderID)
	if err != nil {
		return PayResult{}, err
	}
	return a.pay(ctx, o)
}

// pay returns signed wx.requestPayment parameters for an unpaid order.
func (a *App) pay(ctx context.Context, o order.Order) (PayResult, error) {
	var err error
	now := a.now()
	if o.Status != order.StatusNotPay {
		return PayResult{}, Errorf(KindConflict, CodeOrderNotPayable, "order %s is %s and cannot be paid", o.ID, o.Status)
	}
	if !now.Before(o.ExpiresAt) {
		return PayResult{}, Errorf(KindConflict, CodeOrderExpired, "order %s expired at %s; create a new order", o.ID, o.ExpiresAt.Format(time.RFC3339))
	}
	ch, err := a.channelOf(o)
	if err != nil {
		return PayResult{}, channelError("prepay "+o.ID, err)
	}
	// A channel that signs its parameters locally reuses a stored ref
	// (JSAPI's prepay_id) while it is valid: no call to the provider.
	if rs, ok := capability[Resigner](ch); ok && o.PrepayID != "" && now.Before(o.PrepayExpiresAt) {
		params, err := rs.PaymentParams(o.WeChatAppID, o.PrepayID)
		if err != nil {
			return PayResult{}, fmt.Errorf("sign payment params for %s: %w", o.ID, err)
		}
		return PayResult{OrderID: o.ID, Payment: params}, nil
	}
	p, err := ch.Prepay(ctx, PrepayRequest{
		AppID:       o.WeChatAppID,
		OutTradeNo:  o.ID,
		Description: o.Product.Title,
		TotalFen:    o.TotalFen,
		PayerOpenID: o.Payer(),
		// Always the order's own expiry, so a repeated prepay carries
		// identical parameters and the provider re-issues instead of
		// refusing.
		TimeExpire: o.ExpiresAt,
		ClientIP:   o.ClientIP,
		ReturnURL:  o.ReturnURL,
		QuitURL:    o.QuitURL,
		// A split order's payment is frozen for the split (sharing.go).
		ProfitSharing: o.Split != nil,
	})
	if err != nil {
		return PayResult{}, a.prepayFailed(ctx, o, err)
	}
	if p.Ref != "" {
		if err := a.store.SetPrepay(ctx, o.ID, p.Ref, now.Add(prepayReuseWindow)); err != nil {
			return PayResult{}, storeError("save prepay id", err)
		}
	}
	params := p.Payment
	return PayResult{OrderID: o.ID, Payment: params}, nil
}

// prepayFailed explains a refused prepay. WeChat refuses a prepay for an
// order it already finished, so ask it and reconcile before answering.
func (a *App) prepayFailed(ctx context.Context, o order.Order, err error) error {
	if errors.Is(err, ErrChannelUnavailable) {
		return channelError("prepay "+o.ID, err)
	}
	if settled, rerr := a.reconcile(ctx, o); rerr == nil && settled.Status != order.StatusNotPay {
		return Errorf(KindConflict, CodeOrderNotPayable, "order %s is %s and cannot be paid", o.ID, settled.Status)
	}
	return channelError("prepay "+o.ID, err)
}

// OrderView is an order as its buyer sees it: with its refunds added up
// once it has any.
type OrderView struct {
	order.Order
	Refund *order.RefundSummary `json:"refund,omitempty"`
}

// QueryOrder returns the caller's own order. While it is unpaid it asks
// WeChat Pay and reconciles, so a lost notification is never the last word;
// if WeChat Pay cannot be asked, the stored order is returned as it is.
// Errors: INVALID_ORDER_ID, ORDER_NOT_FOUND, STORE_UNAVAILABLE.
func (a *App) QueryOrder(ctx context.Context, caller, orderID string) (OrderView, error) {
	o, err := a.ownOrder(ctx, caller, orderID)
	if err != nil {
		return OrderView{}, err
	}
	if o.Status == order.StatusNotPay && a.mayQuery(ctx, o.ID) {
		settled, err := a.reconcile(ctx, o)
		if err != nil {
			// What was learnt was not recorded: let the next call ask again.
			if rerr := a.store.ReleaseSlot(ctx, queryKey(o.ID), a.queryGap, a.now()); rerr != nil {
				a.log.WarnContext(ctx, "could not release the query slot", "order_id", o.ID, "err", rerr)
			}
			if e := ErrorOf(err); e.Code == CodeStoreUnavailable {
				return OrderView{}, e
			}
			a.log.WarnContext(ctx, "reconcile with WeChat Pay failed; answering from the store", "order_id", o.ID, "err", err)
		} else {
			o = settled
		}
	}
	return a.view(ctx, o)
}

// mayQuery reports whether queryOrder may ask WeChat Pay about orderID now:
// at most once per QueryInterval, whoever asks, so polling cannot spend the
// merchant's API quota. If the store cannot tell, it asks: a lost
// notification matters more than one extra query.
func (a *App) mayQuery(ctx context.Context, orderID string) bool {
	if a.queryGap < 0 {
		return true
	}
	took, err := a.store.TakeSlot(ctx, queryKey(orderID), a.queryGap, a.now())
	if err != nil {
		a.log.WarnContext(ctx, "query throttle unavailable; asking WeChat Pay anyway", "order_id", orderID, "err", err)
		return true
	}
	return took
}

func queryKey(orderID string) string { return "query:" + orderID }

// view adds an order's refund summary, derived from its refund records.
func (a *App) view(ctx context.Context, o order.Order) (OrderView, error) {
	v := OrderView{Order: o}
	if o.Status != order.StatusPaid && o.Status != order.StatusException {
		return v, nil
	}
	refunds, err := a.store.Refunds(ctx, o.ID)
	if err != nil {
		return OrderView{}, storeError("list refunds", err)
	}
	if len(refunds) > 0 {
		paid, err := a.paidTotal(ctx, o) // differs from the total for EXCEPTION
		if err != nil {
			return OrderView{}, err
		}
		s := order.Summarize(paid, refunds)
		v.Refund = &s
	}
	return v, nil
}

// ownOrder loads orderID and hides it unless caller owns it: someone else's
// order answers exactly like a missing one.
func (a *App) ownOrder(ctx context.Context, caller, orderID string) (order.Order, error) {
	return a.appOrder(ctx, order.DefaultApp, caller, orderID)
}

// appOrder loads orderID and hides it unless it is appID's and, when owner
// is set, owner's: anyone else's order answers exactly like a missing one.
func (a *App) appOrder(ctx context.Context, appID, owner, orderID string) (order.Order, error) {
	if !validOrderID(orderID) {
		return order.Order{}, Errorf(KindInvalid, CodeInvalidOrderID, "order_id must be the 6-32 character id createOrder returned")
	}
	o, err := a.store.Order(ctx, orderID)
	if errors.Is(err, order.ErrNotFound) || (err == nil && (o.AppID != appID || (owner != "" && o.Owner != owner))) {
		return order.Order{}, Errorf(KindNotFound, CodeOrderNotFound, "no order %s", orderID)
	} else if err != nil {
		return order.Order{}, storeError("load order", err)
	}
	return o, nil
}

// validOrderID reports whether s can be an out_trade_no: 6-32 of
// [0-9A-Za-z_|*-], WeChat's alphabet. Checked by hand: it runs on every
// notification, where the regexp it replaces cost 2 % of the CPU.
func validOrderID(s string) bool {
	if len(s) < 6 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c == '_', c == '|', c == '*', c == '-':
		default:
			return false
		}
	}
	return true
}
