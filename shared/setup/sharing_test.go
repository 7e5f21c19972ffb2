package setup_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/wxpay"
)

// Profit sharing (issue 14, part 2): orders bought through the whole stack
// (a product with a split rule, prepay asking for profit sharing, a paid
// notification), then the shareProfits job run on the embedded store with
// the real wechatpay-go channel against the simulator.

const (
	shareMerchant = "1900000300"
	sharePerson   = "o-share-person"
	sharePrice    = 10000
)

// shareRule gives the merchant receiver 20 % and the person 500 fen: 2500
// of 10000, within the 30 % an ordinary merchant may split off.
func shareRule() *order.Split {
	return &order.Split{Receivers: []order.Receiver{
		{Type: order.ReceiverMerchant, Account: shareMerchant, Name: "上海某某品牌管理有限公司", RelationType: "BRAND", ShareBP: 2000},
		{Type: order.ReceiverPersonal, Account: sharePerson, RelationType: "DISTRIBUTOR", FixedFen: 500, Description: "推广佣金"},
	}}
}

// countMetrics counts what the job's App reports.
type countMetrics struct {
	mu sync.Mutex
	n  map[string]int64
}

func (m *countMetrics) Count(_ context.Context, _, name string, n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n[name] += n
}

func (m *countMetrics) Observe(context.Context, string, string, float64) {}

func (m *countMetrics) get(name string) int64 { m.mu.Lock(); defer m.mu.Unlock(); return m.n[name] }

// shareRig is the harness plus an App for the job on the same store, with
// the real wxpay channel (optionally wrapped) and counted metrics.
type shareRig struct {
	*harness
	ch      *wxpay.Channel
	metrics *countMetrics
	job     *app.App
}

