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
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/identity"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/secrets"
	"github.com/payfn/payfn/shared/setup"
	"github.com/payfn/payfn/shared/store"
	"github.com/payfn/payfn/shared/store/storetest"
)

// memSecret is a secret store a test rewrites while traffic runs.
type memSecret struct {
	mu      sync.Mutex
	values  map[string]string
	down    bool
	fetches int
}

func (m *memSecret) Fetch(context.Context) (secrets.Secret, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return secrets.Secret{}, fmt.Errorf("mem store: %w", secrets.ErrUnavailable)
	}
	m.fetches++
	raw, _ := json.Marshal(m.values)
	return secrets.Parse(raw)
}

// set changes the secret: each pair is a name and its value ("" deletes).
func (m *memSecret) set(kv ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(m.values, kv[i])
		} else {
			m.values[kv[i]] = kv[i+1]
		}
	}
}

func (m *memSecret) setDown(d bool) { m.mu.Lock(); m.down = d; m.mu.Unlock() }

// syncBuffer collects what the functions log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// rotStack is every HTTP function built from a secret store, as deployed,
// each its own setup.Rotating (its own process on a cloud), refreshing its
// secret every 20 ms.
type rotStack struct {
	t       *testing.T
	sim     *paysim.Server
	secret  *memSecret
	url     string
	store   *store.Store
	logs    *syncBuffer
	bodies  *syncBuffer // every response body, checked for secrets too
	fns     []*setup.Rotating
	retired []string // secret values used during the test
}

const rotRefresh = 20 * time.Millisecond

