package deploy

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/payfn/payfn/shared/alipaysim"
	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/setup"
)

// runner is one started function process on either platform.
type runner interface {
	invoke(t *testing.T, req request) reply // an HTTP function, through its gateway's event
	trigger(t *testing.T) []byte            // a scheduled job, through its schedule's event
}

// fleet is every function under functions/ running on one platform, one
// process each. It counts the answers the flow checked per function, so a
// function the flow does not drive cold and then warm (a new one, say)
// fails the test.
type fleet struct {
	platform string
	answers  strings.Builder // every body the functions answered
	fns      map[setup.Function]function
	run      map[setup.Function]runner
	checked  map[setup.Function]int
}

// startFleet starts one process per function folder with start.
func startFleet(t *testing.T, platform string, start func(fn function) runner) *fleet {
	t.Helper()
	f := &fleet{platform: platform, fns: map[setup.Function]function{}, run: map[setup.Function]runner{}, checked: map[setup.Function]int{}}
	for _, fn := range functions(t) {
		f.fns[fn.Name], f.run[fn.Name] = fn, start(fn)
	}
	return f
}

func (f *fleet) fn(t *testing.T, name setup.Function) function {
	t.Helper()
	fn, ok := f.fns[name]
	if !ok {
		t.Fatalf("no folder under functions/ builds %s", name)
	}
	return fn
}

// send delivers req to the HTTP function name, on its route, and checks the
// answer's status and, when code is set, its body's code.
func (f *fleet) send(t *testing.T, name setup.Function, req request, status int, code string) reply {
	t.Helper()
	fn := f.fn(t, name)
	if fn.Path == "" {
		t.Fatalf("%s is a scheduled job, not an HTTP function", name)
	}
	if req.path == "" {
		req.path = fn.Path
	}
	routes := gatewayRoutes(t, fn)
	if !routed(routes, req.httpMethod(), req.path) {
		t.Fatalf("request %s %s for %s is on none of its routes %v", req.httpMethod(), req.path, name, routes)
	}
	for _, r := range routes {
		if routed([]string{r}, req.httpMethod(), req.path) {
			req.route = r
		}
	}
	r := f.run[name].invoke(t, req)
	f.answers.Write(r.Body)
	r.want(t, status, code)
	f.answered(t, name, r.took)
	return r
}

// job triggers the scheduled job name once and checks its report.
func (f *fleet) job(t *testing.T, name setup.Function, want app.JobReport) {
	t.Helper()
	if f.fn(t, name).Schedule == "" {
		t.Fatalf("%s is an HTTP function, not a scheduled job", name)
	}
	begin := time.Now()
	payload := f.run[name].trigger(t)
	took := time.Since(begin)
	f.answers.Write(payload)
	var got app.JobReport
	if err := json.Unmarshal(payload, &got); err != nil {
		t.Fatalf("%s answered %s, not a job report: %v", name, payload, err)
	}
	// What the flow checks is what the job examined and fixed; its timing
	// and per-sweep bookkeeping belong to the jobs' own tests.
	ignore := cmpopts.IgnoreFields(app.JobReport{}, "DurationMS", "Complete", "Sweeps")
	if diff := cmp.Diff(want, got, ignore); diff != "" {
		t.Fatalf("%s report (-want +got):\n%s", name, diff)
	}
	f.answered(t, name, took)
}

func (f *fleet) answered(t *testing.T, name setup.Function, took time.Duration) {
	t.Helper()
	f.checked[name]++
	if n := f.checked[name]; n <= 2 {
		t.Logf("%s %s %s invoke: %s", f.platform, name, []string{"cold", "warm"}[n-1], took.Round(time.Millisecond))
	}
}

// covered fails for every function the flow did not drive cold and warm.
func (f *fleet) covered(t *testing.T) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(f.fns)) {
		if n := f.checked[name]; n < 2 {
			t.Errorf("%s: functions/%s gave %d checked answers; drive it cold and then warm on the same process",
				f.platform, f.fns[name].Folder, n)
		}
	}
}

