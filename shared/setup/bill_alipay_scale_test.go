package setup_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/alipay"
	"github.com/payfn/payfn/shared/alipaysim"
	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/setup"
)

// An Alipay bill of 100,000 rows is downloaded (the real Alipay client from
// alipaysim, which writes the GBK ZIP as it goes), unpacked, parsed and
// compared within one function run, in bounded memory, against a
// synthetic ledger (aliScaleStore answers from arithmetic), as
// bill_scale_test.go does for WeChat Pay. PAYFN_BILL_ROWS changes the size.

const (
	aliScaleTx     = "2026120122001477"
	aliScaleOrder  = "PFALISCALE"
	aliScaleRefund = "RALISCALE"
)

func aliScaleTxOf(i int) string     { return aliScaleTx + fmt.Sprintf("%012d", i) }
func aliScaleOrderOf(i int) string  { return aliScaleOrder + fmt.Sprintf("%018d", i) }
func aliScaleRefundOf(i int) string { return aliScaleRefund + fmt.Sprintf("%018d", i) }

func aliScaleRow(day time.Time, i, rows int) alipaysim.BillRow {
	at := scaleAt(day, i, rows)
	if i%scaleRefundEvery == scaleRefundEvery-1 {
		j := i - 1
		return alipaysim.BillRow{TradeNo: aliScaleTxOf(j), OutTradeNo: aliScaleOrderOf(j), Type: alipaysim.BillRefund, Subject: "奶茶, 大杯",
			CreatedAt: at, FinishedAt: at, AmountFen: scaleFen(j) / 2, ReceivedFen: scaleFen(j) / 2, OutRequestNo: aliScaleRefundOf(i)}
	}
	return alipaysim.BillRow{TradeNo: aliScaleTxOf(i), OutTradeNo: aliScaleOrderOf(i), Type: alipaysim.BillTrade, Subject: "奶茶, 大杯",
		CreatedAt: at, FinishedAt: at, BuyerLogonID: "buy***@example.com", AmountFen: scaleFen(i), ReceivedFen: scaleFen(i), FeeFen: scaleFen(i) * 6 / 1000}
}

// aliScaleStore is the real store with a synthetic Alipay ledger of the
// scale bill: every payment settled here, every refund refunded.
type aliScaleStore struct {
	app.Store
	day    time.Time
	rows   int
	seller string
	reads  atomic.Int64
}

func (s *aliScaleStore) payment(i int) order.Payment {
	return order.Payment{TransactionID: aliScaleTxOf(i), OutTradeNo: aliScaleOrderOf(i), Channel: app.ChannelAlipayMini, AppID: testAlipayAppID,
		MchID: s.seller, TradeState: "SUCCESS", TotalFen: scaleFen(i), PayerTotalFen: scaleFen(i), Currency: "CNY",
		SuccessTime: scaleAt(s.day, i, s.rows).UTC(), Matched: true, Disposition: order.DispositionSettled}
}

func (s *aliScaleStore) refund(i int) order.Refund {
	return order.Refund{ID: aliScaleRefundOf(i), OrderID: aliScaleOrderOf(i - 1), Channel: app.ChannelAlipayMini, AmountFen: scaleFen(i-1) / 2,
		Status: order.RefundSucceeded, CreatedAt: scaleAt(s.day, i, s.rows).UTC()}
}

func aliScaleIndex(id, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil
}

func (s *aliScaleStore) PaymentsByID(_ context.Context, ids []string) ([]order.Payment, error) {
	s.reads.Add(1)
	var out []order.Payment
	for _, id := range ids {
		if i, ok := aliScaleIndex(id, aliScaleTx); ok && i < s.rows {
			out = append(out, s.payment(i))
		}
	}
	return out, nil
}

