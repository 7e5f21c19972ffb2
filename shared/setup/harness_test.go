package setup_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/payfn/payfn/shared/config"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/setup"
	"github.com/payfn/payfn/shared/store/storetest"
)

const (
	testAppID = "wx1234567890abcdef"
	testMchID = "1900000109"
	testAPIv3 = "0123456789abcdef0123456789abcdef"
	// testMchSerial is the merchant certificate's serial the simulator expects.
	testMchSerial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
	// testAdminKey authenticates the merchant's refund calls in tests.
	testAdminKey = "admin-key-admin-key-admin-key-admin"
)

var (
	keyOnce     sync.Once
	merchantKey *rsa.PrivateKey
	otherKey    *rsa.PrivateKey
	platformKey *rsa.PrivateKey // the simulator's, shared so each test need not make one
	merchantPEM string
)

// keys makes the RSA keys once per test binary: RSA-2048 generation is slow.
func keys(t testing.TB) {
	t.Helper()
	keyOnce.Do(func() {
		var err error
		if merchantKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if otherKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if platformKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		der, _ := x509.MarshalPKCS8PrivateKey(merchantKey)
		merchantPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	})
}

// harness is the whole system on loopback: the simulator, the embedded
// store, and every function behind one HTTP server, wired by setup exactly
// as a deployment would be.
type harness struct {
	t     testing.TB
	sim   *paysim.Server
	stack *setup.Stack
	url   string
	cfg   config.Config

	snapMu     sync.Mutex
	snapClient *mongo.Client // see snapshotDB
}

func newHarness(t testing.TB, edit ...func(*config.Config)) *harness {
	t.Helper()
	return newHarnessWith(t, setup.Options{}, edit...)
}

func newHarnessWith(t testing.TB, opts setup.Options, edit ...func(*config.Config)) *harness {
	t.Helper()
	sim := startSim(t, []time.Duration{20 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond})
	front, url := frontServer(t)
	uri, db := storetest.URI(t)
	cfg := testConfig(sim, url, uri, db, 30*time.Minute)
	for _, e := range edit {
		e(&cfg)
	}
	stack, err := setup.NewStack(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stack.Close(context.Background()) })
	front.Store(stack.Handler)
	seed(t, stack)
	return &harness{t: t, sim: sim, stack: stack, url: url, cfg: cfg}
}

