package devstack

import (
	"github.com/payfn/payfn/shared/order"

	_ "embed"
	"encoding/json"
	"net/http"
	"strings"

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
	return mux
}

func devJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func devError(w http.ResponseWriter, status int, msg string) {
	devJSON(w, status, map[string]string{"code": "DEV_ERROR", "message": msg})
}
