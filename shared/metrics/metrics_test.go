package metrics_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/metrics"
	"github.com/payfn/payfn/shared/metrics/emftest"
)

var fixed = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func newEmitter(buf *bytes.Buffer) *metrics.Emitter {
	return metrics.New(buf, metrics.Options{
		Service:   "shop-prod",
		Function:  "verifyPayment",
		Now:       func() time.Time { return fixed },
		RequestID: func(ctx context.Context) string { id, _ := ctx.Value(reqKey{}).(string); return id },
	})
}

type reqKey struct{}

func docs(t *testing.T, out []byte) []emftest.Doc {
	t.Helper()
	ds, err := emftest.Lines(out)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// TestOneLinePerInvocation: an invocation's counts add up into one line
// that validates against the EMF schema, with the Function dimension,
// units from the names, and the request id as a property.
func TestOneLinePerInvocation(t *testing.T) {
	var buf bytes.Buffer
	e := newEmitter(&buf)
	ctx := context.WithValue(context.Background(), reqKey{}, "req-1")
	ctx, c := e.Start(ctx, "")
	var m metrics.Context
	m.Count(ctx, "", "OrdersPaid", 1)
	m.Count(ctx, "", "PaidFen", 2800)
	m.Count(ctx, "", "OrdersPaid", 1)
	m.Count(ctx, "", "PaidFen", 1200)
	m.Observe(ctx, "", "StoreLatency", 1.5)
	m.Observe(ctx, "", "StoreLatency", 3)
	if buf.Len() != 0 {
		t.Fatalf("wrote before the flush: %s", buf.Bytes())
	}
	c.Flush()
	c.Flush() // a second flush writes nothing
	if n := bytes.Count(buf.Bytes(), []byte("\n")); n != 1 {
		t.Fatalf("%d lines, want 1:\n%s", n, buf.Bytes())
	}
	want := `{"_aws":{"Timestamp":1796119200000,"CloudWatchMetrics":[{"Namespace":"payfn","Dimensions":[["Service"],["Service","Function"]],"Metrics":[` +
		`{"Name":"OrdersPaid","Unit":"Count"},{"Name":"PaidFen","Unit":"None"},{"Name":"StoreLatency","Unit":"Milliseconds"}]}]},` +
		`"Service":"shop-prod","Function":"verifyPayment","request_id":"req-1","OrdersPaid":2,"PaidFen":4000,"StoreLatency":[1.5,3]}` + "\n"
	if buf.String() != want {
		t.Fatalf("line\n%s\nwant\n%s", buf.String(), want)
	}
	d := docs(t, buf.Bytes())[0]
	if d.Namespace != "payfn" || d.Timestamp != fixed.UnixMilli() || d.Units["PaidFen"] != "None" {
		t.Fatalf("decoded %+v", d)
	}
}

// TestAppsGetALineEachWithBothDimensionSets: values recorded under a
// service app go to a line of their own that publishes under Service,
// Service+Function and Service+Function+App.
func TestAppsGetALineEachWithBothDimensionSets(t *testing.T) {
	var buf bytes.Buffer
	e := newEmitter(&buf)
	ctx, c := e.Start(context.Background(), "dispatchWebhooks")
	var m metrics.Context
	m.Count(ctx, "shop-a", "WebhookDeliveries", 1)
	m.Count(ctx, "shop-b", "WebhookFailures", 1)
	m.Observe(ctx, "shop-a", "WebhookLatency", 40)
	m.Observe(ctx, "", "StoreLatency", 2)
	c.Flush()
	ds := docs(t, buf.Bytes())
	if len(ds) != 3 {
		t.Fatalf("%d lines, want 3 (shop-a, shop-b, no app):\n%s", len(ds), buf.Bytes())
	}
	for _, d := range ds {
		_, hasApp := d.Values["App"]
		if hasApp && (len(d.Dimensions) != 3 || strings.Join(d.Dimensions[2], ",") != "Service,Function,App") {
			t.Errorf("app line dimensions %v", d.Dimensions)
		}
		if !hasApp && len(d.Dimensions) != 2 {
			t.Errorf("line without app has dimensions %v", d.Dimensions)
		}
	}
	a := map[string]string{"Function": "dispatchWebhooks", "App": "shop-a"}
	if emftest.Sum(ds, "WebhookDeliveries", a) != 1 || emftest.Sum(ds, "WebhookLatency", a) != 1 ||
		emftest.Sum(ds, "WebhookFailures", map[string]string{"App": "shop-b"}) != 1 ||
		emftest.Sum(ds, "StoreLatency", map[string]string{"Function": "dispatchWebhooks"}) != 1 {
		t.Fatalf("sums wrong:\n%s", buf.Bytes())
	}
}

// TestNothingCollectedWritesNothing and nothing is recorded without a
// collector in the context.
func TestNothingCollectedWritesNothing(t *testing.T) {
	var buf bytes.Buffer
	e := newEmitter(&buf)
	_, c := e.Start(context.Background(), "login")
	c.Flush()
	metrics.Context{}.Count(context.Background(), "", "OrdersCreated", 1)
	if buf.Len() != 0 {
		t.Fatalf("wrote %s", buf.Bytes())
	}
}

// TestValuesAfterTheFlushAreNotLost: a goroutine that outlives its request
// still gets its value written, on a line of its own.
func TestValuesAfterTheFlushAreNotLost(t *testing.T) {
	var buf bytes.Buffer
	e := newEmitter(&buf)
	ctx, c := e.Start(context.Background(), "createOrder")
	metrics.Context{}.Count(ctx, "", "OrdersCreated", 1)
	c.Flush()
	metrics.Context{}.Count(ctx, "shop", "WebhookDeliveries", 1)
	metrics.Context{}.Observe(ctx, "shop", "WebhookLatency", 12)
	ds := docs(t, buf.Bytes())
	if len(ds) != 3 || emftest.Sum(ds, "WebhookDeliveries", map[string]string{"App": "shop"}) != 1 {
		t.Fatalf("lines:\n%s", buf.Bytes())
	}
}

// TestAHundredValuesFillALine: no metric carries more than 100 values on
// a line; the 100th writes them and the count goes on.
func TestAHundredValuesFillALine(t *testing.T) {
	var buf bytes.Buffer
	e := newEmitter(&buf)
	ctx, c := e.Start(context.Background(), "reconcile")
	for i := range 250 {
		metrics.Context{}.Observe(ctx, "", "ChannelLatency", float64(i))
	}
	metrics.Context{}.Count(ctx, "", "JobFixes", 3)
	c.Flush()
	ds := docs(t, buf.Bytes())
	if len(ds) != 3 {
		t.Fatalf("%d lines, want 3", len(ds))
	}
	if got := emftest.Sum(ds, "ChannelLatency", nil); got != 250 {
		t.Fatalf("%v latencies, want 250", got)
	}
	if got := emftest.Sum(ds, "JobFixes", nil); got != 3 {
		t.Fatalf("JobFixes %v, want 3", got)
	}
}

// TestConcurrentItemsAddUp: a job's parallel items share the collector.
func TestConcurrentItemsAddUp(t *testing.T) {
	var buf bytes.Buffer
	e := newEmitter(&buf)
	ctx, c := e.Start(context.Background(), "closeExpired")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				metrics.Context{}.Count(ctx, "", "JobFixes", 1)
				metrics.Context{}.Observe(ctx, "", "StoreLatency", 1)
			}
		})
	}
	wg.Wait()
	c.Flush()
	ds := docs(t, buf.Bytes())
	if emftest.Sum(ds, "JobFixes", nil) != 400 || emftest.Sum(ds, "StoreLatency", nil) != 400 {
		t.Fatalf("lost counts:\n%s", buf.Bytes())
	}
}

