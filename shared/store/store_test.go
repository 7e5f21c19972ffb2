package store_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/store"
	"github.com/payfn/payfn/shared/store/embedded"
	"github.com/payfn/payfn/shared/store/storetest"
)

var _ app.Store = (*store.Store)(nil)

// A time with nanoseconds and a non-UTC zone: what the store must normalise.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.FixedZone("CST", 8*3600))

func testCtx(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func product(id string, active bool) order.Product {
	return order.Product{ID: id, Title: "Title " + id, Summary: "s", Description: "d", Image: "https://img/" + id, PriceFen: 1999, Active: active}
}

func newOrder(tb testing.TB, id, owner, requestID string) order.Order {
	tb.Helper()
	o, err := order.NewOrder(id, owner, requestID, product("p1", true), 2, t0, 30*time.Minute)
	if err != nil {
		tb.Fatalf("NewOrder: %v", err)
	}
	return o
}

func insertOrder(tb testing.TB, s *store.Store, o order.Order) {
	tb.Helper()
	if err := s.InsertOrder(testCtx(tb), o); err != nil {
		tb.Fatalf("InsertOrder(%s): %v", o.ID, err)
	}
}

func mustOrder(tb testing.TB, s *store.Store, id string) order.Order {
	tb.Helper()
	o, err := s.Order(testCtx(tb), id)
	if err != nil {
		tb.Fatalf("Order(%s): %v", id, err)
	}
	return o
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		tb.Fatal(err)
	}
	return addr
}

func TestProductRoundTripsAndUpsertReplaces(t *testing.T) {
	s := storetest.New(t)
	ctx := testCtx(t)
	p := product("p1", true)
	if err := s.UpsertProducts(ctx, p); err != nil {
		t.Fatal(err)
	}
	got, err := s.Product(ctx, order.DefaultApp, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, got); diff != "" {
		t.Errorf("Product after insert (-want +got):\n%s", diff)
	}

	p.PriceFen, p.Title, p.Active = 2500, "New title", false
	if err := s.UpsertProducts(ctx, p); err != nil {
		t.Fatal(err)
	}
	got, err = s.Product(ctx, order.DefaultApp, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, got); diff != "" {
		t.Errorf("Product after replace (-want +got):\n%s", diff)
	}
}

func TestProductMissingIsNotFound(t *testing.T) {
	s := storetest.New(t)
	_, err := s.Product(testCtx(t), order.DefaultApp, "nope")
	if !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("Product(nope) error = %v, want order.ErrNotFound", err)
	}
}

func TestProductReturnsInactiveButProductsListsOnlyActiveSortedByID(t *testing.T) {
	s := storetest.New(t)
	ctx := testCtx(t)
	if err := s.UpsertProducts(ctx, product("c", true), product("a", true), product("b", false), product("d", true)); err != nil {
		t.Fatal(err)
	}
	list, err := s.Products(ctx, order.DefaultApp, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []order.Product{product("a", true), product("c", true), product("d", true)}
	if diff := cmp.Diff(want, list); diff != "" {
		t.Errorf("Products (-want +got):\n%s", diff)
	}
	// The use case decides what inactive means; the store still finds it.
	got, err := s.Product(ctx, order.DefaultApp, "b")
	if err != nil {
		t.Fatal(err)
	}
	if got.Active {
		t.Errorf("Product(b).Active = true, want false")
	}
}

func TestUpsertProductsRejectsAnInvalidProductAndWritesNone(t *testing.T) {
	s := storetest.New(t)
	ctx := testCtx(t)
	bad := product("bad", true)
	bad.PriceFen = 0
	if err := s.UpsertProducts(ctx, product("good", true), bad); err == nil {
		t.Fatal("UpsertProducts with a zero price: nil error")
	}
	if _, err := s.Product(ctx, order.DefaultApp, "good"); !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("Product(good) after rejected batch: error = %v, want order.ErrNotFound", err)
	}
}

