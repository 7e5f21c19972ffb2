package app

import (
	"context"
	"net/http"
	"strings"

	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/webhook"
)

// The metrics the use cases count (Config.Metrics). docs/metrics.md says
// what each means and what to do when its alarm fires. A name ending in
// Fen is an amount in fen; one ending in Latency is milliseconds.
const (
	MetricOrdersCreated = "OrdersCreated" // a new order was stored
	MetricOrdersPaid    = "OrdersPaid"    // an order became PAID (on time or late)
	MetricPaidFen       = "PaidFen"       // what those orders were paid
	// A genuine payment of the wrong amount or currency: the order went to
	// EXCEPTION.
	MetricPaymentExceptions = "PaymentExceptions"
	// A payment for an order another transaction had already decided: it
	// is in the ledger only, for a person to refund.
	MetricExtraPayments = "ExtraPayments"
	// A payment or refund notification refused before it could change
	// anything: bad signature, stale timestamp, undecryptable, or verified
	// but naming another merchant. WeChat Pay's signature probes are not
	// counted here.
	MetricVerificationFailures = "VerificationFailures"
	// A notification with a WECHATPAY/SIGNTEST/ signature: WeChat Pay
	// checking that the merchant rejects bad signatures. Rejected, as it
	// should be.
	MetricSignatureProbes = "SignatureProbes"
	// A payment for an order closed here that WeChat Pay confirmed: the
	// order was reopened as the payment decided.
	MetricLatePayments = "LatePayments"
	// A payment for an order closed here that WeChat Pay did not confirm
	// yet: not acknowledged, so it comes again.
	MetricLatePaymentsUnconfirmed = "LatePaymentsUnconfirmed"
	MetricRefundsRequested        = "RefundsRequested" // a refund was admitted
	MetricRefundsSucceeded        = "RefundsSucceeded"
	MetricRefundedFen             = "RefundedFen" // what those refunds returned
	MetricRefundsFailed           = "RefundsFailed"
	// WeChat Pay reports a refund ABNORMAL: it needs a person in the
	// merchant portal.
	MetricRefundsAbnormal = "RefundsAbnormal"
	// Webhook attempts (service mode): answered 2xx, or not; and how long
	// each took.
	MetricWebhookDeliveries = "WebhookDeliveries"
	MetricWebhookFailures   = "WebhookFailures"
	MetricWebhookLatency    = "WebhookLatency"
	// A webhook delivery gave up after its last attempt.
	MetricWebhooksAbandoned = "WebhooksAbandoned"
)

// The metrics counted around the use cases by the deployment's wiring
// (shared/setup): each store and channel call's latency, and what each
// scheduled job run reported.
const (
	MetricStoreLatency   = "StoreLatency"
	MetricChannelLatency = "ChannelLatency"
	MetricJobFixes       = "JobFixes"       // JobReport.Fixes
	MetricJobFailures    = "JobFailures"    // JobReport.Failures: items that failed and back off
	MetricJobRunFailures = "JobRunFailures" // a run that returned an error (a bill not downloaded, the store down)
	// MetricBillDifferences is the differences a bill reconciliation found
	// that payfn could not repair by itself; the bill job counts it.
	MetricBillDifferences = "BillDifferences"
)

// MetricNames lists every metric payfn writes.
var MetricNames = []string{
	MetricOrdersCreated, MetricOrdersPaid, MetricPaidFen, MetricPaymentExceptions, MetricExtraPayments,
	MetricVerificationFailures, MetricSignatureProbes, MetricLatePayments, MetricLatePaymentsUnconfirmed,
	MetricRefundsRequested, MetricRefundsSucceeded, MetricRefundedFen, MetricRefundsFailed, MetricRefundsAbnormal,
	MetricWebhookDeliveries, MetricWebhookFailures, MetricWebhookLatency, MetricWebhooksAbandoned,
	MetricStoreLatency, MetricChannelLatency, MetricJobFixes, MetricJobFailures, MetricJobRunFailures,
	MetricBillDifferences,
}

type noMetrics struct{}

func (noMetrics) Count(context.Context, string, string, int64)     {}
func (noMetrics) Observe(context.Context, string, string, float64) {}

// count adds n to a metric of appID's (the default app counts under no
// app).
func (a *App) count(ctx context.Context, appID, name string, n int64) {
	if appID == order.DefaultApp {
		appID = ""
	}
	a.metrics.Count(ctx, appID, name, n)
}

// signatureProbePrefix starts the signature of WeChat Pay's probes: a
// notification signed wrongly on purpose, to check the merchant rejects it.
const signatureProbePrefix = "WECHATPAY/SIGNTEST/"

// countRejected counts a notification that failed verification: as a
// signature probe when it is one, else as a verification failure.
func (a *App) countRejected(ctx context.Context, header http.Header) {
	if strings.HasPrefix(header.Get("Wechatpay-Signature"), signatureProbePrefix) {
		a.count(ctx, "", MetricSignatureProbes, 1)
		return
	}
	a.count(ctx, "", MetricVerificationFailures, 1)
}

// countSettled counts a payment decision: PAID with its amount, or
// EXCEPTION.
func (a *App) countSettled(ctx context.Context, appID string, s order.Status, paidFen int64) {
	if s != order.StatusPaid {
		a.count(ctx, appID, MetricPaymentExceptions, 1)
		return
	}
	a.count(ctx, appID, MetricOrdersPaid, 1)
	a.count(ctx, appID, MetricPaidFen, paidFen)
}

// countRefund counts a refund's outcome.
func (a *App) countRefund(ctx context.Context, appID string, s order.RefundStatus, fen int64) {
	if s != order.RefundSucceeded {
		a.count(ctx, appID, MetricRefundsFailed, 1)
		return
	}
	a.count(ctx, appID, MetricRefundsSucceeded, 1)
	a.count(ctx, appID, MetricRefundedFen, fen)
}

// countAttempt counts one webhook attempt and its latency.
func (a *App) countAttempt(ctx context.Context, appID string, res webhook.Result) {
	name := MetricWebhookFailures
	if res.OK() {
		name = MetricWebhookDeliveries
	}
	a.count(ctx, appID, name, 1)
	if appID == order.DefaultApp {
		appID = ""
	}
	a.metrics.Observe(ctx, appID, MetricWebhookLatency, float64(res.Latency.Microseconds())/1000)
}