// TestHandlerFlushesEachRequest: the middleware gives each request a
// collector named by the function resolver and writes its line when the
// handler returns.
func TestHandlerFlushesEachRequest(t *testing.T) {
	var buf bytes.Buffer
	e := newEmitter(&buf)
	h := e.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		metrics.Context{}.Count(r.Context(), "", "OrdersCreated", 1)
	}), func(r *http.Request) string { return strings.TrimPrefix(r.URL.Path, "/") })
	for _, p := range []string{"/createOrder", "/createOrder", "/pay"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, p, nil))
	}
	ds := docs(t, buf.Bytes())
	if len(ds) != 3 || emftest.Sum(ds, "OrdersCreated", map[string]string{"Function": "createOrder"}) != 2 {
		t.Fatalf("lines:\n%s", buf.Bytes())
	}
}

// TestValidatorRejectsWhatTheSpecificationForbids: the schema and the
// reference rules catch each kind of invalid document, so a passing line
// means something.
func TestValidatorRejectsWhatTheSpecificationForbids(t *testing.T) {
	ok := `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"payfn","Dimensions":[["Function"]],"Metrics":[{"Name":"N","Unit":"Count"}]}]},"Function":"f","N":1}`
	if _, err := emftest.Validate([]byte(ok)); err != nil {
		t.Fatalf("valid document rejected: %v", err)
	}
	bad := map[string]string{
		"no _aws":               `{"Function":"f","N":1}`,
		"no timestamp":          `{"_aws":{"CloudWatchMetrics":[{"Namespace":"payfn","Dimensions":[["Function"]],"Metrics":[{"Name":"N"}]}]},"Function":"f","N":1}`,
		"timestamp not integer": strings.Replace(ok, `"Timestamp":1`, `"Timestamp":1.5`, 1),
		"no namespace":          strings.Replace(ok, `"Namespace":"payfn",`, ``, 1),
		"empty namespace":       strings.Replace(ok, `"Namespace":"payfn"`, `"Namespace":""`, 1),
		"unknown unit":          strings.Replace(ok, `"Unit":"Count"`, `"Unit":"Fen"`, 1),
		"extra in definition":   strings.Replace(ok, `"Unit":"Count"`, `"Unit":"Count","Max":3`, 1),
		"no directive":          strings.Replace(ok, `[{"Namespace":"payfn","Dimensions":[["Function"]],"Metrics":[{"Name":"N","Unit":"Count"}]}]`, `[]`, 1),
		"missing dimension":     strings.Replace(ok, `"Function":"f",`, ``, 1),
		"dimension not string":  strings.Replace(ok, `"Function":"f"`, `"Function":3`, 1),
		"blank dimension":       strings.Replace(ok, `"Function":"f"`, `"Function":" "`, 1),
		"missing metric":        strings.Replace(ok, `,"N":1`, ``, 1),
		"metric not number":     strings.Replace(ok, `"N":1`, `"N":"1"`, 1),
		"nested metric":         strings.Replace(ok, `"N":1`, `"N":{"v":1}`, 1),
		"101 values":            strings.Replace(ok, `"N":1`, `"N":[`+strings.Repeat("1,", 100)+`1]`, 1),
		"ten dimension keys":    strings.Replace(ok, `[["Function"]]`, `[["Function","Function","Function","Function","Function","Function","Function","Function","Function","Function"]]`, 1),
		"trailing data":         ok + ` x`,
	}
	for name, doc := range bad {
		if _, err := emftest.Validate([]byte(doc)); err == nil {
			t.Errorf("%s: accepted %s", name, doc)
		}
	}
}

func TestUnitOf(t *testing.T) {
	for name, want := range map[string]metrics.Unit{"StoreLatency": metrics.Milliseconds, "PaidFen": metrics.None, "OrdersPaid": metrics.Count} {
		if got := metrics.UnitOf(name); got != want {
			t.Errorf("UnitOf(%s) = %s, want %s", name, got, want)
		}
	}
}