func newRotStack(t *testing.T) *rotStack {
	t.Helper()
	sim := startSim(t, []time.Duration{time.Hour}) // the tests deliver notifications themselves
	uri, db := storetest.URI(t)
	k := sim.Keys()
	r := &rotStack{t: t, sim: sim, logs: &syncBuffer{}, bodies: &syncBuffer{}}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	r.url = srv.URL
	env := map[string]string{
		"MONGODB_URI": uri, "MONGODB_DATABASE": db, "WECHAT_APPID": testAppID, "WECHAT_API_BASE_URL": sim.URL(),
		"PAYFN_SESSION_TTL": "1h", "WECHATPAY_MCHID": testMchID, "WECHATPAY_NOTIFY_URL": srv.URL + "/notify/wechatpay",
		"WECHATPAY_PUBLIC_KEY_ID": k.PublicKeyID, "WECHATPAY_PUBLIC_KEY": k.PublicKeyPEM,
		"WECHATPAY_BASE_URL": sim.URL(), "WECHATPAY_TIMEOUT": "5s", "PAYFN_LOG_LEVEL": "debug",
	}
	r.secret = &memSecret{values: map[string]string{
		"WECHAT_APPSECRET": "app-secret", "PAYFN_SESSION_SECRET": strings.Repeat("s", 32), "PAYFN_ADMIN_KEY": testAdminKey,
		"WECHATPAY_MCH_CERT_SERIAL": testMchSerial, "WECHATPAY_MCH_PRIVATE_KEY": merchantPEM, "WECHATPAY_APIV3_KEY": testAPIv3,
	}}
	logger := slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, f := range setup.Functions {
		if f.Path == "" {
			continue
		}
		fn, err := setup.NewRotating(f.Name, func(k string) string { return env[k] }, r.secret, rotRefresh, setup.Options{Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(fn.Close)
		r.fns = append(r.fns, fn)
		mux.Handle(f.Path, fn)
	}
	st, err := store.New(store.Options{URI: uri, Database: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	if err := st.UpsertProducts(context.Background(), order.Product{ID: "latte", Title: "Latte", PriceFen: 2800, Active: true}); err != nil {
		t.Fatal(err)
	}
	r.store = st
	return r
}

// call posts to path and returns the status and the body's code field.
func (r *rotStack) call(path string, header map[string]string, body []byte) (int, map[string]any) {
	req, _ := http.NewRequest(http.MethodPost, r.url+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, map[string]any{"code": err.Error()}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r.bodies.Write(raw)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}

func (r *rotStack) jsonCall(path, token string, v any) (int, map[string]any) {
	b, _ := json.Marshal(v)
	h := map[string]string{}
	if token != "" {
		h["Authorization"] = "Bearer " + token
	}
	return r.call(path, h, b)
}

// token issues a session token as login would with secret.
func token(t *testing.T, secret, openid string) string {
	t.Helper()
	tok, err := identity.NewTokens([]byte(secret), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := tok.Issue(openid)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newOrder creates an order for a buyer of its own and returns its id.
func (r *rotStack) newOrder(tok string) (string, error) {
	st, m := r.jsonCall("/createOrder", tok, map[string]any{"product_id": "latte", "quantity": 1, "request_id": fmt.Sprint("rq-", time.Now().UnixNano())})
	if st != http.StatusCreated {
		return "", fmt.Errorf("createOrder: %d %v", st, m)
	}
	return m["order_id"].(string), nil
}

// traffic runs each worker in a loop on its own goroutine until stop is
// closed, and counts the answers worker reports as failed.
type traffic struct {
	wg       sync.WaitGroup
	stop     chan struct{}
	ok, lost atomic.Int64
	mu       sync.Mutex
	failures []string
}

func runTraffic(workers int, work func(i, n int) error) *traffic {
	tr := &traffic{stop: make(chan struct{})}
	for i := 0; i < workers; i++ {
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			for n := 0; ; n++ {
				select {
				case <-tr.stop:
					return
				default:
				}
				if err := work(i, n); err != nil {
					tr.lost.Add(1)
					tr.mu.Lock()
					if len(tr.failures) < 5 {
						tr.failures = append(tr.failures, err.Error())
					}
					tr.mu.Unlock()
				} else {
					tr.ok.Add(1)
				}
			}
		}()
	}
	return tr
}

// end stops the traffic and fails the test for any lost request.
func (tr *traffic) end(t *testing.T, what string) {
	t.Helper()
	close(tr.stop)
	tr.wg.Wait()
	t.Logf("%s: %d requests answered as expected, %d lost", what, tr.ok.Load(), tr.lost.Load())
	if tr.lost.Load() > 0 || tr.ok.Load() == 0 {
		t.Fatalf("%s: %d requests lost (%d answered), e.g. %v", what, tr.lost.Load(), tr.ok.Load(), tr.failures)
	}
}

// settle lets the functions the traffic uses refresh their secret (each
// does on its first invocation after rotRefresh) while traffic keeps
// running: the store must have answered several fetches since now, over at
// least 15 refresh intervals.
func (r *rotStack) settle() {
	r.secret.mu.Lock()
	start := r.secret.fetches
	r.secret.mu.Unlock()
	begin := time.Now()
	for time.Since(begin) < 5*time.Second {
		time.Sleep(rotRefresh)
		r.secret.mu.Lock()
		n := r.secret.fetches
		r.secret.mu.Unlock()
		if n >= start+4 && time.Since(begin) >= 15*rotRefresh {
			return
		}
	}
}

// noSecretsWritten fails if any of the secret values appears in what the
// functions logged or answered.
func (r *rotStack) noSecretsWritten(values ...string) {
	r.t.Helper()
	logs, bodies := r.logs.String(), r.bodies.String()
	if !strings.Contains(logs, "secret rotated") {
		r.t.Errorf("no function logged a rotation")
	}
	for _, v := range values {
		for _, probe := range []string{v, strings.ReplaceAll(v, "\n", `\n`)} {
			if strings.Contains(logs, probe) || strings.Contains(bodies, probe) {
				r.t.Errorf("a secret value (%d bytes, starting %.6q) appears in the logs or a response", len(v), v)
			}
		}
	}
}

const (
	oldSession = "old-session-secret-old-session-secret"
	newSession = "new-session-secret-new-session-secret"
)

func TestRotateSessionSecretUnderTrafficLosesNoRequest(t *testing.T) {
	r := newRotStack(t)
	r.secret.set("PAYFN_SESSION_SECRET", oldSession)
	oldTok := token(t, oldSession, "o-before")
	orderID, err := r.newOrder(oldTok)
	if err != nil {
		t.Fatal(err)
	}
	var rotated atomic.Bool
	tr := runTraffic(6, func(i, n int) error {
		// A buyer logged in before the rotation keeps working...
		if st, m := r.jsonCall("/queryOrder", oldTok, map[string]string{"order_id": orderID}); st != 200 {
			return fmt.Errorf("queryOrder with a token from before: %d %v", st, m["code"])
		}
		// ...and so does one logging in now, whichever secret signs.
		st, m := r.jsonCall("/login", "", map[string]string{"code": r.sim.NewLoginCode(fmt.Sprintf("o-%d-%d", i, n))})
		if st != 200 {
			return fmt.Errorf("login: %d %v", st, m["code"])
		}
		if st, m := r.jsonCall("/createOrder", m["token"].(string), map[string]any{"product_id": "latte", "quantity": 1, "request_id": fmt.Sprintf("r-%d-%d", i, n)}); st != 201 {
			return fmt.Errorf("createOrder with a fresh token: %d %v", st, m["code"])
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond)
	// Step 1: every function learns to accept the new secret before any
	// signs with it. In one step, a token from a login that has refreshed
	// could reach a createOrder that has not (seen: 3 of 90 refused).
	r.secret.set("PAYFN_SESSION_SECRET", oldSession, "PAYFN_SESSION_SECRET_PREVIOUS", newSession)
	r.settle()
	time.Sleep(200 * time.Millisecond)
	// Step 2: swap; new tokens are signed with the new secret.
	r.secret.set("PAYFN_SESSION_SECRET", newSession, "PAYFN_SESSION_SECRET_PREVIOUS", oldSession)
	r.settle()
	rotated.Store(true)
	time.Sleep(300 * time.Millisecond)
	tr.end(t, "session secret rotation")

	// New tokens are signed with the new secret now.
	_, m := r.jsonCall("/login", "", map[string]string{"code": r.sim.NewLoginCode("o-after")})
	if _, err := mustTokens(t, newSession).Verify(m["token"].(string)); err != nil {
		t.Fatalf("a token issued after the rotation does not verify with the new secret: %v", err)
	}
	// Once the old secret is dropped (after the session TTL), its tokens end.
	r.secret.set("PAYFN_SESSION_SECRET_PREVIOUS", "")
	time.Sleep(2 * rotRefresh) // the next invocation refreshes
	if st, _ := r.jsonCall("/queryOrder", oldTok, map[string]string{"order_id": orderID}); st != 401 {
		t.Fatalf("a token of the dropped secret answered %d, want 401", st)
	}
	r.noSecretsWritten(oldSession, newSession)
}

func mustTokens(t *testing.T, secret string) *identity.Tokens {
	tok, err := identity.NewTokens([]byte(secret), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestRotateAdminKeyUnderTrafficLosesNoRequest(t *testing.T) {
	r := newRotStack(t)
	oldKey, newKey := "old-admin-key-old-admin-key-0000000", "new-admin-key-new-admin-key-1111111"
	r.secret.set("PAYFN_ADMIN_KEY", oldKey)
	var callersMoved atomic.Bool
	refund := func(key string) (int, string) {
		// An invalid order id: authenticated calls answer 400, others 401.
		b, _ := json.Marshal(map[string]any{"order_id": "x", "out_refund_no": "rf-1", "amount_fen": 1})
		st, m := r.call("/admin/refund", map[string]string{"X-Payfn-Admin-Key": key}, b)
		code, _ := m["code"].(string)
		return st, code
	}
	tr := runTraffic(6, func(i, n int) error {
		key := oldKey
		if callersMoved.Load() && i%2 == 0 {
			key = newKey // callers switch one by one
		}
		if st, code := refund(key); st != 400 || code != "INVALID_ORDER_ID" {
			return fmt.Errorf("refund with the %s key: %d %s", map[bool]string{true: "new", false: "old"}[key == newKey], st, code)
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond)
	r.secret.set("PAYFN_ADMIN_KEY", newKey, "PAYFN_ADMIN_KEY_PREVIOUS", oldKey)
	r.settle()
	callersMoved.Store(true)
	time.Sleep(200 * time.Millisecond)
	tr.end(t, "admin key rotation")
	r.secret.set("PAYFN_ADMIN_KEY_PREVIOUS", "")
	time.Sleep(2 * rotRefresh) // the next invocation refreshes
	if st, _ := refund(oldKey); st != 401 {
		t.Fatalf("the dropped admin key answered %d, want 401", st)
	}
	if st, _ := refund(newKey); st != 400 {
		t.Fatalf("the new admin key answered %d, want 400", st)
	}
	r.noSecretsWritten(oldKey, newKey)
}

// paidNotification posts WeChat Pay's payment notification for a fresh
// order, encrypted with apiv3 and signed as sign says, and checks it is
// acknowledged and the order PAID.
func (r *rotStack) paidNotification(buyer, apiv3 string, sign paysim.NotifyOptions) error {
	tok := token(r.t, strings.Repeat("s", 32), buyer)
	id, err := r.newOrder(tok)
	if err != nil {
		return err
	}
	tx := paysim.Transaction{
		AppID: testAppID, MchID: testMchID, OutTradeNo: id, TransactionID: fmt.Sprint("42000", time.Now().UnixNano()),
		TradeType: "JSAPI", TradeState: "SUCCESS", TradeStateDesc: "支付成功", BankType: "OTHERS",
		SuccessTime: time.Now().Format(time.RFC3339), Payer: &paysim.Payer{OpenID: buyer},
		Amount: &paysim.Amount{Total: 2800, PayerTotal: 2800, Currency: "CNY", PayerCurrency: "CNY"},
	}
	sign.APIv3Key = apiv3
	hdr, body, err := r.sim.BuildNotification(tx, sign)
	if err != nil {
		return err
	}
	h := map[string]string{}
	for k := range hdr {
		h[k] = hdr.Get(k)
	}
	if st, m := r.call("/notify/wechatpay", h, body); st != 200 {
		return fmt.Errorf("notification for %s: %d %v", id, st, m["code"])
	}
	if o, err := r.store.Order(context.Background(), id); err != nil || o.Status != order.StatusPaid {
		return fmt.Errorf("order %s is %s after its acknowledged notification (%v)", id, o.Status, err)
	}
	return nil
}

func TestRotateAPIv3KeyUnderTrafficLosesNoNotification(t *testing.T) {
	r := newRotStack(t)
	oldKey, newKey := testAPIv3, "NEWAPIV3KEY-NEWAPIV3KEY-NEWAPIV3"
	// What WeChat Pay encrypts with: the old key, then (once the merchant
	// changed it in the portal) the new one, with retries of notifications
	// made before still under the old.
	var portalChanged atomic.Bool
	tr := runTraffic(4, func(i, n int) error {
		key := oldKey
		if portalChanged.Load() && n%2 == 0 {
			key = newKey
		}
		return r.paidNotification(fmt.Sprintf("o-v3-%d-%d", i, n), key, paysim.NotifyOptions{})
	})
	time.Sleep(300 * time.Millisecond)
	// Runbook step 1: the new key joins as the previous one (decrypt only).
	r.secret.set("WECHATPAY_APIV3_KEY_PREVIOUS", newKey)
	r.settle()
	// Step 2: the merchant sets the new key in the portal.
	portalChanged.Store(true)
	time.Sleep(300 * time.Millisecond)
	// Step 3: the new key becomes current, the old one previous.
	r.secret.set("WECHATPAY_APIV3_KEY", newKey, "WECHATPAY_APIV3_KEY_PREVIOUS", oldKey)
	r.settle()
	time.Sleep(300 * time.Millisecond)
	tr.end(t, "APIv3 key rotation")
	r.noSecretsWritten(newKey)
}

var (
	thirdOnce sync.Once
	thirdKey  *rsa.PrivateKey
)

func newWeChatPayKey(t *testing.T) (*rsa.PrivateKey, string) {
	thirdOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		thirdKey = k
	})
	der, _ := x509.MarshalPKIXPublicKey(&thirdKey.PublicKey)
	return thirdKey, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func TestRotateWeChatPayPublicKeyUnderTrafficLosesNoNotification(t *testing.T) {
	r := newRotStack(t)
	old := r.sim.Keys()
	newKey, newPEM := newWeChatPayKey(t)
	const newID = "PUB_KEY_ID_0119000001202512010000000000000042"
	var switching atomic.Bool
	tr := runTraffic(4, func(i, n int) error {
		sign := paysim.NotifyOptions{}
		if switching.Load() && n%2 == 0 {
			sign = paysim.NotifyOptions{SignWith: newKey, Serial: newID}
		}
		if err := r.paidNotification(fmt.Sprintf("o-pk-%d-%d", i, n), testAPIv3, sign); err != nil {
			return err
		}
		// An API call whose reply the simulator signs with the old key.
		tok := token(t, strings.Repeat("s", 32), fmt.Sprintf("o-pkq-%d-%d", i, n))
		id, err := r.newOrder(tok)
		if err != nil {
			return err
		}
		if st, m := r.jsonCall("/pay", tok, map[string]string{"order_id": id}); st != 200 {
			return fmt.Errorf("pay (reply signed with the old key): %d %v", st, m["code"])
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond)
	// WeChat Pay announces a new public key: it becomes current, the old
	// one previous, and both are accepted while WeChat Pay switches.
	r.secret.set("WECHATPAY_PUBLIC_KEY_ID", newID, "WECHATPAY_PUBLIC_KEY", newPEM,
		"WECHATPAY_PUBLIC_KEY_ID_PREVIOUS", old.PublicKeyID, "WECHATPAY_PUBLIC_KEY_PREVIOUS", old.PublicKeyPEM)
	r.settle()
	switching.Store(true)
	time.Sleep(200 * time.Millisecond)
	tr.end(t, "WeChat Pay public key switch")
}

func TestRotateMerchantKeyAndSerialUnderTrafficLosesNoRequest(t *testing.T) {
	r := newRotStack(t)
	const newSerial = "7D3C2B1A0F9E8D7C6B5A49382716051234567890"
	der, _ := x509.MarshalPKCS8PrivateKey(otherKey)
	newPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	// Runbook step 1: the new certificate is applied for at WeChat Pay,
	// which accepts both from then on.
	r.sim.AddMerchantCertificate(newSerial, &otherKey.PublicKey)
	tr := runTraffic(4, func(i, n int) error {
		tok := token(t, strings.Repeat("s", 32), fmt.Sprintf("o-mk-%d-%d", i, n))
		id, err := r.newOrder(tok)
		if err != nil {
			return err
		}
		st, m := r.jsonCall("/pay", tok, map[string]string{"order_id": id})
		if st != 200 {
			return fmt.Errorf("pay: %d %v", st, m["code"])
		}
		if st, m := r.jsonCall("/queryOrder", tok, map[string]string{"order_id": id}); st != 200 {
			return fmt.Errorf("queryOrder: %d %v", st, m["code"])
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond)
	// Step 2: the secret gets the new key and serial together.
	r.secret.set("WECHATPAY_MCH_PRIVATE_KEY", newPEM, "WECHATPAY_MCH_CERT_SERIAL", newSerial)
	r.settle()
	before := r.sim.MerchantSerialsUsed()
	time.Sleep(200 * time.Millisecond)
	tr.end(t, "merchant key rotation")
	after := r.sim.MerchantSerialsUsed()
	if after[newSerial] <= before[newSerial] {
		t.Fatalf("no request was signed with the new merchant key after the rotation: %v", after)
	}
	if after[testMchSerial] != before[testMchSerial] {
		t.Fatalf("requests were still signed with the old merchant key after every function refreshed: %v -> %v", before, after)
	}
	r.noSecretsWritten(newPEM, merchantPEM)
}

func TestStoreOutageKeepsTheCachedSecretAndAFirstFetchFailureIs503(t *testing.T) {
	r := newRotStack(t)
	tok := token(t, strings.Repeat("s", 32), "o-outage")
	if _, err := r.newOrder(tok); err != nil {
		t.Fatal(err)
	}
	r.secret.setDown(true)
	time.Sleep(3 * rotRefresh)
	for i := 0; i < 5; i++ {
		if _, err := r.newOrder(tok); err != nil {
			t.Fatalf("during the outage, with a cached secret: %v", err)
		}
		time.Sleep(rotRefresh)
	}
	if !strings.Contains(r.logs.String(), "secret store unavailable") {
		t.Fatal("the outage was not logged")
	}
	// queryOrder has not fetched yet: it cannot serve without its secret.
	if st, m := r.jsonCall("/queryOrder", tok, map[string]string{"order_id": "PF20240101000000ABCDEFGHJKMN"}); st != 503 || m["code"] != "SECRETS_UNAVAILABLE" {
		t.Fatalf("a function that never fetched its secret answered %d %v, want 503 SECRETS_UNAVAILABLE", st, m)
	}
	r.secret.setDown(false)
	if st, m := r.jsonCall("/queryOrder", tok, map[string]string{"order_id": "PF20240101000000ABCDEFGHJKMN"}); st != 404 {
		t.Fatalf("after the outage: %d %v, want 404", st, m)
	}
}

func TestStoreBackedFunctionStillFailsItsColdStartWithoutANonSecretSetting(t *testing.T) {
	env := map[string]string{
		"PAYFN_SECRET_SOURCE": "aws-secretsmanager", "PAYFN_SECRET_ID": "payfn/pay",
		"WECHAT_APPID": testAppID, "WECHATPAY_MCHID": testMchID, "WECHATPAY_NOTIFY_URL": "https://pay.example.com/notify/wechatpay",
	}
	getenv := func(k string) string { return env[k] }
	if _, err := setup.Handler(setup.Pay, getenv, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("with every non-secret setting: %v", err)
	}
	delete(env, "WECHATPAY_MCHID")
	_, err := setup.Handler(setup.Pay, getenv, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "WECHATPAY_MCHID") || strings.Contains(err.Error(), "WECHATPAY_APIV3_KEY") {
		t.Fatalf("without WECHATPAY_MCHID: %v; want it named, and no secret setting", err)
	}
}

func TestAnUnusableSecretVersionIsRefusedWithoutQuotingIt(t *testing.T) {
	r := newRotStack(t)
	tok := token(t, strings.Repeat("s", 32), "o-bad-version")
	if _, err := r.newOrder(tok); err != nil {
		t.Fatal(err)
	}
	if st, _ := r.jsonCall("/pay", tok, map[string]string{"order_id": "PF20240101000000ABCDEFGHJKMN"}); st != 404 {
		t.Fatalf("pay: %d, want 404", st)
	}
	const leakyURI = "mongodb://payfn:hunter2hunter2@%zz/"
	const badKey = "-----BEGIN PRIVATE KEY-----\nbm90LWEta2V5LW5vdC1hLWtleS1ub3QtYS1rZXk=\n-----END PRIVATE KEY-----"
	// A malformed setting whose error would quote it: withheld, because the
	// value came from the secret.
	r.secret.set("PAYFN_SESSION_TTL", "quoted-secret-value")
	time.Sleep(2 * rotRefresh)
	if _, err := r.newOrder(tok); err != nil {
		t.Fatalf("after an unusable PAYFN_SESSION_TTL: %v", err)
	}
	if !strings.Contains(r.logs.String(), "the error quoted a secret value and is withheld") {
		t.Fatal("an error quoting a value from the secret was not withheld")
	}
	r.secret.set("PAYFN_SESSION_TTL", "")
	for _, kv := range [][]string{{"MONGODB_URI", leakyURI}, {"PAYFN_SESSION_SECRET", "short-secret-value"}, {"WECHATPAY_MCH_PRIVATE_KEY", badKey}} {
		r.secret.set(kv...)
		time.Sleep(2 * rotRefresh)
		// createOrder refuses the version and keeps serving with the one before.
		if _, err := r.newOrder(tok); err != nil {
			t.Fatalf("after an unusable %s: %v", kv[0], err)
		}
		if kv[0] == "WECHATPAY_MCH_PRIVATE_KEY" {
			if st, m := r.jsonCall("/pay", tok, map[string]string{"order_id": "PF20240101000000ABCDEFGHJKMN"}); st != 404 {
				t.Fatalf("pay after an unusable merchant key: %d %v, want 404 from the version before", st, m)
			}
		}
	}
	logs := r.logs.String()
	if !strings.Contains(logs, "the secret's new version is unusable") {
		t.Fatal("the unusable versions were not logged")
	}
	if testing.Verbose() {
		for _, l := range strings.Split(logs, "\n") {
			if strings.Contains(l, "unusable") {
				t.Log(l)
			}
		}
	}
	for _, v := range []string{"hunter2hunter2", "short-secret-value", "bm90LWEta2V5", "quoted-secret-value"} {
		if strings.Contains(logs, v) || strings.Contains(r.bodies.String(), v) {
			t.Errorf("%q appears in the logs or an answer", v)
		}
	}
}
