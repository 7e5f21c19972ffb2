package order_test

import (
	"errors"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/order"
)

func TestStatusTransitionTable(t *testing.T) {
	all := []order.Status{order.StatusNotPay, order.StatusPaid, order.StatusClosed, order.StatusException}
	allowed := map[[2]order.Status]bool{
		{order.StatusNotPay, order.StatusPaid}:      true,
		{order.StatusNotPay, order.StatusClosed}:    true,
		{order.StatusNotPay, order.StatusException}: true,
		// a payment WeChat Pay confirms after a local close reopens the order
		{order.StatusClosed, order.StatusPaid}:      true,
		{order.StatusClosed, order.StatusException}: true,
	}
	for _, from := range all {
		for _, to := range all {
			want := allowed[[2]order.Status{from, to}]
			if got := from.CanTransitionTo(to); got != want {
				t.Errorf("%s -> %s allowed = %v, want %v", from, to, got, want)
			}
			err := order.Transition(from, to)
			if want != (err == nil) || (!want && !errors.Is(err, order.ErrInvalidTransition)) {
				t.Errorf("Transition(%s, %s) = %v", from, to, err)
			}
		}
	}
	if order.Status("PAID ").Valid() || order.Status("paid").Valid() {
		t.Error("unknown status spellings are valid")
	}
}

var latte = order.Product{ID: "latte", Title: "Latte", PriceFen: 2800, Active: true}

func TestNewOrderPricesFromTheProduct(t *testing.T) {
	now := time.Date(2026, 11, 23, 8, 0, 0, 123456789, time.UTC)
	o, err := order.NewOrder("PF1", "o-1", "req-1", latte, 3, now, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if o.TotalFen != 8400 || o.Currency != "CNY" || o.Status != order.StatusNotPay || o.Product.PriceFen != 2800 {
		t.Fatalf("order = %+v", o)
	}
	if o.CreatedAt.Nanosecond()%int(time.Millisecond) != 0 || !o.ExpiresAt.Equal(o.CreatedAt.Add(30*time.Minute)) {
		t.Fatalf("times not truncated to ms or expiry wrong: %v %v", o.CreatedAt, o.ExpiresAt)
	}
}

func TestNewOrderRejectsBadQuantitiesInactiveProductsAndHugeTotals(t *testing.T) {
	inactive := latte
	inactive.Active = false
	pricey := latte
	pricey.PriceFen = order.MaxTotalFen
	for name, c := range map[string]struct {
		p   order.Product
		qty int64
	}{
		"zero":        {latte, 0},
		"negative":    {latte, -1},
		"over max":    {latte, order.MaxQuantity + 1},
		"a billion":   {latte, 1_000_000_000},
		"inactive":    {inactive, 1},
		"total limit": {pricey, 2},
	} {
		if _, err := order.NewOrder("PF1", "o", "r", c.p, c.qty, time.Now(), time.Minute); err == nil {
			t.Errorf("%s: NewOrder accepted it", name)
		}
	}
}

func TestRefundSumNeverExceedsThePaidTotal(t *testing.T) {
	for _, c := range []struct {
		total, held, amount int64
		ok                  bool
	}{
		{100, 0, 100, true}, {100, 0, 101, false}, {100, 60, 40, true}, {100, 60, 41, false},
		{100, 0, 0, false}, {100, 0, -5, false},
	} {
		if err := order.CheckRefund(c.total, c.held, c.amount); (err == nil) != c.ok {
			t.Errorf("CheckRefund(%d, %d, %d) = %v, want ok=%v", c.total, c.held, c.amount, err, c.ok)
		}
	}
}

func TestRefundSummaryIsDerivedFromRefundRecords(t *testing.T) {
	r := func(amt int64, st order.RefundStatus) order.Refund { return order.Refund{AmountFen: amt, Status: st} }
	for _, c := range []struct {
		refunds []order.Refund
		want    order.RefundSummary
	}{
		{nil, order.RefundSummary{}},
		{[]order.Refund{r(30, order.RefundSucceeded)}, order.RefundSummary{RefundedFen: 30, Status: "PARTIALLY_REFUNDED"}},
		{[]order.Refund{r(30, order.RefundSucceeded), r(70, order.RefundSucceeded)}, order.RefundSummary{RefundedFen: 100, Status: "REFUNDED"}},
		{[]order.Refund{r(30, order.RefundSucceeded), r(70, order.RefundPending)}, order.RefundSummary{RefundedFen: 30, PendingFen: 70, Status: "REFUNDING"}},
		{[]order.Refund{r(100, order.RefundFailed)}, order.RefundSummary{}},
	} {
		if got := order.Summarize(100, c.refunds); got != c.want {
			t.Errorf("Summarize(%v) = %+v, want %+v", c.refunds, got, c.want)
		}
	}
}
