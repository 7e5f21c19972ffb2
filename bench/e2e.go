package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/payfn/payfn/shared/config"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/setup"
)

// E2EResult is one end-to-end run.
type E2EResult struct {
	Buyers, Purchases    int
	P50, P99             time.Duration
	PurchasesPerSec      float64
	Callbacks            int // duplicate notifications in the burst
	CallbacksPerSec      float64
	CallbackConcurrency  int
	Elapsed, BurstElapse time.Duration
}

// Stack is the local stack as scripts/dev wires it: the simulator, the
// embedded store and every function behind one loopback HTTP server.
type Stack struct {
	Sim   *paysim.Server
	Stack *setup.Stack
	URL   string
	srv   *httptest.Server
	hc    *http.Client
}

// NewStack starts the local stack in this process.
func NewStack(f *Fixture) (*Stack, error) { return NewStackWith(f, nil) }

// NewStackWith is NewStack with its configuration edited first.
func NewStackWith(f *Fixture, edit func(*config.Config)) (*Stack, error) {
	sim := f.Sim
	if err := sim.Listen("127.0.0.1:0"); err != nil && !strings.Contains(err.Error(), "already") {
		return nil, err
	}
	var handler atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.Load().(http.Handler).ServeHTTP(w, r)
	}))
	uri, db, err := EmbeddedURI()
	if err != nil {
		srv.Close()
		return nil, err
	}
	k := sim.Keys()
	cfg := config.Config{
		MongoURI: uri, MongoDatabase: db,
		AppID: AppID, AppSecret: AppSecret, LoginBaseURL: sim.URL(),
		SessionSecret: strings.Repeat("s", 32), SessionTTL: time.Hour, AdminKey: strings.Repeat("a", 32),
		MchID: MchID, MchCertSerial: MchSerial, MchPrivateKeyPEM: f.MerchantPEM,
		APIv3Key: APIv3Key, NotifyURL: srv.URL + httpapi.PathVerifyPayment,
		PublicKeyID: k.PublicKeyID, PublicKeyPEM: k.PublicKeyPEM,
		PayBaseURL: sim.URL(), PayTimeout: 10 * time.Second, OrderTTL: 30 * time.Minute,
	}
	if edit != nil {
		edit(&cfg)
	}
	st, err := setup.NewStack(cfg, setup.Options{Logger: discardLogger()})
	if err != nil {
		srv.Close()
		return nil, err
	}
	handler.Store(st.Handler)
	if err := st.Store.UpsertProducts(context.Background(), order.Product{ID: "latte", Title: "Latte", PriceFen: priceFen, Active: true}); err != nil {
		st.Close(context.Background())
		srv.Close()
		return nil, err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	return &Stack{Sim: sim, Stack: st, URL: srv.URL, srv: srv, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}, nil
}

// Close stops the stack (the simulator stays with the fixture).
func (s *Stack) Close() {
	s.srv.Close()
	s.Stack.Close(context.Background())
}

