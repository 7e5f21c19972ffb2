package alipaysim

import (
	"archive/zip"
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// Trade bills (业务账单). alipay.data.dataservice.bill.downloadurl.query
// with bill_type trade and a bill_date of YYYY-MM-DD answers, signed, a
// bill_download_url on the simulator (GET /downloadBillFile.resource?…,
// as Alipay's dwbillcenter, unsigned, valid while the simulator runs); the
// URL serves a ZIP archive of two GBK CSV files as Alipay's:
// <pid>_<yyyyMMdd>_业务明细.csv, a row per payment (业务类型 交易) and per
// refund (退款, negative amounts, 退款批次号/请求号 = out_request_no), with
// Alipay's 25 columns, comment lines and 交易合计/退款合计 footers; and
// <pid>_<yyyyMMdd>_业务明细(汇总).csv with its 合计 row. Names are GBK
// without the ZIP UTF-8 flag.
//
// The bill is a snapshot taken when the URL is asked: the day's (China
// time) payments by payment time and refunds by the time they succeeded.
// Unlike Alipay, the simulator serves today's bill too (tests reconcile
// the trades they just made). A day without any row answers 40004
// isp.bill_not_exist, as Alipay does for a day without a bill.
//
// Tests shape the bill: SetBillEdit alters or drops rows, AddBillRows adds
// rows generated as the file is written (a bill of any size costs no
// memory), SetBillFaults answers bill_not_exist or serves a corrupt or cut
// archive. The control API has POST /sim/bills/faults.

// MethodBillDownloadURL is the bill method the gateway serves.
const MethodBillDownloadURL = "alipay.data.dataservice.bill.downloadurl.query"

// SubBillNotExist is the answer for a day without a bill.
const SubBillNotExist = "isp.bill_not_exist"

// Business types of bill rows (业务类型).
const (
	BillTrade  = "交易"
	BillRefund = "退款"
)

// BillRow is one detail row as the simulator writes it. Amounts are fen,
// positive; a refund row is written with negative amounts, as Alipay does.
type BillRow struct {
	TradeNo      string
	OutTradeNo   string
	Type         string // BillTrade or BillRefund (or anything, to test)
	Subject      string
	CreatedAt    time.Time
	FinishedAt   time.Time
	BuyerLogonID string
	AmountFen    int64  // 订单金额
	ReceivedFen  int64  // 商家实收
	OutRequestNo string // 退款批次号/请求号, refunds
	FeeFen       int64  // 服务费
}

// BillFaults make the bill API misbehave.
type BillFaults struct {
	// NotReady answers isp.bill_not_exist whatever the day holds.
	NotReady bool `json:"not_ready,omitempty"`
	// CorruptData changes a byte inside the detail file's data, so the
	// archive fails its CRC-32 (or its deflate stream).
	CorruptData bool `json:"corrupt_data,omitempty"`
	// Truncate cuts the archive before its central directory ends.
	Truncate bool `json:"truncate,omitempty"`
}

type billState struct {
	mu     sync.Mutex
	edit   func(*BillRow) bool
	extra  map[string][]billExtra
	faults BillFaults
	tokens map[string]billSnapshot
	order  []string // tokens, oldest first
}

type billExtra struct {
	n   int
	gen func(int) BillRow
}

type billSnapshot struct {
	day    string
	rows   []BillRow
	extra  []billExtra
	edit   func(*BillRow) bool
	faults BillFaults
}

const maxBillTokens = 64

func (s *Server) bills() *billState {
	s.billOnce.Do(func() { s.billSt = &billState{extra: map[string][]billExtra{}, tokens: map[string]billSnapshot{}} })
	return s.billSt
}

// SetBillEdit passes every bill row through edit before it is written:
// edit may change the row, and returning false drops it. nil writes rows
// as they are.
func (s *Server) SetBillEdit(edit func(*BillRow) bool) {
	b := s.bills()
	b.mu.Lock()
	b.edit = edit
	b.mu.Unlock()
}

// AddBillRows adds n rows to day's bill (YYYY-MM-DD) after the
// simulator's own: gen(i) makes row i when the file is written.
func (s *Server) AddBillRows(day string, n int, gen func(i int) BillRow) {
	b := s.bills()
	b.mu.Lock()
	b.extra[day] = append(b.extra[day], billExtra{n: n, gen: gen})
	b.mu.Unlock()
}

// SetBillFaults sets how the bill API misbehaves.
func (s *Server) SetBillFaults(f BillFaults) {
	b := s.bills()
	b.mu.Lock()
	b.faults = f
	b.mu.Unlock()
}

// billRoutes mounts the download and the control route.
func (s *Server) billRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /downloadBillFile.resource", s.handleBillDownload)
	m.HandleFunc("POST /sim/bills/faults", s.handleSimBillFaults)
}

