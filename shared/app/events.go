package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"sort"
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

// emit inserts the event of a decision once. Its deliveries are queued
// first, with ids derived from the event's, so a crash between the two
// leaves deliveries waiting for an event that the decision's roll-forward
// inserts, never an event without its deliveries. It returns the
// deliveries when this call inserted the event, for the caller to try once
// the decision is written.
func (a *App) emit(ctx context.Context, decisionKey, typ string, o order.Order, r *order.Refund) (*queued, error) {
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
	x, err := a.store.App(ctx, o.AppID)
	if err != nil && !errors.Is(err, order.ErrNotFound) {
		return nil, storeError("load app "+o.AppID, err)
	}
	var ds []order.Delivery
	for _, ep := range x.SortedEndpoints() {
		if ep.Wants(typ) {
			ds = append(ds, order.Delivery{ID: order.DeliveryID(id, ep.ID), EventID: id, AppID: o.AppID, EndpointID: ep.ID,
				Type: typ, Body: string(body), Status: order.DeliveryPending, NextAt: now.Add(inlineGrace), CreatedAt: now})
		}
	}
	if err := a.store.InsertDeliveries(ctx, ds); err != nil {
		return nil, storeError("queue deliveries", err)
	}
	err = a.store.InsertEvent(ctx, order.Event{ID: id, AppID: o.AppID, Type: typ, OrderID: o.ID, CreatedAt: now, Body: string(body)})
	if errors.Is(err, order.ErrDuplicate) {
		return nil, nil
	} else if err != nil {
		return nil, storeError("insert event", err)
	}
	a.log.InfoContext(ctx, "event recorded", "event_id", id, "type", typ, "app_id", o.AppID, "order_id", o.ID, "deliveries", len(ds))
	if len(ds) == 0 {
		return nil, nil
	}
	return &queued{deliveries: ds, app: x}, nil
}

// queued is what a decision's winner delivers at once: its event's
// deliveries and their app, as emit loaded it (deliverNow needs no second
// read of the app).
type queued struct {
	deliveries []order.Delivery
	app        order.App
}

