package paysim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/payfn/payfn/shared/internal/simkit"
)

// SignatureProbePrefix starts the Wechatpay-Signature of WeChat's signature
// probe traffic, which merchants must reject.
const SignatureProbePrefix = "WECHATPAY/SIGNTEST/"

// NotifyOptions shape a notification built by BuildNotification. The zero
// value builds a genuine one, as Pay delivers it.
type NotifyOptions struct {
	ID         string    // default: a random 36-character id
	CreateTime time.Time // default: now
	EventType  string    // default TRANSACTION.SUCCESS
	Summary    string    // default 支付成功

	APIv3Key       string  // encrypt with this key instead of the simulator's
	Nonce          string  // resource nonce; default 12 random characters (other lengths forge a malformed one)
	AssociatedData *string // default "transaction"
	OmitResource   bool    // leave "resource" out

	SignWith       *rsa.PrivateKey     // default: the platform key
	Serial         string              // default: the public key id, or the certificate serial with NotifyWithPlatformCert
	TimestampShift time.Duration       // added to Wechatpay-Timestamp; -301*time.Second is stale
	TamperBody     func([]byte) []byte // rewrites the body after it was signed
	SignatureProbe bool                // a WECHATPAY/SIGNTEST/ signature

	badSignature bool // fault knob: a valid signature over a different message
}

// Delivery is one attempt to deliver a notification.
type Delivery struct {
	NotificationID string    `json:"notification_id"`
	Attempt        int       `json:"attempt"`             // 0 is the first, then retries
	Duplicate      bool      `json:"duplicate,omitempty"` // an extra copy (PayOptions.Duplicates)
	Time           time.Time `json:"time"`
	Status         int       `json:"status"` // 0 on a transport error or timeout
	Acked          bool      `json:"acked"`  // a 2xx answer
	Error          string    `json:"error,omitempty"`
}

type envelope struct {
	id    string
	bytes []byte
}

type encryptedResource struct {
	OriginalType   string `json:"original_type"`
	Algorithm      string `json:"algorithm"`
	Ciphertext     string `json:"ciphertext"`
	AssociatedData string `json:"associated_data"`
	Nonce          string `json:"nonce"`
}

type notificationBody struct {
	ID           string             `json:"id"`
	CreateTime   string             `json:"create_time"`
	ResourceType string             `json:"resource_type"`
	EventType    string             `json:"event_type"`
	Summary      string             `json:"summary"`
	Resource     *encryptedResource `json:"resource,omitempty"`
}

func (s *Server) envelopeDefaults(o NotifyOptions) NotifyOptions {
	if o.ID == "" {
		o.ID = randUUID()
	}
	if o.CreateTime.IsZero() {
		o.CreateTime = s.now()
	}
	if o.EventType == "" {
		o.EventType = "TRANSACTION.SUCCESS"
	}
	if o.Summary == "" {
		o.Summary = "支付成功"
	}
	if o.APIv3Key == "" {
		o.APIv3Key = s.apiV3Key
	}
	if o.Nonce == "" {
		o.Nonce = randAlnum(12)
	}
	if o.AssociatedData == nil {
		ad := "transaction"
		o.AssociatedData = &ad
	}
	return o
}

// buildEnvelope encrypts a resource (a Transaction, or a refund) into the §3
// notification envelope. o must have its defaults filled.
func buildEnvelope(resource any, originalType string, o NotifyOptions) (envelope, error) {
	nb := notificationBody{
		ID:           o.ID,
		CreateTime:   o.CreateTime.In(cst).Format(time.RFC3339),
		ResourceType: "encrypt-resource",
		EventType:    o.EventType,
		Summary:      o.Summary,
	}
	if !o.OmitResource {
		plain, err := json.Marshal(resource)
		if err != nil {
			return envelope{}, fmt.Errorf("encode %s: %w", originalType, err)
		}
		ct, err := encryptAEAD(o.APIv3Key, o.Nonce, *o.AssociatedData, plain)
		if err != nil {
			return envelope{}, fmt.Errorf("encrypt resource: %w", err)
		}
		nb.Resource = &encryptedResource{
			OriginalType: originalType, Algorithm: "AEAD_AES_256_GCM",
			Ciphertext: ct, AssociatedData: *o.AssociatedData, Nonce: o.Nonce,
		}
	}
	b, err := json.Marshal(nb)
	if err != nil {
		return envelope{}, fmt.Errorf("encode notification: %w", err)
	}
	return envelope{id: o.ID, bytes: b}, nil
}

