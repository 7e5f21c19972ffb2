package wxpay

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/h5"

	"github.com/payfn/payfn/shared/app"
)

// H5 is the merchant's WeChat Pay H5 channel (app.ChannelWeChatH5): a buyer
// in a mobile browser outside WeChat opens the h5_url WeChat Pay returns,
// which hands over to the WeChat app to pay. It shares the JSAPI channel's
// merchant, client and keys: the same notify_url and notification format
// (provider WeChat Pay, trade_type MWEB), and H5 trades are queried,
// closed and refunded with the same APIs, so those calls are the
// merchant's. An h5_url lives five minutes, so prepay keeps no reference
// to reuse (no app.Resigner): each pay asks WeChat Pay again with the same
// parameters, which re-issues a fresh h5_url.
type H5 struct {
	// Profit-sharing splits are the merchant's too (sharing.go): an H5
	// payment prepaid with settle_info is split like a JSAPI one.
	app.ProfitSharer

	c  *Channel
	h5 *h5.H5ApiService
}

var (
	_ app.Channel        = (*H5)(nil)
	_ app.RefundNotifier = (*H5)(nil)
	_ app.ProfitSharer   = (*H5)(nil)
)

// H5 returns the merchant's H5 channel. It needs no settings of its own:
// WeChat Pay enables H5 per merchant (产品中心 → H5支付) and checks the
// buyer's page domain against the one configured there.
func (c *Channel) H5() *H5 {
	return &H5{ProfitSharer: c, c: c, h5: &h5.H5ApiService{Client: c.api.Client}}
}

// Name is the channel orders record: WeChat Pay H5.
func (h *H5) Name() string { return app.ChannelWeChatH5 }

// Provider is WeChat Pay: H5 notifications come to verifyPayment like
// JSAPI ones.
func (h *H5) Provider() string { return app.ProviderWeChatPay }

// maxClientIP is WeChat's limit for scene_info.payer_client_ip (an IPv6
// address in full).
const maxClientIP = 45

// Prepay creates the H5 order (POST /v3/pay/transactions/h5) under
// req.AppID (the default AppID when empty) and returns its h5_url, with
// &redirect_url= and the escaped req.ReturnURL appended when set (WeChat
// Pay sends the browser there after the payment, or when the buyer gives
// up; either way the page must ask payfn, not assume the outcome).
// req.ClientIP, the buyer's IP address, is required. Nothing is sent when
// the request is invalid or the appid is unbound (ErrUnboundAppID). The
// same out_trade_no with identical parameters returns a fresh h5_url;
// changed parameters fail with Code OUT_TRADE_NO_USED. Errors wrap
// app.ErrChannelUnavailable when WeChat Pay could not answer, or carry an
// *APIError (NO_AUTH when H5 payment is not enabled for the merchant).
func (h *H5) Prepay(ctx context.Context, req app.PrepayRequest) (app.Prepaid, error) {
	op := "h5 prepay " + req.OutTradeNo
	desc, err := checkPrepay("h5 prepay", req)
	if err != nil {
		return app.Prepaid{}, err
	}
	ip, ipErr := netip.ParseAddr(req.ClientIP)
	switch {
	case req.ClientIP == "":
		return app.Prepaid{}, fmt.Errorf("%s: the payer's client IP is required", op)
	case ipErr != nil || len(req.ClientIP) > maxClientIP:
		return app.Prepaid{}, fmt.Errorf("%s: client IP %q is not an IPv4 or IPv6 address", op, req.ClientIP)
	case req.ReturnURL != "" && !webURL(req.ReturnURL):
		return app.Prepaid{}, fmt.Errorf("%s: return URL is not an absolute http(s) URL", op)
	}
	appID, err := h.c.appID(req.AppID)
	if err != nil {
		return app.Prepaid{}, fmt.Errorf("%s: %w", op, err)
	}
	if err := h.c.ready(ctx); err != nil {
		return app.Prepaid{}, fmt.Errorf("%s: %w", op, err)
	}
	r := h5.PrepayRequest{
		Appid:       core.String(appID),
		Mchid:       core.String(h.c.cfg.MchID),
		Description: core.String(desc),
		OutTradeNo:  core.String(req.OutTradeNo),
		NotifyUrl:   core.String(h.c.cfg.NotifyURL),
		Amount:      &h5.Amount{Total: core.Int64(req.TotalFen), Currency: core.String("CNY")},
		SceneInfo: &h5.SceneInfo{
			PayerClientIp: core.String(ip.Unmap().String()),
			H5Info:        &h5.H5Info{Type: core.String("Wap")},
		},
	}
	r.TimeExpire, r.Attach = timeExpire(req.TimeExpire), optional(req.Attach)
	if req.ProfitSharing {
		r.SettleInfo = &h5.SettleInfo{ProfitSharing: core.Bool(true)}
	}
	resp, _, err := h.h5.Prepay(ctx, r)
	if err != nil {
		return app.Prepaid{}, classify(op, err)
	}
	if resp.H5Url == nil || !webURL(*resp.H5Url) {
		return app.Prepaid{}, fmt.Errorf("%s: %w: reply without a usable h5_url", op, app.ErrChannelUnavailable)
	}
	return app.Prepaid{Payment: app.PaymentParams{H5URL: withRedirect(*resp.H5Url, req.ReturnURL)}}, nil
}

// withRedirect appends redirect_url to an h5_url the way WeChat Pay
// documents it: "&redirect_url=" plus the URL-encoded return address.
func withRedirect(h5URL, returnURL string) string {
	if returnURL == "" {
		return h5URL
	}
	sep := "&"
	if !strings.Contains(h5URL, "?") {
		sep = "?"
	}
	return h5URL + sep + "redirect_url=" + url.QueryEscape(returnURL)
}

// webURL reports whether s is an absolute http or https URL.
func webURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// QueryOrder asks WeChat Pay for the order (the merchant's query; H5
// trades report trade_type MWEB). See Channel.QueryOrder.
func (h *H5) QueryOrder(ctx context.Context, outTradeNo string) (app.Transaction, error) {
	return h.c.QueryOrder(ctx, outTradeNo)
}

// CloseOrder closes an unpaid order. See Channel.CloseOrder.
func (h *H5) CloseOrder(ctx context.Context, outTradeNo string) error {
	return h.c.CloseOrder(ctx, outTradeNo)
}

// ParseNotification verifies a payment notification exactly as the
// merchant's JSAPI channel does: one notify_url serves both.
func (h *H5) ParseNotification(ctx context.Context, header http.Header, body []byte) (app.Notification, error) {
	return h.c.ParseNotification(ctx, header, body)
}

// ParseRefundNotification verifies a refund notification. See
// Channel.ParseRefundNotification.
func (h *H5) ParseRefundNotification(ctx context.Context, header http.Header, body []byte) (app.RefundNotification, error) {
	return h.c.ParseRefundNotification(ctx, header, body)
}

// Refund refunds part or all of a paid order. See Channel.Refund.
func (h *H5) Refund(ctx context.Context, req app.RefundRequest) (app.RefundResult, error) {
	return h.c.Refund(ctx, req)
}

// QueryRefund asks for a refund by out_refund_no. See Channel.QueryRefund.
func (h *H5) QueryRefund(ctx context.Context, outTradeNo, outRefundNo string) (app.RefundResult, error) {
	return h.c.QueryRefund(ctx, outTradeNo, outRefundNo)
}

// AppID, AppIDs and MchID are the merchant's.
func (h *H5) AppID() string    { return h.c.AppID() }
func (h *H5) AppIDs() []string { return h.c.AppIDs() }
func (h *H5) MchID() string    { return h.c.MchID() }
