package alipay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"time"

	sdk "github.com/smartwalle/alipay/v3"

	"github.com/payfn/payfn/shared/app"
)

// The trade bill (业务账单, bill_type trade). alipay.data.dataservice.bill.
// downloadurl.query answers, signed, a bill_download_url valid for about 30
// seconds; a GET of it gives a ZIP archive of two GBK-encoded CSV files:
// <pid>_<yyyyMMdd>_业务明细.csv, one row per payment (业务类型 交易) and
// per refund (退款), and <pid>_<yyyyMMdd>_业务明细(汇总).csv, the totals.
// Each is '#' comment lines, a '#-----…列表-----' line, the column header,
// the rows, a '#-----…列表结束-----' line and '#' footer lines; the detail
// file's footer says "#交易合计：N笔，商家实收共X元，…" and
// "#退款合计：N笔，商家实收退款共-X元，…". Refund rows carry negative
// amounts.
//
// The fields payfn compares are ASCII (numbers, amounts, times); the rest
// is GBK, which payfn never decodes: golang.org/x/text's GBK tables would
// cost the function binaries hundreds of kilobytes. Column names and the
// business types are matched as GBK byte strings (GBK's second bytes are
// never below 0x40, so commas, digits, '.', '-', '#' and line ends are
// always themselves), and the archive is read by bill_zip.go. Alipay gives
// no digest: the archive's CRC-32s, its central directory and the footers'
// counts are what prove the file whole.

var _ app.BillSource = (*Client)(nil)

const methodBillURL = "alipay.data.dataservice.bill.downloadurl.query"

// subBillNotExist is Alipay's answer for a day without a bill: not
// generated yet, or a day without trades.
const subBillNotExist = "isp.bill_not_exist"

// BillReadyAfter is how long after a day's end (China time) Alipay's bill of
// it is surely generated (Alipay: usually before 09:00 the next day). Before
// then "no bill" is not ready; after it, a day without trades.
const BillReadyAfter = 12 * time.Hour

// Bounds of a bill download.
const (
	maxBillZip  = 512 << 20 // compressed bytes
	maxBillLine = 16 << 10
)

// GBK byte strings of the names payfn matches.
const (
	gbkTrade       = "\xbd\xbb\xd2\xd7"                                                  // 交易
	gbkRefund      = "\xcd\xcb\xbf\xee"                                                  // 退款
	gbkTotal       = "\xba\xcf\xbc\xc6"                                                  // 合计
	gbkTradeNo     = "\xd6\xa7\xb8\xb6\xb1\xa6\xbd\xbb\xd2\xd7\xba\xc5"                  // 支付宝交易号
	gbkOutTradeNo  = "\xc9\xcc\xbb\xa7\xb6\xa9\xb5\xa5\xba\xc5"                          // 商户订单号
	gbkBizType     = "\xd2\xb5\xce\xf1\xc0\xe0\xd0\xcd"                                  // 业务类型
	gbkFinishedAt  = "\xcd\xea\xb3\xc9\xca\xb1\xbc\xe4"                                  // 完成时间
	gbkOrderAmount = "\xb6\xa9\xb5\xa5\xbd\xf0\xb6\xee"                                  // 订单金额 （元）
	gbkReceived    = "\xc9\xcc\xbc\xd2\xca\xb5\xca\xd5"                                  // 商家实收 （元）
	gbkRequestNo   = "\xcd\xcb\xbf\xee\xc5\xfa\xb4\xce\xba\xc5/\xc7\xeb\xc7\xf3\xba\xc5" // 退款批次号/请求号
	gbkTradeCount  = "\xbd\xbb\xd2\xd7\xb6\xa9\xb5\xa5\xd7\xdc\xb1\xca\xca\xfd"          // 交易订单总笔数
	gbkRefundCount = "\xcd\xcb\xbf\xee\xb6\xa9\xb5\xa5\xd7\xdc\xb1\xca\xca\xfd"          // 退款订单总笔数
	gbkTradeFooter = "#\xbd\xbb\xd2\xd7\xba\xcf\xbc\xc6"                                 // #交易合计
	gbkRefundFoot  = "#\xcd\xcb\xbf\xee\xba\xcf\xbc\xc6"                                 // #退款合计
	gbkParenOpen   = "\xa3\xa8"                                                          // （
)

