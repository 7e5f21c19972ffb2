package app

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"regexp"
	"slices"
	"time"

	"github.com/payfn/payfn/shared/order"
)

// Daily bill reconciliation. Each day each provider (WeChat Pay, Alipay)
// publishes the trade bill of the day before: every payment and every
// refund it accepted. The bill job (ReconcileBills) downloads each
// configured provider's bill through its channel's BillSource, which checks
// the file whole (WeChat Pay's digest; Alipay's archive CRCs and counts),
// and compares every row with payfn's ledger, orders and refunds of that
// provider's channels as the file streams in, with the store read in
// batches. Only reads happen until the whole file has checked: a tampered
// or cut bill repairs nothing and leaves a download_failed report. Then
// each difference payfn can repair is repaired by the usual claims through
// the order's channel (a lost payment is settled from the provider's
// query, a lost refund outcome is decided from its query), and the others
// are reported. The report, one document per provider and day (its
// Channel is the provider's name), is what the operator reads at
// GET /admin/bills/{date}?channel=.
//
// Running it again for a day repairs nothing twice (every repair is a
// claim) and gives the same report: a difference repaired by an earlier run
// stays in the report as repaired.

// Bill report statuses.
const (
	BillClean          = "clean"           // compared in full: WeChat Pay and payfn agree
	BillDifferences    = "differences"     // compared in full: see the differences
	BillIncomplete     = "incomplete"      // stopped at the deadline, or a repair failed: the next run goes on
	BillDownloadFailed = "download_failed" // the bill could not be had or did not match its digest: nothing compared
	BillNotReady       = "not_ready"       // WeChat Pay has not generated the bill yet
)

// Kinds of difference between a bill and payfn.
const (
	BillMissingHere         = "missing_here"          // WeChat Pay has a payment payfn's ledger lacks
	BillMissingThere        = "missing_there"         // payfn's ledger has a payment the bill lacks
	BillAmountDiffers       = "amount_differs"        // the same payment with another amount
	BillStatusDiffers       = "status_differs"        // paid at WeChat Pay; the order here does not show it
	BillRefundMissingHere   = "refund_missing_here"   // a refund payfn did not make (the merchant portal?)
	BillRefundMissingThere  = "refund_missing_there"  // a refund here the bill lacks
	BillRefundAmountDiffers = "refund_amount_differs" // the same refund with another amount or order
	BillRefundStatusDiffers = "refund_status_differs" // decided otherwise at WeChat Pay
)

// What became of a difference.
const (
	OutcomeRepaired     = "repaired"      // payfn now agrees with WeChat Pay
	OutcomeReported     = "reported"      // payfn cannot repair it: a person must look
	OutcomeRepairFailed = "repair_failed" // the repair failed (store or WeChat Pay down): the next run tries again
	OutcomePending      = "pending"       // not tried yet: the run stopped at its deadline
	OutcomeResolved     = "resolved"      // reported earlier, and a later run found it gone
)

// Bill job tuning.
const (
	// ChannelWeChatPay names WeChat Pay's bills (report ids, the route):
	// ProviderWeChatPay. Alipay's are ProviderAlipay.
	ChannelWeChatPay = ProviderWeChatPay
	// BillLookback is how many days back the job takes up a day whose
	// report is not final (not ready, failed, incomplete).
	BillLookback = 7
	// billBatch is how many rows are compared per store read: an indexed
	// $in of 2,000 ids is one quick query on MongoDB.
	billBatch = 2000
	// maxBillDifferences bounds the differences a report lists (and a run
	// repairs); beyond it they are counted, and the next run goes on.
	maxBillDifferences = 2000
	// billStopSlack: an error this close to the stop time is the stop's.
	billStopSlack = time.Second
)

// Bill error codes.
const (
	CodeInvalidBillDate    = "INVALID_BILL_DATE"
	CodeInvalidBillChannel = "INVALID_BILL_CHANNEL"
	CodeBillReportNotFound = "BILL_REPORT_NOT_FOUND"
)

var billDatePattern = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)

// BillReport is the outcome of reconciling one channel's bill of one day.
type BillReport struct {
	ID      string `bson:"_id" json:"-"` // channel:date
	Date    string `bson:"bill_date" json:"bill_date"`
	Channel string `bson:"channel" json:"channel"`
	Status  string `bson:"status" json:"status"`
	// Clean is true when the whole bill was compared and nothing differs.
	Clean bool `bson:"clean" json:"clean"`
	// Error says why the bill was not compared (download_failed, not_ready).
	Error       string `bson:"error,omitempty" json:"error,omitempty"`
	Rows        int    `bson:"rows" json:"rows"` // data rows in the bill
	PaymentRows int    `bson:"payment_rows" json:"payment_rows"`
	RefundRows  int    `bson:"refund_rows" json:"refund_rows"`
	// BillTotals are the bill's own summary row; the payments and refunds
	// here for the day are HerePayments and HereRefunds.
	BillTotals   BillSummary      `bson:"bill_totals" json:"bill_totals"`
	HerePayments int              `bson:"here_payments" json:"here_payments"`
	HereRefunds  int              `bson:"here_refunds" json:"here_refunds"`
	Differences  []BillDifference `bson:"differences" json:"differences"`
	Counts       map[string]int   `bson:"counts" json:"counts"` // differences by kind
	Outcomes     map[string]int   `bson:"outcomes" json:"outcomes"`
	Unlisted     int              `bson:"unlisted,omitempty" json:"unlisted,omitempty"` // differences over the list's bound
	Runs         int              `bson:"runs" json:"runs"`
	CreatedAt    time.Time        `bson:"created_at" json:"created_at"`
	UpdatedAt    time.Time        `bson:"updated_at" json:"updated_at"`
	DurationMS   int64            `bson:"duration_ms" json:"duration_ms"`
}

