package alipaysim

import (
	"net/http"
	"time"
)

// Faults make the simulator misbehave; set them with SetFaults. The zero
// value is a well-behaved Alipay.
type Faults struct {
	// BadResponseSignature signs gateway replies over other bytes, so the
	// client must reject them.
	BadResponseSignature bool `json:"bad_response_signature,omitempty"`
	// ResponseDelay holds every gateway reply this long.
	ResponseDelay time.Duration `json:"response_delay,omitempty"`
	// DropNotifications changes state (payments, refunds) but sends no
	// notification; the notification is still listed, marked dropped.
	DropNotifications bool `json:"drop_notifications,omitempty"`
	// AsyncRefunds makes alipay.trade.refund accept a refund without moving
	// money (fund_change "N", refund_fee unchanged, refund query without
	// refund_status) until it settles: after RefundSettleDelay when
	// positive, else when SettleRefund is called.
	AsyncRefunds      bool          `json:"async_refunds,omitempty"`
	RefundSettleDelay time.Duration `json:"refund_settle_delay,omitempty"`
	// RefundBalanceNotEnough refuses refunds with
	// ACQ.SELLER_BALANCE_NOT_ENOUGH.
	RefundBalanceNotEnough bool `json:"refund_balance_not_enough,omitempty"`
}

// Failure is how FailNext breaks gateway calls.
type Failure struct {
	// Status, 500..599, answers that HTTP status with an HTML error page
	// (a broken gateway or proxy).
	Status int `json:"status,omitempty"`
	// Hang holds the call this long and then drops the connection without
	// an answer: the client's timeout fires first when it is shorter.
	Hang time.Duration `json:"hang,omitempty"`
	// With neither, the call answers 200 with Alipay's
	// {"error_response":{"code":"20000","sub_code":"isp.unknow-error"}}.
}

// SetFaults replaces the current faults.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// CurrentFaults returns the faults in force.
func (s *Server) CurrentFaults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// FailNext makes the next n gateway calls (API methods and wap.pay pages)
// fail as f says, before their signature is even read. n <= 0 clears it.
func (s *Server) FailNext(n int, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		s.failLeft, s.failNext = 0, Failure{}
		return
	}
	if f.Status != 0 && (f.Status < 500 || f.Status > 599) {
		f.Status = http.StatusBadGateway
	}
	s.failLeft, s.failNext = n, f
}

// applyGatewayFaults delays and fails gateway calls; false means the call
// was answered (or abandoned) here.
func (s *Server) applyGatewayFaults(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	delay := s.faults.ResponseDelay
	fail, failing := s.failNext, s.failLeft > 0
	if failing {
		s.failLeft--
	}
	s.mu.Unlock()
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-r.Context().Done():
			return false
		case <-s.run.Context().Done():
			return false
		}
	}
	if delay > 0 && !wait(delay) {
		return false
	}
	if !failing {
		return true
	}
	switch {
	case fail.Hang > 0:
		wait(fail.Hang)
		panic(http.ErrAbortHandler) // net/http drops the connection without a reply
	case fail.Status != 0:
		w.Header().Set("Content-Type", "text/html;charset=utf-8")
		w.WriteHeader(fail.Status)
		_, _ = w.Write([]byte("<html><body><h1>" + http.StatusText(fail.Status) + "</h1>alipaysim injected fault</body></html>"))
	default:
		s.writeError(w, "", failure(CodeUnavailable, "isp.unknow-error", "系统繁忙"))
	}
	return false
}
