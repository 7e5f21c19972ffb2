package paysim

import (
	"bufio"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Trade bills (交易账单). GET /v3/bill/tradebill?bill_date=YYYY-MM-DD&
// bill_type=ALL|SUCCESS|REFUND answers, signed, {hash_type: "SHA1",
// hash_value, download_url}; the URL (on api.mch.weixin.qq.com, as WeChat's,
// so the client's host-rewriting transport brings it here) serves the CSV to
// a signed GET, unsigned, as WeChat does. The bill is a snapshot taken when
// tradebill is asked: payments whose success time falls on the day (China
// time) and refunds accepted that day, as WeChat's bill holds them, in
// WeChat's ALL format (27 columns, every field after a backtick, then the
// summary header and row). A day without any row answers 400
// NO_STATEMENT_EXIST, as WeChat does.
//
// Tests shape the bill: SetBillEdit alters or drops rows, AddBillRows adds
// rows (generated one by one as the file is written, so a bill of any size
// costs no memory), and SetBillFaults serves a wrong digest or
// STATEMENT_CREATING.

// BillRow is one row of a trade bill as the simulator writes it. Amounts
// are fen; they are written as yuan with two decimals.
type BillRow struct {
	Time          time.Time
	AppID         string
	MchID         string
	TransactionID string
	OutTradeNo    string
	OpenID        string
	TradeType     string
	TradeState    string // SUCCESS, or REFUND for a refund row
	BankType      string
	Currency      string
	SettlementFen int64 // 应结订单金额
	TotalFen      int64 // 订单金额
	RefundID      string
	OutRefundNo   string
	RefundFen     int64  // 退款金额
	RefundAskFen  int64  // 申请退款金额
	RefundType    string // ORIGINAL
	RefundStatus  string // SUCCESS, REFUNDCLOSE, PROCESSING, CHANGE
	Body          string
	Attach        string
}

// BillFaults make the bill API misbehave.
type BillFaults struct {
	// WrongDigest answers a hash_value that is not the file's SHA1.
	WrongDigest bool
	// NotReady answers 400 STATEMENT_CREATING.
	NotReady bool
}

// billHeader is WeChat's ALL bill header.
const billHeader = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"

const billSummaryHeader = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"

// billState is one simulator's bill settings and issued downloads.
type billState struct {
	mu     sync.Mutex
	edit   func(*BillRow) bool
	extra  map[string][]billExtra // by day
	faults BillFaults
	tokens map[string]billSnapshot
}

type billExtra struct {
	n   int
	gen func(i int) BillRow
}

// billSnapshot is a bill as of the tradebill call, served by its token.
type billSnapshot struct {
	rows   []BillRow
	extra  []billExtra
	edit   func(*BillRow) bool
	filter string
}

func (s *Server) bills() *billState {
	s.billOnce.Do(func() { s.billSt = &billState{extra: map[string][]billExtra{}, tokens: map[string]billSnapshot{}} })
	return s.billSt
}

// SetBillEdit makes every bill pass each row through edit before writing
// it: edit may change the row, and returning false drops it. nil writes
// rows as they are.
func (s *Server) SetBillEdit(edit func(*BillRow) bool) {
	b := s.bills()
	b.mu.Lock()
	b.edit = edit
	b.mu.Unlock()
}

// AddBillRows adds n rows to day's bill (YYYY-MM-DD), after the
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

// billRoutes mounts the bill API.
func (s *Server) billRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /v3/bill/tradebill", s.v3(s.handleTradeBill))
	m.HandleFunc("GET /v3/billdownload/file", s.handleBillDownload)
}

func (s *Server) handleTradeBill(r *http.Request, _ []byte) reply {
	q := r.URL.Query()
	dayText, typ := q.Get("bill_date"), q.Get("bill_type")
	day, err := time.ParseInLocation(time.DateOnly, dayText, cst)
	if err != nil {
		return paramError("bill_date", "must be YYYY-MM-DD")
	}
	switch typ {
	case "":
		typ = "ALL"
	case "ALL", "SUCCESS", "REFUND":
	default:
		return paramError("bill_type", "must be ALL, SUCCESS or REFUND")
	}
	if day.After(s.now().In(cst)) {
		return paramError("bill_date", "is in the future")
	}
	b := s.bills()
	b.mu.Lock()
	faults, edit := b.faults, b.edit
	extra := slices.Clone(b.extra[dayText])
	b.mu.Unlock()
	if faults.NotReady {
		return errReply(http.StatusBadRequest, "STATEMENT_CREATING", "账单生成中，请稍后再试")
	}
	snap := billSnapshot{rows: s.billRows(day, typ), extra: extra, edit: edit, filter: typ}
	h := sha1.New()
	n, err := snap.write(h)
	if err != nil {
		return errReply(http.StatusInternalServerError, "SYSTEM_ERROR", "write bill")
	}
	if n == 0 {
		return errReply(http.StatusBadRequest, "NO_STATEMENT_EXIST", "账单文件不存在")
	}
	digest := hex.EncodeToString(h.Sum(nil))
	if faults.WrongDigest {
		sum := sha1.Sum([]byte("tampered"))
		digest = hex.EncodeToString(sum[:])
	}
	token := randAlnum(32)
	b.mu.Lock()
	b.tokens[token] = snap
	b.mu.Unlock()
	return reply{status: http.StatusOK, body: map[string]string{
		"hash_type":    "SHA1",
		"hash_value":   digest,
		"download_url": "https://api.mch.weixin.qq.com/v3/billdownload/file?token=" + token,
	}}
}

