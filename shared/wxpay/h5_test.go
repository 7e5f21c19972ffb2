package wxpay_test

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/channeltest"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/wxpay"
)

const clientIP = "203.0.113.7"

func h5Order(no string, total int64) app.PrepayRequest {
	return app.PrepayRequest{
		OutTradeNo: no, Description: "Paid reading: chapter 7", TotalFen: total, Attach: "order=" + no,
		ClientIP: clientIP, TimeExpire: time.Now().Add(time.Hour),
	}
}

// buyer is the buyer's mobile browser: a plain client that stops at
// redirects, so a test sees where the page sends it.
var buyer = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// openAndPay opens the h5_url and presses Pay on its page, and returns the
// answer to the press.
func openAndPay(t testing.TB, h5URL string) *http.Response {
	t.Helper()
	resp, err := buyer.Get(h5URL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), `name="package"`) {
		t.Fatalf("GET h5_url: %d\n%s", resp.StatusCode, page)
	}
	resp, err = buyer.PostForm(h5URL, url.Values{"action": {"pay"}})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestH5IsTheMerchantsChannelWithoutResigning(t *testing.T) {
	sim := startSim(t, nil)
	ch := newChannel(t, config(sim, "https://merchant.example.com/notify"))
	h5 := ch.H5()
	if h5.Name() != app.ChannelWeChatH5 || h5.Provider() != app.ProviderWeChatPay || h5.Provider() != ch.Provider() {
		t.Errorf("H5 is %s of %s", h5.Name(), h5.Provider())
	}
	if h5.AppID() != appID || h5.MchID() != mchID || len(h5.AppIDs()) != 1 {
		t.Errorf("H5 merchant = %s %s %v", h5.AppID(), h5.MchID(), h5.AppIDs())
	}
	var c app.Channel = h5
	if _, ok := c.(app.Resigner); ok {
		t.Error("H5 implements app.Resigner: an h5_url cannot be re-signed, each pay must prepay again")
	}
	if _, ok := c.(app.RefundNotifier); !ok {
		t.Error("H5 does not read refund notifications, the merchant's")
	}
}