// deliverNow is the attempt right after a decision, bounded so the answer
// to the caller (WeChat Pay above all) is not late. Whatever happens is
// recorded and the dispatcher's schedule takes over.
func (a *App) deliverNow(ctx context.Context, q *queued) {
	if q == nil || a.hooks.Sender == nil || !a.hooks.Inline {
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
	if _, err := a.deliverBatch(ctx, q.deliveries, &q.app, attemptFirst); err != nil {
		a.log.WarnContext(ctx, "first webhook attempt not recorded; the dispatcher retries", "event_id", q.deliveries[0].EventID, "err", err)
	}
}

// ensureCreated makes sure an order's order.created event exists.
func (a *App) ensureCreated(ctx context.Context, o order.Order) (*queued, error) {
	return a.emit(ctx, order.CreatedKey(o.ID), order.EventOrderCreated, o, nil)
}

// attemptMode says why a delivery is attempted.
type attemptMode int

const (
	attemptFirst     attemptMode = iota // right after the decision
	attemptScheduled                    // the dispatcher, when it is due
	attemptManual                       // a person's redelivery
)

// deliverBatch leases the deliveries (one round trip), sends those it got
// concurrently, and records the outcomes. It returns how many it sent.
// x is the deliveries' app (they share one).
func (a *App) deliverBatch(ctx context.Context, ds []order.Delivery, x *order.App, mode attemptMode) (int, error) {
	keys := make([]string, len(ds))
	for i, d := range ds {
		keys[i] = leaseKey(d, 0)
	}
	taken, err := a.store.TakeOnceMany(ctx, keys, a.now().Add(leaseTime))
	if err != nil {
		return 0, storeError("take delivery leases", err)
	}
	var mine []order.Delivery
	for i, d := range ds {
		if taken[i] {
			mine = append(mine, d)
		} else if mode == attemptScheduled {
			// Held, or its holder died: the slow path checks the lease's
			// expiry and rereads the delivery before sending it.
			if d2, ok, err := a.takeExpiredLease(ctx, d); err != nil {
				a.log.WarnContext(ctx, "delivery lease unreadable; retried next run", "delivery", d.ID, "err", err)
			} else if ok {
				mine = append(mine, d2)
			}
		}
	}
	a.sendAll(ctx, mine, x, mode)
	if err := a.store.RecordDeliveries(context.WithoutCancel(ctx), mine); err != nil {
		// The leases expire and a later run sends these again, with the
		// same webhook-ids: at least once, never lost.
		return len(mine), storeError("record deliveries", err)
	}
	return len(mine), nil
}

// takeExpiredLease takes the next generation of d's lease once the last
// one has expired, and returns d as stored now (false when someone else
// holds it or already moved it on).
func (a *App) takeExpiredLease(ctx context.Context, d order.Delivery) (order.Delivery, bool, error) {
	now := a.now()
	for gen := 0; gen < 100; gen++ {
		exp, err := a.store.OnceExpiry(ctx, leaseKey(d, gen))
		switch {
		case errors.Is(err, order.ErrNotFound):
			// Free (never taken, or purged after it expired): take it.
		case err != nil:
			return d, false, storeError("read delivery lease", err)
		case now.Before(exp):
			return d, false, nil // held
		default:
			continue // expired: its holder died; try the next generation
		}
		took, err := a.store.TakeOnce(ctx, leaseKey(d, gen), now.Add(leaseTime))
		if err != nil || !took {
			return d, false, err
		}
		fresh, err := a.store.Delivery(ctx, d.ID)
		if errors.Is(err, order.ErrNotFound) {
			return d, false, nil // settled meanwhile
		} else if err != nil {
			return d, false, storeError("reload delivery", err)
		}
		if fresh.Attempts != d.Attempts {
			return d, false, nil // someone recorded progress
		}
		return fresh, true, nil
	}
	return d, false, fmt.Errorf("delivery %s: too many expired leases", d.ID)
}

// leaseKey names a delivery's lease: per attempt count, so every attempt
// has its own, and per generation, so a dead holder's lease is followed by
// the next once it expires. Its holder stops before it expires.
func leaseKey(d order.Delivery, gen int) string {
	return "lease:" + d.ID + ":" + strconv.Itoa(d.Attempts) + ":" + strconv.Itoa(gen)
}

// sendAll sends each delivery (concurrently, bounded) and notes the
// outcome on it.
func (a *App) sendAll(ctx context.Context, ds []order.Delivery, x *order.App, mode attemptMode) {
	par := a.hooks.Parallelism
	if par <= 0 {
		par = 32
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, par)
	for i := range ds {
		d := &ds[i]
		ep, ok := x.Endpoints[d.EndpointID]
		if !ok || ep.Status != order.EndpointEnabled {
			d.Status = order.DeliveryDisabled
			continue
		}
		now := a.now()
		header, err := a.signEvent(d, ep, now)
		if err != nil {
			a.log.ErrorContext(ctx, "cannot sign a webhook; the delivery waits", "delivery", d.ID, "err", err)
			d.Attempts++
			d.NextAt = now.Add(nextDelay(d.Attempts))
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(url string) {
			defer func() { <-sem; wg.Done() }()
			res := a.hooks.Sender.Send(ctx, url, header, []byte(d.Body))
			mu.Lock()
			defer mu.Unlock()
			a.record(ctx, x, d, res, mode == attemptManual)
		}(ep.URL)
	}
	wg.Wait()
}

// signEvent builds the Standard Webhooks headers, signed with each of the
// endpoint's valid secrets.
func (a *App) signEvent(d *order.Delivery, ep order.Endpoint, now time.Time) (map[string][]string, error) {
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
	h, err := webhook.Headers(secrets, d.EventID, now, []byte(d.Body))
	if err != nil {
		return nil, fmt.Errorf("sign event %s for %s: %w", d.EventID, ep.ID, err)
	}
	return h, nil
}

// record notes one attempt's outcome on d and schedules the next one. The
// caller holds the lock guarding x.
func (a *App) record(ctx context.Context, x *order.App, d *order.Delivery, res webhook.Result, manual bool) {
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
		if err := a.store.SetEndpointStatus(ctx, d.AppID, d.EndpointID, order.EndpointDisabled, "answered 410 Gone"); err != nil {
			a.log.ErrorContext(ctx, "could not disable a webhook endpoint that answered 410", "app_id", d.AppID, "endpoint_id", d.EndpointID, "err", err)
		}
		if ep, ok := x.Endpoints[d.EndpointID]; ok {
			ep.Status = order.EndpointDisabled
			x.Endpoints[d.EndpointID] = ep
		}
	case manual && d.Status != order.DeliveryPending:
		level = slog.LevelWarn // a failed redelivery leaves a settled delivery as it was
	case d.Attempts >= MaxAttempts:
		d.Status = order.DeliveryFailed
		level = slog.LevelError
		a.count(ctx, d.AppID, MetricWebhooksAbandoned, 1)
	default:
		level = slog.LevelWarn
		d.Status = order.DeliveryPending
		next := nextDelay(d.Attempts)
		if (res.Status == 429 || res.Status == 503) && res.RetryAfter > next {
			next = min(res.RetryAfter, maxRetryAfter)
		}
		d.NextAt = now.Add(next)
	}
	a.countAttempt(ctx, d.AppID, res)
	a.log.LogAttrs(ctx, level, "webhook attempt",
		slog.String("event_id", d.EventID), slog.String("type", d.Type), slog.String("app_id", d.AppID),
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
	Skipped   int  `json:"skipped"` // another dispatcher holds the delivery's lease
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

// dispatchPage is how many due deliveries the dispatcher takes at a time.
const dispatchPage = 200

// DispatchWebhooks is the dispatcher job: it repairs missing order.created
// events, then attempts every delivery that is due, each under a lease so
// two dispatchers (or a dispatcher and an inline attempt) never send it at
// once.
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
	apps := map[string]*order.App{}
	for {
		if !stopAt.IsZero() && time.Until(stopAt) < leaseTime {
			rep.Stopped = true
			return rep, nil
		}
		due, err := a.store.DueDeliveries(ctx, a.now(), dispatchPage)
		if err != nil {
			return rep, storeError("list due deliveries", err)
		}
		rep.Due += len(due)
		byApp := map[string][]order.Delivery{}
		for _, d := range due {
			byApp[d.AppID] = append(byApp[d.AppID], d)
		}
		sent := 0
		for appID, ds := range byApp {
			x, ok := apps[appID]
			if !ok {
				loaded, err := a.store.App(ctx, appID)
				if err != nil && !errors.Is(err, order.ErrNotFound) {
					return rep, storeError("load app "+appID, err)
				}
				x = &loaded
				apps[appID] = x
			}
			actx, cancel := context.WithTimeout(ctx, attemptTimeout)
			n, err := a.deliverBatch(actx, ds, x, attemptScheduled)
			cancel()
			sent += n
			rep.Skipped += len(ds) - n
			if err != nil {
				a.log.WarnContext(ctx, "webhook deliveries not recorded; retried after their leases expire", "app_id", appID, "err", err)
			}
		}
		rep.Attempted += sent
		if len(due) < dispatchPage || sent == 0 {
			return rep, nil
		}
	}
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

// EventView is an event as its app (or the operator) sees it, with its
// deliveries and their attempts.
type EventView struct {
	ID         string           `json:"id"`
	Type       string           `json:"type"`
	AppID      string           `json:"app_id"`
	OrderID    string           `json:"order_id"`
	CreatedAt  time.Time        `json:"created_at"`
	Data       json.RawMessage  `json:"data"`
	Deliveries []order.Delivery `json:"deliveries"`
}

func (a *App) viewEvent(ctx context.Context, e order.Event) (EventView, error) {
	var b struct {
		Data json.RawMessage `json:"data"`
	}
	_ = json.Unmarshal([]byte(e.Body), &b) // written by emit; always valid
	ds, err := a.store.Deliveries(ctx, e.ID)
	if err != nil {
		return EventView{}, storeError("list deliveries", err)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].EndpointID < ds[j].EndpointID })
	if ds == nil {
		ds = []order.Delivery{}
	}
	v := EventView{ID: e.ID, Type: e.Type, AppID: e.AppID, OrderID: e.OrderID, CreatedAt: e.CreatedAt, Data: b.Data, Deliveries: ds}
	return v, nil
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
	if orderID != "" && !validOrderID(orderID) {
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
		if page.Events[i], err = a.viewEvent(ctx, e); err != nil {
			return EventPage{}, err
		}
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
	return a.viewEvent(ctx, e)
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
// webhook-id, to every enabled endpoint that wants it (its earlier
// deliveries, and endpoints added since), and returns the outcome. A
// delivery still pending counts the attempt and settles on success.
// Errors: INVALID_EVENT_ID, EVENT_NOT_FOUND, DELIVERY_IN_PROGRESS,
// SERVICE_MODE_NOT_CONFIGURED, STORE_UNAVAILABLE.
func (a *App) Redeliver(ctx context.Context, appID, eventID string) (EventView, error) {
	if _, err := a.service(); err != nil {
		return EventView{}, err
	}
	if a.hooks.Sender == nil {
		return EventView{}, Errorf(KindUnavailable, CodeServiceNotEnabled, "webhook delivery is not configured here")
	}
	e, err := a.appEvent(ctx, appID, eventID)
	if err != nil {
		return EventView{}, err
	}
	x, err := a.loadApp(ctx, appID)
	if err != nil {
		return EventView{}, err
	}
	known, err := a.store.Deliveries(ctx, e.ID)
	if err != nil {
		return EventView{}, storeError("list deliveries", err)
	}
	byEndpoint := map[string]order.Delivery{}
	for _, d := range known {
		if prev, ok := byEndpoint[d.EndpointID]; !ok || prev.Status != order.DeliveryPending {
			byEndpoint[d.EndpointID] = d
		}
	}
	now := a.now().UTC().Truncate(time.Millisecond)
	var ds []order.Delivery
	for _, ep := range x.SortedEndpoints() {
		d, ok := byEndpoint[ep.ID]
		switch {
		case ok && ep.Status == order.EndpointEnabled:
			d.Body = e.Body
			ds = append(ds, d)
		case !ok && ep.Wants(e.Type):
			ds = append(ds, order.Delivery{ID: order.DeliveryID(e.ID, ep.ID), EventID: e.ID, AppID: e.AppID, EndpointID: ep.ID,
				Type: e.Type, Body: e.Body, Status: order.DeliveryFailed, NextAt: now, CreatedAt: now})
		}
	}
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	n, err := a.deliverBatch(ctx, ds, &x, attemptManual)
	if err != nil {
		return EventView{}, err
	}
	if n < len(ds) {
		return EventView{}, Errorf(KindConflict, CodeDeliveryInProgress, "event %s is being delivered right now; try again in a minute", eventID)
	}
	return a.viewEvent(ctx, e)
}