// BillDifference is one row (or ledger record) on which WeChat Pay's bill
// and payfn disagree, and what was done about it.
type BillDifference struct {
	Kind          string `bson:"kind" json:"kind"`
	OutTradeNo    string `bson:"out_trade_no,omitempty" json:"out_trade_no,omitempty"`
	TransactionID string `bson:"transaction_id,omitempty" json:"transaction_id,omitempty"`
	OutRefundNo   string `bson:"out_refund_no,omitempty" json:"out_refund_no,omitempty"`
	BillFen       int64  `bson:"bill_fen" json:"bill_fen"`
	HereFen       int64  `bson:"here_fen" json:"here_fen"`
	BillStatus    string `bson:"bill_status,omitempty" json:"bill_status,omitempty"`
	HereStatus    string `bson:"here_status,omitempty" json:"here_status,omitempty"`
	Outcome       string `bson:"outcome" json:"outcome"`
	After         string `bson:"after,omitempty" json:"after,omitempty"` // the status here after the repair
	Note          string `bson:"note,omitempty" json:"note,omitempty"`

	pay *order.Payment // for the repair; not stored
	ord *order.Order
	ref *order.Refund
}

func (d BillDifference) key() string {
	return d.Kind + "|" + d.TransactionID + "|" + d.OutRefundNo + "|" + d.OutTradeNo
}

// Final reports whether the report needs no further run.
func (r BillReport) Final() bool {
	if r.Status != BillClean && r.Status != BillDifferences {
		return false
	}
	for _, d := range r.Differences {
		if d.Outcome == OutcomeRepairFailed || d.Outcome == OutcomePending {
			return false
		}
	}
	return r.Unlisted == 0
}

// ReconcileBills is the daily bill job: it reconciles yesterday's bill
// (China time) of each provider with bills (billProviders: WeChat Pay,
// Alipay), then takes up each of the BillLookback days before
// whose report is not final, until its time is up (the same margin as the
// other jobs). A bill that failed to download or to match its digest fails
// the run, so the failure shows where jobs' failures are watched.
func (a *App) ReconcileBills(ctx context.Context) (JobReport, error) {
	begin := time.Now()
	opts := a.jobs.withDefaults()
	stopAt := time.Time{}
	if dl, ok := ctx.Deadline(); ok {
		stopAt = dl.Add(-max(opts.MinMargin, time.Until(dl)/10))
	}
	rep := JobReport{Job: "reconcileBill", Fixes: []Fix{}, Complete: true, Sweeps: []SweepReport{}}
	today := a.now().In(chinaTime)
	var errs []error
	providers := a.billProviders()
days:
	for back := 1; back <= 1+BillLookback; back++ {
		day := today.AddDate(0, 0, -back).Format(time.DateOnly)
		for _, provider := range providers {
			var old BillReport
			err := a.store.BillReport(ctx, billReportID(provider, day), &old)
			switch {
			case err == nil && old.Final():
				continue // done: a run again would give the same report
			case errors.Is(err, order.ErrNotFound) && back > 1:
				continue // an earlier day never run (before payfn was deployed): not taken up
			case err != nil && !errors.Is(err, order.ErrNotFound):
				errs = append(errs, storeError("load bill report "+provider+" "+day, err))
				continue
			}
			if !stopAt.IsZero() && time.Now().After(stopAt) {
				rep.Complete, rep.Stopped = false, StoppedDeadline
				break days
			}
			a.runBill(ctx, &rep, &errs, provider, day, stopAt)
		}
	}
	rep.DurationMS = time.Since(begin).Milliseconds()
	a.log.InfoContext(ctx, "reconcileBill done", "examined", rep.Examined, "fixed", len(rep.Fixes), "failures", rep.Failures,
		"complete", rep.Complete, "duration_ms", rep.DurationMS)
	return rep, errors.Join(errs...)
}

// runBill reconciles one provider's bill of day and adds it to the job's
// report as a sweep: "bill:DAY" for WeChat Pay (as before Alipay came),
// "bill:PROVIDER:DAY" for the others.
func (a *App) runBill(ctx context.Context, rep *JobReport, errs *[]error, provider, day string, stopAt time.Time) {
	br, fixes, err := a.reconcileBill(ctx, provider, day, stopAt)
	name := "bill:" + day
	if provider != ProviderWeChatPay {
		name = "bill:" + provider + ":" + day
	}
	sw := SweepReport{Name: name, Examined: br.Rows, Fixed: len(fixes), Complete: br.Final()}
	for _, d := range br.Differences {
		if d.Outcome == OutcomeRepairFailed {
			sw.Failures++
		}
	}
	if br.Status == BillIncomplete {
		sw.Stopped = StoppedDeadline
	}
	rep.Sweeps = append(rep.Sweeps, sw)
	rep.Examined += sw.Examined
	rep.Failures += sw.Failures
	rep.Fixes = append(rep.Fixes, fixes...)
	rep.Complete = rep.Complete && (sw.Complete || br.Status == BillNotReady)
	if err != nil {
		rep.Failures++
		*errs = append(*errs, err)
	}
}

