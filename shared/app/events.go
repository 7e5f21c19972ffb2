package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/webhook"
)

// Webhook delivery: every decision inserts its event (the outbox), keyed by
// the decision, before the decision is written onto its order or refund. So
// whoever writes a decision (its winner, or anyone rolling it forward after
// a crash) has made sure its event exists, and an event is inserted once
// however often that happens. The event carries its deliveries; the winner
// tries them at once, and the dispatcher job retries what is due.

// Delivery error codes.
const (
	CodeEventNotFound      = "EVENT_NOT_FOUND"
	CodeInvalidEventID     = "INVALID_EVENT_ID"
	CodeDeliveryInProgress = "DELIVERY_IN_PROGRESS"
	CodeInvalidCursor      = "INVALID_CURSOR"
	CodeInvalidLimit       = "INVALID_LIMIT"
)

// retrySchedule is the wait before each attempt after the first, counted
// from the attempt before it: now, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
var retrySchedule = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// MaxAttempts is how many times a delivery is tried before it fails.
var MaxAttempts = len(retrySchedule) + 1

const (
	// inlineBudget bounds the attempt made right after a decision, so the
	// answer to WeChat Pay (which waits 5 s) is never late because of it.
	inlineBudget = 2 * time.Second
	// inlineGrace is when the dispatcher may first take an event up: after
	// any inline attempt has surely ended.
	inlineGrace = 20 * time.Second
	// attemptTimeout bounds one delivery by the dispatcher.
	attemptTimeout = 15 * time.Second
	// leaseTime is how long a delivery lease lasts: the attempt's timeout
	// and a margin. Its holder stops before it ends.
	leaseTime = attemptTimeout + 5*time.Second
	// maxRetryAfter caps the wait an endpoint may ask for with Retry-After.
	maxRetryAfter = 10 * time.Hour
	// historyLimit bounds the attempts kept on a delivery.
	historyLimit = 20
	// createdSweepLag keeps the created-event sweep behind orders still
	// being created.
	createdSweepLag = time.Minute
)

var eventIDPattern = regexp.MustCompile(`^evt_[0-9a-f]{24}$`)

// WebhookOptions configure delivery.
type WebhookOptions struct {
	// Sender posts webhooks; nil records events without delivering them.
	Sender WebhookSender
	// AllowPrivate accepts endpoint URLs on loopback and private addresses
	// (the local stack); the sender must agree.
	AllowPrivate bool
	// Inline makes the attempt right after a decision; the dispatcher's
	// schedule follows either way.
	Inline bool
	// Parallelism bounds the dispatcher's concurrent deliveries (default 32).
	Parallelism int
}

