package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/payfn/payfn/shared/order"
)

// Service mode: client apps, the events outbox, and insert-once keys with
// an expiry (request nonces, delivery leases).

// InsertApp writes a new app; order.ErrDuplicate when the id is taken.
func (s *Store) InsertApp(ctx context.Context, a order.App) error {
	a.CreatedAt, a.UpdatedAt = bsonTime(a.CreatedAt), bsonTime(a.UpdatedAt)
	if err := s.insert(ctx, colApps, a); err != nil {
		return fmt.Errorf("insert app %s: %w", a.ID, err)
	}
	return nil
}

// App returns the app with id, or order.ErrNotFound.
func (s *Store) App(ctx context.Context, id string) (order.App, error) {
	var a order.App
	if err := s.findOne(ctx, colApps, bson.D{{Key: "_id", Value: id}}, &a); err != nil {
		return order.App{}, fmt.Errorf("load app %s: %w", id, err)
	}
	return a, nil
}

// Apps lists every app by id.
func (s *Store) Apps(ctx context.Context) ([]order.App, error) {
	var as []order.App
	if err := s.findAll(ctx, colApps, bson.D{}, bson.D{{Key: "_id", Value: 1}}, &as); err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	return as, nil
}

// ReplaceApp overwrites a stored app (an operator's change: name, status,
// keys, endpoints); order.ErrNotFound when there is none.
func (s *Store) ReplaceApp(ctx context.Context, a order.App) error {
	c, err := s.collection(ctx, colApps)
	if err != nil {
		return fmt.Errorf("replace app %s: %w", a.ID, err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	a.UpdatedAt = bsonTime(a.UpdatedAt)
	res, err := c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: a.ID}}, a)
	if err != nil {
		return fmt.Errorf("replace app %s: %w", a.ID, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("replace app %s: %w", a.ID, order.ErrNotFound)
	}
	return nil
}

// SetEndpointStatus enables or disables one endpoint of an app, touching
// nothing else of the app.
func (s *Store) SetEndpointStatus(ctx context.Context, appID, endpointID string, st order.EndpointStatus, reason string) error {
	set := bson.D{
		{Key: "endpoints." + endpointID + ".status", Value: st},
		{Key: "endpoints." + endpointID + ".reason", Value: reason},
	}
	if err := s.setByID(ctx, colApps, appID, set); err != nil {
		return fmt.Errorf("set endpoint %s/%s %s: %w", appID, endpointID, st, err)
	}
	return nil
}

// InsertEvent writes a new event; order.ErrDuplicate when its id (derived
// from its decision) is already there.
func (s *Store) InsertEvent(ctx context.Context, e order.Event) error {
	e.CreatedAt, e.NextAt = bsonTime(e.CreatedAt), bsonTime(e.NextAt)
	for _, d := range e.Deliveries {
		d.NextAt = bsonTime(d.NextAt)
	}
	if err := s.insert(ctx, colEvents, e); err != nil {
		return fmt.Errorf("insert event %s: %w", e.ID, err)
	}
	return nil
}

// Event returns the event with id, or order.ErrNotFound.
func (s *Store) Event(ctx context.Context, id string) (order.Event, error) {
	var e order.Event
	if err := s.findOne(ctx, colEvents, bson.D{{Key: "_id", Value: id}}, &e); err != nil {
		return order.Event{}, fmt.Errorf("load event %s: %w", id, err)
	}
	return e, nil
}

// EventsOf lists up to limit of appID's events, newest first, older than
// the cursor (beforeAt, beforeID); a zero cursor starts at the newest. A
// non-empty orderID keeps that order's events only.
func (s *Store) EventsOf(ctx context.Context, appID, orderID string, beforeAt time.Time, beforeID string, limit int) ([]order.Event, error) {
	filter := bson.D{{Key: "app_id", Value: appID}}
	if orderID != "" {
		filter = append(filter, bson.E{Key: "order_id", Value: orderID})
	}
	if !beforeAt.IsZero() || beforeID != "" {
		at := bsonTime(beforeAt)
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "created_at", Value: bson.D{{Key: "$lt", Value: at}}}},
			bson.D{{Key: "created_at", Value: at}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: beforeID}}}},
		}})
	}
	return s.findEvents(ctx, filter, bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}, limit)
}