// ReconcileBill reconciles WeChat Pay's bill of day (YYYY-MM-DD, China
// time) now, whatever its report says, and returns the report. The error
// is the run's failure (the report says it too), nil for a day compared in
// full even if differences were found.
// Errors: INVALID_BILL_DATE, STORE_UNAVAILABLE, PAYMENT_CHANNEL_UNAVAILABLE,
// PAYMENT_CHANNEL_ERROR.
func (a *App) ReconcileBill(ctx context.Context, day string) (BillReport, error) {
	return a.ReconcileProviderBill(ctx, ProviderWeChatPay, day)
}

// ReconcileProviderBill is ReconcileBill for provider's bill (a Provider*
// name: ProviderWeChatPay, ProviderAlipay).
// Errors: INVALID_BILL_CHANNEL and those of ReconcileBill.
func (a *App) ReconcileProviderBill(ctx context.Context, provider, day string) (BillReport, error) {
	if err := checkBillChannel(provider); err != nil {
		return BillReport{}, err
	}
	if err := checkBillDate(day); err != nil {
		return BillReport{}, err
	}
	stopAt := time.Time{}
	if dl, ok := ctx.Deadline(); ok {
		stopAt = dl.Add(-max(a.jobs.withDefaults().MinMargin, time.Until(dl)/10))
	}
	r, _, err := a.reconcileBill(ctx, provider, day, stopAt)
	return r, err
}

// BillReport returns the stored report of channel's bill of day: channel
// is a provider's name, ProviderWeChatPay ("" too) or ProviderAlipay.
// Errors: INVALID_BILL_CHANNEL, INVALID_BILL_DATE, BILL_REPORT_NOT_FOUND,
// STORE_UNAVAILABLE.
func (a *App) BillReport(ctx context.Context, channel, day string) (BillReport, error) {
	channel = cmp.Or(channel, ChannelWeChatPay)
	if err := checkBillChannel(channel); err != nil {
		return BillReport{}, err
	}
	if err := checkBillDate(day); err != nil {
		return BillReport{}, err
	}
	var r BillReport
	err := a.store.BillReport(ctx, billReportID(channel, day), &r)
	if errors.Is(err, order.ErrNotFound) {
		return BillReport{}, Errorf(KindNotFound, CodeBillReportNotFound, "no %s bill report for %s: the job has not run for that day", channel, day)
	} else if err != nil {
		return BillReport{}, storeError("load bill report", err)
	}
	if r.Differences == nil {
		r.Differences = []BillDifference{}
	}
	return r, nil
}

func checkBillDate(day string) error {
	if _, err := time.Parse(time.DateOnly, day); err != nil || !billDatePattern.MatchString(day) {
		return Errorf(KindInvalid, CodeInvalidBillDate, "the bill date must be a day as YYYY-MM-DD")
	}
	return nil
}

// BillChannels are the providers whose bills payfn reconciles, in the
// order the job takes them: the names of the reports' channel and of the
// route's ?channel=.
var BillChannels = []string{ProviderWeChatPay, ProviderAlipay}

func checkBillChannel(channel string) error {
	if !slices.Contains(BillChannels, channel) {
		return Errorf(KindInvalid, CodeInvalidBillChannel, "the bill channel must be one of %v", BillChannels)
	}
	return nil
}

// billProviders are the providers the job reconciles: those with a
// configured channel that has bills (BillSource).
func (a *App) billProviders() []string {
	var out []string
	for _, p := range BillChannels {
		if _, ok := a.billSource(p); ok {
			out = append(out, p)
		}
	}
	return out
}

// billSource finds provider's bills on its configured channel, through
// wrappers.
func (a *App) billSource(provider string) (BillSource, bool) {
	ch, err := a.provider(provider)
	if err != nil {
		return nil, false
	}
	return capability[BillSource](ch)
}

// channelProviders says whose bill each known channel's money is in. A
// configured channel's Provider() comes first; this covers ledger rows and
// refunds of a channel no longer configured here.
var channelProviders = map[string]string{
	ChannelWeChatJSAPI: ProviderWeChatPay, ChannelWeChatH5: ProviderWeChatPay,
	ChannelAlipayWap: ProviderAlipay, ChannelAlipayMini: ProviderAlipay,
}

// providerOf is the provider whose bill holds money taken through channel
// ("" is order.DefaultChannel, as on records made before channels).
func (a *App) providerOf(channel string) string {
	channel = cmp.Or(channel, order.DefaultChannel)
	if ch, ok := a.channels[channel]; ok {
		return ch.Provider()
	}
	return channelProviders[channel]
}

// scanBillPayments and scanBillRefunds read the day's ledger rows and
// refunds of provider's channels only: another provider's payments are
// in its own bill, not missing from this one.
//
// A refund carries its order's channel. A ledger row is the provider's
// whose merchant id it carries (WeChat Pay's mchid, Alipay's seller_id),
// or, when no configured channel has that merchant id, its channel's
// provider (rows without a channel are order.DefaultChannel's, WeChat
// Pay's).
func (a *App) scanBillPayments(ctx context.Context, provider string, from, to time.Time, fn func(order.Payment) error) error {
	byMch := map[string]string{}
	for _, ch := range a.channels {
		if _, taken := byMch[ch.MchID()]; !taken && ch.MchID() != "" {
			byMch[ch.MchID()] = ch.Provider()
		}
	}
	return a.store.ScanBillPayments(ctx, from, to, func(p order.Payment) error {
		owner, ok := byMch[p.MchID]
		if !ok {
			owner = a.providerOf(p.Channel)
		}
		if owner != provider {
			return nil
		}
		return fn(p)
	})
}

