package alipay_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/payfn/payfn/shared/alipay"
	"github.com/payfn/payfn/shared/alipaysim"
	"github.com/payfn/payfn/shared/app"
)

var cst = time.FixedZone("CST", 8*3600)

const billSeller = "2088000000000042"

func billRows(day time.Time) []alipaysim.BillRow {
	at := day.Add(10 * time.Hour)
	return []alipaysim.BillRow{
		{TradeNo: "2026120122001400000000000001", OutTradeNo: "PF0001", Type: alipaysim.BillTrade, Subject: "奶茶, 大杯", CreatedAt: at, FinishedAt: at, AmountFen: 3580, ReceivedFen: 3580, FeeFen: 21},
		{TradeNo: "2026120122001400000000000002", OutTradeNo: "PF0002", Type: alipaysim.BillTrade, Subject: "Latte", CreatedAt: at, FinishedAt: at.Add(time.Minute), AmountFen: 100, ReceivedFen: 90},
		{TradeNo: "2026120122001400000000000001", OutTradeNo: "PF0001", Type: alipaysim.BillRefund, Subject: "奶茶, 大杯", CreatedAt: at, FinishedAt: at.Add(time.Hour), AmountFen: 1000, ReceivedFen: 1000, OutRequestNo: "RF-0001"},
	}
}

func writeBill(t testing.TB, rows []alipaysim.BillRow) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := alipaysim.WriteBillZip(&buf, billSeller, "2026-12-01", slices.Values(rows)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readAll reads a bill to its end.
func readAll(b []byte) ([]app.BillRow, app.BillSummary, error) {
	r := alipay.NewBillReader(io.NopCloser(bytes.NewReader(b)), billSeller)
	defer r.Close()
	var rows []app.BillRow
	for {
		row, err := r.Next()
		if err == io.EOF {
			return rows, r.Summary(), nil
		} else if err != nil {
			return rows, app.BillSummary{}, err
		}
		rows = append(rows, row)
	}
}

func TestBillReaderReadsAlipaysArchive(t *testing.T) {
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, cst)
	rows, sum, err := readAll(writeBill(t, billRows(day)))
	if err != nil {
		t.Fatal(err)
	}
	at := day.Add(10 * time.Hour)
	want := []app.BillRow{
		{Time: at, MchID: billSeller, TransactionID: "2026120122001400000000000001", OutTradeNo: "PF0001", TradeState: "SUCCESS", Currency: "CNY", SettlementFen: 3580, TotalFen: 3580},
		{Time: at.Add(time.Minute), MchID: billSeller, TransactionID: "2026120122001400000000000002", OutTradeNo: "PF0002", TradeState: "SUCCESS", Currency: "CNY", SettlementFen: 90, TotalFen: 100},
		{Time: at.Add(time.Hour), MchID: billSeller, TransactionID: "2026120122001400000000000001", OutTradeNo: "PF0001", TradeState: "REFUND", Currency: "CNY",
			OutRefundNo: "RF-0001", RefundFen: 1000, RefundAskFen: 1000, RefundStatus: "SUCCESS"},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(rows), len(want), rows)
	}
	for i := range want {
		if !rows[i].Time.Equal(want[i].Time) {
			t.Errorf("row %d time %v, want %v", i, rows[i].Time, want[i].Time)
		}
		rows[i].Time = want[i].Time
		if rows[i] != want[i] {
			t.Errorf("row %d:\n got  %+v\n want %+v", i, rows[i], want[i])
		}
	}
	if (sum != app.BillSummary{Rows: 3, SettlementFen: 3670, RefundFen: 1000, TotalFen: 3680, RefundAskFen: 1000}) {
		t.Errorf("summary %+v", sum)
	}
}

