package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/payfn/payfn/internal/repo"
)

func TestMain(m *testing.M) {
	if RunChild() {
		return
	}
	os.Exit(m.Run())
}

func BenchmarkVerifyFloor(b *testing.B)           { BenchVerifyFloor(b) }
func BenchmarkVerifyPayment(b *testing.B)         { BenchVerifyPayment(b) }
func BenchmarkVerifyPaymentEmbedded(b *testing.B) { BenchVerifyPaymentEmbedded(b) }
func BenchmarkSDKParseNotify(b *testing.B)        { BenchSDKParseNotify(b) }
func BenchmarkPay(b *testing.B)                   { BenchPay(b) }
func BenchmarkPayFloor(b *testing.B)              { BenchPayFloor(b) }
func BenchmarkRSASign(b *testing.B)               { BenchRSASign(b) }

// BenchmarkVerifyPaymentRatio reports verifyPayment's CPU over its floor's,
// measured in alternating blocks (see Compare).
func BenchmarkVerifyPaymentRatio(b *testing.B) { benchRatio(b, VerifyPaymentOp, VerifyFloorOp) }

// BenchmarkVerifyPaymentUseCaseRatio is BenchmarkVerifyPaymentRatio for
// app.VerifyPayment called directly (VerifyPaymentUseCaseOp): a secondary
// figure without the Lambda adapter and the HTTP layer.
func BenchmarkVerifyPaymentUseCaseRatio(b *testing.B) {
	benchRatio(b, VerifyPaymentUseCaseOp, VerifyFloorOp)
}

// BenchmarkAlipayNotifyRatio reports alipayNotify's CPU over its floor
// (form parse + one RSA2 verify).
func BenchmarkAlipayNotifyRatio(b *testing.B) { benchRatio(b, AlipayNotifyOp, AlipayNotifyFloorOp) }

// BenchmarkPayRatio reports pay's CPU over its signatures' floor.
func BenchmarkPayRatio(b *testing.B) { benchRatio(b, PayOp, PayFloorOp) }

// benchRatio runs a subject against its floor with Compare and reports the
// ratio and both CPU figures.
func benchRatio(b *testing.B,
	subjectOp func(*Fixture) (func(int) error, func(), error),
	floorOp func(*Fixture) (func(int) error, error),
) {
	f, err := Shared()
	if err != nil {
		b.Fatal(err)
	}
	subject, closeFn, err := subjectOp(f)
	if err != nil {
		b.Fatal(err)
	}
	defer closeFn()
	floor, err := floorOp(f)
	if err != nil {
		b.Fatal(err)
	}
	p, err := Compare(subject, floor, 5, b.N)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(p.Ratio, "x-floor")
	b.ReportMetric(float64(p.SubjectCPU), "cpu-ns/op")
	b.ReportMetric(float64(p.FloorCPU), "floor-cpu-ns/op")
}

func BenchmarkNodePeer(b *testing.B) { BenchNodePeer(b) }

func BenchmarkParseNotification(b *testing.B) {
	f, err := Shared()
	if err != nil {
		b.Fatal(err)
	}
	ns, err := f.Notices(poolSize)
	if err != nil {
		b.Fatal(err)
	}
	op, closeFn, err := ParseNotificationOp(f, ns)
	if err != nil {
		b.Fatal(err)
	}
	defer closeFn()
	runOps(b, op)
}

