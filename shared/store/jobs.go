package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/payfn/payfn/shared/order"
)

// The scheduled jobs keep their bookkeeping in the jobstate collection, never
// on order or refund documents: FerretDB runs an update as a read-modify-write
// of the whole document, so a job writing next to a decision could undo it.
// Two kinds of document live there, told apart by _id:
//
//	cursor:<name>   where a job's sweep stopped: {at, after_id}
//	<key>           one item's backoff, e.g. "order:<id>", "refund:<no>":
//	                {failures, next_check, last_error, updated_at}

// jobCursorDoc is where a job's sweep stopped.
type jobCursorDoc struct {
	ID        string    `bson:"_id"`
	At        time.Time `bson:"at"`
	AfterID   string    `bson:"after_id"`
	UpdatedAt time.Time `bson:"updated_at"`
}

// backoffDoc is one item's retry state.
type backoffDoc struct {
	ID        string    `bson:"_id"`
	Failures  int       `bson:"failures"`
	NextCheck time.Time `bson:"next_check"`
	LastError string    `bson:"last_error,omitempty"`
	UpdatedAt time.Time `bson:"updated_at"`
}

const cursorPrefix = "cursor:"

// ExpiredOrdersAfter returns up to limit NOTPAY orders whose expiry is before
// t, in (expires_at, _id) order, after the cursor (afterAt, afterID); a zero
// afterAt starts at the beginning. Index: status_expires_at_id.
func (s *Store) ExpiredOrdersAfter(ctx context.Context, before, afterAt time.Time, afterID string, limit int) ([]order.Order, error) {
	filter := bson.D{{Key: "status", Value: order.StatusNotPay}, {Key: "expires_at", Value: bson.D{{Key: "$lt", Value: bsonTime(before)}}}}
	filter = afterCursor(filter, "expires_at", afterAt, afterID)
	os, err := s.findOrders(ctx, filter, bson.D{{Key: "expires_at", Value: 1}, {Key: "_id", Value: 1}}, limit)
	if err != nil {
		return nil, fmt.Errorf("list expired orders after %s/%s: %w", afterAt.Format(time.RFC3339Nano), afterID, err)
	}
	return os, nil
}

// UnpaidOrdersAfter returns up to limit NOTPAY orders created before t, in
// (created_at, _id) order, after the cursor. Index: status_created_at_id.
func (s *Store) UnpaidOrdersAfter(ctx context.Context, createdBefore, afterAt time.Time, afterID string, limit int) ([]order.Order, error) {
	filter := bson.D{{Key: "status", Value: order.StatusNotPay}, {Key: "created_at", Value: bson.D{{Key: "$lt", Value: bsonTime(createdBefore)}}}}
	filter = afterCursor(filter, "created_at", afterAt, afterID)
	os, err := s.findOrders(ctx, filter, bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}, limit)
	if err != nil {
		return nil, fmt.Errorf("list unpaid orders after %s/%s: %w", afterAt.Format(time.RFC3339Nano), afterID, err)
	}
	return os, nil
}

// PendingRefundsAfter returns up to limit refunds still REFUNDING, in
// (created_at, _id) order, after the cursor. Index: status_created_at_id.
func (s *Store) PendingRefundsAfter(ctx context.Context, afterAt time.Time, afterID string, limit int) ([]order.Refund, error) {
	filter := afterCursor(bson.D{{Key: "status", Value: order.RefundPending}}, "created_at", afterAt, afterID)
	rs, err := s.findRefunds(ctx, filter, bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}, limit)
	if err != nil {
		return nil, fmt.Errorf("list pending refunds: %w", err)
	}
	return rs, nil
}

// afterCursor restricts filter to documents after (at, id) in (field, _id)
// order. Both branches of the $or are ranges on the page index.
func afterCursor(filter bson.D, field string, at time.Time, id string) bson.D {
	if at.IsZero() && id == "" {
		return filter
	}
	at = bsonTime(at)
	return append(filter, bson.E{Key: "$or", Value: bson.A{
		bson.D{{Key: field, Value: bson.D{{Key: "$gt", Value: at}}}},
		bson.D{{Key: field, Value: at}, {Key: "_id", Value: bson.D{{Key: "$gt", Value: id}}}},
	}})
}

