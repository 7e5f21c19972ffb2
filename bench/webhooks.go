package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/config"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/runtime/httpapi"
)

// serviceKey turns service mode on in the benchmark stacks.
const serviceKey = "bench-service-key-bench-service-key-0123"

// hookReceiver is a project's webhook endpoint on loopback: it answers 204
// and notes when each event arrived.
type hookReceiver struct {
	srv     *httptest.Server
	count   atomic.Int64
	mu      sync.Mutex
	arrived map[string]time.Time // webhook-id → first arrival
	bodies  map[string][]byte
}

func newHookReceiver() *hookReceiver {
	rc := &hookReceiver{arrived: map[string]time.Time{}, bodies: map[string][]byte{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		var body [4096]byte
		n, _ := r.Body.Read(body[:])
		id := r.Header.Get("webhook-id")
		rc.mu.Lock()
		if _, ok := rc.arrived[id]; !ok {
			rc.arrived[id] = now
			rc.bodies[id] = append([]byte(nil), body[:n]...)
		}
		rc.mu.Unlock()
		rc.count.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	return rc
}

// ServiceStack is the local stack in service mode with one app whose
// endpoint is a loopback receiver.
type ServiceStack struct {
	*Stack
	rc     *hookReceiver
	App    string
	KeyID  string
	Secret string
}

// NewServiceStack starts it.
func NewServiceStack(f *Fixture) (*ServiceStack, error) {
	s, err := NewStackWith(f, func(c *config.Config) {
		c.ServiceKey = serviceKey
		c.WebhookAllowPrivate = true
	})
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	a := s.Stack.App
	_, key, err := a.CreateApp(ctx, app.AppInput{ID: "bench", Name: "Bench"})
	if err != nil {
		s.Close()
		return nil, err
	}
	rc := newHookReceiver()
	if _, _, err := a.AddEndpoint(ctx, "bench", app.EndpointInput{URL: rc.srv.URL + "/hooks"}); err != nil {
		s.Close()
		return nil, err
	}
	if _, err := a.CreateProduct(ctx, "bench", app.ProductInput{ID: "latte", Title: "Latte", PriceFen: priceFen}); err != nil {
		s.Close()
		return nil, err
	}
	return &ServiceStack{Stack: s, rc: rc, App: "bench", KeyID: key.ID, Secret: key.Secret}, nil
}

// Close stops the stack and the receiver.
func (s *ServiceStack) Close() {
	s.rc.srv.Close()
	s.Stack.Close()
}

// DispatchResult is one dispatcher throughput run.
type DispatchResult struct {
	Events     int
	Elapsed    time.Duration
	PerSecond  float64
	Runs       int // dispatcher runs it took
	Duplicates int // deliveries beyond one per event
}

// RunDispatch records n due events of the app (as decisions would have)
// straight into the store, then runs the dispatcher until every one is
// delivered to the receiver, and reports deliveries per second: the store
// (embedded FerretDB), the leases, the signing and the HTTP posts, all real.
func (s *ServiceStack) RunDispatch(ctx context.Context, n int) (DispatchResult, error) {
	x, err := s.Stack.Stack.Store.App(ctx, s.App)
	if err != nil {
		return DispatchResult{}, err
	}
	var epID string
	for id := range x.Endpoints {
		epID = id
	}
	base := s.rc.count.Load()
	now := time.Now().UTC().Truncate(time.Millisecond)
	run := fmt.Sprint(now.UnixNano())
	ds := make([]order.Delivery, 0, n)
	for i := range n {
		id := order.EventID("bench:" + run + ":" + fmt.Sprint(i))
		body, _ := json.Marshal(map[string]any{"id": id, "type": order.EventOrderPaid, "created_at": now,
			"data": map[string]any{"order": map[string]any{"order_id": fmt.Sprintf("PFBENCH%08d", i), "total_fen": priceFen}, "attach": "bench"}})
		e := order.Event{ID: id, AppID: s.App, Type: order.EventOrderPaid, OrderID: fmt.Sprintf("PFBENCH%08d", i), CreatedAt: now, Body: string(body)}
		if err := s.Stack.Stack.Store.InsertEvent(ctx, e); err != nil {
			return DispatchResult{}, err
		}
		ds = append(ds, order.Delivery{ID: order.DeliveryID(id, epID), EventID: id, AppID: s.App, EndpointID: epID, Type: e.Type,
			Body: e.Body, Status: order.DeliveryPending, NextAt: now, CreatedAt: now})
	}
	if err := s.Stack.Stack.Store.InsertDeliveries(ctx, ds); err != nil {
		return DispatchResult{}, err
	}
	start := time.Now()
	runs := 0
	for s.rc.count.Load()-base < int64(n) {
		if runs > 50 {
			return DispatchResult{}, fmt.Errorf("%d of %d events delivered after %d dispatcher runs", s.rc.count.Load()-base, n, runs)
		}
		if _, err := s.Stack.Stack.App.DispatchWebhooks(ctx); err != nil {
			return DispatchResult{}, err
		}
		runs++
	}
	el := time.Since(start)
	got := int(s.rc.count.Load() - base)
	return DispatchResult{Events: n, Elapsed: el, PerSecond: float64(n) / el.Seconds(), Runs: runs, Duplicates: got - n}, nil
}

// LatencyResult is the time from an order's PAID decision to the first
// delivery attempt of its order.paid event at the receiver.
type LatencyResult struct {
	Purchases     int
	P50, P99, Max time.Duration
}

// RunPaidLatency makes purchases through the signed server API with
// `concurrency` buyers at once (the simulator pays, its notification makes
// the order PAID) and measures, for each order.paid event, the time from
// the decision (the event's created_at, stamped when the claim is applied)
// to its arrival at the receiver.
func (s *ServiceStack) RunPaidLatency(ctx context.Context, purchases, concurrency int) (LatencyResult, error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	orders := make(chan int, purchases)
	for i := range purchases {
		orders <- i
	}
	close(orders)
	run := time.Now().UnixNano()
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range orders {
				if err := s.servicePurchase(ctx, fmt.Sprintf("b%d-%d", run, i)); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return LatencyResult{}, firstErr
	}
	var lat []time.Duration
	s.rc.mu.Lock()
	for id, body := range s.rc.bodies {
		var ev struct {
			Type      string    `json:"type"`
			CreatedAt time.Time `json:"created_at"`
		}
		if json.Unmarshal(body, &ev) == nil && ev.Type == order.EventOrderPaid && !strings.HasPrefix(string(body), `{"data"`) {
			if ev.CreatedAt.After(time.Unix(0, run)) {
				lat = append(lat, s.rc.arrived[id].Sub(ev.CreatedAt))
			}
		}
	}
	s.rc.mu.Unlock()
	if len(lat) < purchases {
		return LatencyResult{}, fmt.Errorf("%d order.paid events arrived for %d purchases", len(lat), purchases)
	}
	slices.Sort(lat)
	return LatencyResult{Purchases: len(lat), P50: lat[len(lat)/2], P99: lat[(len(lat)*99+99)/100-1], Max: lat[len(lat)-1]}, nil
}

// servicePurchase is one purchase through the server API: create the order
// (which prepays it), pay it at the simulator, wait for the notification's
// acknowledgement.
func (s *ServiceStack) servicePurchase(ctx context.Context, buyer string) error {
	body, _ := json.Marshal(map[string]any{"product_id": "latte", "quantity": 1, "request_id": buyer, "buyer": buyer, "payer_openid": "o-" + buyer})
	ts := fmt.Sprint(time.Now().Unix())
	nonce := fmt.Sprintf("n%031d", time.Now().UnixNano()%1e15) + buyer
	if len(nonce) > 64 {
		nonce = nonce[:64]
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/v1/orders", strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(httpapi.HeaderKeyID, s.KeyID)
	req.Header.Set(httpapi.HeaderTimestamp, ts)
	req.Header.Set(httpapi.HeaderNonce, nonce)
	req.Header.Set(httpapi.HeaderSignature, app.SignServerRequest(s.Secret, http.MethodPost, "/v1/orders", ts, nonce, body))
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var created struct {
		OrderID string `json:"order_id"`
		Payment struct {
			Package string `json:"package"`
		} `json:"payment"`
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("create order: %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil {
		return err
	}
	if _, err := s.Sim.Pay(ctx, strings.TrimPrefix(created.Payment.Package, "prepay_id="), paysim.PayOptions{}); err != nil {
		return err
	}
	return s.Sim.WaitAcked(ctx, created.OrderID)
}
