package wxpay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/consts"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"

	"github.com/payfn/payfn/shared/app"
)

// The trade bill (交易账单): GET /v3/bill/tradebill answers, signed, the
// download_url of the day's CSV and its SHA1; the file itself is fetched
// with a signed GET whose answer WeChat Pay does not sign (the SDK's
// NullValidator is meant for it), so the digest is what proves it.

var _ app.BillSource = (*Channel)(nil)

// WeChat Pay's codes for a bill it cannot give.
const (
	codeNoStatement       = "NO_STATEMENT_EXIST" // no trades that day: the bill is empty
	codeStatementCreating = "STATEMENT_CREATING" // not generated yet (bills appear about 10:00 the next day)
)

// maxBillLine bounds one line of a bill; a longer one is malformed (the
// widest real row is a few hundred bytes).
const maxBillLine = 16 << 10

type tradeBillAnswer struct {
	HashType    string `json:"hash_type"`
	HashValue   string `json:"hash_value"`
	DownloadURL string `json:"download_url"`
}

// TradeBill opens the ALL trade bill of day (YYYY-MM-DD, China time): it
// asks /v3/bill/tradebill for the download URL and digest, then starts the
// download. Rows are parsed as they arrive; the digest is checked when the
// last byte is read (see app.BillStream). A day without trades
// (NO_STATEMENT_EXIST) is an empty bill; STATEMENT_CREATING wraps
// app.ErrBillNotReady. The download is bounded by ctx, not by the
// per-call timeout, since a large bill takes longer than one API call.
func (c *Channel) TradeBill(ctx context.Context, day string) (app.BillStream, error) {
	op := "trade bill " + day
	if _, err := time.Parse(time.DateOnly, day); err != nil {
		return nil, fmt.Errorf("%s: the date is not YYYY-MM-DD", op)
	}
	if err := c.ready(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	q := url.Values{"bill_date": {day}, "bill_type": {"ALL"}}
	res, err := c.api.Client.Get(ctx, consts.WechatPayAPIServer+"/v3/bill/tradebill?"+q.Encode())
	if err != nil {
		err = classify(op, err)
		switch Code(err) {
		case codeNoStatement:
			return emptyBill{}, nil
		case codeStatementCreating:
			return nil, fmt.Errorf("%w: %w", app.ErrBillNotReady, err)
		}
		return nil, err
	}
	var ans tradeBillAnswer
	if err := core.UnMarshalResponse(res.Response, &ans); err != nil {
		return nil, unavailable(op, err)
	}
	if !strings.EqualFold(ans.HashType, "SHA1") || len(ans.HashValue) != 40 || ans.DownloadURL == "" {
		return nil, fmt.Errorf("%s: %w: answer names hash %q %q and url %q", op, app.ErrChannelUnavailable, ans.HashType, ans.HashValue, ans.DownloadURL)
	}
	want, err := hex.DecodeString(ans.HashValue)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: hash_value is not hex", op, app.ErrChannelUnavailable)
	}
	dl, err := c.downloadClient(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	res, err = dl.Get(ctx, ans.DownloadURL)
	if err != nil {
		return nil, classify(op+": download", err)
	}
	return NewBillReader(res.Response.Body, want), nil
}

// downloadClient signs like the channel's client but does not validate the
// answer (a bill download is not signed) and has no overall timeout: the
// caller's context bounds the download.
func (c *Channel) downloadClient(ctx context.Context) (*core.Client, error) {
	var rt http.RoundTripper = c.transport
	if c.cfg.BaseURL != "" {
		to, _ := url.Parse(c.cfg.BaseURL) // validated
		rt = rewriteTransport{to: to, base: c.transport}
	}
	cl, err := core.NewClient(ctx,
		option.WithMerchantCredential(c.cfg.MchID, c.cfg.MchCertSerial, c.cfg.MchPrivateKey),
		option.WithoutValidator(), // the digest checks the file
		option.WithHTTPClient(&http.Client{Transport: rt}))
	if err != nil {
		return nil, fmt.Errorf("bill download client: %w", err)
	}
	return cl, nil
}

// emptyBill is the bill of a day without trades.
type emptyBill struct{}

func (emptyBill) Next() (app.BillRow, error) { return app.BillRow{}, io.EOF }
func (emptyBill) Summary() app.BillSummary   { return app.BillSummary{} }
func (emptyBill) Close() error               { return nil }

// BillReader parses a WeChat Pay trade bill as it is read: a header row,
// data rows whose fields each start with a backtick, then a summary header
// (总交易单数,...) and one summary row. Columns are found by their header
// names, so their order does not matter. Memory stays bounded whatever the
// bill's size: one line at a time. It implements app.BillStream.
type BillReader struct {
	body    io.ReadCloser
	r       *bufio.Reader
	sum     hash.Hash
	want    []byte // SHA1 the whole file must have; nil skips the check
	cols    map[string]int
	ncols   int
	rows    int
	summary app.BillSummary
	err     error // sticky: io.EOF after a good end
}

// Column names of the ALL bill (交易账单, bill_type ALL) payfn reads.
const (
	colTime          = "交易时间"
	colAppID         = "公众账号ID"
	colMchID         = "商户号"
	colTransactionID = "微信订单号"
	colOutTradeNo    = "商户订单号"
	colTradeType     = "交易类型"
	colTradeState    = "交易状态"
	colCurrency      = "货币种类"
	colSettlement    = "应结订单金额"
	colRefundID      = "微信退款单号"
	colOutRefundNo   = "商户退款单号"
	colRefund        = "退款金额"
	colRefundStatus  = "退款状态"
	colTotal         = "订单金额"   // optional: bills of merchants with 免充值券
	colRefundAsk     = "申请退款金额" // optional, the same
	summaryFirst     = "总交易单数"
)

var requiredCols = []string{colTime, colAppID, colMchID, colTransactionID, colOutTradeNo, colTradeType, colTradeState,
	colCurrency, colSettlement, colRefundID, colOutRefundNo, colRefund, colRefundStatus}

// Summary columns.
const (
	sumRows       = "总交易单数"
	sumSettlement = "应结订单总金额"
	sumRefund     = "退款总金额"
	sumTotal      = "订单总金额"
	sumRefundAsk  = "申请退款总金额"
)

// NewBillReader reads a bill from body. wantSHA1, when not nil, is the
// digest the whole file must have: Next returns io.EOF only if it matches.
func NewBillReader(body io.ReadCloser, wantSHA1 []byte) *BillReader {
	b := &BillReader{body: body, want: wantSHA1, sum: sha1.New()}
	b.r = bufio.NewReaderSize(io.TeeReader(body, b.sum), 64<<10)
	return b
}

// Close closes the body.
func (b *BillReader) Close() error { return b.body.Close() }

// Summary is the bill's summary row; valid after Next returned io.EOF.
func (b *BillReader) Summary() app.BillSummary { return b.summary }

// Next returns the next data row, io.EOF after a good end, or an error
// wrapping app.ErrBillMalformed or app.ErrBillDigest.
func (b *BillReader) Next() (app.BillRow, error) {
	if b.err != nil {
		return app.BillRow{}, b.err
	}
	row, err := b.next()
	if err != nil {
		b.err = err
	}
	return row, err
}

func (b *BillReader) malformed(format string, args ...any) error {
	return fmt.Errorf("%w: line %d: %s", app.ErrBillMalformed, b.rows+2, fmt.Sprintf(format, args...))
}

func (b *BillReader) next() (app.BillRow, error) {
	if b.cols == nil {
		line, err := b.line()
		if err == io.EOF {
			return app.BillRow{}, b.malformed("empty file")
		} else if err != nil {
			return app.BillRow{}, err
		}
		line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf")) // a UTF-8 BOM
		names := strings.Split(string(line), ",")
		b.cols, b.ncols = map[string]int{}, len(names)
		for i, n := range names {
			b.cols[strings.TrimSpace(n)] = i
		}
		for _, n := range requiredCols {
			if _, ok := b.cols[n]; !ok {
				return app.BillRow{}, fmt.Errorf("%w: the header has no %s column", app.ErrBillMalformed, n)
			}
		}
	}
	line, err := b.line()
	if err == io.EOF {
		return app.BillRow{}, b.malformed("the file ends without its summary")
	} else if err != nil {
		return app.BillRow{}, err
	}
	if bytes.HasPrefix(line, []byte(summaryFirst)) {
		return app.BillRow{}, b.finish(line)
	}
	f, err := fields(line)
	if err != nil || len(f) != b.ncols {
		return app.BillRow{}, b.malformed("%d fields, the header has %d", len(f), b.ncols)
	}
	b.rows++
	get := func(name string) string {
		if i, ok := b.cols[name]; ok {
			return f[i]
		}
		return ""
	}
	row := app.BillRow{
		AppID: get(colAppID), MchID: get(colMchID), TransactionID: get(colTransactionID), OutTradeNo: get(colOutTradeNo),
		TradeType: get(colTradeType), TradeState: get(colTradeState), Currency: get(colCurrency),
		RefundID: get(colRefundID), OutRefundNo: get(colOutRefundNo), RefundStatus: get(colRefundStatus),
	}
	// WeChat writes 0 for an empty refund number in some bills.
	if row.RefundID == "0" {
		row.RefundID = ""
	}
	if row.OutRefundNo == "0" {
		row.OutRefundNo = ""
	}
	if row.Time, err = time.ParseInLocation(time.DateTime, get(colTime), cst); err != nil {
		return app.BillRow{}, b.malformed("交易时间 %q is not yyyy-MM-dd HH:mm:ss", get(colTime))
	}
	amounts := []struct {
		col      string
		to       *int64
		optional bool
	}{
		{colSettlement, &row.SettlementFen, false}, {colRefund, &row.RefundFen, false},
		{colTotal, &row.TotalFen, true}, {colRefundAsk, &row.RefundAskFen, true},
	}
	for _, a := range amounts {
		v := get(a.col)
		if v == "" && a.optional {
			continue
		}
		if *a.to, err = YuanToFen(v); err != nil {
			return app.BillRow{}, b.malformed("%s: %v", a.col, err)
		}
	}
	if _, ok := b.cols[colTotal]; !ok {
		row.TotalFen = row.SettlementFen
	}
	if _, ok := b.cols[colRefundAsk]; !ok {
		row.RefundAskFen = row.RefundFen
	}
	if row.TransactionID == "" || row.OutTradeNo == "" {
		return app.BillRow{}, b.malformed("no 微信订单号 or 商户订单号")
	}
	return row, nil
}

// finish reads the summary row and the end of the file, then checks the
// digest.
func (b *BillReader) finish(header []byte) error {
	names := strings.Split(string(header), ",")
	line, err := b.line()
	if err == io.EOF {
		return b.malformed("no summary row")
	} else if err != nil {
		return err
	}
	f, err := fields(line)
	if err != nil || len(f) != len(names) {
		return b.malformed("summary row has %d fields, its header %d", len(f), len(names))
	}
	for i, n := range names {
		n = strings.TrimSpace(n)
		var to *int64
		switch n {
		case sumRows:
			var rows int64
			for _, ch := range f[i] {
				if ch < '0' || ch > '9' || rows > 1e12 {
					return b.malformed("总交易单数 %q", f[i])
				}
				rows = rows*10 + int64(ch-'0')
			}
			if f[i] == "" || rows != int64(b.rows) {
				return b.malformed("总交易单数 %q, the bill has %d rows", f[i], b.rows)
			}
			b.summary.Rows = b.rows
			continue
		case sumSettlement:
			to = &b.summary.SettlementFen
		case sumRefund:
			to = &b.summary.RefundFen
		case sumTotal:
			to = &b.summary.TotalFen
		case sumRefundAsk:
			to = &b.summary.RefundAskFen
		default:
			continue // fees and coupons: not reconciled
		}
		if *to, err = YuanToFen(f[i]); err != nil {
			return b.malformed("%s: %v", n, err)
		}
	}
	for {
		line, err := b.line()
		if err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		if len(bytes.TrimSpace(line)) != 0 {
			return b.malformed("text after the summary row")
		}
	}
	if b.want != nil && subtle.ConstantTimeCompare(b.sum.Sum(nil), b.want) != 1 {
		return fmt.Errorf("%w: the file's SHA1 is %x, WeChat Pay gave %x", app.ErrBillDigest, b.sum.Sum(nil), b.want)
	}
	return io.EOF
}

// line returns the next line without its line ending; the slice is valid
// until the next call. A line over maxBillLine is malformed.
func (b *BillReader) line() ([]byte, error) {
	var buf []byte
	for {
		part, err := b.r.ReadSlice('\n')
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
			return nil, fmt.Errorf("read bill: %w", err)
		}
		if buf != nil {
			part = append(buf, part...)
		}
		if len(part) > maxBillLine {
			return nil, b.malformed("a line longer than %d bytes", maxBillLine)
		}
		part = bytes.TrimSuffix(part, []byte("\n"))
		return bytes.TrimSuffix(part, []byte("\r")), nil
	}
}

// fields splits a data or summary row: every field starts with a backtick
// and fields are separated by commas, so ",`" separates them even when a
// product name holds a comma.
func fields(line []byte) ([]string, error) {
	s, ok := strings.CutPrefix(string(line), "`")
	if !ok {
		return nil, errors.New("a field does not start with `")
	}
	return strings.Split(s, ",`"), nil
}

// YuanToFen parses an amount in yuan, as bills write it ("12.30", "0.0",
// "5", "-0.01"), into fen with integer arithmetic: at most two decimals,
// no exponent, no thousands separator, within ±10^15 fen.
func YuanToFen(s string) (int64, error) {
	orig := s
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || len(whole) > 13 || (dot && (frac == "" || len(frac) > 2)) {
		return 0, fmt.Errorf("amount %q is not a plain decimal with at most two places", orig)
	}
	var fen int64
	for _, ch := range whole + frac + strings.Repeat("0", 2-len(frac)) {
		if ch < '0' || ch > '9' {
			return 0, fmt.Errorf("amount %q is not a plain decimal with at most two places", orig)
		}
		fen = fen*10 + int64(ch-'0')
	}
	if neg {
		fen = -fen
	}
	return fen, nil
}
