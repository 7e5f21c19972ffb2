package store

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/payfn/payfn/shared/order"
)

// colBills holds the daily bill reports, one document per channel and day.
const colBills = "bills"

// PaymentsByID returns the ledger rows with these transaction ids (those
// that exist, in no particular order).
func (s *Store) PaymentsByID(ctx context.Context, ids []string) ([]order.Payment, error) {
	var ps []order.Payment
	if len(ids) == 0 {
		return ps, nil
	}
	if err := s.findAll(ctx, colPayments, byIDs(ids), bson.D{{Key: "_id", Value: 1}}, &ps); err != nil {
		return nil, fmt.Errorf("load %d ledger rows: %w", len(ids), err)
	}
	return ps, nil
}

// OrdersByID returns the orders with these ids.
func (s *Store) OrdersByID(ctx context.Context, ids []string) ([]order.Order, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	os, err := s.findOrders(ctx, byIDs(ids), bson.D{{Key: "_id", Value: 1}}, len(ids))
	if err != nil {
		return nil, fmt.Errorf("load %d orders: %w", len(ids), err)
	}
	return os, nil
}

// RefundsByID returns the refunds with these out_refund_no.
func (s *Store) RefundsByID(ctx context.Context, ids []string) ([]order.Refund, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rs, err := s.findRefunds(ctx, byIDs(ids), bson.D{{Key: "_id", Value: 1}}, len(ids))
	if err != nil {
		return nil, fmt.Errorf("load %d refunds: %w", len(ids), err)
	}
	return rs, nil
}

func byIDs(ids []string) bson.D {
	return bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}
}

// billPaymentsFilter matches the ledger rows paid in [from, to) that moved
// money: a row WeChat Pay said was not paid is left out. Index:
// success_time_id.
func billPaymentsFilter(from, to time.Time) bson.D {
	return bson.D{
		{Key: "success_time", Value: bson.D{{Key: "$gte", Value: bsonTime(from)}, {Key: "$lt", Value: bsonTime(to)}}},
		{Key: "disposition", Value: bson.D{{Key: "$ne", Value: order.DispositionNotPaid}}},
	}
}

// billRefundsFilter matches refunds created in [from, to) that did not
// fail. Index: created_at_id.
func billRefundsFilter(from, to time.Time) bson.D {
	return bson.D{
		{Key: "created_at", Value: bson.D{{Key: "$gte", Value: bsonTime(from)}, {Key: "$lt", Value: bsonTime(to)}}},
		{Key: "status", Value: bson.D{{Key: "$ne", Value: order.RefundFailed}}},
	}
}

// CountBillPayments counts the ledger rows paid in [from, to), leaving out
// those WeChat Pay said were not paid.
func (s *Store) CountBillPayments(ctx context.Context, from, to time.Time) (int, error) {
	n, err := s.count(ctx, colPayments, billPaymentsFilter(from, to))
	if err != nil {
		return 0, fmt.Errorf("count ledger rows paid %s..%s: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	return n, nil
}

// BillPaymentsAfter lists up to limit of the rows CountBillPayments counts,
// by (success_time, _id), after the cursor.
func (s *Store) BillPaymentsAfter(ctx context.Context, from, to, afterAt time.Time, afterID string, limit int) ([]order.Payment, error) {
	if limit < 1 {
		return nil, fmt.Errorf("list ledger rows: limit %d is not positive", limit)
	}
	c, err := s.collection(ctx, colPayments)
	if err != nil {
		return nil, fmt.Errorf("list ledger rows: %w", err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	filter := afterCursor(billPaymentsFilter(from, to), "success_time", afterAt, afterID)
	cur, err := c.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "success_time", Value: 1}, {Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("list ledger rows: %w", err)
	}
	var ps []order.Payment
	if err := cur.All(ctx, &ps); err != nil {
		return nil, fmt.Errorf("list ledger rows: %w", err)
	}
	return ps, nil
}

// CountBillRefunds counts the refunds created in [from, to) that did not
// fail.
func (s *Store) CountBillRefunds(ctx context.Context, from, to time.Time) (int, error) {
	n, err := s.count(ctx, colRefunds, billRefundsFilter(from, to))
	if err != nil {
		return 0, fmt.Errorf("count refunds created %s..%s: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	return n, nil
}

// BillRefundsAfter lists up to limit of the refunds CountBillRefunds
// counts, by (created_at, _id), after the cursor.
func (s *Store) BillRefundsAfter(ctx context.Context, from, to, afterAt time.Time, afterID string, limit int) ([]order.Refund, error) {
	if limit < 1 {
		return nil, fmt.Errorf("list refunds: limit %d is not positive", limit)
	}
	filter := afterCursor(billRefundsFilter(from, to), "created_at", afterAt, afterID)
	rs, err := s.findRefunds(ctx, filter, bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}, limit)
	if err != nil {
		return nil, fmt.Errorf("list refunds: %w", err)
	}
	return rs, nil
}

// BillReport decodes the bill report with id into v, or returns
// order.ErrNotFound.
func (s *Store) BillReport(ctx context.Context, id string, v any) error {
	if err := s.findOne(ctx, colBills, bson.D{{Key: "_id", Value: id}}, v); err != nil {
		return fmt.Errorf("load bill report %s: %w", id, err)
	}
	return nil
}

// SaveBillReport writes report as the bill report with id. Only the bill
// job writes it, a whole report at a time, so a replace is enough.
func (s *Store) SaveBillReport(ctx context.Context, id string, report any) error {
	if err := s.replace(ctx, colBills, id, report); err != nil {
		return fmt.Errorf("save bill report %s: %w", id, err)
	}
	return nil
}

func (s *Store) findRefunds(ctx context.Context, filter, sort bson.D, limit int) ([]order.Refund, error) {
	c, err := s.collection(ctx, colRefunds)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	cur, err := c.Find(ctx, filter, options.Find().SetSort(sort).SetLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	var docs []refundDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	rs := make([]order.Refund, len(docs))
	for i, d := range docs {
		rs[i] = d.refund()
	}
	return rs, nil
}

func (s *Store) count(ctx context.Context, coll string, filter bson.D) (int, error) {
	c, err := s.collection(ctx, coll)
	if err != nil {
		return 0, err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	n, err := c.CountDocuments(ctx, filter)
	return int(n), err
}
