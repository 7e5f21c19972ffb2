package paysim

import (
	"errors"
	"net/http"
	"time"

	"github.com/payfn/payfn/shared/internal/simkit"
)

// controlRoutes mounts the /sim/ control API: no signature, JSON in and out.
func (s *Server) controlRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /sim/login-code", s.handleSimLoginCode)
	m.HandleFunc("POST /sim/pay", s.handleSimPay)
	m.HandleFunc("GET /sim/deliveries", s.handleSimDeliveries)
	m.HandleFunc("GET /sim/trades/{no}", s.handleSimTrade)
	m.HandleFunc("GET /sim/prepays/{id}", s.handleSimPrepay)
	m.HandleFunc("POST /sim/faults", s.handleSimFaults)
	// Disagreements between WeChat Pay and the merchant, for reconcile to find.
	m.HandleFunc("POST /sim/trades/{no}/close", s.handleSimCloseTrade)
	m.HandleFunc("POST /sim/refund-behaviour", s.handleSimRefundBehaviour)
	m.HandleFunc("POST /sim/refunds/{no}/settle", s.handleSimSettleRefund)
}

func writeJSON(w http.ResponseWriter, status int, v any) { simkit.WriteJSON(w, status, v) }

func writeSimError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, apiError{Code: code, Message: message})
}

func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := simkit.DecodeJSON(w, r, v); err != nil {
		writeSimError(w, http.StatusBadRequest, "PARAM_ERROR", "invalid JSON body: "+err.Error())
		return false
	}
	return true
}

// POST /sim/login-code {"openid"} → {"code"}
func (s *Server) handleSimLoginCode(w http.ResponseWriter, r *http.Request) {
	var req struct {
		OpenID string `json:"openid"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.OpenID == "" {
		writeSimError(w, http.StatusBadRequest, "PARAM_ERROR", "openid is required")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"code": s.NewLoginCode(req.OpenID)})
}

// POST /sim/pay {"prepay_id", "paid_total_fen", "no_notify", "duplicates"} → PaidTrade
func (s *Server) handleSimPay(w http.ResponseWriter, r *http.Request) {
	var req struct {
		PrepayID string `json:"prepay_id"`
		PayOptions
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	paid, err := s.Pay(r.Context(), req.PrepayID, req.PayOptions)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, paid)
	case errors.Is(err, ErrUnknownPrepay):
		writeSimError(w, http.StatusNotFound, "PREPAY_NOT_EXIST", err.Error())
	case errors.Is(err, ErrOrderPaid):
		writeSimError(w, http.StatusConflict, CodeOrderPaid, err.Error())
	case errors.Is(err, ErrOrderClosed):
		writeSimError(w, http.StatusConflict, CodeOrderClosed, err.Error())
	case errors.Is(err, ErrOrderExpired), errors.Is(err, ErrPrepayExpired):
		writeSimError(w, http.StatusConflict, "EXPIRED", err.Error())
	default:
		writeSimError(w, http.StatusBadRequest, "PARAM_ERROR", err.Error())
	}
}

// GET /sim/deliveries?out_trade_no= → [Delivery]
func (s *Server) handleSimDeliveries(w http.ResponseWriter, r *http.Request) {
	no := r.URL.Query().Get("out_trade_no")
	if no == "" {
		writeSimError(w, http.StatusBadRequest, "PARAM_ERROR", "out_trade_no is required")
		return
	}
	ds := s.Deliveries(no)
	if ds == nil {
		ds = []Delivery{}
	}
	writeJSON(w, http.StatusOK, ds)
}

// GET /sim/trades/{no} → TradeState
func (s *Server) handleSimTrade(w http.ResponseWriter, r *http.Request) {
	t, ok := s.Trade(r.PathValue("no"))
	if !ok {
		writeSimError(w, http.StatusNotFound, CodeOrderNotExist, "no such out_trade_no")
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// GET /sim/prepays/{id} → TradeState of the order the prepay_id belongs to
func (s *Server) handleSimPrepay(w http.ResponseWriter, r *http.Request) {
	t, ok := s.TradeByPrepay(r.PathValue("id"))
	if !ok {
		writeSimError(w, http.StatusNotFound, "PREPAY_NOT_EXIST", "no such prepay_id")
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// POST /sim/faults replaces the faults (omitted fields are cleared) and,
// with fail_next, arms injected API failures. Answers 204.
//
//	{"bad_response_signature":true, "response_delay_ms":2000,
//	 "notify_bad_signature":true, "notify_timestamp_shift_s":-600,
//	 "fail_next":{"count":2,"status":500,"code":"SYSTEM_ERROR"}}
func (s *Server) handleSimFaults(w http.ResponseWriter, r *http.Request) {
	var req struct {
		BadResponseSignature  bool  `json:"bad_response_signature"`
		ResponseDelayMS       int64 `json:"response_delay_ms"`
		NotifyBadSignature    bool  `json:"notify_bad_signature"`
		NotifyTimestampShiftS int64 `json:"notify_timestamp_shift_s"`
		FailNext              *struct {
			Count  int    `json:"count"`
			Status int    `json:"status"`
			Code   string `json:"code"`
		} `json:"fail_next"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	s.SetFaults(Faults{
		BadResponseSignature: req.BadResponseSignature,
		ResponseDelay:        time.Duration(req.ResponseDelayMS) * time.Millisecond,
		NotifyBadSignature:   req.NotifyBadSignature,
		NotifyTimestampShift: time.Duration(req.NotifyTimestampShiftS) * time.Second,
	})
	if req.FailNext != nil {
		s.FailNext(req.FailNext.Count, req.FailNext.Status, req.FailNext.Code)
	}
	w.WriteHeader(http.StatusNoContent)
}

// POST /sim/trades/{no}/close closes an unpaid trade without telling the
// merchant. Answers 204; 404 for an unknown trade, 409 for one not NOTPAY.
func (s *Server) handleSimCloseTrade(w http.ResponseWriter, r *http.Request) {
	err := s.CloseSilently(r.Context(), r.PathValue("no"))
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, ErrUnknownPrepay):
		writeSimError(w, http.StatusNotFound, CodeOrderNotExist, err.Error())
	default:
		writeSimError(w, http.StatusConflict, "TRADE_STATE_ERROR", err.Error())
	}
}

