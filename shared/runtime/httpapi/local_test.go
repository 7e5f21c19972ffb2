package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/config"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/setup"
	"github.com/payfn/payfn/shared/store/storetest"
)

// Issue 10, items 7 and 8, on the local stack: every function served by
// setup exactly as the dev stack serves it, against the simulator and the
// embedded store.

const (
	appID     = "wx1234567890abcdef"
	mchID     = "1900000109"
	apiV3Key  = "0123456789abcdef0123456789abcdef"
	mchSerial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
	adminKey  = "admin-key-admin-key-admin-key-admin"
)

// local is the stack behind an httptest server, with every log line kept.
type local struct {
	t        *testing.T
	sim      *paysim.Server
	platform *rsa.PrivateKey // the simulator's signing key, to sign bodies of our own
	stack    *setup.Stack
	url      string
	logs     *lockedBuffer
}

func newLocal(t *testing.T) *local {
	t.Helper()
	merchant, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	platform, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(merchant)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := paysim.New(paysim.Options{
		MchID: mchID, AppID: appID, AppSecret: "app-secret", APIv3Key: apiV3Key,
		MerchantSerial: mchSerial, MerchantPublicKey: &merchant.PublicKey, PlatformKey: platform,
		RetrySchedule: []time.Duration{time.Hour}, // the test delivers what it needs itself
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })

	var handler http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	uri, db := storetest.URI(t)
	k := sim.Keys()
	cfg := config.Config{
		MongoURI: uri, MongoDatabase: db,
		AppID: appID, AppSecret: "app-secret", LoginBaseURL: sim.URL(),
		SessionSecret: strings.Repeat("s", 32), SessionTTL: time.Hour, AdminKey: adminKey,
		MchID: mchID, MchCertSerial: mchSerial, MchPrivateKeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		APIv3Key: apiV3Key, NotifyURL: srv.URL + httpapi.PathVerifyPayment,
		PublicKeyID: k.PublicKeyID, PublicKeyPEM: k.PublicKeyPEM,
		PayBaseURL: sim.URL(), PayTimeout: 5 * time.Second, OrderTTL: 30 * time.Minute,
	}
	logs := &lockedBuffer{}
	// The core logs through LogHandler, so its lines name the request too.
	logger := slog.New(httpapi.LogHandler(slog.NewJSONHandler(logs, nil)))
	stack, err := setup.NewStack(cfg, setup.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stack.Close(context.Background()) })
	handler = stack.Handler
	if err := stack.Store.UpsertProducts(context.Background(), order.Product{ID: "latte", Title: "Latte", PriceFen: 2800, Active: true}); err != nil {
		t.Fatal(err)
	}
	return &local{t: t, sim: sim, platform: platform, stack: stack, url: srv.URL, logs: logs}
}

type answer struct {
	status int
	id     string // X-Request-Id
	body   map[string]any
}

func (a answer) str(key string) string { s, _ := a.body[key].(string); return s }

func (l *local) do(method, path string, header http.Header, body string) answer {
	l.t.Helper()
	req, err := http.NewRequest(method, l.url+path, strings.NewReader(body))
	if err != nil {
		l.t.Fatal(err)
	}
	if header != nil {
		req.Header = header
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, id: resp.Header.Get(httpapi.HeaderRequestID)}
	if err := json.NewDecoder(resp.Body).Decode(&a.body); err != nil {
		l.t.Errorf("%s %s answered %d with a body that is not JSON: %v", method, path, resp.StatusCode, err)
	}
	return a
}

func (l *local) post(path, token, body string) answer {
	l.t.Helper()
	h := http.Header{"Content-Type": {"application/json"}}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return l.do(http.MethodPost, path, h, body)
}

// logLines returns the JSON log lines, each decoded.
func (l *local) logLines() []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(l.logs.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			l.t.Fatalf("log line is not JSON: %s", sc.Bytes())
		}
		out = append(out, m)
	}
	return out
}

