package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/payfn/payfn/shared/order"
)

// orderDoc is an order as stored: the domain order plus its idempotency key,
// which carries the unique index that makes createOrder exactly-once.
type orderDoc struct {
	order.Order `bson:",inline"`
	RequestKey  string `bson:"request_key"`
}

// order is the stored order with its app filled in: orders written before
// apps existed belong to the default app.
func (d orderDoc) order() order.Order {
	o := d.Order
	o.AppID = appOrDefault(o.AppID)
	return o
}

// productDoc is a product as stored: keyed by order.ProductKey, so two apps
// may each sell a product "a".
type productDoc struct {
	Key           string `bson:"_id"`
	order.Product `bson:",inline"`
}

func (d productDoc) product() order.Product {
	p := d.Product
	p.ID = d.Key
	if prefix := p.AppID + ":"; appOrDefault(p.AppID) != order.DefaultApp && strings.HasPrefix(d.Key, prefix) {
		p.ID = d.Key[len(prefix):]
	}
	return p
}

// appFilter matches appID's documents; the default app's include those
// written before apps existed, which carry no app id.
func appFilter(appID string) bson.E {
	if appID == order.DefaultApp || appID == "" {
		return bson.E{Key: "app_id", Value: bson.D{{Key: "$in", Value: bson.A{order.DefaultApp, nil}}}}
	}
	return bson.E{Key: "app_id", Value: appID}
}

// Product returns appID's product with id, active or not, or
// order.ErrNotFound.
func (s *Store) Product(ctx context.Context, appID, id string) (order.Product, error) {
	var d productDoc
	if err := s.findOne(ctx, colProducts, bson.D{{Key: "_id", Value: order.ProductKey(appID, id)}}, &d); err != nil {
		return order.Product{}, fmt.Errorf("load product %s/%s: %w", appID, id, err)
	}
	p := d.product()
	if appOrDefault(p.AppID) != appOrDefault(appID) {
		return order.Product{}, fmt.Errorf("load product %s/%s: %w", appID, id, order.ErrNotFound)
	}
	return p, nil
}

func appOrDefault(appID string) string {
	if appID == "" {
		return order.DefaultApp
	}
	return appID
}

// Products returns appID's products sorted by id: only those on sale when
// activeOnly is set.
func (s *Store) Products(ctx context.Context, appID string, activeOnly bool) ([]order.Product, error) {
	filter := bson.D{appFilter(appID)}
	if activeOnly {
		filter = append(filter, bson.E{Key: "active", Value: true})
	}
	var docs []productDoc
	if err := s.findAll(ctx, colProducts, filter, bson.D{{Key: "_id", Value: 1}}, &docs); err != nil {
		return nil, fmt.Errorf("list products of %s: %w", appID, err)
	}
	ps := make([]order.Product, len(docs))
	for i, d := range docs {
		ps[i] = d.product()
	}
	return ps, nil
}

// InsertProduct writes a new product; order.ErrDuplicate when the app has
// one with that id.
func (s *Store) InsertProduct(ctx context.Context, p order.Product) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("insert product: %w", err)
	}
	if err := s.insert(ctx, colProducts, newProductDoc(p)); err != nil {
		return fmt.Errorf("insert product %s/%s: %w", p.AppID, p.ID, err)
	}
	return nil
}

// ReplaceProduct overwrites a stored product; order.ErrNotFound when there
// is none. Orders keep their snapshot, so nothing else changes.
func (s *Store) ReplaceProduct(ctx context.Context, p order.Product) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("replace product: %w", err)
	}
	c, err := s.collection(ctx, colProducts)
	if err != nil {
		return fmt.Errorf("replace product %s/%s: %w", p.AppID, p.ID, err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	d := newProductDoc(p)
	res, err := c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: d.Key}}, d)
	if err != nil {
		return fmt.Errorf("replace product %s/%s: %w", p.AppID, p.ID, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("replace product %s/%s: %w", p.AppID, p.ID, order.ErrNotFound)
	}
	return nil
}