// DueEvents lists up to limit events with a delivery pending and due at or
// before now, earliest first.
func (s *Store) DueEvents(ctx context.Context, now time.Time, limit int) ([]order.Event, error) {
	filter := bson.D{{Key: "pending", Value: true}, {Key: "next_at", Value: bson.D{{Key: "$lte", Value: bsonTime(now)}}}}
	return s.findEvents(ctx, filter, bson.D{{Key: "next_at", Value: 1}}, limit)
}

func (s *Store) findEvents(ctx context.Context, filter, sort bson.D, limit int) ([]order.Event, error) {
	if limit < 1 {
		return nil, fmt.Errorf("list events: limit %d is not positive", limit)
	}
	c, err := s.collection(ctx, colEvents)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	cur, err := c.Find(ctx, filter, options.Find().SetSort(sort).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	var es []order.Event
	if err := cur.All(ctx, &es); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return es, nil
}

// MissingEvents returns those of ids that no event has.
func (s *Store) MissingEvents(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var found []struct {
		ID string `bson:"_id"`
	}
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}
	if err := s.findAll(ctx, colEvents, filter, bson.D{{Key: "_id", Value: 1}}, &found); err != nil {
		return nil, fmt.Errorf("look up %d events: %w", len(ids), err)
	}
	have := make(map[string]bool, len(found))
	for _, f := range found {
		have[f.ID] = true
	}
	var missing []string
	for _, id := range ids {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	return missing, nil
}

// SetDeliveries records the outcome of delivery attempts: the deliveries
// named in ds (the others are left as they are) and the event's summary.
// Only the holder of the event's delivery lease calls it.
func (s *Store) SetDeliveries(ctx context.Context, e order.Event, ds ...*order.Delivery) error {
	set := bson.D{{Key: "pending", Value: e.Pending}, {Key: "next_at", Value: bsonTime(e.NextAt)}}
	for _, d := range ds {
		d.NextAt = bsonTime(d.NextAt)
		set = append(set, bson.E{Key: "deliveries." + d.EndpointID, Value: d})
	}
	if err := s.setByID(ctx, colEvents, e.ID, set); err != nil {
		return fmt.Errorf("record deliveries of event %s: %w", e.ID, err)
	}
	return nil
}

// OrdersCreatedAfter lists up to limit orders, whatever their status,
// created before t, in (created_at, _id) order after the cursor. Index:
// created_at_id.
func (s *Store) OrdersCreatedAfter(ctx context.Context, createdBefore, afterAt time.Time, afterID string, limit int) ([]order.Order, error) {
	filter := bson.D{{Key: "created_at", Value: bson.D{{Key: "$lt", Value: bsonTime(createdBefore)}}}}
	filter = afterCursor(filter, "created_at", afterAt, afterID)
	os, err := s.findOrders(ctx, filter, bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}, limit)
	if err != nil {
		return nil, fmt.Errorf("list orders created after %s/%s: %w", afterAt.Format(time.RFC3339Nano), afterID, err)
	}
	return os, nil
}

// TakeOnce inserts key if no live document has it, and reports whether this
// caller did: exactly one of any number of concurrent callers wins. The key
// lives until expireAt; PurgeSlots removes it after that, and only then can
// it be taken again.
func (s *Store) TakeOnce(ctx context.Context, key string, expireAt time.Time) (bool, error) {
	doc := bson.D{{Key: "_id", Value: "once:" + key}, {Key: "expire_at", Value: bsonTime(expireAt)}}
	err := s.insert(ctx, colSlots, doc)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, order.ErrDuplicate):
		return false, nil
	default:
		return false, fmt.Errorf("take %s: %w", key, err)
	}
}

// OnceExpiry returns when a key TakeOnce inserted expires, or
// order.ErrNotFound.
func (s *Store) OnceExpiry(ctx context.Context, key string) (time.Time, error) {
	var d struct {
		ExpireAt time.Time `bson:"expire_at"`
	}
	if err := s.findOne(ctx, colSlots, bson.D{{Key: "_id", Value: "once:" + key}}, &d); err != nil {
		return time.Time{}, fmt.Errorf("read %s: %w", key, err)
	}
	return d.ExpireAt, nil
}
