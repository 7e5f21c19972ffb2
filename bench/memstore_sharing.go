package bench

import (
	"context"
	"time"

	"github.com/payfn/payfn/shared/order"
)

// The profit-sharing store (app.SharingStore): no benchmark reaches it.

func (s *memStore) PaidSplitOrders(context.Context, time.Time, time.Time, time.Time, string, int) ([]order.Order, error) {
	return nil, errNotBenchmarked
}

func (s *memStore) RefundsCreated(context.Context, time.Time, time.Time, time.Time, string, int) ([]order.Refund, error) {
	return nil, errNotBenchmarked
}

func (s *memStore) InsertSplitTask(context.Context, order.SplitTask) error { return errNotBenchmarked }

func (s *memStore) SplitTask(context.Context, string) (order.SplitTask, error) {
	return order.SplitTask{}, errNotBenchmarked
}

func (s *memStore) SaveSplitTask(context.Context, order.SplitTask) error { return errNotBenchmarked }

func (s *memStore) DueSplitTasks(context.Context, time.Time, time.Time, string, int) ([]order.SplitTask, error) {
	return nil, errNotBenchmarked
}

func (s *memStore) InsertReturnTask(context.Context, order.ReturnTask) error {
	return errNotBenchmarked
}

func (s *memStore) SaveReturnTask(context.Context, order.ReturnTask) error { return errNotBenchmarked }

func (s *memStore) DueReturnTasks(context.Context, time.Time, time.Time, string, int) ([]order.ReturnTask, error) {
	return nil, errNotBenchmarked
}

func (s *memStore) ClaimSharing(context.Context, string, any, any) (bool, error) {
	return false, errNotBenchmarked
}

func (s *memStore) SharingClaim(context.Context, string, any) error { return errNotBenchmarked }
