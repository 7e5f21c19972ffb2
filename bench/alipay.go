package bench

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/payfn/payfn/shared/alipay"
	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/metrics"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/runtime/awslambda"
	"github.com/payfn/payfn/shared/runtime/httpapi"
	"github.com/payfn/payfn/shared/setup"
)

// The Alipay merchant of the benchmarks.
const (
	AlipayAppID    = "2021000000000001"
	AlipaySellerID = "2088000000000001"
)

// alipayKeys are "Alipay"'s signing key and the merchant's app key, made
// once per process (RSA-2048 generation is slow).
var alipayKeys = sync.OnceValues(func() ([2]*rsa.PrivateKey, error) {
	var ks [2]*rsa.PrivateKey
	for i := range ks {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return ks, err
		}
		ks[i] = k
	}
	return ks, nil
})

// AlipayNotice is a signed notification of a paid alipay_mini order.
type AlipayNotice struct {
	Order  orderRef
	TxID   string
	Body   []byte
	signed string // the string the signature covers, for the floor
	sig    string
}

type orderRef = struct{ ID string }

// ordersToPut are the orders a notification pays, reset before each use.
type ordersToPut struct {
	o  order.Order
	tx string
}

// alipaySign signs a notification's parameters as Alipay does: every
// parameter but sign and sign_type with a value, sorted, k=v joined by &,
// SHA256withRSA.
func alipaySign(key *rsa.PrivateKey, p url.Values) (content, sig string, err error) {
	keys := make([]string, 0, len(p))
	for k, vs := range p {
		if k != "sign" && k != "sign_type" && vs[0] != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k + "=" + p.Get(k))
	}
	sum := sha256.Sum256([]byte(b.String()))
	s, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", "", err
	}
	return b.String(), base64.StdEncoding.EncodeToString(s), nil
}

// alipayFixture is an Alipay channel (its client, no gateway call made)
// and n paid orders with their signed notifications, the orders in st.
func alipayFixture(f *Fixture, n int) (*alipay.Client, []AlipayNotice, []ordersToPut, error) {
	ks, err := alipayKeys()
	if err != nil {
		return nil, nil, nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&ks[0].PublicKey)
	if err != nil {
		return nil, nil, nil, err
	}
	appKey, err := x509.MarshalPKCS8PrivateKey(ks[1])
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := alipay.New(alipay.Config{
		AppID: AlipayAppID, SellerID: AlipaySellerID,
		AppPrivateKeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: appKey})),
		PublicKeyPEM:     string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})),
		GatewayURL:       "http://127.0.0.1:9/gateway.do", NotifyURL: "http://127.0.0.1:9/notify/alipay",
		Logger: discardLogger(),
	})
	if err != nil {
		return nil, nil, nil, err
	}
	orders, err := f.Orders(n)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now().In(time.FixedZone("CST", 8*3600))
	out := make([]AlipayNotice, n)
	puts := make([]ordersToPut, n)
	for i, o := range orders {
		o.Channel, o.PayerOpenID = app.ChannelAlipayMini, "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5"
		tx := fmt.Sprintf("%s22001%015d", now.Format("20060102"), i)
		p := url.Values{
			"notify_time": {now.Format(time.DateTime)}, "notify_type": {"trade_status_sync"},
			"notify_id": {fmt.Sprintf("2026120100222%011d", i)}, "charset": {"utf-8"}, "version": {"1.0"},
			"app_id": {AlipayAppID}, "seller_id": {AlipaySellerID}, "auth_app_id": {AlipayAppID},
			"trade_no": {tx}, "out_trade_no": {o.ID}, "trade_status": {"TRADE_SUCCESS"},
			"total_amount": {alipay.FormatYuan(o.TotalFen)}, "receipt_amount": {alipay.FormatYuan(o.TotalFen)},
			"buyer_pay_amount": {alipay.FormatYuan(o.TotalFen)}, "invoice_amount": {alipay.FormatYuan(o.TotalFen)},
			"buyer_open_id": {o.PayerOpenID}, "subject": {o.Product.Title},
			"gmt_create": {now.Format(time.DateTime)}, "gmt_payment": {now.Format(time.DateTime)},
			"fund_bill_list": {`[{"amount":"` + alipay.FormatYuan(o.TotalFen) + `","fundChannel":"ALIPAYACCOUNT"}]`},
		}
		content, sig, err := alipaySign(ks[0], p)
		if err != nil {
			return nil, nil, nil, err
		}
		p.Set("sign", sig)
		p.Set("sign_type", "RSA2")
		out[i] = AlipayNotice{Order: orderRef{ID: o.ID}, TxID: tx, Body: []byte(p.Encode()), signed: content, sig: sig}
		puts[i] = ordersToPut{o: o, tx: tx}
	}
	return c, out, puts, nil
}

