package app

import (
	"context"
	"errors"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/payfn/payfn/shared/order"
)

// The signed server API: what a client app's server does for its buyers.
// Every call names its app (from the verified key, never from the body) and
// reaches only that app's records.

// Server-API error codes.
const (
	CodeInvalidBuyer       = "INVALID_BUYER"
	CodeInvalidAttach      = "INVALID_ATTACH"
	CodeInvalidPayer       = "INVALID_PAYER_OPENID"
	CodeInvalidChannel     = "INVALID_CHANNEL"
	CodeInvalidTitle       = "INVALID_TITLE"
	CodeInvalidPrice       = "INVALID_PRICE"
	CodeInvalidText        = "INVALID_TEXT"
	CodeInvalidRefundID    = "INVALID_REFUND_ID"
	CodeProductExists      = "PRODUCT_EXISTS"
	CodeChannelNotEnabled  = "CHANNEL_NOT_ENABLED"
	CodeInvalidWeChatAppID = "INVALID_WECHAT_APPID"
	CodeInvalidClientIP    = "INVALID_CLIENT_IP"
	CodeInvalidReturnURL   = "INVALID_RETURN_URL"
	CodeInvalidQuitURL     = "INVALID_QUIT_URL"
)

// MaxAttach is the most bytes of attach an order carries to its events.
const MaxAttach = 1024

var (
	buyerPattern    = regexp.MustCompile(`^[A-Za-z0-9_.:@+-]{1,64}$`)
	openIDPattern   = regexp.MustCompile(`^[A-Za-z0-9_-]{6,128}$`)
	refundIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)
)

// ProductInput is a product as a server creates it.
type ProductInput struct {
	ID, Title, Summary, Description, Image string
	PriceFen                               int64
	Active                                 *bool        // default true
	Split                                  *order.Split // profit-sharing rule (sharing.go); nil: none
}

// ProductUpdate changes a product; nil fields stay as they are.
type ProductUpdate struct {
	Title, Summary, Description, Image *string
	PriceFen                           *int64
	Active                             *bool
	Split                              *order.Split // replaces the rule
	RemoveSplit                        bool         // drops the rule; not with Split
}

func checkProduct(p order.Product) error {
	switch {
	case !productIDPattern.MatchString(p.ID):
		return Errorf(KindInvalid, CodeInvalidProductID, "id must be 1-64 characters of A-Z a-z 0-9 _ -")
	case strings.TrimSpace(p.Title) == "" || utf8.RuneCountInString(p.Title) > 127 || !utf8.ValidString(p.Title):
		return Errorf(KindInvalid, CodeInvalidTitle, "title must be 1-127 characters")
	case p.PriceFen < 1 || p.PriceFen > order.MaxTotalFen:
		return Errorf(KindInvalid, CodeInvalidPrice, "price_fen must be a whole number of fen from 1 to %d", order.MaxTotalFen)
	case utf8.RuneCountInString(p.Summary) > 200, utf8.RuneCountInString(p.Description) > 2000, len(p.Image) > 1024,
		!utf8.ValidString(p.Summary + p.Description + p.Image):
		return Errorf(KindInvalid, CodeInvalidText, "summary is at most 200 characters, description 2000, image 1024")
	}
	return validateSplit(p.Split, order.DefaultMaxSplitBP)
}

// CreateProduct adds a product to the app's catalogue.
// Errors: INVALID_PRODUCT_ID, INVALID_TITLE, INVALID_PRICE, INVALID_TEXT,
// INVALID_SPLIT, SPLIT_EXCEEDS_MAX_RATIO, PRODUCT_EXISTS, STORE_UNAVAILABLE.
func (a *App) CreateProduct(ctx context.Context, appID string, in ProductInput) (order.Product, error) {
	p := order.Product{ID: in.ID, AppID: appID, Title: in.Title, Summary: in.Summary, Description: in.Description,
		Image: in.Image, PriceFen: in.PriceFen, Active: in.Active == nil || *in.Active, Split: in.Split.Clone()}
	if err := checkProduct(p); err != nil {
		return order.Product{}, err
	}
	err := a.store.InsertProduct(ctx, p)
	if errors.Is(err, order.ErrDuplicate) {
		return order.Product{}, Errorf(KindConflict, CodeProductExists, "product %q exists; change it with PATCH", in.ID)
	} else if err != nil {
		return order.Product{}, storeError("insert product", err)
	}
	a.log.InfoContext(ctx, "product created", "app_id", appID, "product_id", p.ID, "price_fen", p.PriceFen, "split", p.Split != nil)
	return p, nil
}