// startSim starts the WeChat Pay simulator on loopback with the test
// merchant and the given notification retry schedule.
func startSim(t testing.TB, retry []time.Duration) *paysim.Server {
	t.Helper()
	keys(t)
	sim, err := paysim.New(paysim.Options{
		MchID: testMchID, AppID: testAppID, AppSecret: "app-secret", APIv3Key: testAPIv3,
		MerchantSerial: testMchSerial, MerchantPublicKey: &merchantKey.PublicKey,
		PlatformKey: platformKey, RetrySchedule: retry,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

// frontServer is the functions' public HTTP server; its handler is stored
// once the stack exists, because the stack's config needs the server's URL
// (the notify URL).
func frontServer(t testing.TB) (*atomic.Value, string) {
	t.Helper()
	var handler atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.Load().(http.Handler).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &handler, srv.URL
}

// testConfig is the configuration of a stack served at url against sim and
// the store at uri/db, with orders living ttl and sessions twice that.
func testConfig(sim *paysim.Server, url, uri, db string, ttl time.Duration) config.Config {
	k := sim.Keys()
	return config.Config{
		MongoURI: uri, MongoDatabase: db,
		AppID: testAppID, AppSecret: "app-secret", LoginBaseURL: sim.URL(),
		SessionSecret: strings.Repeat("s", 32), SessionTTL: 2 * ttl, AdminKey: testAdminKey,
		MchID: testMchID, MchCertSerial: testMchSerial, MchPrivateKeyPEM: merchantPEM,
		APIv3Key: testAPIv3, NotifyURL: url + "/notify/wechatpay",
		PublicKeyID: k.PublicKeyID, PublicKeyPEM: k.PublicKeyPEM,
		PayBaseURL: sim.URL(), PayTimeout: 5 * time.Second, OrderTTL: ttl,
	}
}

func seed(t testing.TB, s *setup.Stack) {
	t.Helper()
	err := s.Store.UpsertProducts(context.Background(),
		order.Product{ID: "latte", Title: "Latte", PriceFen: 2800, Active: true},
		order.Product{ID: "mug", Title: "Retired mug", PriceFen: 5000, Active: false},
	)
	if err != nil {
		t.Fatal(err)
	}
}

type reply struct {
	status int
	body   map[string]any
	raw    []byte
}

func (r reply) str(key string) string { s, _ := r.body[key].(string); return s }

// post sends a raw JSON body to path with an optional bearer token.
func (h *harness) post(path, token, body string) reply {
	h.t.Helper()
	return h.send(path, "application/json", token, body)
}

// send posts body with the given content type and optional bearer token.
func (h *harness) send(path, contentType, token, body string) reply {
	h.t.Helper()
	header := http.Header{"Content-Type": {contentType}}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	return h.sendWith(path, header, body)
}

// sendWith posts body to path with exactly these headers.
func (h *harness) sendWith(path string, header http.Header, body string) reply {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, raw: raw}
	json.Unmarshal(raw, &r.body)
	return r
}

func (h *harness) postJSON(path, token string, v any) reply {
	h.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.post(path, token, string(b))
}

// want fails unless the reply has the status and, for errors, the code.
func (r reply) want(t testing.TB, status int, code string) reply {
	t.Helper()
	if r.status != status || (code != "" && r.str("code") != code) {
		t.Fatalf("got %d %s, want %d %s", r.status, r.raw, status, code)
	}
	return r
}

func (h *harness) login(openid string) string {
	h.t.Helper()
	r := h.postJSON("/login", "", map[string]string{"code": h.sim.NewLoginCode(openid)}).want(h.t, 200, "")
	return r.str("token")
}

var reqSeq atomic.Int64

func (h *harness) createOrder(token, product string, qty int) string {
	h.t.Helper()
	r := h.postJSON("/createOrder", token, map[string]any{"product_id": product, "quantity": qty, "request_id": fmt.Sprintf("req-%d", reqSeq.Add(1))}).want(h.t, 201, "")
	return r.str("order_id")
}

// pay returns the prepay id from the signed wx.requestPayment package.
func (h *harness) pay(token, orderID string) (prepayID string, payment map[string]any) {
	h.t.Helper()
	r := h.postJSON("/pay", token, map[string]string{"order_id": orderID}).want(h.t, 200, "")
	payment, _ = r.body["payment"].(map[string]any)
	pkg, _ := payment["package"].(string)
	return strings.TrimPrefix(pkg, "prepay_id="), payment
}

func (h *harness) query(token, orderID string) reply {
	h.t.Helper()
	return h.postJSON("/queryOrder", token, map[string]string{"order_id": orderID})
}

func (h *harness) order(id string) order.Order {
	h.t.Helper()
	o, err := h.stack.Store.Order(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return o
}

func (h *harness) ledger(orderID string) []order.Payment {
	h.t.Helper()
	ps, err := h.stack.Store.Payments(context.Background(), orderID)
	if err != nil {
		h.t.Fatal(err)
	}
	return ps
}

func (h *harness) waitAcked(outTradeNo string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.sim.WaitAcked(ctx, outTradeNo); err != nil {
		h.t.Fatalf("notification for %s never acknowledged: %v; deliveries %+v", outTradeNo, err, h.sim.Deliveries(outTradeNo))
	}
}

// notify delivers a notification built by the simulator (genuine unless
// opts forge it) straight to verifyPayment.
func (h *harness) notify(tx paysim.Transaction, opts paysim.NotifyOptions) (int, []byte) {
	h.t.Helper()
	hdr, body, err := h.sim.BuildNotification(tx, opts)
	if err != nil {
		h.t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, h.url+"/notify/wechatpay", bytes.NewReader(body))
	req.Header = hdr
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// paidTx is what WeChat Pay would say about orderID paid with total fen.
func (h *harness) paidTx(orderID, openid string, total int64) paysim.Transaction {
	return paysim.Transaction{
		AppID: testAppID, MchID: testMchID, OutTradeNo: orderID, TransactionID: "4200000000" + fmt.Sprint(time.Now().UnixNano())[:18],
		TradeType: "JSAPI", TradeState: "SUCCESS", TradeStateDesc: "支付成功", BankType: "OTHERS",
		SuccessTime: time.Now().Format(time.RFC3339), Payer: &paysim.Payer{OpenID: openid},
		Amount: &paysim.Amount{Total: total, PayerTotal: total, Currency: "CNY", PayerCurrency: "CNY"},
	}
}

func (h *harness) getRaw(path string) (int, error) {
	resp, err := http.Get(h.url + path)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