// POST /sim/bills/faults {"not_ready","corrupt_data","truncate"} → BillFaults
func (s *Server) handleSimBillFaults(w http.ResponseWriter, r *http.Request) {
	var f BillFaults
	if !decodeJSON(w, r, &f) {
		return
	}
	s.SetBillFaults(f)
	writeJSON(w, http.StatusOK, f)
}

type billParams struct {
	BillType string `json:"bill_type"`
	BillDate string `json:"bill_date"`
}

// alipay.data.dataservice.bill.downloadurl.query
func (s *Server) apiBillDownloadURL(biz map[string]json.RawMessage) apiResult {
	var bp billParams
	if r := decodeBiz(biz, &bp); r != nil {
		return *r
	}
	if bp.BillType != "trade" {
		return failure(CodeInvalidParam, SubInvalidParameter, "参数无效: alipaysim serves bill_type trade only")
	}
	day, err := time.ParseInLocation(time.DateOnly, bp.BillDate, cst)
	if err != nil {
		return failure(CodeInvalidParam, SubInvalidParameter, "参数无效: alipaysim serves daily bills, bill_date yyyy-MM-dd")
	}
	b := s.bills()
	b.mu.Lock()
	snap := billSnapshot{day: bp.BillDate, extra: slices.Clone(b.extra[bp.BillDate]), edit: b.edit, faults: b.faults}
	b.mu.Unlock()
	snap.rows = s.billRows(day)
	if snap.faults.NotReady || day.After(s.now()) || snap.empty() {
		return bizError(SubBillNotExist, "账单不存在")
	}
	token := randDigits(24)
	b.mu.Lock()
	b.tokens[token] = snap
	if b.order = append(b.order, token); len(b.order) > maxBillTokens {
		delete(b.tokens, b.order[0])
		b.order = b.order[1:]
	}
	b.mu.Unlock()
	compact := strings.ReplaceAll(bp.BillDate, "-", "")
	q := url.Values{
		"bizType": {"trade"}, "userId": {s.sellerID + "0156"}, "fileType": {"csv.zip"}, "bizDates": {compact},
		"downloadFileName": {s.sellerID + "0156_" + compact + ".csv.zip"}, "timestamp": {fmt.Sprint(s.now().UnixMilli())}, "token": {token},
	}
	return success(obj{{"bill_download_url", s.URL() + "/downloadBillFile.resource?" + q.Encode()}})
}

// empty reports whether the bill has no row.
func (snap billSnapshot) empty() bool {
	if slices.ContainsFunc(snap.extra, func(x billExtra) bool { return x.n > 0 }) {
		return false
	}
	return !slices.ContainsFunc(snap.rows, func(r BillRow) bool { return snap.edit == nil || snap.edit(&r) })
}

