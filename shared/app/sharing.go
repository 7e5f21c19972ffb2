package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/payfn/payfn/shared/order"
)

// Profit sharing (分账, issue 14 §2). A product may carry a split rule
// (order.Split); an order copies it when created, and its prepay asks
// WeChat Pay to freeze the payment for a split (settle_info.profit_sharing).
// The shareProfits job (ShareProfits) then, for every PAID order with a
// rule, once its hold and WeChat Pay's one minute after payment are over:
//
//  1. decides the plan once, by a claim (order.SplitPlanKey): each
//     receiver's amount, computed with integer arithmetic from the amount
//     paid, never above the merchant's maximum ratio nor what is left to
//     split (WeChat Pay's unsplit amount, less refunds); a rule that would
//     exceed them is refused and nothing is split;
//  2. adds the receivers (idempotent at WeChat Pay) and sends the split
//     under out_order_no "PS"+order id (order.SplitOrderNo): a crashed run
//     re-sends the same request, and WeChat Pay splits once;
//  3. follows it by query until FINISHED, recording each receiver's result
//     (SUCCESS, or CLOSED with its fail_reason: that share stays with the
//     merchant);
//  4. unfreezes the remainder to the merchant ("PU"+order id) and follows
//     that until FINISHED;
//  5. decides the outcome once (order.SplitDoneKey): FINISHED, PARTIAL or
//     REFUSED, counted in the metrics by the claim's winner.
//
// A refund of a split order: Refund opens its return task at once, and
// the job also finds every refund of an order with a rule (in case that
// write was lost) and, once the split is done, returns (回退) each merchant
// receiver's part of the refunded amount (order.ReturnAmount: all of it
// once everything is refunded) under out_return_no order.ReturnNo, then
// follows each return to SUCCESS or FAILED. WeChat Pay can only return
// from MERCHANT_ID receivers: a personal receiver's share is not returned
// and the merchant bears it (the task says so). A refund admitted before
// the split is planned is not returned: the plan splits only what is left
// (paid less refunds). The refund itself is not held back: WeChat Pay does
// not couple the two ("退款和分账回退没有耦合"), the refund is paid from the
// merchant's balance, and the return tops that balance up after.
//
// Every step is idempotent at WeChat Pay (per out_order_no and
// out_return_no) and every decision is a claim, so any number of runs at
// once, and a run killed anywhere, split once.

// Sharing error codes (product rules).
const (
	// CodeInvalidSplit: the split rule is malformed (the message names
	// the field).
	CodeInvalidSplit = "INVALID_SPLIT"
	// CodeSplitOverMaxRatio: the rule's shares add up to more than the
	// merchant may split off (30 % unless raised in the merchant portal).
	CodeSplitOverMaxRatio = "SPLIT_EXCEEDS_MAX_RATIO"
)

// Sharing metrics (docs/metrics.md).
const (
	MetricSplitsCreated  = "SplitsCreated"  // a split was planned with shares to send
	MetricSplitsFinished = "SplitsFinished" // a split ended with every receiver paid
	MetricSplitsFailed   = "SplitsFailed"   // a split ended partial or refused: a person should look
	MetricSplitFen       = "SplitFen"       // what receivers got
	MetricShareReturns   = "ShareReturns"   // a return of a share after a refund succeeded
	MetricReturnsFailed  = "ShareReturnsFailed"
)

func init() {
	MetricNames = append(MetricNames, MetricSplitsCreated, MetricSplitsFinished, MetricSplitsFailed, MetricSplitFen,
		MetricShareReturns, MetricReturnsFailed)
}

// ShareOptions tune the shareProfits job; the zero value is the defaults.
type ShareOptions struct {
	// MaxRatioBP is the merchant's maximum split ratio in basis points, as
	// set in its portal; default order.DefaultMaxSplitBP (30 %).
	MaxRatioBP int64
	// MinDelay is how long after payment a split is first tried; default
	// order.MinSplitDelay (WeChat Pay refuses earlier). Negative: none
	// (tests against the simulator).
	MinDelay time.Duration
	// Lookback is how far before the last discovery the job looks again for
	// new paid orders and refunds, so a decision written late is not
	// missed; default 15 minutes.
	Lookback time.Duration
	// MaxRefusals is how many refusals in a row of a split request WeChat
	// Pay answers before the split is given up and everything unfrozen;
	// default 5 (with the job's backoff, about an hour).
	MaxRefusals int
	// StepWindow is the lease on an order's split (and a refund's
	// returns): within one window only one run works on it, so runs at
	// once do not send WeChat Pay the same request many times (its limit
	// is 30 split requests a second per merchant). A run that dies leaves
	// the rest to a run in the next window. Default one minute.
	StepWindow time.Duration
}

