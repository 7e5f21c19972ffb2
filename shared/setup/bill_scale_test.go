package setup_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
)

// A bill of 100,000 rows is downloaded (the real wechatpay-go client from
// the simulator, which writes it as it goes), parsed and compared within
// one function run, in bounded memory. The ledger it is compared with is
// synthetic (scaleStore answers the bill's lookups for its generated ids
// from arithmetic), so the figure is the job's own: parsing, batching,
// the matched-id sets, the report. PAYFN_BILL_ROWS changes the size.

const (
	scaleTxPrefix     = "4200777"
	scaleOrderPrefix  = "PFSCALE"
	scaleRefundPrefix = "RSCALE"
	scaleRefundEvery  = 10 // every tenth row is a refund of the row before
)

// scaleAt spreads the rows over the day.
func scaleAt(day time.Time, i, rows int) time.Time {
	return day.Add(time.Duration(i) * (24 * time.Hour / time.Duration(rows+1)))
}

func scaleRow(day time.Time, i, rows int) paysim.BillRow {
	r := paysim.BillRow{
		Time: scaleAt(day, i, rows), AppID: testAppID, MchID: testMchID,
		OpenID: "o-scale-" + strconv.Itoa(i%977), TradeType: "JSAPI", BankType: "OTHERS", Currency: "CNY",
		Body: "Latte, large", Attach: "",
	}
	if i%scaleRefundEvery == scaleRefundEvery-1 {
		j := i - 1
		r.TransactionID, r.OutTradeNo, r.TradeState = scaleTx(j), scaleOrder(j), "REFUND"
		r.RefundID, r.OutRefundNo = "5030"+fmt.Sprintf("%024d", i), scaleRefund(i)
		r.RefundFen, r.RefundAskFen, r.RefundType, r.RefundStatus = scaleFen(j)/2, scaleFen(j)/2, "ORIGINAL", "SUCCESS"
		return r
	}
	r.TransactionID, r.OutTradeNo, r.TradeState = scaleTx(i), scaleOrder(i), "SUCCESS"
	r.SettlementFen, r.TotalFen = scaleFen(i), scaleFen(i)
	return r
}

func scaleTx(i int) string     { return scaleTxPrefix + fmt.Sprintf("%021d", i) }
func scaleOrder(i int) string  { return scaleOrderPrefix + fmt.Sprintf("%021d", i) }
func scaleRefund(i int) string { return scaleRefundPrefix + fmt.Sprintf("%021d", i) }
func scaleFen(i int) int64     { return int64(100 + i%9000) }

func scaleIndex(id, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil
}

// scaleStore is the real store with a synthetic ledger of the scale bill:
// every generated payment paid and settled here, every refund refunded.
type scaleStore struct {
	app.Store
	day   time.Time
	rows  int
	reads atomic.Int64 // batched lookups made
}

func (s *scaleStore) payment(i int) order.Payment {
	at := scaleAt(s.day, i, s.rows).UTC()
	return order.Payment{TransactionID: scaleTx(i), OutTradeNo: scaleOrder(i), AppID: testAppID, MchID: testMchID, TradeState: "SUCCESS",
		TotalFen: scaleFen(i), PayerTotalFen: scaleFen(i), Currency: "CNY", SuccessTime: at, Matched: true, Disposition: order.DispositionSettled}
}

func (s *scaleStore) PaymentsByID(ctx context.Context, ids []string) ([]order.Payment, error) {
	s.reads.Add(1)
	var out []order.Payment
	for _, id := range ids {
		if i, ok := scaleIndex(id, scaleTxPrefix); ok && i < s.rows {
			out = append(out, s.payment(i))
		}
	}
	return out, nil
}

func (s *scaleStore) OrdersByID(ctx context.Context, ids []string) ([]order.Order, error) {
	s.reads.Add(1)
	var out []order.Order
	for _, id := range ids {
		if i, ok := scaleIndex(id, scaleOrderPrefix); ok && i < s.rows {
			p := s.payment(i)
			out = append(out, order.Order{ID: id, TotalFen: p.TotalFen, Currency: "CNY", Status: order.StatusPaid, TransactionID: p.TransactionID})
		}
	}
	return out, nil
}