type billURLReply struct {
	reply
	BillDownloadURL string `json:"bill_download_url"`
}

// TradeBill opens the trade bill of day (YYYY-MM-DD, China time): it asks
// alipay.data.dataservice.bill.downloadurl.query for the download URL, then
// starts the download, parsed as it arrives (see BillReader). A signed
// isp.bill_not_exist is app.ErrBillNotReady until BillReadyAfter past the
// day's end, and an empty bill (a day without trades) after. The download
// is bounded by ctx, not by the per-call timeout.
func (c *Client) TradeBill(ctx context.Context, day string) (app.BillStream, error) {
	op := "trade bill " + day
	d, err := time.ParseInLocation(time.DateOnly, day, cst)
	if err != nil {
		return nil, fmt.Errorf("%s: the date is not YYYY-MM-DD", op)
	}
	p := sdk.NewPayload(methodBillURL)
	p.AddBizField("bill_type", "trade")
	p.AddBizField("bill_date", day)
	var out billURLReply
	if err := c.call(ctx, op, p, &out); err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Signed && ae.SubCode == subBillNotExist {
			if time.Now().Before(d.AddDate(0, 0, 1).Add(BillReadyAfter)) {
				return nil, fmt.Errorf("%w: %w", app.ErrBillNotReady, err)
			}
			return emptyBill{}, nil
		}
		return nil, err
	}
	u, err := url.Parse(out.BillDownloadURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, unavailable(op, "bill_download_url %q is not an http(s) URL", out.BillDownloadURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, unavailable(op, "bill_download_url: %v", err)
	}
	res, err := c.downloadClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: download: %w: %w", op, app.ErrChannelUnavailable, err)
	}
	if res.StatusCode != http.StatusOK {
		_, _ = io.CopyN(io.Discard, res.Body, 4<<10)
		res.Body.Close()
		return nil, unavailable(op, "download answered HTTP %d", res.StatusCode)
	}
	return NewBillReader(res.Body, c.cfg.SellerID), nil
}

// downloadClient fetches bill files: the gateway's transport without its
// reply bound, redirects followed, no overall timeout (ctx bounds it).
func (c *Client) downloadClient() *http.Client {
	var base http.RoundTripper = http.DefaultTransport
	if t, ok := c.sdk.Client.Transport.(gatewayTransport); ok {
		base = t.base
	}
	return &http.Client{Transport: base}
}

// emptyBill is the bill of a day without trades.
type emptyBill struct{}

func (emptyBill) Next() (app.BillRow, error) { return app.BillRow{}, io.EOF }
func (emptyBill) Summary() app.BillSummary   { return app.BillSummary{} }
func (emptyBill) Close() error               { return nil }

// BillReader parses an Alipay trade bill archive as it is read, one line at
// a time, whatever the bill's size: it implements app.BillStream. The
// archive must hold exactly one detail file (its header names 支付宝交易号)
// and at most one summary file (its header names 交易订单总笔数), in
// either order; other entries are read, checked and skipped. Columns are
// found by their header names, so their order does not matter.
//
// Rows: 交易 is a payment (TradeState SUCCESS, TotalFen 订单金额,
// SettlementFen 商家实收); 退款 is a refund (TradeState REFUND,
// RefundStatus SUCCESS: the bill lists refunds made, OutRefundNo
// 退款批次号/请求号, RefundAskFen |订单金额|, RefundFen |商家实收|); any
// other type is a row whose TradeState is "OTHER", which payfn reports.
// Summary: Rows and the counts must agree with the footers and the
// summary file; SettlementFen and RefundFen are the footers' 商家实收,
// TotalFen and RefundAskFen the sums of the rows' 订单金额.
type BillReader struct {
	body     io.ReadCloser
	zip      *zipReader
	sellerID string

	entry   *bufio.Reader // the entry being read; nil between entries
	kind    int           // entryUnknown, entryDetail, entrySummary, entryOther
	state   int           // statePreamble, stateRows, stateFooter
	cols    billCols
	ncols   int
	line    int
	name    string
	fields  [][]byte // reused for every row
	details int

	payments, refunds, others   int
	footTrades, footRefunds     int // -1 when the line is absent
	sumTrades, sumRefunds       int // from the summary file's 合计 row; -1 when absent
	summary                     app.BillSummary
	err                         error // sticky; io.EOF after a good end
	haveSummary, summaryTotaled bool
}

