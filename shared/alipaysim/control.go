package alipaysim

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/payfn/payfn/shared/internal/simkit"
)

// controlRoutes mounts the /sim/ control API: no signature, JSON in and out.
func (s *Server) controlRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /sim/keys", s.handleSimKeys)
	m.HandleFunc("GET /sim/trades", s.handleSimTrades)
	m.HandleFunc("GET /sim/trades/{no}", s.handleSimTrade)
	m.HandleFunc("POST /sim/trades/{no}/pay", s.handleSimPay)
	m.HandleFunc("POST /sim/trades/{no}/finish", s.handleSimFinish)
	m.HandleFunc("POST /sim/trades/{no}/close", s.handleSimClose)
	m.HandleFunc("GET /sim/trades/{no}/refunds", s.handleSimRefunds)
	m.HandleFunc("POST /sim/trades/{no}/refunds/{req}/settle", s.handleSimSettle)
	m.HandleFunc("GET /sim/notifications", s.handleSimNotifications)
	m.HandleFunc("POST /sim/notifications/{id}/resend", s.handleSimResend)
	m.HandleFunc("POST /sim/sign-notification", s.handleSimSignNotification)
	m.HandleFunc("GET /sim/faults", s.handleSimGetFaults)
	m.HandleFunc("POST /sim/faults", s.handleSimFaults)
	s.billRoutes(m) // bill.go: the bill download and POST /sim/bills/faults
}

// simError is the control API's error body.
type simError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) { simkit.WriteJSON(w, status, v) }

func writeSimError(w http.ResponseWriter, err error) {
	status, code := http.StatusBadRequest, "INVALID"
	switch {
	case errors.Is(err, ErrTradeNotExist), errors.Is(err, ErrRefundUnknown), errors.Is(err, ErrNotifyUnknown):
		status, code = http.StatusNotFound, "NOT_FOUND"
	case errors.Is(err, ErrTradePaid):
		status, code = http.StatusConflict, SubTradeHasSuccess
	case errors.Is(err, ErrTradeClosed):
		status, code = http.StatusConflict, SubTradeHasClose
	case errors.Is(err, ErrTradeState):
		status, code = http.StatusConflict, SubTradeStatusError
	}
	writeJSON(w, status, simError{Code: code, Message: err.Error()})
}

// decodeJSON reads an optional JSON body (an empty one is the zero value).
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := simkit.DecodeJSON(w, r, v); err != nil && err.Error() != "EOF" {
		writeJSON(w, http.StatusBadRequest, simError{Code: "INVALID", Message: "invalid JSON body: " + err.Error()})
		return false
	}
	return true
}

// GET /sim/keys → Keys (private keys included: this is a simulator)
func (s *Server) handleSimKeys(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Keys())
}

// GET /sim/trades → [TradeState]
func (s *Server) handleSimTrades(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Trades())
}