func TestOrderRoundTripsEqualWithUTCMillisecondTimes(t *testing.T) {
	s := storetest.New(t)
	o := newOrder(t, "o1", "openid-a", "req-1")
	// Set every optional field too, with times the store must normalise.
	o.PrepayID = "wx-prepay-1"
	o.PrepayExpiresAt = t0.Add(2 * time.Hour)
	o.TransactionID = "4200001"
	paid := t0.Add(time.Minute)
	o.PaidAt = &paid
	insertOrder(t, s, o)

	got := mustOrder(t, s, "o1")
	want := o
	want.PrepayExpiresAt = o.PrepayExpiresAt.UTC().Truncate(time.Millisecond)
	paidMS := paid.UTC().Truncate(time.Millisecond)
	want.PaidAt = &paidMS
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Order (-want +got):\n%s", diff)
	}
	// cmp compares times with Equal; callers may also use == or DeepEqual,
	// which need the same zone and no monotonic reading.
	if !reflect.DeepEqual(want, got) {
		t.Errorf("Order is Equal but not DeepEqual: zones differ (got created_at in %v)", got.CreatedAt.Location())
	}
}

func TestOrderWithoutOptionalFieldsRoundTripsDeepEqual(t *testing.T) {
	s := storetest.New(t)
	o := newOrder(t, "o1", "openid-a", "req-1")
	insertOrder(t, s, o)
	if got := mustOrder(t, s, "o1"); !reflect.DeepEqual(o, got) {
		t.Errorf("Order round trip:\n%s", cmp.Diff(o, got))
	}
}

func TestOrderMissingIsNotFound(t *testing.T) {
	s := storetest.New(t)
	if _, err := s.Order(testCtx(t), "nope"); !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("Order(nope) error = %v, want order.ErrNotFound", err)
	}
}

func TestInsertOrderWithTakenIDIsDuplicate(t *testing.T) {
	s := storetest.New(t)
	insertOrder(t, s, newOrder(t, "o1", "openid-a", "req-1"))
	err := s.InsertOrder(testCtx(t), newOrder(t, "o1", "openid-b", "req-2"))
	if !errors.Is(err, order.ErrDuplicate) {
		t.Fatalf("InsertOrder with a taken id: error = %v, want order.ErrDuplicate", err)
	}
}

func TestInsertOrderWithTakenRequestOfSameOwnerIsDuplicateButOtherOwnerIsFine(t *testing.T) {
	s := storetest.New(t)
	ctx := testCtx(t)
	insertOrder(t, s, newOrder(t, "o1", "openid-a", "req-1"))

	err := s.InsertOrder(ctx, newOrder(t, "o2", "openid-a", "req-1"))
	if !errors.Is(err, order.ErrDuplicate) {
		t.Fatalf("same owner, same request id: error = %v, want order.ErrDuplicate", err)
	}
	if _, err := s.Order(ctx, "o2"); !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("the rejected order was written: Order(o2) error = %v", err)
	}
	if err := s.InsertOrder(ctx, newOrder(t, "o3", "openid-b", "req-1")); err != nil {
		t.Fatalf("other owner, same request id: %v", err)
	}
}

func TestInsertOrderRejectsMissingKeys(t *testing.T) {
	s := storetest.New(t)
	for name, mutate := range map[string]func(*order.Order){
		"no id":         func(o *order.Order) { o.ID = "" },
		"no owner":      func(o *order.Order) { o.Owner = "" },
		"no request id": func(o *order.Order) { o.RequestID = "" },
		"bad status":    func(o *order.Order) { o.Status = "SHIPPED" },
	} {
		o := newOrder(t, "o1", "openid-a", "req-1")
		mutate(&o)
		err := s.InsertOrder(testCtx(t), o)
		if err == nil || errors.Is(err, order.ErrDuplicate) {
			t.Errorf("%s: error = %v, want a validation error", name, err)
		}
	}
}

