package setup_test

// The purchase flow end to end. The hostile-notification matrix is in
// hostile_test.go, the races in race_test.go, store faults and outages in
// faults_test.go, client attacks in client_test.go.

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/config"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/setup"
)

func TestWholePurchaseEndsPaidWithOneLedgerRow(t *testing.T) {
	h := newHarness(t)
	token := h.login("o-buyer")
	id := h.createOrder(token, "latte", 2)
	prepayID, payment := h.pay(token, id)

	// The paySign must verify with the merchant key over WeChat's four lines.
	msg := fmt.Sprintf("%s\n%s\n%s\n%s\n", payment["appId"], payment["timeStamp"], payment["nonceStr"], payment["package"])
	sig, _ := base64.StdEncoding.DecodeString(payment["paySign"].(string))
	sum := sha256.Sum256([]byte(msg))
	if err := rsa.VerifyPKCS1v15(&merchantKey.PublicKey, crypto.SHA256, sum[:], sig); err != nil || payment["signType"] != "RSA" || payment["appId"] != testAppID {
		t.Fatalf("payment params do not verify: %v %+v", err, payment)
	}

	paid, err := h.sim.Pay(context.Background(), prepayID, paysim.PayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h.waitAcked(id)

	q := h.query(token, id).want(t, 200, "")
	if q.str("status") != "PAID" || q.str("transaction_id") != paid.TransactionID || q.body["total_fen"] != float64(5600) {
		t.Fatalf("queryOrder = %s", q.raw)
	}
	ledger := h.ledger(id)
	if len(ledger) != 1 || !ledger[0].Matched || ledger[0].TotalFen != 5600 || ledger[0].Source != "notification" {
		t.Fatalf("ledger = %+v", ledger)
	}
}

func TestLostNotificationIsReconciledByQueryOrder(t *testing.T) {
	h := newHarness(t)
	token := h.login("o-buyer")
	id := h.createOrder(token, "latte", 1)
	prepayID, _ := h.pay(token, id)
	if _, err := h.sim.Pay(context.Background(), prepayID, paysim.PayOptions{NoNotify: true}); err != nil {
		t.Fatal(err)
	}
	if got := h.order(id).Status; got != order.StatusNotPay {
		t.Fatalf("order is %s before anyone asked", got)
	}
	q := h.query(token, id).want(t, 200, "")
	if q.str("status") != "PAID" {
		t.Fatalf("queryOrder = %s", q.raw)
	}
	if l := h.ledger(id); len(l) != 1 || l[0].Source != "query" {
		t.Fatalf("ledger = %+v", l)
	}
	if got := h.order(id).Status; got != order.StatusPaid {
		t.Fatalf("stored order is %s after reconciliation", got)
	}
}

func TestDuplicateNotificationsPayTheOrderOnce(t *testing.T) {
	h := newHarness(t)
	token := h.login("o-buyer")
	id := h.createOrder(token, "latte", 1)
	prepayID, _ := h.pay(token, id)
	paid, err := h.sim.Pay(context.Background(), prepayID, paysim.PayOptions{Duplicates: 15})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := h.sim.WaitDeliveries(ctx, id, 16)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if !d.Acked {
			t.Errorf("a duplicate delivery was not acknowledged: %+v", d)
		}
	}
	// And one more, genuine, replayed by hand after success.
	tx := h.paidTx(id, "o-buyer", 2800)
	tx.TransactionID = paid.TransactionID
	if status, body := h.notify(tx, paysim.NotifyOptions{}); status != 200 {
		t.Fatalf("replay answered %d %s", status, body)
	}
	claims, err := h.stack.Store.Claims(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if l := h.ledger(id); len(l) != 1 || len(claims) != 1 || h.order(id).Status != order.StatusPaid {
		t.Fatalf("ledger %d rows, %d claims, status %s; want 1, 1, PAID", len(l), len(claims), h.order(id).Status)
	}
}

func TestWrongPaidAmountIsRecordedAsExceptionAndAcknowledged(t *testing.T) {
	h := newHarness(t)
	token := h.login("o-buyer")
	id := h.createOrder(token, "latte", 1)
	prepayID, _ := h.pay(token, id)
	if _, err := h.sim.Pay(context.Background(), prepayID, paysim.PayOptions{PaidTotalFen: 2799}); err != nil {
		t.Fatal(err)
	}
	h.waitAcked(id)
	if o := h.order(id); o.Status != order.StatusException {
		t.Fatalf("order is %s, want EXCEPTION", o.Status)
	}
	l := h.ledger(id)
	if len(l) != 1 || l[0].Matched || l[0].TotalFen != 2799 {
		t.Fatalf("ledger = %+v", l)
	}
	h.postJSON("/pay", token, map[string]string{"order_id": id}).want(t, 409, "ORDER_NOT_PAYABLE")
}

func TestStoreDownMeansNoAcknowledgement(t *testing.T) {
	h := newHarness(t)
	token := h.login("o-buyer")
	id := h.createOrder(token, "latte", 1)
	// The same functions, configured with a store nobody listens on.
	cfg := h.cfg
	cfg.MongoURI = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300&connectTimeoutMS=300"
	down, err := setup.NewStack(cfg, setup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close(context.Background())
	srv := httptest.NewServer(down.Handler)
	defer srv.Close()

	hdr, body, err := h.sim.BuildNotification(h.paidTx(id, "o-buyer", 2800), paysim.NotifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	status, err := h.sim.Deliver(context.Background(), srv.URL+"/notify/wechatpay", hdr, body)
	if err != nil || status != 503 {
		t.Fatalf("store down: answered %d (%v), want 503", status, err)
	}
	if h.order(id).Status != order.StatusNotPay {
		t.Fatal("order changed although the notification was not acknowledged")
	}
	// WeChat Pay retries the same notification; the store is back: recorded.
	status, err = h.sim.Deliver(context.Background(), h.url+"/notify/wechatpay", hdr, body)
	if err != nil || status != 200 {
		t.Fatalf("retry answered %d (%v)", status, err)
	}
	if h.order(id).Status != order.StatusPaid || len(h.ledger(id)) != 1 {
		t.Fatal("retried notification did not pay the order exactly once")
	}
}

func TestRepeatedPayReusesThePrepayID(t *testing.T) {
	h := newHarness(t)
	token := h.login("o-buyer")
	id := h.createOrder(token, "latte", 1)
	first, p1 := h.pay(token, id)
	second, p2 := h.pay(token, id)
	if first == "" || first != second {
		t.Fatalf("prepay ids %q then %q", first, second)
	}
	if p1["nonceStr"] == p2["nonceStr"] {
		t.Fatal("payment params were not freshly signed")
	}
}

func TestPayAfterThePrepayWindowGetsAFreshPrepayNotAnError(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := newHarnessWith(t, setup.Options{Now: clock}, func(c *config.Config) {
		c.OrderTTL = 3 * time.Hour
		c.SessionTTL = 5 * time.Hour
	})
	token := h.login("o-buyer")
	id := h.createOrder(token, "latte", 1)
	first, _ := h.pay(token, id)
	mu.Lock()
	now = now.Add(111 * time.Minute) // past the 110-minute reuse window
	mu.Unlock()
	second, _ := h.pay(token, id)
	if second == "" || second == first {
		t.Fatalf("prepay ids %q then %q: want a fresh one", first, second)
	}
	// The fresh prepay_id is payable and pays the same order once.
	if _, err := h.sim.Pay(context.Background(), second, paysim.PayOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitAcked(id)
	if h.order(id).Status != order.StatusPaid || len(h.ledger(id)) != 1 {
		t.Fatal("order not paid exactly once")
	}
}
