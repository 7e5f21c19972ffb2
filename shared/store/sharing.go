package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/payfn/payfn/shared/order"
)

// Profit sharing (app.SharingStore). Two kinds of document, apart from
// orders and refunds (only claims write those):
//
//	splittasks, returntasks   the shareProfits job's bookkeeping, one per
//	                          split order and per refund of one (opened by
//	                          the refund, or by the job); replaced freely
//	                          (every step they drive is idempotent)
//	sharing                   the decisions, inserted once under their key:
//	                          split plans, outcomes, returns and their
//	                          results (order.SplitPlanKey ...)
//
// The sharing collection is written and read with majority concerns, as
// the claims are: a decision seen is a decision that survives a failover.
// The job's indexes are among those every store ensures (ensureIndexes).
const (
	colSplitTasks  = "splittasks"
	colReturnTasks = "returntasks"
	colSharing     = "sharing"
)

// PaidSplitOrders lists up to limit orders carrying a split rule whose
// payment was decided (PAID, or EXCEPTION: its frozen money must be
// released too) with updated_at in [from, to), by (updated_at, _id) after
// the cursor.
func (s *Store) PaidSplitOrders(ctx context.Context, from, to, afterAt time.Time, afterID string, limit int) ([]order.Order, error) {
	filter := bson.D{
		{Key: "status", Value: bson.D{{Key: "$in", Value: bson.A{order.StatusPaid, order.StatusException}}}},
		{Key: "updated_at", Value: bson.D{{Key: "$gte", Value: bsonTime(from)}, {Key: "$lt", Value: bsonTime(to)}}},
		{Key: "split", Value: bson.D{{Key: "$exists", Value: true}}},
	}
	filter = afterCursor(filter, "updated_at", afterAt, afterID)
	os, err := s.findOrders(ctx, filter, bson.D{{Key: "updated_at", Value: 1}, {Key: "_id", Value: 1}}, limit)
	if err != nil {
		return nil, fmt.Errorf("list paid split orders: %w", err)
	}
	return os, nil
}

// RefundsCreated lists up to limit refunds created in [from, to), by
// (created_at, _id) after the cursor. Index: created_at_id.
func (s *Store) RefundsCreated(ctx context.Context, from, to, afterAt time.Time, afterID string, limit int) ([]order.Refund, error) {
	filter := bson.D{{Key: "created_at", Value: bson.D{{Key: "$gte", Value: bsonTime(from)}, {Key: "$lt", Value: bsonTime(to)}}}}
	filter = afterCursor(filter, "created_at", afterAt, afterID)
	rs, err := s.findRefunds(ctx, filter, bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}, limit)
	if err != nil {
		return nil, fmt.Errorf("list refunds created: %w", err)
	}
	return rs, nil
}

func splitTaskTimes(t *order.SplitTask) {
	t.DueAt, t.CreatedAt, t.UpdatedAt = bsonTime(t.DueAt), bsonTime(t.CreatedAt), bsonTime(t.UpdatedAt)
}

func returnTaskTimes(t *order.ReturnTask) {
	t.DueAt, t.CreatedAt, t.UpdatedAt = bsonTime(t.DueAt), bsonTime(t.CreatedAt), bsonTime(t.UpdatedAt)
}

// InsertSplitTask writes a new split task; order.ErrDuplicate when the
// order has one.
func (s *Store) InsertSplitTask(ctx context.Context, t order.SplitTask) error {
	if t.ID == "" {
		return errors.New("insert split task: order id is empty")
	}
	splitTaskTimes(&t)
	if err := s.insert(ctx, colSplitTasks, t); err != nil {
		return fmt.Errorf("insert split task %s: %w", t.ID, err)
	}
	return nil
}

// SplitTask returns an order's split task, or order.ErrNotFound.
func (s *Store) SplitTask(ctx context.Context, orderID string) (order.SplitTask, error) {
	var t order.SplitTask
	if err := s.findOne(ctx, colSplitTasks, bson.D{{Key: "_id", Value: orderID}}, &t); err != nil {
		return order.SplitTask{}, fmt.Errorf("load split task %s: %w", orderID, err)
	}
	return t, nil
}

// SaveSplitTask overwrites a split task.
func (s *Store) SaveSplitTask(ctx context.Context, t order.SplitTask) error {
	splitTaskTimes(&t)
	if err := s.replace(ctx, colSplitTasks, t.ID, t); err != nil {
		return fmt.Errorf("save split task %s: %w", t.ID, err)
	}
	return nil
}