// UpdateProduct changes a product's price, title, texts, split rule or
// whether it is on sale. Orders already created keep the snapshot they were
// priced with, split rule included.
// Errors: INVALID_PRODUCT_ID, PRODUCT_NOT_FOUND, INVALID_TITLE,
// INVALID_PRICE, INVALID_TEXT, INVALID_SPLIT, SPLIT_EXCEEDS_MAX_RATIO,
// STORE_UNAVAILABLE.
func (a *App) UpdateProduct(ctx context.Context, appID, id string, up ProductUpdate) (order.Product, error) {
	if !productIDPattern.MatchString(id) {
		return order.Product{}, Errorf(KindInvalid, CodeInvalidProductID, "id must be 1-64 characters of A-Z a-z 0-9 _ -")
	}
	if up.RemoveSplit && up.Split != nil {
		return order.Product{}, Errorf(KindInvalid, CodeInvalidSplit, "send split or remove_split, not both")
	}
	p, err := a.store.Product(ctx, appID, id)
	if errors.Is(err, order.ErrNotFound) {
		return order.Product{}, Errorf(KindNotFound, CodeProductNotFound, "no product %q", id)
	} else if err != nil {
		return order.Product{}, storeError("load product", err)
	}
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&p.Title, up.Title)
	set(&p.Summary, up.Summary)
	set(&p.Description, up.Description)
	set(&p.Image, up.Image)
	if up.PriceFen != nil {
		p.PriceFen = *up.PriceFen
	}
	if up.Active != nil {
		p.Active = *up.Active
	}
	switch {
	case up.RemoveSplit:
		p.Split = nil
	case up.Split != nil:
		p.Split = up.Split.Clone()
	}
	if err := checkProduct(p); err != nil {
		return order.Product{}, err
	}
	if err := a.store.ReplaceProduct(ctx, p); err != nil {
		return order.Product{}, storeError("save product", err)
	}
	a.log.InfoContext(ctx, "product updated", "app_id", appID, "product_id", p.ID, "price_fen", p.PriceFen, "active", p.Active, "split", p.Split != nil)
	return p, nil
}

// ListProducts lists the app's products, on sale or not.
// Errors: STORE_UNAVAILABLE.
func (a *App) ListProducts(ctx context.Context, appID string) ([]order.Product, error) {
	ps, err := a.store.Products(ctx, appID, false)
	if err != nil {
		return nil, storeError("list products", err)
	}
	if ps == nil {
		ps = []order.Product{}
	}
	return ps, nil
}

// ServiceOrderInput is a server's order for one of its buyers.
type ServiceOrderInput struct {
	ProductID   string
	Quantity    int64
	RequestID   string
	Buyer       string // the app's own reference for its buyer
	Attach      string // up to 1 KiB, carried to every event of the order
	Channel     string // default wechat_jsapi
	PayerOpenID string // wechat_jsapi: who pays, in the app's mini-program; alipay_mini: buyer_open_id
	WeChatAppID string // wechat_jsapi: one of the app's appids; default its first
	ClientIP    string // wechat_h5 (required), alipay_wap: the buyer's IP
	ReturnURL   string // wechat_h5, alipay_wap: where the browser goes after paying
	QuitURL     string // alipay_wap: where the browser goes on cancel
}

// ServiceOrder is an order as a server sees it, with the payment
// parameters its front end passes to the channel while it is unpaid.
type ServiceOrder struct {
	EventOrder
	Attach  string               `json:"attach"`
	Channel string               `json:"channel"`
	Refund  *order.RefundSummary `json:"refund,omitempty"`
	Payment *PaymentParams       `json:"payment,omitempty"`
}

func (a *App) serviceView(v OrderView, params *PaymentParams) ServiceOrder {
	return ServiceOrder{EventOrder: eventOrder(v.Order), Attach: v.Attach, Channel: v.ChannelName(), Refund: v.Refund, Payment: params}
}

