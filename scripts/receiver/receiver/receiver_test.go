package receiver_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payfn/payfn/scripts/receiver/receiver"
	"github.com/payfn/payfn/shared/webhook"
)

// TestVerifiesAndProcessesEachEventOnce sends deliveries with payfn's own
// signer and sender: a genuine one is processed, a tampered one refused, and
// a retry of the same webhook-id answered 204 without processing it again.
func TestVerifiesAndProcessesEachEventOnce(t *testing.T) {
	secret, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var mu sync.Mutex
	var got []receiver.Event
	h, err := receiver.New(secret, slog.New(slog.NewJSONHandler(&logs, nil)), func(_ context.Context, e receiver.Event) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	sender := webhook.NewSender(webhook.SenderOptions{AllowPrivate: true})
	body := []byte(`{"id":"evt_1","type":"order.paid","created_at":"2026-01-02T03:04:05Z","data":{"order":{"order_id":"ord_1","status":"PAID","total_fen":1200},"attach":"cart=42"}}`)
	send := func(body []byte, header http.Header) int {
		t.Helper()
		res := sender.Send(context.Background(), srv.URL+"/", header, body)
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		return res.Status
	}
	signed := func(id string) http.Header {
		t.Helper()
		hd, err := webhook.Headers([]string{secret}, id, time.Now(), body)
		if err != nil {
			t.Fatal(err)
		}
		return hd
	}

	if st := send(body, signed("evt_1")); st != http.StatusNoContent {
		t.Fatalf("genuine delivery: %d, want 204", st)
	}
	tampered := bytes.Replace(body, []byte("cart=42"), []byte("cart=43"), 1)
	if st := send(tampered, signed("evt_1")); st != http.StatusBadRequest {
		t.Fatalf("tampered delivery: %d, want 400", st)
	}
	if st := send(body, http.Header{}); st != http.StatusBadRequest {
		t.Fatalf("unsigned delivery: %d, want 400", st)
	}
	if st := send(body, signed("evt_1")); st != http.StatusNoContent {
		t.Fatalf("retried delivery: %d, want 204", st)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Type != "order.paid" || got[0].Data.Order.OrderID != "ord_1" || got[0].Data.Attach != "cart=42" {
		t.Fatalf("processed %+v, want the one genuine event once", got)
	}
	if !strings.Contains(logs.String(), `"attach":"cart=42"`) || !strings.Contains(logs.String(), "webhook already processed") {
		t.Errorf("log lacks the event or the duplicate:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), strings.TrimPrefix(secret, webhook.SecretPrefix)) {
		t.Error("the log holds the secret")
	}
}

func TestRefusesAMalformedSecretWithoutRepeatingIt(t *testing.T) {
	_, err := receiver.New("whsec_not-base64!", slog.New(slog.DiscardHandler), nil)
	if err == nil || strings.Contains(err.Error(), "not-base64!") {
		t.Fatalf("err = %v", err)
	}
}