func (s *aliScaleStore) OrdersByID(_ context.Context, ids []string) ([]order.Order, error) {
	s.reads.Add(1)
	var out []order.Order
	for _, id := range ids {
		if i, ok := aliScaleIndex(id, aliScaleOrder); ok && i < s.rows {
			p := s.payment(i)
			out = append(out, order.Order{ID: id, TotalFen: p.TotalFen, Currency: "CNY", Status: order.StatusPaid, TransactionID: p.TransactionID, Channel: app.ChannelAlipayMini})
		}
	}
	return out, nil
}

func (s *aliScaleStore) RefundsByID(_ context.Context, ids []string) ([]order.Refund, error) {
	s.reads.Add(1)
	var out []order.Refund
	for _, id := range ids {
		if i, ok := aliScaleIndex(id, aliScaleRefund); ok && i < s.rows {
			out = append(out, s.refund(i))
		}
	}
	return out, nil
}

func (s *aliScaleStore) ScanBillPayments(_ context.Context, _, _ time.Time, fn func(order.Payment) error) error {
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

func (s *aliScaleStore) ScanBillRefunds(_ context.Context, _, _ time.Time, fn func(order.Refund) error) error {
	s.reads.Add(1)
	for i := scaleRefundEvery - 1; i < s.rows; i += scaleRefundEvery {
		if err := fn(s.refund(i)); err != nil {
			return err
		}
	}
	return nil
}

func TestAlipayBillOf100000RowsIsComparedInBoundedMemoryWithinOneRun(t *testing.T) {
	rows := 100_000
	if v := os.Getenv("PAYFN_BILL_ROWS"); v != "" {
		rows, _ = strconv.Atoi(v)
	}
	if testing.Short() {
		rows = 10_000
	}
	h, ali := newChannelsHarness(t, setup.Options{})
	dayText := billDay(t)
	day, _ := time.ParseInLocation(time.DateOnly, dayText, chinaTime)
	ali.AddBillRows(dayText, rows, func(i int) alipaysim.BillRow { return aliScaleRow(day, i, rows) })
	k := ali.Keys()
	client, err := alipay.New(alipay.Config{AppID: k.AppID, SellerID: k.SellerID, AppPrivateKeyPEM: k.AppPrivateKeyPEM,
		PublicKeyPEM: k.AlipayPublicKeyPEM, GatewayURL: ali.GatewayURL(), NotifyURL: h.url + "/notify/alipay", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	st := &aliScaleStore{Store: h.stack.Store, day: day, rows: rows, seller: k.SellerID}
	a := app.New(app.Config{Store: st, Channel: h.stack.Channel, Channels: []app.Channel{client.Mini()}})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	stop := peakHeap()
	begin := time.Now()
	rep, err := a.ReconcileProviderBill(ctx, app.ProviderAlipay, dayText)
	took := time.Since(begin)
	peak := stop()
	if err != nil {
		t.Fatal(err)
	}
	refunds := rows / scaleRefundEvery
	if !rep.Clean || rep.Rows != rows || rep.PaymentRows != rows-refunds || rep.RefundRows != refunds || rep.BillTotals.Rows != rows ||
		len(rep.Differences) != 0 || rep.HerePayments != rep.PaymentRows || rep.HereRefunds != rep.RefundRows {
		t.Fatalf("report: %s", mustJSON(rep))
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	growth := int64(peak) - int64(base.HeapAlloc)
	line := fmt.Sprintf("Alipay bill of %d rows (the simulator writing the GBK ZIP in the same process): %s, %d store reads, peak heap %.1f MiB (%.1f MiB over the %.1f MiB before), %.1f MiB allocated in all",
		rows, took.Round(time.Millisecond), st.reads.Load(), float64(peak)/(1<<20), float64(growth)/(1<<20), float64(base.HeapAlloc)/(1<<20),
		float64(after.TotalAlloc-base.TotalAlloc)/(1<<20))
	t.Log(line)
	fmt.Println(line)
	if limit := int64(48 << 20); growth > limit {
		t.Errorf("peak heap grew %d bytes, over %d", growth, limit)
	}
}