func (a *App) scanBillRefunds(ctx context.Context, provider string, from, to time.Time, fn func(order.Refund) error) error {
	return a.store.ScanBillRefunds(ctx, from, to, func(r order.Refund) error {
		if a.providerOf(r.ChannelName()) != provider {
			return nil
		}
		return fn(r)
	})
}

// providerLabel names a provider in reports and logs.
func providerLabel(provider string) string {
	switch provider {
	case ProviderWeChatPay:
		return "WeChat Pay"
	case ProviderAlipay:
		return "Alipay"
	}
	return provider
}

func billReportID(channel, day string) string { return channel + ":" + day }

// chinaTime is China Standard Time: bills' days and times are in it.
var chinaTime = time.FixedZone("CST", 8*3600)

// reconcileBill runs one day's bill and stores its report.
func (a *App) reconcileBill(ctx context.Context, provider, day string, stopAt time.Time) (BillReport, []Fix, error) {
	begin := time.Now()
	id := billReportID(provider, day)
	var old BillReport
	if err := a.store.BillReport(ctx, id, &old); err != nil && !errors.Is(err, order.ErrNotFound) {
		return BillReport{}, nil, storeError("load bill report "+day, err)
	}
	now := a.now().UTC().Truncate(time.Millisecond)
	r := BillReport{ID: id, Date: day, Channel: provider, Runs: old.Runs + 1, CreatedAt: old.CreatedAt, UpdatedAt: now}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	log := a.log.With("bill_date", day, "channel", provider)
	src, ok := a.billSource(provider)
	if !ok {
		r.Status, r.Error = BillDownloadFailed, "no configured "+providerLabel(provider)+" channel has bills"
		return a.saveBill(ctx, r, old, nil, begin, fmt.Errorf("reconcile %s bill %s: %s", provider, day, r.Error))
	}
	c, err := a.compareBill(ctx, src, provider, day, stopAt)
	switch {
	case errors.Is(err, ErrBillNotReady):
		r.Status, r.Error = BillNotReady, providerLabel(provider)+" has not generated the bill yet"
		log.WarnContext(ctx, "bill not ready; a later run takes it up", "err", err)
		return a.saveBill(ctx, r, old, nil, begin, nil)
	case c.stopped:
		// Cut off before the whole file was read and verified: nothing of
		// it is reported.
		r.Status, r.Error, r.Rows = BillIncomplete, "stopped at the deadline before the whole bill was compared", c.rows
		log.WarnContext(ctx, "bill comparison stopped at the deadline; the next run starts again", "rows", c.rows)
		return a.saveBill(ctx, r, old, nil, begin, nil)
	case errors.As(err, new(*Error)):
		// The store failed mid-way: nothing of the bill is reported.
		r.Status, r.Error = BillIncomplete, err.Error()
		log.ErrorContext(ctx, "bill comparison failed; nothing reported, the next run starts again", "err", err)
		return a.saveBill(ctx, r, old, nil, begin, err)
	case err != nil:
		r.Status, r.Error = BillDownloadFailed, err.Error()
		return a.saveBill(ctx, r, old, nil, begin, channelError(provider+" bill "+day, err))
	}
	r.Rows, r.PaymentRows, r.RefundRows, r.BillTotals = c.rows, c.paymentRows, c.refundRows, c.summary
	r.HerePayments, r.HereRefunds, r.Unlisted = c.herePayments, c.hereRefunds, c.unlisted
	fixes := a.repairBill(ctx, c.diffs, stopAt)
	r.Differences = c.diffs
	if len(fixes) > 0 {
		// What is here now, so that a run after this one says the same.
		from, _ := time.ParseInLocation(time.DateOnly, day, chinaTime)
		if n, err := a.countBillPayments(ctx, provider, from, from.AddDate(0, 0, 1)); err == nil {
			r.HerePayments = n
		}
		n := 0
		if a.scanBillRefunds(ctx, provider, from, from.AddDate(0, 0, 1), func(order.Refund) error { n++; return nil }) == nil {
			r.HereRefunds = n
		}
	}
	return a.saveBill(ctx, r, old, fixes, begin, nil)
}