// GET /sim/trades/{no} → TradeState (no is trade_no or out_trade_no)
func (s *Server) handleSimTrade(w http.ResponseWriter, r *http.Request) {
	t, ok := s.Trade(r.PathValue("no"))
	if !ok {
		writeSimError(w, ErrTradeNotExist)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// POST /sim/trades/{no}/pay {"amount_fen","finish","no_notify","buyer_id","buyer_open_id"} → TradeState
func (s *Server) handleSimPay(w http.ResponseWriter, r *http.Request) {
	var opts PayOptions
	if !decodeJSON(w, r, &opts) {
		return
	}
	t, err := s.PayTrade(r.Context(), r.PathValue("no"), opts)
	if err != nil {
		writeSimError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// POST /sim/trades/{no}/finish {"no_notify"} → TradeState
func (s *Server) handleSimFinish(w http.ResponseWriter, r *http.Request) {
	var req struct {
		NoNotify bool `json:"no_notify"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	t, err := s.FinishTrade(r.PathValue("no"), !req.NoNotify)
	if err != nil {
		writeSimError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// POST /sim/trades/{no}/close → TradeState; closes an unpaid trade silently
func (s *Server) handleSimClose(w http.ResponseWriter, r *http.Request) {
	t, err := s.CloseTrade(r.PathValue("no"))
	if err != nil {
		writeSimError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// GET /sim/trades/{no}/refunds → [RefundState]
func (s *Server) handleSimRefunds(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.Trade(r.PathValue("no")); !ok {
		writeSimError(w, ErrTradeNotExist)
		return
	}
	writeJSON(w, http.StatusOK, s.Refunds(r.PathValue("no")))
}

// POST /sim/trades/{no}/refunds/{req}/settle → 204; settles an async refund
func (s *Server) handleSimSettle(w http.ResponseWriter, r *http.Request) {
	if err := s.SettleRefund(r.PathValue("no"), r.PathValue("req")); err != nil {
		writeSimError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// GET /sim/notifications[?out_trade_no=] → [Notification] with deliveries
func (s *Server) handleSimNotifications(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Notifications(r.URL.Query().Get("out_trade_no")))
}

// POST /sim/notifications/{id}/resend → Delivery
func (s *Server) handleSimResend(w http.ResponseWriter, r *http.Request) {
	d, err := s.Resend(r.Context(), r.PathValue("id"))
	if err != nil {
		writeSimError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// POST /sim/sign-notification {"params":{k:v}, "deliver_to":"url"} →
// {"params":{...signed}, "form":"k=v&...", "delivery":Delivery?}: signs
// arbitrary parameters with the Alipay key, and with deliver_to also posts
// them there once (recorded nowhere).
func (s *Server) handleSimSignNotification(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Params    map[string]string `json:"params"`
		DeliverTo string            `json:"deliver_to"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	p := url.Values{}
	for k, v := range req.Params {
		p.Set(k, v)
	}
	signed := s.SignedNotification(p)
	out := struct {
		Params   map[string]string `json:"params"`
		Form     string            `json:"form"`
		Delivery *Delivery         `json:"delivery,omitempty"`
	}{Params: flatten(signed), Form: signed.Encode()}
	if req.DeliverTo != "" {
		d := s.Deliver(r.Context(), req.DeliverTo, signed)
		out.Delivery = &d
	}
	writeJSON(w, http.StatusOK, out)
}

// GET /sim/faults → the faults in force (durations in milliseconds)
func (s *Server) handleSimGetFaults(w http.ResponseWriter, _ *http.Request) {
	f := s.CurrentFaults()
	writeJSON(w, http.StatusOK, faultsJSON{
		BadResponseSignature: f.BadResponseSignature, ResponseDelayMS: f.ResponseDelay.Milliseconds(),
		DropNotifications: f.DropNotifications, AsyncRefunds: f.AsyncRefunds,
		RefundSettleDelayMS: f.RefundSettleDelay.Milliseconds(), RefundBalanceNotEnough: f.RefundBalanceNotEnough,
	})
}

type faultsJSON struct {
	BadResponseSignature   bool  `json:"bad_response_signature"`
	ResponseDelayMS        int64 `json:"response_delay_ms"`
	DropNotifications      bool  `json:"drop_notifications"`
	AsyncRefunds           bool  `json:"async_refunds"`
	RefundSettleDelayMS    int64 `json:"refund_settle_delay_ms"`
	RefundBalanceNotEnough bool  `json:"refund_balance_not_enough"`
	FailNext               *struct {
		Count  int   `json:"count"`
		Status int   `json:"status"`
		HangMS int64 `json:"hang_ms"`
	} `json:"fail_next,omitempty"`
}

// POST /sim/faults replaces the faults (omitted fields are cleared) and,
// with fail_next, arms gateway failures. Answers 204.
//
//	{"bad_response_signature":true, "response_delay_ms":2000,
//	 "drop_notifications":true, "async_refunds":true, "refund_settle_delay_ms":500,
//	 "refund_balance_not_enough":true,
//	 "fail_next":{"count":2, "status":502}}   (or "hang_ms":10000, or neither: code 20000)
func (s *Server) handleSimFaults(w http.ResponseWriter, r *http.Request) {
	var req faultsJSON
	if !decodeJSON(w, r, &req) {
		return
	}
	s.SetFaults(Faults{
		BadResponseSignature:   req.BadResponseSignature,
		ResponseDelay:          time.Duration(req.ResponseDelayMS) * time.Millisecond,
		DropNotifications:      req.DropNotifications,
		AsyncRefunds:           req.AsyncRefunds,
		RefundSettleDelay:      time.Duration(req.RefundSettleDelayMS) * time.Millisecond,
		RefundBalanceNotEnough: req.RefundBalanceNotEnough,
	})
	if req.FailNext != nil {
		s.FailNext(req.FailNext.Count, Failure{Status: req.FailNext.Status, Hang: time.Duration(req.FailNext.HangMS) * time.Millisecond})
	}
	w.WriteHeader(http.StatusNoContent)
}
