package setup_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/alipaysim"
	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/config"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/setup"
)

// The channels tests run the whole stack (setup.NewStack: the real store,
// the real wechatpay-go and Alipay clients) with every channel configured,
// WeChat Pay against paysim and Alipay against alipaysim, both on loopback.

const testAlipayAppID = "2021000000000001"

var allChannels = []string{app.ChannelWeChatJSAPI, app.ChannelWeChatH5, app.ChannelAlipayWap, app.ChannelAlipayMini}

// startAlipaySim starts the Alipay simulator with quick notification
// retries.
func startAlipaySim(t testing.TB) *alipaysim.Server {
	t.Helper()
	sim, err := alipaysim.New(alipaysim.Options{
		AppID: testAlipayAppID, MerchantName: "payfn test shop",
		RetrySchedule: []time.Duration{20 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

// withChannels configures every channel, Alipay at ali.
func withChannels(ali *alipaysim.Server) func(*config.Config) {
	return func(c *config.Config) {
		k := ali.Keys()
		c.Channels = allChannels
		c.Alipay = config.Alipay{
			AppID: k.AppID, SellerID: k.SellerID, AppPrivateKeyPEM: k.AppPrivateKeyPEM, PublicKeyPEM: k.AlipayPublicKeyPEM,
			GatewayURL: ali.GatewayURL(), NotifyURL: strings.TrimSuffix(c.NotifyURL, "/wechatpay") + "/alipay",
			MiniAppID: k.AppID, Timeout: 5 * time.Second,
		}
	}
}

// newChannelsHarness is a service-mode harness with every channel on.
func newChannelsHarness(t *testing.T, opts setup.Options) (*harness, *alipaysim.Server) {
	t.Helper()
	ali := startAlipaySim(t)
	h := newHarnessWith(t, opts, func(c *config.Config) {
		c.ServiceKey = testServiceKey
		c.WebhookAllowPrivate = true
	}, withChannels(ali))
	return h, ali
}

// channelShop is an app with every channel enabled and a product.
func channelShop(t *testing.T, h *harness, id string, price int64) *client {
	t.Helper()
	c := h.newApp(id)
	h.admin(http.MethodPatch, "/admin/apps/"+id, map[string]any{"channels": allChannels}).want(t, 200, "")
	c.product("tea", price)
	return c
}

// channelOrder creates an order through the server API with the fields
// each channel takes.
func (c *client) channelOrder(channel, buyer, requestID string) reply {
	c.h.t.Helper()
	body := map[string]any{"product_id": "tea", "quantity": 1, "request_id": requestID, "buyer": buyer, "channel": channel}
	switch channel {
	case app.ChannelWeChatJSAPI:
		body["payer_openid"] = "openid-" + buyer
	case app.ChannelAlipayMini:
		body["payer_openid"] = "alipay-open-" + buyer
	case app.ChannelWeChatH5:
		body["client_ip"] = "203.0.113.7"
		body["return_url"] = c.h.url + "/shop/return?order=" + requestID
	case app.ChannelAlipayWap:
		body["client_ip"] = "203.0.113.7"
		body["return_url"] = c.h.url + "/shop/return?order=" + requestID
		body["quit_url"] = c.h.url + "/shop/cancel"
	}
	return c.call(http.MethodPost, "/v1/orders", body)
}

// noRedirects is a browser that shows where it is sent instead of going.
var noRedirects = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// payAsBuyer pays an order the way its channel's buyer does: through the
// simulator's page for the H5 channels, through the simulator's buyer
// call otherwise. notify false pays without a notification (a lost one).
func payAsBuyer(t *testing.T, h *harness, ali *alipaysim.Server, channel string, order reply, notify bool) {
	t.Helper()
	ctx := context.Background()
	payment, _ := order.body["payment"].(map[string]any)
	str := func(k string) string { s, _ := payment[k].(string); return s }
	switch channel {
	case app.ChannelWeChatJSAPI:
		if _, err := h.sim.Pay(ctx, strings.TrimPrefix(str("package"), "prepay_id="), paysim.PayOptions{NoNotify: !notify}); err != nil {
			t.Fatalf("pay %s: %v", channel, err)
		}
	case app.ChannelWeChatH5:
		u, err := url.Parse(str("h5_url"))
		if err != nil || u.Query().Get("prepay_id") == "" {
			t.Fatalf("h5_url %q names no prepay_id", str("h5_url"))
		}
		if !notify {
			if _, err := h.sim.Pay(ctx, u.Query().Get("prepay_id"), paysim.PayOptions{NoNotify: true}); err != nil {
				t.Fatalf("pay %s: %v", channel, err)
			}
			return
		}
		payPage(t, str("h5_url"), order.str("order_id"))
	case app.ChannelAlipayWap:
		// The buyer opens the signed cashier URL: the trade exists from then on.
		resp, err := noRedirects.Get(str("pay_url"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 400 {
			t.Fatalf("opening pay_url: %d", resp.StatusCode)
		}
		tr, ok := ali.Trade(order.str("order_id"))
		if !ok {
			t.Fatalf("no Alipay trade after opening pay_url")
		}
		if !notify {
			if _, err := ali.PayTrade(ctx, tr.TradeNo, alipaysim.PayOptions{NoNotify: true}); err != nil {
				t.Fatal(err)
			}
			return
		}
		pay, err := noRedirects.PostForm(ali.URL()+"/cashier/"+tr.TradeNo+"/pay", url.Values{})
		if err != nil {
			t.Fatal(err)
		}
		pay.Body.Close()
		if loc := pay.Header.Get("Location"); pay.StatusCode != http.StatusFound || !strings.HasPrefix(loc, h.url+"/shop/return") {
			t.Fatalf("paying on the cashier page: %d to %q, want 302 to the return_url", pay.StatusCode, loc)
		}
	case app.ChannelAlipayMini:
		if _, err := ali.PayTrade(ctx, str("trade_no"), alipaysim.PayOptions{NoNotify: !notify}); err != nil {
			t.Fatalf("pay %s: %v", channel, err)
		}
	}
}

// payPage pays on a payment page: GET it, then post its form.
func payPage(t *testing.T, pageURL, orderID string) {
	t.Helper()
	resp, err := noRedirects.Get(pageURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("payment page %s: %d %s", pageURL, resp.StatusCode, page)
	}
	action := formAction(string(page))
	if action == "" {
		t.Fatalf("payment page for %s has no form: %s", orderID, page)
	}
	u, _ := url.Parse(pageURL)
	target, _ := u.Parse(action)
	pay, err := noRedirects.PostForm(target.String(), formFields(string(page)))
	if err != nil {
		t.Fatal(err)
	}
	pay.Body.Close()
	if pay.StatusCode >= 400 {
		t.Fatalf("paying on %s: %d", target, pay.StatusCode)
	}
}

// formAction and formFields read the first form of a simulator's page.
func formAction(page string) string {
	i := strings.Index(page, "<form")
	if i < 0 {
		return ""
	}
	rest := page[i:]
	j := strings.Index(rest, `action="`)
	if j < 0 {
		return ""
	}
	rest = rest[j+len(`action="`):]
	return strings.ReplaceAll(rest[:strings.Index(rest, `"`)], "&amp;", "&")
}

func formFields(page string) url.Values {
	v := url.Values{}
	form := page[strings.Index(page, "<form"):]
	form = form[:strings.Index(form, "</form>")]
	for _, part := range strings.Split(form, "<input")[1:] {
		name, value := attr(part, "name"), attr(part, "value")
		if name != "" {
			v.Set(name, value)
		}
	}
	return v
}

func attr(tag, name string) string {
	i := strings.Index(tag, name+`="`)
	if i < 0 {
		return ""
	}
	rest := tag[i+len(name)+2:]
	return strings.ReplaceAll(rest[:strings.Index(rest, `"`)], "&amp;", "&")
}

// waitOrder polls the server API until the order reaches status.
func (c *client) waitOrder(id, status string, refresh bool) reply {
	c.h.t.Helper()
	path := "/v1/orders/" + id
	if refresh {
		path += "?refresh=true"
	}
	var r reply
	for range 200 {
		r = c.call(http.MethodGet, path, nil)
		if r.status == 200 && r.str("status") == status {
			return r
		}
		time.Sleep(25 * time.Millisecond)
	}
	c.h.t.Fatalf("order %s never became %s: %d %s", id, status, r.status, r.raw)
	return r
}

// TestEveryChannelTakesAPaymentAndARefundThroughTheServerAPI is issue 12's
// full purchase per channel: the real client of each provider against its
// simulator, the buyer paying as that channel's buyer does, the verified
// notification settling the order PAID, then a refund settling REFUNDED,
// with order.paid and refund.succeeded sent to the app's endpoint.
func TestEveryChannelTakesAPaymentAndARefundThroughTheServerAPI(t *testing.T) {
	h, ali := newChannelsHarness(t, setup.Options{})
	c := channelShop(t, h, "multi", 1990)
	rc := newReceiver(t)
	ep := h.admin(http.MethodPost, "/admin/apps/multi/endpoints", map[string]any{"url": rc.srv.URL + "/hooks"}).want(t, 201, "")
	secret, _ := ep.body["secret"].(map[string]any)
	rc.secret, _ = secret["secret"].(string)

	for _, ch := range allChannels {
		t.Run(ch, func(t *testing.T) {
			o := c.channelOrder(ch, "buyer-"+ch, "req-"+ch).want(t, 201, "")
			if o.str("channel") != ch {
				t.Fatalf("order answered channel %q, want %s: %s", o.str("channel"), ch, o.raw)
			}
			id := o.str("order_id")
			payAsBuyer(t, h, ali, ch, o, true)
			paid := c.waitOrder(id, "PAID", false)
			if paid.str("transaction_id") == "" {
				t.Errorf("paid order has no transaction id: %s", paid.raw)
			}
			r := c.call(http.MethodPost, "/v1/orders/"+id+"/refunds", map[string]any{"refund_id": "rf-" + ch, "amount_fen": 1990, "reason": "test"})
			if r.status != 201 {
				t.Fatalf("refund: %d %s", r.status, r.raw)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				v := c.call(http.MethodGet, "/v1/orders/"+id, nil)
				refund, _ := v.body["refund"].(map[string]any)
				if s, _ := refund["refund_status"].(string); s == "REFUNDED" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("refund of %s never settled: %s", id, v.raw)
				}
				time.Sleep(25 * time.Millisecond)
			}
		})
	}
	// Each order's events reached the app's server, verified.
	want := map[string]bool{}
	for _, hk := range rc.waitFor(t, 3*len(allChannels)) {
		if hk.Verified != nil {
			t.Errorf("webhook %s %s did not verify: %v", hk.Type, hk.ID, hk.Verified)
		}
		want[hk.Type] = true
	}
	for _, typ := range []string{"order.created", "order.paid", "refund.succeeded"} {
		if !want[typ] {
			t.Errorf("no %s webhook among %v", typ, want)
		}
	}
}

// TestJobsCloseAndReconcileOrdersOfEveryChannel: for each channel, an order
// paid whose notification was lost is settled PAID by reconcile (asking
// that channel), and an order left unpaid is closed by closeExpired (at
// that channel too, or never created there: an Alipay wap trade exists only
// once the buyer opens its page).
func TestJobsCloseAndReconcileOrdersOfEveryChannel(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	h, ali := newChannelsHarness(t, setup.Options{Now: clock.Now})
	c := channelShop(t, h, "jobs", 500)
	c.now = clock.Now
	paid, unpaid := map[string]string{}, map[string]string{}
	for _, ch := range allChannels {
		p := c.channelOrder(ch, "payer-"+ch, "paid-"+ch).want(t, 201, "")
		payAsBuyer(t, h, ali, ch, p, false)
		paid[ch] = p.str("order_id")
		u := c.channelOrder(ch, "idler-"+ch, "idle-"+ch).want(t, 201, "")
		unpaid[ch] = u.str("order_id")
	}
	clock.Advance(31 * time.Minute) // past the order TTL and reconcile's quiet period
	ctx := context.Background()
	if _, err := h.stack.App.Reconcile(ctx); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	if _, err := h.stack.App.CloseExpired(ctx); err != nil {
		t.Fatalf("closeExpired: %v", err)
	}
	for _, ch := range allChannels {
		if r := c.call(http.MethodGet, "/v1/orders/"+paid[ch], nil); r.str("status") != "PAID" {
			t.Errorf("%s: the order paid without a notification is %s after reconcile: %s", ch, r.str("status"), r.raw)
		}
		if r := c.call(http.MethodGet, "/v1/orders/"+unpaid[ch], nil); r.str("status") != "CLOSED" {
			t.Errorf("%s: the unpaid order is %s after closeExpired: %s", ch, r.str("status"), r.raw)
		}
	}
	// Closed at the providers too, where they knew the trade.
	for _, ch := range []string{app.ChannelWeChatJSAPI, app.ChannelWeChatH5} {
		if tr, ok := h.sim.Trade(unpaid[ch]); !ok || tr.TradeState != "CLOSED" {
			t.Errorf("%s: paysim has the unpaid trade as %+v", ch, tr)
		}
	}
	if tr, ok := ali.Trade(unpaid[app.ChannelAlipayMini]); !ok || tr.Status != "TRADE_CLOSED" {
		t.Errorf("alipay_mini: alipaysim has the unpaid trade as %+v", tr)
	}
}

// TestServiceOrderChannelFieldsAreCheckedAndChangeNothing: an order names
// its channel and the fields that channel takes; an unknown channel, one
// the app does not enable, a field another channel takes, a missing or
// malformed one each get their own code and write nothing.
func TestServiceOrderChannelFieldsAreCheckedAndChangeNothing(t *testing.T) {
	h, _ := newChannelsHarness(t, setup.Options{})
	c := channelShop(t, h, "fields", 100)
	only := h.newApp("onlyjs") // the default: wechat_jsapi alone
	only.product("tea", 100)
	base := func(channel string, extra map[string]any) map[string]any {
		b := map[string]any{"product_id": "tea", "quantity": 1, "request_id": "f-1", "buyer": "b-1", "channel": channel}
		for k, v := range extra {
			b[k] = v
		}
		return b
	}
	cases := []struct {
		name string
		c    *client
		body map[string]any
		code string
	}{
		{"unknown channel", c, base("paypal", nil), "INVALID_CHANNEL"},
		{"channel not a string", c, base("", map[string]any{"channel": 7}), "INVALID_CHANNEL"},
		{"channel the app does not enable", only, base("alipay_wap", nil), "CHANNEL_NOT_ENABLED"},
		{"payer_openid for alipay_wap", c, base("alipay_wap", map[string]any{"payer_openid": "o-123456"}), "INVALID_PAYER_OPENID"},
		{"wechat_appid for alipay_mini", c, base("alipay_mini", map[string]any{"payer_openid": "o-123456", "wechat_appid": testAppID}), "INVALID_WECHAT_APPID"},
		{"client_ip for wechat_jsapi", c, base("wechat_jsapi", map[string]any{"payer_openid": "o-123456", "client_ip": "203.0.113.7"}), "INVALID_CLIENT_IP"},
		{"quit_url for wechat_h5", c, base("wechat_h5", map[string]any{"client_ip": "203.0.113.7", "quit_url": "https://shop.example/q"}), "INVALID_QUIT_URL"},
		{"wechat_h5 without client_ip", c, base("wechat_h5", nil), "INVALID_CLIENT_IP"},
		{"client_ip not an address", c, base("wechat_h5", map[string]any{"client_ip": "203.0.113"}), "INVALID_CLIENT_IP"},
		{"return_url not http(s)", c, base("alipay_wap", map[string]any{"return_url": "javascript:alert(1)"}), "INVALID_RETURN_URL"},
		{"return_url relative", c, base("wechat_h5", map[string]any{"client_ip": "203.0.113.7", "return_url": "/paid"}), "INVALID_RETURN_URL"},
		{"return_url too long", c, base("alipay_wap", map[string]any{"return_url": "https://shop.example/" + strings.Repeat("a", 600)}), "INVALID_RETURN_URL"},
		{"alipay_mini without payer_openid", c, base("alipay_mini", nil), "INVALID_PAYER_OPENID"},
	}
	before := h.dbSnapshot()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.call(http.MethodPost, "/v1/orders", tc.body).want(t, 400, tc.code)
			if d := before.diff(h.dbSnapshot()); d != "" {
				t.Fatalf("the store changed:\n%s", d)
			}
		})
	}
}
