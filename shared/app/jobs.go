package app

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/payfn/payfn/shared/order"
)

// Job defaults (see JobOptions).
const (
	DefaultJobParallelism = 4
	DefaultJobBackoffBase = 2 * time.Minute
	DefaultJobBackoffMax  = 6 * time.Hour
	DefaultJobMinMargin   = 2 * time.Second
)

// Why a job stopped before going through everything (JobReport.Stopped).
const (
	StoppedDeadline = "deadline"  // its time was up: the next run resumes from the cursor
	StoppedCanceled = "cancelled" // its context was cancelled
	StoppedStore    = "store"     // the store could not list or record the work
)

// errJobBudget is the cause of a job's work context ending at its own stop
// time, before the caller's deadline.
var errJobBudget = errors.New("job stopped to keep its margin before the deadline")

// Fix is one change a job made to bring payfn in line with WeChat Pay.
type Fix struct {
	OrderID  string `json:"order_id"`
	RefundNo string `json:"out_refund_no,omitempty"`
	From     string `json:"from"`
	To       string `json:"to"`
}

// JobReport is what a scheduled job did. A job goes through each of its
// sweeps (unpaid orders, pending refunds, ...) from where the previous run
// stopped, wrapping around at the end, until it has seen every item once or
// its time is up.
type JobReport struct {
	Job      string `json:"job"`
	Examined int    `json:"examined"` // items asked about at WeChat Pay this run
	Fixes    []Fix  `json:"fixes"`
	Failures int    `json:"failures"` // items that failed this run; retried after a backoff
	// Abnormal counts refunds WeChat Pay reports ABNORMAL: they need a
	// person in the merchant portal and are re-checked after a backoff.
	Abnormal int `json:"abnormal"`
	// Deferred counts items skipped because they are backing off after
	// earlier failures.
	Deferred int `json:"deferred"`
	// Complete is true when every sweep went through all its items once.
	Complete bool `json:"complete"`
	// Stopped says why a sweep stopped early: "deadline", "cancelled" or
	// "store"; empty when complete.
	Stopped    string        `json:"stopped,omitempty"`
	DurationMS int64         `json:"duration_ms"`
	Sweeps     []SweepReport `json:"sweeps"`
}

// SweepReport is one sweep of a job.
type SweepReport struct {
	Name     string `json:"name"`
	Examined int    `json:"examined"`
	Fixed    int    `json:"fixed"`
	Failures int    `json:"failures"`
	Abnormal int    `json:"abnormal"`
	Deferred int    `json:"deferred"`
	Complete bool   `json:"complete"`
	Stopped  string `json:"stopped,omitempty"`
	// ResumeAfter is the id of the last item this run got through in
	// order; the next run starts after it (empty: at the beginning).
	ResumeAfter string `json:"resume_after,omitempty"`
}

// JobOptions tune the scheduled jobs. The zero value is the defaults.
type JobOptions struct {
	// Parallelism bounds the items being worked on at once across all of a
	// job's sweeps, each making one to three WeChat Pay calls in turn;
	// default DefaultJobParallelism.
	Parallelism int
	// PageSize is how many items one store query reads; default 100.
	PageSize int
	// BackoffBase is how long an item that failed once waits before it is
	// tried again; each further failure doubles it, up to BackoffMax.
	// Defaults DefaultJobBackoffBase and DefaultJobBackoffMax.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// MinMargin is the least time kept free before the context's deadline;
	// the margin is the larger of it and a tenth of the time left when the
	// job starts. Default DefaultJobMinMargin.
	MinMargin time.Duration
}

func (o JobOptions) withDefaults() JobOptions {
	if o.Parallelism < 1 {
		o.Parallelism = DefaultJobParallelism
	}
	if o.PageSize < 1 {
		o.PageSize = defaultJobBatch
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = DefaultJobBackoffBase
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = DefaultJobBackoffMax
	}
	if o.MinMargin <= 0 {
		o.MinMargin = DefaultJobMinMargin
	}
	return o
}

// CloseExpired closes unpaid orders past their expiry: first it asks WeChat
// Pay (a payment may have arrived without its notification: that order
// becomes PAID, not CLOSED), then closes the order at WeChat Pay, then
// locally, once, by the order's settle claim. An order that fails backs off
// and is tried again by a later run. It runs with Config.Jobs. It also
// deletes queryOrder's rate-limit slots whose window has passed.
func (a *App) CloseExpired(ctx context.Context) (JobReport, error) {
	return a.CloseExpiredWith(ctx, a.jobs)
}