// signNotification returns the headers WeChat sends with a notification:
// a SHA256withRSA signature over "timestamp\nnonce\nbody\n".
func (s *Server) signNotification(body []byte, o NotifyOptions) (http.Header, error) {
	key := o.SignWith
	if key == nil {
		key = s.platformKey
	}
	serial := o.Serial
	if serial == "" {
		serial = s.publicKeyID
		if s.notifyWithCert {
			serial = s.certSerial
		}
	}
	ts := strconv.FormatInt(s.now().Add(o.TimestampShift).Unix(), 10)
	nonce := randAlnum(32)
	msg := ts + "\n" + nonce + "\n" + string(body) + "\n"
	if o.badSignature {
		msg += "tampered"
	}
	sig, err := signSHA256WithRSA(key, msg)
	if err != nil {
		return nil, err
	}
	if o.SignatureProbe {
		junk := make([]byte, 256)
		_, _ = rand.Read(junk)
		sig = SignatureProbePrefix + base64.StdEncoding.EncodeToString(junk)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "Mozilla/4.0 (paysim)")
	h.Set("Request-ID", randHex(16))
	h.Set("Wechatpay-Timestamp", ts)
	h.Set("Wechatpay-Nonce", nonce)
	h.Set("Wechatpay-Serial", serial)
	h.Set("Wechatpay-Signature", sig)
	h.Set("Wechatpay-Signature-Type", signatureType)
	return h, nil
}

// BuildNotification builds the headers and body of a payment notification
// for tx, signed and encrypted as opts say; the zero NotifyOptions give a
// genuine one. Tests use it to forge and tamper; send it with Deliver.
func (s *Server) BuildNotification(tx Transaction, opts NotifyOptions) (http.Header, []byte, error) {
	o := s.envelopeDefaults(opts)
	env, err := buildEnvelope(tx, "transaction", o)
	if err != nil {
		return nil, nil, fmt.Errorf("build notification: %w", err)
	}
	h, err := s.signNotification(env.bytes, o)
	if err != nil {
		return nil, nil, fmt.Errorf("build notification: %w", err)
	}
	body := env.bytes
	if o.TamperBody != nil {
		body = o.TamperBody(bytes.Clone(body))
	}
	return h, body, nil
}

// Deliver POSTs a notification to url and returns the HTTP status. A
// transport error or a reply slower than DeliveryTimeout returns status 0
// and the error.
func (s *Server) Deliver(ctx context.Context, url string, h http.Header, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.deliveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("deliver: %w", err)
	}
	req.Header = h.Clone()
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("deliver: %w", err)
	}
	simkit.Drain(resp.Body)
	return resp.StatusCode, nil
}

// startDeliveryLocked delivers body to url in the background: the first
// attempt with dups extra copies beside it, then retries per the schedule.
func (s *Server) startDeliveryLocked(no, url string, body []byte, dups int) {
	if s.run.ClosedLocked() {
		return
	}
	var env notificationBody
	_ = json.Unmarshal(body, &env)
	// The first attempt and its duplicates share one signature, like copies
	// of one notification sent by several WeChat servers.
	first, err := s.signNotification(body, s.notifyFaultsLocked())
	if err != nil {
		s.log.Error("paysim sign notification", "out_trade_no", no, "err", err)
		return
	}
	s.jobs[no] += 1 + dups
	s.run.Go(func() { s.deliverWithRetries(no, url, env.ID, body, first) })
	for range dups {
		s.run.Go(func() {
			defer s.finishJob(no)
			s.attempt(no, url, env.ID, body, first, 0, true)
		})
	}
}