// DueSplitTasks lists up to limit open split tasks due at or before now,
// by (due_at, _id) after the cursor. Index: open_due_at_id.
func (s *Store) DueSplitTasks(ctx context.Context, now, afterAt time.Time, afterID string, limit int) ([]order.SplitTask, error) {
	var ts []order.SplitTask
	if err := s.findPage(ctx, colSplitTasks, dueFilter(now, afterAt, afterID), dueSort, limit, &ts); err != nil {
		return nil, fmt.Errorf("list due split tasks: %w", err)
	}
	return ts, nil
}

// InsertReturnTask writes a new return task; order.ErrDuplicate when the
// refund has one.
func (s *Store) InsertReturnTask(ctx context.Context, t order.ReturnTask) error {
	if t.ID == "" {
		return errors.New("insert return task: refund number is empty")
	}
	returnTaskTimes(&t)
	if err := s.insert(ctx, colReturnTasks, t); err != nil {
		return fmt.Errorf("insert return task %s: %w", t.ID, err)
	}
	return nil
}

// SaveReturnTask overwrites a return task.
func (s *Store) SaveReturnTask(ctx context.Context, t order.ReturnTask) error {
	returnTaskTimes(&t)
	if err := s.replace(ctx, colReturnTasks, t.ID, t); err != nil {
		return fmt.Errorf("save return task %s: %w", t.ID, err)
	}
	return nil
}

// DueReturnTasks lists up to limit open return tasks due at or before now,
// by (due_at, _id) after the cursor. Index: open_due_at_id.
func (s *Store) DueReturnTasks(ctx context.Context, now, afterAt time.Time, afterID string, limit int) ([]order.ReturnTask, error) {
	var ts []order.ReturnTask
	if err := s.findPage(ctx, colReturnTasks, dueFilter(now, afterAt, afterID), dueSort, limit, &ts); err != nil {
		return nil, fmt.Errorf("list due return tasks: %w", err)
	}
	return ts, nil
}

var dueSort = bson.D{{Key: "due_at", Value: 1}, {Key: "_id", Value: 1}}

func dueFilter(now, afterAt time.Time, afterID string) bson.D {
	f := bson.D{{Key: "open", Value: true}, {Key: "due_at", Value: bson.D{{Key: "$lte", Value: bsonTime(now)}}}}
	return afterCursor(f, "due_at", afterAt, afterID)
}

// sharingCollection is the decisions' collection, with majority concerns.
func (s *Store) sharingCollection(ctx context.Context) (*mongo.Collection, error) {
	db, err := s.database(ctx)
	if err != nil {
		return nil, err
	}
	return db.Collection(colSharing, options.Collection().
		SetWriteConcern(writeconcern.Majority()).SetReadConcern(readconcern.Majority())), nil
}

// ClaimSharing inserts doc (whose _id must be key) unless a document with
// key exists, and reports whether this caller inserted it; out receives
// the document as stored either way. Exactly one of any number of
// concurrent callers wins: the insert is the decision.
func (s *Store) ClaimSharing(ctx context.Context, key string, doc, out any) (bool, error) {
	if key == "" {
		return false, errors.New("claim sharing: empty key")
	}
	c, err := s.sharingCollection(ctx)
	if err != nil {
		return false, fmt.Errorf("claim %s: %w", key, err)
	}
	octx, cancel := s.opCtx(ctx)
	_, err = c.InsertOne(octx, doc)
	cancel()
	won := err == nil
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return false, fmt.Errorf("claim %s: %w", key, err)
	}
	// Read back: the winner's copy (times as stored), or the loser's view.
	wait := 10 * time.Millisecond
	for {
		err = s.SharingClaim(ctx, key, out)
		if !errors.Is(err, order.ErrNotFound) || wait > 400*time.Millisecond {
			break
		}
		time.Sleep(wait) // a majority not yet acknowledging the winner's insert
		wait *= 2
	}
	if err != nil {
		return false, fmt.Errorf("claim %s: read back: %w", key, err)
	}
	return won, nil
}

// SharingClaim decodes the decision under key into out, or returns
// order.ErrNotFound.
func (s *Store) SharingClaim(ctx context.Context, key string, out any) error {
	c, err := s.sharingCollection(ctx)
	if err != nil {
		return fmt.Errorf("load %s: %w", key, err)
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	if err := c.FindOne(octx, bson.D{{Key: "_id", Value: key}}).Decode(out); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return fmt.Errorf("load %s: %w", key, order.ErrNotFound)
		}
		return fmt.Errorf("load %s: %w", key, err)
	}
	return nil
}
