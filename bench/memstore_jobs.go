package bench

import (
	"context"
	"time"

	"github.com/payfn/payfn/shared/order"
)

// The scheduled jobs' store methods: the benchmarks never run a job.

func (s *memStore) ExpiredOrdersAfter(context.Context, time.Time, time.Time, string, int) ([]order.Order, error) {
	return nil, errNotBenchmarked
}

func (s *memStore) UnpaidOrdersAfter(context.Context, time.Time, time.Time, string, int) ([]order.Order, error) {
	return nil, errNotBenchmarked
}

func (s *memStore) PendingRefundsAfter(context.Context, time.Time, string, int) ([]order.Refund, error) {
	return nil, errNotBenchmarked
}

func (s *memStore) JobCursor(context.Context, string) (time.Time, string, error) {
	return time.Time{}, "", errNotBenchmarked
}

func (s *memStore) SetJobCursor(context.Context, string, time.Time, string) error {
	return errNotBenchmarked
}

func (s *memStore) Backoffs(context.Context, []string) (map[string]int, map[string]time.Time, error) {
	return nil, nil, errNotBenchmarked
}

func (s *memStore) SetBackoff(context.Context, string, int, time.Time, string) error {
	return errNotBenchmarked
}

func (s *memStore) ClearBackoff(context.Context, string) error { return errNotBenchmarked }