func TestH5PrepayPagePayNotificationQueryAndRefundEndToEnd(t *testing.T) {
	sim := startSim(t, nil)
	rc := newReceiver(t)
	ch := newChannel(t, config(sim, rc.url()))
	rc.channel.Store(ch)
	h5 := ch.H5()
	ctx := ctxTimeout(t)

	ret := "https://shop.example.com/paid?order=H5E2E_0001&lang=zh CN"
	req := h5Order("H5E2E_0001", 2990)
	req.ReturnURL = ret
	p, err := h5.Prepay(ctx, req)
	if err != nil {
		t.Fatalf("Prepay: %v", err)
	}
	pp := p.Payment
	if p.Ref != "" || pp.H5URL == "" || pp.Package != "" || pp.PaySign != "" || pp.AppID != "" {
		t.Fatalf("prepaid = %+v: want an h5_url only, and no ref to reuse", p)
	}
	if !strings.HasPrefix(pp.H5URL, sim.URL()+paysim.H5CheckoutPath+"?prepay_id=") || !strings.HasSuffix(pp.H5URL, "&redirect_url="+url.QueryEscape(ret)) {
		t.Errorf("h5_url = %q: want the simulator's page with &redirect_url= and the escaped return URL", pp.H5URL)
	}
	if u, err := url.Parse(pp.H5URL); err != nil || u.Query().Get("redirect_url") != ret {
		t.Errorf("h5_url's redirect_url = %q, want %q", u.Query().Get("redirect_url"), ret)
	}

	before, err := h5.QueryOrder(ctx, "H5E2E_0001")
	if err != nil || before.TradeState != "NOTPAY" || before.TotalFen != 2990 {
		t.Fatalf("before paying: %+v, %v", before, err)
	}

	resp := openAndPay(t, pp.H5URL)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != ret {
		t.Fatalf("paying answered %d to %q, want 302 to %q", resp.StatusCode, resp.Header.Get("Location"), ret)
	}

	got := rc.next(t)
	if got.err != nil {
		t.Fatalf("ParseNotification of the H5 payment: %v", got.err)
	}
	tx := got.n.Transaction
	if got.n.EventType != app.EventTransactionSuccess || tx.TradeState != app.TradeStateSuccess || tx.TradeType != "MWEB" ||
		tx.OutTradeNo != "H5E2E_0001" || tx.TotalFen != 2990 || tx.Currency != "CNY" || tx.AppID != appID || tx.MchID != mchID ||
		tx.Attach != "order=H5E2E_0001" || tx.TransactionID == "" || tx.PayerOpenID != "" {
		t.Errorf("notified = %+v", got.n)
	}
	// One notify_url serves both channels: the H5 channel reads it too.
	if _, err := h5.ParseNotification(ctx, http.Header{}, nil); !errors.Is(err, app.ErrBadNotification) {
		t.Errorf("H5 ParseNotification of nothing: %v", err)
	}
	if err := sim.WaitAcked(ctx, "H5E2E_0001"); err != nil {
		t.Fatal(err)
	}

	after, err := h5.QueryOrder(ctx, "H5E2E_0001")
	if err != nil || after.TradeState != "SUCCESS" || after.TradeType != "MWEB" || after.TransactionID != tx.TransactionID || after.PayerOpenID != "" {
		t.Fatalf("after paying: %+v, %v", after, err)
	}

	r, err := h5.Refund(ctx, app.RefundRequest{OutTradeNo: "H5E2E_0001", OutRefundNo: "H5E2E_0001R1", RefundFen: 2990, TotalFen: 2990, Reason: "changed mind"})
	if err != nil || (r.Status != app.RefundStateSuccess && r.Status != app.RefundStateProcessing) {
		t.Fatalf("Refund: %+v, %v", r, err)
	}
	var q app.RefundResult
	for range 50 {
		if q, err = h5.QueryRefund(ctx, "H5E2E_0001", "H5E2E_0001R1"); err == nil && q.Status == app.RefundStateSuccess {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if q.Status != app.RefundStateSuccess || q.RefundFen != 2990 || q.OutTradeNo != "H5E2E_0001" {
		t.Errorf("refund query = %+v, %v", q, err)
	}
}

func TestH5PrepayWithoutReturnURLAndARepeatIssuesAFreshURL(t *testing.T) {
	sim := startSim(t, nil)
	h5 := newChannel(t, config(sim, "https://merchant.example.com/notify")).H5()
	ctx := ctxTimeout(t)
	req := h5Order("H5REP_0001", 100)
	first, err := h5.Prepay(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(first.Payment.H5URL, "redirect_url") {
		t.Errorf("h5_url without a return URL = %q", first.Payment.H5URL)
	}
	second, err := h5.Prepay(ctx, req)
	if err != nil {
		t.Fatalf("repeat with identical parameters: %v", err)
	}
	if second.Payment.H5URL == first.Payment.H5URL {
		t.Error("a repeated prepay gave the same h5_url")
	}
	if resp := openAndPay(t, second.Payment.H5URL); resp.StatusCode != http.StatusOK {
		t.Errorf("paying without a redirect_url: %d, want the page's 200", resp.StatusCode)
	}
	if tx, err := h5.QueryOrder(ctx, "H5REP_0001"); err != nil || tx.TradeState != "SUCCESS" {
		t.Errorf("after paying: %+v, %v", tx, err)
	}

	changed := req
	changed.TotalFen = 101
	if _, err := h5.Prepay(ctx, changed); wxpay.Code(err) != paysim.CodeOutTradeNoUse {
		t.Errorf("prepay with a changed amount: %v, want %s", err, paysim.CodeOutTradeNoUse)
	}
}

func TestH5CloseUnpaidOrder(t *testing.T) {
	sim := startSim(t, nil)
	h5 := newChannel(t, config(sim, "https://merchant.example.com/notify")).H5()
	ctx := ctxTimeout(t)
	p, err := h5.Prepay(ctx, h5Order("H5CLOSE_01", 500))
	if err != nil {
		t.Fatal(err)
	}
	if err := h5.CloseOrder(ctx, "H5CLOSE_01"); err != nil {
		t.Fatalf("close: %v", err)
	}
	if tx, err := h5.QueryOrder(ctx, "H5CLOSE_01"); err != nil || tx.TradeState != "CLOSED" {
		t.Fatalf("after close: %+v, %v", tx, err)
	}
	resp, err := buyer.PostForm(p.Payment.H5URL, url.Values{"action": {"pay"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("paying a closed order's h5_url: %d, want 409", resp.StatusCode)
	}
	if err := h5.CloseOrder(ctx, "H5NEVER_01"); !errors.Is(err, app.ErrTradeNotFound) {
		t.Errorf("close of an order never prepaid: %v, want ErrTradeNotFound", err)
	}
}

func TestH5PrepayRequiresAClientIPAndSendsNothingWithoutOne(t *testing.T) {
	sim := startSim(t, nil)
	h5 := newChannel(t, config(sim, "https://merchant.example.com/notify")).H5()
	ctx := ctxTimeout(t)
	cases := map[string]func(*app.PrepayRequest){
		"no client IP":          func(r *app.PrepayRequest) { r.ClientIP = "" },
		"a host name":           func(r *app.PrepayRequest) { r.ClientIP = "client.example.com" },
		"an IP with a port":     func(r *app.PrepayRequest) { r.ClientIP = "203.0.113.7:443" },
		"a relative return URL": func(r *app.PrepayRequest) { r.ReturnURL = "/paid" },
		"a javascript: return":  func(r *app.PrepayRequest) { r.ReturnURL = "javascript:alert(1)" },
		"an unbound appid":      func(r *app.PrepayRequest) { r.AppID = unboundAppID },
		"no description left":   func(r *app.PrepayRequest) { r.Description = "🍰" },
		"zero total":            func(r *app.PrepayRequest) { r.TotalFen = 0 },
		"attach of 129 runes":   func(r *app.PrepayRequest) { r.Attach = strings.Repeat("a", 129) },
		"an empty out_trade_no": func(r *app.PrepayRequest) { r.OutTradeNo = "" },
	}
	for name, mutate := range cases {
		req := h5Order("H5IP_00001", 100)
		mutate(&req)
		if p, err := h5.Prepay(ctx, req); err == nil || errors.Is(err, app.ErrChannelUnavailable) {
			t.Errorf("%s: prepay = %+v, %v; want a refusal before sending", name, p, err)
		}
	}
	if _, ok := sim.Trade("H5IP_00001"); ok {
		t.Fatal("a refused prepay reached the simulator")
	}
	req := h5Order("H5IP_00002", 100)
	req.ClientIP = "2001:db8::7"
	if _, err := h5.Prepay(ctx, req); err != nil {
		t.Errorf("an IPv6 client: %v", err)
	}
}

// h5Harness is WeChat Pay H5 against paysim: the buyer opens the h5_url
// and presses Pay.
type h5Harness struct {
	h5  *wxpay.H5
	box *notifyBox
}

func (h h5Harness) Channel() app.Channel { return h.h5 }

func (h h5Harness) Request(no string, fen int64) app.PrepayRequest {
	r := h5Order(no, fen)
	r.ReturnURL = "https://shop.example.com/paid?order=" + no
	return r
}

func (h h5Harness) Pay(t testing.TB, req app.PrepayRequest, p app.Prepaid) {
	t.Helper()
	if resp := openAndPay(t, p.Payment.H5URL); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != req.ReturnURL {
		t.Fatalf("paying on the h5_url page: %d to %q, want 302 to %q", resp.StatusCode, resp.Header.Get("Location"), req.ReturnURL)
	}
}

func (h h5Harness) Notification(t testing.TB, no string) (http.Header, []byte) {
	return h.box.wait(t, no)
}

func (h h5Harness) Tamper(header http.Header, body []byte) (http.Header, []byte) {
	return jsapiHarness{}.Tamper(header, body)
}

func (h h5Harness) SettleRefunds(testing.TB) {}

func TestH5ChannelPassesTheChannelConformanceSuite(t *testing.T) {
	sim := startSim(t, nil)
	box := newNotifyBox(t)
	ch := newChannel(t, config(sim, box.srv.URL+"/pay/notify"))
	box.ch.Store(ch) // one notify_url and format for both channels
	channeltest.Run(t, h5Harness{h5: ch.H5(), box: box}, conformanceID("CH"))
}