// CloseExpiredWith is CloseExpired with the given options.
func (a *App) CloseExpiredWith(ctx context.Context, opts JobOptions) (JobReport, error) {
	expired := sweep{name: "expired_orders", page: func(ctx context.Context, at time.Time, after string, limit int) ([]sweepItem, error) {
		os, err := a.store.ExpiredOrdersAfter(ctx, a.now(), at, after, limit)
		items := make([]sweepItem, len(os))
		for i, o := range os {
			items[i] = sweepItem{key: "order:" + o.ID, at: o.ExpiresAt, id: o.ID, run: func(ctx context.Context) (itemResult, error) {
				after, err := a.closeExpired(ctx, o)
				if err != nil {
					return itemResult{}, err
				}
				return itemResult{fix: &Fix{OrderID: o.ID, From: string(o.Status), To: string(after.Status)}}, nil
			}}
		}
		return items, err
	}}
	rep, err := a.runJob(ctx, "closeExpired", opts, expired)
	if err == nil && ctx.Err() == nil {
		// Slots are housekeeping: a failure here is logged, never reported
		// as the job's.
		if n, perr := a.store.PurgeSlots(ctx, a.now()); perr != nil {
			a.log.WarnContext(ctx, "could not purge old rate-limit slots; the next run tries again", "err", perr)
		} else if n > 0 {
			a.log.InfoContext(ctx, "purged old rate-limit slots", "deleted", n)
		}
	}
	return rep, err
}

func (a *App) closeExpired(ctx context.Context, o order.Order) (order.Order, error) {
	settled, err := a.reconcile(ctx, o)
	if err != nil {
		return order.Order{}, err
	}
	if settled.Status != order.StatusNotPay {
		return settled, nil
	}
	ch, err := a.channelOf(o)
	if err != nil {
		return order.Order{}, channelError("close "+o.ID, err)
	}
	err = ch.CloseOrder(ctx, o.ID)
	switch {
	case err == nil, errors.Is(err, ErrTradeNotFound):
		// Closed at WeChat Pay, or never prepaid there: nothing can pay it now.
	case errors.Is(err, ErrChannelUnavailable):
		return order.Order{}, channelError("close "+o.ID, err)
	default:
		// WeChat Pay refused to close: most likely the buyer paid between
		// our query and the close. Ask again and follow WeChat Pay.
		if settled, rerr := a.reconcile(ctx, o); rerr == nil && settled.Status != order.StatusNotPay {
			return settled, nil
		}
		return order.Order{}, channelError("close "+o.ID, err)
	}
	return a.settleClosed(ctx, o, "expired unpaid")
}

// Reconcile finds what payfn and WeChat Pay disagree about and follows
// WeChat Pay: unpaid orders older than a few minutes (a lost notification,
// an order closed at WeChat Pay), refunds still REFUNDING (a lost refund
// notification, or a refund that never reached WeChat Pay), and ledger rows
// whose decision never landed. The three sweeps run side by side, so none
// waits for another. Each fix is reported and logged. It runs with
// Config.Jobs.
func (a *App) Reconcile(ctx context.Context) (JobReport, error) {
	return a.ReconcileWith(ctx, a.jobs)
}