func TestEveryLocalAnswerNamesOneRequestIDInHeaderBodyAndLogs(t *testing.T) {
	l := newLocal(t)
	var answers []answer
	expect := func(a answer, status int, code string) answer {
		t.Helper()
		answers = append(answers, a)
		if a.status != status || a.str("code") != code && code != "" {
			t.Errorf("answered %d %v, want %d %s", a.status, a.body, status, code)
		}
		if a.id == "" {
			t.Errorf("%d %v: no X-Request-Id", a.status, a.body)
		}
		if a.status >= 400 && a.str("request_id") != a.id {
			t.Errorf("error body names request %q, header %q", a.str("request_id"), a.id)
		}
		return a
	}

	login := expect(l.post(httpapi.PathLogin, "", `{"code":"`+l.sim.NewLoginCode("o-buyer")+`"}`), 200, "")
	token := login.str("token")
	created := expect(l.post(httpapi.PathCreateOrder, token, `{"product_id":"latte","quantity":2,"request_id":"rid-1"}`), 201, "")
	expect(l.post(httpapi.PathCreateOrder, token, `{"product_id":"latte","quantity":"2","request_id":"rid-2"}`), 400, "INVALID_QUANTITY")
	expect(l.post(httpapi.PathQueryOrder, token, `{"order_id":"`+created.str("order_id")+`"}`), 200, "")
	expect(l.do(http.MethodGet, httpapi.PathPay, nil, ""), 405, "METHOD_NOT_ALLOWED")
	expect(l.do(http.MethodPost, "/no/such/function", nil, "{}"), 404, "NOT_FOUND")
	expect(l.do(http.MethodPost, httpapi.PathLogin, nil, `{"code":"abc"}`), 415, "UNSUPPORTED_MEDIA_TYPE")

	// verifyPayment: a genuine notification for the order is acknowledged;
	// the same body with its signature broken is refused.
	tx := paysim.Transaction{
		AppID: appID, MchID: mchID, OutTradeNo: created.str("order_id"), TransactionID: "4200000000202601011234567890",
		TradeType: "JSAPI", TradeState: "SUCCESS", SuccessTime: time.Now().Format(time.RFC3339),
		Payer: &paysim.Payer{OpenID: "o-buyer"}, Amount: &paysim.Amount{Total: 5600, PayerTotal: 5600, Currency: "CNY", PayerCurrency: "CNY"},
	}
	hdr, body, err := l.sim.BuildNotification(tx, paysim.NotifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ack := expect(l.do(http.MethodPost, httpapi.PathVerifyPayment, hdr.Clone(), string(body)), 200, "SUCCESS")
	if _, named := ack.body["request_id"]; named {
		t.Errorf("the acknowledgement is WeChat Pay's exact shape, without request_id: %v", ack.body)
	}
	forged := hdr.Clone()
	forged.Set("Wechatpay-Signature", "AAAA"+forged.Get("Wechatpay-Signature")[4:])
	expect(l.do(http.MethodPost, httpapi.PathVerifyPayment, forged, string(body)), 401, "INVALID_NOTIFICATION")

	ids := map[string]bool{}
	for _, a := range answers {
		if ids[a.id] {
			t.Errorf("request id %s answered twice", a.id)
		}
		ids[a.id] = true
	}
	// Every log line that names a request names one of these, every answer
	// has its access line, and the core's own lines name the request they
	// were written for.
	access := map[string]bool{}
	coreLines := 0
	for _, line := range l.logLines() {
		id, _ := line["request_id"].(string)
		if id != "" && !ids[id] {
			t.Errorf("log line names an unknown request: %v", line)
		}
		if line["msg"] == "request" {
			access[id] = true
		}
		if line["msg"] == "order created" || line["msg"] == "order paid" {
			coreLines++
		}
		if line["msg"] == "order created" && id != created.id {
			t.Errorf("order created logged for request %q, createOrder answered %q", id, created.id)
		}
		if line["msg"] == "order paid" && id != ack.id {
			t.Errorf("order paid logged for request %q, the notification answered %q", id, ack.id)
		}
	}
	if coreLines != 2 {
		t.Errorf("want the core's order created and order paid lines, found %d:\n%s", coreLines, l.logs.String())
	}
	for id := range ids {
		if !access[id] {
			t.Errorf("no access log line for request %s", id)
		}
	}
}

func TestFieldInAnotherCaseNeverCreatesAnOrder(t *testing.T) {
	l := newLocal(t)
	token := l.post(httpapi.PathLogin, "", `{"code":"`+l.sim.NewLoginCode("o-buyer")+`"}`).str("token")
	for i, body := range []string{
		`{"PRODUCT_ID":"latte","quantity":1,"request_id":"case-0"}`,
		`{"Product_Id":"latte","quantity":1,"request_id":"case-1"}`,
		`{"product_id":"latte","QUANTITY":1,"request_id":"case-2"}`,
		`{"product_id":"latte","quantity":1,"Request_ID":"case-3"}`,
	} {
		if a := l.post(httpapi.PathCreateOrder, token, body); a.status != 400 || a.str("code") != "UNKNOWN_FIELD" {
			t.Errorf("%s: %d %v, want 400 UNKNOWN_FIELD", body, a.status, a.body)
		}
		rid := "case-" + string(rune('0'+i))
		if _, err := l.stack.Store.OrderByRequest(context.Background(), order.DefaultApp, "o-buyer", rid); !errors.Is(err, order.ErrNotFound) {
			t.Errorf("%s made an order (err %v)", body, err)
		}
	}
	// Control: spelt exactly, the same request makes its order.
	if a := l.post(httpapi.PathCreateOrder, token, `{"product_id":"latte","quantity":1,"request_id":"case-0"}`); a.status != 201 {
		t.Errorf("exact spelling: %d %v, want 201", a.status, a.body)
	}
}

// sign returns body's WeChat Pay headers, signed with the platform key as
// WeChat Pay signs: SHA256withRSA over "timestamp\nnonce\nbody\n".
func (l *local) sign(body []byte) http.Header {
	l.t.Helper()
	ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), "duplicate-key-nonce"
	sum := sha256.Sum256([]byte(ts + "\n" + nonce + "\n" + string(body) + "\n"))
	sig, err := rsa.SignPKCS1v15(rand.Reader, l.platform, crypto.SHA256, sum[:])
	if err != nil {
		l.t.Fatal(err)
	}
	return http.Header{
		"Content-Type": {"application/json"}, "Wechatpay-Serial": {l.sim.Keys().PublicKeyID},
		"Wechatpay-Timestamp": {ts}, "Wechatpay-Nonce": {nonce}, "Wechatpay-Signature": {base64.StdEncoding.EncodeToString(sig)},
	}
}

