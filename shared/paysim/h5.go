package paysim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"
)

// WeChat Pay H5 (trade_type MWEB): the merchant prepays with
// POST /v3/pay/transactions/h5 and gets an h5_url, which the buyer's mobile
// browser opens; WeChat's page there hands over to the WeChat app, and after
// paying (or giving up) the browser goes to the redirect_url the merchant
// appended. The simulator's h5_url is a page of its own that shows the order
// and pays it with one button, so a person in a browser or a test with a
// plain http.Client can pay:
//
//	GET  /sim/h5/checkout?prepay_id=…&package=…[&redirect_url=…]   the page
//	POST /sim/h5/checkout, the same fields as a form or query       pays, then 302 to redirect_url
//	     (action=cancel gives up, unpaid, and goes back the same way)
//
// Like WeChat's, an h5_url works for Options.H5URLLifetime (five minutes)
// and then answers an error page; prepaying again with identical parameters
// issues a fresh one. package is a MAC of the prepay_id, so only h5_urls the
// simulator issued open. H5 trades carry no payer: the prepay names none,
// and queries and notifications leave payer out (WeChat's documentation
// shares one template across JSAPI and H5 and does not settle whether H5
// payments report an openid; a merchant must not depend on one).

// Trade types as queries, notifications and bills report them.
const (
	TradeTypeJSAPI = "JSAPI"
	TradeTypeMWEB  = "MWEB" // H5
)

// H5CheckoutPath is the path of the page h5_urls point at.
const H5CheckoutPath = "/sim/h5/checkout"

// defaultH5URLLifetime is how long WeChat's h5_url is valid.
const defaultH5URLLifetime = 5 * time.Minute

// h5Types are scene_info.h5_info.type's values.
var h5Types = map[string]bool{"Wap": true, "iOS": true, "Android": true}

func (t *trade) tradeType() string {
	if t.p.TradeType == "" {
		return TradeTypeJSAPI
	}
	return t.p.TradeType
}

func (s *Server) h5Routes(m *http.ServeMux) {
	m.HandleFunc("POST /v3/pay/transactions/h5", s.v3(s.handleH5Prepay))
	m.HandleFunc("GET "+H5CheckoutPath, s.handleH5Page)
	m.HandleFunc("POST "+H5CheckoutPath, s.handleH5Pay)
}