// CreateServiceOrder creates an order for one of the app's buyers, priced
// from the app's product, and prepays it: the answer carries what the
// front end passes to wx.requestPayment, so the front end never holds a
// credential and cannot change price, app or buyer. Repeating request_id
// with the same order returns it again (created false).
// Errors: those of createOrder, INVALID_BUYER, INVALID_ATTACH,
// INVALID_CHANNEL, CHANNEL_NOT_ENABLED, INVALID_PAYER_OPENID,
// INVALID_WECHAT_APPID, and those of pay.
func (a *App) CreateServiceOrder(ctx context.Context, x order.App, in ServiceOrderInput) (ServiceOrder, bool, error) {
	switch {
	case !buyerPattern.MatchString(in.Buyer):
		return ServiceOrder{}, false, Errorf(KindInvalid, CodeInvalidBuyer, "buyer must be 1-64 characters of A-Z a-z 0-9 _ . : @ + -")
	case len(in.Attach) > MaxAttach || !utf8.ValidString(in.Attach):
		return ServiceOrder{}, false, Errorf(KindInvalid, CodeInvalidAttach, "attach is at most %d bytes of UTF-8", MaxAttach)
	}
	who, err := a.serviceBuyer(x, in)
	if err != nil {
		return ServiceOrder{}, false, err
	}
	o, created, err := a.createOrder(ctx, who,
		CreateOrderInput{ProductID: in.ProductID, Quantity: in.Quantity, RequestID: in.RequestID})
	if err != nil {
		return ServiceOrder{}, false, err
	}
	v := OrderView{Order: o}
	if o.Status != order.StatusNotPay || !a.now().Before(o.ExpiresAt) {
		return a.serviceView(v, nil), created, nil
	}
	res, err := a.pay(ctx, o)
	if err != nil {
		if created {
			// The order stands (and its event was sent); a retry with the
			// same request_id prepays it again.
			a.log.WarnContext(ctx, "order created but not prepaid", "order_id", o.ID, "err", err)
		}
		return ServiceOrder{}, false, err
	}
	if o2, lerr := a.store.Order(ctx, o.ID); lerr == nil {
		v.Order = o2
	}
	return a.serviceView(v, &res.Payment), created, nil
}

// serviceBuyer checks the channel and the fields it takes: each channel
// takes its own and refuses the others', so a caller's mistake is named
// rather than ignored.
func (a *App) serviceBuyer(x order.App, in ServiceOrderInput) (newOrder, error) {
	who := newOrder{app: x.ID, owner: in.Buyer, attach: in.Attach}
	if in.Channel == "" {
		in.Channel = ChannelWeChatJSAPI
	}
	if !contains(KnownChannels, in.Channel) {
		return who, Errorf(KindInvalid, CodeInvalidChannel, "channel must be one of %s", strings.Join(KnownChannels, ", "))
	}
	if _, ok := a.channels[in.Channel]; !ok || !contains(x.EnabledChannels(), in.Channel) {
		return who, Errorf(KindInvalid, CodeChannelNotEnabled, "channel %s is not enabled for this app; it may use %s", in.Channel, strings.Join(a.appChannels(x), ", "))
	}
	if in.Channel != ChannelWeChatJSAPI {
		who.channel = in.Channel
	}
	for _, f := range []struct {
		code, name string
		set        bool
		channels   []string
	}{
		{CodeInvalidPayer, "payer_openid", in.PayerOpenID != "", []string{ChannelWeChatJSAPI, ChannelAlipayMini}},
		{CodeInvalidWeChatAppID, "wechat_appid", in.WeChatAppID != "", []string{ChannelWeChatJSAPI}},
		{CodeInvalidClientIP, "client_ip", in.ClientIP != "", []string{ChannelWeChatH5, ChannelAlipayWap}},
		{CodeInvalidReturnURL, "return_url", in.ReturnURL != "", []string{ChannelWeChatH5, ChannelAlipayWap}},
		{CodeInvalidQuitURL, "quit_url", in.QuitURL != "", []string{ChannelAlipayWap}},
	} {
		if f.set && !contains(f.channels, in.Channel) {
			return who, Errorf(KindInvalid, f.code, "%s does not apply to channel %s", f.name, in.Channel)
		}
	}
	switch in.Channel {
	case ChannelWeChatJSAPI, ChannelAlipayMini:
		if !openIDPattern.MatchString(in.PayerOpenID) {
			return who, Errorf(KindInvalid, CodeInvalidPayer, "payer_openid must be the buyer's openid in the app's mini-program (6-128 characters of A-Z a-z 0-9 _ -)")
		}
		who.payer = in.PayerOpenID
	case ChannelWeChatH5:
		if in.ClientIP == "" {
			return who, Errorf(KindInvalid, CodeInvalidClientIP, "client_ip is required for %s: the buyer's IP address as your server saw it", in.Channel)
		}
	}
	if in.ClientIP != "" {
		ip, err := netip.ParseAddr(in.ClientIP)
		if err != nil || ip.Zone() != "" {
			return who, Errorf(KindInvalid, CodeInvalidClientIP, "client_ip must be an IPv4 or IPv6 address")
		}
		who.clientIP = ip.String()
	}
	if in.ReturnURL != "" && !webURL(in.ReturnURL) {
		return who, Errorf(KindInvalid, CodeInvalidReturnURL, "return_url must be an absolute http or https URL of at most %d bytes", maxPageURL)
	}
	if in.QuitURL != "" && !webURL(in.QuitURL) {
		return who, Errorf(KindInvalid, CodeInvalidQuitURL, "quit_url must be an absolute http or https URL of at most %d bytes", maxPageURL)
	}
	who.returnURL, who.quitURL = in.ReturnURL, in.QuitURL
	if in.Channel == ChannelWeChatJSAPI {
		wx := in.WeChatAppID
		if wx == "" && len(x.WeChatAppIDs) > 0 {
			wx = x.WeChatAppIDs[0]
		}
		if !contains(x.WeChatAppIDs, wx) {
			return who, Errorf(KindInvalid, CodeInvalidWeChatAppID, "wechat_appid must be one of the app's appids")
		}
		if wx != a.channel.AppID() {
			who.wechatAppID = wx // the channel's default is stored as for the default app
		}
	}
	// The payer of an H5 order is whoever opens the page; the order keeps
	// the app's buyer reference as its owner.
	return who, nil
}