func (s *Server) notifyFaultsLocked() NotifyOptions {
	return NotifyOptions{badSignature: s.faults.NotifyBadSignature, TimestampShift: s.faults.NotifyTimestampShift}
}

func (s *Server) deliverWithRetries(no, url, id string, body []byte, h http.Header) {
	defer s.finishJob(no)
	for n := 0; ; n++ {
		if n > 0 {
			// Retries are signed afresh: an old timestamp would fail the
			// receiver's five-minute window.
			s.mu.Lock()
			o := s.notifyFaultsLocked()
			s.mu.Unlock()
			var err error
			if h, err = s.signNotification(body, o); err != nil {
				s.log.Error("paysim sign notification", "out_trade_no", no, "err", err)
				return
			}
		}
		if s.attempt(no, url, id, body, h, n, false) {
			return
		}
		if n >= len(s.schedule) {
			s.log.Warn("paysim gave up notification", "out_trade_no", no, "notification_id", id, "attempts", n+1)
			return
		}
		t := time.NewTimer(s.schedule[n])
		select {
		case <-t.C:
		case <-s.run.Context().Done():
			t.Stop()
			return
		}
	}
}

// attempt delivers once, records the outcome and reports whether it was
// acknowledged.
func (s *Server) attempt(no, url, id string, body []byte, h http.Header, n int, dup bool) bool {
	status, err := s.Deliver(s.run.Context(), url, h, body)
	d := Delivery{NotificationID: id, Attempt: n, Duplicate: dup, Time: s.now(), Status: status}
	d.Acked = err == nil && status >= 200 && status < 300
	if err != nil {
		d.Error = err.Error()
	}
	s.log.Info("paysim notification delivery", "out_trade_no", no, "notification_id", id,
		"attempt", n, "duplicate", dup, "status", status, "acked", d.Acked)
	s.mu.Lock()
	s.deliveries[no] = append(s.deliveries[no], d)
	s.changed.Broadcast()
	s.mu.Unlock()
	return d.Acked
}

func (s *Server) finishJob(no string) {
	s.mu.Lock()
	s.jobs[no]--
	s.changed.Broadcast()
	s.mu.Unlock()
}

// Deliveries returns every delivery attempt for outTradeNo, oldest first.
func (s *Server) Deliveries(outTradeNo string) []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.deliveries[outTradeNo]...)
}

// errGaveUp means every delivery of a notification failed.
var errGaveUp = errors.New("notification was never acknowledged")

// WaitAcked waits until a notification for outTradeNo has been acknowledged
// with a 2xx. It fails when ctx ends first, or when deliveries were made and
// all of them have stopped without an acknowledgement.
func (s *Server) WaitAcked(ctx context.Context, outTradeNo string) error {
	var ds []Delivery
	var acked bool
	err := s.changed.Await(ctx, &s.mu, func() bool {
		ds = s.deliveries[outTradeNo]
		acked = slices.ContainsFunc(ds, func(d Delivery) bool { return d.Acked })
		return acked || (len(ds) > 0 && s.jobs[outTradeNo] == 0)
	})
	switch {
	case err != nil:
		return fmt.Errorf("wait acked %s: %w", outTradeNo, err)
	case acked:
		return nil
	}
	return fmt.Errorf("wait acked %s: %w after %d attempts", outTradeNo, errGaveUp, len(ds))
}

// WaitDeliveries waits until at least n delivery attempts for outTradeNo
// were recorded, and returns them all.
func (s *Server) WaitDeliveries(ctx context.Context, outTradeNo string, n int) ([]Delivery, error) {
	var ds []Delivery
	err := s.changed.Await(ctx, &s.mu, func() bool {
		ds = append([]Delivery(nil), s.deliveries[outTradeNo]...)
		return len(ds) >= n
	})
	if err != nil {
		return ds, fmt.Errorf("wait for %d deliveries of %s (have %d): %w", n, outTradeNo, len(ds), err)
	}
	return ds, nil
}