// handleH5Prepay is POST /v3/pay/transactions/h5: the JSAPI prepay's
// checks without a payer, plus scene_info{payer_client_ip, h5_info.type}.
// It answers {"h5_url"}.
func (s *Server) handleH5Prepay(r *http.Request, body []byte) reply {
	var b struct {
		SceneInfo *struct {
			PayerClientIP *string `json:"payer_client_ip"`
			H5Info        *struct {
				Type *string `json:"type"`
			} `json:"h5_info"`
		} `json:"scene_info"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "body is not valid JSON")
	}
	switch si := b.SceneInfo; {
	case si == nil:
		return paramError("/scene_info", "required")
	case si.PayerClientIP == nil || *si.PayerClientIP == "":
		return paramError("/scene_info/payer_client_ip", "required")
	case !validIP(*si.PayerClientIP):
		return paramError("/scene_info/payer_client_ip", "must be an IPv4 or IPv6 address")
	case si.H5Info == nil:
		return paramError("/scene_info/h5_info", "required")
	case si.H5Info.Type == nil || *si.H5Info.Type == "":
		return paramError("/scene_info/h5_info/type", "required")
	case !h5Types[*si.H5Info.Type]:
		return paramError("/scene_info/h5_info/type", "must be iOS, Android or Wap")
	}
	rep := s.prepay(body, TradeTypeMWEB, s.h5Lifetime)
	m, ok := rep.body.(map[string]string)
	if rep.status != http.StatusOK || !ok {
		return rep
	}
	return reply{status: http.StatusOK, body: map[string]string{"h5_url": s.h5URL(r, m["prepay_id"])}}
}

func validIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil && len(s) <= 45
}

// h5URL is the page URL for prepayID, on H5BaseURL or else the host the
// prepay came to.
func (s *Server) h5URL(r *http.Request, prepayID string) string {
	base := s.h5Base
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	return base + H5CheckoutPath + "?prepay_id=" + url.QueryEscape(prepayID) + "&package=" + s.h5Package(prepayID)
}

// h5Package is the h5_url's package: a MAC of the prepay_id under the APIv3
// key, ten digits or fewer like WeChat's, so it needs no storage and
// survives a restart.
func (s *Server) h5Package(prepayID string) string {
	m := hmac.New(sha256.New, []byte(s.apiV3Key))
	m.Write([]byte("paysim h5_url\n" + prepayID))
	return strconv.FormatUint(uint64(binary.BigEndian.Uint32(m.Sum(nil))), 10)
}

// h5Page is what the page template shows.
type h5Page struct {
	Title, Message string
	MchID, AppID   string
	Description    string
	OutTradeNo     string
	Amount         string // yuan, e.g. 12.34
	ExpiresAt      string
	RedirectURL    string
	Action         string // the forms' target, H5CheckoutPath
	PrepayID       string
	Package        string
	Payable        bool
	Paid           bool
}

// h5Link checks an h5_url's parameters and returns the page for it, or the
// status and reason to refuse it with.
func (s *Server) h5Link(prepayID, pkg, redirect string) (h5Page, int, string) {
	if redirect != "" {
		if u, err := url.Parse(redirect); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return h5Page{}, http.StatusBadRequest, "redirect_url must be an absolute http or https URL (URL-encoded)"
		}
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.prepays[prepayID]
	if !ok || !hmac.Equal([]byte(pkg), []byte(s.h5Package(prepayID))) {
		return h5Page{}, http.StatusNotFound, "This payment link is not valid. (支付链接无效)"
	}
	t := s.trades[p.outTradeNo]
	if t == nil || t.tradeType() != TradeTypeMWEB {
		return h5Page{}, http.StatusNotFound, "This payment link is not valid. (支付链接无效)"
	}
	page := h5Page{
		MchID: t.p.MchID, AppID: t.p.AppID, Description: t.p.Description, OutTradeNo: t.p.OutTradeNo,
		Amount: yuan(t.p.Total), ExpiresAt: p.expiresAt.In(cst).Format(time.DateTime), RedirectURL: redirect,
		Action: H5CheckoutPath, PrepayID: prepayID, Package: pkg,
	}
	switch {
	case t.state == StateSuccess:
		page.Amount = yuan(t.paidTotal)
		return page, http.StatusConflict, "This order is already paid. (订单已支付)"
	case t.state == StateClosed:
		return page, http.StatusConflict, "This order is closed. (订单已关闭)"
	case now.After(t.deadline):
		return page, http.StatusGone, "This order's time to pay has passed. (订单已过期)"
	case now.After(p.expiresAt):
		return page, http.StatusGone, "This payment link has expired; go back and pay again. (支付请求已失效，请重新发起支付)"
	}
	page.Payable = true
	return page, http.StatusOK, ""
}

// handleH5Page is GET /sim/h5/checkout: the order and a Pay button.
func (s *Server) handleH5Page(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, status, msg := s.h5Link(q.Get("prepay_id"), q.Get("package"), q.Get("redirect_url"))
	page.Title, page.Message = "WeChat Pay", msg
	writeH5Page(w, status, page)
}

// handleH5Pay is POST /sim/h5/checkout: the form on the page (its fields
// may come in the query, as the form posts back to the h5_url, or in the
// body). It pays and sends the browser to redirect_url (302), or shows the
// outcome when there is none; action=cancel leaves the order unpaid and
// goes back the same way.
func (s *Server) handleH5Pay(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeH5Page(w, http.StatusBadRequest, h5Page{Title: "WeChat Pay", Message: "The form could not be read."})
		return
	}
	prepayID, redirect := r.Form.Get("prepay_id"), r.Form.Get("redirect_url")
	page, status, msg := s.h5Link(prepayID, r.Form.Get("package"), redirect)
	page.Title = "WeChat Pay"
	if status != http.StatusOK {
		page.Message = msg
		writeH5Page(w, status, page)
		return
	}
	if r.Form.Get("action") == "cancel" {
		s.log.Info("paysim h5 payment cancelled", "out_trade_no", page.OutTradeNo)
		if redirect != "" {
			http.Redirect(w, r, redirect, http.StatusFound)
			return
		}
		page.Payable, page.Message = false, "Payment cancelled. (已取消支付)"
		writeH5Page(w, http.StatusOK, page)
		return
	}
	_, err := s.Pay(r.Context(), prepayID, PayOptions{})
	switch {
	case err == nil:
	case errors.Is(err, ErrOrderPaid), errors.Is(err, ErrOrderClosed):
		page.Payable, page.Message = false, "This order can no longer be paid. (订单已支付或已关闭)"
		writeH5Page(w, http.StatusConflict, page)
		return
	case errors.Is(err, ErrPrepayExpired), errors.Is(err, ErrOrderExpired):
		page.Payable, page.Message = false, "This payment link has expired; go back and pay again. (支付请求已失效，请重新发起支付)"
		writeH5Page(w, http.StatusGone, page)
		return
	default:
		page.Payable, page.Message = false, "The payment failed: "+err.Error()
		writeH5Page(w, http.StatusNotFound, page)
		return
	}
	if redirect != "" {
		http.Redirect(w, r, redirect, http.StatusFound)
		return
	}
	page.Payable, page.Paid, page.Message = false, true, "Paid. (支付成功)"
	writeH5Page(w, http.StatusOK, page)
}

func writeH5Page(w http.ResponseWriter, status int, page h5Page) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = h5Template.Execute(w, page)
}

// h5Template is the page: a Pay form and a Cancel form, each posting the
// link's fields (prepay_id, package, redirect_url) to H5CheckoutPath.
var h5Template = template.Must(template.New("h5").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} (paysim)</title>
<style>
body{font-family:system-ui,-apple-system,"PingFang SC",sans-serif;margin:0;background:#ededed;color:#111}
main{max-width:28rem;margin:0 auto;padding:1.5rem 1rem}
.card{background:#fff;border-radius:.5rem;padding:1.25rem;margin-bottom:1rem}
.amount{font-size:2.2rem;font-weight:600;text-align:center;margin:.5rem 0 1rem}
dl{display:grid;grid-template-columns:auto 1fr;gap:.35rem .75rem;margin:0;font-size:.9rem}
dt{color:#777}dd{margin:0;word-break:break-all}
button{width:100%;padding:.8rem;border:0;border-radius:.4rem;font-size:1.05rem;margin-top:.5rem}
.pay{background:#07c160;color:#fff}.cancel{background:#f2f2f2;color:#333}
.msg{padding:.75rem 1rem;border-radius:.4rem;background:#fff3cd}
.ok{background:#e7f8ee}
small{color:#888;display:block;text-align:center}
</style></head><body><main>
<h1 style="font-size:1.1rem;text-align:center">{{.Title}} · H5 <small>paysim: no real money moves</small></h1>
{{if .Message}}<p class="msg{{if .Paid}} ok{{end}}" id="message">{{.Message}}</p>{{end}}
{{if .OutTradeNo}}<div class="card">
<div class="amount" id="amount">¥{{.Amount}}</div>
<dl>
<dt>Merchant</dt><dd id="mchid">{{.MchID}} ({{.AppID}})</dd>
<dt>Item</dt><dd id="description">{{.Description}}</dd>
<dt>Order</dt><dd id="out_trade_no">{{.OutTradeNo}}</dd>
{{if .Payable}}<dt>Link valid until</dt><dd>{{.ExpiresAt}}</dd>{{end}}
</dl></div>{{end}}
{{if .Payable}}<form method="post" action="{{.Action}}" id="pay">{{template "link" .}}
<button class="pay" type="submit">Pay ¥{{.Amount}}</button>
</form>
<form method="post" action="{{.Action}}" id="cancel">{{template "link" .}}
<input type="hidden" name="action" value="cancel">
<button class="cancel" type="submit">Cancel</button>
</form>{{else if .RedirectURL}}<p><a href="{{.RedirectURL}}">Back to the merchant</a></p>{{end}}
</main></body></html>
{{define "link"}}
<input type="hidden" name="prepay_id" value="{{.PrepayID}}">
<input type="hidden" name="package" value="{{.Package}}">
{{- if .RedirectURL}}
<input type="hidden" name="redirect_url" value="{{.RedirectURL}}">{{end}}
{{end}}`))
