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