// decode reads a reply's JSON body into a T.
func decode[T any](t *testing.T, r reply) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("body %s: %v", r.Body, err)
	}
	return v
}

// forged is req with a signature WeChat Pay's key did not make.
func forged(req request) request {
	req.headers = maps.Clone(req.headers)
	req.headers["wechatpay-signature"] = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 256))
	return req
}

// admin is a merchant refund call carrying key (none when empty).
func admin(key string, v any) request {
	req := jsonRequest("", v)
	if key != "" {
		req.headers["x-payfn-admin-key"] = key
	}
	return req
}

// signed is a server-API call signed with an app's API key, as the
// projects' servers make it.
func signed(key app.NewCredential, method, path string, v any) request {
	var body []byte
	h := map[string]string{}
	if v != nil {
		body, _ = json.Marshal(v)
		h["content-type"] = "application/json"
	}
	ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), rand.Text()
	h["x-payfn-key-id"], h["x-payfn-timestamp"], h["x-payfn-nonce"] = key.ID, ts, nonce
	h["x-payfn-signature"] = app.SignServerRequest(key.Secret, method, path, ts, nonce, body)
	return request{method: method, path: path, headers: h, body: body}
}

// driveEveryFunction runs a purchase, its refunds and the scheduled jobs
// through every function of the fleet, each cold and then warm on one
// process, checking each answer and the state it leaves in the store and at
// the simulator. Notifications are the ones the simulator itself sends.
func driveEveryFunction(t *testing.T, s *stack, f *fleet) {
	ctx := context.Background()
	p := f.platform
	buyer := "o-" + p + "-buyer"

	// login: a code the simulator issued, then one wx.login never makes.
	token := f.send(t, setup.Login, jsonRequest("", map[string]string{"code": s.sim.NewLoginCode(buyer)}), 200, "").field(t, "token")
	f.send(t, setup.Login, jsonRequest("", map[string]string{"code": ""}), 400, "INVALID_LOGIN_CODE")
	other := f.send(t, setup.Login, jsonRequest("", map[string]string{"code": s.sim.NewLoginCode("o-" + p + "-other")}), 200, "").field(t, "token")

	// createOrder: new, replayed (the warm process answers from the store),
	// a client-set price, and no session.
	order1 := jsonRequest(token, map[string]any{"product_id": "latte", "quantity": 2, "request_id": p + "-req-1"})
	orderID := f.send(t, setup.CreateOrder, order1, 201, "").field(t, "order_id")
	if got := f.send(t, setup.CreateOrder, order1, 200, "").field(t, "order_id"); got != orderID {
		t.Fatalf("replayed request_id gave order %s, want %s", got, orderID)
	}
	f.send(t, setup.CreateOrder, jsonRequest(token, map[string]any{"product_id": "latte", "quantity": 1, "request_id": p + "-req-2", "total_fen": 1}), 400, "UNKNOWN_FIELD")
	f.send(t, setup.CreateOrder, jsonRequest("", map[string]any{"product_id": "latte", "quantity": 1, "request_id": p + "-req-3"}), 401, "UNAUTHENTICATED")

	// queryOrder: the buyer sees the order createOrder made; another buyer
	// does not.
	byID := map[string]string{"order_id": orderID}
	v := decode[app.OrderView](t, f.send(t, setup.QueryOrder, jsonRequest(token, byID), 200, ""))
	if v.ID != orderID || v.Status != order.StatusNotPay || v.ProductID != "latte" || v.Quantity != 2 || v.TotalFen != 5600 || v.Refund != nil {
		t.Fatalf("queryOrder answered %+v, want unpaid order %s of 2 latte for 5600 fen", v, orderID)
	}
	f.send(t, setup.QueryOrder, jsonRequest(other, byID), 404, "ORDER_NOT_FOUND")

	// pay: a prepay at the simulator for the order's amount, reused warm.
	prepay := func() string {
		t.Helper()
		res := decode[app.PayResult](t, f.send(t, setup.Pay, jsonRequest(token, byID), 200, ""))
		id, ok := strings.CutPrefix(res.Payment.Package, "prepay_id=")
		if !ok || res.OrderID != orderID || res.Payment.AppID != testAppID || res.Payment.PaySign == "" {
			t.Fatalf("pay did not return wx.requestPayment parameters for %s: %+v", orderID, res)
		}
		return id
	}
	prepayID := prepay()
	if tr, ok := s.sim.TradeByPrepay(prepayID); !ok || tr.OutTradeNo != orderID || tr.TradeState != paysim.StateNotPay || tr.Amount.Total != 5600 {
		t.Fatalf("the simulator's trade for prepay %s is %+v (found %v), want unpaid %s of 5600 fen", prepayID, tr, ok, orderID)
	}
	if again := prepay(); again != prepayID {
		t.Fatalf("a repeated pay got prepay %s, want the valid %s again", again, prepayID)
	}

	// verifyPayment: the buyer pays at the simulator, which notifies; the
	// gateway base64-encodes the body. WeChat Pay's retry is acknowledged
	// once more; a forged notification is refused.
	paid, err := s.sim.Pay(ctx, prepayID, paysim.PayOptions{})
	if err != nil {
		t.Fatalf("simulated payment: %v", err)
	}
	note := s.delivery(t, f.fn(t, setup.VerifyPayment).Path)
	f.send(t, setup.VerifyPayment, note, 200, "SUCCESS")
	s.wantPaid(t, orderID, paid.TransactionID)
	f.send(t, setup.VerifyPayment, note, 200, "SUCCESS")
	s.wantPaid(t, orderID, paid.TransactionID)
	f.send(t, setup.VerifyPayment, forged(note), 401, "INVALID_NOTIFICATION")

	v = decode[app.OrderView](t, f.send(t, setup.QueryOrder, jsonRequest(token, byID), 200, ""))
	if v.Status != order.StatusPaid || v.TransactionID != paid.TransactionID {
		t.Fatalf("queryOrder after payment answered %s %q, want PAID %s", v.Status, v.TransactionID, paid.TransactionID)
	}

	// refund: the simulator holds refunds PROCESSING, so the test decides
	// when each settles and whether WeChat Pay's notification arrives.
	s.sim.SetRefundBehaviour(paysim.RefundBehaviour{Hold: true})
	refund := func(no string, fen int64) map[string]any {
		return map[string]any{"order_id": orderID, "out_refund_no": no, "amount_fen": fen, "reason": "customer request"}
	}
	rfA, rfB := p+"-rf-1", p+"-rf-2"
	got := decode[order.Refund](t, f.send(t, setup.Refund, admin(testAdminKey, refund(rfA, 1600)), 201, ""))
	if got.ID != rfA || got.OrderID != orderID || got.AmountFen != 1600 || got.Status != order.RefundPending {
		t.Fatalf("refund answered %+v, want %s of 1600 fen REFUNDING", got, rfA)
	}
	s.wantRefund(t, rfA, order.RefundPending)
	if st, fen, ok := s.sim.RefundState(rfA); !ok || st != paysim.RefundProcessing || fen != 1600 {
		t.Fatalf("the simulator holds refund %s as %s %d fen (found %v), want PROCESSING 1600", rfA, st, fen, ok)
	}
	if again := decode[order.Refund](t, f.send(t, setup.Refund, admin(testAdminKey, refund(rfA, 1600)), 200, "")); again.ID != rfA || again.Status != order.RefundPending {
		t.Fatalf("a repeated refund answered %+v, want %s again", again, rfA)
	}
	// Without the admin key, or with a buyer's session instead, nothing is
	// refunded.
	f.send(t, setup.Refund, admin("", refund(p+"-rf-x", 100)), 401, "ADMIN_UNAUTHENTICATED")
	f.send(t, setup.Refund, admin(strings.Repeat("b", 32), refund(p+"-rf-x", 100)), 401, "ADMIN_UNAUTHENTICATED")
	f.send(t, setup.Refund, jsonRequest(token, refund(p+"-rf-x", 100)), 401, "ADMIN_UNAUTHENTICATED")
	if _, err := s.store.Refund(ctx, p+"-rf-x"); !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("an unauthenticated refund left a record (err %v)", err)
	}
	if _, _, ok := s.sim.RefundState(p + "-rf-x"); ok {
		t.Fatalf("an unauthenticated refund reached WeChat Pay")
	}

	// verifyRefund: WeChat Pay settles the refund and notifies; the retry is
	// acknowledged, a forged notification refused.
	if err := s.sim.SettleRefund(rfA, paysim.RefundSuccess, true); err != nil {
		t.Fatal(err)
	}
	rnote := s.delivery(t, f.fn(t, setup.VerifyRefund).Path)
	f.send(t, setup.VerifyRefund, rnote, 200, "SUCCESS")
	if r := s.wantRefund(t, rfA, order.RefundSucceeded); r.RefundID == "" || r.SucceededAt == nil {
		t.Fatalf("refund %s is REFUNDED without WeChat Pay's refund_id or success time: %+v", rfA, r)
	}
	f.send(t, setup.VerifyRefund, rnote, 200, "SUCCESS")
	s.wantRefund(t, rfA, order.RefundSucceeded)
	f.send(t, setup.VerifyRefund, forged(rnote), 401, "INVALID_NOTIFICATION")

	// A second refund whose notification is lost, for reconcile to find.
	f.send(t, setup.Refund, admin(testAdminKey, refund(rfB, 1000)), 201, "")
	if err := s.sim.SettleRefund(rfB, paysim.RefundSuccess, false); err != nil {
		t.Fatal(err)
	}

	// closeExpired: an unpaid order past its expiry is closed, once.
	latte, err := s.store.Product(ctx, order.DefaultApp, "latte")
	if err != nil {
		t.Fatal(err)
	}
	old, err := order.NewOrder(app.NewOrderID(), buyer, p+"-req-old", latte, 1, time.Now().Add(-time.Hour), 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.store.InsertOrder(ctx, old); err != nil {
		t.Fatal(err)
	}
	f.job(t, setup.CloseExpired, app.JobReport{Job: string(setup.CloseExpired), Examined: 1,
		Fixes: []app.Fix{{OrderID: old.ID, From: string(order.StatusNotPay), To: string(order.StatusClosed)}}})
	s.wantStatus(t, old.ID, order.StatusClosed)
	f.job(t, setup.CloseExpired, app.JobReport{Job: string(setup.CloseExpired), Fixes: []app.Fix{}})

	// reconcile: follows WeChat Pay on the refund whose notification was
	// lost; then nothing is left to examine.
	f.job(t, setup.Reconcile, app.JobReport{Job: string(setup.Reconcile), Examined: 1,
		Fixes: []app.Fix{{OrderID: orderID, RefundNo: rfB, From: string(order.RefundPending), To: string(order.RefundSucceeded)}}})
	s.wantRefund(t, rfB, order.RefundSucceeded)
	f.job(t, setup.Reconcile, app.JobReport{Job: string(setup.Reconcile), Fixes: []app.Fix{}})

	// reconcileBill: yesterday's bill (no trades then: WeChat Pay has no
	// bill and payfn nothing) is clean; the next run leaves that day alone.
	f.job(t, setup.ReconcileBill, app.JobReport{Job: string(setup.ReconcileBill), Fixes: []app.Fix{}})
	f.job(t, setup.ReconcileBill, app.JobReport{Job: string(setup.ReconcileBill), Fixes: []app.Fix{}})

	// bills: the operator reads that day's report with the admin key; without
	// it nothing is shown, and a day the job never ran has no report.
	yesterday := time.Now().In(time.FixedZone("CST", 8*3600)).AddDate(0, 0, -1).Format(time.DateOnly)
	bills := func(key, day string) request {
		req := request{method: http.MethodGet, path: httpapi.PathBills + day, headers: map[string]string{}}
		if key != "" {
			req.headers["x-payfn-admin-key"] = key
		}
		return req
	}
	f.send(t, setup.Bills, bills("", yesterday), 401, "ADMIN_UNAUTHENTICATED")
	f.send(t, setup.Bills, bills(strings.Repeat("b", 32), yesterday), 401, "ADMIN_UNAUTHENTICATED")
	f.send(t, setup.Bills, bills(testAdminKey, "2000-01-01"), 404, app.CodeBillReportNotFound)
	if rep := decode[app.BillReport](t, f.send(t, setup.Bills, bills(testAdminKey, yesterday), 200, "")); rep.Date != yesterday || rep.Status != app.BillClean {
		t.Fatalf("bills answered the report of %s as %s, want %s clean (reconcileBill's)", rep.Date, rep.Status, yesterday)
	}

	// shareProfits: an order paid just now under a split rule is found
	// and its split scheduled after WeChat Pay's minimum wait (so this run
	// sends nothing); the next run finds it again and opens nothing twice.
	split := latte
	split.Split = &order.Split{Receivers: []order.Receiver{{Type: order.ReceiverMerchant, Account: "1900000109",
		Name: "Partner Ltd", RelationType: "PARTNER", ShareBP: 1000}}}
	shared, err := order.NewOrder(app.NewOrderID(), buyer, p+"-req-split", split, 1, time.Now(), 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	paidAt := time.Now().UTC().Truncate(time.Millisecond)
	shared.Status, shared.TransactionID, shared.PaidAt, shared.UpdatedAt = order.StatusPaid, "4200000000"+p+"split", &paidAt, paidAt
	if err := s.store.InsertOrder(ctx, shared); err != nil {
		t.Fatal(err)
	}
	f.job(t, setup.ShareProfits, app.JobReport{Job: string(setup.ShareProfits), Fixes: []app.Fix{}})
	f.job(t, setup.ShareProfits, app.JobReport{Job: string(setup.ShareProfits), Fixes: []app.Fix{}})
	if task, err := s.store.SplitTask(ctx, shared.ID); err != nil || !task.Open || task.State != "" || !task.DueAt.After(paidAt) {
		t.Fatalf("shareProfits left split task %+v (err %v) for %s, want one open, not planned, due after the payment", task, err, shared.ID)
	}

	v = decode[app.OrderView](t, f.send(t, setup.QueryOrder, jsonRequest(token, byID), 200, ""))
	want := order.RefundSummary{RefundedFen: 2600, Status: "PARTIALLY_REFUNDED"}
	if v.Status != order.StatusPaid || v.Refund == nil || *v.Refund != want {
		t.Fatalf("queryOrder after refunds answered %s refund %+v, want PAID with %+v", v.Status, v.Refund, want)
	}

	// Service mode. adminApps: without the admin key nothing is created;
	// with it, an app and its API key (shown once).
	shop := map[string]any{"app_id": p + "shop", "name": "Shop", "channels": strings.Split(allChannels, ",")}
	f.send(t, setup.AdminApps, admin("", shop), 401, "ADMIN_UNAUTHENTICATED")
	f.send(t, setup.AdminApps, admin(strings.Repeat("b", 32), shop), 401, "ADMIN_UNAUTHENTICATED")
	created := decode[struct {
		App app.AppView       `json:"app"`
		Key app.NewCredential `json:"api_key"`
	}](t, f.send(t, setup.AdminApps, admin(testAdminKey, shop), 201, ""))
	if created.App.ID != p+"shop" || created.Key.ID == "" || created.Key.Secret == "" {
		t.Fatalf("adminApps created %+v with key id %q, want app %sshop and a key", created.App, created.Key.ID, p)
	}
	lookup := request{method: http.MethodGet, path: httpapi.PathAdminApps + "/" + created.App.ID, headers: map[string]string{"x-payfn-admin-key": testAdminKey}}
	if got := decode[app.AppView](t, f.send(t, setup.AdminApps, lookup, 200, "")); got.ID != created.App.ID {
		t.Fatalf("adminApps GET answered app %q, want %q", got.ID, created.App.ID)
	}

	// serverApi: requests signed with that key reach the app's own
	// catalogue (the functions share the service key and the store); an
	// unsigned one is refused.
	product := map[string]any{"product_id": "tea", "title": "Tea", "price_fen": 1200}
	f.send(t, setup.ServerAPI, signed(created.Key, http.MethodPost, "/v1/products", product), 201, "")
	list := decode[struct{ Products []order.Product }](t, f.send(t, setup.ServerAPI, signed(created.Key, http.MethodGet, "/v1/products", nil), 200, ""))
	if len(list.Products) != 1 || list.Products[0].ID != "tea" || list.Products[0].PriceFen != 1200 {
		t.Fatalf("serverApi listed %+v, want the app's one product tea at 1200 fen", list.Products)
	}
	f.send(t, setup.ServerAPI, request{method: http.MethodGet, path: "/v1/products", headers: map[string]string{}}, 401, "INVALID_SIGNATURE")

	// alipayNotify: the app's server creates an order on the Alipay
	// mini-program channel (serverApi prepays at the Alipay simulator), the
	// buyer pays there, and Alipay's form-encoded notification is recorded
	// once (its retry acknowledged again); a tampered one changes nothing.
	ali := decode[struct {
		OrderID string            `json:"order_id"`
		Payment map[string]string `json:"payment"`
	}](t, f.send(t, setup.ServerAPI, signed(created.Key, http.MethodPost, "/v1/orders", map[string]any{"product_id": "tea", "quantity": 1,
		"request_id": p + "-ali-1", "buyer": "u-ali", "payer_openid": "alipay-open-id-0001", "channel": app.ChannelAlipayMini}), 201, ""))
	if ali.Payment["trade_no"] == "" {
		t.Fatalf("serverApi answered payment %v for alipay_mini, want a trade_no", ali.Payment)
	}
	trade, err := s.alipay.PayTrade(ctx, ali.Payment["trade_no"], alipaysim.PayOptions{})
	if err != nil || trade.OutTradeNo != ali.OrderID {
		t.Fatalf("Alipay payment of %s: %+v %v", ali.OrderID, trade, err)
	}
	anote := s.delivery(t, f.fn(t, setup.AlipayNotify).Path)
	if r := f.send(t, setup.AlipayNotify, anote, 200, ""); string(r.Body) != "success" {
		t.Fatalf("alipayNotify answered %q, want the body success", r.Body)
	}
	s.wantPaid(t, ali.OrderID, trade.TradeNo)
	f.send(t, setup.AlipayNotify, anote, 200, "")
	tampered := anote
	tampered.body = []byte(strings.Replace(string(anote.body), "total_amount=12.00", "total_amount=0.01", 1))
	if string(tampered.body) == string(anote.body) {
		t.Fatalf("the notification has no total_amount=12.00 to tamper with: %s", anote.body)
	}
	f.send(t, setup.AlipayNotify, tampered, 401, "INVALID_NOTIFICATION")
	s.wantPaid(t, ali.OrderID, trade.TradeNo)

	// dispatchWebhooks: no endpoint is registered, so nothing is due; the
	// run completes within the function's configured timeout (a run that
	// stopped for its deadline would say so).
	f.job(t, setup.DispatchWebhooks, app.JobReport{Job: string(setup.DispatchWebhooks), Fixes: []app.Fix{}})
	f.job(t, setup.DispatchWebhooks, app.JobReport{Job: string(setup.DispatchWebhooks), Fixes: []app.Fix{}})

	// The API key's secret is answered once, to the operator, and never
	// logged.
	var logs strings.Builder
	for _, proc := range s.procs {
		logs.WriteString(proc.output.String())
	}
	if leaks([]string{created.Key.Secret}, logs.String()) > 0 {
		t.Errorf("a function logged the new API key's secret")
	}
	f.covered(t)
}

func (s *stack) wantPaid(t *testing.T, orderID, txID string) {
	t.Helper()
	s.wantStatus(t, orderID, order.StatusPaid)
	if o, err := s.store.Order(context.Background(), orderID); err != nil || o.TransactionID != txID {
		t.Fatalf("order %s records transaction %q (err %v), want the simulator's %s", orderID, o.TransactionID, err, txID)
	}
}

func (s *stack) wantRefund(t *testing.T, no string, want order.RefundStatus) order.Refund {
	t.Helper()
	r, err := s.store.Refund(context.Background(), no)
	if err != nil {
		t.Fatalf("refund %s: %v", no, err)
	}
	if r.Status != want {
		t.Fatalf("refund %s is %s in the store, want %s", no, r.Status, want)
	}
	return r
}

// TestLambdaBinariesServeEveryFunctionThroughTheRuntimeAPI starts every
// function's bootstrap from its AWS zip, configured with exactly the
// variables template.yaml gives it, each polling a Runtime API of its own
// and fetching its own secret from a Secrets Manager stand-in with its own
// role's credentials, and drives all of them cold and warm with API Gateway
// HTTP API (payload 2.0) events and EventBridge schedule events. Nothing
// they write or answer shows a secret.
func TestLambdaBinariesServeEveryFunctionThroughTheRuntimeAPI(t *testing.T) {
	t.Parallel()
	dist := built(t)
	s := newStack(t)
	f := startFleet(t, "aws", func(fn function) runner {
		bin := unzipOnly(t, filepath.Join(dist, "aws", goruntime.GOARCH, fn.Folder+".zip"), "bootstrap", t.TempDir())
		return startLambda(t, s, bin, string(fn.Name), templateVars(t, fn.Folder))
	})
	driveEveryFunction(t, s, f)
	s.noSecretWritten(t, f.answers.String())
}

// TestSCFBinariesServeEveryFunctionThroughNetRPC starts every executable of
// the package serverless.yml deploys (payfn.zip), named by its handler and
// configured with exactly the variables serverless.yml gives it, and drives
// all of them cold and warm with SCF API gateway and timer trigger events
// over net/rpc's Function.Invoke, as the SCF Go runtime calls it. Each
// fetches its own secret from an SSM stand-in with its execution role's
// credentials; nothing they write or answer shows a secret.
func TestSCFBinariesServeEveryFunctionThroughNetRPC(t *testing.T) {
	t.Parallel()
	dist := built(t)
	s := newStack(t)
	zr, err := zip.OpenReader(filepath.Join(dist, "scf", goruntime.GOARCH, "payfn.zip"))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	dir := t.TempDir()
	bins := map[string]string{}
	for _, zf := range zr.File {
		bins[zf.Name] = extract(t, zf, dir)
	}
	sls := loadServerless(t)
	f := startFleet(t, "scf", func(fn function) runner {
		bin, ok := bins[sls.Functions[fn.Folder].Handler]
		if !ok {
			t.Fatalf("payfn.zip has no executable %q, the handler of %s", sls.Functions[fn.Folder].Handler, fn.Folder)
		}
		return startSCF(t, s, bin, string(fn.Name), slsVars(t, fn.Folder))
	})
	driveEveryFunction(t, s, f)
	s.noSecretWritten(t, f.answers.String())
}