// AlipayNotifyFloorOp is the least an Alipay notification needs: parsing
// the form body and one RSA2 (SHA256withRSA) verification of the signed
// string, with the Base64 decode of the signature.
func AlipayNotifyFloorOp(f *Fixture) (func(i int) error, error) {
	ks, err := alipayKeys()
	if err != nil {
		return nil, err
	}
	_, ns, _, err := alipayFixture(f, poolSize)
	if err != nil {
		return nil, err
	}
	pub := &ks[0].PublicKey
	return func(i int) error {
		n := &ns[i%len(ns)]
		if _, err := url.ParseQuery(string(n.Body)); err != nil {
			return err
		}
		sig, err := base64.StdEncoding.DecodeString(n.sig)
		if err != nil {
			return err
		}
		sum := sha256.Sum256([]byte(n.signed))
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig)
	}, nil
}

// AlipayNotifyOp is the whole alipayNotify function per notification, as
// deployed (Lambda event conversion, HTTP layer, the channel's verification
// and translation, merchant and amount checks, ledger row, settlement claim,
// order update, logs, metrics line), store in memory. Every call checks the
// answer is "success" and the order PAID.
func AlipayNotifyOp(f *Fixture) (op func(i int) error, closeFn func(), err error) {
	c, ns, puts, err := alipayFixture(f, poolSize)
	if err != nil {
		return nil, nil, err
	}
	st := newMemStore()
	log := discardLogger()
	ac := app.Config{Store: st, Channels: []app.Channel{c.Mini()}, Logger: log}
	setup.Instrument(&ac)
	a := app.New(ac)
	h := awslambda.NewHandler(metrics.New(io.Discard, metrics.Options{Service: "payfn", Function: "alipayNotify", RequestID: httpapi.RequestID}).
		Handler(httpapi.New(a, log).AlipayNotify(), nil), log)
	evs := make([]events.APIGatewayV2HTTPRequest, len(ns))
	for i := range ns {
		e := events.APIGatewayV2HTTPRequest{
			Version: "2.0", RawPath: httpapi.PathAlipayNotify, Body: string(ns[i].Body),
			Headers: map[string]string{"content-type": "application/x-www-form-urlencoded; charset=utf-8", "host": "payfn.example"},
		}
		e.RequestContext.HTTP.Method = http.MethodPost
		e.RequestContext.HTTP.Path = httpapi.PathAlipayNotify
		e.RequestContext.HTTP.Protocol = "HTTP/1.1"
		e.RequestContext.HTTP.SourceIP = "203.0.113.9"
		e.RequestContext.RequestID = "bench-request"
		evs[i] = e
	}
	ctx := context.Background()
	return func(i int) error {
		k := i % len(ns)
		st.put(puts[k].o, puts[k].tx)
		resp, err := h(ctx, evs[k])
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || resp.Body != "success" {
			return fmt.Errorf("alipayNotify answered %d %s", resp.StatusCode, resp.Body)
		}
		if o, _ := st.Order(ctx, ns[k].Order.ID); o.Status != "PAID" {
			return fmt.Errorf("order is %s after its notification, want PAID", o.Status)
		}
		return nil
	}, c.Close, nil
}
