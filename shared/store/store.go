// Package store implements app.Store on MongoDB with mongo-driver v2. It
// works unchanged against MongoDB and against the embedded FerretDB used for
// local runs and tests (shared/store/embedded, which this package must not
// import).
//
// Every exactly-once decision is an insert under a unique key (a claim, a
// ledger row, an order's request key), never a filtered update: FerretDB runs
// filtered updates as read-modify-write, so only unique indexes are atomic on
// every store payfn supports. Updates here are unconditional $set by _id and
// idempotent.
//
// Of payfn's packages it imports only shared/order: never shared/app,
// shared/wxpay, a runtime, or shared/store/embedded (which would link
// FerretDB into function binaries).
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Collection names.
const (
	colProducts = "products"
	colOrders   = "orders"
	colPayments = "payments"
	colClaims   = "claims"
	colRefunds  = "refunds"
	colSlots    = "slots" // rate-limit slots, one per (key, window)
)

// Defaults for Options.
const (
	DefaultDatabase               = "payfn"
	DefaultServerSelectionTimeout = 3 * time.Second
)

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("store closed")

// Options configure New.
type Options struct {
	// URI is the connection string, "mongodb://..." or "mongodb+srv://...".
	// It may hold a password: it is never logged or put in an error.
	URI string
	// Database is the database name; default "payfn".
	Database string
	// ServerSelectionTimeout bounds how long a call waits for a reachable
	// server; default 3s. A down store must fail fast so that the payment
	// callback answers 5xx and WeChat Pay retries.
	ServerSelectionTimeout time.Duration
	// Logger; default discard.
	Logger *slog.Logger
	// Now is the clock for updated_at on SetPrepay; default time.Now.
	Now func() time.Time
}

// Store is payfn's MongoDB store. It is safe for concurrent use. Create one
// per process and reuse it across invocations: it holds the driver's
// connection pool.
type Store struct {
	dbName string
	copts  *options.ClientOptions
	log    *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	client  *mongo.Client
	closed  bool
	indexed bool      // indexes ensured in this process
	pending *indexing // the index creation in flight, if any
}

// indexing is one attempt at ensuring the indexes, shared by every caller
// that arrives while it runs, so a down store costs each caller one timeout,
// not one per caller queued ahead of it.
type indexing struct {
	done chan struct{}
	err  error // set before done is closed
}

