package paysim_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/jsapi"

	"github.com/payfn/payfn/shared/paysim"
)

const (
	mchID          = "1900000109"
	appID          = "wxd678efh567hg6787"
	appSecret      = "test-app-secret"
	apiV3Key       = "0123456789abcdefABCDEFGHIJKLMNOP" // 32 bytes
	merchantSerial = "3775B6A45ACD588826D15E583A95F5DD12345678"
	openID         = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
)

// RSA-2048 generation is slow, so the test binary makes its keys once.
var (
	keysOnce    sync.Once
	merchantKey *rsa.PrivateKey
	platformKey *rsa.PrivateKey
	otherKey    *rsa.PrivateKey
)

func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		for _, k := range []**rsa.PrivateKey{&merchantKey, &platformKey, &otherKey} {
			if *k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
				panic(err) // test setup only
			}
		}
	})
}

func startSim(t testing.TB, mutate func(*paysim.Options)) *paysim.Server {
	t.Helper()
	testKeys(t)
	opts := paysim.Options{
		MchID: mchID, AppID: appID, AppSecret: appSecret, APIv3Key: apiV3Key,
		MerchantSerial: merchantSerial, MerchantPublicKey: &merchantKey.PublicKey,
		PlatformKey:   platformKey,
		RetrySchedule: []time.Duration{5 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond},
	}
	if mutate != nil {
		mutate(&opts)
	}
	sim, err := paysim.New(opts)
	if err != nil {
		t.Fatalf("paysim.New: %v", err)
	}
	if err := sim.Listen("127.0.0.1:0"); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

// publicKeyClient is the real SDK client in WeChat Pay public-key mode,
// pointed at the simulator.
func publicKeyClient(t testing.TB, sim *paysim.Server) *core.Client {
	t.Helper()
	k := sim.Keys()
	c, err := core.NewClient(context.Background(),
		option.WithWechatPayPublicKeyAuthCipher(mchID, merchantSerial, merchantKey, k.PublicKeyID, k.PublicKey),
		option.WithHTTPClient(sim.HTTPClient()))
	if err != nil {
		t.Fatalf("core.NewClient: %v", err)
	}
	return c
}

func prepayRequest(outTradeNo, notifyURL string, total int64) jsapi.PrepayRequest {
	return jsapi.PrepayRequest{
		Appid:       core.String(appID),
		Mchid:       core.String(mchID),
		Description: core.String("Image形象店-深圳腾大-QQ公仔"),
		OutTradeNo:  core.String(outTradeNo),
		Attach:      core.String("cart=42"),
		NotifyUrl:   core.String(notifyURL),
		Amount:      &jsapi.Amount{Total: core.Int64(total), Currency: core.String("CNY")},
		Payer:       &jsapi.Payer{Openid: core.String(openID)},
	}
}

func prepay(t testing.TB, svc jsapi.JsapiApiService, req jsapi.PrepayRequest) string {
	t.Helper()
	resp, _, err := svc.Prepay(context.Background(), req)
	if err != nil {
		t.Fatalf("Prepay(%s): %v", *req.OutTradeNo, err)
	}
	return *resp.PrepayId
}

// receiver is a loopback notify_url whose answers the test chooses.
type receiver struct {
	srv      *httptest.Server
	requests chan recorded
}

type recorded struct {
	header http.Header
	body   []byte
}

func newReceiver(t testing.TB, answer func(n int, r *http.Request, body []byte) int) *receiver {
	t.Helper()
	rc := &receiver{requests: make(chan recorded, 100)}
	var mu sync.Mutex
	n := 0
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := readAll(r)
		mu.Lock()
		n++
		i := n
		mu.Unlock()
		status := answer(i, r, body)
		rc.requests <- recorded{header: r.Header.Clone(), body: body}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) url() string { return rc.srv.URL + "/pay/notify" }

func (rc *receiver) next(t testing.TB) recorded {
	t.Helper()
	select {
	case r := <-rc.requests:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no notification arrived within 10s")
		return recorded{}
	}
}

func readAll(r *http.Request) []byte {
	b, _ := io.ReadAll(r.Body)
	return b
}

func ctxTimeout(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