// billRows takes the day's rows from the simulator's trades and refunds,
// in time order.
func (s *Server) billRows(day time.Time) []BillRow {
	from, to := day, day.AddDate(0, 0, 1)
	in := func(t time.Time) bool { return !t.IsZero() && !t.Before(from) && t.Before(to) }
	s.mu.Lock()
	defer s.mu.Unlock()
	var rows []BillRow
	for _, t := range s.trades {
		if in(t.PaidAt) {
			rows = append(rows, BillRow{TradeNo: t.TradeNo, OutTradeNo: t.OutTradeNo, Type: BillTrade, Subject: t.Subject,
				CreatedAt: t.CreatedAt, FinishedAt: t.PaidAt, BuyerLogonID: t.BuyerLogonID, AmountFen: t.TotalFen, ReceivedFen: t.TotalFen})
		}
	}
	for _, r := range s.refunds {
		if r.Status != RefundSuccess || !in(r.SettledAt) {
			continue
		}
		row := BillRow{TradeNo: r.TradeNo, OutTradeNo: r.OutTradeNo, Type: BillRefund, CreatedAt: r.CreatedAt, FinishedAt: r.SettledAt,
			AmountFen: r.AmountFen, ReceivedFen: r.AmountFen, OutRequestNo: r.OutRequestNo}
		if t := s.trades[r.OutTradeNo]; t != nil {
			row.Subject, row.BuyerLogonID = t.Subject, t.BuyerLogonID
		}
		rows = append(rows, row)
	}
	slices.SortFunc(rows, func(a, b BillRow) int {
		if c := a.FinishedAt.Compare(b.FinishedAt); c != 0 {
			return c
		}
		return strings.Compare(a.TradeNo+a.OutRequestNo, b.TradeNo+b.OutRequestNo)
	})
	return rows
}