// saveBill merges the run's differences with the stored report's, sets the
// status and stores it.
func (a *App) saveBill(ctx context.Context, r, old BillReport, fixes []Fix, begin time.Time, runErr error) (BillReport, []Fix, error) {
	compared := r.Status == ""
	if compared {
		r.Differences = mergeDifferences(old.Differences, r.Differences, r.Runs)
	} else {
		// Not compared this run: keep what an earlier run found.
		r.Differences = old.Differences
		if r.Status == BillIncomplete && old.Status != "" && old.Status != BillIncomplete {
			r.Rows = old.Rows
		}
	}
	if r.Differences == nil {
		r.Differences = []BillDifference{}
	}
	r.Counts, r.Outcomes = map[string]int{}, map[string]int{}
	for _, d := range r.Differences {
		r.Counts[d.Kind]++
		r.Outcomes[d.Outcome]++
	}
	if compared {
		r.Status = BillClean
		if len(r.Differences) > 0 || r.Unlisted > 0 {
			r.Status = BillDifferences
		}
		if r.Outcomes[OutcomeRepairFailed] > 0 || r.Outcomes[OutcomePending] > 0 {
			r.Status = BillIncomplete
		}
	}
	r.Clean = r.Status == BillClean
	if compared {
		// What is left for a person (the bill-differences alarm watches it).
		left := int64(r.Unlisted + r.Outcomes[OutcomeReported] + r.Outcomes[OutcomeRepairFailed] + r.Outcomes[OutcomePending])
		a.count(ctx, "", MetricBillDifferences, left)
	}
	r.DurationMS = time.Since(begin).Milliseconds()
	if err := a.store.SaveBillReport(ctx, r.ID, r); err != nil {
		return r, fixes, errors.Join(runErr, storeError("save bill report "+r.Date, err))
	}
	level := "info"
	switch {
	case r.Status == BillDownloadFailed:
		level = "error"
	case r.Status != BillClean:
		level = "warn"
	}
	args := []any{"bill_date", r.Date, "status", r.Status, "rows", r.Rows, "differences", len(r.Differences), "repaired", r.Outcomes[OutcomeRepaired],
		"reported", r.Outcomes[OutcomeReported], "repair_failed", r.Outcomes[OutcomeRepairFailed], "duration_ms", r.DurationMS}
	switch level {
	case "error":
		a.log.ErrorContext(ctx, "bill reconciliation failed", append(args, "err", r.Error)...)
	case "warn":
		a.log.WarnContext(ctx, "bill reconciled with differences", args...)
	default:
		a.log.InfoContext(ctx, "bill reconciled: clean", args...)
	}
	return r, fixes, runErr
}

// mergeDifferences keeps what earlier runs did: a difference repaired then
// stays repaired (it no longer shows, because it was repaired), one found
// again is this run's, and one reported earlier but not found again was
// resolved in between.
func mergeDifferences(old, found []BillDifference, run int) []BillDifference {
	byKey := map[string]BillDifference{}
	for _, d := range found {
		byKey[d.key()] = d
	}
	for _, d := range old {
		k := d.key()
		if _, again := byKey[k]; again && d.Outcome != OutcomeRepaired {
			continue
		}
		if _, again := byKey[k]; !again && d.Outcome != OutcomeRepaired && d.Outcome != OutcomeResolved {
			d.Outcome = OutcomeResolved
			d.Note = fmt.Sprintf("no longer differs at run %d", run)
		}
		byKey[k] = d
	}
	out := make([]BillDifference, 0, len(byKey))
	for _, d := range byKey {
		out = append(out, d)
	}
	slices.SortFunc(out, func(x, y BillDifference) int { return cmp.Compare(x.key(), y.key()) })
	return out
}

// billComparison is what streaming one bill found.
type billComparison struct {
	rows, paymentRows, refundRows int
	summary                       BillSummary
	herePayments, hereRefunds     int
	diffs                         []BillDifference
	unlisted                      int
	stopped                       bool
}

func (c *billComparison) add(d BillDifference) {
	if len(c.diffs) >= maxBillDifferences {
		c.unlisted++
		return
	}
	c.diffs = append(c.diffs, d)
}

// billIndex is the day's records here, held as 40 bytes each whatever
// the ids' length, sorted by the hash of their id: a 128-bit FNV hash of
// the id, the amount, and the hash of their order and their state. A bill
// row that agrees with its entry in every one of these is clean; any other
// row is looked up exactly by id. A hash collision could only make a
// differing row look clean if the amount, the order's hash and the state
// collided too.
type billIndex []billEntry

type billEntry struct {
	id      [2]uint64
	order   uint64
	fen     int64
	state   uint8 // payments: 1 settled for good; refunds: order.RefundStatus as 0, 1, 2
	matched bool
}

func hashID(id string) [2]uint64 {
	h := fnv.New128a()
	h.Write([]byte(id))
	var b [16]byte
	sum := h.Sum(b[:0])
	return [2]uint64{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:])}
}

func hashOrder(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64()
}

func cmpHash(a, b [2]uint64) int {
	if c := cmp.Compare(a[0], b[0]); c != 0 {
		return c
	}
	return cmp.Compare(a[1], b[1])
}

func (x billIndex) sort() {
	slices.SortFunc(x, func(a, b billEntry) int { return cmpHash(a.id, b.id) })
}

// find returns the entry of id, or nil.
func (x billIndex) find(id string) *billEntry {
	h := hashID(id)
	i, ok := slices.BinarySearchFunc(x, h, func(e billEntry, h [2]uint64) int { return cmpHash(e.id, h) })
	if !ok {
		return nil
	}
	return &x[i]
}

var refundStates = []order.RefundStatus{order.RefundPending, order.RefundSucceeded, order.RefundFailed}

func refundState(s order.RefundStatus) uint8 { return uint8(max(0, slices.Index(refundStates, s))) }

// countBillPayments counts the day's ledger rows that moved money.
func (a *App) countBillPayments(ctx context.Context, provider string, from, to time.Time) (int, error) {
	n := 0
	err := a.scanBillPayments(ctx, provider, from, to, func(order.Payment) error { n++; return nil })
	return n, err
}

