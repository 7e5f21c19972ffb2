package wxpay_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/channeltest"
	"github.com/payfn/payfn/shared/paysim"
	"github.com/payfn/payfn/shared/wxpay"
)

// notifyBox is the merchant's notify_url for a conformance run: it keeps
// each notification's exact header and body by out_trade_no, read back
// through the channel itself (the suite parses them again).
type notifyBox struct {
	srv *httptest.Server
	ch  atomic.Pointer[wxpay.Channel]
	mu  sync.Mutex
	got map[string]captured
}

type captured struct {
	header http.Header
	body   []byte
}

func newNotifyBox(t testing.TB) *notifyBox {
	b := &notifyBox{got: map[string]captured{}}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n, err := b.ch.Load().ParseNotification(r.Context(), r.Header, body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		b.mu.Lock()
		if _, ok := b.got[n.Transaction.OutTradeNo]; !ok {
			b.got[n.Transaction.OutTradeNo] = captured{r.Header.Clone(), body}
		}
		b.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *notifyBox) wait(t testing.TB, outTradeNo string) (http.Header, []byte) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		if c, ok := b.got[outTradeNo]; ok {
			return c.header.Clone(), c.body
		}
		if time.Now().After(deadline) {
			t.Fatalf("no notification for %s within 10s", outTradeNo)
		}
		b.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
		b.mu.Lock()
	}
}

// jsapiHarness is WeChat Pay JSAPI against paysim.
type jsapiHarness struct {
	sim *paysim.Server
	ch  *wxpay.Channel
	box *notifyBox
}

func (h jsapiHarness) Channel() app.Channel { return h.ch }

func (h jsapiHarness) Request(no string, fen int64) app.PrepayRequest {
	r := order(no, fen)
	r.TimeExpire = time.Now().Add(time.Hour)
	return r
}

func (h jsapiHarness) Pay(t testing.TB, _ app.PrepayRequest, p app.Prepaid) {
	t.Helper()
	if _, err := h.sim.Pay(context.Background(), strings.TrimPrefix(p.Payment.Package, "prepay_id="), paysim.PayOptions{}); err != nil {
		t.Fatalf("paysim pay: %v", err)
	}
}

func (h jsapiHarness) Notification(t testing.TB, no string) (http.Header, []byte) {
	return h.box.wait(t, no)
}

// Tamper changes one byte of the ciphertext-carrying body: the signature
// covers the body, so it no longer verifies.
func (h jsapiHarness) Tamper(header http.Header, body []byte) (http.Header, []byte) {
	s := strings.Replace(string(body), `"event_type":"TRANSACTION.SUCCESS"`, `"event_type":"TRANSACTION.SUCCESs"`, 1)
	if s == string(body) {
		s = string(body) + " "
	}
	return header, []byte(s)
}

func (h jsapiHarness) SettleRefunds(testing.TB) {}

var conformanceSeq atomic.Int64

func conformanceID(prefix string) func() string {
	return func() string {
		return fmt.Sprintf("%s%d%04d", prefix, time.Now().UnixNano()%1e9, conformanceSeq.Add(1))
	}
}

func TestJSAPIChannelPassesTheChannelConformanceSuite(t *testing.T) {
	sim := startSim(t, nil)
	box := newNotifyBox(t)
	ch := newChannel(t, config(sim, box.srv.URL+"/pay/notify"))
	box.ch.Store(ch)
	channeltest.Run(t, jsapiHarness{sim: sim, ch: ch, box: box}, conformanceID("CJ"))
}