const (
	entryUnknown = iota
	entryDetail
	entrySummary
	entryOther
)

const (
	statePreamble = iota
	stateRows
	stateFooter
)

// billCols are the column positions payfn reads (-1: absent).
type billCols struct {
	tradeNo, outTradeNo, bizType, finishedAt, orderAmount, received, requestNo int
	tradeCount, refundCount                                                    int
}

// NewBillReader reads an Alipay trade bill archive from body; sellerID is
// the merchant the rows are of (BillRow.MchID).
func NewBillReader(body io.ReadCloser, sellerID string) *BillReader {
	return &BillReader{
		body: body, sellerID: sellerID, footTrades: -1, footRefunds: -1, sumTrades: -1, sumRefunds: -1,
		zip: newZipReader(io.LimitReader(body, maxBillZip+1)),
	}
}

// Close closes the body.
func (b *BillReader) Close() error { return b.body.Close() }

// Summary is the bill's totals; valid after Next returned io.EOF.
func (b *BillReader) Summary() app.BillSummary { return b.summary }

// Next returns the next row, io.EOF after a good end, or an error wrapping
// app.ErrBillMalformed (or the transport's).
func (b *BillReader) Next() (app.BillRow, error) {
	if b.err != nil {
		return app.BillRow{}, b.err
	}
	row, err := b.next()
	if err != nil {
		if errors.Is(err, errZip) {
			err = fmt.Errorf("%w: %w", app.ErrBillMalformed, err)
		}
		b.err = err
	}
	return row, err
}

func (b *BillReader) malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %q line %d: %s", app.ErrBillMalformed, b.name, b.line, fmt.Sprintf(format, args...))
}

func (b *BillReader) next() (app.BillRow, error) {
	for {
		if b.entry == nil {
			name, r, err := b.zip.next()
			if err == io.EOF {
				return app.BillRow{}, b.finish()
			} else if err != nil {
				return app.BillRow{}, err
			}
			b.entry, b.name, b.kind, b.state, b.line = bufio.NewReaderSize(r, 32<<10), name, entryUnknown, statePreamble, 0
		}
		line, err := b.readLine()
		if err == io.EOF {
			if err := b.endEntry(); err != nil {
				return app.BillRow{}, err
			}
			b.entry = nil
			continue
		} else if err != nil {
			return app.BillRow{}, err
		}
		if b.kind == entryOther {
			continue
		}
		comment := len(line) > 0 && line[0] == '#'
		switch b.state {
		case statePreamble:
			if comment || len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			if err := b.header(line); err != nil {
				return app.BillRow{}, err
			}
		case stateRows:
			switch {
			case comment:
				b.state = stateFooter
				if err := b.footer(line); err != nil {
					return app.BillRow{}, err
				}
			case len(bytes.TrimSpace(line)) == 0:
			case b.kind == entryDetail:
				return b.row(line)
			default:
				if err := b.summaryRow(line); err != nil {
					return app.BillRow{}, err
				}
			}
		case stateFooter:
			switch {
			case comment:
				if err := b.footer(line); err != nil {
					return app.BillRow{}, err
				}
			case len(bytes.TrimSpace(line)) != 0:
				return app.BillRow{}, b.malformed("text after the list's end")
			}
		}
	}
}