// compareBill compares the bill with the store, reading only: one pass
// over the day's ledger rows and refunds into an index, then the bill
// streamed against it, with only the rows that do not agree looked up by
// id, then a second pass over the day's records if some were not in the
// bill. It returns with stopped set when the time ran out.
func (a *App) compareBill(ctx context.Context, src BillSource, provider, day string, stopAt time.Time) (*billComparison, error) {
	c := &billComparison{}
	from, err := time.ParseInLocation(time.DateOnly, day, chinaTime)
	if err != nil {
		return c, checkBillDate(day)
	}
	to := from.AddDate(0, 0, 1)
	in := func(t time.Time) bool { return !t.Before(from) && t.Before(to) }
	work := ctx
	if !stopAt.IsZero() {
		var cancel context.CancelFunc
		work, cancel = context.WithDeadlineCause(ctx, stopAt, errJobBudget)
		defer cancel()
	}
	// A call cut off by the stop fails a little before it (the store keeps
	// its own margin before a deadline), so an error that close to the stop,
	// or after the caller gave up, is the stop's.
	over := func() bool { return ctx.Err() != nil || !stopAt.IsZero() && time.Until(stopAt) < billStopSlack }
	fail := func(err error) (*billComparison, error) {
		c.stopped = over()
		return c, err
	}
	var pays, refs billIndex
	err = a.scanBillPayments(work, provider, from, to, func(p order.Payment) error {
		e := billEntry{id: hashID(p.TransactionID), order: hashOrder(p.OutTradeNo), fen: p.TotalFen}
		if billSettled(p.Disposition) {
			e.state = 1
		}
		pays = append(pays, e)
		return nil
	})
	if err != nil {
		return fail(storeError("read the day's ledger", err))
	}
	err = a.scanBillRefunds(work, provider, from, to, func(r order.Refund) error {
		refs = append(refs, billEntry{id: hashID(r.ID), order: hashOrder(r.OrderID), fen: r.AmountFen, state: refundState(r.Status)})
		return nil
	})
	if err != nil {
		return fail(storeError("read the day's refunds", err))
	}
	pays.sort()
	refs.sort()
	c.herePayments, c.hereRefunds = len(pays), len(refs)

	bill, err := src.TradeBill(work, day)
	if err != nil {
		return fail(err)
	}
	defer bill.Close()
	var check []BillRow
	flush := func() error {
		if len(check) == 0 {
			return nil
		}
		err := a.compareBatch(work, check, c, in, pays, refs)
		check = check[:0]
		return err
	}
	for {
		row, err := bill.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			return fail(fmt.Errorf("bill %s: %w", day, err))
		}
		c.rows++
		if row.TradeState == TradeStateRefund {
			c.refundRows++
			e := refs.find(row.OutRefundNo)
			if e != nil && e.fen == row.RefundAskFen && e.order == hashOrder(row.OutTradeNo) &&
				(billRefundFinal(row.RefundStatus) == "" || refundStates[e.state] == billRefundFinal(row.RefundStatus)) {
				e.matched = true
				continue
			}
		} else {
			c.paymentRows++
			e := pays.find(row.TransactionID)
			if e != nil && e.fen == row.TotalFen && e.order == hashOrder(row.OutTradeNo) && e.state == 1 && row.TradeState == TradeStateSuccess {
				e.matched = true
				continue
			}
		}
		check = append(check, row)
		if len(check) == billBatch {
			if err := flush(); err != nil {
				return fail(err)
			}
		}
	}
	if err := flush(); err != nil {
		return fail(err)
	}
	c.summary = bill.Summary()
	// Here but not there: the day's records no bill row matched.
	if err := a.missingThere(work, c, provider, from, to, pays, refs); err != nil {
		return fail(err)
	}
	return c, nil
}

// compareBatch compares rows that did not agree with the day's index
// exactly, by id, and marks the day's records it names as matched.
func (a *App) compareBatch(ctx context.Context, rows []BillRow, c *billComparison, in func(time.Time) bool, pays, refs billIndex) error {
	var txIDs, refundNos []string
	for _, r := range rows {
		if r.TradeState == TradeStateRefund {
			refundNos = append(refundNos, r.OutRefundNo)
		} else {
			txIDs = append(txIDs, r.TransactionID)
		}
	}
	ps, err := a.store.PaymentsByID(ctx, txIDs)
	if err != nil {
		return storeError("load ledger rows", err)
	}
	ledger := make(map[string]order.Payment, len(ps))
	for _, p := range ps {
		ledger[p.TransactionID] = p
	}
	// Orders are read only where the ledger does not settle the question:
	// a row disposed settled, exception or late was written after its
	// decision reached the order (apply, then dispose), and those statuses
	// are final. Most days that is every row, and no order is read.
	var orderIDs []string
	for _, r := range rows {
		if r.TradeState == TradeStateRefund {
			continue
		}
		if p, ok := ledger[r.TransactionID]; !ok || p.OutTradeNo != r.OutTradeNo || !billSettled(p.Disposition) {
			orderIDs = append(orderIDs, r.OutTradeNo)
		}
	}
	var os []order.Order
	if len(orderIDs) > 0 {
		if os, err = a.store.OrdersByID(ctx, orderIDs); err != nil {
			return storeError("load orders", err)
		}
	}
	var rs []order.Refund
	if len(refundNos) > 0 {
		if rs, err = a.store.RefundsByID(ctx, refundNos); err != nil {
			return storeError("load refunds", err)
		}
	}
	orders := make(map[string]order.Order, len(os))
	for _, o := range os {
		orders[o.ID] = o
	}
	refunds := make(map[string]order.Refund, len(rs))
	for _, r := range rs {
		refunds[r.ID] = r
	}
	for _, row := range rows {
		o, haveOrder := orders[row.OutTradeNo]
		if row.TradeState == TradeStateRefund {
			r, ok := refunds[row.OutRefundNo]
			if e := refs.find(row.OutRefundNo); ok && e != nil && r.Status != order.RefundFailed && in(r.CreatedAt) {
				e.matched = true
			}
			a.compareRefundRow(c, row, r, ok)
			continue
		}
		p, ok := ledger[row.TransactionID]
		if e := pays.find(row.TransactionID); ok && e != nil && p.Disposition != order.DispositionNotPaid && in(p.SuccessTime) {
			e.matched = true
		}
		var op *order.Order
		if haveOrder {
			op = &o
		}
		a.comparePaymentRow(c, row, p, ok, op)
	}
	return nil
}