func TestOrderByRequestFindsOnlyTheOwnersOrder(t *testing.T) {
	s := storetest.New(t)
	ctx := testCtx(t)
	a := newOrder(t, "o1", "openid-a", "req-1")
	b := newOrder(t, "o2", "openid-b", "req-2")
	insertOrder(t, s, a)
	insertOrder(t, s, b)

	got, err := s.OrderByRequest(ctx, order.DefaultApp, "openid-a", "req-1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, got); diff != "" {
		t.Errorf("OrderByRequest (-want +got):\n%s", diff)
	}
	for _, q := range [][2]string{{"openid-a", "req-2"}, {"openid-b", "req-1"}, {"openid-c", "req-1"}} {
		if _, err := s.OrderByRequest(ctx, order.DefaultApp, q[0], q[1]); !errors.Is(err, order.ErrNotFound) {
			t.Errorf("OrderByRequest(%s, %s) error = %v, want order.ErrNotFound", q[0], q[1], err)
		}
	}
}

func TestOrderByRequestIgnoresACollidingJoinedKeyOfAnotherOwner(t *testing.T) {
	s := storetest.New(t)
	// RequestKey("a/b", "c") == RequestKey("a", "b/c").
	insertOrder(t, s, newOrder(t, "o1", "a/b", "c"))
	if _, err := s.OrderByRequest(testCtx(t), order.DefaultApp, "a", "b/c"); !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("OrderByRequest(a, b/c) error = %v, want order.ErrNotFound", err)
	}
}

func TestSetPrepayRecordsPrepayAndKeepsStatus(t *testing.T) {
	now := t0.Add(5 * time.Minute)
	uri, db := storetest.URI(t)
	s, err := store.New(store.Options{URI: uri, Database: db, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	o := newOrder(t, "o1", "openid-a", "req-1")
	insertOrder(t, s, o)

	exp := t0.Add(2 * time.Hour)
	if err := s.SetPrepay(testCtx(t), "o1", "wx-prepay-1", exp); err != nil {
		t.Fatal(err)
	}
	want := o
	want.PrepayID = "wx-prepay-1"
	want.PrepayExpiresAt = exp.UTC().Truncate(time.Millisecond)
	want.UpdatedAt = now.UTC().Truncate(time.Millisecond)
	if diff := cmp.Diff(want, mustOrder(t, s, "o1")); diff != "" {
		t.Errorf("order after SetPrepay (-want +got):\n%s", diff)
	}
}

func TestSetPrepayOnMissingOrderIsNotFound(t *testing.T) {
	s := storetest.New(t)
	err := s.SetPrepay(testCtx(t), "nope", "wx-prepay-1", t0)
	if !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("SetPrepay(nope) error = %v, want order.ErrNotFound", err)
	}
}

func payment(txID, outTradeNo string) order.Payment {
	return order.Payment{
		TransactionID: txID, OutTradeNo: outTradeNo, AppID: "wxapp", MchID: "1900000001",
		TradeState: "SUCCESS", TotalFen: 3998, PayerTotalFen: 3998, Currency: "CNY",
		PayerOpenID: "openid-a", SuccessTime: t0, Source: "notification", NotificationID: "n-1",
		Matched: true, RecordedAt: t0.Add(time.Second),
	}
}

func TestRecordPaymentTwiceIsDuplicateAndLedgerKeepsTheFirst(t *testing.T) {
	s := storetest.New(t)
	ctx := testCtx(t)
	first := payment("4200001", "o1")
	if err := s.RecordPayment(ctx, first); err != nil {
		t.Fatal(err)
	}
	again := first
	again.Source, again.Matched = "query", false
	if err := s.RecordPayment(ctx, again); !errors.Is(err, order.ErrDuplicate) {
		t.Fatalf("second RecordPayment error = %v, want order.ErrDuplicate", err)
	}
	other := payment("4200002", "o2")
	if err := s.RecordPayment(ctx, other); err != nil {
		t.Fatal(err)
	}

	got, err := s.Payments(ctx, "o1")
	if err != nil {
		t.Fatal(err)
	}
	first.SuccessTime = t0.UTC().Truncate(time.Millisecond)
	first.RecordedAt = t0.Add(time.Second).UTC().Truncate(time.Millisecond)
	if diff := cmp.Diff([]order.Payment{first}, got); diff != "" {
		t.Errorf("Payments(o1) (-want +got):\n%s", diff)
	}
}

func claim(orderID string, i int) order.Claim {
	return order.Claim{
		Key:           order.SettleKey(orderID),
		OrderID:       orderID,
		Status:        order.StatusPaid,
		TransactionID: fmt.Sprintf("42000%04d", i),
		PaidAt:        t0.Add(time.Duration(i) * time.Millisecond),
		Reason:        fmt.Sprintf("try %d", i),
		DecidedAt:     t0.Add(time.Second + time.Duration(i)*time.Millisecond),
	}
}

// Function instances do not share a Store, so the tries are spread over
// several, each with its own connection pool.
func TestConcurrentClaimsOfOneKeyHaveExactlyOneWinnerAndLosersSeeIt(t *testing.T) {
	const tries, stores = 200, 4
	uri, db := storetest.URI(t)
	var ss []*store.Store
	for range stores {
		s, err := store.New(store.Options{URI: uri, Database: db})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		ss = append(ss, s)
	}
	ctx := testCtx(t)

	type result struct {
		c   order.Claim
		won bool
		err error
	}
	results := make([]result, tries)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range tries {
		wg.Go(func() {
			<-start
			c, won, err := ss[i%stores].Claim(ctx, claim("o1", i))
			results[i] = result{c, won, err}
		})
	}
	close(start)
	wg.Wait()

	var winners []int
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("try %d: %v", i, r.err)
		}
		if r.won {
			winners = append(winners, i)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d of %d concurrent claims won (%v), want exactly 1", len(winners), tries, winners)
	}
	w := results[winners[0]].c
	if want := claim("o1", winners[0]); !reflect.DeepEqual(w, normalClaim(want)) {
		t.Errorf("winner's claim is not its own try:\n%s", cmp.Diff(normalClaim(want), w))
	}
	for i, r := range results {
		if !reflect.DeepEqual(r.c, w) {
			t.Errorf("try %d got a claim other than the winner's:\n%s", i, cmp.Diff(w, r.c))
		}
	}
	stored, err := ss[0].Claims(ctx, "o1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]order.Claim{w}, stored); diff != "" {
		t.Errorf("Claims(o1) (-want +got):\n%s", diff)
	}
}