// The GBK constants the reader matches are what GBK makes of the names.
func TestBillGBKNames(t *testing.T) {
	enc := simplifiedchinese.GBK.NewEncoder()
	for name, want := range map[string]string{"交易": "\xbd\xbb\xd2\xd7", "退款": "\xcd\xcb\xbf\xee", "合计": "\xba\xcf\xbc\xc6"} {
		if got, _ := enc.String(name); got != want {
			t.Errorf("GBK %s = % x, want % x", name, got, want)
		}
	}
}

// repack rewrites an archive's entries (reordered, stored or deflated).
func repack(t *testing.T, b []byte, reverse bool, method uint16) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	files := slices.Clone(zr.File)
	if reverse {
		slices.Reverse(files)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, f := range files {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		h := f.FileHeader
		h.Method = method
		var w io.Writer
		if method == zip.Store {
			// Sizes in the local header, no data descriptor: the only way
			// a stored entry can be read as it streams.
			h.Flags &^= 0x8
			h.CompressedSize64 = h.UncompressedSize64
			w, err = zw.CreateRaw(&h)
		} else {
			w, err = zw.CreateHeader(&h)
		}
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(w, rc)
		rc.Close()
	}
	zw.Close()
	return out.Bytes()
}

func TestBillReaderTakesEitherOrderAndStoredEntries(t *testing.T) {
	b := writeBill(t, billRows(time.Date(2026, 12, 1, 0, 0, 0, 0, cst)))
	for _, c := range []struct {
		name    string
		reverse bool
		method  uint16
	}{{"summary first", true, zip.Deflate}, {"stored", false, zip.Store}, {"stored, summary first", true, zip.Store}} {
		rows, sum, err := readAll(repack(t, b, c.reverse, c.method))
		if err != nil || len(rows) != 3 || sum.Rows != 3 {
			t.Errorf("%s: %d rows, %+v, %v", c.name, len(rows), sum, err)
		}
	}
}

// Every cut and every trailing byte fails the bill: it never ends with
// io.EOF. An altered byte either fails it or changes nothing that is read
// (a deflate bit that decodes to the same text, a time, an extra field).
func TestBillReaderRefusesCutAlteredOrExtendedArchives(t *testing.T) {
	b := writeBill(t, billRows(time.Date(2026, 12, 1, 0, 0, 0, 0, cst)))
	origRows, origSum, err := readAll(b)
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(b); n++ {
		if _, _, err := readAll(b[:n]); err == nil || !errors.Is(err, app.ErrBillMalformed) {
			t.Fatalf("cut at %d of %d: %v, want ErrBillMalformed", n, len(b), err)
		}
	}
	for i := 0; i < len(b); i++ {
		alt := slices.Clone(b)
		alt[i] ^= 0x01
		rows, sum, err := readAll(alt)
		if err == nil && !harmless(b, i) && (!slices.Equal(rows, origRows) || sum != origSum) {
			t.Errorf("byte %d altered: read as a good bill of other rows", i)
		}
	}
	if _, _, err := readAll(append(slices.Clone(b), 0)); !errors.Is(err, app.ErrBillMalformed) {
		t.Errorf("a byte after the end record: %v", err)
	}
}

// harmless reports whether byte i of archive b is a field the reader does
// not check: times, versions, attributes, extra fields (their contents),
// the central directory's flags.
func harmless(b []byte, i int) bool {
	u16 := func(at int) int { return int(b[at]) | int(b[at+1])<<8 }
	for off := 0; off+46 <= len(b); off++ {
		switch string(b[off : off+4]) {
		case "PK\x03\x04":
			f, extra := i-off, off+30+u16(off+26)
			if f >= 4 && f < 30 {
				return f < 6 || f == 7 || f >= 10 && f < 14 // version needed, flag bits 8-15, time, date
			}
			if i >= extra && i < extra+u16(off+28) {
				return true
			}
		case "PK\x01\x02":
			f, extra := i-off, off+46+u16(off+28)
			if f >= 4 && f < 46 {
				return f < 10 || f >= 12 && f < 16 || f >= 34 && f < 42 // versions, flags, time, date, disk, attributes
			}
			if i >= extra && i < extra+u16(off+30) {
				return true
			}
		}
	}
	return false
}