// POST /sim/refund-behaviour decides how later refunds settle (omitted
// fields are cleared). Answers 204.
//
//	{"outcome":"ABNORMAL", "delay_ms":500, "no_notify":true, "hold":true}
func (s *Server) handleSimRefundBehaviour(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Outcome  string `json:"outcome"`
		DelayMS  int64  `json:"delay_ms"`
		NoNotify bool   `json:"no_notify"`
		Hold     bool   `json:"hold"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	switch req.Outcome {
	case "", RefundSuccess, RefundClosed, RefundAbnormal:
	default:
		writeSimError(w, http.StatusBadRequest, "PARAM_ERROR", "outcome must be SUCCESS, CLOSED or ABNORMAL")
		return
	}
	if req.DelayMS < 0 {
		writeSimError(w, http.StatusBadRequest, "PARAM_ERROR", "delay_ms must not be negative")
		return
	}
	s.SetRefundBehaviour(RefundBehaviour{
		Outcome:  req.Outcome,
		Delay:    time.Duration(req.DelayMS) * time.Millisecond,
		NoNotify: req.NoNotify,
		Hold:     req.Hold,
	})
	w.WriteHeader(http.StatusNoContent)
}

// POST /sim/refunds/{no}/settle {"outcome", "notify"} decides a held
// refund. Answers 204; 409 if it is not processing.
func (s *Server) handleSimSettleRefund(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Outcome string `json:"outcome"`
		Notify  bool   `json:"notify"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	switch req.Outcome {
	case RefundSuccess, RefundClosed, RefundAbnormal:
	default:
		writeSimError(w, http.StatusBadRequest, "PARAM_ERROR", "outcome must be SUCCESS, CLOSED or ABNORMAL")
		return
	}
	if err := s.SettleRefund(r.PathValue("no"), req.Outcome, req.Notify); err != nil {
		writeSimError(w, http.StatusConflict, "REFUND_STATE_ERROR", err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
