package store

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/payfn/payfn/shared/order"
)

// ClaimByKey returns the claim with key, or order.ErrNotFound.
func (s *Store) ClaimByKey(ctx context.Context, key string) (order.Claim, error) {
	var c order.Claim
	if err := s.findOne(ctx, colClaims, bson.D{{Key: "_id", Value: key}}, &c); err != nil {
		return order.Claim{}, fmt.Errorf("load claim %s: %w", key, err)
	}
	return c, nil
}

// SetPaymentDisposition records what a ledger row's payment did to its
// order. Every writer derives the value from the claims, so concurrent
// writers write the same value; a lost count on a store whose updates are
// read-modify-write only makes the count approximate.
func (s *Store) SetPaymentDisposition(ctx context.Context, transactionID string, d order.Disposition, unconfirmed bool) error {
	c, err := s.collection(ctx, colPayments)
	if err != nil {
		return fmt.Errorf("set disposition of payment %s: %w", transactionID, err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	update := bson.D{{Key: "$set", Value: bson.D{{Key: "disposition", Value: d}}}}
	if unconfirmed {
		update = append(update, bson.E{Key: "$inc", Value: bson.D{{Key: "unconfirmed_deliveries", Value: 1}}})
	}
	res, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: transactionID}}, update)
	if err != nil {
		return fmt.Errorf("set disposition of payment %s: %w", transactionID, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("set disposition of payment %s: %w", transactionID, order.ErrNotFound)
	}
	return nil
}

// UndecidedPayments lists up to limit ledger rows still pending or
// unconfirmed, by transaction id, after the given one. Rows written before
// dispositions existed have none and are left alone: they were decided then.
func (s *Store) UndecidedPayments(ctx context.Context, after string, limit int) ([]order.Payment, error) {
	filter := bson.D{{Key: "disposition", Value: bson.D{{Key: "$in", Value: bson.A{order.DispositionPending, order.DispositionUnconfirmed}}}}}
	if after != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$gt", Value: after}}})
	}
	var ps []order.Payment
	if err := s.findPage(ctx, colPayments, filter, bson.D{{Key: "_id", Value: 1}}, limit, &ps); err != nil {
		return nil, fmt.Errorf("list undecided payments: %w", err)
	}
	return ps, nil
}

// CountOpenOrders counts owner's NOTPAY orders that expire after t: the
// ones that can still be paid.
func (s *Store) CountOpenOrders(ctx context.Context, appID, owner string, t time.Time) (int, error) {
	c, err := s.collection(ctx, colOrders)
	if err != nil {
		return 0, fmt.Errorf("count open orders of %s: %w", owner, err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	n, err := c.CountDocuments(ctx, bson.D{
		{Key: "owner", Value: owner},
		{Key: "status", Value: order.StatusNotPay},
		appFilter(appID),
		{Key: "expires_at", Value: bson.D{{Key: "$gt", Value: bsonTime(t)}}},
	})
	if err != nil {
		return 0, fmt.Errorf("count open orders of %s: %w", owner, err)
	}
	return int(n), nil
}

// TakeSlot inserts the slot for key in the window holding now. The insert is
// the decision, as for claims: exactly one caller per window takes it.
func (s *Store) TakeSlot(ctx context.Context, key string, window time.Duration, now time.Time) (bool, error) {
	if window <= 0 {
		return true, nil
	}
	start := now.UTC().Truncate(window)
	took, err := s.insertOnce(ctx, slotID(key, window, now), start.Add(2*window))
	if err != nil {
		return false, fmt.Errorf("take slot %s: %w", key, err)
	}
	return took, nil
}

// ReleaseSlot deletes the slot for key in the window holding now, so the
// next caller may take it.
func (s *Store) ReleaseSlot(ctx context.Context, key string, window time.Duration, now time.Time) error {
	if window <= 0 {
		return nil
	}
	c, err := s.collection(ctx, colSlots)
	if err != nil {
		return fmt.Errorf("release slot %s: %w", key, err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if _, err := c.DeleteOne(ctx, bson.D{{Key: "_id", Value: slotID(key, window, now)}}); err != nil {
		return fmt.Errorf("release slot %s: %w", key, err)
	}
	return nil
}

// PurgeSlots deletes slots whose window ended before t.
func (s *Store) PurgeSlots(ctx context.Context, t time.Time) (int64, error) {
	c, err := s.collection(ctx, colSlots)
	if err != nil {
		return 0, fmt.Errorf("purge slots: %w", err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	res, err := c.DeleteMany(ctx, bson.D{{Key: "expire_at", Value: bson.D{{Key: "$lt", Value: bsonTime(t)}}}})
	if err != nil {
		return 0, fmt.Errorf("purge slots: %w", err)
	}
	return res.DeletedCount, nil
}

func slotID(key string, window time.Duration, now time.Time) string {
	return fmt.Sprintf("%s@%d", key, now.UTC().Truncate(window).UnixMilli())
}
