package alipaysim

import (
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
)

// serveWapPay answers a browser that opened the signed alipay.trade.wap.pay
// URL: with a valid request the trade is created (or found again) and the
// browser is redirected to its cashier page; otherwise an error page names
// the code, as Alipay's does. Error pages answer 200 (as Alipay's) and carry
// the sub_code in the X-Alipaysim-Sub-Code header for tests.
func (s *Server) serveWapPay(w http.ResponseWriter, r *http.Request, p url.Values, res apiResult, ok bool) {
	if ok {
		var o orderParams
		var biz map[string]json.RawMessage
		if err := json.Unmarshal([]byte(p.Get("biz_content")), &biz); err != nil {
			res, ok = failure(CodeInvalidParam, SubInvalidParameter, "参数无效: biz_content is not a JSON object"), false
		} else if bad := decodeBiz(biz, &o); bad != nil {
			res, ok = *bad, false
		} else if t, bad := s.openTrade(p, o, ProductWap); bad != nil {
			res, ok = *bad, false
		} else {
			http.Redirect(w, r, "/cashier/"+url.PathEscape(t.TradeNo), http.StatusFound)
			return
		}
	}
	s.errorPage(w, http.StatusOK, res.code, res.subCode, res.subMsg)
}

var pageTmpl = template.Must(template.New("cashier").Parse(`<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.Title}} - alipaysim</title>
<style>body{font-family:sans-serif;max-width:28em;margin:2em auto;padding:0 1em}.amount{font-size:2em;margin:.5em 0}
button{font-size:1.2em;padding:.5em 2em;background:#1677ff;color:#fff;border:0;border-radius:4px}.err{color:#b00}</style></head>
<body><p>alipaysim 支付宝收银台 (simulator)</p>
{{if .Error}}<h1 class="err">{{.Title}}</h1><p class="err">错误代码 {{.Code}} {{.SubCode}}</p><p>{{.Error}}</p>
{{else}}<h1>{{.Title}}</h1>
<dl><dt>商户 Merchant</dt><dd id="merchant">{{.Merchant}}</dd><dt>商品 Subject</dt><dd id="subject">{{.Trade.Subject}}</dd>
<dt>订单号 out_trade_no</dt><dd id="out_trade_no">{{.Trade.OutTradeNo}}</dd><dt>交易号 trade_no</dt><dd id="trade_no">{{.Trade.TradeNo}}</dd>
<dt>状态 Status</dt><dd id="trade_status">{{.Trade.Status}}</dd></dl>
<p class="amount" id="total_amount">¥{{.Amount}}</p>
{{if .Payable}}<form method="post" action="/cashier/{{.Trade.TradeNo}}/pay"><button type="submit" id="pay">确认付款 Pay</button></form>
<p><a id="quit" href="/cashier/{{.Trade.TradeNo}}/quit">取消 Cancel</a></p>
{{else if .Trade.ReturnURL}}<p><a href="{{.ReturnLink}}">返回商户 Back to merchant</a></p>{{end}}
{{end}}</body></html>
`))

type pageData struct {
	Title, Merchant, Amount, Error, Code, SubCode string
	Trade                                         TradeState
	Payable                                       bool
	ReturnLink                                    template.URL
}

func (s *Server) errorPage(w http.ResponseWriter, status int, code, subCode, msg string) {
	w.Header().Set("Content-Type", "text/html;charset=utf-8")
	w.Header().Set("X-Alipaysim-Sub-Code", subCode)
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, pageData{Title: "支付失败 Payment error", Error: msg, Code: code, SubCode: subCode})
}

