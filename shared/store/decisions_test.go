package store_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/store/storetest"
)

func TestASlotIsTakenOncePerWindowReleasedAndPurged(t *testing.T) {
	s := storetest.New(t)
	ctx := testCtx(t)
	window := 5 * time.Second
	now := t0.Truncate(window)

	var took atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.TakeSlot(ctx, "query:A", window, now.Add(time.Second))
			if err != nil {
				t.Error(err)
			}
			if ok {
				took.Add(1)
			}
		}()
	}
	wg.Wait()
	if took.Load() != 1 {
		t.Fatalf("%d of 20 concurrent callers took one window's slot, want 1", took.Load())
	}
	if ok, _ := s.TakeSlot(ctx, "query:B", window, now); !ok {
		t.Fatal("another key's slot was taken")
	}
	if ok, _ := s.TakeSlot(ctx, "query:A", window, now.Add(window)); !ok {
		t.Fatal("the next window's slot was taken")
	}
	if err := s.ReleaseSlot(ctx, "query:A", window, now); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.TakeSlot(ctx, "query:A", window, now.Add(2*time.Second)); !ok {
		t.Fatal("a released slot could not be taken again")
	}
	n, err := s.PurgeSlots(ctx, now.Add(2*window+time.Millisecond))
	if err != nil || n != 2 { // A and B of the first window; A's next window is still live
		t.Fatalf("purged %d (%v), want the 2 whose window has passed", n, err)
	}
}

func TestOpenOrdersAreCountedPerOwnerUnpaidAndUnexpired(t *testing.T) {
	s := storetest.New(t)
	ctx := testCtx(t)
	for i, id := range []string{"PF0000000000000000000000000A", "PF0000000000000000000000000B", "PF0000000000000000000000000C"} {
		insertOrder(t, s, newOrder(t, id, "o-owner", "req-"+id))
		if i == 2 {
			c := order.Claim{Key: order.SettleKey(id), OrderID: id, Status: order.StatusPaid, TransactionID: "T1", PaidAt: t0, DecidedAt: t0}
			if err := s.ApplyClaim(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	insertOrder(t, s, newOrder(t, "PF0000000000000000000000000D", "o-other", "req-D"))
	if n, err := s.CountOpenOrders(ctx, order.DefaultApp, "o-owner", t0); err != nil || n != 2 {
		t.Fatalf("open orders %d (%v), want 2", n, err)
	}
	if n, _ := s.CountOpenOrders(ctx, order.DefaultApp, "o-owner", t0.Add(31*time.Minute)); n != 0 {
		t.Fatalf("expired orders counted: %d", n)
	}
}

func TestUndecidedPaymentsArePagedAndDispositionsRecorded(t *testing.T) {
	s := storetest.New(t)
	ctx := testCtx(t)
	for _, tx := range []string{"T1", "T2", "T3", "T4"} {
		p := order.Payment{TransactionID: tx, OutTradeNo: "PF1", SuccessTime: t0, RecordedAt: t0, Disposition: order.DispositionPending}
		if err := s.RecordPayment(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetPaymentDisposition(ctx, "T2", order.DispositionSettled, false); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.SetPaymentDisposition(ctx, "T3", order.DispositionUnconfirmed, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetPaymentDisposition(ctx, "T9", order.DispositionSettled, false); !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("unknown row: %v, want ErrNotFound", err)
	}
	page, err := s.UndecidedPayments(ctx, "", 2)
	if err != nil || len(page) != 2 || page[0].TransactionID != "T1" || page[1].TransactionID != "T3" {
		t.Fatalf("first page %+v (%v), want T1, T3", page, err)
	}
	if page[1].Unconfirmed != 2 || page[1].Disposition != order.DispositionUnconfirmed {
		t.Fatalf("T3 = %+v, want unconfirmed twice", page[1])
	}
	page, err = s.UndecidedPayments(ctx, "T3", 2)
	if err != nil || len(page) != 1 || page[0].TransactionID != "T4" {
		t.Fatalf("second page %+v (%v), want T4", page, err)
	}
}
