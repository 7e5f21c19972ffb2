package alipaysim_test

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/alipaysim"
)

// TestGatewayRefusesBadRequests: the RSA2 check covers every parameter but
// sign (sign_type included), and the gateway's common errors come back in
// Alipay's shapes.
func TestGatewayRefusesBadRequests(t *testing.T) {
	sim := startSim(t, nil)
	c := newClient(sim)
	query := m{"out_trade_no": "NOPE_1"}

	if r := c.call(t, alipaysim.MethodQuery, query); r.str("code") != "40004" || r.sub() != "ACQ.TRADE_NOT_EXIST" || !r.signed {
		t.Errorf("unknown trade: %v signed=%v, want signed 40004 ACQ.TRADE_NOT_EXIST", r.fields, r.signed)
	}

	tampered := c.params(alipaysim.MethodQuery, query)
	tampered.Set("biz_content", `{"out_trade_no":"NOPE_2"}`)
	if r := c.post(t, alipaysim.MethodQuery, tampered); r.str("code") != "40002" || r.sub() != "isv.invalid-signature" {
		t.Errorf("tampered biz_content: %v, want 40002 isv.invalid-signature", r.fields)
	} else if !strings.Contains(r.str("sub_msg"), "biz_content=") {
		t.Errorf("sub_msg should show the string the gateway verified: %q", r.str("sub_msg"))
	}
	// sign_type is signed too.
	st := c.params(alipaysim.MethodQuery, query)
	st.Set("sign_type", "rsa2")
	if r := c.post(t, alipaysim.MethodQuery, st); r.str("code") != "40002" {
		t.Errorf("sign_type altered: %v, want 40002", r.fields)
	}
	other := newClient(sim)
	other.key = otherKey
	if r := other.call(t, alipaysim.MethodQuery, query); r.sub() != "isv.invalid-signature" {
		t.Errorf("wrong app key: %v, want isv.invalid-signature", r.fields)
	}
	nosign := c.params(alipaysim.MethodQuery, query)
	nosign.Del("sign")
	if r := c.post(t, alipaysim.MethodQuery, nosign); r.str("code") != "40001" || r.sub() != "isv.missing-signature" {
		t.Errorf("no sign: %v, want 40001 isv.missing-signature", r.fields)
	}
	badTS := c.params(alipaysim.MethodQuery, query)
	badTS.Set("timestamp", "2024/01/01 10:00")
	if r := c.post(t, alipaysim.MethodQuery, badTS); r.sub() != "isv.invalid-timestamp" {
		t.Errorf("bad timestamp: %v", r.fields)
	}
	wrongApp := c.params(alipaysim.MethodQuery, query)
	wrongApp.Set("app_id", "2021999999999999")
	if r := c.post(t, alipaysim.MethodQuery, wrongApp); r.sub() != "isv.invalid-app-id" || r.signed {
		t.Errorf("unknown app: %v signed=%v, want unsigned isv.invalid-app-id", r.fields, r.signed)
	}
	if r := c.call(t, "alipay.trade.nonsense", query); r.name != "error_response" || r.sub() != "isv.invalid-method" {
		t.Errorf("unknown method: %s %v", r.name, r.fields)
	}
	// Public-key mode refuses certificate SNs.
	withSN := newClient(sim)
	withSN.appSN, withSN.rootSN = "0123456789abcdef0123456789abcdef", "x"
	if r := withSN.call(t, alipaysim.MethodQuery, query); r.str("code") != "40002" {
		t.Errorf("SNs in public-key mode: %v, want 40002", r.fields)
	}
	// Common parameters may come in the query string, biz_content in the body.
	p := c.params(alipaysim.MethodQuery, query)
	body := url.Values{"biz_content": {p.Get("biz_content")}}
	p.Del("biz_content")
	resp, err := http.Post(sim.GatewayURL()+"?"+p.Encode(), "application/x-www-form-urlencoded;charset=utf-8", strings.NewReader(body.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if r := c.decode(t, alipaysim.MethodQuery, b); r.sub() != "ACQ.TRADE_NOT_EXIST" {
		t.Errorf("split query/body request: %v", r.fields)
	}
}

func TestTimestampWindow(t *testing.T) {
	sim := startSim(t, func(o *alipaysim.Options) { o.TimestampWindow = 15 * time.Minute })
	c := newClient(sim)
	if r := c.call(t, alipaysim.MethodQuery, m{"out_trade_no": "X"}); r.sub() != "ACQ.TRADE_NOT_EXIST" {
		t.Errorf("fresh timestamp: %v", r.fields)
	}
	c.now = func() time.Time { return time.Now().Add(-8 * time.Hour) } // a UTC clock read as Shanghai time
	if r := c.call(t, alipaysim.MethodQuery, m{"out_trade_no": "X"}); r.sub() != "isv.invalid-timestamp" {
		t.Errorf("stale timestamp: %v, want isv.invalid-timestamp", r.fields)
	}
}

// TestCreatePayQueryClose is the mini-program (JSAPI_PAY) path.
func TestCreatePayQueryClose(t *testing.T) {
	sim := startSim(t, nil)
	rc := newReceiver(t, nil)
	c := newClient(sim)
	c.notifyURL = rc.url()
	ctx := ctxTimeout(t)
	biz := m{"out_trade_no": "MINI_1", "total_amount": "12.34", "subject": "小程序订单", "product_code": "JSAPI_PAY",
		"buyer_open_id": "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5", "buyer_id": "", "op_app_id": "2021000000000009",
		"timeout_express": "30m", "passback_params": "a%3D1"}
	r := c.call(t, alipaysim.MethodCreate, biz)
	tradeNo := r.str("trade_no")
	if r.str("code") != "10000" || r.str("msg") != "Success" || r.str("out_trade_no") != "MINI_1" || len(tradeNo) != 28 {
		t.Fatalf("create: %v", r.fields)
	}
	if again := c.call(t, alipaysim.MethodCreate, biz); again.str("trade_no") != tradeNo {
		t.Errorf("same create again: %v, want trade_no %s", again.fields, tradeNo)
	}
	changed := m{"out_trade_no": "MINI_1", "total_amount": "12.35", "subject": "小程序订单", "buyer_open_id": "x"}
	if r := c.call(t, alipaysim.MethodCreate, changed); r.sub() != "ACQ.CONTEXT_INCONSISTENT" {
		t.Errorf("create with another amount: %v", r.fields)
	}
	if r := c.call(t, alipaysim.MethodCreate, m{"out_trade_no": "MINI_NOBUYER", "total_amount": "1", "subject": "s"}); r.sub() != "ACQ.INVALID_PARAMETER" {
		t.Errorf("create without buyer: %v", r.fields)
	}
	q := c.call(t, alipaysim.MethodQuery, m{"trade_no": tradeNo})
	if q.str("trade_status") != "WAIT_BUYER_PAY" || q.str("total_amount") != "12.34" || q.str("send_pay_date") != "" {
		t.Errorf("query unpaid: %v", q.fields)
	}

	if _, err := sim.PayTrade(ctx, tradeNo, alipaysim.PayOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := sim.WaitAcked(ctx, "MINI_1"); err != nil {
		t.Fatal(err)
	}
	n := rc.wait(t, 1)[0]
	if err := verifyValues(sim.Keys().AlipayPublicKey, n.form); err != nil {
		t.Fatalf("notification signature: %v (%v)", err, n.form)
	}
	want := map[string]string{
		"notify_type": "trade_status_sync", "app_id": appID, "charset": "utf-8", "version": "1.0", "sign_type": "RSA2",
		"trade_no": tradeNo, "out_trade_no": "MINI_1", "trade_status": "TRADE_SUCCESS", "total_amount": "12.34",
		"receipt_amount": "12.34", "buyer_pay_amount": "12.34", "seller_id": "2088000000000001",
		"buyer_open_id": "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5", "subject": "小程序订单", "passback_params": "a%3D1",
	}
	for k, v := range want {
		if got := n.form.Get(k); got != v {
			t.Errorf("notification %s = %q, want %q", k, got, v)
		}
	}
	for _, k := range []string{"notify_id", "notify_time", "gmt_create", "gmt_payment", "fund_bill_list", "sign"} {
		if n.form.Get(k) == "" {
			t.Errorf("notification lacks %s", k)
		}
	}
	for k, vs := range n.form {
		if len(vs) != 1 || vs[0] == "" {
			t.Errorf("notification parameter %s = %q: Alipay sends no empty or repeated ones", k, vs)
		}
	}
	if ct := n.header.Get("Content-Type"); ct != alipaysim.NotifyContentType || n.parseErr != nil {
		t.Errorf("Content-Type %q (ParseForm: %v)", ct, n.parseErr)
	}

	q = c.call(t, alipaysim.MethodQuery, m{"out_trade_no": "MINI_1", "query_options": []string{"fund_bill_list"}})
	if q.str("trade_status") != "TRADE_SUCCESS" || q.str("buyer_pay_amount") != "12.34" || q.str("receipt_amount") != "12.34" ||
		q.str("send_pay_date") == "" || q.str("buyer_open_id") == "" || q.fields["fund_bill_list"] == nil {
		t.Errorf("query paid: %v", q.fields)
	}
	if r := c.call(t, alipaysim.MethodClose, m{"out_trade_no": "MINI_1"}); r.sub() != "ACQ.TRADE_STATUS_ERROR" {
		t.Errorf("close paid: %v", r.fields)
	}
	if r := c.call(t, alipaysim.MethodCreate, biz); r.sub() != "ACQ.TRADE_HAS_SUCCESS" {
		t.Errorf("create paid again: %v", r.fields)
	}
	if _, err := sim.PayTrade(ctx, "MINI_1", alipaysim.PayOptions{}); !errors.Is(err, alipaysim.ErrTradePaid) {
		t.Errorf("pay twice: %v", err)
	}

	// close: unpaid → closed (no notification); again → status error; unknown → not exist.
	c.call(t, alipaysim.MethodCreate, m{"out_trade_no": "MINI_2", "total_amount": "1", "subject": "s", "buyer_id": "2088102146225135"})
	if r := c.call(t, alipaysim.MethodClose, m{"out_trade_no": "MINI_2"}); r.str("code") != "10000" || r.str("trade_no") == "" {
		t.Errorf("close: %v", r.fields)
	}
	if q := c.call(t, alipaysim.MethodQuery, m{"out_trade_no": "MINI_2"}); q.str("trade_status") != "TRADE_CLOSED" {
		t.Errorf("query closed: %v", q.fields)
	}
	if r := c.call(t, alipaysim.MethodClose, m{"out_trade_no": "MINI_2"}); r.sub() != "ACQ.TRADE_STATUS_ERROR" {
		t.Errorf("close twice: %v", r.fields)
	}
	if r := c.call(t, alipaysim.MethodClose, m{"out_trade_no": "MINI_404"}); r.sub() != "ACQ.TRADE_NOT_EXIST" {
		t.Errorf("close unknown: %v", r.fields)
	}
	if _, err := sim.PayTrade(ctx, "MINI_2", alipaysim.PayOptions{}); !errors.Is(err, alipaysim.ErrTradeClosed) {
		t.Errorf("pay closed: %v", err)
	}
	if ns := sim.Notifications("MINI_2"); len(ns) != 0 {
		t.Errorf("closing notified: %v", ns)
	}
}

func TestAmountsAreParsedExactly(t *testing.T) {
	sim := startSim(t, nil)
	c := newClient(sim)
	for i, bad := range []any{"10.001", "1e2", "-1", "0", "0.00", "", "1.", ".5", "01.00", " 1", "100000000.01", "1,00"} {
		r := c.call(t, alipaysim.MethodCreate, m{"out_trade_no": "AMT_" + string(rune('A'+i)), "total_amount": bad, "subject": "s", "buyer_id": "2088102146225135"})
		if r.sub() != "ACQ.INVALID_PARAMETER" {
			t.Errorf("total_amount %q: %v, want ACQ.INVALID_PARAMETER", bad, r.fields)
		}
	}
	for i, good := range []struct {
		in   any
		want string
	}{{"20", "20.00"}, {"0.01", "0.01"}, {"0.1", "0.10"}, {"100000000", "100000000.00"}, {19.99, "19.99"}} {
		no := "AMT_OK_" + string(rune('A'+i))
		r := c.call(t, alipaysim.MethodCreate, m{"out_trade_no": no, "total_amount": good.in, "subject": "s", "buyer_id": "2088102146225135"})
		if r.str("code") != "10000" {
			t.Errorf("total_amount %v: %v", good.in, r.fields)
			continue
		}
		if q := c.call(t, alipaysim.MethodQuery, m{"out_trade_no": no}); q.str("total_amount") != good.want {
			t.Errorf("total_amount %v reads back %q, want %s", good.in, q.str("total_amount"), good.want)
		}
	}
}

// TestWapPay drives the H5 flow as a browser would: the signed gateway URL,
// the cashier page, Pay, the redirect to return_url, the notification.
func TestWapPay(t *testing.T) {
	sim := startSim(t, nil)
	rc := newReceiver(t, nil)
	c := newClient(sim)
	c.notifyURL = rc.url()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ctx := ctxTimeout(t)

	p := c.params(alipaysim.MethodWapPay, m{"out_trade_no": "H5_1", "total_amount": "8.80", "subject": "H5 <订单>",
		"product_code": "QUICK_WAP_WAY", "quit_url": "https://shop.example/quit", "time_expire": time.Now().Add(time.Hour).In(time.FixedZone("CST", 8*3600)).Format("2006-01-02 15:04")})
	// smartwalle signs before adding return_url? No: return_url is a common
	// parameter it signs; build it the same way.
	p.Del("sign")
	p.Set("return_url", "https://shop.example/return?x=1")
	p.Set("sign", signValues(appKey, p, "sign"))
	payURL := sim.GatewayURL() + "?" + p.Encode()

	// Before the page is opened Alipay knows no such trade.
	if r := c.call(t, alipaysim.MethodQuery, m{"out_trade_no": "H5_1"}); r.sub() != "ACQ.TRADE_NOT_EXIST" {
		t.Errorf("query before the page opened: %v", r.fields)
	}
	resp, err := noFollow.Get(payURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "/cashier/") {
		t.Fatalf("wap.pay: %d %q, want a redirect to the cashier", resp.StatusCode, loc)
	}
	tradeNo := strings.TrimPrefix(loc, "/cashier/")
	if r := c.call(t, alipaysim.MethodQuery, m{"out_trade_no": "H5_1"}); r.str("trade_status") != "WAIT_BUYER_PAY" || r.str("trade_no") != tradeNo {
		t.Errorf("query after the page opened: %v", r.fields)
	}
	// Opening it again finds the same trade.
	if resp, err := noFollow.Get(payURL); err != nil || resp.Header.Get("Location") != loc {
		t.Errorf("second open: %v %v", resp, err)
	}
	page, err := http.Get(sim.URL() + loc)
	if err != nil {
		t.Fatal(err)
	}
	html, _ := io.ReadAll(page.Body)
	page.Body.Close()
	for _, want := range []string{"Test Shop", "H5 &lt;订单&gt;", "¥8.80", `action="/cashier/` + tradeNo + `/pay"`, "/quit"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("cashier page lacks %q:\n%s", want, html)
		}
	}

	resp, err = noFollow.Get(sim.URL() + loc + "/quit")
	if err != nil || resp.Header.Get("Location") != "https://shop.example/quit" {
		t.Errorf("quit: %v %v", resp, err)
	}
	resp, err = noFollow.Post(sim.URL()+loc+"/pay", "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ret, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || ret.Host != "shop.example" || ret.Path != "/return" {
		t.Fatalf("pay: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	rp := ret.Query()
	if rp.Get("x") != "1" || rp.Get("method") != "alipay.trade.wap.pay.return" || rp.Get("out_trade_no") != "H5_1" ||
		rp.Get("trade_no") != tradeNo || rp.Get("total_amount") != "8.80" || rp.Get("seller_id") != "2088000000000001" || rp.Get("app_id") != appID {
		t.Errorf("return parameters: %v", rp)
	}
	rp.Del("x") // the merchant's own parameter is not signed
	if err := verifyValues(sim.Keys().AlipayPublicKey, rp); err != nil {
		t.Errorf("return signature: %v", err)
	}
	if err := sim.WaitAcked(ctx, "H5_1"); err != nil {
		t.Fatal(err)
	}
	n := rc.wait(t, 1)[0].form
	if n.Get("trade_status") != "TRADE_SUCCESS" || n.Get("buyer_id") == "" || n.Get("total_amount") != "8.80" {
		t.Errorf("notification: %v", n)
	}
	resp, _ = noFollow.Post(sim.URL()+loc+"/pay", "", nil)
	if resp.StatusCode != http.StatusConflict || resp.Header.Get("X-Alipaysim-Sub-Code") != "ACQ.TRADE_HAS_SUCCESS" {
		t.Errorf("pay twice: %d %s", resp.StatusCode, resp.Header.Get("X-Alipaysim-Sub-Code"))
	}
	if resp, _ := noFollow.Get(payURL); resp.Header.Get("X-Alipaysim-Sub-Code") != "ACQ.TRADE_HAS_SUCCESS" {
		t.Errorf("open paid trade's URL: %d %v", resp.StatusCode, resp.Header)
	}

	// A tampered URL shows the signature error.
	tampered := strings.Replace(payURL, "8.80", "0.01", 1)
	resp, err = http.Get(tampered)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Alipaysim-Sub-Code") != "isv.invalid-signature" {
		t.Errorf("tampered wap URL: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestRefunds(t *testing.T) {
	sim := startSim(t, nil)
	rc := newReceiver(t, nil)
	c := newClient(sim)
	c.notifyURL = rc.url()
	ctx := ctxTimeout(t)
	paid := createAndPay(t, c, "REF_1", "10.00")
	rc.wait(t, 1)

	refund := func(req, amount string) reply {
		return c.call(t, alipaysim.MethodRefund, m{"out_trade_no": "REF_1", "refund_amount": amount, "out_request_no": req, "refund_reason": "test"})
	}
	if r := refund("R1", "3.00"); r.str("code") != "10000" || r.str("fund_change") != "Y" || r.str("refund_fee") != "3.00" || r.str("trade_no") != paid.TradeNo {
		t.Errorf("partial refund: %v", r.fields)
	}
	if r := refund("R1", "3.00"); r.str("code") != "10000" || r.str("fund_change") != "N" || r.str("refund_fee") != "3.00" {
		t.Errorf("same refund again: %v, want fund_change N", r.fields)
	}
	if r := refund("R1", "4.00"); r.str("code") != "40004" {
		t.Errorf("same out_request_no, other amount: %v", r.fields)
	}
	if r := refund("R2", "7.01"); r.sub() != "ACQ.REASON_TRADE_REFUND_FEE_ERR" {
		t.Errorf("over-refund: %v", r.fields)
	}
	if r := refund("R2", "7.001"); r.sub() != "ACQ.INVALID_PARAMETER" {
		t.Errorf("malformed refund_amount: %v", r.fields)
	}
	if r := c.call(t, alipaysim.MethodRefund, m{"out_trade_no": "REF_1", "refund_amount": "7.00"}); r.sub() != "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL" {
		t.Errorf("partial refund without out_request_no: %v", r.fields)
	}
	n := rc.wait(t, 2)[1].form
	if n.Get("trade_status") != "TRADE_SUCCESS" || n.Get("refund_fee") != "3.00" || n.Get("out_biz_no") != "R1" || n.Get("gmt_refund") == "" || n.Get("gmt_close") != "" {
		t.Errorf("partial refund notification: %v", n)
	}
	if err := verifyValues(sim.Keys().AlipayPublicKey, n); err != nil {
		t.Error(err)
	}
	if r := refund("R2", "7.00"); r.str("fund_change") != "Y" || r.str("refund_fee") != "10.00" {
		t.Errorf("refund the rest: %v", r.fields)
	}
	n = rc.wait(t, 3)[2].form
	if n.Get("trade_status") != "TRADE_CLOSED" || n.Get("refund_fee") != "10.00" || n.Get("out_biz_no") != "R2" || n.Get("gmt_close") == "" {
		t.Errorf("full refund notification: %v", n)
	}
	if n.Get("notify_id") == rc.all()[1].form.Get("notify_id") {
		t.Error("two notifications share a notify_id")
	}
	if q := c.call(t, alipaysim.MethodQuery, m{"out_trade_no": "REF_1"}); q.str("trade_status") != "TRADE_CLOSED" {
		t.Errorf("query after full refund: %v", q.fields)
	}
	if r := refund("R3", "0.01"); r.sub() != "ACQ.TRADE_HAS_CLOSE" {
		t.Errorf("refund closed trade: %v", r.fields)
	}
	rq := c.call(t, alipaysim.MethodRefundQuery, m{"trade_no": paid.TradeNo, "out_request_no": "R1", "query_options": []string{"gmt_refund_pay"}})
	if rq.str("refund_status") != "REFUND_SUCCESS" || rq.str("refund_amount") != "3.00" || rq.str("total_amount") != "10.00" || rq.str("gmt_refund_pay") == "" {
		t.Errorf("refund query: %v", rq.fields)
	}
	rq = c.call(t, alipaysim.MethodRefundQuery, m{"out_trade_no": "REF_1", "out_request_no": "R9"})
	if rq.str("code") != "10000" || len(rq.fields) != 2 {
		t.Errorf("refund query of an unknown request: %v, want only code and msg", rq.fields)
	}
	if got := sim.Refunds("REF_1"); len(got) != 2 || got[0].OutRequestNo != "R1" || got[1].Status != alipaysim.RefundSuccess {
		t.Errorf("Refunds: %+v", got)
	}

	// Refunding an unpaid trade.
	c.call(t, alipaysim.MethodCreate, m{"out_trade_no": "REF_UNPAID", "total_amount": "1", "subject": "s", "buyer_id": "2088102146225135"})
	if r := c.call(t, alipaysim.MethodRefund, m{"out_trade_no": "REF_UNPAID", "refund_amount": "1", "out_request_no": "X"}); r.sub() != "ACQ.TRADE_STATUS_ERROR" {
		t.Errorf("refund unpaid: %v", r.fields)
	}
	// A whole refund without out_request_no is named by out_trade_no.
	createAndPay(t, c, "REF_2", "5")
	if r := c.call(t, alipaysim.MethodRefund, m{"out_trade_no": "REF_2", "refund_amount": "5.00"}); r.str("fund_change") != "Y" {
		t.Errorf("whole refund: %v", r.fields)
	}
	if rq := c.call(t, alipaysim.MethodRefundQuery, m{"out_trade_no": "REF_2", "out_request_no": "REF_2"}); rq.str("refund_status") != "REFUND_SUCCESS" {
		t.Errorf("query whole refund by out_trade_no: %v", rq.fields)
	}
	_ = ctx
}

func TestAsyncRefundAndBalanceFaults(t *testing.T) {
	sim := startSim(t, nil)
	rc := newReceiver(t, nil)
	c := newClient(sim)
	c.notifyURL = rc.url()
	createAndPay(t, c, "ASYNC_1", "20.00")
	rc.wait(t, 1)

	sim.SetFaults(alipaysim.Faults{RefundBalanceNotEnough: true})
	if r := c.call(t, alipaysim.MethodRefund, m{"out_trade_no": "ASYNC_1", "refund_amount": "5", "out_request_no": "A1"}); r.sub() != "ACQ.SELLER_BALANCE_NOT_ENOUGH" {
		t.Errorf("balance fault: %v", r.fields)
	}
	sim.SetFaults(alipaysim.Faults{AsyncRefunds: true})
	if r := c.call(t, alipaysim.MethodRefund, m{"out_trade_no": "ASYNC_1", "refund_amount": "5", "out_request_no": "A1"}); r.str("code") != "10000" || r.str("fund_change") != "N" || r.str("refund_fee") != "0.00" {
		t.Errorf("async refund: %v", r.fields)
	}
	rq := c.call(t, alipaysim.MethodRefundQuery, m{"out_trade_no": "ASYNC_1", "out_request_no": "A1"})
	if rq.str("code") != "10000" || rq.str("refund_status") != "" || rq.str("refund_amount") != "5.00" {
		t.Errorf("query processing refund: %v", rq.fields)
	}
	// Processing refunds count against the refundable amount.
	if r := c.call(t, alipaysim.MethodRefund, m{"out_trade_no": "ASYNC_1", "refund_amount": "15.01", "out_request_no": "A2"}); r.sub() != "ACQ.REASON_TRADE_REFUND_FEE_ERR" {
		t.Errorf("over-refund with one processing: %v", r.fields)
	}
	if err := sim.SettleRefund("ASYNC_1", "A1"); err != nil {
		t.Fatal(err)
	}
	if rq := c.call(t, alipaysim.MethodRefundQuery, m{"out_trade_no": "ASYNC_1", "out_request_no": "A1"}); rq.str("refund_status") != "REFUND_SUCCESS" {
		t.Errorf("query settled refund: %v", rq.fields)
	}
	if n := rc.wait(t, 2)[1].form; n.Get("refund_fee") != "5.00" || n.Get("out_biz_no") != "A1" {
		t.Errorf("settled refund notification: %v", n)
	}
	if err := sim.SettleRefund("ASYNC_1", "A1"); !errors.Is(err, alipaysim.ErrTradeState) {
		t.Errorf("settle twice: %v", err)
	}
	// With a settle delay it settles by itself.
	sim.SetFaults(alipaysim.Faults{AsyncRefunds: true, RefundSettleDelay: 20 * time.Millisecond})
	c.call(t, alipaysim.MethodRefund, m{"out_trade_no": "ASYNC_1", "refund_amount": "1", "out_request_no": "A3"})
	if n := rc.wait(t, 3)[2].form; n.Get("refund_fee") != "6.00" || n.Get("out_biz_no") != "A3" {
		t.Errorf("delayed settle notification: %v", n)
	}
}

// TestRetriesStopOnSuccess: only status 200 with the body "success" acks;
// the same signed notification (same notify_id) is retried until then.
func TestRetriesStopOnSuccess(t *testing.T) {
	sim := startSim(t, nil)
	rc := newReceiver(t, func(n int, _ url.Values) (int, string) {
		switch n {
		case 0:
			return http.StatusOK, "fail"
		case 1:
			return http.StatusInternalServerError, "success"
		}
		return http.StatusOK, "success\n"
	})
	c := newClient(sim)
	c.notifyURL = rc.url()
	createAndPay(t, c, "RETRY_1", "1.00")
	ctx := ctxTimeout(t)
	if err := sim.WaitAcked(ctx, "RETRY_1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // longer than the schedule: no more tries come
	got := rc.all()
	if len(got) != 3 {
		t.Fatalf("%d deliveries, want 3", len(got))
	}
	for _, g := range got[1:] {
		if g.form.Encode() != got[0].form.Encode() {
			t.Errorf("a retry differs from the first try:\n%v\n%v", g.form, got[0].form)
		}
	}
	ds := sim.Deliveries("RETRY_1")
	if len(ds) != 3 || ds[0].Acked || ds[1].Acked || !ds[2].Acked || ds[1].Status != 500 || ds[0].Body != "fail" {
		t.Errorf("deliveries: %+v", ds)
	}
	// Resend delivers once more, recorded as manual.
	d, err := sim.Resend(ctx, ds[0].NotifyID)
	if err != nil || !d.Acked || !d.Manual || d.Attempt != 3 {
		t.Errorf("resend: %+v %v", d, err)
	}
	if _, err := sim.Resend(ctx, "nope"); !errors.Is(err, alipaysim.ErrNotifyUnknown) {
		t.Errorf("resend unknown: %v", err)
	}
}

// TestRetryScheduleScaled runs Alipay's whole schedule (4m … 15h) scaled
// down: 8 tries, each wait at least the scaled one, then nothing more.
func TestRetryScheduleScaled(t *testing.T) {
	const scale = 1.0 / 200000 // 25h → 0.45s
	sim := startSim(t, func(o *alipaysim.Options) { o.RetrySchedule, o.RetryScale = nil, scale })
	rc := newReceiver(t, func(int, url.Values) (int, string) { return http.StatusServiceUnavailable, "" })
	c := newClient(sim)
	c.notifyURL = rc.url()
	createAndPay(t, c, "SCHED_1", "1.00")
	ctx := ctxTimeout(t)
	if err := sim.WaitAcked(ctx, "SCHED_1"); err == nil {
		t.Fatal("acked, want gave up")
	}
	got := rc.all()
	if len(got) != 8 {
		t.Fatalf("%d tries, want 8", len(got))
	}
	for i, want := range alipaysim.DefaultRetrySchedule() {
		scaled := time.Duration(float64(want) * scale)
		if gap := got[i+1].at.Sub(got[i].at); gap < scaled {
			t.Errorf("wait before retry %d: %v, want at least %v", i+1, gap, scaled)
		}
		if got[i+1].form.Get("notify_id") != got[0].form.Get("notify_id") {
			t.Errorf("retry %d has another notify_id", i+1)
		}
	}
}

func TestLegacyContentTypeAndDroppedNotifications(t *testing.T) {
	sim := startSim(t, func(o *alipaysim.Options) { o.LegacyNotifyContentType = true })
	rc := newReceiver(t, nil)
	c := newClient(sim)
	c.notifyURL = rc.url()
	createAndPay(t, c, "LEGACY_1", "1.00")
	n := rc.wait(t, 1)[0]
	if n.header.Get("Content-Type") != alipaysim.LegacyNotifyContentType {
		t.Errorf("Content-Type %q", n.header.Get("Content-Type"))
	}
	if n.parseErr == nil {
		t.Error("Go's ParseForm accepted the legacy Content-Type; the fault is meant to trip it")
	}

	sim.SetFaults(alipaysim.Faults{DropNotifications: true})
	createAndPay(t, c, "DROP_1", "1.00")
	ns := sim.Notifications("DROP_1")
	if len(ns) != 1 || !ns[0].Dropped || len(ns[0].Deliveries) != 0 {
		t.Errorf("dropped notification: %+v", ns)
	}
	time.Sleep(30 * time.Millisecond)
	if len(rc.all()) != 1 {
		t.Errorf("a dropped notification was delivered")
	}
}

func TestGatewayFaults(t *testing.T) {
	sim := startSim(t, nil)
	c := newClient(sim)
	q := m{"out_trade_no": "F_1"}
	sim.FailNext(1, alipaysim.Failure{Status: 502})
	resp, err := http.PostForm(sim.GatewayURL(), c.params(alipaysim.MethodQuery, q))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 502 {
		t.Errorf("FailNext 502: %d", resp.StatusCode)
	}
	sim.FailNext(1, alipaysim.Failure{})
	if r := c.call(t, alipaysim.MethodQuery, q); r.name != "error_response" || r.str("code") != "20000" {
		t.Errorf("FailNext unavailable: %s %v", r.name, r.fields)
	}
	sim.FailNext(1, alipaysim.Failure{Hang: time.Second})
	hc := &http.Client{Timeout: 100 * time.Millisecond}
	if _, err := hc.PostForm(sim.GatewayURL(), c.params(alipaysim.MethodQuery, q)); err == nil {
		t.Error("FailNext hang: answered")
	}
	if r := c.call(t, alipaysim.MethodQuery, q); r.sub() != "ACQ.TRADE_NOT_EXIST" {
		t.Errorf("after the faults: %v", r.fields)
	}
	sim.SetFaults(alipaysim.Faults{BadResponseSignature: true})
	c.skipVerifyResp = true
	resp, err = http.PostForm(sim.GatewayURL(), c.params(alipaysim.MethodQuery, q))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	strict := newClient(sim)
	r := c.decode(t, alipaysim.MethodQuery, body)
	if !r.signed {
		t.Fatal("no sign")
	}
	// The strict client (newClient) verifies; do it by hand here.
	if err := verifyReply(strict, alipaysim.MethodQuery, body); err == nil {
		t.Error("BadResponseSignature: the reply still verifies")
	}
}
