package paysim

import (
	"net/http"
	"time"
)

// Faults make the simulator misbehave; set them with SetFaults. The zero
// value is a well-behaved WeChat Pay.
type Faults struct {
	// BadResponseSignature signs API replies over the wrong message, so the
	// SDK must reject them.
	BadResponseSignature bool
	// ResponseDelay holds every /v3 reply this long (a slow WeChat Pay).
	ResponseDelay time.Duration
	// NotifyBadSignature signs delivered notifications over the wrong
	// message.
	NotifyBadSignature bool
	// NotifyTimestampShift is added to delivered notifications'
	// Wechatpay-Timestamp (e.g. -10*time.Minute for stale ones).
	NotifyTimestampShift time.Duration
}

// SetFaults replaces the current faults. Safe for concurrent use.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// FailNext makes the next n /v3 API calls with a valid signature answer
// status with the WeChat error code (e.g. 500 SYSTEM_ERROR, 429
// FREQUENCY_LIMITED) instead of being served. n <= 0 clears it.
func (s *Server) FailNext(n, status int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		s.failNext = failure{}
		return
	}
	if status < 400 || status > 599 {
		status = http.StatusInternalServerError
	}
	if code == "" {
		code = "SYSTEM_ERROR"
	}
	s.failNext = failure{n: n, status: status, code: code, message: "paysim injected fault: " + code}
}
