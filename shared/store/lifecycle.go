package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/payfn/payfn/shared/order"
)

func (s *Store) findOrders(ctx context.Context, filter, sort bson.D, limit int) ([]order.Order, error) {
	var docs []orderDoc
	if err := s.findPage(ctx, colOrders, filter, sort, limit, &docs); err != nil {
		return nil, err
	}
	os := make([]order.Order, len(docs))
	for i, d := range docs {
		os[i] = d.order()
	}
	return os, nil
}

func (s *Store) findRefunds(ctx context.Context, filter, sort bson.D, limit int) ([]order.Refund, error) {
	var docs []refundDoc
	if err := s.findPage(ctx, colRefunds, filter, sort, limit, &docs); err != nil {
		return nil, err
	}
	rs := make([]order.Refund, len(docs))
	for i, d := range docs {
		rs[i] = d.refund()
	}
	return rs, nil
}

// refundDoc is a refund as stored: the record plus the unique (order, slot)
// key that admits an order's refunds one at a time.
type refundDoc struct {
	order.Refund `bson:",inline"`
	SlotKey      string `bson:"slot_key"`
}

func (d refundDoc) refund() order.Refund {
	r := d.Refund
	r.AppID = appOrDefault(r.AppID)
	return r
}

func slotKey(orderID string, slot int) string { return orderID + "#" + strconv.Itoa(slot) }

// InsertRefund writes a new refund record. It returns order.ErrDuplicate when
// its out_refund_no or its (order, slot) is already taken; the caller tells
// the two apart by loading the refund by its number.
func (s *Store) InsertRefund(ctx context.Context, r order.Refund) error {
	switch {
	case r.ID == "" || r.OrderID == "":
		return errors.New("insert refund: out_refund_no and order id are required")
	case r.Slot < 1:
		return fmt.Errorf("insert refund %s: slot %d is not positive", r.ID, r.Slot)
	case !r.Status.Valid():
		return fmt.Errorf("insert refund %s: unknown status %q", r.ID, r.Status)
	}
	r.CreatedAt, r.UpdatedAt = bsonTime(r.CreatedAt), bsonTime(r.UpdatedAt)
	r.AppID = appOrDefault(r.AppID)
	if err := s.insert(ctx, colRefunds, refundDoc{Refund: r, SlotKey: slotKey(r.OrderID, r.Slot)}); err != nil {
		return fmt.Errorf("insert refund %s: %w", r.ID, err)
	}
	return nil
}

// Refund returns the refund with out_refund_no, or order.ErrNotFound.
func (s *Store) Refund(ctx context.Context, outRefundNo string) (order.Refund, error) {
	var d refundDoc
	if err := s.findOne(ctx, colRefunds, bson.D{{Key: "_id", Value: outRefundNo}}, &d); err != nil {
		return order.Refund{}, fmt.Errorf("load refund %s: %w", outRefundNo, err)
	}
	return d.refund(), nil
}

// Refunds returns an order's refunds in slot order.
func (s *Store) Refunds(ctx context.Context, orderID string) ([]order.Refund, error) {
	var docs []refundDoc
	if err := s.findAll(ctx, colRefunds, bson.D{{Key: "order_id", Value: orderID}}, bson.D{{Key: "slot", Value: 1}}, &docs); err != nil {
		return nil, fmt.Errorf("list refunds of order %s: %w", orderID, err)
	}
	rs := make([]order.Refund, len(docs))
	for i, d := range docs {
		rs[i] = d.refund()
	}
	return rs, nil
}

// ClaimRefund decides a refund's outcome once, like Claim: it returns (d,
// true) for the winner and the winning decision otherwise.
func (s *Store) ClaimRefund(ctx context.Context, d order.RefundDecision) (order.RefundDecision, bool, error) {
	if d.Key == "" || d.RefundNo == "" || !d.Status.Final() || d.DecidedAt.IsZero() {
		return order.RefundDecision{}, false, fmt.Errorf("claim refund %q: key, number, final status and decided_at are required", d.Key)
	}
	d.SucceededAt, d.DecidedAt = bsonTime(d.SucceededAt), bsonTime(d.DecidedAt)
	err := s.insert(ctx, colClaims, d)
	if err == nil {
		return d, true, nil
	}
	if !errors.Is(err, order.ErrDuplicate) {
		return order.RefundDecision{}, false, fmt.Errorf("claim refund %s: %w", d.Key, err)
	}
	var won order.RefundDecision
	if err := s.findDecision(ctx, d.Key, &won); err != nil {
		return order.RefundDecision{}, false, fmt.Errorf("claim refund %s: load the existing claim: %w", d.Key, err)
	}
	return won, false, nil
}

// ApplyRefund writes a refund decision onto its record. Like ApplyClaim it
// is an unconditional $set, harmless to repeat.
func (s *Store) ApplyRefund(ctx context.Context, d order.RefundDecision) error {
	set := bson.D{{Key: "status", Value: d.Status}, {Key: "updated_at", Value: bsonTime(d.DecidedAt)}}
	if d.RefundID != "" {
		set = append(set, bson.E{Key: "refund_id", Value: d.RefundID})
	}
	if !d.SucceededAt.IsZero() {
		set = append(set, bson.E{Key: "succeeded_at", Value: bsonTime(d.SucceededAt)})
	}
	if err := s.setByID(ctx, colRefunds, d.RefundNo, set); err != nil {
		return fmt.Errorf("apply refund decision %s: %w", d.Key, err)
	}
	return nil
}
