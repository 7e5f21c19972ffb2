package webhook_test

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/payfn/payfn/shared/webhook"
)

// A project's server verifies each delivery on the raw body before decoding
// it, then uses webhook-id to process each event once.
func ExampleVerify() {
	// In a real server, from configuration: the endpoint's secret as payfn
	// showed it (with or without the whsec_ prefix). Never log it.
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Cap the body: verification needs all of it in memory.
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if err := webhook.Verify(secret, r.Header, body); err != nil {
			// The sentinel says why; the message is safe to log.
			if errors.Is(err, webhook.ErrTooOld) || errors.Is(err, webhook.ErrTooNew) {
				log.Printf("webhook outside the time window (check the clock): %v", err)
			}
			http.Error(w, "invalid signature", http.StatusUnauthorized)
			return
		}
		id := r.Header.Get(webhook.HeaderID)
		// … skip if id was already processed, else decode body and act …
		fmt.Println("accepted", id, string(body))
		w.WriteHeader(http.StatusNoContent)
	})

	// What payfn sends, for this example.
	body := []byte(`{"type":"order.paid","data":{"id":"ord_1"}}`)
	h, _ := webhook.Headers([]string{secret}, "evt_2pK9", time.Now(), body)
	req := httptest.NewRequest(http.MethodPost, "/payfn-webhook", strings.NewReader(string(body)))
	for k, v := range h {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	fmt.Println(rec.Code)

	// A tampered body is refused.
	req = httptest.NewRequest(http.MethodPost, "/payfn-webhook", strings.NewReader(`{"type":"order.paid","data":{"id":"ord_2"}}`))
	for k, v := range h {
		req.Header[k] = v
	}
	rec = httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	fmt.Println(rec.Code)

	// Output:
	// accepted evt_2pK9 {"type":"order.paid","data":{"id":"ord_1"}}
	// 204
	// 401
}
