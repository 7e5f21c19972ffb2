package setup

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/metrics"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/runtime/httpapi"
)

// Metrics: each invocation's counts go into a collector in its context
// (metrics.Context is the use cases' port over it) and out as one CloudWatch
// EMF line on stdout when the invocation ends; see docs/metrics.md.

// metricsService is the Service dimension of a deployed function: on
// Lambda its name without the function's (template.yaml names each one
// <stack>-<function>, so that is the stack, and two stacks in one account
// keep their metrics apart), "payfn" elsewhere.
func metricsService(fn Function, getenv func(string) string) string {
	if svc, ok := strings.CutSuffix(getenv("AWS_LAMBDA_FUNCTION_NAME"), "-"+string(fn)); ok && svc != "" {
		return svc
	}
	return "payfn"
}

func newEmitter(w io.Writer, service, function string) *metrics.Emitter {
	return metrics.New(w, metrics.Options{Service: service, Function: function, RequestID: httpapi.RequestID})
}

// withMetrics serves h with a collector per request, written to stdout.
func withMetrics(fn Function, getenv func(string) string, h http.Handler) http.Handler {
	return newEmitter(os.Stdout, metricsService(fn, getenv), string(fn)).Handler(h, nil)
}

// jobWithMetrics runs job with a collector per run, written to stdout, and
// counts what the run reported: its fixes, its failed items, and whether
// the run itself failed (zero included, so a job's metrics show each run).
func jobWithMetrics(fn Function, getenv func(string) string, job Job) Job {
	e := newEmitter(os.Stdout, metricsService(fn, getenv), string(fn))
	return func(ctx context.Context) (rep app.JobReport, err error) {
		ctx, c := e.Start(ctx, "")
		defer c.Flush()
		defer func() {
			if p := recover(); p != nil {
				c.Count("", app.MetricJobRunFailures, 1)
				c.Flush()
				panic(p)
			}
		}()
		rep, err = job(ctx)
		failed := int64(0)
		if err != nil {
			failed = 1
		}
		c.Count("", app.MetricJobFixes, int64(len(rep.Fixes)))
		c.Count("", app.MetricJobFailures, int64(rep.Failures))
		c.Count("", app.MetricJobRunFailures, failed)
		return rep, err
	}
}

// stackWithMetrics serves the local stack's mux with a collector per
// request named by the function the path belongs to, written to w (none
// when w is nil).
func stackWithMetrics(w io.Writer, h http.Handler) http.Handler {
	if w == nil {
		return h
	}
	return newEmitter(w, "payfn", "local").Handler(h, func(r *http.Request) string { return string(functionOfPath(r.URL.Path)) })
}

// functionOfPath is the function serving path on the local mux, "" for
// none.
func functionOfPath(path string) Function {
	var best Function
	n := 0
	for _, f := range Functions {
		p := f.Path
		if p == "" || len(p) <= n {
			continue
		}
		if path == p || strings.HasPrefix(path, strings.TrimSuffix(p, "/")+"/") {
			best, n = f.Name, len(p)
		}
	}
	return best
}

// Instrument makes the use cases count through the context's collector and
// times their store and channel calls. The functions and the local stack
// are built with it; call it on an app.Config built by hand (a benchmark,
// say) to measure what a deployed function does.
func Instrument(ac *app.Config) {
	ac.Metrics = metrics.Context{}
	if ac.Store != nil {
		ac.Store = timedStore{ac.Store}
	}
	if ac.Channel != nil {
		ac.Channel = timedChannel{ac.Channel}
	}
	for i, ch := range ac.Channels {
		ac.Channels[i] = timedChannel{ch}
	}
}

// epoch makes time.Since(epoch) a monotonic clock reading that costs one
// clock call, where time.Now costs two.
var epoch = time.Now()

// begin starts timing a call when ctx has a collector: with none, nothing
// is measured and nothing is spent.
func begin(ctx context.Context) (*metrics.Collector, time.Duration) {
	c := metrics.FromContext(ctx)
	if c == nil {
		return nil, 0
	}
	return c, time.Since(epoch)
}

func end(c *metrics.Collector, name string, start time.Duration) {
	if c != nil {
		c.Observe("", name, float64((time.Since(epoch)-start).Microseconds())/1000)
	}
}

// timedStore times the store calls the use cases make on their way; the
// ones it does not override (the administration's, the bill job's) pass
// through untimed.
type timedStore struct{ app.Store }

const storeLatency = app.MetricStoreLatency

func (s timedStore) Product(ctx context.Context, appID, id string) (order.Product, error) {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.Product(ctx, appID, id)
}

func (s timedStore) InsertOrder(ctx context.Context, o order.Order) error {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.InsertOrder(ctx, o)
}

func (s timedStore) Order(ctx context.Context, id string) (order.Order, error) {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.Order(ctx, id)
}

func (s timedStore) OrderByRequest(ctx context.Context, appID, owner, requestID string) (order.Order, error) {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.OrderByRequest(ctx, appID, owner, requestID)
}

func (s timedStore) SetPrepay(ctx context.Context, orderID, prepayID string, expiresAt time.Time) error {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.SetPrepay(ctx, orderID, prepayID, expiresAt)
}