// readLine returns the entry's next line without its line ending, valid
// until the next call.
func (b *BillReader) readLine() ([]byte, error) {
	var buf []byte
	for {
		part, err := b.entry.ReadSlice('\n')
		switch {
		case err == bufio.ErrBufferFull:
			buf = append(buf, part...)
			if len(buf) > maxBillLine {
				return nil, b.malformed("a line longer than %d bytes", maxBillLine)
			}
			continue
		case err == io.EOF && len(part) == 0 && len(buf) == 0:
			return nil, io.EOF
		case err != nil && err != io.EOF:
			return nil, err
		}
		if buf != nil {
			part = append(buf, part...)
		}
		if len(part) > maxBillLine {
			return nil, b.malformed("a line longer than %d bytes", maxBillLine)
		}
		b.line++
		return bytes.TrimSuffix(bytes.TrimSuffix(part, []byte("\n")), []byte("\r")), nil
	}
}

// header reads a file's column header and tells which file it is.
func (b *BillReader) header(line []byte) error {
	f, err := splitFields(nil, line)
	if err != nil {
		return b.malformed("header: %v", err)
	}
	c := billCols{-1, -1, -1, -1, -1, -1, -1, -1, -1}
	for i, name := range f {
		name, _, _ = bytes.Cut(name, []byte(gbkParenOpen))
		name, _, _ = bytes.Cut(name, []byte("("))
		for _, col := range []struct {
			name string
			at   *int
		}{
			{gbkTradeNo, &c.tradeNo}, {gbkOutTradeNo, &c.outTradeNo}, {gbkBizType, &c.bizType}, {gbkFinishedAt, &c.finishedAt},
			{gbkOrderAmount, &c.orderAmount}, {gbkReceived, &c.received}, {gbkRequestNo, &c.requestNo},
			{gbkTradeCount, &c.tradeCount}, {gbkRefundCount, &c.refundCount},
		} {
			if string(name) == col.name && *col.at < 0 {
				*col.at = i
			}
		}
	}
	b.cols, b.ncols, b.state = c, len(f), stateRows
	switch {
	case c.tradeNo >= 0:
		if c.outTradeNo < 0 || c.bizType < 0 || c.finishedAt < 0 || c.orderAmount < 0 || c.received < 0 || c.requestNo < 0 {
			return b.malformed("the detail header lacks a column payfn reads (支付宝交易号, 商户订单号, 业务类型, 完成时间, 订单金额, 商家实收, 退款批次号/请求号)")
		}
		if b.details++; b.details > 1 {
			return b.malformed("a second detail file")
		}
		b.kind = entryDetail
	case c.tradeCount >= 0:
		if c.refundCount < 0 || c.orderAmount < 0 || c.received < 0 {
			return b.malformed("the summary header lacks a column payfn reads (交易订单总笔数, 退款订单总笔数, 订单金额, 商家实收)")
		}
		if b.haveSummary {
			return b.malformed("a second summary file")
		}
		b.kind, b.haveSummary = entrySummary, true
	default:
		b.kind = entryOther
	}
	return nil
}

