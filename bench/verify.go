package bench

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/metrics"
	"github.com/payfn/payfn/shared/runtime/awslambda"
	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/setup"
	"github.com/payfn/payfn/shared/store"
)

// poolSize notifications are built per benchmark and used in turn: building
// one costs an RSA signature, so b.N of them would dominate the run.
const poolSize = 32

// reportCPU reports the process CPU used since start per operation.
func reportCPU(b *testing.B, start int64) {
	b.ReportMetric(float64(int64(cpuTime())-start)/float64(b.N), "cpu-ns/op")
}

// floorInput is what the floor needs of a notification, extracted up front.
type floorInput struct {
	msg, sig                 string
	nonce, ad, ciphertextB64 string
}

func floorInputs(ns []Notice) ([]floorInput, error) {
	out := make([]floorInput, len(ns))
	for i, n := range ns {
		var env struct {
			Resource struct {
				Ciphertext     string `json:"ciphertext"`
				Nonce          string `json:"nonce"`
				AssociatedData string `json:"associated_data"`
			} `json:"resource"`
		}
		if err := json.Unmarshal(n.Body, &env); err != nil {
			return nil, err
		}
		out[i] = floorInput{
			msg:           n.Header.Get("Wechatpay-Timestamp") + "\n" + n.Header.Get("Wechatpay-Nonce") + "\n" + string(n.Body) + "\n",
			sig:           n.Header.Get("Wechatpay-Signature"),
			nonce:         env.Resource.Nonce,
			ad:            env.Resource.AssociatedData,
			ciphertextB64: env.Resource.Ciphertext,
		}
	}
	return out, nil
}

// BenchVerifyFloor is the least any verifier must do per notification: one
// RSA-2048 PKCS#1 v1.5 SHA-256 verification of the signed message, one
// AES-256-GCM open of the resource, and a JSON decode of the plaintext into
// the SDK's Transaction. The base64 decodes of signature and ciphertext are
// counted too (they are part of the wire format, and cost about 1%).
func BenchVerifyFloor(b *testing.B) {
	f, err := Shared()
	if err != nil {
		b.Fatal(err)
	}
	op, err := VerifyFloorOp(f)
	if err != nil {
		b.Fatal(err)
	}
	runOps(b, op)
}

// VerifyFloorOp returns the floor operation of BenchVerifyFloor.
func VerifyFloorOp(f *Fixture) (func(i int) error, error) {
	ns, err := f.Notices(poolSize)
	if err != nil {
		return nil, err
	}
	in, err := floorInputs(ns)
	if err != nil {
		return nil, err
	}
	block, _ := aes.NewCipher([]byte(APIv3Key))
	gcm, _ := cipher.NewGCM(block)
	pub := f.Keys.PublicKey
	return func(i int) error {
		x := &in[i%len(in)]
		sig, err := base64.StdEncoding.DecodeString(x.sig)
		if err != nil {
			return err
		}
		sum := sha256.Sum256([]byte(x.msg))
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
			return err
		}
		ct, err := base64.StdEncoding.DecodeString(x.ciphertextB64)
		if err != nil {
			return err
		}
		pt, err := gcm.Open(ct[:0], []byte(x.nonce), ct, []byte(x.ad))
		if err != nil {
			return err
		}
		var tx payments.Transaction
		return json.Unmarshal(pt, &tx)
	}, nil
}

// runOps times op for b.N iterations and reports the process CPU per op.
func runOps(b *testing.B, op func(i int) error) {
	b.ReportAllocs()
	b.ResetTimer()
	start := int64(cpuTime())
	for i := 0; i < b.N; i++ {
		if err := op(i); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}

// BenchSDKParseNotify is wechatpay-go's own notify.Handler.ParseNotifyRequest
// (public-key verifier) on the same notifications, for reference.
func BenchSDKParseNotify(b *testing.B) {
	f, err := Shared()
	if err != nil {
		b.Fatal(err)
	}
	op, err := SDKParseNotifyOp(f)
	if err != nil {
		b.Fatal(err)
	}
	runOps(b, op)
}

// SDKParseNotifyOp returns the operation of BenchSDKParseNotify.
func SDKParseNotifyOp(f *Fixture) (func(i int) error, error) {
	ns, err := f.Notices(poolSize)
	if err != nil {
		return nil, err
	}
	h, err := notify.NewRSANotifyHandler(APIv3Key, verifiers.NewSHA256WithRSAPubkeyVerifier(f.Keys.PublicKeyID, *f.Keys.PublicKey))
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	return func(i int) error {
		n := &ns[i%len(ns)]
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "/", strings.NewReader(string(n.Body)))
		req.Header = n.Header
		var tx payments.Transaction
		_, err := h.ParseNotifyRequest(ctx, req, &tx)
		return err
	}, nil
}

// notifyEvent is the API Gateway HTTP API (payload 2.0) event that carries
// a notification to a deployed verifyPayment.
func notifyEvent(n *Notice) events.APIGatewayV2HTTPRequest {
	h := make(map[string]string, len(n.Header)+2)
	for k, vs := range n.Header {
		h[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	h["content-type"] = "application/json"
	h["host"] = "payfn.example"
	e := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RawPath: httpapi.PathVerifyPayment, Headers: h, Body: string(n.Body),
	}
	e.RequestContext.HTTP.Method = http.MethodPost
	e.RequestContext.HTTP.Path = httpapi.PathVerifyPayment
	e.RequestContext.HTTP.Protocol = "HTTP/1.1"
	e.RequestContext.HTTP.SourceIP = "203.0.113.7"
	e.RequestContext.RequestID = "bench-request"
	return e
}

// verifyHandler is the deployed verifyPayment function's handler (Lambda
// adapter → httpapi → app.VerifyPayment → wxpay) over st.
func verifyHandler(f *Fixture, st app.Store) (func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error), func(), error) {
	ch, err := f.Channel("", f.Keys)
	if err != nil {
		return nil, nil, err
	}
	log := discardLogger()
	// As deployed: the use cases count and time their calls, and each
	// invocation ends with its EMF line (encoded, then discarded here).
	ac := app.Config{Store: st, Channel: ch, Logger: log}
	setup.Instrument(&ac)
	a := app.New(ac)
	h := metrics.New(io.Discard, metrics.Options{Service: "payfn", Function: "verifyPayment", RequestID: httpapi.RequestID}).
		Handler(httpapi.New(a, log).VerifyPayment(), nil)
	return awslambda.NewHandler(h, log), ch.Close, nil
}