func newProductDoc(p order.Product) productDoc {
	return productDoc{Key: order.ProductKey(p.AppID, p.ID), Product: p}
}

// UpsertProducts validates every product, then writes each one, replacing a
// stored product with the same id. Nothing is written if one is invalid.
func (s *Store) UpsertProducts(ctx context.Context, ps ...order.Product) error {
	for _, p := range ps {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("upsert products: %w", err)
		}
	}
	c, err := s.collection(ctx, colProducts)
	if err != nil {
		return fmt.Errorf("upsert products: %w", err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	for _, p := range ps {
		d := newProductDoc(p)
		_, err := c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: d.Key}}, d, options.Replace().SetUpsert(true))
		if err != nil {
			return fmt.Errorf("upsert product %s: %w", d.Key, err)
		}
	}
	return nil
}

// InsertOrder writes a new order. It returns order.ErrDuplicate when the
// order id or the (owner, request id) idempotency key is already taken.
func (s *Store) InsertOrder(ctx context.Context, o order.Order) error {
	switch {
	case o.ID == "":
		return errors.New("insert order: id is empty")
	case o.Owner == "":
		return fmt.Errorf("insert order %s: owner is empty", o.ID)
	case o.RequestID == "":
		// Without it the request key would be the same for all the owner's orders.
		return fmt.Errorf("insert order %s: request id is empty", o.ID)
	case !o.Status.Valid():
		return fmt.Errorf("insert order %s: unknown status %q", o.ID, o.Status)
	}
	o.PrepayExpiresAt = bsonTime(o.PrepayExpiresAt)
	o.CreatedAt = bsonTime(o.CreatedAt)
	o.ExpiresAt = bsonTime(o.ExpiresAt)
	o.UpdatedAt = bsonTime(o.UpdatedAt)
	if o.PaidAt != nil {
		t := bsonTime(*o.PaidAt)
		o.PaidAt = &t
	}
	o.AppID = appOrDefault(o.AppID)
	if err := s.insert(ctx, colOrders, orderDoc{Order: o, RequestKey: o.RequestKey()}); err != nil {
		return fmt.Errorf("insert order %s: %w", o.ID, err)
	}
	return nil
}

// Order returns the order with id (its out_trade_no), or order.ErrNotFound.
func (s *Store) Order(ctx context.Context, id string) (order.Order, error) {
	var d orderDoc
	if err := s.findOne(ctx, colOrders, bson.D{{Key: "_id", Value: id}}, &d); err != nil {
		return order.Order{}, fmt.Errorf("load order %s: %w", id, err)
	}
	return d.order(), nil
}

// OrderByRequest returns the owner's order in appID created with requestID,
// or order.ErrNotFound.
func (s *Store) OrderByRequest(ctx context.Context, appID, owner, requestID string) (order.Order, error) {
	// Owner and app are matched too, not only the joined key: a crafted
	// request id must never reach another buyer's order.
	filter := bson.D{
		{Key: "request_key", Value: order.AppRequestKey(appID, owner, requestID)},
		{Key: "owner", Value: owner},
		{Key: "request_id", Value: requestID},
		appFilter(appID),
	}
	var d orderDoc
	if err := s.findOne(ctx, colOrders, filter, &d); err != nil {
		return order.Order{}, fmt.Errorf("load order for request %q: %w", requestID, err)
	}
	return d.order(), nil
}

// SetPrepay records the prepay id WeChat Pay issued for the order and when it
// stops being usable. It does not change the status. It returns
// order.ErrNotFound when the order does not exist.
func (s *Store) SetPrepay(ctx context.Context, orderID, prepayID string, expiresAt time.Time) error {
	if prepayID == "" {
		return fmt.Errorf("set prepay of order %s: prepay id is empty", orderID)
	}
	set := bson.D{
		{Key: "prepay_id", Value: prepayID},
		{Key: "prepay_expires_at", Value: bsonTime(expiresAt)},
		{Key: "updated_at", Value: bsonTime(s.now())},
	}
	if err := s.setByID(ctx, colOrders, orderID, set); err != nil {
		return fmt.Errorf("set prepay of order %s: %w", orderID, err)
	}
	return nil
}

