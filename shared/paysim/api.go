package paysim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	signatureType = "WECHATPAY2-SHA256-RSA2048"
	authScheme    = "WECHATPAY2-SHA256-RSA2048"
	maxBody       = 1 << 20
	// clockSkew is WeChat's tolerance for the Authorization timestamp.
	clockSkew = 5 * time.Minute
)

// apiError is WeChat's error body.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// reply is what an API handler answers; body nil means 204 No Content.
type reply struct {
	status int
	body   any
}

func errReply(status int, code, message string) reply {
	return reply{status: status, body: apiError{Code: code, Message: message}}
}

func paramError(field, issue string) reply {
	return reply{status: http.StatusBadRequest, body: apiError{
		Code:    "PARAM_ERROR",
		Message: fmt.Sprintf("%s: %s", field, issue),
		Detail:  map[string]string{"field": field, "location": "body", "issue": issue},
	}}
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("POST /v3/pay/transactions/jsapi", s.v3(s.handlePrepay))
	s.h5Routes(m) // h5.go: H5 prepay and the h5_url page
	m.HandleFunc("GET /v3/pay/transactions/out-trade-no/{no}", s.v3(s.handleQueryByOutTradeNo))
	m.HandleFunc("GET /v3/pay/transactions/id/{id}", s.v3(s.handleQueryByID))
	m.HandleFunc("POST /v3/pay/transactions/out-trade-no/{no}/close", s.v3(s.handleClose))
	m.HandleFunc("GET /v3/certificates", s.v3(s.handleCertificates))
	m.HandleFunc("POST /v3/refund/domestic/refunds", s.v3(s.handleRefund))
	m.HandleFunc("GET /v3/refund/domestic/refunds/{no}", s.v3(s.handleQueryRefund))
	m.HandleFunc("/v3/", s.v3(func(*http.Request, []byte) reply {
		return errReply(http.StatusNotFound, "NOT_FOUND", "no such API in paysim")
	}))
	s.billRoutes(m)    // bill.go
	s.sharingRoutes(m) // sharing.go
	m.HandleFunc("GET /sns/jscode2session", s.handleJSCode2Session)
	s.controlRoutes(m)
	s.mux = m
}

// v3 wraps an API handler with what every /v3 call gets: the configured
// delay, the merchant signature check, injected faults, and a signed reply.
func (s *Server) v3(h func(r *http.Request, body []byte) reply) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			s.writeReply(w, r, errReply(http.StatusBadRequest, "PARAM_ERROR", "body unreadable or too large"))
			return
		}
		s.mu.Lock()
		delay := s.faults.ResponseDelay
		s.mu.Unlock()
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			case <-s.run.Context().Done():
				t.Stop()
				return
			}
		}
		if reason := s.verifyRequest(r, body); reason != "" {
			s.log.Warn("paysim rejected request signature", "method", r.Method, "path", r.URL.Path, "reason", reason)
			s.writeReply(w, r, reply{status: http.StatusUnauthorized, body: apiError{
				Code:    "SIGN_ERROR",
				Message: "签名错误",
				Detail:  map[string]any{"field": "signature", "location": "authorization", "detail": map[string]string{"issue": reason}},
			}})
			return
		}
		if f, ok := s.takeFailure(); ok {
			s.log.Info("paysim injected fault", "path", r.URL.Path, "status", f.status, "code", f.code)
			s.writeReply(w, r, errReply(f.status, f.code, f.message))
			return
		}
		rep := h(r, body)
		s.log.Debug("paysim api", "method", r.Method, "path", r.URL.Path, "status", rep.status)
		s.writeReply(w, r, rep)
	}
}

func (s *Server) takeFailure() (failure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failNext.n <= 0 {
		return failure{}, false
	}
	s.failNext.n--
	return s.failNext, true
}

