package store

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
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

// ScanBillPayments calls fn with each ledger row paid in [from, to) that
// moved money, in no particular order. It is one cursor bounded by ctx
// alone, not by Options.OpTimeout: the bill job reads a whole day (on
// MongoDB through success_time_id; the embedded FerretDB reads every row
// once either way, which is why the job scans once instead of looking up
// batches by id). fn's error stops the scan and is returned.
func (s *Store) ScanBillPayments(ctx context.Context, from, to time.Time, fn func(order.Payment) error) error {
	err := s.scan(ctx, colPayments, billPaymentsFilter(from, to), func(cur *mongo.Cursor) error {
		var p order.Payment
		if err := cur.Decode(&p); err != nil {
			return err
		}
		return fn(p)
	})
	if err != nil {
		return fmt.Errorf("scan ledger rows paid %s..%s: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	return nil
}

// ScanBillRefunds calls fn with each refund created in [from, to) that did
// not fail, as ScanBillPayments does.
func (s *Store) ScanBillRefunds(ctx context.Context, from, to time.Time, fn func(order.Refund) error) error {
	err := s.scan(ctx, colRefunds, billRefundsFilter(from, to), func(cur *mongo.Cursor) error {
		var d refundDoc
		if err := cur.Decode(&d); err != nil {
			return err
		}
		return fn(d.refund())
	})
	if err != nil {
		return fmt.Errorf("scan refunds created %s..%s: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	return nil
}

// scan runs one query and calls each with the cursor on every document.
func (s *Store) scan(ctx context.Context, coll string, filter bson.D, each func(*mongo.Cursor) error) error {
	c, err := s.collection(ctx, coll)
	if err != nil {
		return err
	}
	cur, err := c.Find(ctx, filter, options.Find().SetBatchSize(1000))
	if err != nil {
		return err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	for cur.Next(ctx) {
		if err := each(cur); err != nil {
			return err
		}
	}
	return cur.Err()
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