// BenchmarkColdStart builds the verifypayment function as scripts/build
// does and times exec until its first GET /next from a local Lambda Runtime
// API; ns/op is one cold start. It fails if the start touched the network.
func BenchmarkColdStart(b *testing.B) {
	f, err := Shared()
	if err != nil {
		b.Fatal(err)
	}
	root, err := repo.Root()
	if err != nil {
		b.Fatal(err)
	}
	bin, size, err := BuildFunction(root, b.TempDir(), "verifypayment", HostArch())
	if err != nil {
		b.Fatal(err)
	}
	api, err := NewRuntimeAPI()
	if err != nil {
		b.Fatal(err)
	}
	defer api.Close()
	b.ResetTimer()
	ds, conns, err := api.ReadyTimes([]string{bin}, api.GoEnv(f), b.N)
	if err != nil {
		b.Fatal(err)
	}
	if conns != 0 {
		b.Fatalf("cold start opened %d connections to dependencies", conns)
	}
	b.ReportMetric(float64(MedianDuration(ds)), "median-ns")
	b.ReportMetric(float64(size), "bytes")
}

// BenchmarkColdStartNode is the same measurement for the Node.js function
// (bench/node/coldstart.js). It skips only when node or npm is missing.
func BenchmarkColdStartNode(b *testing.B) {
	if !NodeAvailable() {
		b.Skip("node and npm are not installed")
	}
	f, err := Shared()
	if err != nil {
		b.Fatal(err)
	}
	nodeDir, err := EnsureNode()
	if err != nil {
		b.Fatal(err)
	}
	api, err := NewRuntimeAPI()
	if err != nil {
		b.Fatal(err)
	}
	defer api.Close()
	node, _ := exec.LookPath("node")
	b.ResetTimer()
	ds, conns, err := api.ReadyTimes([]string{node, filepath.Join(nodeDir, "coldstart.js")}, api.GoEnv(f), b.N)
	if err != nil {
		b.Fatal(err)
	}
	if conns != 0 {
		b.Fatalf("cold start opened %d connections to dependencies", conns)
	}
	b.ReportMetric(float64(MedianDuration(ds)), "median-ns")
}

// BenchmarkE2E runs b.N purchases by 4 concurrent buyers through the local
// stack, then a burst of 4 duplicate notifications per paid order.
func BenchmarkE2E(b *testing.B) {
	f, err := Shared()
	if err != nil {
		b.Fatal(err)
	}
	s, err := NewStack(f)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	buyers := min(4, b.N)
	b.ResetTimer()
	r, err := s.RunE2E(context.Background(), buyers, (b.N+buyers-1)/buyers, 4, 8)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(r.P50), "p50-ns")
	b.ReportMetric(float64(r.P99), "p99-ns")
	b.ReportMetric(r.PurchasesPerSec, "purchases/s")
	b.ReportMetric(r.CallbacksPerSec, "callbacks/s")
}

// BenchmarkDispatchWebhooks reports the dispatcher's deliveries per second
// to a loopback receiver, the embedded store and real HTTP in between.
func BenchmarkDispatchWebhooks(b *testing.B) {
	f, err := Shared()
	if err != nil {
		b.Fatal(err)
	}
	s, err := NewServiceStack(f)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ResetTimer()
	r, err := s.RunDispatch(context.Background(), max(b.N, 200))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(r.PerSecond, "deliveries/s")
	b.ReportMetric(float64(r.Duplicates), "duplicates")
}

// BenchmarkPaidToFirstAttempt reports the time from an order's PAID
// decision to its order.paid webhook's first arrival, in the local stack.
func BenchmarkPaidToFirstAttempt(b *testing.B) {
	f, err := Shared()
	if err != nil {
		b.Fatal(err)
	}
	s, err := NewServiceStack(f)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ResetTimer()
	r, err := s.RunPaidLatency(context.Background(), max(b.N, 50), 4)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(r.P50), "p50-ns")
	b.ReportMetric(float64(r.P99), "p99-ns")
}

// BenchmarkAlipayNotify is the whole alipayNotify function per
// notification (AlipayNotifyOp), store in memory.
func BenchmarkAlipayNotify(b *testing.B) {
	f, err := Shared()
	if err != nil {
		b.Fatal(err)
	}
	op, c, err := AlipayNotifyOp(f)
	if err != nil {
		b.Fatal(err)
	}
	defer c()
	runOps(b, op)
}
