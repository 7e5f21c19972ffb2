package alipay_test

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/alipay"
	"github.com/payfn/payfn/shared/alipaysim"
)

// TestBillReaderOf100000RowsStreams parses a 100,000-row archive as it is
// written (through a pipe), with the heap sampled: what the reader holds
// does not grow with the bill. PAYFN_BILL_ROWS changes the size.
func TestBillReaderOf100000RowsStreams(t *testing.T) {
	rows := 100_000
	if v := os.Getenv("PAYFN_BILL_ROWS"); v != "" {
		rows, _ = strconv.Atoi(v)
	}
	if testing.Short() {
		rows = 10_000
	}
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, cst)
	gen := func(yield func(alipaysim.BillRow) bool) {
		for i := range rows {
			at := day.Add(time.Duration(i) * time.Second / 2)
			r := alipaysim.BillRow{TradeNo: fmt.Sprintf("2026120122001477%012d", i), OutTradeNo: fmt.Sprintf("PFALISCALE%018d", i), Type: alipaysim.BillTrade,
				Subject: "奶茶, 大杯", CreatedAt: at, FinishedAt: at, AmountFen: int64(100 + i%9000), ReceivedFen: int64(100 + i%9000)}
			if i%10 == 9 {
				r.Type, r.OutRequestNo, r.AmountFen, r.ReceivedFen = alipaysim.BillRefund, fmt.Sprintf("RALISCALE%018d", i), 50, 50
			}
			if !yield(r) {
				return
			}
		}
	}
	pr, pw := io.Pipe()
	var size int64
	go func() {
		cw := &counting{w: pw}
		err := alipaysim.WriteBillZip(cw, billSeller, "2026-12-01", gen)
		size = cw.n
		pw.CloseWithError(err)
	}()
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	stop := samplePeak()
	begin := time.Now()
	r := alipay.NewBillReader(pr, billSeller)
	n := 0
	for {
		_, err := r.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
	}
	took := time.Since(begin)
	peak := stop()
	if n != rows || r.Summary().Rows != rows {
		t.Fatalf("%d rows, summary %+v", n, r.Summary())
	}
	line := fmt.Sprintf("Alipay bill archive of %d rows (%.1f MiB zipped) written and parsed through a pipe: %s, peak heap %.1f MiB (%.1f MiB over the %.1f MiB before, the writer's garbage included)",
		rows, float64(size)/(1<<20), took.Round(time.Millisecond), float64(peak)/(1<<20), float64(int64(peak)-int64(base.HeapAlloc))/(1<<20), float64(base.HeapAlloc)/(1<<20))
	t.Log(line)
	fmt.Println(line)
}

type counting struct {
	w io.Writer
	n int64
}

func (c *counting) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// samplePeak samples HeapAlloc until stop is called.
func samplePeak() (stop func() uint64) {
	done, finished := make(chan struct{}), make(chan struct{})
	var peak uint64
	go func() {
		defer close(finished)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() uint64 { close(done); <-finished; return peak }
}