func (a *App) comparePaymentRow(c *billComparison, row BillRow, p order.Payment, inLedger bool, o *order.Order) {
	d := BillDifference{OutTradeNo: row.OutTradeNo, TransactionID: row.TransactionID, BillFen: row.TotalFen, BillStatus: row.TradeState, ord: o}
	if o != nil {
		d.HereStatus = string(o.Status)
	}
	if !inLedger {
		d.Kind = BillMissingHere
		if o == nil {
			d.Outcome, d.Note = OutcomeReported, "no such order here: a payment payfn did not take (another system on this merchant id?)"
		}
		c.add(d)
		return
	}
	d.HereFen, d.pay = p.TotalFen, &p
	if p.TotalFen != row.TotalFen || p.OutTradeNo != row.OutTradeNo {
		d.Kind, d.Outcome = BillAmountDiffers, OutcomeReported
		d.Note = "the ledger row and the bill disagree on the amount or the order: check the payment in the merchant portal"
		if p.OutTradeNo != row.OutTradeNo {
			d.Note = fmt.Sprintf("the ledger row names order %s, the bill %s", p.OutTradeNo, row.OutTradeNo)
		}
		c.add(d)
		return
	}
	if row.TradeState != TradeStateSuccess {
		d.Kind, d.Outcome = BillStatusDiffers, OutcomeReported
		d.Note = "the bill says " + row.TradeState + " for a payment the ledger holds: check it in the merchant portal"
		c.add(d)
		return
	}
	if billSettled(p.Disposition) {
		// Settled (the order carries it, finally), or an extra payment of
		// an order paid otherwise (known, logged at error level when it
		// came): nothing differs.
		return
	}
	if o != nil && o.TransactionID == p.TransactionID && (o.Status == order.StatusPaid || o.Status == order.StatusException) {
		return // decided; only the ledger row's disposition lags
	}
	d.Kind = BillStatusDiffers
	if o == nil {
		d.Outcome, d.Note = OutcomeReported, "the ledger row's order is missing here"
	}
	c.add(d)
}

// billSettled reports whether a ledger row's disposition says its payment
// is on its order for good (or is a known extra payment).
func billSettled(d order.Disposition) bool {
	switch d {
	case order.DispositionSettled, order.DispositionException, order.DispositionLate, order.DispositionExtra:
		return true
	}
	return false
}

// billRefundFinal maps a bill's refund status to the outcome it decides
// ("" while it is still open).
func billRefundFinal(s string) order.RefundStatus {
	switch s {
	case RefundStateSuccess:
		return order.RefundSucceeded
	case "REFUNDCLOSE", RefundStateClosed:
		return order.RefundFailed
	}
	return "" // PROCESSING, CHANGE (abnormal): a snapshot of a refund still open
}

func (a *App) compareRefundRow(c *billComparison, row BillRow, r order.Refund, here bool) {
	d := BillDifference{OutTradeNo: row.OutTradeNo, TransactionID: row.TransactionID, OutRefundNo: row.OutRefundNo,
		BillFen: row.RefundAskFen, BillStatus: row.RefundStatus}
	if !here {
		d.Kind, d.Outcome = BillRefundMissingHere, OutcomeReported
		d.Note = "a refund payfn did not make (made in the merchant portal?): record it with the merchant's books"
		c.add(d)
		return
	}
	d.HereFen, d.HereStatus, d.ref = r.AmountFen, string(r.Status), &r
	if r.AmountFen != row.RefundAskFen || r.OrderID != row.OutTradeNo {
		d.Kind, d.Outcome = BillRefundAmountDiffers, OutcomeReported
		d.Note = "the refund here and the bill disagree on the amount or the order: check it in the merchant portal"
		c.add(d)
		return
	}
	final := billRefundFinal(row.RefundStatus)
	switch {
	case final == "", r.Status == final:
		return
	case r.Status == order.RefundPending:
		d.Kind = BillRefundStatusDiffers // decided at WeChat Pay, not here yet: ask and decide
	default:
		d.Kind, d.Outcome = BillRefundStatusDiffers, OutcomeReported
		d.Note = "decided otherwise here and at WeChat Pay: check the refund in the merchant portal"
	}
	c.add(d)
}

