package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/store"
	"github.com/payfn/payfn/shared/store/storetest"
)

func ids[T any](xs []T, id func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = id(x)
	}
	return out
}

func orderID(o order.Order) string   { return o.ID }
func refundID(r order.Refund) string { return r.ID }

// Orders o0..o5: o1-o3 share one creation time, so the page must resume
// inside a run of equal times by id.
func pagedOrders(t *testing.T, s *store.Store) []order.Order {
	t.Helper()
	var os []order.Order
	for i, d := range []time.Duration{0, time.Second, time.Second, time.Second, 2 * time.Second, 3 * time.Second} {
		o, err := order.NewOrder(fmt.Sprintf("o%d", i), "openid-a", fmt.Sprintf("req-%d", i), product("p1", true), 1, t0.Add(d), 30*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		insertOrder(t, s, o)
		os = append(os, o)
	}
	return os
}

func TestUnpaidAndExpiredOrdersPageAfterTheCursorInTimeThenIDOrder(t *testing.T) {
	s := storetest.New(t)
	ctx := testCtx(t)
	os := pagedOrders(t, s)
	// A paid order never shows.
	paid := newOrder(t, "o9", "openid-a", "req-9")
	insertOrder(t, s, paid)
	c := claim("o9", 1)
	if err := s.ApplyClaim(ctx, c); err != nil {
		t.Fatal(err)
	}

	// Created before o5: o0..o4.
	var got []string
	at, after := time.Time{}, ""
	for {
		page, err := s.UnpaidOrdersAfter(ctx, os[5].CreatedAt, at, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ids(page, orderID)...)
		if len(page) < 2 {
			break
		}
		at, after = page[len(page)-1].CreatedAt, page[len(page)-1].ID
	}
	if want := []string{"o0", "o1", "o2", "o3", "o4"}; !slices.Equal(got, want) {
		t.Errorf("unpaid pages = %v, want %v", got, want)
	}

	// From inside the run of equal times.
	page, err := s.ExpiredOrdersAfter(ctx, os[5].ExpiresAt.Add(time.Millisecond), os[2].ExpiresAt, "o2", 10)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(page, orderID), []string{"o3", "o4", "o5"}; !slices.Equal(got, want) {
		t.Errorf("expired after o2 = %v, want %v", got, want)
	}
}

func TestPendingRefundsPageAfterTheCursor(t *testing.T) {
	s := storetest.New(t)
	ctx := testCtx(t)
	for i := range 5 {
		r := order.Refund{ID: fmt.Sprintf("r%d", i), OrderID: "o1", Slot: i + 1, AmountFen: 1, Status: order.RefundPending,
			CreatedAt: t0.Add(time.Duration(i/2) * time.Second), UpdatedAt: t0}
		if i == 2 {
			r.Status = order.RefundSucceeded
		}
		if err := s.InsertRefund(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	first, err := s.PendingRefundsAfter(ctx, time.Time{}, "", 2)
	if err != nil {
		t.Fatal(err)
	}
	last := first[len(first)-1]
	rest, err := s.PendingRefundsAfter(ctx, last.CreatedAt, last.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := append(ids(first, refundID), ids(rest, refundID)...), []string{"r0", "r1", "r3", "r4"}; !slices.Equal(got, want) {
		t.Errorf("pending refunds = %v, want %v", got, want)
	}
}

func TestJobCursorStartsEmptyAndRoundTrips(t *testing.T) {
	s := storetest.New(t)
	ctx := testCtx(t)
	at, id, err := s.JobCursor(ctx, "reconcile/unpaid_orders")
	if err != nil || !at.IsZero() || id != "" {
		t.Fatalf("fresh cursor = %v %q %v, want zero", at, id, err)
	}
	for _, want := range []struct {
		at time.Time
		id string
	}{{t0, "o1"}, {t0.Add(time.Hour), "o7"}, {time.Time{}, ""}} {
		if err := s.SetJobCursor(ctx, "reconcile/unpaid_orders", want.at, want.id); err != nil {
			t.Fatal(err)
		}
		at, id, err := s.JobCursor(ctx, "reconcile/unpaid_orders")
		if err != nil || !at.Equal(want.at.UTC().Truncate(time.Millisecond)) || id != want.id {
			t.Errorf("cursor = %v %q %v, want %v %q", at, id, err, want.at, want.id)
		}
	}
	if _, id, _ := s.JobCursor(ctx, "closeExpired/expired_orders"); id != "" {
		t.Errorf("another job's cursor is %q, want empty", id)
	}
}

func TestBackoffsAreSetReadAndCleared(t *testing.T) {
	s := storetest.New(t)
	ctx := testCtx(t)
	if err := s.SetBackoff(ctx, "order:o1", 1, t0, "boom"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBackoff(ctx, "order:o1", 3, t0.Add(time.Hour), "boom again"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBackoff(ctx, "refund:r1", 1, t0, "ABNORMAL"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBackoff(ctx, "cursor:x", 1, t0, ""); err == nil {
		t.Error("a backoff key that looks like a cursor was accepted")
	}
	failures, next, err := s.Backoffs(ctx, []string{"order:o1", "order:o2", "refund:r1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(failures) != 2 || failures["order:o1"] != 3 || failures["refund:r1"] != 1 ||
		!next["order:o1"].Equal(t0.Add(time.Hour).UTC().Truncate(time.Millisecond)) {
		t.Fatalf("backoffs = %v %v", failures, next)
	}
	if err := s.ClearBackoff(ctx, "order:o1"); err != nil {
		t.Fatal(err)
	}
	if err := s.ClearBackoff(ctx, "order:o1"); err != nil {
		t.Fatalf("clearing twice: %v", err)
	}
	failures, _, err = s.Backoffs(ctx, []string{"order:o1", "refund:r1"})
	if err != nil || len(failures) != 1 || failures["refund:r1"] != 1 {
		t.Fatalf("after clear: %v %v", failures, err)
	}
}

// The page queries' filters and sorts are (status, time, _id); these indexes
// let a real MongoDB answer them from the index, and nothing job-related is
// written onto orders or refunds.
func TestPageIndexesExist(t *testing.T) {
	uri, db := storetest.URI(t)
	s, err := store.New(store.Options{URI: uri, Database: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	ctx := testCtx(t)
	if err := s.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	keysOf := func(coll string) map[string]string {
		cur, err := c.Database(db).Collection(coll).Indexes().List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var specs []struct {
			Name string `bson:"name"`
			Key  bson.D `bson:"key"`
		}
		if err := cur.All(ctx, &specs); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, sp := range specs {
			var k []string
			for _, e := range sp.Key {
				k = append(k, e.Key)
			}
			out[sp.Name] = fmt.Sprint(k)
		}
		return out
	}
	orders, refunds := keysOf("orders"), keysOf("refunds")
	for name, want := range map[string]string{"status_expires_at_id": "[status expires_at _id]", "status_created_at_id": "[status created_at _id]"} {
		if orders[name] != want {
			t.Errorf("orders index %s = %q, want %q (all: %v)", name, orders[name], want, orders)
		}
	}
	if refunds["status_created_at_id"] != "[status created_at _id]" {
		t.Errorf("refunds indexes: %v", refunds)
	}
}
