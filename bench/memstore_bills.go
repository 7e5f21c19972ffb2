package bench

import (
	"context"
	"time"

	"github.com/payfn/payfn/shared/order"
)

// The bill job's store methods: the benchmarks never run it.

func (s *memStore) PaymentsByID(context.Context, []string) ([]order.Payment, error) {
	return nil, errNotBenchmarked
}

func (s *memStore) OrdersByID(context.Context, []string) ([]order.Order, error) {
	return nil, errNotBenchmarked
}

func (s *memStore) RefundsByID(context.Context, []string) ([]order.Refund, error) {
	return nil, errNotBenchmarked
}

func (s *memStore) ScanBillPayments(context.Context, time.Time, time.Time, func(order.Payment) error) error {
	return errNotBenchmarked
}

func (s *memStore) ScanBillRefunds(context.Context, time.Time, time.Time, func(order.Refund) error) error {
	return errNotBenchmarked
}

func (s *memStore) BillReport(context.Context, string, any) error { return errNotBenchmarked }

func (s *memStore) SaveBillReport(context.Context, string, any) error { return errNotBenchmarked }