// handleBillDownload serves a bill to a signed GET. The answer is not
// signed: WeChat does not sign bill files (the digest vouches for them).
func (s *Server) handleBillDownload(w http.ResponseWriter, r *http.Request) {
	if reason := s.verifyRequest(r, nil); reason != "" {
		s.writeReply(w, r, reply{status: http.StatusUnauthorized, body: apiError{Code: "SIGN_ERROR", Message: "签名错误"}})
		return
	}
	b := s.bills()
	b.mu.Lock()
	snap, ok := b.tokens[r.URL.Query().Get("token")]
	b.mu.Unlock()
	if !ok {
		s.writeReply(w, r, errReply(http.StatusNotFound, "RESOURCE_NOT_EXISTS", "下载链接不存在或已过期"))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if _, err := snap.write(w); err != nil {
		s.log.Debug("paysim bill download cut", "err", err)
	}
}

// billRows takes the day's rows from the simulator's own trades and
// refunds, in time order.
func (s *Server) billRows(day time.Time, typ string) []BillRow {
	from, to := day, day.AddDate(0, 0, 1)
	in := func(t time.Time) bool { return !t.Before(from) && t.Before(to) }
	s.mu.Lock()
	defer s.mu.Unlock()
	var rows []BillRow
	if typ != "REFUND" {
		for _, t := range s.trades {
			if t.txID == "" || !in(t.successTime) {
				continue
			}
			rows = append(rows, BillRow{
				Time: t.successTime, AppID: t.p.AppID, MchID: t.p.MchID, TransactionID: t.txID, OutTradeNo: t.p.OutTradeNo,
				OpenID: t.p.OpenID, TradeType: t.tradeType(), TradeState: StateSuccess, BankType: "OTHERS", Currency: "CNY",
				SettlementFen: t.paidTotal, TotalFen: t.paidTotal, Body: t.p.Description, Attach: t.p.Attach,
			})
		}
	}
	if typ != "SUCCESS" {
		for _, r := range s.refunds {
			if !in(r.CreatedAt) {
				continue
			}
			t := s.trades[r.OutTradeNo]
			row := BillRow{
				Time: r.CreatedAt, MchID: s.mchID, TransactionID: r.TxID, OutTradeNo: r.OutTradeNo, TradeType: "JSAPI",
				TradeState: StateRefund, BankType: "OTHERS", Currency: "CNY", RefundID: r.RefundID, OutRefundNo: r.OutRefundNo,
				RefundFen: r.Refund, RefundAskFen: r.Refund, RefundType: "ORIGINAL", RefundStatus: billRefundStatus(r.Status),
			}
			if t != nil {
				row.AppID, row.OpenID, row.Body, row.Attach = t.p.AppID, t.p.OpenID, t.p.Description, t.p.Attach
				row.TradeType = t.tradeType()
			}
			rows = append(rows, row)
		}
	}
	slices.SortFunc(rows, func(a, b BillRow) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.TransactionID+a.OutRefundNo, b.TransactionID+b.OutRefundNo)
	})
	return rows
}

// billRefundStatus is how a bill spells a refund's state.
func billRefundStatus(st string) string {
	switch st {
	case RefundClosed:
		return "REFUNDCLOSE"
	case RefundAbnormal:
		return "CHANGE"
	}
	return st // SUCCESS, PROCESSING
}

// write writes the bill and returns how many data rows it holds.
func (snap billSnapshot) write(w io.Writer) (int, error) {
	bw := bufio.NewWriterSize(w, 32<<10)
	fmt.Fprintf(bw, "%s\r\n", billHeader)
	var n int
	var settle, refund, total, ask int64
	emit := func(r BillRow) {
		if snap.edit != nil && !snap.edit(&r) {
			return
		}
		if snap.filter == "SUCCESS" && r.TradeState == StateRefund || snap.filter == "REFUND" && r.TradeState != StateRefund {
			return
		}
		n++
		settle += r.SettlementFen
		refund += r.RefundFen
		total += r.TotalFen
		ask += r.RefundAskFen
		f := []string{
			r.Time.In(cst).Format(time.DateTime), r.AppID, r.MchID, "0", "", r.TransactionID, r.OutTradeNo, r.OpenID,
			r.TradeType, r.TradeState, r.BankType, r.Currency, yuan(r.SettlementFen), "0.00", r.RefundID, r.OutRefundNo,
			yuan(r.RefundFen), "0.00", r.RefundType, r.RefundStatus, r.Body, r.Attach, "0.00000", "0.60%",
			yuan(r.TotalFen), yuan(r.RefundAskFen), "",
		}
		bw.WriteString("`" + strings.Join(f, ",`") + "\r\n")
	}
	for _, r := range snap.rows {
		emit(r)
	}
	for _, x := range snap.extra {
		for i := range x.n {
			emit(x.gen(i))
		}
	}
	fmt.Fprintf(bw, "%s\r\n`%d,`%s,`%s,`0.00,`0.00000,`%s,`%s\r\n", billSummaryHeader, n, yuan(settle), yuan(refund), yuan(total), yuan(ask))
	return n, bw.Flush()
}

// yuan writes fen as yuan with two decimals.
func yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return sign + strconv.FormatInt(fen/100, 10) + "." + fmt.Sprintf("%02d", fen%100)
}
