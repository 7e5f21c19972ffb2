package paysim_test

import (
	"errors"
	"html"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/h5"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/jsapi"

	"github.com/payfn/payfn/shared/paysim"
)

func h5Request(outTradeNo, notify string, total int64) h5.PrepayRequest {
	return h5.PrepayRequest{
		Appid:       core.String(appID),
		Mchid:       core.String(mchID),
		Description: core.String("Image形象店-深圳腾大-QQ公仔"),
		OutTradeNo:  core.String(outTradeNo),
		Attach:      core.String("cart=42"),
		NotifyUrl:   core.String(notify),
		Amount:      &h5.Amount{Total: core.Int64(total), Currency: core.String("CNY")},
		SceneInfo: &h5.SceneInfo{
			PayerClientIp: core.String("203.0.113.7"),
			H5Info:        &h5.H5Info{Type: core.String("Wap")},
		},
	}
}

func h5Prepay(t testing.TB, sim *paysim.Server, req h5.PrepayRequest) string {
	t.Helper()
	svc := h5.H5ApiService{Client: publicKeyClient(t, sim)}
	resp, _, err := svc.Prepay(ctxTimeout(t), req)
	if err != nil {
		t.Fatalf("H5 Prepay(%s): %v", *req.OutTradeNo, err)
	}
	return *resp.H5Url
}

// browser is a plain client that does not follow redirects, so a test sees
// where the page sends the buyer.
var browser = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func get(t testing.TB, u string) (int, string) {
	t.Helper()
	resp, err := browser.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("GET %s: Content-Type %q, want text/html", u, ct)
	}
	return resp.StatusCode, string(b)
}

// submit posts the page's form back to the h5_url, as a browser does.
func submit(t testing.TB, h5URL, action string) *http.Response {
	t.Helper()
	resp, err := browser.PostForm(h5URL, url.Values{"action": {action}})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

var (
	formRE   = regexp.MustCompile(`(?s)<form method="post" action="([^"]*)"[^>]*>(.*?)</form>`)
	hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
)

// firstForm reads the first form of a page: its action and hidden fields.
func firstForm(t testing.TB, page string) (string, url.Values) {
	t.Helper()
	m := formRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no form on the page:\n%s", page)
	}
	v := url.Values{}
	for _, f := range hiddenRE.FindAllStringSubmatch(m[2], -1) {
		v.Set(html.UnescapeString(f[1]), html.UnescapeString(f[2]))
	}
	return html.UnescapeString(m[1]), v
}