// ReconcileWith is Reconcile with the given options.
func (a *App) ReconcileWith(ctx context.Context, opts JobOptions) (JobReport, error) {
	unpaid := sweep{name: "unpaid_orders", page: func(ctx context.Context, at time.Time, after string, limit int) ([]sweepItem, error) {
		os, err := a.store.UnpaidOrdersAfter(ctx, a.now().Add(-reconcileUnpaidAfterAge), at, after, limit)
		items := make([]sweepItem, len(os))
		for i, o := range os {
			items[i] = sweepItem{key: "order:" + o.ID, at: o.CreatedAt, id: o.ID, run: func(ctx context.Context) (itemResult, error) {
				after, err := a.reconcile(ctx, o)
				if err != nil {
					return itemResult{}, err
				}
				if after.Status == o.Status {
					return itemResult{}, nil
				}
				a.log.WarnContext(ctx, "reconciled order with WeChat Pay", "order_id", o.ID, "from", o.Status, "to", after.Status)
				return itemResult{fix: &Fix{OrderID: o.ID, From: string(o.Status), To: string(after.Status)}}, nil
			}}
		}
		return items, err
	}}
	refunds := sweep{name: "pending_refunds", page: func(ctx context.Context, at time.Time, after string, limit int) ([]sweepItem, error) {
		rs, err := a.store.PendingRefundsAfter(ctx, at, after, limit)
		items := make([]sweepItem, len(rs))
		for i, r := range rs {
			items[i] = sweepItem{key: "refund:" + r.ID, at: r.CreatedAt, id: r.ID, run: func(ctx context.Context) (itemResult, error) {
				after, abnormal, err := a.reconcileRefund(ctx, r)
				if err != nil {
					return itemResult{}, err
				}
				res := itemResult{abnormal: abnormal}
				if after.Status != r.Status {
					a.log.WarnContext(ctx, "reconciled refund with WeChat Pay", "out_refund_no", r.ID, "from", r.Status, "to", after.Status)
					res.fix = &Fix{OrderID: r.OrderID, RefundNo: r.ID, From: string(r.Status), To: string(after.Status)}
				}
				return res, nil
			}}
		}
		return items, err
	}}
	payments := sweep{name: "undecided_payments", page: func(ctx context.Context, _ time.Time, after string, limit int) ([]sweepItem, error) {
		ps, err := a.store.UndecidedPayments(ctx, after, limit)
		items := make([]sweepItem, len(ps))
		for i, p := range ps {
			items[i] = sweepItem{key: "payment:" + p.TransactionID, id: p.TransactionID, run: func(ctx context.Context) (itemResult, error) {
				before, after, err := a.redecidePayment(ctx, p)
				if err != nil {
					return itemResult{}, err
				}
				if after.Status == before.Status {
					return itemResult{}, nil
				}
				a.log.WarnContext(ctx, "reconciled a payment's order with WeChat Pay", "order_id", before.ID, "transaction_id", p.TransactionID, "from", before.Status, "to", after.Status)
				return itemResult{fix: &Fix{OrderID: before.ID, From: string(before.Status), To: string(after.Status)}}, nil
			}}
		}
		return items, err
	}}
	return a.runJob(ctx, "reconcile", opts, unpaid, refunds, payments)
}

// reconcileRefund asks WeChat Pay about a refund still REFUNDING and
// follows its answer; abnormal reports a refund WeChat Pay calls ABNORMAL.
func (a *App) reconcileRefund(ctx context.Context, r order.Refund) (after order.Refund, abnormal bool, err error) {
	res, err := a.queryRefund(ctx, r)
	if errors.Is(err, ErrTradeNotFound) {
		// Admitted here but never reached WeChat Pay (the function died, or
		// WeChat Pay was down): send it now.
		o, err := a.store.Order(ctx, r.OrderID)
		if err != nil {
			return r, false, storeError("load order", err)
		}
		paid, err := a.paidTotal(ctx, o)
		if err != nil {
			return r, false, err
		}
		after, err := a.submitRefund(ctx, r, paid)
		return after, false, err
	} else if err != nil {
		return r, false, channelError("query refund "+r.ID, err)
	}
	after, err = a.decideRefund(ctx, r, res)
	return after, res.Status == RefundStateAbnormal, err
}

// sweep is one kind of item a job goes through, in a stable order: page
// lists up to limit items after the cursor (at, after).
type sweep struct {
	name string
	page func(ctx context.Context, at time.Time, after string, limit int) ([]sweepItem, error)
}

// sweepItem is one item of a sweep: its backoff key, its cursor position,
// and the work.
type sweepItem struct {
	key string
	at  time.Time
	id  string
	run func(ctx context.Context) (itemResult, error)
}

type itemResult struct {
	fix      *Fix
	abnormal bool
}

// notAfter reports whether the item is at or before the cursor (at, id).
func (it sweepItem) notAfter(at time.Time, id string) bool {
	if !it.at.Equal(at) {
		return it.at.Before(at)
	}
	return it.id <= id
}

// jobRun is what the sweeps of one run share.
type jobRun struct {
	job  string
	opts JobOptions
	ctx  context.Context // the caller's: writing cursors and backoffs
	work context.Context // ends at stopAt: the items' calls
	// book ends half the margin after stopAt: reading pages and backoffs,
	// so a read started just before the stop still gets its time.
	book   context.Context
	stopAt time.Time     // zero: no deadline
	slots  chan struct{} // bounds the items in flight across sweeps
	// itemNanos is a running mean of an item's duration, so that no item is
	// started that would not finish before stopAt.
	itemNanos atomic.Int64
}