// verifyRequest checks the merchant's Authorization header and returns why
// it is not acceptable, or "" when it is. The message is built from the raw
// request target (r.RequestURI), because the SDK signs the escaped path.
func (s *Server) verifyRequest(r *http.Request, body []byte) string {
	h := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(h, authScheme+" ")
	if !ok {
		return "missing or unsupported Authorization scheme"
	}
	fields := map[string]string{}
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return "malformed Authorization field"
		}
		fields[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	for _, k := range []string{"mchid", "nonce_str", "timestamp", "serial_no", "signature"} {
		if fields[k] == "" {
			return "Authorization lacks " + k
		}
	}
	if fields["mchid"] != s.mchID {
		return "unknown mchid"
	}
	merchantPub := s.merchantKey(fields["serial_no"]) // merchants.go
	if merchantPub == nil {
		return "unknown merchant certificate serial"
	}
	ts, err := strconv.ParseInt(fields["timestamp"], 10, 64)
	if err != nil {
		return "timestamp is not an integer"
	}
	if d := s.now().Sub(time.Unix(ts, 0)); d > clockSkew || d < -clockSkew {
		return "timestamp more than 5 minutes from server time"
	}
	msg := fmt.Sprintf("%s\n%s\n%s\n%s\n%s\n", r.Method, r.RequestURI, fields["timestamp"], fields["nonce_str"], body)
	if err := verifySHA256WithRSA(merchantPub, msg, fields["signature"]); err != nil {
		return "sign not match"
	}
	s.merchantSerialUsed(fields["serial_no"])
	return ""
}

// writeReply signs and writes an API reply. The serial (and so the key the
// client must verify with) follows the request's Wechatpay-Serial: the public
// key id when the client asked for it, the platform certificate otherwise,
// as WeChat does during the public-key migration.
func (s *Server) writeReply(w http.ResponseWriter, r *http.Request, rep reply) {
	var body []byte
	if rep.body != nil {
		b, err := json.Marshal(rep.body)
		if err != nil {
			s.log.Error("paysim encode reply", "err", err)
			rep = errReply(http.StatusInternalServerError, "SYSTEM_ERROR", "encode reply")
			b, _ = json.Marshal(rep.body)
		}
		body = b
	}
	serial := s.certSerial
	if r.Header.Get("Wechatpay-Serial") == s.publicKeyID {
		serial = s.publicKeyID
	}
	s.mu.Lock()
	bad := s.faults.BadResponseSignature
	s.mu.Unlock()
	ts := strconv.FormatInt(s.now().Unix(), 10)
	nonce := randAlnum(32)
	msg := ts + "\n" + nonce + "\n" + string(body) + "\n"
	if bad {
		msg += "tampered" // a valid signature over a different message
	}
	sig, err := signSHA256WithRSA(s.platformKey, msg)
	if err != nil {
		s.log.Error("paysim sign reply", "err", err)
		http.Error(w, "sign reply", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Request-ID", randHex(16))
	hd.Set("Wechatpay-Timestamp", ts)
	hd.Set("Wechatpay-Nonce", nonce)
	hd.Set("Wechatpay-Serial", serial)
	hd.Set("Wechatpay-Signature", sig)
	hd.Set("Wechatpay-Signature-Type", signatureType)
	if body != nil {
		hd.Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(rep.status)
		_, _ = w.Write(body)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleCertificates(_ *http.Request, _ []byte) reply {
	nonce := randAlnum(12)
	ct, err := encryptAEAD(s.apiV3Key, nonce, "certificate", []byte(s.certPEM))
	if err != nil {
		return errReply(http.StatusInternalServerError, "SYSTEM_ERROR", "encrypt certificate")
	}
	type enc struct {
		Algorithm      string `json:"algorithm"`
		Nonce          string `json:"nonce"`
		AssociatedData string `json:"associated_data"`
		Ciphertext     string `json:"ciphertext"`
	}
	type item struct {
		SerialNo           string `json:"serial_no"`
		EffectiveTime      string `json:"effective_time"`
		ExpireTime         string `json:"expire_time"`
		EncryptCertificate enc    `json:"encrypt_certificate"`
	}
	return reply{status: http.StatusOK, body: map[string][]item{"data": {{
		SerialNo:           s.certSerial,
		EffectiveTime:      s.certNotBefore.In(cst).Format(time.RFC3339),
		ExpireTime:         s.certNotAfter.In(cst).Format(time.RFC3339),
		EncryptCertificate: enc{Algorithm: "AEAD_AES_256_GCM", Nonce: nonce, AssociatedData: "certificate", Ciphertext: ct},
	}}}}
}