func TestH5PrepayAnswersAnH5URLOnTheSimulatorWhosePagePays(t *testing.T) {
	sim := startSim(t, nil)
	rc := newReceiver(t, func(int, *http.Request, []byte) int { return http.StatusNoContent })
	u := h5Prepay(t, sim, h5Request("H5PAY_0001", rc.url(), 1234))

	pu, err := url.Parse(u)
	if err != nil || pu.Scheme+"://"+pu.Host != sim.URL() || pu.Path != paysim.H5CheckoutPath {
		t.Fatalf("h5_url = %q, want %s%s?…", u, sim.URL(), paysim.H5CheckoutPath)
	}
	prepayID, pkg := pu.Query().Get("prepay_id"), pu.Query().Get("package")
	if !strings.HasPrefix(prepayID, "wx") || pkg == "" || len(pkg) > 10 {
		t.Errorf("h5_url query prepay_id=%q package=%q", prepayID, pkg)
	}

	status, page := get(t, u)
	if status != http.StatusOK {
		t.Fatalf("GET h5_url: %d\n%s", status, page)
	}
	for _, want := range []string{"¥12.34", "Image形象店-深圳腾大-QQ公仔", mchID, "H5PAY_0001", `method="post" action="` + paysim.H5CheckoutPath + `"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q:\n%s", want, page)
		}
	}

	// The browser posts the page's first form, as it finds it.
	action, fields := firstForm(t, page)
	if fields.Get("prepay_id") != prepayID || fields.Get("package") != pkg || fields.Has("action") {
		t.Errorf("the Pay form's fields are %v", fields)
	}
	resp, err := browser.PostForm(sim.URL()+action, fields)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST the Pay form: %d", resp.StatusCode)
	}
	rec := rc.next(t)
	tx, _, err := parseWithSDK(notifyHandler(t, sim), rec)
	if err != nil {
		t.Fatalf("SDK rejected the H5 notification: %v", err)
	}
	if *tx.TradeType != paysim.TradeTypeMWEB || *tx.TradeState != "SUCCESS" || *tx.OutTradeNo != "H5PAY_0001" || *tx.Amount.Total != 1234 {
		t.Errorf("notified transaction = %v", tx)
	}
	if tx.Payer != nil && tx.Payer.Openid != nil {
		t.Errorf("an H5 notification names payer %q; H5 trades are prepaid without one", *tx.Payer.Openid)
	}
	if err := sim.WaitAcked(ctxTimeout(t), "H5PAY_0001"); err != nil {
		t.Fatal(err)
	}

	svc := jsapi.JsapiApiService{Client: publicKeyClient(t, sim)}
	q, _, err := svc.QueryOrderByOutTradeNo(ctxTimeout(t), jsapi.QueryOrderByOutTradeNoRequest{OutTradeNo: core.String("H5PAY_0001"), Mchid: core.String(mchID)})
	if err != nil || *q.TradeState != "SUCCESS" || *q.TradeType != "MWEB" || q.Payer != nil {
		t.Fatalf("query after paying = %v, %v", q, err)
	}

	// Paid: the page says so and pays nothing more.
	if status, page := get(t, u); status != http.StatusConflict || !strings.Contains(page, "already paid") {
		t.Errorf("GET a paid order's h5_url: %d\n%s", status, page)
	}
	if resp := submit(t, u, "pay"); resp.StatusCode != http.StatusConflict {
		t.Errorf("POST a paid order's h5_url: %d, want 409", resp.StatusCode)
	}
}

func TestH5PageHonoursRedirectURLAfterPayingAndOnCancel(t *testing.T) {
	sim := startSim(t, nil)
	ret := "https://shop.example.com/back?order=H5RET_0001&x=a b"
	u := h5Prepay(t, sim, h5Request("H5RET_0001", notifyURL, 50)) + "&redirect_url=" + url.QueryEscape(ret)

	status, page := get(t, u)
	if status != http.StatusOK {
		t.Fatalf("GET: %d\n%s", status, page)
	}
	if _, fields := firstForm(t, page); fields.Get("redirect_url") != ret {
		t.Errorf("the form carries redirect_url %q, want %q", fields.Get("redirect_url"), ret)
	}
	resp := submit(t, u, "cancel")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != ret {
		t.Fatalf("cancel: %d to %q, want 302 to %q", resp.StatusCode, resp.Header.Get("Location"), ret)
	}
	if ts, _ := sim.Trade("H5RET_0001"); ts.TradeState != paysim.StateNotPay {
		t.Fatalf("after cancel the trade is %s, want NOTPAY", ts.TradeState)
	}
	resp = submit(t, u, "pay")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != ret {
		t.Fatalf("pay: %d to %q, want 302 to %q", resp.StatusCode, resp.Header.Get("Location"), ret)
	}
	if ts, _ := sim.Trade("H5RET_0001"); ts.TradeState != paysim.StateSuccess || ts.TradeType != paysim.TradeTypeMWEB {
		t.Fatalf("after paying the trade is %s %s, want SUCCESS MWEB", ts.TradeState, ts.TradeType)
	}

	bad := strings.Replace(u, url.QueryEscape(ret), "javascript%3Aalert(1)", 1)
	if status, _ := get(t, bad); status != http.StatusBadRequest {
		t.Errorf("GET with a javascript: redirect_url: %d, want 400", status)
	}
}

func TestH5URLExpiresAndAnIdenticalPrepayIssuesAFreshOne(t *testing.T) {
	sim := startSim(t, func(o *paysim.Options) { o.H5URLLifetime = 300 * time.Millisecond })
	req := h5Request("H5EXP_0001", notifyURL, 100)
	first := h5Prepay(t, sim, req)
	time.Sleep(400 * time.Millisecond)
	if status, page := get(t, first); status != http.StatusGone || !strings.Contains(page, "expired") {
		t.Errorf("GET an expired h5_url: %d\n%s", status, page)
	}
	if resp := submit(t, first, "pay"); resp.StatusCode != http.StatusGone {
		t.Errorf("POST an expired h5_url: %d, want 410", resp.StatusCode)
	}

	second := h5Prepay(t, sim, req) // "原参重入": identical parameters, fresh link
	if second == first {
		t.Fatal("a repeated prepay returned the same h5_url")
	}
	if resp := submit(t, second, "pay"); resp.StatusCode != http.StatusOK {
		t.Fatalf("POST the fresh h5_url: %d", resp.StatusCode)
	}
	if ts, _ := sim.Trade("H5EXP_0001"); ts.TradeState != paysim.StateSuccess || len(ts.PrepayIDs) != 2 {
		t.Errorf("trade = %+v, want SUCCESS after two prepays", ts)
	}

	// Changed parameters, or the same number as a JSAPI trade, are refused.
	changed := h5Request("H5EXP_0002", notifyURL, 100)
	h5Prepay(t, sim, changed)
	changed.Amount.Total = core.Int64(101)
	svc := h5.H5ApiService{Client: publicKeyClient(t, sim)}
	if _, _, err := svc.Prepay(ctxTimeout(t), changed); !core.IsAPIError(err, paysim.CodeOutTradeNoUse) {
		t.Errorf("H5 prepay with a changed amount: %v, want %s", err, paysim.CodeOutTradeNoUse)
	}
	js := jsapi.JsapiApiService{Client: publicKeyClient(t, sim)}
	jr := prepayRequest("H5EXP_0002", notifyURL, 100)
	jr.Description, jr.Attach = changed.Description, changed.Attach
	if _, _, err := js.Prepay(ctxTimeout(t), jr); !core.IsAPIError(err, paysim.CodeOutTradeNoUse) {
		t.Errorf("JSAPI prepay of an H5 trade's number: %v, want %s", err, paysim.CodeOutTradeNoUse)
	}
}

func TestH5LinksTheSimulatorDidNotIssueAreRefused(t *testing.T) {
	sim := startSim(t, nil)
	u := h5Prepay(t, sim, h5Request("H5BAD_0001", notifyURL, 100))
	pu, _ := url.Parse(u)
	q := pu.Query()

	wrongPackage := sim.URL() + paysim.H5CheckoutPath + "?prepay_id=" + q.Get("prepay_id") + "&package=1" + q.Get("package")
	unknown := sim.URL() + paysim.H5CheckoutPath + "?prepay_id=wx20990101000000deadbeefdeadbeefdead&package=" + q.Get("package")
	for name, link := range map[string]string{"wrong package": wrongPackage, "unknown prepay_id": unknown} {
		if status, _ := get(t, link); status != http.StatusNotFound {
			t.Errorf("GET with a %s: %d, want 404", name, status)
		}
		if resp := submit(t, link, "pay"); resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST with a %s: %d, want 404", name, resp.StatusCode)
		}
	}
	// A JSAPI prepay_id is no H5 link, whatever the package.
	js := jsapi.JsapiApiService{Client: publicKeyClient(t, sim)}
	id := prepay(t, js, prepayRequest("H5BAD_0002", notifyURL, 100))
	if status, _ := get(t, sim.URL()+paysim.H5CheckoutPath+"?prepay_id="+id+"&package=0"); status != http.StatusNotFound {
		t.Errorf("GET with a JSAPI prepay_id: %d, want 404", status)
	}
	if ts, _ := sim.Trade("H5BAD_0001"); ts.TradeState != paysim.StateNotPay {
		t.Errorf("a refused link changed the trade: %s", ts.TradeState)
	}
}

func TestH5PrepayChecksSceneInfo(t *testing.T) {
	sim := startSim(t, nil)
	c := publicKeyClient(t, sim)
	valid := func() map[string]any {
		return map[string]any{
			"appid": appID, "mchid": mchID, "description": "ok", "out_trade_no": "H5SCENE_01",
			"notify_url": notifyURL, "amount": map[string]any{"total": 1},
			"scene_info": map[string]any{"payer_client_ip": "2001:db8::7", "h5_info": map[string]any{"type": "Wap"}},
		}
	}
	scene := func(m map[string]any) map[string]any { return m["scene_info"].(map[string]any) }
	cases := map[string]func(map[string]any){
		"no scene_info":          func(m map[string]any) { delete(m, "scene_info") },
		"no payer_client_ip":     func(m map[string]any) { delete(scene(m), "payer_client_ip") },
		"payer_client_ip a name": func(m map[string]any) { scene(m)["payer_client_ip"] = "client.example.com" },
		"no h5_info":             func(m map[string]any) { delete(scene(m), "h5_info") },
		"no h5_info type":        func(m map[string]any) { scene(m)["h5_info"] = map[string]any{} },
		"h5_info type Web":       func(m map[string]any) { scene(m)["h5_info"] = map[string]any{"type": "Web"} },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			body := valid()
			mutate(body)
			_, err := c.Post(ctxTimeout(t), "https://api.mch.weixin.qq.com/v3/pay/transactions/h5", body)
			var apiErr *core.APIError
			if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || apiErr.Code != "PARAM_ERROR" {
				t.Fatalf("err = %v, want 400 PARAM_ERROR", err)
			}
		})
	}
	if _, ok := sim.Trade("H5SCENE_01"); ok {
		t.Fatal("a refused prepay created a trade")
	}
	res, err := c.Post(ctxTimeout(t), "https://api.mch.weixin.qq.com/v3/pay/transactions/h5", valid())
	if err != nil {
		t.Fatalf("valid H5 prepay with an IPv6 client and no payer: %v", err)
	}
	if b, _ := io.ReadAll(res.Response.Body); !strings.Contains(string(b), `"h5_url"`) {
		t.Errorf("reply %s lacks h5_url", b)
	}
}

func TestH5BaseURLOptionAndStateSurviveARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sim.json")
	sim := startSim(t, func(o *paysim.Options) {
		o.StatePath = path
		o.H5BaseURL = "http://192.168.1.5:8090/"
	})
	u := h5Prepay(t, sim, h5Request("H5KEEP_001", notifyURL, 100))
	if !strings.HasPrefix(u, "http://192.168.1.5:8090"+paysim.H5CheckoutPath+"?") {
		t.Fatalf("h5_url = %q, want it on H5BaseURL", u)
	}
	if err := sim.Close(); err != nil {
		t.Fatal(err)
	}
	again := startSim(t, func(o *paysim.Options) { o.StatePath = path })
	local := again.URL() + strings.TrimPrefix(u, "http://192.168.1.5:8090")
	if resp := submit(t, local, "pay"); resp.StatusCode != http.StatusOK {
		t.Fatalf("paying a link issued before the restart: %d", resp.StatusCode)
	}
	if ts, _ := again.Trade("H5KEEP_001"); ts.TradeType != paysim.TradeTypeMWEB {
		t.Errorf("after the restart the paid trade is %q, want MWEB", ts.TradeType)
	}
	if _, err := paysim.New(paysim.Options{
		MchID: mchID, AppID: appID, AppSecret: appSecret, APIv3Key: apiV3Key,
		MerchantSerial: merchantSerial, MerchantPublicKey: &merchantKey.PublicKey, H5BaseURL: "192.168.1.5:8090",
	}); err == nil {
		t.Error("New accepted an H5BaseURL without a scheme")
	}
}