// runJob runs the sweeps side by side, sharing opts.Parallelism slots, and
// stops them in time to keep a margin before ctx's deadline: the larger of
// opts.MinMargin and a tenth of the time left. Items still running at the
// stop are cut off and left for the next run, which starts where this one
// got to.
func (a *App) runJob(ctx context.Context, job string, opts JobOptions, sweeps ...sweep) (JobReport, error) {
	begin := time.Now()
	opts = opts.withDefaults()
	r := &jobRun{job: job, opts: opts, ctx: ctx, work: ctx, book: ctx, slots: make(chan struct{}, opts.Parallelism)}
	if dl, ok := ctx.Deadline(); ok {
		margin := max(opts.MinMargin, time.Until(dl)/10)
		r.stopAt = dl.Add(-margin)
		var cancelWork, cancelBook context.CancelFunc
		r.work, cancelWork = context.WithDeadlineCause(ctx, r.stopAt, errJobBudget)
		defer cancelWork()
		r.book, cancelBook = context.WithDeadlineCause(ctx, r.stopAt.Add(margin/2), errJobBudget)
		defer cancelBook()
	}
	rep := JobReport{Job: job, Fixes: []Fix{}, Complete: true, Sweeps: make([]SweepReport, len(sweeps))}
	fixes := make([][]Fix, len(sweeps))
	errs := make([]error, len(sweeps))
	var wg sync.WaitGroup
	for i, sw := range sweeps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep.Sweeps[i], fixes[i], errs[i] = a.runSweep(r, sw)
		}()
	}
	wg.Wait()
	for i, s := range rep.Sweeps {
		rep.Examined += s.Examined
		rep.Failures += s.Failures
		rep.Abnormal += s.Abnormal
		rep.Deferred += s.Deferred
		rep.Complete = rep.Complete && s.Complete
		if rep.Stopped == "" {
			rep.Stopped = s.Stopped
		}
		rep.Fixes = append(rep.Fixes, fixes[i]...)
	}
	rep.DurationMS = time.Since(begin).Milliseconds()
	a.log.InfoContext(ctx, job+" done", "examined", rep.Examined, "fixed", len(rep.Fixes), "failures", rep.Failures,
		"abnormal", rep.Abnormal, "deferred", rep.Deferred, "complete", rep.Complete, "stopped", rep.Stopped, "duration_ms", rep.DurationMS)
	if err := errors.Join(errs...); err != nil {
		return rep, storeError(job, err)
	}
	return rep, nil
}

// timeUp reports whether an item started now would run past the stop time.
func (r *jobRun) timeUp() bool {
	if r.work.Err() != nil {
		return true
	}
	return !r.stopAt.IsZero() && time.Now().Add(time.Duration(r.itemNanos.Load())).After(r.stopAt)
}

// over reports whether the work time is over: an error then is the stop's.
func (r *jobRun) over() bool {
	return r.work.Err() != nil || !r.stopAt.IsZero() && !time.Now().Before(r.stopAt)
}

// stopReason tells a stop at the job's own budget from a cancelled caller.
func (r *jobRun) stopReason() string {
	if r.ctx.Err() != nil && !errors.Is(r.ctx.Err(), context.DeadlineExceeded) {
		return StoppedCanceled
	}
	return StoppedDeadline
}

// runSweep goes through one sweep from its stored cursor to the end, then
// from the start up to that cursor, page by page, until every item was seen
// once or the time is up; it stores the cursor of the last item it got
// through in order.
func (a *App) runSweep(r *jobRun, sw sweep) (SweepReport, []Fix, error) {
	rep := SweepReport{Name: sw.name}
	var fixes []Fix
	cursorName := r.job + "/" + sw.name
	startAt, startID, err := a.store.JobCursor(r.book, cursorName)
	if err != nil {
		rep.Stopped = StoppedStore
		if r.over() {
			rep.Stopped = r.stopReason()
			err = nil
		}
		return rep, nil, err
	}
	fromStart := startAt.IsZero() && startID == ""
	curAt, curID := startAt, startID
	wrapped := false
	var sweepErr error
	for {
		if r.timeUp() {
			rep.Stopped = r.stopReason()
			break
		}
		items, err := sw.page(r.book, curAt, curID, r.opts.PageSize)
		if err != nil {
			if r.over() {
				rep.Stopped = r.stopReason()
			} else {
				rep.Stopped, sweepErr = StoppedStore, fmt.Errorf("%s: %w", sw.name, err)
			}
			break
		}
		last := len(items) < r.opts.PageSize
		if wrapped {
			// Second half of the pass: only up to where this run began.
			for i, it := range items {
				if !it.notAfter(startAt, startID) {
					items, last = items[:i], true
					break
				}
			}
		}
		n, res, err := a.runPage(r, items, &rep)
		fixes = append(fixes, res...)
		if n > 0 {
			curAt, curID = items[n-1].at, items[n-1].id
		}
		if err != nil {
			rep.Stopped, sweepErr = StoppedStore, fmt.Errorf("%s: %w", sw.name, err)
			break
		}
		if n < len(items) {
			rep.Stopped = r.stopReason()
			break
		}
		if !last {
			continue
		}
		if fromStart || wrapped {
			rep.Complete = true
			if !wrapped {
				curAt, curID = time.Time{}, "" // went through to the end: start over next run
			}
			break
		}
		wrapped, curAt, curID = true, time.Time{}, ""
	}
	rep.Fixed = len(fixes)
	rep.ResumeAfter = curID
	// Bookkeeping uses the caller's context: the work context may be over,
	// and the margin exists for this.
	if err := a.store.SetJobCursor(r.ctx, cursorName, curAt, curID); err != nil {
		a.log.WarnContext(r.ctx, "could not save the job cursor; the next run repeats some items", "job", r.job, "sweep", sw.name, "err", err)
	}
	return rep, fixes, sweepErr
}

