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
// The store answers within WeChat Pay's 5 s: every operation is bounded by
// Options.OpTimeout and by the caller's own deadline less Options.OpMargin,
// so a slow store fails in time for the caller to answer 5xx. Decisions
// (claims, ledger rows, orders, refunds) are written with write concern
// "majority", and claims and the ledger are read with read concern
// "majority", so on a replica set a decision once seen survives a failover.
// FerretDB and a standalone MongoDB accept both and behave as before.
//
// Index creation is not on a request's path: see database and EnsureIndexes.
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
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
)

// Collection names.
const (
	colProducts   = "products"
	colOrders     = "orders"
	colPayments   = "payments"
	colClaims     = "claims"
	colRefunds    = "refunds"
	colSlots      = "slots"      // rate-limit slots, one per (key, window)
	colJobState   = "jobstate"   // scheduled jobs' cursors and per-item backoff (jobs.go)
	colApps       = "apps"       // service mode's client apps (service.go)
	colEvents     = "events"     // the webhook outbox: one document per decision (service.go)
	colDeliveries = "deliveries" // webhook deliveries still pending (service.go)
	colDelivered  = "delivered"  // webhook deliveries settled: succeeded, failed or disabled
)

// Defaults for Options.
const (
	DefaultDatabase               = "payfn"
	DefaultServerSelectionTimeout = 3 * time.Second
	// DefaultOpTimeout bounds one store operation: well inside WeChat Pay's
	// 5 s wait for a notification's answer.
	DefaultOpTimeout = 3 * time.Second
	// DefaultOpMargin is the time left to the caller after a store
	// operation before its own deadline: enough to answer 5xx.
	DefaultOpMargin = 500 * time.Millisecond
	// DefaultIndexTimeout bounds one background attempt at the indexes.
	DefaultIndexTimeout = 20 * time.Second
)

// errNoTime is why an operation is refused when the caller's deadline is
// closer than the margin.
var errNoTime = errors.New("no time left for a store operation before the caller's deadline")

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
	// OpTimeout bounds each operation (one insert, one query with its
	// cursor); default DefaultOpTimeout. An operation also ends OpMargin
	// before the caller's context deadline, whichever comes first.
	OpTimeout time.Duration
	// OpMargin is kept free before the caller's deadline; default
	// DefaultOpMargin.
	OpMargin time.Duration
	// IndexTimeout bounds one attempt at creating the indexes; default
	// DefaultIndexTimeout.
	IndexTimeout time.Duration
	// Monitor, if set, sees every command the driver sends (tests, metrics).
	Monitor *event.CommandMonitor
}

