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
	e.CreatedAt = bsonTime(e.CreatedAt)
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

func (s *Store) findEvents(ctx context.Context, filter, sort bson.D, limit int) ([]order.Event, error) {
	var es []order.Event
	if err := s.findPage(ctx, colEvents, filter, sort, limit, &es); err != nil {
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
	took, err := s.insertOnce(ctx, "once:"+key, expireAt)
	if err != nil {
		return false, fmt.Errorf("take %s: %w", key, err)
	}
	return took, nil
}

// insertOnce inserts the slots document id, living until expireAt (then
// PurgeSlots removes it), and reports whether this caller inserted it: the
// insert is the decision, so exactly one of any number of callers does.
func (s *Store) insertOnce(ctx context.Context, id string, expireAt time.Time) (bool, error) {
	err := s.insert(ctx, colSlots, bson.D{{Key: "_id", Value: id}, {Key: "expire_at", Value: bsonTime(expireAt)}})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, order.ErrDuplicate):
		return false, nil
	default:
		return false, err
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

// TakeOnceMany is TakeOnce for many keys in one round trip: taken[i] says
// whether this caller inserted keys[i].
func (s *Store) TakeOnceMany(ctx context.Context, keys []string, expireAt time.Time) ([]bool, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	docs := make([]any, len(keys))
	for i, k := range keys {
		docs[i] = bson.D{{Key: "_id", Value: "once:" + k}, {Key: "expire_at", Value: bsonTime(expireAt)}}
	}
	dup, err := s.insertMany(ctx, colSlots, docs)
	if err != nil {
		return nil, fmt.Errorf("take %d keys: %w", len(keys), err)
	}
	for i := range dup {
		dup[i] = !dup[i]
	}
	return dup, nil
}

// The delivery queue holds pending deliveries only, so the dispatcher's
// query reads a small set; a settled delivery moves to the delivered log.
// Measured on the embedded FerretDB, whose updates and unindexed queries
// parse every stored document: with the attempts recorded on the events
// themselves, 1,000 due events took 20 s to deliver.

// InsertDeliveries queues deliveries; ones already queued (same id) are
// left as they are, and ones already settled are not queued again: a
// decision rolled forward after its delivery settled (a repeated order
// request, a duplicate notification that lost the claim) must not send its
// event twice. A settled delivery is logged before it leaves the queue, so
// a fresh insert here whose id is in the log is such a repeat, and is taken
// back out.
func (s *Store) InsertDeliveries(ctx context.Context, ds []order.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	docs := make([]any, len(ds))
	for i, d := range ds {
		d.NextAt, d.CreatedAt = bsonTime(d.NextAt), bsonTime(d.CreatedAt)
		docs[i] = d
	}
	dup, err := s.insertMany(ctx, colDeliveries, docs)
	if err != nil {
		return fmt.Errorf("queue %d deliveries: %w", len(ds), err)
	}
	var fresh []string
	for i, d := range ds {
		if !dup[i] {
			fresh = append(fresh, d.ID)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	var settled []struct {
		ID string `bson:"_id"`
	}
	if err := s.findAll(ctx, colDelivered, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: fresh}}}}, bson.D{{Key: "_id", Value: 1}}, &settled); err != nil {
		return fmt.Errorf("queue %d deliveries: look for settled ones: %w", len(ds), err)
	}
	if len(settled) == 0 {
		return nil
	}
	ids := make([]string, len(settled))
	for i, x := range settled {
		ids[i] = x.ID
	}
	c, err := s.collection(ctx, colDeliveries)
	if err != nil {
		return fmt.Errorf("unqueue %d settled deliveries: %w", len(ids), err)
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	if _, err := c.DeleteMany(octx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}, {Key: "attempts", Value: 0}}); err != nil {
		return fmt.Errorf("unqueue %d settled deliveries: %w", len(ids), err)
	}
	return nil
}