// RecordPayment inserts a ledger row keyed by its transaction id. It returns
// order.ErrDuplicate when the row already exists.
func (s *Store) RecordPayment(ctx context.Context, p order.Payment) error {
	switch {
	case p.TransactionID == "":
		return errors.New("record payment: transaction id is empty")
	case p.OutTradeNo == "":
		return fmt.Errorf("record payment %s: out_trade_no is empty", p.TransactionID)
	}
	p.SuccessTime = bsonTime(p.SuccessTime)
	p.RecordedAt = bsonTime(p.RecordedAt)
	if err := s.insert(ctx, colPayments, p); err != nil {
		return fmt.Errorf("record payment %s for order %s: %w", p.TransactionID, p.OutTradeNo, err)
	}
	return nil
}

// Payments returns the ledger rows for an order, oldest first.
func (s *Store) Payments(ctx context.Context, outTradeNo string) ([]order.Payment, error) {
	var ps []order.Payment
	sort := bson.D{{Key: "recorded_at", Value: 1}, {Key: "_id", Value: 1}}
	if err := s.findAll(ctx, colPayments, bson.D{{Key: "out_trade_no", Value: outTradeNo}}, sort, &ps); err != nil {
		return nil, fmt.Errorf("list payments of order %s: %w", outTradeNo, err)
	}
	return ps, nil
}

// Claim inserts c if no claim with c.Key exists and returns (c, true). If one
// exists it returns that claim and false. Exactly one of any number of
// concurrent callers with the same key wins, because the decision is the
// insert itself. Times in the returned claim are as stored (UTC, whole
// milliseconds), so the winner and the losers hold equal claims.
func (s *Store) Claim(ctx context.Context, c order.Claim) (order.Claim, bool, error) {
	if err := validClaim(c); err != nil {
		return order.Claim{}, false, fmt.Errorf("claim: %w", err)
	}
	c.PaidAt = bsonTime(c.PaidAt)
	c.DecidedAt = bsonTime(c.DecidedAt)
	err := s.insert(ctx, colClaims, c)
	if err == nil {
		return c, true, nil
	}
	if !errors.Is(err, order.ErrDuplicate) {
		return order.Claim{}, false, fmt.Errorf("claim %s: %w", c.Key, err)
	}
	var won order.Claim
	if err := s.findDecision(ctx, c.Key, &won); err != nil {
		// Claims are never deleted, so even ErrNotFound here is a store fault.
		return order.Claim{}, false, fmt.Errorf("claim %s: load the existing claim: %w", c.Key, err)
	}
	return won, false, nil
}