// handleBillDownload serves a bill archive to the URL's token.
func (s *Server) handleBillDownload(w http.ResponseWriter, r *http.Request) {
	b := s.bills()
	b.mu.Lock()
	snap, ok := b.tokens[r.URL.Query().Get("token")]
	b.mu.Unlock()
	if !ok {
		http.Error(w, "下载链接已失效", http.StatusNotFound)
		return
	}
	write := func(out io.Writer) error {
		return WriteBillZip(out, s.sellerID, snap.day, snap.each())
	}
	var out io.Writer = w
	if snap.faults.Truncate {
		var n countWriter
		if err := write(&n); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		out = &limitWriter{w: w, left: int64(n) - 10}
	}
	if snap.faults.CorruptData {
		out = &flipWriter{w: out, at: 400}
	}
	w.Header().Set("Content-Type", "application/oct-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="`+s.sellerID+"0156_"+strings.ReplaceAll(snap.day, "-", "")+`.csv.zip"`)
	w.WriteHeader(http.StatusOK)
	if err := write(out); err != nil && !errors.Is(err, errCut) {
		s.log.Debug("alipaysim bill download cut", "err", err)
	}
}

// each yields the snapshot's rows, then the added ones, edited.
func (snap billSnapshot) each() iter.Seq[BillRow] {
	return func(yield func(BillRow) bool) {
		emit := func(r BillRow) bool {
			if snap.edit != nil && !snap.edit(&r) {
				return true
			}
			return yield(r)
		}
		for _, r := range snap.rows {
			if !emit(r) {
				return
			}
		}
		for _, x := range snap.extra {
			for i := range x.n {
				if !emit(x.gen(i)) {
					return
				}
			}
		}
	}
}

// The detail file's columns, as Alipay's.
const billDetailHeader = "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注"

const billSummaryHeader = "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）"

// WriteBillZip writes the trade bill archive of sellerID's day
// (YYYY-MM-DD) with rows, as Alipay's: the detail file (rows streamed as
// rows yields them), then the summary file. Text is encoded as GBK
// (characters GBK lacks become '?').
func WriteBillZip(w io.Writer, sellerID, day string, rows iter.Seq[BillRow]) error {
	d, err := time.ParseInLocation(time.DateOnly, day, cst)
	if err != nil {
		return fmt.Errorf("bill day %q: %w", day, err)
	}
	compact := d.Format("20060102")
	zw := zip.NewWriter(w)
	gbk := encoding.ReplaceUnsupported(simplifiedchinese.GBK.NewEncoder())
	create := func(name string) (*bufio.Writer, error) {
		gname, err := gbk.String(name)
		if err != nil {
			return nil, err
		}
		f, err := zw.CreateHeader(&zip.FileHeader{Name: gname, Method: zip.Deflate, Modified: d, NonUTF8: true})
		if err != nil {
			return nil, err
		}
		return bufio.NewWriterSize(gbk.Writer(f), 32<<10), nil
	}
	period := fmt.Sprintf("#起始日期：[%s 00:00:00]   终止日期：[%s 00:00:00]", d.Format("2006年01月02日"), d.AddDate(0, 0, 1).Format("2006年01月02日"))
	f, err := create(sellerID + "_" + compact + "_业务明细.csv")
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "#支付宝业务明细查询\r\n#账号：[%s0156]\r\n%s\r\n", sellerID, period)
	f.WriteString("#-----------------------------------------业务明细列表----------------------------------------\r\n")
	f.WriteString(billDetailHeader + "\r\n")
	var trades, refunds int
	var tradeOrdered, tradeReceived, refundOrdered, refundReceived, fees int64
	for r := range rows {
		ordered, received := r.AmountFen, r.ReceivedFen
		switch r.Type {
		case BillRefund:
			ordered, received = -ordered, -received
			refunds++
			refundOrdered += ordered
			refundReceived += received
		case BillTrade:
			trades++
			tradeOrdered += ordered
			tradeReceived += received
		}
		fees += r.FeeFen
		cells := []string{
			r.TradeNo + "\t", r.OutTradeNo + "\t", r.Type, strings.ReplaceAll(r.Subject, ",", "，"), fmtTime(r.CreatedAt), fmtTime(r.FinishedAt),
			"", "", "", "", r.BuyerLogonID, yuan(ordered), yuan(received), "0.00", "0.00", "0.00", "0.00", "0.00", "", "0.00", "0.00",
			requestNo(r), yuan(-r.FeeFen), "0.00", "",
		}
		if _, err := f.WriteString(strings.Join(cells, ",") + "\r\n"); err != nil {
			return err
		}
	}
	f.WriteString("#-----------------------------------------业务明细列表结束------------------------------------\r\n")
	fmt.Fprintf(f, "#交易合计：%d笔，商家实收共%s元，商家优惠共0.00元\r\n", trades, yuan(tradeReceived))
	fmt.Fprintf(f, "#退款合计：%d笔，商家实收退款共%s元，商家优惠退款共0.00元\r\n", refunds, yuan(refundReceived))
	fmt.Fprintf(f, "#导出时间：[%s]\r\n", time.Now().In(cst).Format("2006年01月02日 15:04:05"))
	if err := f.Flush(); err != nil {
		return err
	}
	f, err = create(sellerID + "_" + compact + "_业务明细(汇总).csv")
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "#支付宝业务汇总查询\r\n#账号：[%s0156]\r\n%s\r\n", sellerID, period)
	f.WriteString("#-----------------------------------------业务汇总列表----------------------------------------\r\n")
	f.WriteString(billSummaryHeader + "\r\n")
	ordered, received := tradeOrdered+refundOrdered, tradeReceived+refundReceived
	fmt.Fprintf(f, "合计,,%d,%d,%s,%s,0.00,0.00,0.00,%s,0.00,%s\r\n", trades, refunds, yuan(ordered), yuan(received), yuan(-fees), yuan(received-fees))
	f.WriteString("#----------------------------------------业务汇总列表结束-------------------------------------\r\n")
	fmt.Fprintf(f, "#导出时间：[%s]\r\n", time.Now().In(cst).Format("2006年01月02日 15:04:05"))
	if err := f.Flush(); err != nil {
		return err
	}
	return zw.Close()
}

func requestNo(r BillRow) string {
	if r.OutRequestNo == "" {
		return ""
	}
	return r.OutRequestNo + "\t"
}

// countWriter counts what is written to it.
type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

var errCut = errors.New("cut on purpose")

// limitWriter passes on the first left bytes, then fails.
type limitWriter struct {
	w    io.Writer
	left int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errCut
	}
	if int64(len(p)) > l.left {
		n, _ := l.w.Write(p[:l.left])
		l.left = 0
		return n, errCut
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	return n, err
}

// flipWriter inverts the byte at offset at.
type flipWriter struct {
	w   io.Writer
	at  int64
	pos int64
}

func (f *flipWriter) Write(p []byte) (int, error) {
	if f.pos <= f.at && f.at < f.pos+int64(len(p)) {
		p = slices.Clone(p)
		p[f.at-f.pos] ^= 0xff
	}
	f.pos += int64(len(p))
	return f.w.Write(p)
}