func (s *Stack) post(path, token string, in any, want int, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, s.URL+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s: %d %s", path, resp.StatusCode, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

var buyerSeq atomic.Int64

// Purchase is one buyer's whole purchase: login, createOrder, pay, the
// simulator pays, the notification is delivered and acknowledged, and
// queryOrder shows PAID.
func (s *Stack) Purchase(ctx context.Context) (paysim.PaidTrade, error) {
	openid := fmt.Sprintf("o-e2e-%d", buyerSeq.Add(1))
	var login struct {
		Token string `json:"token"`
	}
	if err := s.post(httpapi.PathLogin, "", map[string]string{"code": s.Sim.NewLoginCode(openid)}, 200, &login); err != nil {
		return paysim.PaidTrade{}, err
	}
	var created struct {
		OrderID string `json:"order_id"`
	}
	if err := s.post(httpapi.PathCreateOrder, login.Token, map[string]any{"product_id": "latte", "quantity": 1, "request_id": openid}, 201, &created); err != nil {
		return paysim.PaidTrade{}, err
	}
	var payRes struct {
		Payment struct {
			Package string `json:"package"`
		} `json:"payment"`
	}
	if err := s.post(httpapi.PathPay, login.Token, map[string]string{"order_id": created.OrderID}, 200, &payRes); err != nil {
		return paysim.PaidTrade{}, err
	}
	paid, err := s.Sim.Pay(ctx, strings.TrimPrefix(payRes.Payment.Package, "prepay_id="), paysim.PayOptions{})
	if err != nil {
		return paysim.PaidTrade{}, err
	}
	if err := s.Sim.WaitAcked(ctx, created.OrderID); err != nil {
		return paysim.PaidTrade{}, err
	}
	var view struct {
		Status string `json:"status"`
	}
	if err := s.post(httpapi.PathQueryOrder, login.Token, map[string]string{"order_id": created.OrderID}, 200, &view); err != nil {
		return paysim.PaidTrade{}, err
	}
	if view.Status != "PAID" {
		return paysim.PaidTrade{}, fmt.Errorf("order %s is %s after payment", created.OrderID, view.Status)
	}
	return paid, nil
}

// RunE2E has buyers concurrent buyers make perBuyer purchases each, then
// sends a burst of dupsPerOrder duplicate notifications for every paid order
// with callbackConcurrency senders.
func (s *Stack) RunE2E(ctx context.Context, buyers, perBuyer, dupsPerOrder, callbackConcurrency int) (E2EResult, error) {
	var mu sync.Mutex
	var lat []time.Duration
	var paid []paysim.PaidTrade
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for b := 0; b < buyers; b++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perBuyer; i++ {
				t0 := time.Now()
				p, err := s.Purchase(ctx)
				d := time.Since(t0)
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				lat, paid = append(lat, d), append(paid, p)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return E2EResult{}, firstErr
	}
	slices.Sort(lat)
	res := E2EResult{
		Buyers: buyers, Purchases: len(lat), Elapsed: elapsed,
		P50: lat[len(lat)/2], P99: lat[min(len(lat)-1, (len(lat)*99+99)/100-1)],
		PurchasesPerSec: float64(len(lat)) / elapsed.Seconds(), CallbackConcurrency: callbackConcurrency,
	}

	// The burst: genuine duplicates (each freshly signed, as WeChat's
	// retries are) of every paid order's notification, built beforehand.
	type delivery struct {
		h    http.Header
		body []byte
	}
	var ds []delivery
	for _, p := range paid {
		tx := paysim.Transaction{
			AppID: AppID, MchID: MchID, OutTradeNo: p.OutTradeNo, TransactionID: p.TransactionID,
			TradeType: "JSAPI", TradeState: "SUCCESS", TradeStateDesc: "支付成功", BankType: "OTHERS",
			SuccessTime: p.SuccessTime.Format(time.RFC3339), Payer: &paysim.Payer{OpenID: p.OpenID},
			Amount: &paysim.Amount{Total: p.TotalFen, PayerTotal: p.PayerTotalFen, Currency: "CNY", PayerCurrency: "CNY"},
		}
		for d := 0; d < dupsPerOrder; d++ {
			h, body, err := s.Sim.BuildNotification(tx, paysim.NotifyOptions{})
			if err != nil {
				return res, err
			}
			ds = append(ds, delivery{h, body})
		}
	}
	next := atomic.Int64{}
	var bad atomic.Int64
	var badMsg atomic.Value
	start = time.Now()
	for w := 0; w < callbackConcurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ds) {
					return
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+httpapi.PathVerifyPayment, bytes.NewReader(ds[i].body))
				req.Header = ds[i].h.Clone()
				req.Header.Set("Content-Type", "application/json")
				resp, err := s.hc.Do(req)
				if err != nil {
					bad.Add(1)
					badMsg.Store(err.Error())
					continue
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					bad.Add(1)
					badMsg.Store(fmt.Sprintf("%d %s", resp.StatusCode, raw))
				}
			}
		}()
	}
	wg.Wait()
	res.BurstElapse = time.Since(start)
	if n := bad.Load(); n > 0 {
		return res, fmt.Errorf("%d duplicate notifications not acknowledged, e.g. %v", n, badMsg.Load())
	}
	res.Callbacks = len(ds)
	res.CallbacksPerSec = float64(len(ds)) / res.BurstElapse.Seconds()
	return res, nil
}
