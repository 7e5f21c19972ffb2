package devstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/payfn/payfn/scripts/dev/devstack"
	"github.com/payfn/payfn/scripts/receiver/receiver"
	"github.com/payfn/payfn/shared/app"
)

func start(t *testing.T, dir string) *devstack.Stack {
	t.Helper()
	s, err := devstack.Start(context.Background(), devstack.Options{
		Addr: "127.0.0.1:0", SimAddr: "127.0.0.1:0", DataDir: dir,
		SimRetrySchedule: []time.Duration{50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func call(t *testing.T, base, path, token string, in any, out any) int {
	t.Helper()
	b, _ := json.Marshal(in)
	req, _ := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode
}

// TestCheckoutPageJourneyEndsPaid walks what the checkout page does, against
// the stack `go run ./scripts/dev` starts: embedded store, simulator, seeded
// products, every function on one port.
func TestCheckoutPageJourneyEndsPaid(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir)
	defer s.Close()

	resp, err := http.Get(s.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "payfn — local checkout") {
		t.Fatalf("checkout page: %d", resp.StatusCode)
	}
	resp, err = http.Get(s.URL + "/dev/products")
	if err != nil {
		t.Fatal(err)
	}
	var products []map[string]any
	json.NewDecoder(resp.Body).Decode(&products)
	resp.Body.Close()
	if len(products) != 3 {
		t.Fatalf("catalogue lists %d active products, want 3: %v", len(products), products)
	}

	var code struct{ Code string }
	call(t, s.URL, "/dev/login-code", "", map[string]string{"openid": "o-dev"}, &code)
	var session struct{ Token string }
	if st := call(t, s.URL, "/login", "", map[string]string{"code": code.Code}, &session); st != 200 {
		t.Fatalf("login: %d", st)
	}
	var o struct {
		OrderID  string `json:"order_id"`
		TotalFen int64  `json:"total_fen"`
		Status   string
	}
	if st := call(t, s.URL, "/createOrder", session.Token, map[string]any{"product_id": "coffee-latte", "quantity": 2, "request_id": "page-1"}, &o); st != 201 || o.TotalFen != 5600 {
		t.Fatalf("createOrder: %d %+v", st, o)
	}
	var pay struct{ Payment map[string]string }
	if st := call(t, s.URL, "/pay", session.Token, map[string]string{"order_id": o.OrderID}, &pay); st != 200 {
		t.Fatalf("pay: %d", st)
	}
	if st := call(t, s.URL, "/dev/sim-pay", "", map[string]string{"package": pay.Payment["package"]}, nil); st != 200 {
		t.Fatalf("sim-pay: %d", st)
	}
	deadline := time.Now().Add(10 * time.Second)
	for o.Status != "PAID" && time.Now().Before(deadline) {
		call(t, s.URL, "/queryOrder", session.Token, map[string]string{"order_id": o.OrderID}, &o)
		time.Sleep(20 * time.Millisecond)
	}
	if o.Status != "PAID" {
		t.Fatalf("order is %s, want PAID", o.Status)
	}

	// The simulator's keys are on disk for outside tools.
	var keys map[string]string
	b, err := os.ReadFile(filepath.Join(dir, "wechatpay-sim.json"))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(b, &keys)
	for _, k := range []string{"platform_private_key_pem", "public_key_pem", "public_key_id", "apiv3_key", "mchid", "appid"} {
		if keys[k] == "" {
			t.Errorf("wechatpay-sim.json lacks %s", k)
		}
	}
}

func TestRestartKeepsKeysAndOrders(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir)
	var code struct{ Code string }
	call(t, s.URL, "/dev/login-code", "", map[string]string{"openid": "o-dev"}, &code)
	var session struct{ Token string }
	call(t, s.URL, "/login", "", map[string]string{"code": code.Code}, &session)
	var o struct {
		OrderID string `json:"order_id"`
	}
	call(t, s.URL, "/createOrder", session.Token, map[string]any{"product_id": "article-42", "quantity": 1, "request_id": "r-1"}, &o)
	first := s.Config
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = start(t, dir)
	defer s.Close()
	if s.Config.APIv3Key != first.APIv3Key || s.Config.MchPrivateKeyPEM != first.MchPrivateKeyPEM || s.Config.SessionSecret != first.SessionSecret {
		t.Fatal("restart made new local keys")
	}
	var again struct {
		OrderID string `json:"order_id"`
		Status  string
	}
	if st := call(t, s.URL, "/queryOrder", session.Token, map[string]string{"order_id": o.OrderID}, &again); st != 200 || again.Status != "NOTPAY" {
		t.Fatalf("after restart the order or the session is gone: %d %+v", st, again)
	}
}

func getResp(t *testing.T, url string) *http.Response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// login returns a session token for openid, the way the checkout page gets
// one.
func login(t *testing.T, base, openid string) string {
	t.Helper()
	var code struct{ Code string }
	call(t, base, "/dev/login-code", "", map[string]string{"openid": openid}, &code)
	var session struct{ Token string }
	if st := call(t, base, "/login", "", map[string]string{"code": code.Code}, &session); st != http.StatusOK {
		t.Fatalf("login: %d", st)
	}
	return session.Token
}

// TestRestartKeepsTheSimulatorsTradesSoPayAndRefundStillWork restarts the
// stack between getting the payment parameters and paying, and between
// paying and refunding: the simulator's trades live in the data folder as
// the orders do (before, the restarted simulator answered "unknown
// prepay_id" and the refund 502 REFUND_REJECTED).
func TestRestartKeepsTheSimulatorsTradesSoPayAndRefundStillWork(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir)
	token := login(t, s.URL, "o-restart")
	var o struct {
		OrderID string `json:"order_id"`
		Status  string
	}
	call(t, s.URL, "/createOrder", token, map[string]any{"product_id": "coffee-latte", "quantity": 1, "request_id": "restart-1"}, &o)
	var pay struct{ Payment map[string]string }
	if st := call(t, s.URL, "/pay", token, map[string]string{"order_id": o.OrderID}, &pay); st != http.StatusOK {
		t.Fatalf("pay: %d", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = start(t, dir)
	if st := call(t, s.URL, "/dev/sim-pay", "", map[string]string{"package": pay.Payment["package"]}, nil); st != http.StatusOK {
		t.Fatalf("paying prepay parameters from before the restart: %d", st)
	}
	waitStatus(t, s.URL, token, o.OrderID, "PAID")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = start(t, dir)
	defer s.Close()
	b, _ := json.Marshal(map[string]any{"order_id": o.OrderID, "out_refund_no": "R-restart-1", "amount_fen": 2800, "reason": "restart test"})
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/admin/refund", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Payfn-Admin-Key", s.Config.AdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("refund of an order paid before the restart: %d %s", resp.StatusCode, raw)
	}
}

func waitStatus(t *testing.T, base, token, orderID, want string) {
	t.Helper()
	var o struct{ Status string }
	deadline := time.Now().Add(10 * time.Second)
	for o.Status != want && time.Now().Before(deadline) {
		call(t, base, "/queryOrder", token, map[string]string{"order_id": orderID}, &o)
		time.Sleep(20 * time.Millisecond)
	}
	if o.Status != want {
		t.Fatalf("order %s is %s, want %s", orderID, o.Status, want)
	}
}

// TestFreshMovesTheDataAsideAndKeepsTheKeys is `go run ./scripts/dev
// -fresh`: an empty store and simulator, the same local keys, and the old
// folder kept where the summary says.
func TestFreshMovesTheDataAsideAndKeepsTheKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".payfn")
	s := start(t, dir)
	token := login(t, s.URL, "o-fresh")
	var o struct {
		OrderID string `json:"order_id"`
	}
	call(t, s.URL, "/createOrder", token, map[string]any{"product_id": "article-42", "quantity": 1, "request_id": "fresh-1"}, &o)
	before := s.Config
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := devstack.Start(context.Background(), devstack.Options{
		Addr: "127.0.0.1:0", SimAddr: "127.0.0.1:0", DataDir: dir, Fresh: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.OldData == "" || !strings.HasPrefix(s.OldData, dir+"-old-") {
		t.Fatalf("OldData = %q, want %s-old-<time>", s.OldData, dir)
	}
	if !strings.Contains(s.Summary(), s.OldData) {
		t.Errorf("the summary does not say where the old data went:\n%s", s.Summary())
	}
	for _, f := range []string{"local-secrets.json", "db", devstack.SimStateFile} {
		if _, err := os.Stat(filepath.Join(s.OldData, f)); err != nil {
			t.Errorf("old data folder lacks %s: %v", f, err)
		}
	}
	if s.Config.AdminKey != before.AdminKey || s.Config.MchPrivateKeyPEM != before.MchPrivateKeyPEM {
		t.Error("-fresh made new local keys; it should keep them")
	}
	var again struct{ Code string }
	if st := call(t, s.URL, "/queryOrder", token, map[string]string{"order_id": o.OrderID}, &again); st != http.StatusNotFound {
		t.Errorf("an order from before -fresh: %d %+v, want 404", st, again)
	}
}

// TestEveryInterfaceKeepsTheNotifyURLOnLoopback: -addr 0.0.0.0:8080 opens
// the page to the LAN; the functions' URL and notify_url must still be an
// address the simulator accepts and can reach.
func TestEveryInterfaceKeepsTheNotifyURLOnLoopback(t *testing.T) {
	s, err := devstack.Start(context.Background(), devstack.Options{
		Addr: "0.0.0.0:0", SimAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		SimRetrySchedule: []time.Duration{50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.AllInterfaces || !strings.HasPrefix(s.URL, "http://127.0.0.1:") || !strings.HasPrefix(s.Config.NotifyURL, "http://127.0.0.1:") {
		t.Fatalf("URL %s, notify_url %s, all interfaces %v", s.URL, s.Config.NotifyURL, s.AllInterfaces)
	}
	token := login(t, s.URL, "o-lan")
	var o struct {
		OrderID string `json:"order_id"`
	}
	call(t, s.URL, "/createOrder", token, map[string]any{"product_id": "article-42", "quantity": 1, "request_id": "lan-1"}, &o)
	var pay struct{ Payment map[string]string }
	if st := call(t, s.URL, "/pay", token, map[string]string{"order_id": o.OrderID}, &pay); st != http.StatusOK {
		t.Fatalf("pay: %d", st)
	}
	if st := call(t, s.URL, "/dev/sim-pay", "", map[string]string{"package": pay.Payment["package"]}, nil); st != http.StatusOK {
		t.Fatalf("sim-pay: %d", st)
	}
	waitStatus(t, s.URL, token, o.OrderID, "PAID")
}

// signed sends a server-API request as the demo app's server does.
func signed(t *testing.T, s *devstack.Stack, method, path string, in any, out any) int {
	t.Helper()
	var body []byte
	if in != nil {
		body, _ = json.Marshal(in)
	}
	req, _ := http.NewRequest(method, s.URL+path, bytes.NewReader(body))
	ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), strconv.FormatInt(time.Now().UnixNano(), 36)+"-devstack-test"
	req.Header.Set("X-Payfn-Key-Id", s.Demo.KeyID)
	req.Header.Set("X-Payfn-Timestamp", ts)
	req.Header.Set("X-Payfn-Nonce", nonce)
	req.Header.Set("X-Payfn-Signature", app.SignServerRequest(s.Demo.KeySecret, method, path, ts, nonce, body))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode
}

// waitWebhooks waits until the sample receiver has processed each of types
// for orderID, and returns them by type.
func waitWebhooks(t *testing.T, s *devstack.Stack, orderID string, types ...string) map[string]receiver.Event {
	t.Helper()
	got := map[string]receiver.Event{}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range s.Webhooks() {
			if e.Data.Order.OrderID == orderID {
				got[e.Type] = e
			}
		}
		all := true
		for _, typ := range types {
			_, ok := got[typ]
			all = all && ok
		}
		if all {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the sample receiver processed %v for order %s, want %v", got, orderID, types)
	return nil
}

// TestServiceModeDemoAppDeliversWebhooksToTheSampleReceiver: the stack
// seeds the demo app once, and a purchase through the signed server API
// reaches the in-process sample receiver as order.created and order.paid,
// before and after a restart on another port.
func TestServiceModeDemoAppDeliversWebhooksToTheSampleReceiver(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir)
	d := s.Demo
	if d.AppID != devstack.DemoAppID || d.KeyID == "" || !strings.HasPrefix(d.KeySecret, "sk_") ||
		!strings.HasPrefix(d.WebhookSecret, "whsec_") || d.EndpointURL != s.URL+devstack.DemoWebhookPath || !s.DemoShown {
		t.Fatalf("demo app %+v (shown %v)", d, s.DemoShown)
	}
	sum := s.Summary()
	if !strings.Contains(sum, d.KeySecret) || !strings.Contains(sum, d.WebhookSecret) || !strings.Contains(sum, "scripts/payfnctl") {
		t.Errorf("the first summary does not show the new secrets and how to try them:\n%s", sum)
	}
	fi, err := os.Stat(filepath.Join(dir, devstack.DemoFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v, want mode 0600", devstack.DemoFile, fi, err)
	}

	purchase := func(s *devstack.Stack, requestID string) string {
		t.Helper()
		var o struct {
			OrderID string            `json:"order_id"`
			Payment map[string]string `json:"payment"`
		}
		if st := signed(t, s, http.MethodPost, "/v1/orders", map[string]any{"product_id": devstack.DemoProductID, "quantity": 1,
			"request_id": requestID, "buyer": "alice", "payer_openid": "o-alice-0001", "attach": "cart=" + requestID}, &o); st != http.StatusCreated {
			t.Fatalf("server API order: %d %+v", st, o)
		}
		if st := call(t, s.URL, "/dev/sim-pay", "", map[string]string{"package": o.Payment["package"]}, nil); st != http.StatusOK {
			t.Fatalf("sim-pay: %d", st)
		}
		got := waitWebhooks(t, s, o.OrderID, "order.created", "order.paid")
		if got["order.paid"].Data.Attach != "cart="+requestID || got["order.paid"].Data.Order.Status != "PAID" {
			t.Fatalf("order.paid %+v", got["order.paid"])
		}
		return o.OrderID
	}
	purchase(s, "svc-1")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = start(t, dir)
	defer s.Close()
	if s.DemoShown || s.Demo.KeyID != d.KeyID || s.Demo.KeySecret != d.KeySecret || s.Demo.WebhookSecret != d.WebhookSecret || s.Demo.EndpointID != d.EndpointID {
		t.Fatalf("restart changed the demo app's credentials: %+v, was %+v", s.Demo, d)
	}
	if strings.Contains(s.Summary(), d.KeySecret) {
		t.Error("a restart shows the API key secret again")
	}
	if s.Demo.EndpointURL != s.URL+devstack.DemoWebhookPath {
		t.Fatalf("endpoint %s after a restart on %s", s.Demo.EndpointURL, s.URL)
	}
	purchase(s, "svc-2")
}

// TestLostDemoCredentialsAreReplaced: payfn shows a secret once, so a start
// that finds the demo app but not demo-app.json makes new credentials for
// it, on the same endpoint, and they work.
func TestLostDemoCredentialsAreReplaced(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir)
	before := s.Demo
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, devstack.DemoFile)); err != nil {
		t.Fatal(err)
	}

	s = start(t, dir)
	defer s.Close()
	d := s.Demo
	if !s.DemoShown || d.KeyID == before.KeyID || d.WebhookSecret == before.WebhookSecret || d.EndpointID != before.EndpointID {
		t.Fatalf("after losing %s: %+v (shown %v), was %+v", devstack.DemoFile, d, s.DemoShown, before)
	}
	var o struct {
		OrderID string `json:"order_id"`
	}
	if st := signed(t, s, http.MethodPost, "/v1/orders", map[string]any{"product_id": devstack.DemoProductID, "quantity": 1,
		"request_id": "lost-1", "buyer": "bob", "payer_openid": "o-bob-00001"}, &o); st != http.StatusCreated {
		t.Fatalf("server API with the new key: %d", st)
	}
	waitWebhooks(t, s, o.OrderID, "order.created")
}

// TestEveryChannelEndToEnd walks what the checkout page does for the demo
// app, channel by channel, through the real stack: the page asks the app's
// server (/dev/demo/...) for an order on a channel, pays it the way that
// channel's buyer does (the WeChat Pay simulator for JSAPI, the H5 page and
// the Alipay cashier followed like a browser back to the return URL, the
// Alipay simulator's control API standing in for my.tradePay), and asks
// GET /v1/orders/{id}?refresh=true until the order is PAID.
func TestEveryChannelEndToEnd(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir)
	defer s.Close()

	var apps []struct {
		ID       string   `json:"id"`
		Flow     string   `json:"flow"`
		Channels []string `json:"channels"`
	}
	if err := json.Unmarshal([]byte(get(t, s.URL+"/dev/apps")), &apps); err != nil {
		t.Fatalf("/dev/apps: %v", err)
	}
	if len(apps) != 2 || apps[0].ID != "default" || apps[1].ID != devstack.DemoAppID ||
		strings.Join(apps[1].Channels, ",") != strings.Join(devstack.AllChannels, ",") {
		t.Fatalf("/dev/apps = %+v, want default and demo with %v", apps, devstack.AllChannels)
	}
	if s.Alipay == nil || !strings.Contains(s.Summary(), s.AlipayURL) {
		t.Fatalf("no Alipay simulator in the stack or its summary:\n%s", s.Summary())
	}
	for _, f := range []string{"app_private_key.pem", "alipay_public_key.pem", "alipay_private_key.pem"} {
		if _, err := os.Stat(filepath.Join(dir, devstack.AlipaySimDir, f)); err != nil {
			t.Errorf("the Alipay simulator's %s is not in the data folder: %v", f, err)
		}
	}

	// browser follows no redirect, so each hop is checked.
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	back := func(t *testing.T, resp *http.Response, channel string) {
		t.Helper()
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, s.URL+"/?returned="+channel) {
			t.Fatalf("the payment page answered %d to %q, want 302 to the stack's page (?returned=%s)", resp.StatusCode, loc, channel)
		}
		if page := get(t, loc); !strings.Contains(page, "payfn — local checkout") {
			t.Fatalf("the return URL %s is not the checkout page", loc)
		}
	}
	for _, ch := range devstack.AllChannels {
		t.Run(ch, func(t *testing.T) {
			var o struct {
				OrderID string         `json:"order_id"`
				Channel string         `json:"channel"`
				Status  string         `json:"status"`
				Payment map[string]any `json:"payment"`
			}
			if st := call(t, s.URL, "/dev/demo/orders", "", map[string]any{"product_id": devstack.DemoProductID, "quantity": 1,
				"channel": ch, "openid": "o-dev-buyer"}, &o); st != http.StatusCreated || o.Channel != ch || o.Status != "NOTPAY" {
				t.Fatalf("order on %s: %d %+v", ch, st, o)
			}
			str := func(k string) string { v, _ := o.Payment[k].(string); return v }
			switch ch {
			case app.ChannelWeChatJSAPI:
				if st := call(t, s.URL, "/dev/sim-pay", "", map[string]string{"package": str("package")}, nil); st != http.StatusOK {
					t.Fatalf("sim-pay: %d", st)
				}
			case app.ChannelWeChatH5:
				h5 := str("h5_url")
				if page := get(t, h5); !strings.Contains(page, "form") {
					t.Fatalf("h5_url %s is no payment page", h5)
				}
				u, err := url.Parse(h5)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := browser.PostForm(u.Scheme+"://"+u.Host+u.Path, u.Query())
				if err != nil {
					t.Fatal(err)
				}
				back(t, resp, ch)
			case app.ChannelAlipayWap:
				resp, err := browser.Get(str("pay_url"))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				cashier := resp.Header.Get("Location")
				if resp.StatusCode != http.StatusFound || !strings.Contains(cashier, "/cashier/") {
					t.Fatalf("pay_url answered %d to %q, want the cashier page", resp.StatusCode, cashier)
				}
				if !strings.HasPrefix(cashier, "http") {
					cashier = s.AlipayURL + cashier
				}
				if page := get(t, cashier); !strings.Contains(page, "Pay") {
					t.Fatalf("the cashier page %s has no Pay button", cashier)
				}
				resp, err = browser.Post(cashier+"/pay", "", nil)
				if err != nil {
					t.Fatal(err)
				}
				back(t, resp, ch)
			case app.ChannelAlipayMini:
				if str("trade_no") == "" {
					t.Fatalf("alipay_mini payment %v has no trade_no", o.Payment)
				}
				if st := call(t, s.URL, "/dev/alipay-mini-pay", "", map[string]string{"trade_no": str("trade_no")}, nil); st != http.StatusOK {
					t.Fatalf("alipay-mini-pay: %d", st)
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for o.Status != "PAID" && time.Now().Before(deadline) {
				if err := json.Unmarshal([]byte(get(t, s.URL+"/dev/demo/orders/"+o.OrderID)), &o); err != nil {
					t.Fatal(err)
				}
				if o.Status != "PAID" {
					time.Sleep(50 * time.Millisecond)
				}
			}
			if o.Status != "PAID" {
				t.Fatalf("order %s on %s is %s, want PAID", o.OrderID, ch, o.Status)
			}
		})
	}
}