func checkAck(resp events.APIGatewayV2HTTPResponse, err error) error {
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Body, `"SUCCESS"`) {
		return fmt.Errorf("verifyPayment answered %d %s", resp.StatusCode, resp.Body)
	}
	return nil
}

// BenchVerifyPayment is the whole verifyPayment function per notification
// (event conversion, HTTP layer, signature, decryption, merchant and amount
// checks, ledger row, settlement claim, order update, logs) with the store
// in memory, so that no database round trip is counted. Each notification
// pays a fresh NOTPAY order: the pool's orders are reset in turn, a map
// write that is counted in the figure.
func BenchVerifyPayment(b *testing.B) {
	f, err := Shared()
	if err != nil {
		b.Fatal(err)
	}
	op, closeFn, err := VerifyPaymentOp(f)
	if err != nil {
		b.Fatal(err)
	}
	defer closeFn()
	runOps(b, op)
}

// VerifyPaymentOp returns the operation of BenchVerifyPayment. Every call
// checks that the notification was acknowledged and the order became PAID.
func VerifyPaymentOp(f *Fixture) (op func(i int) error, closeFn func(), err error) {
	ns, err := f.Notices(poolSize)
	if err != nil {
		return nil, nil, err
	}
	st := newMemStore()
	h, closeFn, err := verifyHandler(f, st)
	if err != nil {
		return nil, nil, err
	}
	evs := make([]events.APIGatewayV2HTTPRequest, len(ns))
	for i := range ns {
		evs[i] = notifyEvent(&ns[i])
	}
	ctx := context.Background()
	return func(i int) error {
		n := &ns[i%len(ns)]
		st.put(n.Order, n.TxID)
		if err := checkAck(h(ctx, evs[i%len(ns)])); err != nil {
			return err
		}
		if o, _ := st.Order(ctx, n.Order.ID); o.Status != "PAID" {
			return fmt.Errorf("order is %s after its notification, want PAID", o.Status)
		}
		return nil
	}, closeFn, nil
}

// VerifyPaymentUseCaseOp is VerifyPaymentOp without the deployed
// function's layers: app.VerifyPayment (wxpay's verification and
// decryption, the checks, ledger row, claim and order update, its log line)
// called directly with the notification's headers and body, store in
// memory. It is a secondary figure: it shows what the use case costs apart
// from the Lambda event conversion and the HTTP layer.
func VerifyPaymentUseCaseOp(f *Fixture) (op func(i int) error, closeFn func(), err error) {
	ns, err := f.Notices(poolSize)
	if err != nil {
		return nil, nil, err
	}
	st := newMemStore()
	ch, err := f.Channel("", f.Keys)
	if err != nil {
		return nil, nil, err
	}
	a := app.New(app.Config{Store: st, Channel: ch, Logger: discardLogger()})
	ctx := context.Background()
	return func(i int) error {
		n := &ns[i%len(ns)]
		st.put(n.Order, n.TxID)
		if err := a.VerifyPayment(ctx, n.Header, n.Body); err != nil {
			return err
		}
		if o, _ := st.Order(ctx, n.Order.ID); o.Status != "PAID" {
			return fmt.Errorf("order is %s after its notification, want PAID", o.Status)
		}
		return nil
	}, ch.Close, nil
}

// BenchVerifyPaymentEmbedded is BenchVerifyPayment on the real store
// (mongo-driver) against the embedded FerretDB of the local stack, in this
// process: cpu-ns/op includes FerretDB's and SQLite's CPU, ns/op the round
// trips. Every notification pays its own order, inserted before the timer.
func BenchVerifyPaymentEmbedded(b *testing.B) {
	f, err := Shared()
	if err != nil {
		b.Fatal(err)
	}
	uri, db, err := EmbeddedURI()
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.New(store.Options{URI: uri, Database: db})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	defer func() {
		st.Close(ctx)
	}()
	h, closeFn, err := verifyHandler(f, st)
	if err != nil {
		b.Fatal(err)
	}
	defer closeFn()
	// Warm the connection pool and the indexes with one payment.
	warm, err := f.Notices(1)
	if err != nil {
		b.Fatal(err)
	}
	if err := st.InsertOrder(ctx, warm[0].Order); err != nil {
		b.Fatal(err)
	}
	if err := checkAck(h(ctx, notifyEvent(&warm[0]))); err != nil {
		b.Fatal(err)
	}
	ns, err := f.Notices(b.N)
	if err != nil {
		b.Fatal(err)
	}
	evs := make([]events.APIGatewayV2HTTPRequest, len(ns))
	for i := range ns {
		if err := st.InsertOrder(ctx, ns[i].Order); err != nil {
			b.Fatal(err)
		}
		evs[i] = notifyEvent(&ns[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := int64(cpuTime())
	for i := 0; i < b.N; i++ {
		if err := checkAck(h(ctx, evs[i])); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}