func (s timedStore) RecordPayment(ctx context.Context, p order.Payment) error {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.RecordPayment(ctx, p)
}

func (s timedStore) Payments(ctx context.Context, outTradeNo string) ([]order.Payment, error) {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.Payments(ctx, outTradeNo)
}

func (s timedStore) Claim(ctx context.Context, cl order.Claim) (order.Claim, bool, error) {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.Claim(ctx, cl)
}

func (s timedStore) ApplyClaim(ctx context.Context, cl order.Claim) error {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.ApplyClaim(ctx, cl)
}

func (s timedStore) InsertRefund(ctx context.Context, r order.Refund) error {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.InsertRefund(ctx, r)
}

func (s timedStore) Refund(ctx context.Context, outRefundNo string) (order.Refund, error) {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.Refund(ctx, outRefundNo)
}

func (s timedStore) Refunds(ctx context.Context, orderID string) ([]order.Refund, error) {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.Refunds(ctx, orderID)
}

func (s timedStore) ClaimRefund(ctx context.Context, d order.RefundDecision) (order.RefundDecision, bool, error) {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.ClaimRefund(ctx, d)
}

func (s timedStore) ApplyRefund(ctx context.Context, d order.RefundDecision) error {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.ApplyRefund(ctx, d)
}

func (s timedStore) ClaimByKey(ctx context.Context, key string) (order.Claim, error) {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.ClaimByKey(ctx, key)
}

func (s timedStore) SetPaymentDisposition(ctx context.Context, transactionID string, d order.Disposition, unconfirmed bool) error {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.SetPaymentDisposition(ctx, transactionID, d, unconfirmed)
}

func (s timedStore) CountOpenOrders(ctx context.Context, appID, owner string, at time.Time) (int, error) {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.CountOpenOrders(ctx, appID, owner, at)
}

func (s timedStore) TakeSlot(ctx context.Context, key string, window time.Duration, now time.Time) (bool, error) {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.TakeSlot(ctx, key, window, now)
}

func (s timedStore) UndecidedPayments(ctx context.Context, after string, limit int) ([]order.Payment, error) {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.UndecidedPayments(ctx, after, limit)
}

func (s timedStore) ExpiredOrdersAfter(ctx context.Context, before, afterAt time.Time, afterID string, limit int) ([]order.Order, error) {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.ExpiredOrdersAfter(ctx, before, afterAt, afterID, limit)
}

func (s timedStore) UnpaidOrdersAfter(ctx context.Context, createdBefore, afterAt time.Time, afterID string, limit int) ([]order.Order, error) {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.UnpaidOrdersAfter(ctx, createdBefore, afterAt, afterID, limit)
}

func (s timedStore) PendingRefundsAfter(ctx context.Context, afterAt time.Time, afterID string, limit int) ([]order.Refund, error) {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.PendingRefundsAfter(ctx, afterAt, afterID, limit)
}

func (s timedStore) App(ctx context.Context, id string) (order.App, error) {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.App(ctx, id)
}

func (s timedStore) InsertEvent(ctx context.Context, e order.Event) error {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.InsertEvent(ctx, e)
}

func (s timedStore) InsertDeliveries(ctx context.Context, ds []order.Delivery) error {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.InsertDeliveries(ctx, ds)
}

func (s timedStore) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]order.Delivery, error) {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.DueDeliveries(ctx, now, limit)
}

func (s timedStore) RecordDeliveries(ctx context.Context, ds []order.Delivery) error {
	c, t := begin(ctx)
	defer end(c, storeLatency, t)
	return s.Store.RecordDeliveries(ctx, ds)
}

// timedChannel times the calls that go to WeChat Pay. Verifying a
// notification is local work (no call) and is not timed.
type timedChannel struct{ app.Channel }

const channelLatency = app.MetricChannelLatency

// Unwrap lets the use cases find what the channel implements beyond
// app.Channel (bills, local signing): those are not timed.
func (ch timedChannel) Unwrap() app.Channel { return ch.Channel }

func (ch timedChannel) Prepay(ctx context.Context, req app.PrepayRequest) (app.Prepaid, error) {
	c, t := begin(ctx)
	defer end(c, channelLatency, t)
	return ch.Channel.Prepay(ctx, req)
}

func (ch timedChannel) QueryOrder(ctx context.Context, outTradeNo string) (app.Transaction, error) {
	c, t := begin(ctx)
	defer end(c, channelLatency, t)
	return ch.Channel.QueryOrder(ctx, outTradeNo)
}

func (ch timedChannel) CloseOrder(ctx context.Context, outTradeNo string) error {
	c, t := begin(ctx)
	defer end(c, channelLatency, t)
	return ch.Channel.CloseOrder(ctx, outTradeNo)
}

func (ch timedChannel) Refund(ctx context.Context, req app.RefundRequest) (app.RefundResult, error) {
	c, t := begin(ctx)
	defer end(c, channelLatency, t)
	return ch.Channel.Refund(ctx, req)
}

func (ch timedChannel) QueryRefund(ctx context.Context, outTradeNo, outRefundNo string) (app.RefundResult, error) {
	c, t := begin(ctx)
	defer end(c, channelLatency, t)
	return ch.Channel.QueryRefund(ctx, outTradeNo, outRefundNo)
}