func (o ShareOptions) withDefaults() ShareOptions {
	if o.MaxRatioBP <= 0 || o.MaxRatioBP > order.BasisPoints {
		o.MaxRatioBP = order.DefaultMaxSplitBP
	}
	switch {
	case o.MinDelay == 0:
		o.MinDelay = order.MinSplitDelay
	case o.MinDelay < 0:
		o.MinDelay = 0
	}
	if o.Lookback <= 0 {
		o.Lookback = 15 * time.Minute
	}
	if o.MaxRefusals <= 0 {
		o.MaxRefusals = 5
	}
	if o.StepWindow <= 0 {
		o.StepWindow = time.Minute
	}
	return o
}

// ValidateSplit checks a product's split rule for the products API,
// against the default maximum ratio.
// Errors: INVALID_SPLIT, SPLIT_EXCEEDS_MAX_RATIO.
func ValidateSplit(s *order.Split) error {
	return validateSplit(s, order.DefaultMaxSplitBP)
}

func validateSplit(s *order.Split, maxBP int64) error {
	if s == nil {
		return nil
	}
	err := s.Validate(maxBP)
	var p *order.SplitProblem
	switch {
	case err == nil:
		return nil
	case errors.As(err, &p) && p.Over:
		return &Error{Kind: KindInvalid, Code: CodeSplitOverMaxRatio, Message: p.Message, Err: err}
	}
	return &Error{Kind: KindInvalid, Code: CodeInvalidSplit, Message: err.Error(), Err: err}
}

// ShareProfits is the shareProfits job with Config.Jobs and the default
// ShareOptions.
func (a *App) ShareProfits(ctx context.Context) (JobReport, error) {
	return a.ShareProfitsWith(ctx, a.jobs, ShareOptions{})
}

// ShareProfitsWith runs the shareProfits job: it finds newly paid split
// orders and refunds of split orders, then advances every split and return
// that is due, as the other jobs do (parallel items, backoff, deadline).
func (a *App) ShareProfitsWith(ctx context.Context, opts JobOptions, so ShareOptions) (JobReport, error) {
	so = so.withDefaults()
	opts = opts.withDefaults()
	var errs []error
	if err := a.discoverSplits(ctx, opts.PageSize, so); err != nil {
		errs = append(errs, err)
	}
	if err := a.discoverReturns(ctx, opts.PageSize, so); err != nil {
		errs = append(errs, err)
	}
	splits := sweep{name: "splits", page: func(ctx context.Context, at time.Time, after string, limit int) ([]sweepItem, error) {
		ts, err := a.store.DueSplitTasks(ctx, a.now(), at, after, limit)
		items := make([]sweepItem, len(ts))
		for i, t := range ts {
			items[i] = sweepItem{key: "split:" + t.ID, at: t.DueAt, id: t.ID, run: func(ctx context.Context) (itemResult, error) {
				return a.advanceSplit(ctx, t, so)
			}}
		}
		return items, err
	}}
	returns := sweep{name: "returns", page: func(ctx context.Context, at time.Time, after string, limit int) ([]sweepItem, error) {
		ts, err := a.store.DueReturnTasks(ctx, a.now(), at, after, limit)
		items := make([]sweepItem, len(ts))
		for i, t := range ts {
			items[i] = sweepItem{key: "return:" + t.ID, at: t.DueAt, id: t.ID, run: func(ctx context.Context) (itemResult, error) {
				return a.advanceReturn(ctx, t, so)
			}}
		}
		return items, err
	}}
	rep, err := a.runJob(ctx, "shareProfits", opts, splits, returns)
	if len(errs) > 0 {
		rep.Complete = false
		return rep, errors.Join(append(errs, err)...)
	}
	return rep, err
}