// row parses a detail row.
func (b *BillReader) row(line []byte) (app.BillRow, error) {
	f, err := splitFields(b.fields[:0], line)
	b.fields = f
	if err != nil || len(f) != b.ncols {
		return app.BillRow{}, b.malformed("%d fields, the header has %d", len(f), b.ncols)
	}
	c := b.cols
	text := func(i int) string { return string(f[i]) }
	row := app.BillRow{MchID: b.sellerID, TransactionID: text(c.tradeNo), OutTradeNo: text(c.outTradeNo), Currency: "CNY"}
	if !printable(row.TransactionID) || !printable(row.OutTradeNo) || row.TransactionID == "" || row.OutTradeNo == "" {
		return app.BillRow{}, b.malformed("支付宝交易号 or 商户订单号 is empty or not ASCII")
	}
	if row.Time, err = time.ParseInLocation(timeLayout, text(c.finishedAt), cst); err != nil {
		return app.BillRow{}, b.malformed("完成时间 is not yyyy-MM-dd HH:mm:ss")
	}
	ordered, err := billYuan(f[c.orderAmount])
	if err != nil {
		return app.BillRow{}, b.malformed("订单金额: %v", err)
	}
	received, err := billYuan(f[c.received])
	if err != nil {
		return app.BillRow{}, b.malformed("商家实收: %v", err)
	}
	switch string(f[c.bizType]) {
	case gbkTrade:
		if ordered < 0 || received < 0 {
			return app.BillRow{}, b.malformed("a negative payment")
		}
		b.payments++
		row.TradeState, row.TotalFen, row.SettlementFen = app.TradeStateSuccess, ordered, received
		b.summary.TotalFen += ordered
	case gbkRefund:
		row.OutRefundNo = text(c.requestNo)
		if !printable(row.OutRefundNo) {
			return app.BillRow{}, b.malformed("退款批次号/请求号 is not ASCII")
		}
		b.refunds++
		row.TradeState, row.RefundStatus = app.TradeStateRefund, app.RefundStateSuccess
		row.RefundAskFen, row.RefundFen = abs(ordered), abs(received)
		b.summary.RefundAskFen += abs(ordered)
	default:
		b.others++
		row.TradeState, row.TotalFen, row.SettlementFen = "OTHER", ordered, received
	}
	return row, nil
}

// summaryRow reads the summary file's 合计 row; store rows are skipped.
func (b *BillReader) summaryRow(line []byte) error {
	f, err := splitFields(b.fields[:0], line)
	b.fields = f
	if err != nil || len(f) != b.ncols {
		return b.malformed("%d fields, the header has %d", len(f), b.ncols)
	}
	if string(f[0]) != gbkTotal {
		return nil
	}
	if b.summaryTotaled {
		return b.malformed("a second 合计 row")
	}
	b.summaryTotaled = true
	var ok1, ok2 bool
	b.sumTrades, ok1 = count(f[b.cols.tradeCount])
	b.sumRefunds, ok2 = count(f[b.cols.refundCount])
	if !ok1 || !ok2 {
		return b.malformed("合计 counts are not numbers")
	}
	return nil
}

// footer reads the detail file's "#交易合计：N笔，商家实收共X元…" and
// "#退款合计：N笔，商家实收退款共-X元…".
func (b *BillReader) footer(line []byte) error {
	if b.kind != entryDetail {
		return nil
	}
	trade, refund := bytes.HasPrefix(line, []byte(gbkTradeFooter)), bytes.HasPrefix(line, []byte(gbkRefundFoot))
	if !trade && !refund {
		return nil
	}
	nums := numbers(line)
	if len(nums) < 2 {
		return b.malformed("a 合计 line without its count and amount")
	}
	n, ok := count(nums[0])
	if !ok {
		return b.malformed("a 合计 line's count %q", nums[0])
	}
	fen, err := totalYuan(nums[1])
	if err != nil {
		return b.malformed("a 合计 line's amount %q", nums[1])
	}
	if trade {
		b.footTrades, b.summary.SettlementFen = n, fen
	} else {
		b.footRefunds, b.summary.RefundFen = n, abs(fen)
	}
	return nil
}

// endEntry checks a file read to its end (and its CRC-32 matched).
func (b *BillReader) endEntry() error {
	switch b.kind {
	case entryDetail:
		if b.state != stateFooter {
			return b.malformed("the detail file ends without its list's end")
		}
		if b.footTrades < 0 {
			return b.malformed("the detail file has no 交易合计 line")
		}
		if b.footTrades != b.payments || b.footRefunds >= 0 && b.footRefunds != b.refunds || b.footRefunds < 0 && b.refunds > 0 {
			return b.malformed("the footers count %d payments and %d refunds, the file holds %d and %d", b.footTrades, b.footRefunds, b.payments, b.refunds)
		}
	case entrySummary:
		if !b.summaryTotaled {
			return b.malformed("the summary file has no 合计 row")
		}
	case entryUnknown:
		b.kind = entryOther // an empty or comment-only entry
	}
	return nil
}

