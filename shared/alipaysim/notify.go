package alipaysim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/payfn/payfn/shared/internal/simkit"
)

// Content types of notifications: the ordinary one and the legacy one real
// Alipay notifications have carried (Options.LegacyNotifyContentType).
const (
	NotifyContentType       = "application/x-www-form-urlencoded; charset=utf-8"
	LegacyNotifyContentType = "application/x-www-form-urlencoded; text/html; charset=UTF-8"
)

// Delivery is one attempt to deliver a notification.
type Delivery struct {
	NotifyID string    `json:"notify_id"`
	Attempt  int       `json:"attempt"`          // 0 is the first try, then retries
	Manual   bool      `json:"manual,omitempty"` // sent by Resend
	Time     time.Time `json:"time"`
	Status   int       `json:"status"`         // 0 on a transport error or timeout
	Body     string    `json:"body,omitempty"` // the answer, cut at 256 bytes
	Acked    bool      `json:"acked"`          // status 200 and body "success"
	Error    string    `json:"error,omitempty"`
}

// Notification is one asynchronous notification (one notify_id) and its
// delivery history.
type Notification struct {
	NotifyID    string            `json:"notify_id"`
	OutTradeNo  string            `json:"out_trade_no"`
	TradeStatus string            `json:"trade_status"`
	URL         string            `json:"url"`
	Params      map[string]string `json:"params"` // the signed form as sent
	CreatedAt   time.Time         `json:"created_at"`
	Dropped     bool              `json:"dropped,omitempty"` // Faults.DropNotifications: never sent
	Deliveries  []Delivery        `json:"deliveries"`
}

type notification struct {
	Notification
	form url.Values
}

func newNotifyID(now time.Time) string {
	return now.In(cst).Format("20060102") + "00222" + randDigits(21)
}

// tradeNotifyParams are the unsigned parameters of a trade_status_sync
// notification for t in status; empty values are left out, as Alipay leaves
// them out (smartwalle/alipay would sign "k=" for an empty one).
func (s *Server) tradeNotifyParams(t *TradeState, status string) url.Values {
	p := url.Values{}
	set := func(k, v string) {
		if v != "" {
			p.Set(k, v)
		}
	}
	now := s.now()
	set("notify_time", fmtTime(now))
	set("notify_type", "trade_status_sync")
	set("app_id", s.appID)
	set("auth_app_id", s.appID)
	set("charset", "utf-8")
	set("version", "1.0")
	set("sign_type", "RSA2")
	set("trade_no", t.TradeNo)
	set("out_trade_no", t.OutTradeNo)
	set("buyer_id", t.BuyerID)
	set("buyer_open_id", t.BuyerOpenID)
	set("buyer_logon_id", t.BuyerLogonID)
	set("seller_id", s.sellerID)
	set("trade_status", status)
	set("total_amount", yuan(t.TotalFen))
	if !t.PaidAt.IsZero() {
		set("receipt_amount", yuan(t.TotalFen))
		set("invoice_amount", yuan(t.TotalFen))
		set("buyer_pay_amount", yuan(t.TotalFen))
		set("point_amount", "0.00")
		set("gmt_payment", fmtTime(t.PaidAt))
		set("fund_bill_list", `[{"amount":"`+yuan(t.TotalFen)+`","fundChannel":"ALIPAYACCOUNT"}]`)
	}
	set("gmt_create", fmtTime(t.CreatedAt))
	if status == StatusClosed || status == StatusFinished {
		set("gmt_close", fmtTime(t.ClosedAt))
	}
	set("subject", t.Subject)
	set("body", t.Body)
	set("passback_params", t.PassbackParams)
	return p
}

// SignedNotification returns a copy of params signed as Alipay signs a
// notification: sign_type defaults to RSA2, and sign covers every other
// parameter except sign and sign_type whose value is not empty, sorted by
// key, "k=v" joined with "&", RSA2 with the simulator's Alipay key. Tests
// use it to forge hostile variations that carry a genuine signature.
func (s *Server) SignedNotification(params url.Values) url.Values {
	p := url.Values{}
	for k, vs := range params {
		p[k] = append([]string(nil), vs...)
	}
	if p.Get("sign_type") == "" {
		p.Set("sign_type", "RSA2")
	}
	sign, _ := rsa2Sign(s.keys.alipayKey, []byte(signContent(p, "sign", "sign_type"))) // cannot fail with a valid key
	p.Set("sign", sign)
	return p
}