// discoverSplits opens a task for every paid split order decided since the
// last discovery.
func (a *App) discoverSplits(ctx context.Context, limit int, so ShareOptions) error {
	return discover(ctx, a, "shareProfits/discover_orders", "split", "paid split orders", so.Lookback,
		func(from, to, afterAt time.Time, afterID string) ([]order.Order, error) {
			return a.store.PaidSplitOrders(ctx, from, to, afterAt, afterID, limit)
		},
		func(o order.Order) (time.Time, string) { return o.UpdatedAt, o.ID },
		func(os []order.Order) error {
			for _, o := range os {
				if err := a.openSplit(ctx, o, so); err != nil {
					return err
				}
			}
			return nil
		}, limit)
}

// discover pages through what list finds since the discovery's cursor,
// less the lookback (opening a task twice is harmless), hands each page to
// open, and moves the cursor to the newest time seen. name and what name
// the discovery and the listing in errors.
func discover[T any](ctx context.Context, a *App, cursor, name, what string, lookback time.Duration,
	list func(from, to, afterAt time.Time, afterID string) ([]T, error), at func(T) (time.Time, string),
	open func([]T) error, limit int) error {
	last, _, err := a.store.JobCursor(ctx, cursor)
	if err != nil {
		return storeError("read "+name+" discovery cursor", err)
	}
	from := time.Time{}
	if !last.IsZero() {
		from = last.Add(-lookback)
	}
	to := a.now()
	var afterAt time.Time
	var afterID string
	newest := last
	for {
		page, err := list(from, to, afterAt, afterID)
		if err != nil {
			return storeError("list "+what, err)
		}
		if err := open(page); err != nil {
			return err
		}
		for _, x := range page {
			afterAt, afterID = at(x)
			newest = later(newest, afterAt)
		}
		if len(page) < limit {
			break
		}
	}
	if err := a.store.SetJobCursor(ctx, cursor, newest, ""); err != nil {
		return storeError("save "+name+" discovery cursor", err)
	}
	return nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// openSplit opens an order's split task, due after its hold.
func (a *App) openSplit(ctx context.Context, o order.Order, so ShareOptions) error {
	if o.Split == nil {
		return nil
	}
	now := a.now().UTC().Truncate(time.Millisecond)
	paidAt := o.UpdatedAt
	if o.PaidAt != nil {
		paidAt = *o.PaidAt
	}
	t := order.SplitTask{ID: o.ID, AppID: o.AppID, Open: true, DueAt: paidAt.Add(so.MinDelay + o.Split.Hold()).UTC().Truncate(time.Millisecond),
		CreatedAt: now, UpdatedAt: now}
	err := a.store.InsertSplitTask(ctx, t)
	if err == nil {
		a.log.InfoContext(ctx, "split scheduled", "order_id", o.ID, "due_at", t.DueAt)
	} else if !errors.Is(err, order.ErrDuplicate) {
		return storeError("insert split task", err)
	}
	return nil
}

// discoverReturns opens a return task for every refund of a split order
// created since the last discovery.
func (a *App) discoverReturns(ctx context.Context, limit int, so ShareOptions) error {
	return discover(ctx, a, "shareProfits/discover_refunds", "return", "new refunds", so.Lookback,
		func(from, to, afterAt time.Time, afterID string) ([]order.Refund, error) {
			return a.store.RefundsCreated(ctx, from, to, afterAt, afterID, limit)
		},
		func(r order.Refund) (time.Time, string) { return r.CreatedAt, r.ID },
		func(rs []order.Refund) error {
			if len(rs) == 0 {
				return nil
			}
			ids := make([]string, 0, len(rs))
			for _, r := range rs {
				ids = append(ids, r.OrderID)
			}
			os, err := a.store.OrdersByID(ctx, ids)
			if err != nil {
				return storeError("load refunded orders", err)
			}
			split := map[string]bool{}
			for _, o := range os {
				split[o.ID] = o.Split != nil
			}
			for _, r := range rs {
				if split[r.OrderID] {
					if err := a.openReturn(ctx, r); err != nil {
						return err
					}
				}
			}
			return nil
		}, limit)
}

// openReturn opens the return task of a refund of a split order.
func (a *App) openReturn(ctx context.Context, r order.Refund) error {
	now := a.now().UTC().Truncate(time.Millisecond)
	err := a.store.InsertReturnTask(ctx, order.ReturnTask{ID: r.ID, OrderID: r.OrderID, AppID: r.AppID, Open: true, DueAt: now, CreatedAt: now, UpdatedAt: now})
	if err != nil && !errors.Is(err, order.ErrDuplicate) {
		return storeError("insert return task", err)
	}
	return nil
}

// sharerOf is the channel that splits o, or an error when o's channel
// cannot (it is not configured here, or it has no profit sharing).
func (a *App) sharerOf(o order.Order) (ProfitSharer, error) {
	ch, err := a.channelOf(o)
	if err != nil {
		return nil, err
	}
	s, ok := capability[ProfitSharer](ch)
	if !ok {
		return nil, fmt.Errorf("channel %s has no profit sharing", o.ChannelName())
	}
	return s, nil
}

// advanceSplit takes an order's split one or more steps further.
func (a *App) advanceSplit(ctx context.Context, t order.SplitTask, so ShareOptions) (itemResult, error) {
	if took, err := a.store.TakeSlot(ctx, "split-step:"+t.ID, so.StepWindow, a.now()); err != nil {
		return itemResult{}, storeError("take split lease", err)
	} else if !took {
		return itemResult{}, nil // another run has it this window
	}
	// Read again: the page may be older than another run's step.
	t, err := a.store.SplitTask(ctx, t.ID)
	if err != nil {
		return itemResult{}, storeError("load split task", err)
	}
	if !t.Open {
		return itemResult{}, nil
	}
	o, err := a.store.Order(ctx, t.ID)
	if err != nil {
		return itemResult{}, storeError("load order "+t.ID, err)
	}
	log := a.log.With("order_id", o.ID, "transaction_id", o.TransactionID)
	sharer, err := a.sharerOf(o)
	if err != nil {
		// Nothing here can split it, nor unfreeze it: a person must.
		log.ErrorContext(ctx, "split order cannot be split here", "err", err)
		return itemResult{}, channelError("split "+o.ID, err)
	}
	plan, err := a.splitPlan(ctx, o, sharer, so)
	if err != nil {
		return itemResult{}, err
	}
	before := t.State
	if t.State == "" {
		t.State = order.SplitPlanned
		if plan.Refused != "" {
			t.State = order.SplitSplit // nothing to send: straight to unfreezing
		}
	}
	if t.State == order.SplitPlanned {
		if err := a.sendSplit(ctx, &t, o, plan, sharer, so); err != nil {
			a.saveSplitTask(ctx, t)
			return itemResult{}, err
		}
	}
	if t.State == order.SplitSent {
		res, err := sharer.QuerySplit(ctx, plan.TransactionID, plan.OutOrderNo)
		if err != nil {
			return itemResult{}, channelError("query split "+plan.OutOrderNo, err)
		}
		t.Results = res.Results
		if res.State != SplitStateFinished {
			a.saveSplitTask(ctx, t)
			return itemResult{}, nil // PROCESSING: the next run asks again
		}
		t.State = order.SplitSplit
		log.InfoContext(ctx, "split finished at WeChat Pay", "out_order_no", plan.OutOrderNo)
	}
	if t.State == order.SplitSplit {
		done, err := a.unfreeze(ctx, o, plan, sharer)
		if err != nil {
			a.saveSplitTask(ctx, t)
			return itemResult{}, err
		}
		if !done {
			a.saveSplitTask(ctx, t)
			return itemResult{}, nil
		}
		if err := a.decideSplit(ctx, o, plan, t.Results); err != nil {
			return itemResult{}, err
		}
		t.State, t.Open = order.SplitDone, false
	}
	if err := a.store.SaveSplitTask(ctx, t); err != nil {
		return itemResult{}, storeError("save split task", err)
	}
	if t.State != before {
		return itemResult{fix: &Fix{OrderID: o.ID, From: "split:" + cmp.Or(before, "NEW"), To: "split:" + t.State}}, nil
	}
	return itemResult{}, nil
}

// saveSplitTask records a task's progress on a path that fails or waits;
// a lost write only repeats idempotent steps.
func (a *App) saveSplitTask(ctx context.Context, t order.SplitTask) {
	t.UpdatedAt = a.now().UTC().Truncate(time.Millisecond)
	if err := a.store.SaveSplitTask(ctx, t); err != nil {
		a.log.WarnContext(ctx, "could not save a split task; the next run repeats its step", "order_id", t.ID, "err", err)
	}
}

// splitPlan returns the order's plan, deciding it once.
func (a *App) splitPlan(ctx context.Context, o order.Order, sharer ProfitSharer, so ShareOptions) (order.SplitPlan, error) {
	key := order.SplitPlanKey(o.ID)
	var plan order.SplitPlan
	err := a.store.SharingClaim(ctx, key, &plan)
	if err == nil {
		return plan, nil
	} else if !errors.Is(err, order.ErrNotFound) {
		return plan, storeError("load split plan", err)
	}
	now := a.now().UTC().Truncate(time.Millisecond)
	plan = order.SplitPlan{Key: key, OrderID: o.ID, AppID: o.AppID, TransactionID: o.TransactionID, WeChatAppID: o.WeChatAppID,
		OutOrderNo: order.SplitOrderNo(o.ID), Shares: []order.Share{}, DecidedAt: now}
	switch {
	case o.Status != order.StatusPaid:
		plan.Refused = fmt.Sprintf("the order is %s, not PAID: nothing is split, all is unfrozen", o.Status)
	case o.PaidAt != nil && now.Sub(*o.PaidAt) > order.SplitFreezeWindow:
		plan.Refused = "paid more than 30 days ago: WeChat Pay has unfrozen it to the merchant"
	}
	if o.Status == order.StatusPaid || o.Status == order.StatusException {
		if plan.PaidFen, err = a.paidTotal(ctx, o); err != nil {
			return plan, err
		}
	}
	if plan.Refused == "" {
		refunds, err := a.store.Refunds(ctx, o.ID)
		if err != nil {
			return plan, storeError("list refunds", err)
		}
		var held int64
		for _, r := range refunds {
			if r.Holds() {
				held += r.AmountFen
				plan.Accounted = append(plan.Accounted, r.ID)
			}
		}
		unsplit, err := sharer.UnsplitAmount(ctx, o.TransactionID)
		if err != nil {
			return plan, channelError("unsplit amount of "+o.ID, err)
		}
		base := max(0, min(plan.PaidFen-held, unsplit))
		shares, perr := order.PlanSplit(*o.Split, plan.PaidFen, base, so.MaxRatioBP)
		switch {
		case perr != nil:
			plan.Refused = perr.Error()
		case len(shares) == 0:
			plan.Refused = "every share comes to less than one fen"
		default:
			plan.Shares = shares
		}
	}
	won, err := a.store.ClaimSharing(ctx, key, plan, &plan)
	if err != nil {
		return plan, storeError("claim split plan", err)
	}
	if won {
		if plan.Refused != "" {
			a.log.ErrorContext(ctx, "split refused: nothing is split, all is unfrozen to the merchant", "order_id", o.ID, "reason", plan.Refused)
		} else {
			var total int64
			for _, s := range plan.Shares {
				total += s.AmountFen
			}
			a.log.InfoContext(ctx, "split planned", "order_id", o.ID, "out_order_no", plan.OutOrderNo, "receivers", len(plan.Shares), "split_fen", total, "paid_fen", plan.PaidFen)
			a.count(ctx, o.AppID, MetricSplitsCreated, 1)
		}
	}
	return plan, nil
}

// sendSplit adds the receivers and sends the split. A refusal from WeChat
// Pay is first checked by a query (a resend of an accepted split may be
// refused); refused MaxRefusals times in a row, the split is given up and
// the payment unfrozen.
func (a *App) sendSplit(ctx context.Context, t *order.SplitTask, o order.Order, plan order.SplitPlan, sharer ProfitSharer, so ShareOptions) error {
	for _, s := range plan.Shares {
		if err := sharer.AddReceiver(ctx, plan.WeChatAppID, s.Receiver); err != nil {
			return channelError("add receiver "+string(s.Receiver.Type)+" for "+o.ID, err)
		}
	}
	res, err := sharer.CreateSplit(ctx, SplitRequest{AppID: plan.WeChatAppID, TransactionID: plan.TransactionID, OutOrderNo: plan.OutOrderNo, Shares: plan.Shares})
	switch {
	case err == nil:
	case errors.Is(err, ErrChannelUnavailable):
		return channelError("split "+plan.OutOrderNo, err)
	default:
		if q, qerr := sharer.QuerySplit(ctx, plan.TransactionID, plan.OutOrderNo); qerr == nil {
			res = q // accepted before: follow it
			break
		}
		failures, _, berr := a.store.Backoffs(ctx, []string{"split:" + o.ID})
		if berr == nil && failures["split:"+o.ID]+1 >= so.MaxRefusals {
			a.log.ErrorContext(ctx, "WeChat Pay keeps refusing the split; given up, all is unfrozen to the merchant", "order_id", o.ID, "err", err)
			t.State = order.SplitSplit
			return a.refuseSent(ctx, o, err)
		}
		return channelError("split "+plan.OutOrderNo, err)
	}
	t.State, t.Results = order.SplitSent, res.Results
	if res.State == SplitStateFinished {
		t.State = order.SplitSplit
	}
	return nil
}

// refuseSent records, once, that WeChat Pay refused the split for good.
func (a *App) refuseSent(ctx context.Context, o order.Order, refusal error) error {
	var out order.SplitOutcome
	_, err := a.store.ClaimSharing(ctx, order.SplitDoneKey(o.ID)+":refused", order.SplitOutcome{
		Key: order.SplitDoneKey(o.ID) + ":refused", OrderID: o.ID, Outcome: order.SplitRefused, Results: []order.ShareResult{},
		Reason: "WeChat Pay refused the split: " + refusal.Error(), DecidedAt: a.now().UTC().Truncate(time.Millisecond)}, &out)
	if err != nil {
		return storeError("record split refusal", err)
	}
	return nil
}

// unfreeze releases the rest of the payment to the merchant and reports
// whether WeChat Pay has finished doing so.
func (a *App) unfreeze(ctx context.Context, o order.Order, plan order.SplitPlan, sharer ProfitSharer) (bool, error) {
	no := order.UnfreezeOrderNo(o.ID)
	res, err := sharer.QuerySplit(ctx, plan.TransactionID, no)
	if errors.Is(err, ErrTradeNotFound) {
		res, err = sharer.UnfreezeSplit(ctx, plan.TransactionID, no, "解冻剩余资金")
		if err != nil && !errors.Is(err, ErrChannelUnavailable) {
			// Refused: most likely nothing is left (all refunded, or WeChat
			// Pay unfroze it itself after its freeze window).
			left, lerr := sharer.UnsplitAmount(ctx, plan.TransactionID)
			if lerr == nil && left == 0 {
				a.log.WarnContext(ctx, "nothing left to unfreeze", "order_id", o.ID, "refusal", err)
				return true, nil
			}
		}
	}
	if err != nil {
		return false, channelError("unfreeze "+no, err)
	}
	return res.State == SplitStateFinished, nil
}

// decideSplit records the split's outcome once and counts it.
func (a *App) decideSplit(ctx context.Context, o order.Order, plan order.SplitPlan, results []order.ShareResult) error {
	out := order.SplitOutcome{Key: order.SplitDoneKey(o.ID), OrderID: o.ID, Outcome: order.SplitFinished, Results: results,
		DecidedAt: a.now().UTC().Truncate(time.Millisecond)}
	if out.Results == nil {
		out.Results = []order.ShareResult{}
	}
	var refused order.SplitOutcome
	switch rerr := a.store.SharingClaim(ctx, order.SplitDoneKey(o.ID)+":refused", &refused); {
	case plan.Refused != "":
		out.Outcome, out.Reason = order.SplitRefused, plan.Refused
	case rerr == nil:
		out.Outcome, out.Reason = order.SplitRefused, refused.Reason
	case !errors.Is(rerr, order.ErrNotFound):
		return storeError("load split refusal", rerr)
	}
	for _, r := range out.Results {
		switch r.Result {
		case ShareResultSuccess:
			out.SplitFen += r.AmountFen
		case ShareResultClosed:
			if out.Outcome == order.SplitFinished {
				out.Outcome, out.Reason = order.SplitPartial, "a receiver failed; its share stayed with the merchant"
			}
		}
	}
	won, err := a.store.ClaimSharing(ctx, out.Key, out, &out)
	if err != nil {
		return storeError("claim split outcome", err)
	}
	if !won {
		return nil
	}
	args := []any{"order_id", o.ID, "outcome", out.Outcome, "split_fen", out.SplitFen, "reason", out.Reason}
	if out.Outcome == order.SplitFinished {
		a.log.InfoContext(ctx, "split done", args...)
		a.count(ctx, o.AppID, MetricSplitsFinished, 1)
	} else {
		a.log.ErrorContext(ctx, "split done, not as planned: check it in the merchant portal", args...)
		a.count(ctx, o.AppID, MetricSplitsFailed, 1)
	}
	if out.SplitFen > 0 {
		a.count(ctx, o.AppID, MetricSplitFen, out.SplitFen)
	}
	return nil
}

// SplitOf returns an order's split: its plan and, once done, its outcome
// (nil until then); order.ErrNotFound when none is planned yet.
func (a *App) SplitOf(ctx context.Context, orderID string) (order.SplitPlan, *order.SplitOutcome, error) {
	var plan order.SplitPlan
	if err := a.store.SharingClaim(ctx, order.SplitPlanKey(orderID), &plan); err != nil {
		return plan, nil, err
	}
	var out order.SplitOutcome
	err := a.store.SharingClaim(ctx, order.SplitDoneKey(orderID), &out)
	if errors.Is(err, order.ErrNotFound) {
		return plan, nil, nil
	} else if err != nil {
		return plan, nil, err
	}
	return plan, &out, nil
}

// advanceReturn returns the receivers' parts of one refund of a split
// order, once its split is done.
func (a *App) advanceReturn(ctx context.Context, t order.ReturnTask, so ShareOptions) (itemResult, error) {
	now := a.now().UTC().Truncate(time.Millisecond)
	if took, err := a.store.TakeSlot(ctx, "return-step:"+t.ID, so.StepWindow, a.now()); err != nil {
		return itemResult{}, storeError("take return lease", err)
	} else if !took {
		return itemResult{}, nil // another run has it this window
	}
	closeTask := func(note string) (itemResult, error) {
		t.Open, t.Note, t.UpdatedAt = false, note, now
		if err := a.store.SaveReturnTask(ctx, t); err != nil {
			return itemResult{}, storeError("save return task", err)
		}
		return itemResult{fix: &Fix{OrderID: t.OrderID, RefundNo: t.ID, From: "return:open", To: "return:closed"}}, nil
	}
	wait := func(d time.Duration, note string) (itemResult, error) {
		t.DueAt, t.Note, t.UpdatedAt = now.Add(d), note, now
		if err := a.store.SaveReturnTask(ctx, t); err != nil {
			return itemResult{}, storeError("save return task", err)
		}
		return itemResult{}, nil
	}
	r, err := a.store.Refund(ctx, t.ID)
	if err != nil {
		return itemResult{}, storeError("load refund "+t.ID, err)
	}
	if r.Status == order.RefundFailed {
		return closeTask("the refund failed: nothing to return")
	}
	plan, outcome, err := a.SplitOf(ctx, r.OrderID)
	switch {
	case errors.Is(err, order.ErrNotFound):
		return wait(time.Minute, "waiting for the split to be planned")
	case err != nil:
		return itemResult{}, storeError("load split", err)
	case slices.Contains(plan.Accounted, r.ID):
		return closeTask("refunded before the split: the split took only what was left")
	case outcome == nil:
		return wait(time.Minute, "waiting for the split to finish")
	case outcome.Outcome == order.SplitRefused:
		return closeTask("nothing was split: nothing to return")
	case now.Sub(outcome.DecidedAt) > order.ReturnWindow:
		a.log.ErrorContext(ctx, "refund of a split order after WeChat Pay's 180-day return window; the receivers keep their shares", "order_id", r.OrderID, "out_refund_no", r.ID)
		a.count(ctx, r.AppID, MetricReturnsFailed, 1)
		return closeTask("past the 180-day return window: not returned")
	}
	o, err := a.store.Order(ctx, r.OrderID)
	if err != nil {
		return itemResult{}, storeError("load order", err)
	}
	sharer, err := a.sharerOf(o)
	if err != nil {
		return itemResult{}, channelError("return for "+r.ID, err)
	}
	// The refunds after the split, in admission order, up to this one.
	refunds, err := a.store.Refunds(ctx, r.OrderID)
	if err != nil {
		return itemResult{}, storeError("list refunds", err)
	}
	slices.SortFunc(refunds, func(x, y order.Refund) int { return cmp.Compare(x.Slot, y.Slot) })
	paid := plan.PaidFen
	var before int64
	for _, x := range refunds {
		if slices.Contains(plan.Accounted, x.ID) {
			paid -= x.AmountFen
			continue
		}
		if x.Slot < r.Slot && x.Holds() {
			before += x.AmountFen
		}
	}
	pending := 0
	var notes []string
	for _, res := range outcome.Results {
		if res.Result != ShareResultSuccess {
			continue
		}
		amount := order.ReturnAmount(res.AmountFen, paid, before, r.AmountFen)
		if amount < 1 {
			continue
		}
		if res.Type != order.ReceiverMerchant {
			notes = append(notes, fmt.Sprintf("%d fen of a personal receiver's share cannot be returned (WeChat Pay returns only from merchants)", amount))
			continue
		}
		done, err := a.returnShare(ctx, o, plan, r, res.Account, amount, sharer)
		if err != nil {
			return itemResult{}, err
		}
		if !done {
			pending++
		}
	}
	if pending > 0 {
		return wait(0, "returns processing")
	}
	note := "returned"
	if len(notes) > 0 {
		note = fmt.Sprint(notes)
	}
	return closeTask(note)
}

// returnShare sends one return (its amount decided once) and reports
// whether it reached a final result, recording that once.
func (a *App) returnShare(ctx context.Context, o order.Order, plan order.SplitPlan, r order.Refund, account string, amount int64, sharer ProfitSharer) (bool, error) {
	no := order.ReturnNo(r.ID, account)
	var sr order.ShareReturn
	_, err := a.store.ClaimSharing(ctx, order.ReturnKey(no), order.ShareReturn{Key: order.ReturnKey(no), OutReturnNo: no, OutRefundNo: r.ID,
		OrderID: o.ID, Account: account, AmountFen: amount, DecidedAt: a.now().UTC().Truncate(time.Millisecond)}, &sr)
	if err != nil {
		return false, storeError("claim return", err)
	}
	var final order.ReturnOutcome
	if err := a.store.SharingClaim(ctx, order.ReturnResultKey(no), &final); err == nil {
		return true, nil
	} else if !errors.Is(err, order.ErrNotFound) {
		return false, storeError("load return outcome", err)
	}
	res, err := sharer.QueryReturn(ctx, plan.OutOrderNo, no)
	if errors.Is(err, ErrTradeNotFound) {
		res, err = sharer.CreateReturn(ctx, ReturnRequest{OutOrderNo: plan.OutOrderNo, OutReturnNo: no, ReturnMchID: account,
			AmountFen: sr.AmountFen, Description: "退款回退"})
	}
	if err != nil {
		return false, channelError("return "+no, err)
	}
	if res.Result != ReturnResultSucceded && res.Result != ReturnResultFailed {
		return false, nil
	}
	final = order.ReturnOutcome{Key: order.ReturnResultKey(no), OutReturnNo: no, OrderID: o.ID, AmountFen: sr.AmountFen, Result: res.Result,
		FailReason: res.FailReason, DecidedAt: a.now().UTC().Truncate(time.Millisecond)}
	won, err := a.store.ClaimSharing(ctx, final.Key, final, &final)
	if err != nil {
		return false, storeError("claim return outcome", err)
	}
	if won {
		if final.Result == ReturnResultSucceded {
			a.log.InfoContext(ctx, "share returned after a refund", "order_id", o.ID, "out_refund_no", r.ID, "out_return_no", no, "amount_fen", final.AmountFen)
			a.count(ctx, o.AppID, MetricShareReturns, 1)
		} else {
			a.log.ErrorContext(ctx, "share return failed: the merchant must recover it from the receiver", "order_id", o.ID, "out_return_no", no, "fail_reason", final.FailReason)
			a.count(ctx, o.AppID, MetricReturnsFailed, 1)
		}
	}
	return true, nil
}