// finish checks the whole archive once it has been read and verified.
func (b *BillReader) finish() error {
	b.name, b.line = "", 0
	switch {
	case b.details == 0:
		return b.malformed("the archive holds no detail file (业务明细)")
	case b.haveSummary && (b.sumTrades != b.payments || b.sumRefunds != b.refunds):
		return b.malformed("the summary file counts %d payments and %d refunds, the detail file holds %d and %d", b.sumTrades, b.sumRefunds, b.payments, b.refunds)
	}
	b.summary.Rows = b.payments + b.refunds + b.others
	return io.EOF
}

// splitFields splits a CSV line on commas, trimming spaces and tabs (Alipay
// appends a tab to long numbers so spreadsheets keep them as text); a field
// in double quotes may hold commas and doubled quotes.
func splitFields(out [][]byte, line []byte) ([][]byte, error) {
	for {
		line = bytes.TrimLeft(line, " \t")
		if len(line) > 0 && line[0] == '"' {
			var f []byte
			i := 1
			for {
				j := bytes.IndexByte(line[i:], '"')
				if j < 0 {
					return nil, errors.New("an unclosed quote")
				}
				f = append(f, line[i:i+j]...)
				i += j + 1
				if i < len(line) && line[i] == '"' {
					f = append(f, '"')
					i++
					continue
				}
				break
			}
			out = append(out, bytes.Trim(f, " \t"))
			line = bytes.TrimLeft(line[i:], " \t")
			if len(line) == 0 {
				return out, nil
			}
			if line[0] != ',' {
				return nil, errors.New("text after a quoted field")
			}
			line = line[1:]
			continue
		}
		f, rest, more := bytes.Cut(line, []byte(","))
		out = append(out, bytes.Trim(f, " \t"))
		if !more {
			return out, nil
		}
		line = rest
	}
}

// billYuan parses a bill amount: ParseYuan's plain yuan, with an optional
// leading minus (refund rows). Empty is zero.
func billYuan(b []byte) (int64, error) {
	if len(b) == 0 {
		return 0, nil
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	fen, err := ParseYuan(string(b))
	if neg {
		fen = -fen
	}
	return fen, err
}

// totalYuan parses a total, which may exceed one payment's bound: an
// optional minus, at most 13 digits, at most two decimals.
func totalYuan(b []byte) (int64, error) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	whole, frac, dot := bytes.Cut(b, []byte("."))
	if len(whole) == 0 || len(whole) > 13 || dot && (len(frac) == 0 || len(frac) > 2) {
		return 0, ErrYuan
	}
	var fen int64
	for _, c := range append(append(slices.Clip(whole), frac...), "00"[len(frac):]...) {
		if c < '0' || c > '9' {
			return 0, ErrYuan
		}
		fen = fen*10 + int64(c-'0')
	}
	if neg {
		fen = -fen
	}
	return fen, nil
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// count parses a non-negative count.
func count(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' || n > 1e9 {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(b) > 0
}

// numbers returns the ASCII numbers of a GBK line in order: runs of digits
// and '.', with a '-' just before them. (GBK's second bytes are never
// digits, '.' or '-'.)
func numbers(line []byte) [][]byte {
	var out [][]byte
	for i := 0; i < len(line); {
		c := line[i]
		if c < '0' || c > '9' {
			i++
			continue
		}
		start := i
		if start > 0 && line[start-1] == '-' {
			start--
		}
		for i < len(line) && (line[i] >= '0' && line[i] <= '9' || line[i] == '.') {
			i++
		}
		out = append(out, line[start:i])
	}
	return out
}

// printable reports whether s is printable ASCII without spaces: trade
// numbers, order numbers and refund numbers are.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
