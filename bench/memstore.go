package bench

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
)

// memStore is an in-memory app.Store with the semantics the benchmarked
// paths rely on (unique ledger rows and claims, idempotent ApplyClaim). It
// exists so that a benchmark can measure a use case's own CPU without a
// database round trip; it is not a product store and is never linked into a
// function. Methods the benchmarks never reach answer errNotBenchmarked.
type memStore struct {
	mu       sync.Mutex
	products map[string]order.Product
	orders   map[string]order.Order
	requests map[string]string
	payments map[string]order.Payment
	claims   map[string]order.Claim
}

var errNotBenchmarked = errors.New("bench memStore: not used by the benchmarks")

var _ app.Store = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{
		products: map[string]order.Product{},
		orders:   map[string]order.Order{},
		requests: map[string]string{},
		payments: map[string]order.Payment{},
		claims:   map[string]order.Claim{},
	}
}

// put stores o as it is, replacing any order with its id, and forgets the
// ledger rows and claims of that order: the order is as good as new. The
// benchmarks call it to reuse a small pool of orders and notifications.
func (s *memStore) put(o order.Order, txID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.orders[o.ID] = o
	delete(s.claims, order.SettleKey(o.ID))
	delete(s.payments, txID)
}

func (s *memStore) Product(_ context.Context, appID, id string) (order.Product, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.products[order.ProductKey(appID, id)]
	if !ok {
		return order.Product{}, order.ErrNotFound
	}
	return p, nil
}

func (s *memStore) InsertOrder(_ context.Context, o order.Order) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.orders[o.ID]; ok {
		return order.ErrDuplicate
	}
	if _, ok := s.requests[o.RequestKey()]; ok {
		return order.ErrDuplicate
	}
	s.orders[o.ID] = o
	s.requests[o.RequestKey()] = o.ID
	return nil
}

func (s *memStore) Order(_ context.Context, id string) (order.Order, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[id]
	if !ok {
		return order.Order{}, order.ErrNotFound
	}
	return o, nil
}

func (s *memStore) OrderByRequest(_ context.Context, appID, owner, requestID string) (order.Order, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.requests[order.AppRequestKey(appID, owner, requestID)]
	if !ok {
		return order.Order{}, order.ErrNotFound
	}
	return s.orders[id], nil
}

func (s *memStore) SetPrepay(_ context.Context, orderID, prepayID string, expiresAt time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[orderID]
	if !ok {
		return order.ErrNotFound
	}
	o.PrepayID, o.PrepayExpiresAt = prepayID, expiresAt
	s.orders[orderID] = o
	return nil
}

func (s *memStore) RecordPayment(_ context.Context, p order.Payment) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.payments[p.TransactionID]; ok {
		return order.ErrDuplicate
	}
	s.payments[p.TransactionID] = p
	return nil
}

func (s *memStore) Payments(_ context.Context, outTradeNo string) ([]order.Payment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []order.Payment
	for _, p := range s.payments {
		if p.OutTradeNo == outTradeNo {
			out = append(out, p)
		}
	}
	return out, nil
}

func (s *memStore) Claim(_ context.Context, c order.Claim) (order.Claim, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.claims[c.Key]; ok {
		return old, false, nil
	}
	s.claims[c.Key] = c
	return c, true, nil
}

func (s *memStore) ApplyClaim(_ context.Context, c order.Claim) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[c.OrderID]
	if !ok {
		return order.ErrNotFound
	}
	o.Status = c.Status
	if c.TransactionID != "" {
		o.TransactionID = c.TransactionID
	}
	if !c.PaidAt.IsZero() {
		t := c.PaidAt
		o.PaidAt = &t
	}
	o.UpdatedAt = c.DecidedAt
	s.orders[c.OrderID] = o
	return nil
}

func (s *memStore) InsertRefund(context.Context, order.Refund) error { return errNotBenchmarked }

func (s *memStore) Refund(context.Context, string) (order.Refund, error) {
	return order.Refund{}, errNotBenchmarked
}

func (s *memStore) Refunds(context.Context, string) ([]order.Refund, error) {
	return nil, nil // no order in a benchmark has refunds
}

func (s *memStore) ClaimRefund(context.Context, order.RefundDecision) (order.RefundDecision, bool, error) {
	return order.RefundDecision{}, false, errNotBenchmarked
}