// Sign returns the Base64 RSA2 signature of content with the simulator's
// Alipay key (the "sign" of a reply is Sign over the reply object's bytes).
func (s *Server) Sign(content []byte) (string, error) {
	return rsa2Sign(s.keys.alipayKey, content)
}

// NotificationParams returns the unsigned parameters of a genuine
// notification for the trade's current state (by trade_no or out_trade_no),
// with a fresh notify_id, for tests to alter and sign with
// SignedNotification.
func (s *Server) NotificationParams(no string) (url.Values, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.findAnyLocked(no)
	if t == nil {
		return nil, fmt.Errorf("notification params %s: %w", no, ErrTradeNotExist)
	}
	p := s.tradeNotifyParams(t, t.Status)
	p.Set("notify_id", newNotifyID(s.now()))
	return p, nil
}

// notifyLocked signs params (adding the notify_id) and delivers them to the
// trade's notify_url in the background with Alipay's retries.
func (s *Server) notifyLocked(t *TradeState, params url.Values) {
	if t.NotifyURL == "" {
		s.log.Info("alipaysim no notify_url, nothing sent", "out_trade_no", t.OutTradeNo)
		return
	}
	now := s.now()
	params.Set("notify_id", newNotifyID(now))
	form := s.SignedNotification(params)
	n := &notification{
		Notification: Notification{
			NotifyID: form.Get("notify_id"), OutTradeNo: t.OutTradeNo, TradeStatus: form.Get("trade_status"),
			URL: t.NotifyURL, Params: flatten(form), CreatedAt: now, Dropped: s.faults.DropNotifications,
			Deliveries: []Delivery{},
		},
		form: form,
	}
	s.notifications[n.NotifyID] = n
	s.notifyOrder = append(s.notifyOrder, n.NotifyID)
	if n.Dropped || s.run.ClosedLocked() {
		s.changed.Broadcast()
		return
	}
	s.jobs[t.OutTradeNo]++
	s.run.Go(func() { s.deliverWithRetries(n) })
}

func flatten(v url.Values) map[string]string {
	m := make(map[string]string, len(v))
	for k := range v {
		m[k] = v.Get(k)
	}
	return m
}

