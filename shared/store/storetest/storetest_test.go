package storetest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/store/storetest"
)

func TestEachTestGetsAnEmptyDatabase(t *testing.T) {
	p := order.Product{ID: "p1", Title: "T", PriceFen: 100, Active: true}
	// Names with slashes, spaces, dots and non-ASCII must still make valid,
	// distinct database names.
	for _, name := range []string{"first / with.dots and spaces", "second 支付 $x", "a very long name that goes on and on well past the sixty-three byte limit of a database name"} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s := storetest.New(t)
			if _, err := s.Product(ctx, order.DefaultApp, "p1"); !errors.Is(err, order.ErrNotFound) {
				t.Fatalf("fresh database has p1 already (error %v)", err)
			}
			if err := s.UpsertProducts(ctx, p); err != nil {
				t.Fatal(err)
			}
		})
	}
}