// findDecision reads the claim under key after an insert found the key
// taken. It reads with majority read concern, so on a replica set a winner
// whose insert a majority has not yet acknowledged is invisible for a
// moment: it looks again briefly (about 0.6 s in all, within ctx) rather
// than report a store fault at once.
func (s *Store) findDecision(ctx context.Context, key string, v any) error {
	wait := 10 * time.Millisecond
	for {
		err := s.findOne(ctx, colClaims, bson.D{{Key: "_id", Value: key}}, v)
		if !errors.Is(err, order.ErrNotFound) || wait > 400*time.Millisecond {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		wait *= 2
	}
}

// Claims returns the claims made on an order, oldest first.
func (s *Store) Claims(ctx context.Context, orderID string) ([]order.Claim, error) {
	var cs []order.Claim
	sort := bson.D{{Key: "decided_at", Value: 1}, {Key: "_id", Value: 1}}
	if err := s.findAll(ctx, colClaims, bson.D{{Key: "order_id", Value: orderID}}, sort, &cs); err != nil {
		return nil, fmt.Errorf("list claims of order %s: %w", orderID, err)
	}
	return cs, nil
}

// ApplyClaim writes the claim's decision onto its order: status, transaction
// id and paid time when the claim has them, and updated_at = the claim's
// DecidedAt. It is an unconditional $set by _id, so applying a claim again,
// or concurrently, writes the same values. It returns order.ErrNotFound when
// the order does not exist.
func (s *Store) ApplyClaim(ctx context.Context, c order.Claim) error {
	if err := validClaim(c); err != nil {
		return fmt.Errorf("apply claim: %w", err)
	}
	set := bson.D{{Key: "status", Value: c.Status}}
	if c.TransactionID != "" {
		set = append(set, bson.E{Key: "transaction_id", Value: c.TransactionID})
	}
	if !c.PaidAt.IsZero() {
		set = append(set, bson.E{Key: "paid_at", Value: bsonTime(c.PaidAt)})
	}
	set = append(set, bson.E{Key: "updated_at", Value: bsonTime(c.DecidedAt)})
	if err := s.setByID(ctx, colOrders, c.OrderID, set); err != nil {
		return fmt.Errorf("apply claim %s to order %s: %w", c.Key, c.OrderID, err)
	}
	return nil
}

func validClaim(c order.Claim) error {
	switch {
	case c.Key == "":
		return errors.New("key is empty")
	case c.OrderID == "":
		return fmt.Errorf("%s: order id is empty", c.Key)
	case !c.Status.Valid():
		return fmt.Errorf("%s: unknown status %q", c.Key, c.Status)
	case c.DecidedAt.IsZero():
		return fmt.Errorf("%s: decided_at is not set", c.Key)
	}
	return nil
}

// insert inserts doc, mapping a duplicate key to order.ErrDuplicate.
func (s *Store) insert(ctx context.Context, coll string, doc any) error {
	get := s.collection
	if coll == colOrders || coll == colRefunds {
		// Their unique secondary indexes (request key, refund slot) are
		// what makes these inserts exactly-once: wait for them.
		get = s.indexedCollection
	}
	c, err := get(ctx, coll)
	if err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if _, err := c.InsertOne(ctx, doc); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return order.ErrDuplicate
		}
		return err
	}
	return nil
}

// findOne decodes the first document matching filter into v, mapping "no
// document" to order.ErrNotFound.
func (s *Store) findOne(ctx context.Context, coll string, filter bson.D, v any) error {
	c, err := s.collection(ctx, coll)
	if err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if err := c.FindOne(ctx, filter).Decode(v); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return order.ErrNotFound
		}
		return err
	}
	return nil
}

// findAll decodes every document matching filter, in sort order, into the
// slice v points to.
func (s *Store) findAll(ctx context.Context, coll string, filter, sort bson.D, v any) error {
	c, err := s.collection(ctx, coll)
	if err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	cur, err := c.Find(ctx, filter, options.Find().SetSort(sort))
	if err != nil {
		return err
	}
	return cur.All(ctx, v)
}

// findPage is findAll for one page: at most limit documents (limit must be
// positive).
func (s *Store) findPage(ctx context.Context, coll string, filter, sort bson.D, limit int, v any) error {
	if limit < 1 {
		return fmt.Errorf("limit %d is not positive", limit)
	}
	c, err := s.collection(ctx, coll)
	if err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	cur, err := c.Find(ctx, filter, options.Find().SetSort(sort).SetLimit(int64(limit)))
	if err != nil {
		return err
	}
	return cur.All(ctx, v)
}

// setByID applies $set to the document with id, mapping "no such document"
// to order.ErrNotFound. There is deliberately no other filter: see the
// package comment.
func (s *Store) setByID(ctx context.Context, coll, id string, set bson.D) error {
	c, err := s.collection(ctx, coll)
	if err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	res, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: set}})
	if err != nil {
		return err
	}
	if res.MatchedCount == 0 {
		return order.ErrNotFound
	}
	return nil
}