func normalClaim(c order.Claim) order.Claim {
	c.PaidAt = c.PaidAt.UTC().Truncate(time.Millisecond)
	c.DecidedAt = c.DecidedAt.UTC().Truncate(time.Millisecond)
	return c
}

func TestClaimRejectsIncompleteClaims(t *testing.T) {
	s := storetest.New(t)
	for name, mutate := range map[string]func(*order.Claim){
		"no key":        func(c *order.Claim) { c.Key = "" },
		"no order id":   func(c *order.Claim) { c.OrderID = "" },
		"bad status":    func(c *order.Claim) { c.Status = "SHIPPED" },
		"no decided at": func(c *order.Claim) { c.DecidedAt = time.Time{} },
	} {
		c := claim("o1", 1)
		mutate(&c)
		if _, _, err := s.Claim(testCtx(t), c); err == nil {
			t.Errorf("Claim, %s: nil error", name)
		}
		if err := s.ApplyClaim(testCtx(t), c); err == nil || errors.Is(err, order.ErrNotFound) {
			t.Errorf("ApplyClaim, %s: error = %v, want a validation error", name, err)
		}
	}
	if got, err := s.Claims(testCtx(t), "o1"); err != nil || len(got) != 0 {
		t.Errorf("Claims(o1) = %v, %v; want none written", got, err)
	}
}

func TestApplyClaimTwiceLeavesTheSameOrder(t *testing.T) {
	s := storetest.New(t)
	ctx := testCtx(t)
	o := newOrder(t, "o1", "openid-a", "req-1")
	insertOrder(t, s, o)
	c, won, err := s.Claim(ctx, claim("o1", 7))
	if err != nil || !won {
		t.Fatalf("Claim = %v, %v; want a win", won, err)
	}

	if err := s.ApplyClaim(ctx, c); err != nil {
		t.Fatal(err)
	}
	once := mustOrder(t, s, "o1")
	want := o
	want.Status = order.StatusPaid
	want.TransactionID = c.TransactionID
	want.PaidAt = &c.PaidAt
	want.UpdatedAt = c.DecidedAt
	if !reflect.DeepEqual(want, once) {
		t.Errorf("order after ApplyClaim:\n%s", cmp.Diff(want, once))
	}

	if err := s.ApplyClaim(ctx, c); err != nil {
		t.Fatal(err)
	}
	if twice := mustOrder(t, s, "o1"); !reflect.DeepEqual(once, twice) {
		t.Errorf("second ApplyClaim changed the order:\n%s", cmp.Diff(once, twice))
	}
}