func (s *scaleStore) RefundsByID(ctx context.Context, ids []string) ([]order.Refund, error) {
	s.reads.Add(1)
	var out []order.Refund
	for _, id := range ids {
		if i, ok := scaleIndex(id, scaleRefundPrefix); ok && i < s.rows {
			out = append(out, order.Refund{ID: id, OrderID: scaleOrder(i - 1), AmountFen: scaleFen(i-1) / 2, Status: order.RefundSucceeded,
				CreatedAt: scaleAt(s.day, i, s.rows).UTC()})
		}
	}
	return out, nil
}

func (s *scaleStore) ScanBillPayments(ctx context.Context, from, to time.Time, fn func(order.Payment) error) error {
	s.reads.Add(1)
	for i := range s.rows {
		if i%scaleRefundEvery != scaleRefundEvery-1 {
			if err := fn(s.payment(i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *scaleStore) ScanBillRefunds(ctx context.Context, from, to time.Time, fn func(order.Refund) error) error {
	s.reads.Add(1)
	for i := scaleRefundEvery - 1; i < s.rows; i += scaleRefundEvery {
		rs, _ := s.RefundsByID(ctx, []string{scaleRefund(i)})
		s.reads.Add(-1)
		if err := fn(rs[0]); err != nil {
			return err
		}
	}
	return nil
}

// peakHeap samples the heap in use until stop is called and returns the
// highest figure seen.
func peakHeap() (stop func() uint64) {
	var mu sync.Mutex
	var peak uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			mu.Lock()
			peak = max(peak, m.HeapAlloc)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

func TestBillOf100000RowsIsComparedInBoundedMemoryWithinOneRun(t *testing.T) {
	rows := 100_000
	if v := os.Getenv("PAYFN_BILL_ROWS"); v != "" {
		rows, _ = strconv.Atoi(v)
	}
	if testing.Short() {
		rows = 10_000
	}
	h := newHarness(t)
	dayText := billDay(t)
	day, _ := time.ParseInLocation(time.DateOnly, dayText, chinaTime)
	h.sim.AddBillRows(dayText, rows, func(i int) paysim.BillRow { return scaleRow(day, i, rows) })
	st := &scaleStore{Store: h.stack.Store, day: day, rows: rows}
	a := app.New(app.Config{Store: st, Channel: h.stack.Channel})

	// One function run: the deadline of the reconcile functions (5 min),
	// less nothing; the job keeps its own margin.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	stop := peakHeap()
	begin := time.Now()
	rep, err := a.ReconcileBill(ctx, dayText)
	took := time.Since(begin)
	peak := stop()
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean || rep.Rows != rows || rep.PaymentRows != rows-rows/scaleRefundEvery || rep.RefundRows != rows/scaleRefundEvery ||
		rep.BillTotals.Rows != rows || len(rep.Differences) != 0 || rep.HerePayments != rep.PaymentRows || rep.HereRefunds != rep.RefundRows {
		t.Fatalf("report: %s", mustJSON(rep))
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	growth := int64(peak) - int64(base.HeapAlloc)
	t.Logf("bill of %d rows: %s, %d store reads, peak heap %.1f MiB (%.1f MiB over the %.1f MiB before), %.1f MiB allocated in all",
		rows, took.Round(time.Millisecond), st.reads.Load(), float64(peak)/(1<<20), float64(growth)/(1<<20), float64(base.HeapAlloc)/(1<<20),
		float64(after.TotalAlloc-base.TotalAlloc)/(1<<20))
	// Bounded: the simulator writing and the job reading stream; what grows
	// with the bill is 8 bytes a matched id. 100,000 rows must fit well
	// inside the smallest function memory (128 MB).
	if limit := int64(48 << 20); growth > limit {
		t.Errorf("peak heap grew %d bytes, over %d", growth, limit)
	}
}

// TestBillOfManyRowsAgainstTheEmbeddedStore is the scale test with the
// ledger, orders and refunds really in the store (the embedded FerretDB),
// so the figure includes the store's batched reads. Loading the store is
// slow, so it runs only with PAYFN_BILL_STORE_ROWS set (e.g. 100000).
func TestBillOfManyRowsAgainstTheEmbeddedStore(t *testing.T) {
	rows, _ := strconv.Atoi(os.Getenv("PAYFN_BILL_STORE_ROWS"))
	if rows <= 0 {
		t.Skip("set PAYFN_BILL_STORE_ROWS to load the store with a synthetic day and compare its bill")
	}
	h := newHarness(t)
	dayText := billDay(t)
	day, _ := time.ParseInLocation(time.DateOnly, dayText, chinaTime)
	h.sim.AddBillRows(dayText, rows, func(i int) paysim.BillRow { return scaleRow(day, i, rows) })
	ctx := context.Background()
	cl, err := mongo.Connect(options.Client().ApplyURI(h.cfg.MongoURI))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Disconnect(ctx)
	db := cl.Database(h.cfg.MongoDatabase)
	syn := &scaleStore{day: day, rows: rows}
	load := time.Now()
	var pays, ords, refs []any
	flush := func(force bool) {
		for _, b := range []struct {
			coll string
			docs *[]any
		}{{"payments", &pays}, {"orders", &ords}, {"refunds", &refs}} {
			if len(*b.docs) == 0 || !force && len(*b.docs) < 1000 {
				continue
			}
			if _, err := db.Collection(b.coll).InsertMany(ctx, *b.docs); err != nil {
				t.Fatal(err)
			}
			*b.docs = (*b.docs)[:0]
		}
	}
	for i := range rows {
		if i%scaleRefundEvery == scaleRefundEvery-1 {
			rs, _ := syn.RefundsByID(ctx, []string{scaleRefund(i)})
			r := rs[0]
			r.AppID, r.Slot = order.DefaultApp, 1
			refs = append(refs, bson.M{"_id": r.ID, "app_id": r.AppID, "order_id": r.OrderID, "slot": 1, "slot_key": r.OrderID + "#1",
				"amount_fen": r.AmountFen, "status": r.Status, "created_at": r.CreatedAt, "updated_at": r.CreatedAt})
		} else {
			p := syn.payment(i)
			pays = append(pays, p)
			os, _ := syn.OrdersByID(ctx, []string{scaleOrder(i)})
			o := os[0]
			ords = append(ords, bson.M{"_id": o.ID, "app_id": order.DefaultApp, "owner": "o-scale", "request_id": o.ID, "request_key": "o-scale/" + o.ID,
				"product_id": "latte", "quantity": 1, "total_fen": o.TotalFen, "currency": "CNY", "status": o.Status, "transaction_id": o.TransactionID,
				"created_at": p.SuccessTime, "expires_at": p.SuccessTime.Add(30 * time.Minute), "paid_at": p.SuccessTime, "updated_at": p.SuccessTime})
		}
		flush(false)
	}
	flush(true)
	t.Logf("loaded %d rows' records into the store in %s", rows, time.Since(load).Round(time.Millisecond))

	runCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	stop := peakHeap()
	begin := time.Now()
	rep, err := h.stack.App.ReconcileBill(runCtx, dayText)
	took := time.Since(begin)
	peak := stop()
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean || rep.Rows != rows || rep.HerePayments != rows-rows/scaleRefundEvery || rep.HereRefunds != rows/scaleRefundEvery {
		t.Fatalf("report: %s", mustJSON(rep))
	}
	t.Logf("bill of %d rows against the embedded store: %s, peak heap %.1f MiB (%.1f MiB over the %.1f MiB before)",
		rows, took.Round(time.Millisecond), float64(peak)/(1<<20), float64(int64(peak)-int64(base.HeapAlloc))/(1<<20), float64(base.HeapAlloc)/(1<<20))
}

// A bill the run cannot finish before its deadline is reported incomplete,
// with none of what it had compared: the next run starts again.
func TestBillCutByTheDeadlineIsIncompleteNotHalfReported(t *testing.T) {
	const rows = 400_000
	h := newHarness(t)
	dayText := billDay(t)
	day, _ := time.ParseInLocation(time.DateOnly, dayText, chinaTime)
	h.sim.AddBillRows(dayText, rows, func(i int) paysim.BillRow { return scaleRow(day, i, rows) })
	// Every row differs (the store holds none of them): cut off, none is
	// reported.
	ctx, cancel := context.WithTimeout(context.Background(), 3500*time.Millisecond) // the job stops 2 s before
	defer cancel()
	begin := time.Now()
	rep, err := h.stack.App.ReconcileBill(ctx, dayText)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status != app.BillIncomplete || rep.Clean || len(rep.Differences) != 0 || rep.Rows >= rows {
		t.Fatalf("report: %s", mustJSON(rep))
	}
	if took := time.Since(begin); took > 2500*time.Millisecond {
		t.Errorf("the run took %s, past its stop time", took)
	}
	t.Logf("stopped after %d of %d rows", rep.Rows, rows)
}