// JobCursor returns where the named sweep stopped: zero values when it never
// ran or last went through to the end.
func (s *Store) JobCursor(ctx context.Context, name string) (time.Time, string, error) {
	var d jobCursorDoc
	err := s.findOne(ctx, colJobState, bson.D{{Key: "_id", Value: cursorPrefix + name}}, &d)
	if errors.Is(err, order.ErrNotFound) {
		return time.Time{}, "", nil
	} else if err != nil {
		return time.Time{}, "", fmt.Errorf("load cursor of %s: %w", name, err)
	}
	return d.At, d.AfterID, nil
}

// SetJobCursor records where the named sweep stopped (zero values: at the
// start). Only the job writes it, so a plain replace is enough.
func (s *Store) SetJobCursor(ctx context.Context, name string, at time.Time, afterID string) error {
	d := jobCursorDoc{ID: cursorPrefix + name, At: bsonTime(at), AfterID: afterID, UpdatedAt: bsonTime(s.now())}
	if err := s.replace(ctx, colJobState, d.ID, d); err != nil {
		return fmt.Errorf("save cursor of %s: %w", name, err)
	}
	return nil
}

// Backoffs returns, for those of keys that are backing off, how many times
// in a row they failed and when they are next due. Keys without a backoff
// are absent from both maps.
func (s *Store) Backoffs(ctx context.Context, keys []string) (failures map[string]int, next map[string]time.Time, err error) {
	failures, next = map[string]int{}, map[string]time.Time{}
	if len(keys) == 0 {
		return failures, next, nil
	}
	var docs []backoffDoc
	if err := s.findAll(ctx, colJobState, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}}, bson.D{{Key: "_id", Value: 1}}, &docs); err != nil {
		return nil, nil, fmt.Errorf("load backoffs of %d items: %w", len(keys), err)
	}
	for _, d := range docs {
		failures[d.ID], next[d.ID] = d.Failures, d.NextCheck
	}
	return failures, next, nil
}

// SetBackoff records that the item key failed failures times in a row and
// is next due at next. reason is kept for a person looking at the store.
func (s *Store) SetBackoff(ctx context.Context, key string, failures int, next time.Time, reason string) error {
	if key == "" || len(key) > len(cursorPrefix) && key[:len(cursorPrefix)] == cursorPrefix {
		return fmt.Errorf("set backoff: invalid key %q", key)
	}
	if len(reason) > 500 {
		reason = reason[:500]
	}
	d := backoffDoc{ID: key, Failures: failures, NextCheck: bsonTime(next), LastError: reason, UpdatedAt: bsonTime(s.now())}
	if err := s.replace(ctx, colJobState, key, d); err != nil {
		return fmt.Errorf("set backoff of %s: %w", key, err)
	}
	return nil
}

// ClearBackoff forgets the item's backoff; clearing none is harmless.
func (s *Store) ClearBackoff(ctx context.Context, key string) error {
	c, err := s.collection(ctx, colJobState)
	if err != nil {
		return fmt.Errorf("clear backoff of %s: %w", key, err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if _, err := c.DeleteOne(ctx, bson.D{{Key: "_id", Value: key}}); err != nil {
		return fmt.Errorf("clear backoff of %s: %w", key, err)
	}
	return nil
}

// replace writes doc as the document with id, inserting it if missing.
func (s *Store) replace(ctx context.Context, coll, id string, doc any) error {
	c, err := s.collection(ctx, coll)
	if err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	_, err = c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, doc, options.Replace().SetUpsert(true))
	if mongo.IsDuplicateKeyError(err) {
		// Two upserts of a missing _id raced; the other one inserted it.
		_, err = c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, doc)
	}
	return err
}