func TestApplyClaimWithoutPaymentFieldsSetsOnlyStatus(t *testing.T) {
	s := storetest.New(t)
	o := newOrder(t, "o1", "openid-a", "req-1")
	insertOrder(t, s, o)
	c := order.Claim{Key: order.SettleKey("o1"), OrderID: "o1", Status: order.StatusClosed, Reason: "expired", DecidedAt: t0.Add(time.Hour)}
	if err := s.ApplyClaim(testCtx(t), c); err != nil {
		t.Fatal(err)
	}
	want := o
	want.Status = order.StatusClosed
	want.UpdatedAt = t0.Add(time.Hour).UTC().Truncate(time.Millisecond)
	if diff := cmp.Diff(want, mustOrder(t, s, "o1")); diff != "" {
		t.Errorf("order after a CLOSED claim (-want +got):\n%s", diff)
	}
}

func TestApplyClaimToMissingOrderIsNotFound(t *testing.T) {
	s := storetest.New(t)
	if err := s.ApplyClaim(testCtx(t), claim("nope", 1)); !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("ApplyClaim(nope) error = %v, want order.ErrNotFound", err)
	}
}

func TestTwoStoresOnOneDatabaseBothEnsureIndexesAndShareThem(t *testing.T) {
	uri, db := storetest.URI(t)
	var ss [2]*store.Store
	for i := range ss {
		s, err := store.New(store.Options{URI: uri, Database: db})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		// Ping ensures the indexes: the second one finds them in place.
		if err := s.Ping(testCtx(t)); err != nil {
			t.Fatalf("store %d: %v", i, err)
		}
		ss[i] = s
	}
	insertOrder(t, ss[0], newOrder(t, "o1", "openid-a", "req-1"))
	err := ss[1].InsertOrder(testCtx(t), newOrder(t, "o2", "openid-a", "req-1"))
	if !errors.Is(err, order.ErrDuplicate) {
		t.Fatalf("InsertOrder through the second store: error = %v, want order.ErrDuplicate", err)
	}
}

func TestNewValidatesOptions(t *testing.T) {
	for name, opts := range map[string]store.Options{
		"no URI":              {},
		"bad scheme":          {URI: "http://127.0.0.1:1/"},
		"bad database":        {URI: "mongodb://127.0.0.1:1/", Database: "pay.fn"},
		"negative timeout":    {URI: "mongodb://127.0.0.1:1/", ServerSelectionTimeout: -time.Second},
		"negative op timeout": {URI: "mongodb://127.0.0.1:1/", OpTimeout: -time.Second},
		"negative op margin":  {URI: "mongodb://127.0.0.1:1/", OpMargin: -time.Second},
	} {
		if _, err := store.New(opts); err == nil {
			t.Errorf("%s: nil error", name)
		}
	}
}

func TestNewErrorDoesNotQuoteThePassword(t *testing.T) {
	_, err := store.New(store.Options{URI: "mongodb://payfn:s3cr3t-pw@127.0.0.1:1/?w=bogus&journal=maybe"})
	if err == nil {
		t.Fatal("nil error for an invalid URI")
	}
	if got := err.Error(); containsAny(got, "s3cr3t-pw", "payfn:") {
		t.Fatalf("error quotes the credentials: %q", got)
	}
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		for i := 0; i+len(sub) <= len(s); i++ {
			if s[i:i+len(sub)] == sub {
				return true
			}
		}
	}
	return false
}