// Deliver POSTs form to url as Alipay posts a notification and reports the
// outcome; it records nothing. A notification counts as acknowledged when
// the answer is status 200 with the body "success" (surrounding white space
// ignored).
func (s *Server) Deliver(ctx context.Context, url string, form url.Values) Delivery {
	d := Delivery{NotifyID: form.Get("notify_id"), Time: s.now()}
	ctx, cancel := context.WithTimeout(ctx, s.deliveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(form.Encode()))
	if err != nil {
		d.Error = err.Error()
		return d
	}
	ct := NotifyContentType
	if s.legacyContentType {
		ct = LegacyNotifyContentType
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("User-Agent", "Mozilla/4.0 (alipaysim)")
	resp, err := s.hc.Do(req)
	if err != nil {
		d.Error = err.Error()
		return d
	}
	defer simkit.Drain(resp.Body)
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	d.Status, d.Body = resp.StatusCode, string(b)
	d.Acked = resp.StatusCode == http.StatusOK && strings.TrimSpace(d.Body) == "success"
	return d
}

func (s *Server) deliverWithRetries(n *notification) {
	defer s.finishJob(n.OutTradeNo)
	for i := 0; ; i++ {
		if s.attempt(n, i, false).Acked {
			return
		}
		if i >= len(s.schedule) {
			s.log.Warn("alipaysim gave up notification", "out_trade_no", n.OutTradeNo, "notify_id", n.NotifyID, "tries", i+1)
			return
		}
		t := time.NewTimer(s.schedule[i])
		select {
		case <-t.C:
		case <-s.run.Context().Done():
			t.Stop()
			return
		}
	}
}

// attempt delivers n once (the same signed form every time, so notify_id
// stays constant across retries) and records the outcome.
func (s *Server) attempt(n *notification, i int, manual bool) Delivery {
	d := s.Deliver(s.run.Context(), n.URL, n.form)
	d.Attempt, d.Manual = i, manual
	s.log.Info("alipaysim notification delivery", "out_trade_no", n.OutTradeNo, "notify_id", n.NotifyID,
		"attempt", i, "status", d.Status, "acked", d.Acked)
	s.mu.Lock()
	n.Deliveries = append(n.Deliveries, d)
	s.changed.Broadcast()
	s.mu.Unlock()
	return d
}

func (s *Server) finishJob(outTradeNo string) {
	s.mu.Lock()
	s.jobs[outTradeNo]--
	s.changed.Broadcast()
	s.mu.Unlock()
}

// Resend delivers a notification once more, now (the merchant's "resend"
// in Alipay's console), and records it as a manual delivery. It fails with
// ErrNotifyUnknown.
func (s *Server) Resend(ctx context.Context, notifyID string) (Delivery, error) {
	s.mu.Lock()
	n := s.notifications[notifyID]
	attempts := 0
	if n != nil {
		attempts = len(n.Deliveries)
	}
	s.mu.Unlock()
	if n == nil {
		return Delivery{}, fmt.Errorf("resend %s: %w", notifyID, ErrNotifyUnknown)
	}
	if err := ctx.Err(); err != nil {
		return Delivery{}, err
	}
	return s.attempt(n, attempts, true), nil
}

// Notifications returns the notifications of a trade (by out_trade_no or
// trade_no; every trade when no is empty), oldest first, with their
// deliveries.
func (s *Server) Notifications(no string) []Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notificationsLocked(no)
}

func (s *Server) notificationsLocked(no string) []Notification {
	outTradeNo := no
	if t := s.findLocked("", no); t != nil {
		outTradeNo = t.OutTradeNo
	}
	out := []Notification{}
	for _, id := range s.notifyOrder {
		n := s.notifications[id]
		if no == "" || n.OutTradeNo == outTradeNo {
			c := n.Notification
			c.Deliveries = append([]Delivery{}, n.Deliveries...)
			c.Params = flatten(n.form)
			out = append(out, c)
		}
	}
	return out
}

// Deliveries returns every delivery attempt for a trade's notifications
// (by out_trade_no), oldest notification first.
func (s *Server) Deliveries(outTradeNo string) []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deliveriesLocked(outTradeNo)
}

func (s *Server) deliveriesLocked(outTradeNo string) []Delivery {
	var out []Delivery
	for _, n := range s.notificationsLocked(outTradeNo) {
		out = append(out, n.Deliveries...)
	}
	return out
}

var errGaveUp = errors.New("notification was never acknowledged")

// WaitAcked waits until a notification for outTradeNo has been
// acknowledged. It fails when ctx ends first, or when deliveries were made
// and all of them have stopped without an acknowledgement.
func (s *Server) WaitAcked(ctx context.Context, outTradeNo string) error {
	var ds []Delivery
	var acked bool
	err := s.changed.Await(ctx, &s.mu, func() bool {
		ds = s.deliveriesLocked(outTradeNo)
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
// were recorded and returns them all.
func (s *Server) WaitDeliveries(ctx context.Context, outTradeNo string, n int) ([]Delivery, error) {
	var ds []Delivery
	err := s.changed.Await(ctx, &s.mu, func() bool {
		ds = s.deliveriesLocked(outTradeNo)
		return len(ds) >= n
	})
	if err != nil {
		return ds, fmt.Errorf("wait for %d deliveries of %s (have %d): %w", n, outTradeNo, len(ds), err)
	}
	return ds, nil
}

func sortTrades(ts []TradeState) {
	sort.Slice(ts, func(i, j int) bool {
		if !ts[i].CreatedAt.Equal(ts[j].CreatedAt) {
			return ts[i].CreatedAt.Before(ts[j].CreatedAt)
		}
		return ts[i].OutTradeNo < ts[j].OutTradeNo
	})
}