// missingThere reports the day's ledger rows and refunds no bill row
// matched, reading the day once more only when there are any.
func (a *App) missingThere(ctx context.Context, c *billComparison, provider string, from, to time.Time, pays, refs billIndex) error {
	unmatched := func(x billIndex) bool {
		return slices.ContainsFunc(x, func(e billEntry) bool { return !e.matched })
	}
	if unmatched(pays) {
		err := a.scanBillPayments(ctx, provider, from, to, func(p order.Payment) error {
			if e := pays.find(p.TransactionID); e == nil || e.matched {
				return nil
			}
			c.add(BillDifference{Kind: BillMissingThere, OutTradeNo: p.OutTradeNo, TransactionID: p.TransactionID, HereFen: p.TotalFen,
				HereStatus: string(p.Disposition), Outcome: OutcomeReported,
				Note: "in payfn's ledger (a verified WeChat Pay notification or query) but not in the bill: check the transaction in the merchant portal"})
			return nil
		})
		if err != nil {
			return storeError("read the day's ledger again", err)
		}
	}
	if unmatched(refs) {
		err := a.scanBillRefunds(ctx, provider, from, to, func(r order.Refund) error {
			if e := refs.find(r.ID); e == nil || e.matched {
				return nil
			}
			d := BillDifference{Kind: BillRefundMissingThere, OutTradeNo: r.OrderID, OutRefundNo: r.ID, HereFen: r.AmountFen,
				HereStatus: string(r.Status), Outcome: OutcomeReported,
				Note: "refunded here but not in the bill: check the refund in the merchant portal (one made in the day's last minutes may be in the next day's bill)"}
			if r.Status == order.RefundPending {
				d.ref, d.Outcome, d.Note = &r, "", ""
			}
			c.add(d)
			return nil
		})
		if err != nil {
			return storeError("read the day's refunds again", err)
		}
	}
	return nil
}

// repairBill repairs what payfn can, by the same paths as reconcile: a
// payment missing here or not applied to its order is settled from WeChat
// Pay's query (claims make a repeat harmless), a refund still REFUNDING
// here is decided from its query (or sent, if WeChat Pay never got it).
// Differences left without an outcome when the time is up are pending.
func (a *App) repairBill(ctx context.Context, diffs []BillDifference, stopAt time.Time) []Fix {
	var fixes []Fix
	work := ctx
	if !stopAt.IsZero() {
		var cancel context.CancelFunc
		work, cancel = context.WithDeadlineCause(ctx, stopAt, errJobBudget)
		defer cancel()
	}
	for i := range diffs {
		d := &diffs[i]
		if d.Outcome != "" {
			continue
		}
		if work.Err() != nil {
			d.Outcome, d.Note = OutcomePending, "not tried: the run stopped at its deadline"
			continue
		}
		if fix := a.repairDifference(work, d); fix != nil {
			fixes = append(fixes, *fix)
		}
	}
	return fixes
}

func (a *App) repairDifference(ctx context.Context, d *BillDifference) *Fix {
	failed := func(err error) *Fix {
		d.Outcome, d.Note = OutcomeRepairFailed, "repair failed; the next run tries again: "+err.Error()
		a.log.WarnContext(ctx, "bill difference repair failed", "kind", d.Kind, "out_trade_no", d.OutTradeNo, "transaction_id", d.TransactionID, "out_refund_no", d.OutRefundNo, "err", err)
		return nil
	}
	switch {
	case d.ref != nil: // refund_status_differs, refund_missing_there: still REFUNDING here
		before := d.ref.Status
		after, abnormal, err := a.reconcileRefund(ctx, *d.ref)
		if err != nil {
			return failed(err)
		}
		d.After = string(after.Status)
		switch {
		case after.Status != before:
			d.Outcome, d.Note = OutcomeRepaired, "decided from WeChat Pay's query"
		case abnormal:
			d.Outcome, d.Note = OutcomeReported, "WeChat Pay reports the refund ABNORMAL: resolve it in the merchant portal"
		case d.Kind == BillRefundMissingThere:
			d.Outcome, d.Note = OutcomeReported, "still REFUNDING at WeChat Pay (or sent to it now): it shows in a later bill"
		default:
			d.Outcome, d.Note = OutcomeReported, "WeChat Pay's query does not decide it yet"
		}
		if d.Outcome == OutcomeRepaired {
			a.log.WarnContext(ctx, "bill reconciliation decided a refund", "out_refund_no", d.OutRefundNo, "from", before, "to", after.Status)
			return &Fix{OrderID: after.OrderID, RefundNo: after.ID, From: string(before), To: string(after.Status)}
		}
		return nil
	case d.Kind == BillMissingHere && d.ord != nil, d.Kind == BillStatusDiffers && d.pay != nil:
		var before, after order.Order
		var err error
		if d.pay != nil {
			before, after, err = a.redecidePayment(ctx, *d.pay)
		} else {
			before = *d.ord
			after, err = a.reconcile(ctx, before)
		}
		if err != nil {
			return failed(err)
		}
		d.After = string(after.Status)
		if after.TransactionID == d.TransactionID && (after.Status == order.StatusPaid || after.Status == order.StatusException) {
			d.Outcome, d.Note = OutcomeRepaired, "settled from WeChat Pay's query"
			if after.Status == order.StatusException {
				d.Note = "settled from WeChat Pay's query: the amount differs from the order, so it is EXCEPTION"
			}
			if before.Status != after.Status {
				a.log.WarnContext(ctx, "bill reconciliation settled an order", "order_id", after.ID, "transaction_id", d.TransactionID, "from", before.Status, "to", after.Status)
				return &Fix{OrderID: after.ID, From: string(before.Status), To: string(after.Status)}
			}
			return nil
		}
		d.Outcome, d.Note = OutcomeReported, "WeChat Pay's query did not settle the order with this transaction (paid by another, or not confirmed): check it in the merchant portal"
		return nil
	}
	d.Outcome = OutcomeReported
	return nil
}