// GET /cashier/{trade_no}: the cashier page of a wap trade.
func (s *Server) handleCashierPage(w http.ResponseWriter, r *http.Request) {
	t, ok := s.Trade(r.PathValue("trade_no"))
	if !ok || t.ProductCode != ProductWap {
		s.errorPage(w, http.StatusNotFound, CodeBusinessError, SubTradeNotExist, "交易不存在")
		return
	}
	title := map[string]string{StatusWaitBuyerPay: "待付款 Waiting for payment", StatusSuccess: "已付款 Paid",
		StatusFinished: "已付款 Paid", StatusClosed: "交易关闭 Closed"}[t.Status]
	w.Header().Set("Content-Type", "text/html;charset=utf-8")
	_ = pageTmpl.Execute(w, pageData{
		Title: title, Merchant: s.merchantName, Amount: yuan(t.TotalFen), Trade: t,
		Payable: t.Status == StatusWaitBuyerPay, ReturnLink: template.URL(s.returnURL(t)),
	})
}

// POST /cashier/{trade_no}/pay: the buyer pays. The trade becomes
// TRADE_SUCCESS, the notification is scheduled, and the browser is sent to
// return_url with Alipay's signed synchronous return parameters (or shown
// the paid page when there is no return_url).
func (s *Server) handleCashierPay(w http.ResponseWriter, r *http.Request) {
	no := r.PathValue("trade_no")
	if t, ok := s.Trade(no); !ok || t.ProductCode != ProductWap {
		s.errorPage(w, http.StatusNotFound, CodeBusinessError, SubTradeNotExist, "交易不存在")
		return
	}
	t, err := s.PayTrade(r.Context(), no, PayOptions{})
	switch {
	case errors.Is(err, ErrTradePaid):
		s.errorPage(w, http.StatusConflict, CodeBusinessError, SubTradeHasSuccess, "交易已被支付")
		return
	case errors.Is(err, ErrTradeClosed):
		s.errorPage(w, http.StatusConflict, CodeBusinessError, SubTradeHasClose, "交易已经关闭")
		return
	case err != nil:
		s.errorPage(w, http.StatusInternalServerError, CodeUnavailable, SubSystemError, err.Error())
		return
	}
	if t.ReturnURL == "" {
		http.Redirect(w, r, "/cashier/"+url.PathEscape(t.TradeNo), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, s.returnURL(t), http.StatusFound)
}

// GET /cashier/{trade_no}/quit: the buyer gives up; the trade stays
// WAIT_BUYER_PAY (it times out later) and the browser goes to quit_url.
func (s *Server) handleCashierQuit(w http.ResponseWriter, r *http.Request) {
	t, ok := s.Trade(r.PathValue("trade_no"))
	if !ok || t.ProductCode != ProductWap {
		s.errorPage(w, http.StatusNotFound, CodeBusinessError, SubTradeNotExist, "交易不存在")
		return
	}
	if t.QuitURL == "" {
		s.errorPage(w, http.StatusOK, "", "", "已取消付款 Payment cancelled (no quit_url)")
		return
	}
	http.Redirect(w, r, t.QuitURL, http.StatusFound)
}

// ReturnParams are the signed parameters Alipay appends to return_url after
// a wap payment: charset, out_trade_no, method
// (alipay.trade.wap.pay.return), total_amount, trade_no, auth_app_id,
// version, app_id, seller_id, timestamp, sign_type and sign, the signature
// covering all but sign and sign_type.
func (s *Server) ReturnParams(t TradeState) url.Values {
	p := url.Values{}
	p.Set("charset", "utf-8")
	p.Set("out_trade_no", t.OutTradeNo)
	p.Set("method", "alipay.trade.wap.pay.return")
	p.Set("total_amount", yuan(t.TotalFen))
	p.Set("trade_no", t.TradeNo)
	p.Set("auth_app_id", s.appID)
	p.Set("version", "1.0")
	p.Set("app_id", s.appID)
	p.Set("seller_id", s.sellerID)
	p.Set("timestamp", fmtTime(s.now()))
	return s.SignedNotification(p)
}

func (s *Server) returnURL(t TradeState) string {
	if t.ReturnURL == "" || t.PaidAt.IsZero() {
		return t.ReturnURL
	}
	sep := "?"
	if strings.Contains(t.ReturnURL, "?") {
		sep = "&"
	}
	return t.ReturnURL + sep + s.ReturnParams(t).Encode()
}