// maxPageURL bounds return_url and quit_url: they travel in the provider's
// signed URL.
const maxPageURL = 512

// webURL reports whether s is an absolute http(s) URL a browser can be
// sent to.
func webURL(s string) bool {
	if len(s) > maxPageURL || !utf8.ValidString(s) {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil
}

// appChannels is what the app may use of what is configured here.
func (a *App) appChannels(x order.App) []string {
	var out []string
	for _, c := range x.EnabledChannels() {
		if _, ok := a.channels[c]; ok {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return []string{"none"}
	}
	return out
}

// GetServiceOrder returns one of the app's orders. With refresh, an unpaid
// order is first checked with the payment channel (at most once per query
// interval, whoever asks), so a lost notification is never the last word.
// Errors: INVALID_ORDER_ID, ORDER_NOT_FOUND, STORE_UNAVAILABLE,
// PAYMENT_CHANNEL_UNAVAILABLE (refresh only).
func (a *App) GetServiceOrder(ctx context.Context, appID, orderID string, refresh bool) (ServiceOrder, error) {
	o, err := a.appOrder(ctx, appID, "", orderID)
	if err != nil {
		return ServiceOrder{}, err
	}
	// Refreshes share queryOrder's per-order throttle: one question to the
	// channel per interval, whoever asks; the others read what it learnt.
	if refresh && o.Status == order.StatusNotPay && a.mayQuery(ctx, o.ID) {
		settled, err := a.reconcile(ctx, o)
		if err != nil {
			if rerr := a.store.ReleaseSlot(ctx, queryKey(o.ID), a.queryGap, a.now()); rerr != nil {
				a.log.WarnContext(ctx, "could not release the query slot", "order_id", o.ID, "err", rerr)
			}
			return ServiceOrder{}, err
		}
		o = settled
	}
	v, err := a.view(ctx, o)
	if err != nil {
		return ServiceOrder{}, err
	}
	return a.serviceView(v, nil), nil
}

// ServiceRefundInput is a server's refund of one of its orders.
type ServiceRefundInput struct {
	RefundID  string // the app's own id: its idempotency key
	AmountFen int64
	Reason    string
}

// ServiceRefund is a refund as a server sees it.
type ServiceRefund struct {
	RefundID string `json:"refund_id"`
	order.Refund
}

// RefundServiceOrder refunds part or all of one of the app's paid orders.
// The app's refund_id makes it idempotent; the outcome arrives as a
// refund.succeeded or refund.failed event.
// Errors: INVALID_REFUND_ID and those of Refund.
func (a *App) RefundServiceOrder(ctx context.Context, appID, orderID string, in ServiceRefundInput) (ServiceRefund, bool, error) {
	if !refundIDPattern.MatchString(in.RefundID) {
		return ServiceRefund{}, false, Errorf(KindInvalid, CodeInvalidRefundID, "refund_id must be 1-64 characters of A-Z a-z 0-9 _ . : -")
	}
	if _, err := a.appOrder(ctx, appID, "", orderID); err != nil {
		return ServiceRefund{}, false, err
	}
	r, created, err := a.refund(ctx, RefundInput{OrderID: orderID, OutRefundNo: order.ServiceRefundNo(appID, in.RefundID),
		AmountFen: in.AmountFen, Reason: in.Reason}, appID, in.RefundID)
	return ServiceRefund{RefundID: in.RefundID, Refund: r}, created, err
}