func newShareRig(t *testing.T, wrap func(*wxpay.Channel) app.Channel) *shareRig {
	t.Helper()
	h := newHarness(t)
	k := h.sim.Keys()
	ch, err := wxpay.New(wxpay.Config{MchID: testMchID, AppID: testAppID, MchCertSerial: testMchSerial, MchPrivateKey: merchantKey,
		APIv3Key: testAPIv3, NotifyURL: h.cfg.NotifyURL, PublicKeyID: k.PublicKeyID, PublicKey: k.PublicKey, BaseURL: h.sim.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ch.Close)
	var c app.Channel = ch
	if wrap != nil {
		c = wrap(ch)
	}
	m := &countMetrics{n: map[string]int64{}}
	r := &shareRig{harness: h, ch: ch, metrics: m, job: app.New(app.Config{Store: h.stack.Store, Channel: c, Metrics: m, AdminKey: testAdminKey})}
	err = h.stack.Store.UpsertProducts(context.Background(), order.Product{ID: "shared", Title: "Shared box", PriceFen: sharePrice, Active: true, Split: shareRule()})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// buy creates and pays an order of product through the stack and returns
// it PAID.
func (r *shareRig) buy(product string) order.Order {
	r.t.Helper()
	token := r.login("o-share-buyer")
	id := r.createOrder(token, product, 1)
	prepayID, _ := r.pay(token, id)
	if _, err := r.sim.Pay(context.Background(), prepayID, paysim.PayOptions{}); err != nil {
		r.t.Fatal(err)
	}
	r.waitAcked(id)
	o := r.order(id)
	if o.Status != order.StatusPaid || o.Split == nil {
		r.t.Fatalf("order %s is %s with split %v; want PAID with the product's rule", id, o.Status, o.Split)
	}
	return o
}

// The simulator takes a split at once; a short lease lets a test's runs
// take turns quickly.
var shareOpts = app.ShareOptions{MinDelay: -1, StepWindow: stepWindow}

const stepWindow = 20 * time.Millisecond

var fastJobs = app.JobOptions{BackoffBase: time.Millisecond, BackoffMax: time.Millisecond}

// runUntilDone runs the job until the order's split is decided.
func (r *shareRig) runUntilDone(id string, so app.ShareOptions) (order.SplitPlan, order.SplitOutcome) {
	r.t.Helper()
	ctx := context.Background()
	for range 12 {
		if _, err := r.job.ShareProfitsWith(ctx, fastJobs, so); err != nil {
			r.t.Logf("job run: %v", err)
		}
		plan, out, err := r.job.SplitOf(ctx, id)
		if err == nil && out != nil {
			return plan, *out
		}
		time.Sleep(stepWindow + 5*time.Millisecond) // past the backoff and the lease
	}
	r.t.Fatalf("split of %s not done after 12 runs", id)
	return order.SplitPlan{}, order.SplitOutcome{}
}

func TestShareProfitsOnceUnderConcurrentRuns(t *testing.T) {
	r := newShareRig(t, nil)
	o := r.buy("shared")
	// Prepay asked for profit sharing: WeChat Pay holds the payment.
	if v := r.sim.Sharing(o.TransactionID); v.UnsplitFen != sharePrice {
		t.Fatalf("unsplit before the job = %d, want %d (prepaid without settle_info.profit_sharing?)", v.UnsplitFen, sharePrice)
	}
	const runs = 100
	ctx := context.Background()
	// Each round of 100 runs starts at the beginning of a lease window
	// longer than the round, so one run a round works on the order.
	const window = 2 * time.Second
	opts := app.ShareOptions{MinDelay: -1, StepWindow: window}
	for round := 0; round < 8; round++ {
		time.Sleep(time.Until(time.Now().Truncate(window).Add(window + 20*time.Millisecond)))
		var wg sync.WaitGroup
		for range runs {
			wg.Go(func() { _, _ = r.job.ShareProfitsWith(ctx, fastJobs, opts) })
		}
		wg.Wait()
		if _, out, err := r.job.SplitOf(ctx, o.ID); err == nil && out != nil {
			break
		}
	}
	plan, out, err := r.job.SplitOf(ctx, o.ID)
	if err != nil || out == nil {
		t.Fatalf("split not done after 8 rounds of %d concurrent runs: %v", runs, err)
	}
	if out.Outcome != order.SplitFinished || out.SplitFen != 2500 || plan.OutOrderNo != order.SplitOrderNo(o.ID) {
		t.Fatalf("outcome %+v, plan %+v", out, plan)
	}
	v := r.sim.Sharing(o.TransactionID)
	var splits, unfreezes int
	for _, s := range v.Splits {
		if s.Unfreeze {
			unfreezes++
			continue
		}
		splits++
		if len(s.Shares) != 2 || s.Shares[0].AmountFen != 2000 || s.Shares[1].AmountFen != 500 {
			t.Fatalf("split at WeChat Pay %+v; want 2000 to the merchant and 500 to the person", s)
		}
	}
	if splits != 1 || unfreezes != 1 {
		t.Fatalf("%d splits and %d unfreezes at WeChat Pay, want 1 and 1", splits, unfreezes)
	}
	if got := r.sim.ReceivedFen(shareMerchant); got != 2000 {
		t.Fatalf("merchant receiver got %d, want 2000 (20%% of %d)", got, sharePrice)
	}
	if got := r.sim.ReceivedFen(sharePerson); got != 500 {
		t.Fatalf("person got %d, want 500", got)
	}
	if !v.Unfrozen || v.UnfrozenFen != sharePrice-2500 || v.UnsplitFen != 0 {
		t.Fatalf("remainder: unfrozen %v %d fen, unsplit %d; want all 7500 unfrozen to the merchant", v.Unfrozen, v.UnfrozenFen, v.UnsplitFen)
	}
	// One run a lease window works on the order: the request went out once.
	if n := r.sim.SplitRequests(plan.OutOrderNo); n != 1 {
		t.Errorf("%d split requests with %s from %d concurrent runs, want 1", n, plan.OutOrderNo, runs)
	}
	for name, want := range map[string]int64{app.MetricSplitsCreated: 1, app.MetricSplitsFinished: 1, app.MetricSplitsFailed: 0, app.MetricSplitFen: 2500} {
		if got := r.metrics.get(name); got != want {
			t.Errorf("metric %s = %d, want %d", name, got, want)
		}
	}
}

func TestShareProfitsLimits(t *testing.T) {
	// The rule is checked when it is set...
	bp := shareRule()
	bp.Receivers[0].ShareBP = 3001
	bp.Receivers[1] = order.Receiver{Type: order.ReceiverPersonal, Account: sharePerson, RelationType: "USER", ShareBP: 1}
	if err := app.ValidateSplit(bp); app.ErrorOf(err).Code != app.CodeSplitOverMaxRatio {
		t.Fatalf("3002 bp: %v, want %s", err, app.CodeSplitOverMaxRatio)
	}
	bad := shareRule()
	bad.Receivers[1].RelationType = "COUSIN"
	if err := app.ValidateSplit(bad); app.ErrorOf(err).Code != app.CodeInvalidSplit {
		t.Fatalf("unknown relation: %v, want %s", err, app.CodeInvalidSplit)
	}
	custom := shareRule()
	custom.Receivers[1].RelationType = "CUSTOM"
	if err := app.ValidateSplit(custom); app.ErrorOf(err).Code != app.CodeInvalidSplit {
		t.Fatalf("CUSTOM without custom_relation: %v, want %s", err, app.CodeInvalidSplit)
	}
	if err := app.ValidateSplit(shareRule()); err != nil {
		t.Fatalf("valid rule: %v", err)
	}

	r := newShareRig(t, nil)
	// ...and again on the amount: fixed shares of 3001 fen are over 30 % of
	// 10000. Nothing is sent; everything is unfrozen to the merchant.
	over := &order.Split{Receivers: []order.Receiver{{Type: order.ReceiverMerchant, Account: shareMerchant, Name: "x", RelationType: "BRAND", FixedFen: 3001}}}
	if err := r.stack.Store.UpsertProducts(context.Background(), order.Product{ID: "over", Title: "Over", PriceFen: sharePrice, Active: true, Split: over}); err != nil {
		t.Fatal(err)
	}
	o := r.buy("over")
	plan, out := r.runUntilDone(o.ID, shareOpts)
	if out.Outcome != order.SplitRefused || plan.Refused == "" || len(plan.Shares) != 0 {
		t.Fatalf("over the ratio: outcome %+v plan %+v; want REFUSED with no shares", out, plan)
	}
	if n := r.sim.SplitRequests(plan.OutOrderNo); n != 0 {
		t.Fatalf("%d split requests sent for a refused plan", n)
	}
	if v := r.sim.Sharing(o.TransactionID); !v.Unfrozen || v.UnfrozenFen != sharePrice {
		t.Fatalf("refused split: %+v; want all %d unfrozen", v, sharePrice)
	}

	// The merchant's real maximum is lower than payfn was told: WeChat Pay
	// refuses; after MaxRefusals the split is given up and all unfrozen.
	r.sim.SetSharingBehaviour(paysim.SharingBehaviour{MaxRatioBP: 1000})
	o2 := r.buy("shared")
	_, out2 := r.runUntilDone(o2.ID, app.ShareOptions{MinDelay: -1, MaxRefusals: 2, StepWindow: stepWindow})
	if out2.Outcome != order.SplitRefused || out2.SplitFen != 0 {
		t.Fatalf("refused at WeChat Pay: %+v", out2)
	}
	if v := r.sim.Sharing(o2.TransactionID); !v.Unfrozen || v.UnfrozenFen != sharePrice || len(v.Splits) != 1 {
		t.Fatalf("after WeChat Pay's refusal: %+v; want no split and all unfrozen", v)
	}
	if got := r.metrics.get(app.MetricSplitsFailed); got != 2 {
		t.Fatalf("SplitsFailed = %d, want 2", got)
	}
}

func TestShareProfitsReceiverFails(t *testing.T) {
	r := newShareRig(t, nil)
	r.sim.SetSharingBehaviour(paysim.SharingBehaviour{FailAccounts: map[string]string{sharePerson: "RECEIVER_REAL_NAME_NOT_VERIFIED"}})
	o := r.buy("shared")
	_, out := r.runUntilDone(o.ID, shareOpts)
	if out.Outcome != order.SplitPartial || out.SplitFen != 2000 {
		t.Fatalf("outcome %+v; want PARTIAL with 2000 split", out)
	}
	var closed bool
	for _, res := range out.Results {
		if res.Account == sharePerson {
			closed = res.Result == app.ShareResultClosed && res.FailReason == "RECEIVER_REAL_NAME_NOT_VERIFIED"
		}
	}
	if !closed {
		t.Fatalf("the failed receiver is not recorded CLOSED with its reason: %+v", out.Results)
	}
	// The failed 500 stayed with the merchant: unfrozen with the rest.
	if v := r.sim.Sharing(o.TransactionID); v.UnfrozenFen != sharePrice-2000 || r.sim.ReceivedFen(sharePerson) != 0 {
		t.Fatalf("unfrozen %d, person got %d; want 8000 and 0", v.UnfrozenFen, r.sim.ReceivedFen(sharePerson))
	}
	if r.metrics.get(app.MetricSplitsFailed) != 1 || r.metrics.get(app.MetricSplitsFinished) != 0 {
		t.Fatalf("metrics %v", r.metrics.n)
	}
}

func TestShareProfitsReturnsAfterRefunds(t *testing.T) {
	r := newShareRig(t, nil)
	ctx := context.Background()
	o := r.buy("shared")
	r.runUntilDone(o.ID, shareOpts)

	// Half refunded: the merchant receiver returns half its share (1000 of
	// 2000); the person's share cannot be returned (WeChat Pay returns only
	// from merchants) and the merchant bears it.
	refund := func(no string, fen int64) {
		t.Helper()
		if _, _, err := r.job.Refund(ctx, app.RefundInput{OrderID: o.ID, OutRefundNo: no, AmountFen: fen, Reason: "退货"}); err != nil {
			t.Fatalf("refund %s: %v", no, err)
		}
		for range 6 {
			if _, err := r.job.ShareProfitsWith(ctx, fastJobs, shareOpts); err != nil {
				t.Logf("job run: %v", err)
			}
			time.Sleep(stepWindow + 5*time.Millisecond)
		}
	}
	refund("RF-SHARE-1", 5000)
	if got := r.sim.ReceivedFen(shareMerchant); got != 1000 {
		t.Fatalf("after a half refund the merchant receiver holds %d, want 1000", got)
	}
	if got := r.sim.ReceivedFen(sharePerson); got != 500 {
		t.Fatalf("person holds %d, want 500 (not returnable)", got)
	}
	// The rest refunded: the rest of the share comes back, exactly.
	refund("RF-SHARE-2", 5000)
	if got := r.sim.ReceivedFen(shareMerchant); got != 0 {
		t.Fatalf("after a full refund the merchant receiver holds %d, want 0", got)
	}
	if v := r.sim.Sharing(o.TransactionID); v.ReturnedFen != 2000 {
		t.Fatalf("returned %d, want 2000", v.ReturnedFen)
	}
	if got := r.metrics.get(app.MetricShareReturns); got != 2 {
		t.Fatalf("ShareReturns = %d, want 2", got)
	}

	// Refunded before the split: the plan splits only what is left and
	// nothing is returned.
	o2 := r.buy("shared")
	if _, _, err := r.job.Refund(ctx, app.RefundInput{OrderID: o2.ID, OutRefundNo: "RF-SHARE-3", AmountFen: 9000}); err != nil {
		t.Fatal(err)
	}
	plan, out := r.runUntilDone(o2.ID, shareOpts)
	if out.Outcome != order.SplitRefused || len(plan.Accounted) != 1 {
		t.Fatalf("2500 of 1000 left: %+v %+v; want REFUSED with the refund accounted", out, plan)
	}
}

// resendChannel loses the answer to the first split request: WeChat Pay
// took it, the function died before hearing back.
type resendChannel struct {
	*wxpay.Channel
	mu   sync.Mutex
	lost bool
}

func (c *resendChannel) CreateSplit(ctx context.Context, req app.SplitRequest) (app.SplitResult, error) {
	res, err := c.Channel.CreateSplit(ctx, req)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.lost && err == nil {
		c.lost = true
		return app.SplitResult{}, fmt.Errorf("answer lost: %w", app.ErrChannelUnavailable)
	}
	return res, err
}

func TestShareProfitsRestartResendsSameOutOrderNo(t *testing.T) {
	r := newShareRig(t, func(ch *wxpay.Channel) app.Channel { return &resendChannel{Channel: ch} })
	o := r.buy("shared")
	rep, err := r.job.ShareProfitsWith(context.Background(), fastJobs, shareOpts)
	if err != nil || rep.Failures != 1 {
		t.Fatalf("first run: %+v %v; want the split to fail once", rep, err)
	}
	plan, out := r.runUntilDone(o.ID, shareOpts)
	if n := r.sim.SplitRequests(plan.OutOrderNo); n < 2 {
		t.Fatalf("%d requests with %s; want the same out_order_no re-sent", n, plan.OutOrderNo)
	}
	splits := 0
	for _, s := range r.sim.Sharing(o.TransactionID).Splits {
		if !s.Unfreeze {
			splits++
		}
	}
	if splits != 1 || out.Outcome != order.SplitFinished || r.sim.ReceivedFen(shareMerchant) != 2000 {
		t.Fatalf("%d splits, outcome %+v, merchant got %d; want one split, FINISHED, 2000", splits, out, r.sim.ReceivedFen(shareMerchant))
	}
	if r.metrics.get(app.MetricSplitsCreated) != 1 {
		t.Fatalf("SplitsCreated = %d", r.metrics.get(app.MetricSplitsCreated))
	}
}