// New checks opts and returns a Store. It does no network I/O: the driver
// connects on first use, and the first call ensures the indexes (once per
// process; a failed attempt is retried by the next call). So a cold start
// never fails because the store is briefly down.
func New(opts Options) (*Store, error) {
	if opts.URI == "" {
		return nil, errors.New("new store: URI is empty")
	}
	if opts.Database == "" {
		opts.Database = DefaultDatabase
	}
	if err := validDatabaseName(opts.Database); err != nil {
		return nil, fmt.Errorf("new store: %w", err)
	}
	switch {
	case opts.ServerSelectionTimeout == 0:
		opts.ServerSelectionTimeout = DefaultServerSelectionTimeout
	case opts.ServerSelectionTimeout < 0:
		return nil, fmt.Errorf("new store: negative server selection timeout %s", opts.ServerSelectionTimeout)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	copts := options.Client().
		ApplyURI(opts.URI).
		SetServerSelectionTimeout(opts.ServerSelectionTimeout).
		// A dial slower than server selection is of no use to the caller.
		SetConnectTimeout(opts.ServerSelectionTimeout)
	if err := copts.Validate(); err != nil {
		// The driver's message may quote parts of the URI; keep only that
		// it is invalid so a password can never reach a log.
		return nil, errors.New("new store: invalid URI (check the scheme, hosts and options)")
	}
	return &Store{
		dbName: opts.Database,
		copts:  copts,
		log:    opts.Logger,
		now:    opts.Now,
	}, nil
}

// validDatabaseName applies MongoDB's rules for database names.
func validDatabaseName(name string) error {
	if len(name) > 63 {
		return fmt.Errorf("database name %q is longer than 63 bytes", name)
	}
	if strings.ContainsAny(name, "/\\. \"$\x00") {
		return fmt.Errorf("database name %q contains one of / \\ . space \" $ NUL", name)
	}
	return nil
}

// Close disconnects the driver. Calls made after Close return ErrClosed;
// closing twice is harmless.
func (s *Store) Close(ctx context.Context) error {
	s.mu.Lock()
	c := s.client
	s.client, s.closed = nil, true
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	if err := c.Disconnect(ctx); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// Ping reports whether the store answers and its indexes are in place.
func (s *Store) Ping(ctx context.Context) error {
	db, err := s.database(ctx)
	if err != nil {
		return fmt.Errorf("ping store: %w", err)
	}
	if err := db.Client().Ping(ctx, nil); err != nil {
		return fmt.Errorf("ping store: %w", err)
	}
	return nil
}

// database returns the database, connecting and ensuring indexes on first use.
func (s *Store) database(ctx context.Context) (*mongo.Database, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if s.client == nil {
		// Connect dials nothing itself; its background monitors do.
		c, err := mongo.Connect(s.copts)
		if err != nil {
			s.mu.Unlock()
			return nil, fmt.Errorf("connect: %w", err)
		}
		s.client = c
		s.log.Info("store client created", "hosts", s.copts.Hosts, "database", s.dbName)
	}
	db := s.client.Database(s.dbName)
	if s.indexed {
		s.mu.Unlock()
		return db, nil
	}
	ix, lead := s.pending, false
	if ix == nil {
		ix, lead = &indexing{done: make(chan struct{})}, true
		s.pending = ix
	}
	s.mu.Unlock()

	if lead {
		ix.err = ensureIndexes(ctx, db)
		s.mu.Lock()
		s.pending = nil
		s.indexed = ix.err == nil
		s.mu.Unlock()
		close(ix.done)
		if ix.err == nil {
			s.log.Debug("store indexes ensured", "database", s.dbName)
		}
	} else {
		select {
		case <-ix.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("ensure indexes: %w", ctx.Err())
		}
	}
	if ix.err != nil {
		return nil, ix.err
	}
	return db, nil
}

// indexSpec is one index of one collection.
type indexSpec struct {
	coll  string
	model mongo.IndexModel
}

// ensureIndexes creates the indexes the store relies on. Creating an index
// that exists with the same definition is a no-op, so every process may run it.
func ensureIndexes(ctx context.Context, db *mongo.Database) error {
	want := []indexSpec{
		// The createOrder idempotency key: one order per (owner, request id).
		{colOrders, mongo.IndexModel{
			Keys:    bson.D{{Key: "request_key", Value: 1}},
			Options: options.Index().SetName("request_key_unique").SetUnique(true),
		}},
		{colPayments, mongo.IndexModel{
			Keys:    bson.D{{Key: "out_trade_no", Value: 1}},
			Options: options.Index().SetName("out_trade_no"),
		}},
		{colClaims, mongo.IndexModel{
			Keys:    bson.D{{Key: "order_id", Value: 1}},
			Options: options.Index().SetName("order_id"),
		}},
		// The expiry job and reconciliation look for unpaid orders by time.
		{colOrders, mongo.IndexModel{
			Keys:    bson.D{{Key: "status", Value: 1}, {Key: "expires_at", Value: 1}},
			Options: options.Index().SetName("status_expires_at"),
		}},
		// One refund per (order, slot): refunds of an order are admitted one
		// at a time, which is what keeps their sum under the paid total.
		{colRefunds, mongo.IndexModel{
			Keys:    bson.D{{Key: "slot_key", Value: 1}},
			Options: options.Index().SetName("slot_key_unique").SetUnique(true),
		}},
		{colRefunds, mongo.IndexModel{
			Keys:    bson.D{{Key: "order_id", Value: 1}},
			Options: options.Index().SetName("order_id"),
		}},
		// Reconcile's payment sweep reads the few ledger rows not yet decided.
		{colPayments, mongo.IndexModel{
			Keys:    bson.D{{Key: "disposition", Value: 1}, {Key: "_id", Value: 1}},
			Options: options.Index().SetName("disposition_id"),
		}},
		// createOrder counts the buyer's open orders.
		{colOrders, mongo.IndexModel{
			Keys:    bson.D{{Key: "owner", Value: 1}, {Key: "status", Value: 1}, {Key: "expires_at", Value: 1}},
			Options: options.Index().SetName("owner_status_expires_at"),
		}},
		// closeExpired purges rate-limit slots whose window has passed.
		{colSlots, mongo.IndexModel{
			Keys:    bson.D{{Key: "expire_at", Value: 1}},
			Options: options.Index().SetName("expire_at"),
		}},
	}
	for _, w := range want {
		if _, err := db.Collection(w.coll).Indexes().CreateOne(ctx, w.model); err != nil {
			return fmt.Errorf("ensure indexes on %s: %w", w.coll, err)
		}
	}
	return nil
}

// collection returns the named collection, ready for use.
func (s *Store) collection(ctx context.Context, name string) (*mongo.Collection, error) {
	db, err := s.database(ctx)
	if err != nil {
		return nil, err
	}
	return db.Collection(name), nil
}

// bsonTime makes t what a BSON date round-trips to: UTC, whole milliseconds.
// Writing it so means a value a caller holds equals the value read back.
func bsonTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Millisecond)
}
