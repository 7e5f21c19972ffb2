package devstack

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/payfn/payfn/shared/alipaysim"
	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
)

//go:embed checkout.html
var checkoutPage []byte

// routes serves the functions on their cloud paths, plus what the checkout
// page needs to play the parts of the WeChat client: a catalogue, a login
// code (wx.login) and the buyer's payment (wx.requestPayment). The /dev/
// routes exist only in the local stack.
func (s *Stack) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", s.App.Handler)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(checkoutPage)
	})
	// The page links an inline icon; this answers browsers and tools that
	// ask anyway, so no 404 shows in the console.
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	// The sample receiver (scripts/receiver) stands in for the demo app's
	// server: the demo endpoint's webhooks arrive here.
	mux.Handle(DemoWebhookPath, s.receiver)
	mux.HandleFunc("GET /dev/products", func(w http.ResponseWriter, r *http.Request) {
		ps, err := s.App.Store.Products(r.Context(), order.DefaultApp, true)
		if err != nil {
			devError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		devJSON(w, http.StatusOK, ps)
	})
	mux.HandleFunc("POST /dev/login-code", func(w http.ResponseWriter, r *http.Request) {
		if s.Sim == nil {
			devError(w, http.StatusNotFound, "real WeChat is configured: log in from a mini-program")
			return
		}
		var req struct {
			OpenID string `json:"openid"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1024)).Decode(&req); err != nil || req.OpenID == "" {
			devError(w, http.StatusBadRequest, "send {\"openid\": \"...\"}")
			return
		}
		devJSON(w, http.StatusOK, map[string]string{"code": s.Sim.NewLoginCode(req.OpenID)})
	})
	mux.HandleFunc("POST /dev/sim-pay", func(w http.ResponseWriter, r *http.Request) {
		if s.Sim == nil {
			devError(w, http.StatusNotFound, "real WeChat Pay is configured: pay from a mini-program")
			return
		}
		var req struct {
			Package string `json:"package"` // "prepay_id=..." as pay returned it
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1024)).Decode(&req); err != nil {
			devError(w, http.StatusBadRequest, "send {\"package\": \"prepay_id=...\"}")
			return
		}
		paid, err := s.Sim.Pay(r.Context(), strings.TrimPrefix(req.Package, "prepay_id="), paysim.PayOptions{})
		if err != nil {
			devError(w, http.StatusConflict, err.Error())
			return
		}
		devJSON(w, http.StatusOK, paid)
	})
	s.demoRoutes(mux)
	return mux
}

// demoRoutes play the demo app's server for the checkout page: the page is
// the app's front end, which holds no secret and talks only to its own
// server; these routes are that server, signing server-API requests with
// the demo app's key (DemoFile) and serving them in process. They also
// stand in for the Alipay mini-program's my.tradePay.
//
//	GET  /dev/apps                 the apps the page can buy from and their channels
//	GET  /dev/demo/products        the demo app's catalogue (GET /v1/products)
//	POST /dev/demo/orders          {product_id, quantity, channel, openid}: POST /v1/orders
//	GET  /dev/demo/orders/{id}     GET /v1/orders/{id}?refresh=true
//	POST /dev/alipay-mini-pay      {trade_no}: the buyer pays in the Alipay simulator
func (s *Stack) demoRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /dev/apps", func(w http.ResponseWriter, r *http.Request) {
		type pageApp struct {
			ID       string   `json:"id"`
			Name     string   `json:"name"`
			Flow     string   `json:"flow"` // "miniprogram": login, createOrder, pay, queryOrder; "server": the server API
			Channels []string `json:"channels"`
		}
		apps := []pageApp{{ID: order.DefaultApp, Name: "Mini-program (the default app: login, createOrder, pay)", Flow: "miniprogram",
			Channels: []string{app.ChannelWeChatJSAPI}}}
		x, err := s.App.App.GetApp(r.Context(), DemoAppID)
		if err != nil {
			devError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		configured := s.App.App.ConfiguredChannels()
		d := pageApp{ID: DemoAppID, Name: x.Name + " (service mode: its server calls /v1/orders)", Flow: "server", Channels: []string{}}
		for _, c := range AllChannels {
			if slices.Contains(x.Channels, c) && slices.Contains(configured, c) {
				d.Channels = append(d.Channels, c)
			}
		}
		devJSON(w, http.StatusOK, append(apps, d))
	})
	mux.HandleFunc("GET /dev/demo/products", func(w http.ResponseWriter, r *http.Request) {
		s.relay(w, r, http.MethodGet, "/v1/products", nil)
	})
	mux.HandleFunc("POST /dev/demo/orders", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ProductID string `json:"product_id"`
			Quantity  int    `json:"quantity"`
			Channel   string `json:"channel"`
			OpenID    string `json:"openid"` // the buyer: the page's openid field
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
			devError(w, http.StatusBadRequest, `send {"product_id", "quantity", "channel", "openid"}`)
			return
		}
		body := map[string]any{"product_id": req.ProductID, "quantity": req.Quantity, "request_id": "page-" + randomHex(12),
			"buyer": req.OpenID, "channel": req.Channel}
		// What each channel takes, as the app's server would fill it in.
		back := "http://" + r.Host + "/?returned=" + req.Channel
		switch req.Channel {
		case app.ChannelWeChatJSAPI, app.ChannelAlipayMini:
			body["payer_openid"] = req.OpenID
		case app.ChannelWeChatH5:
			body["client_ip"], body["return_url"] = clientIP(r), back
		case app.ChannelAlipayWap:
			body["client_ip"], body["return_url"], body["quit_url"] = clientIP(r), back, back+"&quit=1"
		}
		b, _ := json.Marshal(body)
		s.relay(w, r, http.MethodPost, "/v1/orders", b)
	})
	mux.HandleFunc("GET /dev/demo/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.relay(w, r, http.MethodGet, "/v1/orders/"+url.PathEscape(r.PathValue("id"))+"?refresh=true", nil)
	})
	mux.HandleFunc("POST /dev/alipay-mini-pay", func(w http.ResponseWriter, r *http.Request) {
		if s.Alipay == nil {
			devError(w, http.StatusNotFound, "the Alipay simulator is not running: pay from an Alipay mini-program")
			return
		}
		var req struct {
			TradeNo string `json:"trade_no"` // as POST /v1/orders returned it for my.tradePay
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1024)).Decode(&req); err != nil || req.TradeNo == "" {
			devError(w, http.StatusBadRequest, `send {"trade_no": "..."}`)
			return
		}
		t, err := s.Alipay.PayTrade(r.Context(), req.TradeNo, alipaysim.PayOptions{})
		if err != nil {
			devError(w, http.StatusConflict, err.Error())
			return
		}
		devJSON(w, http.StatusOK, t)
	})
}

// relay sends a server-API request signed with the demo app's key through
// the functions, in process, and writes their answer back as it is.
func (s *Stack) relay(w http.ResponseWriter, r *http.Request, method, path string, body []byte) {
	ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), randomHex(16)
	req := httptest.NewRequestWithContext(r.Context(), method, path, bytes.NewReader(body))
	req.RemoteAddr = r.RemoteAddr
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Payfn-Key-Id", s.Demo.KeyID)
	req.Header.Set("X-Payfn-Timestamp", ts)
	req.Header.Set("X-Payfn-Nonce", nonce)
	req.Header.Set("X-Payfn-Signature", app.SignServerRequest(s.Demo.KeySecret, method, path, ts, nonce, body))
	rec := httptest.NewRecorder()
	s.App.Handler.ServeHTTP(rec, req)
	w.Header().Set("Content-Type", rec.Header().Get("Content-Type"))
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

// clientIP is the buyer's address as this server saw it.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func devJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func devError(w http.ResponseWriter, status int, msg string) {
	devJSON(w, status, map[string]string{"code": "DEV_ERROR", "message": msg})
}
