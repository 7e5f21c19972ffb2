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
)

// The jobs tests run the real wechatpay-go channel against paysim over
// loopback, slowed with paysim's ResponseDelay, and an App of their own over
// the harness's store so that they can count what the jobs ask WeChat Pay.

// askedChannel records which orders and refunds the jobs asked about.
type askedChannel struct {
	app.Channel
	mu     sync.Mutex
	orders map[string]int
	refund map[string]int
}

func (c *askedChannel) QueryOrder(ctx context.Context, no string) (app.Transaction, error) {
	c.mu.Lock()
	c.orders[no]++
	c.mu.Unlock()
	return c.Channel.QueryOrder(ctx, no)
}

func (c *askedChannel) QueryRefund(ctx context.Context, orderID, no string) (app.RefundResult, error) {
	c.mu.Lock()
	c.refund[no]++
	c.mu.Unlock()
	return c.Channel.QueryRefund(ctx, orderID, no)
}

func (c *askedChannel) Unwrap() app.Channel { return c.Channel }

// askedOrders counts the distinct orders of ids asked about so far.
func (c *askedChannel) askedOrders(ids []string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, id := range ids {
		if c.orders[id] > 0 {
			n++
		}
	}
	return n
}

func (h *harness) jobApp(now func() time.Time) (*app.App, *askedChannel) {
	ch := &askedChannel{Channel: h.stack.Channel, orders: map[string]int{}, refund: map[string]int{}}
	return app.New(app.Config{Store: h.stack.Store, Channel: ch, Now: now}), ch
}

// unpaidOrders writes n NOTPAY orders created age ago straight to the store
// (never prepaid: WeChat Pay answers their query with ORDER_NOT_EXIST, which
// costs a round trip like any other answer). Creating them through the
// functions would only slow the test.
func (h *harness) unpaidOrders(n int, age time.Duration) []string {
	h.t.Helper()
	ids := make([]string, n)
	created := time.Now().Add(-age)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				o, err := order.NewOrder(app.NewOrderID(), "o-buyer", fmt.Sprintf("bulk-%d-%d", reqSeq.Add(1), i),
					order.Product{ID: "latte", Title: "Latte", PriceFen: 2800, Active: true}, 1, created.Add(time.Duration(i)*time.Millisecond), 30*time.Minute)
				if err == nil {
					err = h.stack.Store.InsertOrder(context.Background(), o)
				}
				if err != nil {
					errs <- err
					return
				}
				ids[i] = o.ID
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		h.t.Fatal(err)
	}
	return ids
}

// refundedAtWeChatOnly makes n paid orders each with one refund that WeChat
// Pay settled without telling payfn: REFUNDING here, SUCCESS there.
func (h *harness) refundedAtWeChatOnly(n int, outcome string) []string {
	h.t.Helper()
	token := h.login("o-refunded")
	h.sim.SetRefundBehaviour(paysim.RefundBehaviour{Outcome: outcome, NoNotify: true})
	var nos []string
	for i := range n {
		id := h.paidOrder(token, 1)
		no := fmt.Sprintf("RJ%d-%d", reqSeq.Add(1), i)
		h.refund(id, no, 100).want(h.t, 201, "")
		nos = append(nos, no)
	}
	h.waitSimRefunds(nos, outcome)
	return nos
}