// Issue 10, item 9, over HTTP: a correctly signed notification naming
// event_type twice (CLOSED, then SUCCESS) is 401 INVALID_NOTIFICATION and
// pays nothing; decided on its last copy it would have paid the order.
func TestSignedNotificationNamingAFieldTwiceIsInvalidAndPaysNothing(t *testing.T) {
	l := newLocal(t)
	token := l.post(httpapi.PathLogin, "", `{"code":"`+l.sim.NewLoginCode("o-buyer")+`"}`).str("token")
	id := l.post(httpapi.PathCreateOrder, token, `{"product_id":"latte","quantity":1,"request_id":"dup-1"}`).str("order_id")
	tx := paysim.Transaction{
		AppID: appID, MchID: mchID, OutTradeNo: id, TransactionID: "4200000000202601010000000042",
		TradeType: "JSAPI", TradeState: "SUCCESS", SuccessTime: time.Now().Format(time.RFC3339),
		Payer: &paysim.Payer{OpenID: "o-buyer"}, Amount: &paysim.Amount{Total: 2800, PayerTotal: 2800, Currency: "CNY", PayerCurrency: "CNY"},
	}
	_, genuine, err := l.sim.BuildNotification(tx, paysim.NotifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	twice := append([]byte(`{"event_type":"TRANSACTION.CLOSED",`), genuine[1:]...)
	a := l.do(http.MethodPost, httpapi.PathVerifyPayment, l.sign(twice), string(twice))
	if a.status != 401 || a.str("code") != "INVALID_NOTIFICATION" {
		t.Errorf("event_type twice: %d %v, want 401 INVALID_NOTIFICATION", a.status, a.body)
	}
	if o, err := l.stack.Store.Order(context.Background(), id); err != nil || o.Status != order.StatusNotPay {
		t.Errorf("order after the refused notification: %s (%v), want NOTPAY", o.Status, err)
	}
	// Control: the same body without the first copy, signed alike, pays.
	if a := l.do(http.MethodPost, httpapi.PathVerifyPayment, l.sign(genuine), string(genuine)); a.status != 200 {
		t.Errorf("genuine: %d %v, want 200", a.status, a.body)
	}
}

// lockedBuffer is a log sink safe to write from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