// insertMany inserts docs in one round trip, unordered, and reports which
// were already there (a duplicate key is not an error).
func (s *Store) insertMany(ctx context.Context, coll string, docs []any) ([]bool, error) {
	dup := make([]bool, len(docs))
	c, err := s.collection(ctx, coll)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	_, err = c.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	var bwe mongo.BulkWriteException
	switch {
	case err == nil:
		return dup, nil
	case errors.As(err, &bwe) && bwe.WriteConcernError == nil:
		for _, we := range bwe.WriteErrors {
			if we.Code != 11000 || we.Index < 0 || we.Index >= len(docs) {
				return nil, err
			}
			dup[we.Index] = true
		}
		return dup, nil
	default:
		return nil, err
	}
}

// DueDeliveries lists up to limit queued deliveries due at or before now,
// earliest first.
func (s *Store) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]order.Delivery, error) {
	filter := bson.D{{Key: "next_at", Value: bson.D{{Key: "$lte", Value: bsonTime(now)}}}}
	var ds []order.Delivery
	if err := s.findPage(ctx, colDeliveries, filter, bson.D{{Key: "next_at", Value: 1}}, limit, &ds); err != nil {
		return nil, fmt.Errorf("list due deliveries: %w", err)
	}
	return ds, nil
}

// Deliveries returns an event's deliveries, queued and settled.
func (s *Store) Deliveries(ctx context.Context, eventID string) ([]order.Delivery, error) {
	var out []order.Delivery
	for _, coll := range []string{colDeliveries, colDelivered} {
		var ds []order.Delivery
		if err := s.findAll(ctx, coll, bson.D{{Key: "event_id", Value: eventID}}, bson.D{{Key: "endpoint_id", Value: 1}}, &ds); err != nil {
			return nil, fmt.Errorf("list deliveries of %s: %w", eventID, err)
		}
		out = append(out, ds...)
	}
	return out, nil
}

// Delivery returns a queued delivery, or order.ErrNotFound.
func (s *Store) Delivery(ctx context.Context, id string) (order.Delivery, error) {
	var d order.Delivery
	if err := s.findOne(ctx, colDeliveries, bson.D{{Key: "_id", Value: id}}, &d); err != nil {
		return order.Delivery{}, fmt.Errorf("load delivery %s: %w", id, err)
	}
	return d, nil
}

// RecordDeliveries stores attempts' outcomes: a delivery still pending is
// rewritten in the queue; a settled one is written to the delivered log
// (replacing an earlier settlement, as a manual redelivery does) and then
// leaves the queue. Only the holder of a delivery's lease calls it.
func (s *Store) RecordDeliveries(ctx context.Context, ds []order.Delivery) error {
	var settled []any
	var ids []string
	var errs []error
	for _, d := range ds {
		d.NextAt, d.CreatedAt = bsonTime(d.NextAt), bsonTime(d.CreatedAt)
		if d.Status == order.DeliveryPending {
			if err := s.replace(ctx, colDeliveries, d.ID, d); err != nil {
				errs = append(errs, fmt.Errorf("reschedule delivery %s: %w", d.ID, err))
			}
			continue
		}
		settled = append(settled, d)
		ids = append(ids, d.ID)
	}
	if len(settled) > 0 {
		dup, err := s.insertMany(ctx, colDelivered, settled)
		if err != nil {
			return errors.Join(append(errs, fmt.Errorf("log %d settled deliveries: %w", len(settled), err))...)
		}
		for i, isDup := range dup {
			if isDup { // settled before (a manual redelivery since): keep the newest
				d := settled[i].(order.Delivery)
				if err := s.replace(ctx, colDelivered, d.ID, d); err != nil {
					errs = append(errs, fmt.Errorf("log settled delivery %s: %w", d.ID, err))
				}
			}
		}
		c, err := s.collection(ctx, colDeliveries)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		octx, cancel := s.opCtx(ctx)
		_, err = c.DeleteMany(octx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("dequeue %d settled deliveries: %w", len(ids), err))
		}
	}
	return errors.Join(errs...)
}
