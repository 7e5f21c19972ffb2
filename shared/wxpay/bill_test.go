package wxpay_test

import (
	"crypto/sha1"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/wxpay"
)

func TestYuanToFenIsExact(t *testing.T) {
	good := map[string]int64{
		"0": 0, "0.0": 0, "0.00": 0, "0.01": 1, "0.1": 10, "12.30": 1230, "100": 10000, "-0.01": -1,
		"9999999999999.99": 999999999999999, "0.07": 7, "1.005"[:4]: 100,
	}
	for in, want := range good {
		if got, err := wxpay.YuanToFen(in); err != nil || got != want {
			t.Errorf("YuanToFen(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", ".5", "1.", "1.005", "1e2", "1,000.00", "+1", "--1", " 1", "0x10", "12345678901234", "1.2.3", "¥1"} {
		if got, err := wxpay.YuanToFen(in); err == nil {
			t.Errorf("YuanToFen(%q) = %d, want an error", in, got)
		}
	}
}

const billHead = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"

const billRows = "`2026-11-30 10:00:00,`wx1234567890abcdef,`1900000109,`0,`,`4200000001,`PF1,`o1,`JSAPI,`SUCCESS,`OTHERS,`CNY,`28.00,`0.00,`0,`0,`0.00,`0.00,`,`,`Latte, large,`,`0.16800,`0.60%,`28.00,`0.00,`\r\n" +
	"`2026-11-30 11:00:00,`wx1234567890abcdef,`1900000109,`0,`,`4200000001,`PF1,`o1,`JSAPI,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`50300001,`R1,`10.00,`0.00,`ORIGINAL,`SUCCESS,`Latte, large,`,`-0.06000,`0.60%,`0.00,`10.00,`\r\n"

const billSummary = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n`2,`28.00,`10.00,`0.00,`0.10800,`28.00,`10.00\r\n"

func readBill(text string, digest []byte) ([]app.BillRow, app.BillSummary, error) {
	b := wxpay.NewBillReader(io.NopCloser(strings.NewReader(text)), digest)
	var rows []app.BillRow
	for {
		r, err := b.Next()
		if err == io.EOF {
			return rows, b.Summary(), nil
		} else if err != nil {
			return rows, b.Summary(), err
		}
		rows = append(rows, r)
	}
}

func TestBillReaderParsesRowsAndChecksTheDigest(t *testing.T) {
	text := "\ufeff" + billHead + "\r\n" + billRows + billSummary
	sum := sha1.Sum([]byte(text))
	rows, s, err := readBill(text, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || s.Rows != 2 || s.SettlementFen != 2800 || s.RefundFen != 1000 || s.RefundAskFen != 1000 {
		t.Fatalf("rows %+v summary %+v", rows, s)
	}
	p, r := rows[0], rows[1]
	if p.TransactionID != "4200000001" || p.OutTradeNo != "PF1" || p.TradeState != "SUCCESS" || p.TotalFen != 2800 || p.SettlementFen != 2800 ||
		p.RefundID != "" || p.OutRefundNo != "" || p.Time.UTC().Hour() != 2 {
		t.Errorf("payment row %+v", p)
	}
	if r.TradeState != "REFUND" || r.OutRefundNo != "R1" || r.RefundID != "50300001" || r.RefundFen != 1000 || r.RefundAskFen != 1000 || r.RefundStatus != "SUCCESS" {
		t.Errorf("refund row %+v", r)
	}

	// One byte changed anywhere: every row may read, but the end is a
	// digest error, never io.EOF.
	tampered := strings.Replace(text, "`28.00,`0.00,`0,`0", "`29.00,`0.00,`0,`0", 1)
	tampered = strings.Replace(tampered, "`2,`28.00", "`2,`29.00", 1)
	if _, _, err := readBill(tampered, sum[:]); !errors.Is(err, app.ErrBillDigest) {
		t.Errorf("tampered bill: %v, want ErrBillDigest", err)
	}
}

func TestBillReaderRefusesMalformedBills(t *testing.T) {
	head := billHead + "\n"
	cases := map[string]string{
		"empty":              "",
		"no summary":         head + billRows,
		"wrong row count":    head + billRows + strings.Replace(billSummary, "`2,", "`3,", 1),
		"missing column":     strings.Replace(head, "商户退款单号,", "", 1) + billRows + billSummary,
		"field without tick": head + strings.Replace(billRows, "`PF1", "PF1", 1) + billSummary,
		"three decimals":     head + strings.Replace(billRows, "`28.00,`0.00,`0,", "`28.001,`0.00,`0,", 1) + billSummary,
		"float amount":       head + strings.Replace(billRows, "`28.00,`0.00,`0,", "`2.8e1,`0.00,`0,", 1) + billSummary,
		"bad time":           head + strings.Replace(billRows, "2026-11-30 10:00:00", "2026/11/30 10:00", 1) + billSummary,
		"text after summary": head + billRows + billSummary + "`more\n",
		"overlong line":      head + "`" + strings.Repeat("x", 20<<10) + "\n" + billSummary,
		"no summary row":     head + billRows + "总交易单数,应结订单总金额\n",
		"no transaction id":  head + strings.Replace(billRows, "`4200000001,`PF1,`o1,`JSAPI,`SUCCESS", "`,`PF1,`o1,`JSAPI,`SUCCESS", 1) + billSummary,
	}
	for name, text := range cases {
		if _, _, err := readBill(text, nil); !errors.Is(err, app.ErrBillMalformed) {
			t.Errorf("%s: %v, want ErrBillMalformed", name, err)
		}
	}
	// Columns are found by name: another order reads the same.
	cols := strings.Split(billHead, ",")
	cols[5], cols[6] = cols[6], cols[5]
	swap := func(line string) string {
		f := strings.Split(strings.TrimPrefix(line, "`"), ",`")
		f[5], f[6] = f[6], f[5]
		return "`" + strings.Join(f, ",`")
	}
	var body []string
	for _, l := range strings.Split(strings.TrimSuffix(billRows, "\r\n"), "\r\n") {
		body = append(body, swap(l))
	}
	rows, _, err := readBill(strings.Join(cols, ",")+"\n"+strings.Join(body, "\n")+"\n"+billSummary, nil)
	if err != nil || len(rows) != 2 || rows[0].OutTradeNo != "PF1" || rows[0].TransactionID != "4200000001" {
		t.Errorf("reordered columns: %v %+v", err, rows)
	}
}
