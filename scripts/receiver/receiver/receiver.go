// Package receiver is a sample webhook receiver for a project's server: it
// verifies each payfn delivery, processes each event once and answers at
// once. `go run ./scripts/receiver` serves it on its own; the local stack
// (scripts/dev) runs it in-process. Copy it into your server and replace the
// in-memory set with your database and the log line with your logic.
package receiver

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/payfn/payfn/shared/webhook"
)

// maxBody caps a delivery: verification needs all of it in memory.
const maxBody = 1 << 20

// Event is the part of a payfn webhook this sample reads. The body carries
// more: the whole order, and the refund for refund.* events.
type Event struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"` // order.created, order.paid, …
	CreatedAt time.Time `json:"created_at"`
	Data      struct {
		Order struct {
			OrderID  string `json:"order_id"`
			Buyer    string `json:"buyer"`
			Status   string `json:"status"`
			TotalFen int64  `json:"total_fen"`
		} `json:"order"`
		Attach string `json:"attach"` // what your server passed when it created the order
	} `json:"data"`
}

// Handler answers payfn's webhook deliveries to one endpoint.
type Handler struct {
	secret  string
	log     *slog.Logger
	process func(context.Context, Event) error

	mu   sync.Mutex
	seen map[string]bool // webhook-ids processed: use your database in production
}

// New returns a Handler for the endpoint's signing secret (whsec_…, as
// payfn showed it once). process is your logic, run once per event after
// the delivery is verified; an error answers 500 so payfn retries. nil only
// logs. The error about a malformed secret never repeats it.
func New(secret string, log *slog.Logger, process func(context.Context, Event) error) (*Handler, error) {
	if _, err := webhook.ParseSecret(secret); err != nil {
		return nil, err
	}
	if process == nil {
		process = func(context.Context, Event) error { return nil }
	}
	return &Handler{secret: secret, log: log, process: process, seen: map[string]bool{}}, nil
}

// ServeHTTP answers 204 to a delivery it verified (processed now, or
// before), 400 to anything else.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, "unreadable body", http.StatusBadRequest)
		return
	}

	// 1. Verify the raw bytes, before decoding them: re-encoded JSON would
	// not match the signature. The error says why, never the secret.
	if err := webhook.Verify(h.secret, r.Header, body); err != nil {
		h.log.WarnContext(ctx, "webhook rejected", "err", err)
		http.Error(w, "invalid webhook", http.StatusBadRequest)
		return
	}
	var e Event
	if err := json.Unmarshal(body, &e); err != nil {
		http.Error(w, "invalid JSON", http.StatusBadRequest)
		return
	}

	// 2. Process each event once: payfn delivers at least once, and every
	// retry of an event carries the same webhook-id.
	id := r.Header.Get(webhook.HeaderID)
	if !h.claim(id) {
		h.log.InfoContext(ctx, "webhook already processed", "webhook_id", id, "type", e.Type)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h.log.InfoContext(ctx, "webhook received", "webhook_id", id, "type", e.Type,
		"order_id", e.Data.Order.OrderID, "status", e.Data.Order.Status, "attach", e.Data.Attach)
	if err := h.process(ctx, e); err != nil {
		h.release(id) // not done: let payfn's retry try again
		h.log.ErrorContext(ctx, "webhook processing failed; payfn retries", "webhook_id", id, "err", err)
		http.Error(w, "try again", http.StatusInternalServerError)
		return
	}

	// 3. Answer fast (payfn waits 15 s at most); do slow work elsewhere.
	w.WriteHeader(http.StatusNoContent)
}

// claim marks id as processed, and reports whether it was not already. In
// production, insert id into a table with a unique key, in the same
// transaction as the event's effects.
func (h *Handler) claim(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen[id] {
		return false
	}
	h.seen[id] = true
	return true
}

func (h *Handler) release(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.seen, id)
}