// Store is payfn's MongoDB store. It is safe for concurrent use. Create one
// per process and reuse it across invocations: it holds the driver's
// connection pool.
type Store struct {
	dbName    string
	copts     *options.ClientOptions
	log       *slog.Logger
	now       func() time.Time
	opTimeout time.Duration
	opMargin  time.Duration
	ixTimeout time.Duration

	// base is cancelled by Close, ending a background index attempt.
	base     context.Context
	stopBase context.CancelFunc

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
// connects on first use, and the first call starts ensuring the indexes in
// the background (once per process; a failed attempt is retried by a later
// call). So a cold start never fails because the store is briefly down, and
// no request waits for index creation except the few that rely on a unique
// secondary index (see database).
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
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
		msg string
	}{{&opts.OpTimeout, DefaultOpTimeout, "operation timeout"}, {&opts.OpMargin, DefaultOpMargin, "operation margin"}, {&opts.IndexTimeout, DefaultIndexTimeout, "index timeout"}} {
		switch {
		case *d.v == 0:
			*d.v = d.def
		case *d.v < 0:
			return nil, fmt.Errorf("new store: negative %s %s", d.msg, *d.v)
		}
	}
	copts := options.Client().
		ApplyURI(opts.URI).
		SetServerSelectionTimeout(opts.ServerSelectionTimeout).
		// A dial slower than server selection is of no use to the caller.
		SetConnectTimeout(opts.ServerSelectionTimeout)
	if opts.Monitor != nil {
		copts.SetMonitor(opts.Monitor)
	}
	if err := copts.Validate(); err != nil {
		// The driver's message may quote parts of the URI; keep only that
		// it is invalid so a password can never reach a log.
		return nil, errors.New("new store: invalid URI (check the scheme, hosts and options)")
	}
	base, stop := context.WithCancel(context.Background())
	return &Store{
		dbName:    opts.Database,
		copts:     copts,
		log:       opts.Logger,
		now:       opts.Now,
		opTimeout: opts.OpTimeout,
		opMargin:  opts.OpMargin,
		ixTimeout: opts.IndexTimeout,
		base:      base,
		stopBase:  stop,
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
	s.stopBase()
	if c == nil {
		return nil
	}
	if err := c.Disconnect(ctx); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// Ping reports whether the store answers and its indexes are in place
// (waiting, within ctx, for them to be created).
func (s *Store) Ping(ctx context.Context) error {
	db, err := s.indexedDatabase(ctx)
	if err != nil {
		return fmt.Errorf("ping store: %w", err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if err := db.Client().Ping(ctx, nil); err != nil {
		return fmt.Errorf("ping store: %w", err)
	}
	return nil
}

// EnsureIndexes creates the indexes now, within ctx, and reports the
// outcome. The dev stack and a deploy step run it so that a function's first
// request finds them in place; a function that finds them missing creates
// them in the background anyway (see database).
func (s *Store) EnsureIndexes(ctx context.Context) error {
	db, err := s.client0()
	if err != nil {
		return fmt.Errorf("ensure indexes: %w", err)
	}
	if err := ensureIndexes(ctx, db); err != nil {
		return err
	}
	s.mu.Lock()
	s.indexed = true
	s.mu.Unlock()
	return nil
}

// client0 returns the database, creating the driver's client on first use.
func (s *Store) client0() (*mongo.Database, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.client == nil {
		// Connect dials nothing itself; its background monitors do.
		c, err := mongo.Connect(s.copts)
		if err != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
		s.client = c
		s.log.Info("store client created", "hosts", s.copts.Hosts, "database", s.dbName)
	}
	return s.client.Database(s.dbName), nil
}

// database returns the database and makes sure the indexes are being
// ensured, without waiting for them. Index creation is kept off the request
// path on purpose: on a real MongoDB createIndexes on a busy collection can
// take longer than WeChat Pay waits for a notification's answer, and the
// payment path (claims and the ledger, keyed by _id) needs no secondary
// index to be correct. It runs once per process in the background, bounded
// by Options.IndexTimeout; a failed attempt is retried by a later call.
// The calls whose correctness rests on a unique secondary index (an order's
// request key, a refund's slot) use indexedDatabase instead.
func (s *Store) database(ctx context.Context) (*mongo.Database, error) {
	db, err := s.client0()
	if err != nil {
		return nil, err
	}
	s.startIndexing(db)
	return db, nil
}

// indexedDatabase is database, waiting (within ctx and the operation
// timeout) until the indexes are in place.
func (s *Store) indexedDatabase(ctx context.Context) (*mongo.Database, error) {
	db, err := s.client0()
	if err != nil {
		return nil, err
	}
	ix := s.startIndexing(db)
	if ix == nil {
		return db, nil
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	select {
	case <-ix.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("ensure indexes: %w", context.Cause(ctx))
	}
	if ix.err != nil {
		return nil, ix.err
	}
	return db, nil
}

// startIndexing starts an index attempt unless the indexes are in place or
// one is already running, and returns the attempt in flight (nil when the
// indexes are in place).
func (s *Store) startIndexing(db *mongo.Database) *indexing {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.indexed {
		return nil
	}
	if s.pending != nil {
		return s.pending
	}
	ix := &indexing{done: make(chan struct{})}
	s.pending = ix
	go func() {
		ctx, cancel := context.WithTimeout(s.base, s.ixTimeout)
		defer cancel()
		ix.err = ensureIndexes(ctx, db)
		s.mu.Lock()
		s.pending = nil
		s.indexed = s.indexed || ix.err == nil
		s.mu.Unlock()
		close(ix.done)
		if ix.err != nil {
			s.log.Warn("store indexes not ensured; a later call retries", "database", s.dbName, "err", ix.err)
		} else {
			s.log.Debug("store indexes ensured", "database", s.dbName)
		}
	}()
	return ix
}

// opCtx bounds one operation: Options.OpTimeout, and OpMargin before the
// caller's own deadline, whichever is sooner. With less than the margin
// left, the operation fails at once: the caller needs that time to answer.
func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	d := s.opTimeout
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl)-s.opMargin)
	}
	if d <= 0 {
		ctx, cancel := context.WithCancelCause(ctx)
		cancel(errNoTime)
		return ctx, func() {}
	}
	return context.WithTimeoutCause(ctx, d, fmt.Errorf("store operation took longer than %s: %w", d, context.DeadlineExceeded))
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
		// The jobs page through unpaid orders by time with a cursor
		// (time, _id): closeExpired by expiry, reconcile by creation. The
		// trailing _id lets a page resume inside a run of equal times from
		// the index alone. (They replace status_expires_at, which an older
		// deployment may still hold: harmless, and droppable.)
		{colOrders, mongo.IndexModel{
			Keys:    bson.D{{Key: "status", Value: 1}, {Key: "expires_at", Value: 1}, {Key: "_id", Value: 1}},
			Options: options.Index().SetName("status_expires_at_id"),
		}},
		{colOrders, mongo.IndexModel{
			Keys:    bson.D{{Key: "status", Value: 1}, {Key: "created_at", Value: 1}, {Key: "_id", Value: 1}},
			Options: options.Index().SetName("status_created_at_id"),
		}},
		// reconcile pages through refunds still REFUNDING the same way.
		{colRefunds, mongo.IndexModel{
			Keys:    bson.D{{Key: "status", Value: 1}, {Key: "created_at", Value: 1}, {Key: "_id", Value: 1}},
			Options: options.Index().SetName("status_created_at_id"),
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
		// Service mode: an app's products and events, the dispatcher's due
		// deliveries, and the sweep that rolls order.created forward.
		{colProducts, mongo.IndexModel{
			Keys:    bson.D{{Key: "app_id", Value: 1}, {Key: "_id", Value: 1}},
			Options: options.Index().SetName("app_id_id"),
		}},
		{colEvents, mongo.IndexModel{
			Keys:    bson.D{{Key: "app_id", Value: 1}, {Key: "created_at", Value: 1}, {Key: "_id", Value: 1}},
			Options: options.Index().SetName("app_id_created_at_id"),
		}},
		{colDeliveries, mongo.IndexModel{
			Keys:    bson.D{{Key: "next_at", Value: 1}},
			Options: options.Index().SetName("next_at"),
		}},
		{colDeliveries, mongo.IndexModel{
			Keys:    bson.D{{Key: "event_id", Value: 1}},
			Options: options.Index().SetName("event_id"),
		}},
		{colDelivered, mongo.IndexModel{
			Keys:    bson.D{{Key: "event_id", Value: 1}},
			Options: options.Index().SetName("event_id"),
		}},
		{colOrders, mongo.IndexModel{
			Keys:    bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}},
			Options: options.Index().SetName("created_at_id"),
		}},
		// The bill job reads a day's ledger rows and refunds (bills.go).
		{colPayments, mongo.IndexModel{Keys: bson.D{{Key: "success_time", Value: 1}, {Key: "_id", Value: 1}}, Options: options.Index().SetName("success_time_id")}},
		{colRefunds, mongo.IndexModel{Keys: bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}, Options: options.Index().SetName("created_at_id")}},
		// closeExpired purges rate-limit slots whose window has passed.
		{colSlots, mongo.IndexModel{
			Keys:    bson.D{{Key: "expire_at", Value: 1}},
			Options: options.Index().SetName("expire_at"),
		}},
		// Profit sharing (sharing.go): the shareProfits job's due split and
		// return tasks, and its discovery of newly decided orders.
		{colSplitTasks, mongo.IndexModel{
			Keys:    bson.D{{Key: "open", Value: 1}, {Key: "due_at", Value: 1}, {Key: "_id", Value: 1}},
			Options: options.Index().SetName("open_due_at_id"),
		}},
		{colReturnTasks, mongo.IndexModel{
			Keys:    bson.D{{Key: "open", Value: 1}, {Key: "due_at", Value: 1}, {Key: "_id", Value: 1}},
			Options: options.Index().SetName("open_due_at_id"),
		}},
		{colOrders, mongo.IndexModel{
			Keys:    bson.D{{Key: "status", Value: 1}, {Key: "updated_at", Value: 1}, {Key: "_id", Value: 1}},
			Options: options.Index().SetName("status_updated_at_id"),
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
	return db.Collection(name, collectionOptions(name)), nil
}

// indexedCollection is collection for a call that relies on a unique
// secondary index: it waits for the indexes.
func (s *Store) indexedCollection(ctx context.Context, name string) (*mongo.Collection, error) {
	db, err := s.indexedDatabase(ctx)
	if err != nil {
		return nil, err
	}
	return db.Collection(name, collectionOptions(name)), nil
}

// collectionOptions gives the decision collections majority write concern
// (a decision acknowledged is a decision that survives a failover), and the
// claims and the ledger majority read concern too (whoever reads a decision
// reads one that cannot be rolled back). Set per collection, so they win
// over a w= in the URI. FerretDB and a standalone MongoDB accept both
// (tested); bookkeeping (slots, jobstate, products) keeps the defaults.
func collectionOptions(name string) *options.CollectionOptionsBuilder {
	o := options.Collection()
	switch name {
	case colClaims, colPayments:
		o.SetWriteConcern(writeconcern.Majority()).SetReadConcern(readconcern.Majority())
	case colOrders, colRefunds:
		o.SetWriteConcern(writeconcern.Majority())
	}
	return o
}

// bsonTime makes t what a BSON date round-trips to: UTC, whole milliseconds.
// Writing it so means a value a caller holds equals the value read back.
func bsonTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Millisecond)
}