func TestBillReaderRefusesEncryptionAndFooterMismatch(t *testing.T) {
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, cst)
	b := writeBill(t, billRows(day))
	enc := slices.Clone(b)
	enc[6] |= 1 // the first local header's encryption flag
	if _, _, err := readAll(enc); err == nil || !strings.Contains(err.Error(), "encrypted") {
		t.Errorf("encrypted entry: %v", err)
	}
	// An unknown business type is read (as OTHER, for payfn to report),
	// counted in the rows but not in the footers' payments.
	rows := billRows(day)
	rows[1].Type = "冻结"
	got, sum, err := readAll(writeBill(t, rows))
	if err != nil || len(got) != 3 || got[1].TradeState != "OTHER" || sum.Rows != 3 {
		t.Errorf("unknown type: %v %+v %+v", err, got, sum)
	}
}

func TestBillReaderAmountsAreExact(t *testing.T) {
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, cst)
	rows := billRows(day)
	rows[0].AmountFen, rows[0].ReceivedFen = 10000000000, 10000000000 // 100,000,000.00 yuan, Alipay's maximum
	rows[1].AmountFen, rows[1].ReceivedFen = 1, 1
	got, _, err := readAll(writeBill(t, rows))
	if err != nil || got[0].TotalFen != 10000000000 || got[1].TotalFen != 1 {
		t.Fatalf("%v %+v", err, got)
	}
}

func TestTradeBillFromTheSimulator(t *testing.T) {
	modes(t, func(t *testing.T, cert bool) {
		r := newRig(t, cert, nil)
		ctx := ctxT(t)
		id := newID("BILL")
		pre, err := r.client.Mini().Prepay(ctx, r.request(id, 2500))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.sim.PayTrade(ctx, pre.Ref, alipaysim.PayOptions{NoNotify: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.client.Refund(ctx, app.RefundRequest{OutTradeNo: id, OutRefundNo: id + "R", RefundFen: 700, TotalFen: 2500}); err != nil {
			t.Fatal(err)
		}
		today := time.Now().In(cst).Format(time.DateOnly)
		read := func(day string) ([]app.BillRow, app.BillSummary, error) {
			bill, err := r.client.TradeBill(ctx, day)
			if err != nil {
				return nil, app.BillSummary{}, err
			}
			defer bill.Close()
			var rows []app.BillRow
			for {
				row, err := bill.Next()
				if err == io.EOF {
					return rows, bill.Summary(), nil
				} else if err != nil {
					return rows, app.BillSummary{}, err
				}
				rows = append(rows, row)
			}
		}
		rows, sum, err := read(today)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 || rows[0].OutTradeNo != id || rows[0].TransactionID != pre.Ref || rows[0].TotalFen != 2500 ||
			rows[1].TradeState != "REFUND" || rows[1].OutRefundNo != id+"R" || rows[1].RefundAskFen != 700 || sum.Rows != 2 {
			t.Fatalf("today's bill: %+v %+v", rows, sum)
		}
		// A day long past without trades is an empty bill; today without a
		// bill (not generated yet) is not ready.
		if rows, _, err := read(time.Now().In(cst).AddDate(0, 0, -3).Format(time.DateOnly)); err != nil || len(rows) != 0 {
			t.Errorf("a past day without trades: %v %+v", err, rows)
		}
		r.sim.SetBillFaults(alipaysim.BillFaults{NotReady: true})
		if _, _, err := read(today); !errors.Is(err, app.ErrBillNotReady) {
			t.Errorf("not generated: %v, want ErrBillNotReady", err)
		}
		for _, f := range []alipaysim.BillFaults{{CorruptData: true}, {Truncate: true}} {
			r.sim.SetBillFaults(f)
			if _, _, err := read(today); !errors.Is(err, app.ErrBillMalformed) {
				t.Errorf("%+v: %v, want ErrBillMalformed", f, err)
			}
		}
	})
}
