package store_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"

	"github.com/payfn/payfn/shared/order"
	"github.com/payfn/payfn/shared/store"
	"github.com/payfn/payfn/shared/store/storetest"
)

// hangingServer accepts connections and never answers: a store that is up
// but stuck.
func hangingServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

func TestEveryOperationEndsAtItsTimeoutOrAMarginBeforeTheCallersDeadline(t *testing.T) {
	addr := hangingServer(t)
	for _, tc := range []struct {
		name      string
		opTimeout time.Duration
		deadline  time.Duration // of the caller's context
		within    time.Duration
	}{
		{"op timeout first", 300 * time.Millisecond, 30 * time.Second, 1200 * time.Millisecond},
		{"caller's deadline less the margin first", 10 * time.Second, 1500 * time.Millisecond, 1300 * time.Millisecond},
		{"less than the margin left", 10 * time.Second, 400 * time.Millisecond, 150 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := store.New(store.Options{URI: "mongodb://" + addr + "/", ServerSelectionTimeout: 3 * time.Second,
				OpTimeout: tc.opTimeout, OpMargin: 500 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				// The driver's monitor may be stuck in a handshake with a
				// server that never answers (up to its connect timeout, the
				// 3s selection timeout): do not wait for it here.
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				defer cancel()
				_ = s.Close(ctx)
			})
			ctx, cancel := context.WithTimeout(context.Background(), tc.deadline)
			defer cancel()
			begin := time.Now()
			_, _, err = s.Claim(ctx, claim("o1", 1))
			took := time.Since(begin)
			if err == nil || errors.Is(err, order.ErrNotFound) {
				t.Fatalf("Claim on a stuck store: error = %v, want a store failure", err)
			}
			if took > tc.within {
				t.Fatalf("Claim on a stuck store took %v, want at most %v", took, tc.within)
			}
			t.Logf("failed after %v: %v", took.Round(time.Millisecond), err)
		})
	}
}

// commands records what the driver sends, by command name and collection.
type commands struct {
	mu   sync.Mutex
	seen []bson.Raw
	// gate, if set, holds createIndexes until closed.
	gate chan struct{}
}

func (c *commands) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if e.CommandName == "createIndexes" && c.gate != nil {
			<-c.gate
		}
		c.mu.Lock()
		c.seen = append(c.seen, slicesClone(e.Command))
		c.mu.Unlock()
	}}
}

func slicesClone(b bson.Raw) bson.Raw { return append(bson.Raw(nil), b...) }

// find returns the first command named name on collection coll.
func (c *commands) find(name, coll string) (bson.Raw, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cmd := range c.seen {
		if v, err := cmd.LookupErr(name); err == nil && v.StringValue() == coll {
			return cmd, true
		}
	}
	return nil, false
}

func concern(cmd bson.Raw, path ...string) string {
	v, err := cmd.LookupErr(path...)
	if err != nil {
		return ""
	}
	return v.StringValue()
}

// On a replica set a decision acknowledged by a majority survives a
// failover, and a majority read never sees one that could be rolled back.
// FerretDB (like a standalone MongoDB) takes both options and works as before.
func TestDecisionsAreWrittenAndReadWithMajorityConcern(t *testing.T) {
	uri, db := storetest.URI(t)
	var cmds commands
	s, err := store.New(store.Options{URI: uri, Database: db, Monitor: cmds.monitor()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	ctx := testCtx(t)
	insertOrder(t, s, newOrder(t, "o1", "openid-a", "req-1"))
	c := claim("o1", 1)
	if _, won, err := s.Claim(ctx, c); err != nil || !won {
		t.Fatalf("first claim: %v %v", won, err)
	}
	if _, won, err := s.Claim(ctx, claim("o1", 2)); err != nil || won {
		t.Fatalf("second claim: %v %v", won, err) // reads the existing claim
	}
	if err := s.ApplyClaim(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordPayment(ctx, payment("4200001", "o1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Payments(ctx, "o1"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetJobCursor(ctx, "j", t0, "o1"); err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct{ cmd, coll string }{{"insert", "claims"}, {"insert", "payments"}, {"insert", "orders"}, {"update", "orders"}} {
		cmd, ok := cmds.find(w.cmd, w.coll)
		if !ok {
			t.Errorf("no %s on %s seen", w.cmd, w.coll)
			continue
		}
		if got := concern(cmd, "writeConcern", "w"); got != "majority" {
			t.Errorf("%s on %s: writeConcern w = %q, want majority", w.cmd, w.coll, got)
		}
	}
	for _, coll := range []string{"claims", "payments"} {
		cmd, ok := cmds.find("find", coll)
		if !ok {
			t.Errorf("no find on %s seen", coll)
			continue
		}
		if got := concern(cmd, "readConcern", "level"); got != "majority" {
			t.Errorf("find on %s: readConcern = %q, want majority", coll, got)
		}
	}
	if cmd, ok := cmds.find("update", "jobstate"); !ok || concern(cmd, "writeConcern", "w") == "majority" {
		t.Errorf("job bookkeeping should keep the default write concern: %v", cmd)
	}
}

// A payment notification's first call must not wait for index creation
// (on a real MongoDB it can take longer than WeChat Pay waits); only the
// inserts that rest on a unique secondary index wait for it, bounded.
func TestIndexCreationIsOffTheNotificationPath(t *testing.T) {
	uri, db := storetest.URI(t)
	cmds := commands{gate: make(chan struct{})}
	s, err := store.New(store.Options{URI: uri, Database: db, Monitor: cmds.monitor(), OpTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	released := false
	release := func() {
		if !released {
			released = true
			close(cmds.gate)
		}
	}
	t.Cleanup(func() { release(); _ = s.Close(context.Background()) })
	ctx := testCtx(t)

	begin := time.Now()
	if _, won, err := s.Claim(ctx, claim("o1", 1)); err != nil || !won {
		t.Fatalf("claim while the indexes are being created: %v %v", won, err)
	}
	if err := s.RecordPayment(ctx, payment("4200001", "o1")); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took > 400*time.Millisecond {
		t.Fatalf("the payment path took %v while index creation hung", took)
	}

	begin = time.Now()
	err = s.InsertOrder(ctx, newOrder(t, "o1", "openid-a", "req-1"))
	if err == nil || !strings.Contains(err.Error(), "ensure indexes") {
		t.Fatalf("InsertOrder while its unique index is missing: error = %v, want an index wait that timed out", err)
	}
	if took := time.Since(begin); took > 1500*time.Millisecond {
		t.Fatalf("InsertOrder waited %v for the indexes, want about the 500ms operation timeout", took)
	}

	release()
	insertOrder(t, s, newOrder(t, "o1", "openid-a", "req-1"))
	if err := s.InsertOrder(ctx, newOrder(t, "o2", "openid-a", "req-1")); !errors.Is(err, order.ErrDuplicate) {
		t.Fatalf("duplicate request once the indexes exist: error = %v, want order.ErrDuplicate", err)
	}
}
