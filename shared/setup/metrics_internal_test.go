package setup

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/metrics/emftest"
)

// TestMetricsFunctionOfEachPath: the local stack names each route's
// function on its metric lines, as the deployed function would.
func TestMetricsFunctionOfEachPath(t *testing.T) {
	for path, want := range map[string]Function{
		"/createOrder": CreateOrder, "/notify/wechatpay": VerifyPayment, "/notify/wechatpay/refund": VerifyRefund,
		"/admin/refund": Refund, "/admin/bills/2026-11-30": Bills, "/v1/orders/PF1": ServerAPI,
		"/admin/apps": AdminApps, "/admin/apps/app_1/keys": AdminApps, "/nowhere": "",
	} {
		if got := functionOfPath(path); got != want {
			t.Errorf("functionOfPath(%q) = %q, want %q", path, got, want)
		}
	}
	for name, want := range map[string]string{"": "payfn", "shop-prod-pay": "shop-prod", "pay": "payfn", "custom": "payfn"} {
		env := map[string]string{"AWS_LAMBDA_FUNCTION_NAME": name}
		if got := metricsService(Pay, func(k string) string { return env[k] }); got != want {
			t.Errorf("pay deployed as %q: Service %q, want %q", name, got, want)
		}
	}
}

// TestMetricsOfAJobRun: a scheduled run writes one line with its fixes,
// failed items and whether the run failed, zeros included, plus what its
// use cases counted.
func TestMetricsOfAJobRun(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	defer func() { os.Stdout = stdout }()
	getenv := func(string) string { return "" }
	ok := jobWithMetrics(Reconcile, getenv, func(ctx context.Context) (app.JobReport, error) {
		return app.JobReport{Fixes: []app.Fix{{OrderID: "a"}, {OrderID: "b"}}, Failures: 1}, nil
	})
	failed := jobWithMetrics(ReconcileBill, getenv, func(ctx context.Context) (app.JobReport, error) {
		return app.JobReport{Fixes: []app.Fix{}}, errors.New("bill not downloaded")
	})
	if _, err := ok(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := failed(context.Background()); err == nil {
		t.Fatal("the failed run's error was lost")
	}
	w.Close()
	var buf bytes.Buffer
	buf.ReadFrom(r)
	docs, err := emftest.Lines(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 {
		t.Fatalf("%d lines, want one per run:\n%s", len(docs), buf.Bytes())
	}
	rec := map[string]string{"Function": "reconcile"}
	bill := map[string]string{"Function": "reconcileBill"}
	for _, c := range []struct {
		name string
		dims map[string]string
		want float64
	}{
		{app.MetricJobFixes, rec, 2}, {app.MetricJobFailures, rec, 1}, {app.MetricJobRunFailures, rec, 0},
		{app.MetricJobFixes, bill, 0}, {app.MetricJobRunFailures, bill, 1},
	} {
		if got := emftest.Sum(docs, c.name, c.dims); got != c.want {
			t.Errorf("%s %v = %v, want %v", c.name, c.dims, got, c.want)
		}
	}
	if _, ok := docs[1].Values[app.MetricJobRunFailures]; !ok {
		t.Errorf("zero counts are not written: %s", buf.Bytes())
	}
}