func (h *harness) waitSimRefunds(nos []string, outcome string) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, no := range nos {
		for {
			st, _, _ := h.sim.RefundState(no)
			if st == outcome {
				break
			}
			if time.Now().After(deadline) {
				h.t.Fatalf("refund %s is %q at WeChat Pay, want %s", no, st, outcome)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if r := h.storedRefund(no); r.Status != order.RefundPending {
			h.t.Fatalf("refund %s is %s here, want REFUNDING", no, r.Status)
		}
	}
}

func sweepOf(t *testing.T, rep app.JobReport, name string) app.SweepReport {
	t.Helper()
	for _, s := range rep.Sweeps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("report has no sweep %s: %+v", name, rep)
	return app.SweepReport{}
}

// (a) The arithmetic: 150 unpaid orders at 150 ms a WeChat Pay call
// need 22.5 s one at a time, more than reconcile's 15 s. Run one at a time
// (Parallelism 1, the worst case), reconcile still stops with its margin
// before the deadline, and the refunds, swept side by side, are reached.
func TestReconcileKeepsItsDeadlineAndReachesRefundsBehindSlowOrders(t *testing.T) {
	t.Parallel() // mostly waiting on the simulator's latency: overlap it with the rest
	h := newHarness(t)
	refunds := h.refundedAtWeChatOnly(3, paysim.RefundSuccess)
	h.unpaidOrders(150, 10*time.Minute)
	a, _ := h.jobApp(nil)
	h.sim.SetFaults(paysim.Faults{ResponseDelay: 150 * time.Millisecond})

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	begin := time.Now()
	rep, err := a.ReconcileWith(ctx, app.JobOptions{Parallelism: 1})
	took := time.Since(begin)
	if err != nil {
		t.Fatal(err)
	}
	dl, _ := ctx.Deadline()
	if left := time.Until(dl); left < time.Second {
		t.Fatalf("reconcile returned %v before its deadline (took %v), want at least 1s of margin", left, took)
	}
	for _, no := range refunds {
		if r := h.storedRefund(no); r.Status != order.RefundSucceeded {
			t.Errorf("refund %s is %s after reconcile, want REFUNDED", no, r.Status)
		}
	}
	orders, rs := sweepOf(t, rep, "unpaid_orders"), sweepOf(t, rep, "pending_refunds")
	if rep.Complete || rep.Stopped != app.StoppedDeadline || orders.Complete || !rs.Complete || rs.Fixed != 3 {
		t.Errorf("report %+v, want orders stopped at the deadline and refunds complete with 3 fixes", rep)
	}
	t.Logf("took %v; orders examined %d of 150 (resume after %s), refunds fixed %d", took.Round(time.Millisecond), orders.Examined, orders.ResumeAfter, rs.Fixed)

	// The next run starts where this one stopped, not at the oldest order.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel2()
	h.sim.SetFaults(paysim.Faults{})
	rep2, err := a.ReconcileWith(ctx2, app.JobOptions{})
	if err != nil || !rep2.Complete || sweepOf(t, rep2, "unpaid_orders").Examined != 150 {
		t.Fatalf("second run %+v %v, want all 150 orders once, complete", rep2, err)
	}
}

// (b) 100 refunds WeChat Pay calls ABNORMAL, older than one it settled
// SUCCESS without telling payfn: the newer one is fixed in the first run,
// and the ABNORMAL ones back off instead of being asked about every run.
func TestStuckRefundsNeverHideANewerOne(t *testing.T) {
	h, clock := clockedHarness(t)
	token := h.login("o-refunds")
	id := h.paidOrder(token, 1) // 2800 fen: room for 101 one-fen refunds
	h.sim.SetRefundBehaviour(paysim.RefundBehaviour{Outcome: paysim.RefundAbnormal, NoNotify: true})
	var abnormal []string
	for i := range 100 {
		no := fmt.Sprintf("AB%03d", i)
		h.refund(id, no, 1).want(t, 201, "")
		abnormal = append(abnormal, no)
	}
	h.waitSimRefunds(abnormal, paysim.RefundAbnormal)
	clock.Advance(time.Second) // strictly newer
	h.sim.SetRefundBehaviour(paysim.RefundBehaviour{Outcome: paysim.RefundSuccess, NoNotify: true})
	h.refund(id, "NEWER", 1).want(t, 201, "")
	h.waitSimRefunds([]string{"NEWER"}, paysim.RefundSuccess)

	a, ch := h.jobApp(clock.Now)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	rep, err := a.ReconcileWith(ctx, app.JobOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := h.storedRefund("NEWER"); r.Status != order.RefundSucceeded {
		t.Fatalf("the newer refund is %s after the first run, want REFUNDED (report %+v)", r.Status, rep)
	}
	rs := sweepOf(t, rep, "pending_refunds")
	if rs.Abnormal != 100 || rs.Fixed != 1 || !rs.Complete {
		t.Fatalf("refund sweep %+v, want 100 abnormal, 1 fixed, complete", rs)
	}

	// The next run, soon after, leaves the stuck ones alone...
	clock.Advance(time.Minute)
	rep, err = a.ReconcileWith(ctx, app.JobOptions{})
	if rs := sweepOf(t, rep, "pending_refunds"); err != nil || rs.Deferred != 100 || rs.Examined != 0 {
		t.Fatalf("second run: %+v %v, want the 100 abnormal refunds deferred", rs, err)
	}
	// ...until their backoff is over; each further failure doubles it.
	clock.Advance(2 * time.Minute)
	before := ch.refund["AB000"]
	rep, err = a.ReconcileWith(ctx, app.JobOptions{})
	if rs := sweepOf(t, rep, "pending_refunds"); err != nil || rs.Abnormal != 100 || ch.refund["AB000"] != before+1 {
		t.Fatalf("third run: %+v %v, want the 100 asked about again", rs, err)
	}
	clock.Advance(3 * time.Minute) // < 4 minutes: the second backoff
	rep, err = a.ReconcileWith(ctx, app.JobOptions{})
	if rs := sweepOf(t, rep, "pending_refunds"); err != nil || rs.Deferred != 100 {
		t.Fatalf("fourth run: %+v %v, want all deferred by the doubled backoff", rs, err)
	}
}

// (c) 1,000 unpaid orders, each examined within a few runs. To keep the test
// fast it runs each job with a 4 s deadline (so 2 s of work after the 2 s
// margin) and 20 ms of WeChat Pay latency, with the default 4 in flight.
func TestAThousandUnpaidOrdersAreAllExaminedWithinAFewRuns(t *testing.T) {
	h := newHarness(t)
	ids := h.unpaidOrders(1000, 10*time.Minute)
	a, ch := h.jobApp(nil)
	h.sim.SetFaults(paysim.Faults{ResponseDelay: 20 * time.Millisecond})
	const maxRuns = 10
	runs := 0
	for ch.askedOrders(ids) < len(ids) {
		if runs == maxRuns {
			t.Fatalf("after %d runs only %d of %d orders were examined", runs, ch.askedOrders(ids), len(ids))
		}
		runs++
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		begin := time.Now()
		rep, err := a.ReconcileWith(ctx, app.JobOptions{})
		took := time.Since(begin)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if took >= 4*time.Second {
			t.Fatalf("run %d took %v, past its 4s deadline", runs, took)
		}
		t.Logf("run %d: %v, examined %d, complete %v, stopped %q; %d of %d examined so far",
			runs, took.Round(time.Millisecond), rep.Examined, rep.Complete, rep.Stopped, ch.askedOrders(ids), len(ids))
	}
	// Each order once before any twice: the cursor, not the oldest rows.
	for _, id := range ids {
		if n := ch.orders[id]; n > 2 {
			t.Errorf("order %s asked about %d times in %d runs", id, n, runs)
		}
	}
	t.Logf("all 1000 unpaid orders examined in %d runs", runs)
}

// A WeChat Pay that hangs (answers after an hour) must not carry the job past
// its deadline: it stops at its margin, reports how far it got, backs off
// nothing it did not finish, and the next run takes the cut items.
func TestJobsStopBeforeTheDeadlineWhenWeChatPayHangs(t *testing.T) {
	t.Parallel() // mostly waiting on the simulator's latency: overlap it with the rest
	h := newHarness(t)
	ids := h.unpaidOrders(20, 40*time.Minute) // expired, and old enough to reconcile
	a, ch := h.jobApp(nil)
	h.sim.SetFaults(paysim.Faults{ResponseDelay: time.Hour})
	for _, job := range []struct {
		name string
		run  func(context.Context, app.JobOptions) (app.JobReport, error)
	}{{"closeExpired", a.CloseExpiredWith}, {"reconcile", a.ReconcileWith}} {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		begin := time.Now()
		rep, err := job.run(ctx, app.JobOptions{})
		took := time.Since(begin)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", job.name, err)
		}
		if took > 3*time.Second {
			t.Fatalf("%s took %v with a 4s deadline and a 2s margin", job.name, took)
		}
		if rep.Complete || rep.Stopped != app.StoppedDeadline || rep.Examined != 0 || rep.Failures != 0 {
			t.Fatalf("%s report %+v, want stopped at the deadline with nothing examined or failed", job.name, rep)
		}
		t.Logf("%s stopped after %v", job.name, took.Round(time.Millisecond))
	}
	if n := ch.askedOrders(ids); n == 0 {
		t.Fatal("no order was even started: the test proves nothing")
	}

	h.sim.SetFaults(paysim.Faults{})
	rep, err := a.Reconcile(context.Background())
	if err != nil || !rep.Complete || rep.Examined != 20 || rep.Deferred != 0 {
		t.Fatalf("after WeChat Pay recovered: %+v %v, want all 20 examined, none backing off", rep, err)
	}
}

// An order WeChat Pay keeps failing on backs off and is not asked about
// again until due; a success clears its backoff.
func TestFailingOrdersBackOffAndASuccessClearsIt(t *testing.T) {
	h, clock := clockedHarness(t)
	ids := h.unpaidOrders(3, 10*time.Minute)
	a, ch := h.jobApp(clock.Now)
	h.sim.FailNext(3, 500, "SYSTEM_ERROR")
	rep, err := a.ReconcileWith(context.Background(), app.JobOptions{Parallelism: 1})
	if err != nil || rep.Failures != 3 {
		t.Fatalf("first run: %+v %v, want 3 failures", rep, err)
	}
	rep, err = a.ReconcileWith(context.Background(), app.JobOptions{})
	if err != nil || rep.Deferred != 3 || rep.Examined != 0 {
		t.Fatalf("second run: %+v %v, want 3 deferred", rep, err)
	}
	clock.Advance(app.DefaultJobBackoffBase)
	rep, err = a.ReconcileWith(context.Background(), app.JobOptions{})
	if err != nil || rep.Examined != 3 || rep.Failures != 0 || rep.Deferred != 0 {
		t.Fatalf("third run: %+v %v, want 3 examined", rep, err)
	}
	failures, _, err := h.stack.Store.Backoffs(context.Background(), []string{"order:" + ids[0], "order:" + ids[1], "order:" + ids[2]})
	if err != nil || len(failures) != 0 {
		t.Fatalf("backoffs after success: %v %v, want none", failures, err)
	}
	if n := ch.askedOrders(ids); n != 3 {
		t.Fatalf("asked about %d orders", n)
	}
}