func (s *memStore) ApplyRefund(context.Context, order.RefundDecision) error { return errNotBenchmarked }

func (s *memStore) ClaimByKey(_ context.Context, key string) (order.Claim, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.claims[key]
	if !ok {
		return order.Claim{}, order.ErrNotFound
	}
	return c, nil
}

func (s *memStore) SetPaymentDisposition(_ context.Context, transactionID string, d order.Disposition, unconfirmed bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.payments[transactionID]
	if !ok {
		return order.ErrNotFound
	}
	p.Disposition = d
	if unconfirmed {
		p.Unconfirmed++
	}
	s.payments[transactionID] = p
	return nil
}

func (s *memStore) UndecidedPayments(context.Context, string, int) ([]order.Payment, error) {
	return nil, errNotBenchmarked
}

func (s *memStore) CountOpenOrders(_ context.Context, appID, owner string, t time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, o := range s.orders {
		if o.Owner == owner && o.AppID == appID && o.Status == order.StatusNotPay && o.ExpiresAt.After(t) {
			n++
		}
	}
	return n, nil
}

func (s *memStore) TakeSlot(context.Context, string, time.Duration, time.Time) (bool, error) {
	return true, nil // benchmarks measure one query per call
}

func (s *memStore) ReleaseSlot(context.Context, string, time.Duration, time.Time) error { return nil }

func (s *memStore) PurgeSlots(context.Context, time.Time) (int64, error) { return 0, nil }

// Service mode is off in the benchmarks (no service key), so these are
// never reached: the use cases record no events without it.

func (s *memStore) Products(context.Context, string, bool) ([]order.Product, error) {
	return nil, errNotBenchmarked
}
func (s *memStore) InsertProduct(context.Context, order.Product) error  { return errNotBenchmarked }
func (s *memStore) ReplaceProduct(context.Context, order.Product) error { return errNotBenchmarked }
func (s *memStore) InsertApp(context.Context, order.App) error          { return errNotBenchmarked }
func (s *memStore) App(context.Context, string) (order.App, error) {
	return order.App{}, order.ErrNotFound
}
func (s *memStore) Apps(context.Context) ([]order.App, error)   { return nil, errNotBenchmarked }
func (s *memStore) ReplaceApp(context.Context, order.App) error { return errNotBenchmarked }
func (s *memStore) SetEndpointStatus(context.Context, string, string, order.EndpointStatus, string) error {
	return errNotBenchmarked
}
func (s *memStore) InsertEvent(context.Context, order.Event) error { return errNotBenchmarked }
func (s *memStore) Event(context.Context, string) (order.Event, error) {
	return order.Event{}, errNotBenchmarked
}
func (s *memStore) EventsOf(context.Context, string, string, time.Time, string, int) ([]order.Event, error) {
	return nil, errNotBenchmarked
}
func (s *memStore) MissingEvents(context.Context, []string) ([]string, error) {
	return nil, errNotBenchmarked
}
func (s *memStore) OrdersCreatedAfter(context.Context, time.Time, time.Time, string, int) ([]order.Order, error) {
	return nil, errNotBenchmarked
}
func (s *memStore) TakeOnce(context.Context, string, time.Time) (bool, error) {
	return false, errNotBenchmarked
}
func (s *memStore) OnceExpiry(context.Context, string) (time.Time, error) {
	return time.Time{}, errNotBenchmarked
}
func (s *memStore) TakeOnceMany(context.Context, []string, time.Time) ([]bool, error) {
	return nil, errNotBenchmarked
}
func (s *memStore) InsertDeliveries(context.Context, []order.Delivery) error {
	return errNotBenchmarked
}
func (s *memStore) DueDeliveries(context.Context, time.Time, int) ([]order.Delivery, error) {
	return nil, errNotBenchmarked
}
func (s *memStore) Delivery(context.Context, string) (order.Delivery, error) {
	return order.Delivery{}, errNotBenchmarked
}
func (s *memStore) Deliveries(context.Context, string) ([]order.Delivery, error) {
	return nil, errNotBenchmarked
}
func (s *memStore) RecordDeliveries(context.Context, []order.Delivery) error {
	return errNotBenchmarked
}