// eventBody is the JSON delivered: {id, type, created_at, data}.
type eventBody struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"created_at"`
	Data      eventData `json:"data"`
}

type eventData struct {
	Order  EventOrder   `json:"order"`
	Refund *EventRefund `json:"refund,omitempty"`
	Attach string       `json:"attach"`
}

// EventOrder is an order as events and the server API show it.
type EventOrder struct {
	OrderID       string         `json:"order_id"`
	AppID         string         `json:"app_id"`
	Buyer         string         `json:"buyer"`
	ProductID     string         `json:"product_id"`
	Quantity      int64          `json:"quantity"`
	TotalFen      int64          `json:"total_fen"`
	Currency      string         `json:"currency"`
	Status        order.Status   `json:"status"`
	Product       order.Snapshot `json:"product"`
	RequestID     string         `json:"request_id"`
	TransactionID string         `json:"transaction_id,omitempty"`
	CreatedAt     time.Time      `json:"created_at"`
	ExpiresAt     time.Time      `json:"expires_at"`
	PaidAt        *time.Time     `json:"paid_at,omitempty"`
}

// EventRefund is a refund as events show it.
type EventRefund struct {
	RefundID    string             `json:"refund_id"`
	OutRefundNo string             `json:"out_refund_no"`
	AmountFen   int64              `json:"amount_fen"`
	Status      order.RefundStatus `json:"status"`
	Reason      string             `json:"reason,omitempty"`
	SucceededAt *time.Time         `json:"succeeded_at,omitempty"`
}

func eventOrder(o order.Order) EventOrder {
	return EventOrder{OrderID: o.ID, AppID: o.AppID, Buyer: o.Owner, ProductID: o.ProductID, Quantity: o.Quantity,
		TotalFen: o.TotalFen, Currency: o.Currency, Status: o.Status, Product: o.Product, RequestID: o.RequestID,
		TransactionID: o.TransactionID, CreatedAt: o.CreatedAt, ExpiresAt: o.ExpiresAt, PaidAt: o.PaidAt}
}

func eventRefund(r order.Refund) *EventRefund {
	id := r.RequestID
	if id == "" {
		id = r.ID
	}
	return &EventRefund{RefundID: id, OutRefundNo: r.ID, AmountFen: r.AmountFen, Status: r.Status, Reason: r.Reason, SucceededAt: r.SucceededAt}
}

// claimEventType is the event a claimed order decision makes.
func claimEventType(s order.Status) string {
	switch s {
	case order.StatusPaid:
		return order.EventOrderPaid
	case order.StatusClosed:
		return order.EventOrderClosed
	case order.StatusException:
		return order.EventOrderException
	}
	return ""
}

// emit inserts the event of a decision once. It returns the event when this
// call inserted it, so the caller tries its deliveries once the decision is
// written; nil when it existed already (or the app has nowhere to send it).
func (a *App) emit(ctx context.Context, decisionKey, typ string, o order.Order, r *order.Refund) (*order.Event, error) {
	if a.svc == nil {
		// Service mode is off: a lone mini-program has no servers to tell.
		// In service mode every deciding function holds the service key.
		return nil, nil
	}
	now := a.now().UTC().Truncate(time.Millisecond)
	id := order.EventID(decisionKey)
	data := eventData{Order: eventOrder(o), Attach: o.Attach}
	if r != nil {
		data.Refund = eventRefund(*r)
	}
	body, err := json.Marshal(eventBody{ID: id, Type: typ, CreatedAt: now, Data: data})
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", id, err)
	}
	e := order.Event{ID: id, AppID: o.AppID, Type: typ, OrderID: o.ID, CreatedAt: now, Body: string(body),
		Deliveries: map[string]*order.Delivery{}}
	x, err := a.store.App(ctx, o.AppID)
	if err != nil && !errors.Is(err, order.ErrNotFound) {
		return nil, storeError("load app "+o.AppID, err)
	}
	for _, ep := range x.Endpoints {
		if ep.Wants(typ) {
			e.Deliveries[ep.ID] = &order.Delivery{EndpointID: ep.ID, Status: order.DeliveryPending, NextAt: now.Add(inlineGrace)}
		}
	}
	e.Summarize()
	err = a.store.InsertEvent(ctx, e)
	if errors.Is(err, order.ErrDuplicate) {
		return nil, nil
	} else if err != nil {
		return nil, storeError("insert event", err)
	}
	a.log.InfoContext(ctx, "event recorded", "event_id", id, "type", typ, "app_id", o.AppID, "order_id", o.ID, "deliveries", len(e.Deliveries))
	if !e.Pending {
		return nil, nil
	}
	return &e, nil
}

// deliverNow is the attempt right after a decision, bounded so the answer
// to the caller (WeChat Pay above all) is not late. Whatever happens is
// recorded and the dispatcher's schedule takes over.
func (a *App) deliverNow(ctx context.Context, e *order.Event) {
	if e == nil || a.hooks.Sender == nil || !a.hooks.Inline {
		return
	}
	budget := inlineBudget
	if dl, ok := ctx.Deadline(); ok {
		budget = min(budget, time.Until(dl)-time.Second)
	}
	if budget <= 100*time.Millisecond {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), budget)
	defer cancel()
	_, err := a.leased(ctx, *e, func(e order.Event) error { return a.attempt(ctx, e, nil, attemptFirst) })
	if err != nil {
		a.log.WarnContext(ctx, "first webhook attempt not recorded; the dispatcher retries", "event_id", e.ID, "err", err)
	}
}

// ensureCreated makes sure an order's order.created event exists.
func (a *App) ensureCreated(ctx context.Context, o order.Order) (*order.Event, error) {
	return a.emit(ctx, order.CreatedKey(o.ID), order.EventOrderCreated, o, nil)
}

// attemptMode says which of an event's deliveries an attempt sends.
type attemptMode int

const (
	attemptFirst     attemptMode = iota // right after the decision: those never tried
	attemptScheduled                    // the dispatcher: pending ones that are due
	attemptManual                       // a person's redelivery: every one not disabled
)

// attempt sends e's deliveries that mode selects, records each outcome and
// the next try. x is the event's app when the caller has it loaded.
func (a *App) attempt(ctx context.Context, e order.Event, x *order.App, mode attemptMode) error {
	manual := mode == attemptManual
	if x == nil {
		loaded, err := a.store.App(ctx, e.AppID)
		if err != nil && !errors.Is(err, order.ErrNotFound) {
			return storeError("load app "+e.AppID, err)
		}
		x = &loaded
	}
	now := a.now()
	type result struct {
		d   *order.Delivery
		res webhook.Result
	}
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
	)
	var changed []*order.Delivery
	for _, d := range e.Deliveries {
		switch mode {
		case attemptFirst:
			if d.Status != order.DeliveryPending || d.Attempts > 0 {
				continue
			}
		case attemptScheduled:
			if d.Status != order.DeliveryPending || d.NextAt.After(now) {
				continue
			}
		case attemptManual:
			if d.Status == order.DeliveryDisabled {
				if ep, ok := x.Endpoints[d.EndpointID]; !ok || ep.Status != order.EndpointEnabled {
					continue
				}
			}
		}
		ep, ok := x.Endpoints[d.EndpointID]
		if !ok || ep.Status != order.EndpointEnabled {
			d.Status = order.DeliveryDisabled
			changed = append(changed, d)
			continue
		}
		header, err := a.signEvent(e, ep, now)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func(d *order.Delivery, url string) {
			defer wg.Done()
			res := a.hooks.Sender.Send(ctx, url, header, []byte(e.Body))
			mu.Lock()
			results = append(results, result{d, res})
			mu.Unlock()
		}(d, ep.URL)
	}
	wg.Wait()
	for _, r := range results {
		a.record(ctx, e, x, r.d, r.res, manual)
		changed = append(changed, r.d)
	}
	if len(changed) == 0 {
		return nil
	}
	e.Summarize()
	if err := a.store.SetDeliveries(context.WithoutCancel(ctx), e, changed...); err != nil {
		return storeError("record deliveries", err)
	}
	return nil
}

// signEvent builds the Standard Webhooks headers, signed with each of the
// endpoint's valid secrets.
func (a *App) signEvent(e order.Event, ep order.Endpoint, now time.Time) (map[string][]string, error) {
	svc, err := a.service()
	if err != nil {
		return nil, err
	}
	var secrets []string
	for _, s := range ep.Secrets {
		if s.ExpiresAt != nil && !now.Before(*s.ExpiresAt) {
			continue
		}
		plain, err := svc.openSecret(s.Sealed)
		if err != nil {
			return nil, fmt.Errorf("endpoint %s: %w", ep.ID, err)
		}
		secrets = append(secrets, plain)
	}
	h, err := webhook.Headers(secrets, e.ID, now, []byte(e.Body))
	if err != nil {
		return nil, fmt.Errorf("sign event %s for %s: %w", e.ID, ep.ID, err)
	}
	return h, nil
}

// record notes one attempt's outcome on d and schedules the next one.
func (a *App) record(ctx context.Context, e order.Event, x *order.App, d *order.Delivery, res webhook.Result, manual bool) {
	now := a.now().UTC().Truncate(time.Millisecond)
	at := order.Attempt{At: now, Status: res.Status, LatencyMS: res.Latency.Milliseconds(), Manual: manual}
	if res.Err != nil {
		at.Error = res.Err.Error()
	}
	d.Attempts++
	d.History = append(d.History, at)
	if len(d.History) > historyLimit {
		d.History = d.History[len(d.History)-historyLimit:]
	}
	level := slog.LevelInfo
	switch {
	case res.OK():
		d.Status = order.DeliverySucceeded
	case res.Gone():
		d.Status = order.DeliveryDisabled
		level = slog.LevelWarn
		if err := a.store.SetEndpointStatus(ctx, e.AppID, d.EndpointID, order.EndpointDisabled, "answered 410 Gone"); err != nil {
			a.log.ErrorContext(ctx, "could not disable a webhook endpoint that answered 410", "app_id", e.AppID, "endpoint_id", d.EndpointID, "err", err)
		}
		if ep, ok := x.Endpoints[d.EndpointID]; ok {
			ep.Status = order.EndpointDisabled
			x.Endpoints[d.EndpointID] = ep
		}
	case d.Attempts >= MaxAttempts && !manual:
		d.Status = order.DeliveryFailed
		level = slog.LevelError
	default:
		level = slog.LevelWarn
		if manual && d.Status != order.DeliveryPending {
			break // a failed manual redelivery leaves a settled delivery as it was
		}
		d.Status = order.DeliveryPending
		next := nextDelay(d.Attempts)
		if (res.Status == 429 || res.Status == 503) && res.RetryAfter > next {
			next = min(res.RetryAfter, maxRetryAfter)
		}
		d.NextAt = now.Add(next)
	}
	a.log.LogAttrs(ctx, level, "webhook attempt",
		slog.String("event_id", e.ID), slog.String("type", e.Type), slog.String("app_id", e.AppID),
		slog.String("endpoint_id", d.EndpointID), slog.Int("attempt", d.Attempts), slog.Int("status", res.Status),
		slog.Int64("latency_ms", at.LatencyMS), slog.String("error", at.Error), slog.String("delivery", string(d.Status)),
		slog.Bool("manual", manual))
}

// nextDelay is the wait after the given number of attempts, with up to 10 %
// jitter so retries of many events do not arrive together.
func nextDelay(attempts int) time.Duration {
	i := min(max(attempts-1, 0), len(retrySchedule)-1)
	base := retrySchedule[i]
	return base + time.Duration(rand.Int64N(int64(base/10)+1))
}

// DispatchReport is what one dispatcher run did.
type DispatchReport struct {
	Due       int  `json:"due"`
	Attempted int  `json:"attempted"`
	Skipped   int  `json:"skipped"` // another dispatcher holds the event's lease
	Created   int  `json:"created_events_repaired"`
	Stopped   bool `json:"stopped"` // the deadline came before the work ran out
}

// DispatchJob is DispatchWebhooks reported as the other scheduled jobs
// report: the created-event repair and the deliveries as two sweeps.
func (a *App) DispatchJob(ctx context.Context) (JobReport, error) {
	start := time.Now()
	d, err := a.DispatchWebhooks(ctx)
	r := JobReport{Job: "dispatchWebhooks", Examined: d.Due, Deferred: d.Skipped, Complete: !d.Stopped && err == nil,
		DurationMS: time.Since(start).Milliseconds(), Fixes: []Fix{},
		Sweeps: []SweepReport{
			{Name: "events-created", Examined: d.Created, Fixed: d.Created, Complete: true},
			{Name: "deliveries", Examined: d.Due, Fixed: d.Attempted, Deferred: d.Skipped, Complete: !d.Stopped && err == nil},
		}}
	if d.Stopped {
		r.Stopped = "deadline"
	} else if err != nil {
		r.Stopped = "store"
	}
	return r, err
}

// DispatchWebhooks is the dispatcher job: it repairs missing order.created
// events, then attempts every delivery that is due, each event under a
// lease so two dispatchers never send it at once.
func (a *App) DispatchWebhooks(ctx context.Context) (DispatchReport, error) {
	var rep DispatchReport
	if a.svc == nil {
		return rep, nil // service mode is off: no events to deliver
	}
	n, err := a.sweepCreated(ctx)
	rep.Created = n
	if err != nil {
		a.log.WarnContext(ctx, "order.created sweep failed; the next run resumes", "err", err)
	}
	var stopAt time.Time
	if dl, ok := ctx.Deadline(); ok {
		stopAt = dl.Add(-max(2*time.Second, time.Until(dl)/10))
	}
	par := a.hooks.Parallelism
	if par <= 0 {
		par = 32
	}
	apps := map[string]*order.App{}
	var appMu sync.Mutex
	appOf := func(id string) (*order.App, error) {
		appMu.Lock()
		defer appMu.Unlock()
		if x, ok := apps[id]; ok {
			return x, nil
		}
		x, err := a.store.App(ctx, id)
		if err != nil && !errors.Is(err, order.ErrNotFound) {
			return nil, err
		}
		apps[id] = &x
		return &x, nil
	}
	for {
		if !stopAt.IsZero() && time.Until(stopAt) < leaseTime {
			rep.Stopped = true
			return rep, nil
		}
		due, err := a.store.DueEvents(ctx, a.now(), 200)
		if err != nil {
			return rep, storeError("list due events", err)
		}
		rep.Due += len(due)
		var wg sync.WaitGroup
		sem := make(chan struct{}, par)
		var mu sync.Mutex
		progressed := 0
		for _, e := range due {
			wg.Add(1)
			sem <- struct{}{}
			go func(e order.Event) {
				defer func() { <-sem; wg.Done() }()
				took, err := a.leased(ctx, e, func(e order.Event) error {
					x, err := appOf(e.AppID)
					if err != nil {
						return storeError("load app", err)
					}
					actx, cancel := context.WithTimeout(ctx, attemptTimeout)
					defer cancel()
					appMu.Lock() // the app's endpoint map is shared between goroutines
					xc := cloneApp(*x)
					appMu.Unlock()
					err = a.attempt(actx, e, &xc, attemptScheduled)
					appMu.Lock()
					*x = mergeDisabled(*x, xc)
					appMu.Unlock()
					return err
				})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					a.log.WarnContext(ctx, "webhook delivery not recorded; retried next run", "event_id", e.ID, "err", err)
				}
				if took {
					rep.Attempted++
					progressed++
				} else {
					rep.Skipped++
				}
			}(e)
		}
		wg.Wait()
		if len(due) < 200 || progressed == 0 {
			return rep, nil
		}
	}
}

func cloneApp(x order.App) order.App {
	eps := make(map[string]order.Endpoint, len(x.Endpoints))
	for k, v := range x.Endpoints {
		eps[k] = v
	}
	x.Endpoints = eps
	return x
}

// mergeDisabled carries endpoints an attempt disabled (410) into the shared
// copy, so later events of the run are not sent there.
func mergeDisabled(into, from order.App) order.App {
	for id, ep := range from.Endpoints {
		if ep.Status == order.EndpointDisabled {
			if cur, ok := into.Endpoints[id]; ok && cur.Status != order.EndpointDisabled {
				cur.Status = order.EndpointDisabled
				into.Endpoints[id] = cur
			}
		}
	}
	return into
}

// leased runs fn on e under the event's delivery lease and reports whether
// it got the lease. A lease is an insert-once key for the event's attempt
// count and a generation; its holder stops before it expires. When a
// holder died, the next generation is taken once the last one expired, and
// the event is read again so a stale copy is never delivered.
func (a *App) leased(ctx context.Context, e order.Event, fn func(order.Event) error) (bool, error) {
	version := 0
	for _, d := range e.Deliveries {
		version += d.Attempts
	}
	now := a.now()
	base := "lease:" + e.ID + ":" + strconv.Itoa(version) + ":"
	for gen := 0; gen < 1000; gen++ {
		took, err := a.store.TakeOnce(ctx, base+strconv.Itoa(gen), now.Add(leaseTime))
		if err != nil {
			return false, storeError("take delivery lease", err)
		}
		if took {
			if gen > 0 {
				fresh, err := a.store.Event(ctx, e.ID)
				if err != nil {
					return true, storeError("reload event", err)
				}
				if v := attemptsOf(fresh); v != version {
					return true, nil // someone recorded progress: nothing to do
				}
				e = fresh
			}
			return true, fn(e)
		}
		exp, err := a.store.OnceExpiry(ctx, base+strconv.Itoa(gen))
		if err != nil && !errors.Is(err, order.ErrNotFound) {
			return false, storeError("read delivery lease", err)
		}
		if err == nil && now.Before(exp) {
			return false, nil // held
		}
	}
	return false, fmt.Errorf("event %s: too many expired leases", e.ID)
}

func attemptsOf(e order.Event) int {
	n := 0
	for _, d := range e.Deliveries {
		n += d.Attempts
	}
	return n
}

// sweepCreated rolls order.created forward for orders whose creator died
// between inserting the order and its event.
func (a *App) sweepCreated(ctx context.Context) (int, error) {
	const name = "events-created"
	at, after, err := a.store.JobCursor(ctx, name)
	if err != nil {
		return 0, storeError("load cursor", err)
	}
	repaired := 0
	before := a.now().Add(-createdSweepLag)
	for range 20 {
		os, err := a.store.OrdersCreatedAfter(ctx, before, at, after, 200)
		if err != nil {
			return repaired, storeError("list orders", err)
		}
		if len(os) == 0 {
			return repaired, nil
		}
		ids := make([]string, len(os))
		for i, o := range os {
			ids[i] = order.EventID(order.CreatedKey(o.ID))
		}
		missing, err := a.store.MissingEvents(ctx, ids)
		if err != nil {
			return repaired, storeError("look up events", err)
		}
		want := map[string]bool{}
		for _, id := range missing {
			want[id] = true
		}
		for _, o := range os {
			if want[order.EventID(order.CreatedKey(o.ID))] {
				created := o
				created.Status, created.TransactionID, created.PaidAt = order.StatusNotPay, "", nil
				if _, err := a.ensureCreated(ctx, created); err != nil {
					return repaired, err
				}
				repaired++
			}
		}
		last := os[len(os)-1]
		at, after = last.CreatedAt, last.ID
		if err := a.store.SetJobCursor(ctx, name, at, after); err != nil {
			return repaired, storeError("save cursor", err)
		}
		if len(os) < 200 {
			return repaired, nil
		}
	}
	return repaired, nil
}

// EventView is an event as its app (or the operator) sees it.
type EventView struct {
	ID         string            `json:"id"`
	Type       string            `json:"type"`
	AppID      string            `json:"app_id"`
	OrderID    string            `json:"order_id"`
	CreatedAt  time.Time         `json:"created_at"`
	Data       json.RawMessage   `json:"data"`
	Deliveries []*order.Delivery `json:"deliveries"`
}

func viewEvent(e order.Event) EventView {
	var b struct {
		Data json.RawMessage `json:"data"`
	}
	_ = json.Unmarshal([]byte(e.Body), &b) // written by emit; always valid
	ds := make([]*order.Delivery, 0, len(e.Deliveries))
	for _, d := range e.Deliveries {
		ds = append(ds, d)
	}
	sortDeliveries(ds)
	return EventView{ID: e.ID, Type: e.Type, AppID: e.AppID, OrderID: e.OrderID, CreatedAt: e.CreatedAt, Data: b.Data, Deliveries: ds}
}

func sortDeliveries(ds []*order.Delivery) {
	for i := 1; i < len(ds); i++ {
		for j := i; j > 0 && ds[j].EndpointID < ds[j-1].EndpointID; j-- {
			ds[j], ds[j-1] = ds[j-1], ds[j]
		}
	}
}

// EventPage is a page of events, newest first; Next continues it.
type EventPage struct {
	Events []EventView `json:"events"`
	Next   string      `json:"next,omitempty"`
}

// ListEvents lists an app's events newest first, limit at a time (1-100,
// default 20), continuing after the cursor a previous page returned. A
// non-empty orderID keeps that order's events.
// Errors: INVALID_CURSOR, INVALID_LIMIT, INVALID_ORDER_ID, STORE_UNAVAILABLE.
func (a *App) ListEvents(ctx context.Context, appID, orderID, cursor string, limit int) (EventPage, error) {
	if limit == 0 {
		limit = 20
	}
	if limit < 1 || limit > 100 {
		return EventPage{}, Errorf(KindInvalid, CodeInvalidLimit, "limit must be from 1 to 100")
	}
	if orderID != "" && !orderIDPattern.MatchString(orderID) {
		return EventPage{}, Errorf(KindInvalid, CodeInvalidOrderID, "order_id must be a payfn order id")
	}
	var beforeAt time.Time
	var beforeID string
	if cursor != "" {
		ms, id, ok := strings.Cut(cursor, ".")
		n, err := strconv.ParseInt(ms, 10, 64)
		if !ok || err != nil || !eventIDPattern.MatchString(id) {
			return EventPage{}, Errorf(KindInvalid, CodeInvalidCursor, "cursor must be the next value of a previous page")
		}
		beforeAt, beforeID = time.UnixMilli(n).UTC(), id
	}
	es, err := a.store.EventsOf(ctx, appID, orderID, beforeAt, beforeID, limit)
	if err != nil {
		return EventPage{}, storeError("list events", err)
	}
	page := EventPage{Events: make([]EventView, len(es))}
	for i, e := range es {
		page.Events[i] = viewEvent(e)
	}
	if len(es) == limit {
		last := es[len(es)-1]
		page.Next = strconv.FormatInt(last.CreatedAt.UnixMilli(), 10) + "." + last.ID
	}
	return page, nil
}

// GetEvent returns one of the app's events with its deliveries.
// Errors: INVALID_EVENT_ID, EVENT_NOT_FOUND, STORE_UNAVAILABLE.
func (a *App) GetEvent(ctx context.Context, appID, eventID string) (EventView, error) {
	e, err := a.appEvent(ctx, appID, eventID)
	if err != nil {
		return EventView{}, err
	}
	return viewEvent(e), nil
}

// appEvent loads eventID and hides it unless it is appID's.
func (a *App) appEvent(ctx context.Context, appID, eventID string) (order.Event, error) {
	if !eventIDPattern.MatchString(eventID) {
		return order.Event{}, Errorf(KindInvalid, CodeInvalidEventID, "event ids look like evt_ and 24 hex digits")
	}
	e, err := a.store.Event(ctx, eventID)
	if errors.Is(err, order.ErrNotFound) || (err == nil && e.AppID != appID) {
		return order.Event{}, Errorf(KindNotFound, CodeEventNotFound, "no event %s", eventID)
	} else if err != nil {
		return order.Event{}, storeError("load event", err)
	}
	return e, nil
}

// Redeliver sends one of the app's events again now, with the same
// webhook-id, to every enabled endpoint that wanted it (and to endpoints
// added since that want its type), and returns the outcome.
// Errors: INVALID_EVENT_ID, EVENT_NOT_FOUND, DELIVERY_IN_PROGRESS,
// SERVICE_MODE_NOT_CONFIGURED, STORE_UNAVAILABLE.
func (a *App) Redeliver(ctx context.Context, appID, eventID string) (EventView, error) {
	if _, err := a.service(); err != nil {
		return EventView{}, err
	}
	e, err := a.appEvent(ctx, appID, eventID)
	if err != nil {
		return EventView{}, err
	}
	x, err := a.loadApp(ctx, appID)
	if err != nil && ErrorOf(err).Code != CodeAppNotFound {
		return EventView{}, err
	}
	if e.Deliveries == nil {
		e.Deliveries = map[string]*order.Delivery{}
	}
	for _, ep := range x.Endpoints {
		if _, ok := e.Deliveries[ep.ID]; !ok && ep.Wants(e.Type) {
			e.Deliveries[ep.ID] = &order.Delivery{EndpointID: ep.ID, Status: order.DeliveryPending, NextAt: a.now()}
		}
	}
	var out order.Event
	took, err := a.leased(ctx, e, func(e order.Event) error {
		if a.hooks.Sender == nil {
			return Errorf(KindUnavailable, CodeServiceNotEnabled, "webhook delivery is not configured here")
		}
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		defer cancel()
		if err := a.attempt(actx, e, &x, attemptManual); err != nil {
			return err
		}
		out = e
		return nil
	})
	if err != nil {
		return EventView{}, err
	}
	if !took {
		return EventView{}, Errorf(KindConflict, CodeDeliveryInProgress, "event %s is being delivered right now; try again in a minute", eventID)
	}
	fresh, err := a.store.Event(ctx, out.ID)
	if err != nil {
		return EventView{}, storeError("reload event", err)
	}
	return viewEvent(fresh), nil
}