// runPage works through one page: items backing off are skipped, the rest
// run on the shared slots. It returns how many items, from the first, were
// gone through (the rest were not started or were cut off by the stop), and
// the fixes. An error means the backoffs could not be read.
func (a *App) runPage(r *jobRun, items []sweepItem, rep *SweepReport) (int, []Fix, error) {
	if len(items) == 0 {
		return 0, nil, nil
	}
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = it.key
	}
	failures, next, err := a.store.Backoffs(r.book, keys)
	if err != nil {
		if r.over() {
			return 0, nil, nil
		}
		return 0, nil, err
	}
	now := a.now()
	type outcome struct {
		done     bool // gone through: examined, failed or deferred
		deferred bool // backing off: not tried this run
		res      itemResult
		err      error
	}
	out := make([]outcome, len(items))
	var wg sync.WaitGroup
dispatch:
	for i, it := range items {
		if t, ok := next[it.key]; ok && now.Before(t) {
			out[i] = outcome{done: true, deferred: true}
			continue
		}
		select {
		case r.slots <- struct{}{}:
		case <-r.work.Done():
			break dispatch
		}
		if r.timeUp() {
			<-r.slots
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-r.slots }()
			begin := time.Now()
			res, err := it.run(r.work)
			if err != nil && r.work.Err() != nil {
				return // cut off by the stop: not done, the next run takes it
			}
			d := int64(time.Since(begin))
			if m := r.itemNanos.Load(); m > 0 {
				d = (3*m + d) / 4
			}
			r.itemNanos.Store(d)
			out[i] = outcome{done: true, res: res, err: err}
			a.noteItem(r, it, failures[it.key], res, err)
		}()
	}
	wg.Wait()
	var fixes []Fix
	n := 0
	for _, o := range out {
		if !o.done {
			break
		}
		n++
	}
	// Items done after one that was cut off still count (their fixes are
	// made); only the cursor stops at the first gap.
	for _, o := range out {
		if !o.done {
			continue
		}
		if o.deferred {
			rep.Deferred++
			continue
		}
		rep.Examined++
		switch {
		case o.err != nil:
			rep.Failures++
		case o.res.abnormal:
			rep.Abnormal++
		}
		if o.res.fix != nil {
			fixes = append(fixes, *o.res.fix)
		}
	}
	return n, fixes, nil
}

// noteItem records an item's outcome in its backoff: a failure (or an
// ABNORMAL refund) waits BackoffBase, doubled per failure in a row, up to
// BackoffMax; a success clears it.
func (a *App) noteItem(r *jobRun, it sweepItem, failedBefore int, res itemResult, err error) {
	switch {
	case err != nil || res.abnormal:
		n := failedBefore + 1
		wait := r.opts.BackoffMax
		if n < 32 {
			wait = min(r.opts.BackoffBase<<(n-1), r.opts.BackoffMax)
		}
		reason := "ABNORMAL at WeChat Pay"
		if err != nil {
			reason = err.Error()
			a.log.WarnContext(r.ctx, "job item failed; it backs off", "job", r.job, "item", it.key, "failures", n, "retry_in", wait.String(), "err", err)
		}
		if serr := a.store.SetBackoff(r.ctx, it.key, n, a.now().Add(wait), reason); serr != nil {
			a.log.WarnContext(r.ctx, "could not record a job item's backoff", "job", r.job, "item", it.key, "err", serr)
		}
	case failedBefore > 0:
		if serr := a.store.ClearBackoff(r.ctx, it.key); serr != nil {
			a.log.WarnContext(r.ctx, "could not clear a job item's backoff", "job", r.job, "item", it.key, "err", serr)
		}
	}
}