// The driver's monitors dial as soon as a client is connected, in well under
// a millisecond on loopback; 200ms without a dial shows New made no client.
func TestNewDialsNothingUntilFirstCall(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepts atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			c.Close() // not a MongoDB server: the call must fail
		}
	}()
	t.Cleanup(func() { ln.Close() })

	s, err := store.New(store.Options{URI: "mongodb://" + ln.Addr().String() + "/", ServerSelectionTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	time.Sleep(200 * time.Millisecond)
	if n := accepts.Load(); n != 0 {
		t.Fatalf("New dialled the store %d times", n)
	}
	if err := s.Ping(testCtx(t)); err == nil {
		t.Fatal("Ping against a server that hangs up: nil error")
	}
	if accepts.Load() == 0 {
		t.Fatal("the first call did not dial either: the test proves nothing")
	}
}

func TestFirstCallToADownStoreFailsWithinTheSelectionTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s, err := store.New(store.Options{URI: "mongodb://" + freeAddr(t) + "/", ServerSelectionTimeout: timeout})
	if err != nil {
		t.Fatalf("New against a closed port: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })

	begin := time.Now()
	_, err = s.Order(testCtx(t), "o1")
	took := time.Since(begin)
	if err == nil || errors.Is(err, order.ErrNotFound) {
		t.Fatalf("Order on a down store: error = %v, want a store failure that is not ErrNotFound", err)
	}
	if took > timeout+2*time.Second {
		t.Fatalf("Order on a down store took %v, want about %v", took, timeout)
	}
}

// As in the outage test, 1s leaves the driver time to find the server again.
func TestIndexCreationFailedOnADownStoreIsRetriedByTheNextCall(t *testing.T) {
	addr := freeAddr(t)
	s, err := store.New(store.Options{URI: "mongodb://" + addr + "/", ServerSelectionTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	if err := s.InsertOrder(testCtx(t), newOrder(t, "o1", "openid-a", "req-1")); err == nil {
		t.Fatal("InsertOrder on a down store: nil error")
	}

	srv, err := embedded.Start(testCtx(t), embedded.Options{Dir: t.TempDir(), Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	insertOrder(t, s, newOrder(t, "o1", "openid-a", "req-1"))
	// The unique index exists only if the second call created it.
	if err := s.InsertOrder(testCtx(t), newOrder(t, "o2", "openid-a", "req-1")); !errors.Is(err, order.ErrDuplicate) {
		t.Fatalf("duplicate request after recovery: error = %v, want order.ErrDuplicate", err)
	}
}

// The driver re-checks an unreachable server every 500ms while a call waits
// for it, so a 1s selection timeout leaves room to find the restarted server.
func TestStoreFailsFastDuringAnOutageAndRecoversWithItsDataAfterRestart(t *testing.T) {
	const timeout = time.Second
	dir := t.TempDir()
	srv, err := embedded.Start(testCtx(t), embedded.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr()
	s, err := store.New(store.Options{URI: srv.URI(), ServerSelectionTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	o := newOrder(t, "o1", "openid-a", "req-1")
	insertOrder(t, s, o)

	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	_, err = s.Order(testCtx(t), "o1")
	took := time.Since(begin)
	if err == nil || errors.Is(err, order.ErrNotFound) {
		t.Fatalf("Order during the outage: error = %v, want a store failure that is not ErrNotFound", err)
	}
	if took > timeout+2*time.Second {
		t.Fatalf("Order during the outage took %v, want about %v", took, timeout)
	}

	srv, err = embedded.Start(testCtx(t), embedded.Options{Dir: dir, Addr: addr})
	if err != nil {
		t.Fatalf("restart on %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	got, err := s.Order(testCtx(t), "o1")
	if err != nil {
		t.Fatalf("Order after restart: %v", err)
	}
	if !reflect.DeepEqual(o, got) {
		t.Errorf("order after restart:\n%s", cmp.Diff(o, got))
	}
	// The unique index survived too.
	if err := s.InsertOrder(testCtx(t), newOrder(t, "o2", "openid-a", "req-1")); !errors.Is(err, order.ErrDuplicate) {
		t.Fatalf("duplicate request after restart: error = %v, want order.ErrDuplicate", err)
	}
}

func TestCallsAfterCloseReturnErrClosed(t *testing.T) {
	s := storetest.New(t)
	ctx := testCtx(t)
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Order(ctx, "o1"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Order after Close: error = %v, want store.ErrClosed", err)
	}
}
