// Command bench measures payfn and prints one table: verifyPayment and pay
// CPU against the floor of their cryptography, function binary sizes and
// cold starts next to a Node.js function, wechatpay-node-v3 on the same
// notifications, and purchases end to end through the local stack. Node
// parts run when node and npm are installed (bench/node is installed with
// npm ci when needed). See BENCHMARKS.md.
//
//	go run ./scripts/bench [-quick] [-cpuprofile e2e.prof]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/payfn/payfn/bench"

	"github.com/payfn/payfn/internal/repo"
)

type row struct{ metric, value, target, result string }

var rows []row

func add(metric, value, target string, pass *bool) {
	r := row{metric: metric, value: value, target: target, result: ""}
	if pass != nil {
		r.result = map[bool]string{true: "met", false: "MISSED"}[*pass]
	}
	rows = append(rows, r)
	fmt.Fprintf(os.Stderr, "  %s: %s\n", metric, value)
}

func ptr(b bool) *bool { return &b }

func us(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d)/1e3) }
func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

func main() {
	if bench.RunChild() {
		return
	}
	quick := flag.Bool("quick", false, "fewer rounds (a smoke run)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the end-to-end run to this file")
	flag.Parse()
	if err := run(*quick, *cpuprofile); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(quick bool, cpuprofile string) error {
	scale := func(full, q int) int {
		if quick {
			return q
		}
		return full
	}
	root, err := repo.Root()
	if err != nil {
		return err
	}
	f, err := bench.Shared()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "payfn benchmarks on %d CPUs, %s %s/%s\n", runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)

	// 1. verifyPayment against its floor.
	fmt.Fprintln(os.Stderr, "verifyPayment ...")
	floor, err := bench.VerifyFloorOp(f)
	if err != nil {
		return err
	}
	vp, vpClose, err := bench.VerifyPaymentOp(f)
	if err != nil {
		return err
	}
	pv, err := bench.Compare(vp, floor, scale(21, 3), scale(300, 20))
	vpClose()
	if err != nil {
		return err
	}
	add("verify floor (RSA-2048 verify + AES-256-GCM open + JSON decode), CPU/notification", us(pv.FloorCPU), "", nil)
	add("verifyPayment, store in memory, CPU/notification", us(pv.SubjectCPU), "", nil)
	add("verifyPayment / floor (median of paired rounds)", fmt.Sprintf("%.2f×", pv.Ratio), "≤ 1.30×", ptr(pv.Ratio <= 1.3))
	fmt.Fprintln(os.Stderr, "alipayNotify ...")
	aliFloor, err := bench.AlipayNotifyFloorOp(f)
	if err != nil {
		return err
	}
	ali, aliClose, err := bench.AlipayNotifyOp(f)
	if err != nil {
		return err
	}
	pa, err := bench.Compare(ali, aliFloor, scale(21, 3), scale(300, 20))
	aliClose()
	if err != nil {
		return err
	}
	add("Alipay floor (form parse + RSA-2048 SHA256withRSA verify), CPU/notification", us(pa.FloorCPU), "", nil)
	add("alipayNotify, store in memory, CPU/notification", us(pa.SubjectCPU), "", nil)
	add("alipayNotify / floor (median of paired rounds)", fmt.Sprintf("%.2f×", pa.Ratio), "≤ 1.30×", ptr(pa.Ratio <= 1.3))
	sdk, err := bench.SDKParseNotifyOp(f)
	if err != nil {
		return err
	}
	ps, err := bench.Compare(sdk, floor, scale(11, 3), scale(300, 20))
	if err != nil {
		return err
	}
	add("wechatpay-go notify.Handler.ParseNotifyRequest, CPU/notification (reference)", fmt.Sprintf("%s (%.2f× floor)", us(ps.SubjectCPU), ps.Ratio), "", nil)
	emb := testing.Benchmark(bench.BenchVerifyPaymentEmbedded)
	add("verifyPayment with the embedded store (FerretDB in process), per notification",
		fmt.Sprintf("%s wall, %s CPU (incl. FerretDB+SQLite)", ms(time.Duration(emb.NsPerOp())), ms(time.Duration(emb.Extra["cpu-ns/op"]))), "", nil)

	// 2. pay against its signatures.
	fmt.Fprintln(os.Stderr, "pay ...")
	payFloor, err := bench.PayFloorOp(f)
	if err != nil {
		return err
	}
	payOp, payClose, err := bench.PayOp(f)
	if err != nil {
		return err
	}
	pp, err := bench.Compare(payOp, payFloor, scale(11, 3), scale(30, 3))
	payClose()
	if err != nil {
		return err
	}
	sign := testing.Benchmark(bench.BenchRSASign)
	add("pay floor (request sign + response verify + paySign), CPU/call", ms(pp.FloorCPU), "", nil)
	add("pay, store in memory, simulator in a child process, CPU/call", ms(pp.SubjectCPU), "", nil)
	add("pay / floor (median of paired rounds)", fmt.Sprintf("%.2f×", pp.Ratio), "≤ 1.20×", ptr(pp.Ratio <= 1.2))
	add("one RSA-2048 SHA256withRSA sign (Go)", fmt.Sprintf("%s (2 per pay = %.0f%% of pay's CPU)", ms(time.Duration(sign.Extra["cpu-ns/op"])), 200*sign.Extra["cpu-ns/op"]/float64(pp.SubjectCPU)), "", nil)

	// 3. Binary sizes.
	fmt.Fprintln(os.Stderr, "building functions ...")
	out, err := os.MkdirTemp("", "payfn-bench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(out)
	type built struct {
		path string
		size int64
	}
	bins := map[string]built{}
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for _, arch := range []string{"amd64", "arm64"} {
		for _, fn := range bench.Functions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				p, size, err := bench.BuildFunction(root, out, fn, arch)
				mu.Lock()
				defer mu.Unlock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				bins[fn+"/"+arch] = built{p, size}
			}()
		}
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	for _, arch := range []string{"amd64", "arm64"} {
		var lo, hi int64 = 1 << 62, 0
		var parts []string
		for _, fn := range bench.Functions {
			s := bins[fn+"/"+arch].size
			lo, hi = min(lo, s), max(hi, s)
			parts = append(parts, fmt.Sprintf("%s %.2f", fn, float64(s)/1e6))
		}
		add(fmt.Sprintf("function binary size, linux/%s, stripped (MB = 10^6 B)", arch),
			fmt.Sprintf("%.2f–%.2f MB (%.2f–%.2f MiB)", float64(lo)/1e6, float64(hi)/1e6, float64(lo)/(1<<20), float64(hi)/(1<<20)),
			"≤ 12 MB", ptr(hi <= 12_000_000))
		fmt.Fprintf(os.Stderr, "    %s\n", strings.Join(parts, ", "))
	}

	// 4. Cold start.
	fmt.Fprintln(os.Stderr, "cold starts ...")
	api, err := bench.NewRuntimeAPI()
	if err != nil {
		return err
	}
	defer api.Close()
	runs := scale(31, 5)
	env := api.GoEnv(f)
	var worst time.Duration
	var all []time.Duration
	var conns int64
	for _, fn := range bench.Functions {
		ds, c, err := api.ReadyTimes([]string{bins[fn+"/"+runtime.GOARCH].path}, env, runs)
		if err != nil {
			return err
		}
		conns += c
		worst = max(worst, bench.MedianDuration(ds))
		all = append(all, ds...)
	}
	add(fmt.Sprintf("Go exec→first GET /next, median of %d starts × 9 functions (worst function's median)", runs),
		fmt.Sprintf("%s (%s)", ms(bench.MedianDuration(all)), ms(worst)), "≤ 10 ms", ptr(worst <= 10*time.Millisecond))
	add("connections to MongoDB/WeChat Pay during Go cold starts", fmt.Sprint(conns), "0", ptr(conns == 0))

	node := bench.NodeAvailable()
	var nodeDir string
	if node {
		if nodeDir, err = bench.EnsureNode(); err != nil {
			return err
		}
		nodePath, _ := exec.LookPath("node")
		ds, c, err := api.ReadyTimes([]string{nodePath, filepath.Join(nodeDir, "coldstart.js")}, env, runs)
		if err != nil {
			return err
		}
		nm := bench.MedianDuration(ds)
		add(fmt.Sprintf("Node %s (wechatpay-node-v3 2.2.1 + mongodb 7.9.0) exec→first GET /next, median of %d", bench.NodeVersion(), runs),
			fmt.Sprintf("%s (%.0f× the Go median; %d connections)", ms(nm), float64(nm)/float64(bench.MedianDuration(all)), c), "", nil)
	} else {
		add("Node.js cold start", "skipped: node/npm not installed", "", nil)
	}

	// 5. The peer on the same notifications.
	if node {
		fmt.Fprintln(os.Stderr, "node peer ...")
		ns, err := f.Notices(64)
		if err != nil {
			return err
		}
		dir, err := os.MkdirTemp("", "payfn-bench-peer-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if err := bench.WritePeerInputs(dir, f, ns); err != nil {
			return err
		}
		parse, parseClose, err := bench.ParseNotificationOp(f, ns)
		if err != nil {
			return err
		}
		iters := scale(3000, 200)
		var goCPU, nodeCPU, ratios []float64
		for r := 0; r < scale(5, 1); r++ {
			start := bench.CPUTime()
			for i := 0; i < iters; i++ {
				if err := parse(i); err != nil {
					return err
				}
			}
			g := float64(bench.CPUTime()-start) / float64(iters)
			pr, err := bench.RunPeer(nodeDir, dir, iters)
			if err != nil {
				return err
			}
			goCPU, nodeCPU, ratios = append(goCPU, g), append(nodeCPU, pr.CPUNsOp), append(ratios, pr.CPUNsOp/g)
		}
		parseClose()
		gm, nm, rm := bench.Median(goCPU), bench.Median(nodeCPU), bench.Median(ratios)
		add("payfn verify+decrypt (wxpay ParseNotification), CPU/notification", us(time.Duration(gm)), "", nil)
		add("wechatpay-node-v3 2.2.1 verifySign+decipher_gcm, CPU/notification", us(time.Duration(nm)), "", nil)
		add("payfn speed-up over the Node peer (median of paired rounds)", fmt.Sprintf("%.2f×", rm), "≥ 2.5×", ptr(rm >= 2.5))
	} else {
		add("Node.js peer", "skipped: node/npm not installed", "", nil)
	}

	// 6. End to end.
	fmt.Fprintln(os.Stderr, "end to end ...")
	s, err := bench.NewStack(f)
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.Purchase(context.Background()); err != nil { // warm up
		return err
	}
	if cpuprofile != "" {
		pf, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); pf.Close() }()
	}
	buyers := 8
	e, err := s.RunE2E(context.Background(), buyers, scale(25, 2), 5, 16)
	if err != nil {
		return err
	}
	add(fmt.Sprintf("end to end: %d purchases by %d concurrent buyers, latency p50 / p99", e.Purchases, e.Buyers), fmt.Sprintf("%s / %s", ms(e.P50), ms(e.P99)), "", nil)
	add("end to end: purchases/s", fmt.Sprintf("%.1f", e.PurchasesPerSec), "", nil)
	add(fmt.Sprintf("burst of %d duplicate notifications (%d concurrent senders): callbacks/s", e.Callbacks, e.CallbackConcurrency), fmt.Sprintf("%.0f", e.CallbacksPerSec), "", nil)

	fmt.Fprintln(os.Stderr, "service mode webhooks ...")
	ss, err := bench.NewServiceStack(f)
	if err != nil {
		return err
	}
	defer ss.Close()
	dr, err := ss.RunDispatch(context.Background(), scale(1000, 200))
	if err != nil {
		return err
	}
	add(fmt.Sprintf("webhook dispatcher: %d due deliveries to a loopback receiver, deliveries/s", dr.Events), fmt.Sprintf("%.0f", dr.PerSecond), "≥ 500/s", ptr(dr.PerSecond >= 500))
	lr, err := ss.RunPaidLatency(context.Background(), scale(200, 40), 4)
	if err != nil {
		return err
	}
	add(fmt.Sprintf("webhook: PAID decision to first order.paid arrival, %d purchases (4 concurrent), p50 / p99", lr.Purchases), fmt.Sprintf("%s / %s", ms(lr.P50), ms(lr.P99)), "p99 ≤ 1 s", ptr(lr.P99 <= time.Second))

	fmt.Printf("\npayfn benchmarks — %s, %d CPUs, %s linux/%s\n\n", time.Now().Format("2006-01-02"), runtime.NumCPU(), runtime.Version(), runtime.GOARCH)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "metric\tvalue\ttarget\tresult")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.metric, r.value, r.target, r.result)
	}
	return tw.Flush()
}
