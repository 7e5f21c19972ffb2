package embedded_test

import (
	"context"
	"net"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/payfn/payfn/shared/store/embedded"
)

func start(tb testing.TB, opts embedded.Options) *embedded.Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := embedded.Start(ctx, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func connect(tb testing.TB, uri string) *mongo.Client {
	tb.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(500 * time.Millisecond))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// FerretDB on its own gives connected clients 3s to leave before it stops.
func TestCloseCutsConnectedClientsAtOnce(t *testing.T) {
	s := start(t, embedded.Options{Dir: t.TempDir()})
	c := connect(t, s.URI())
	ctx := context.Background()
	if _, err := c.Database("d").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}

	begin := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took > time.Second {
		t.Fatalf("Close with a connected client took %v, want well under FerretDB's 3s grace", took)
	}
	if conn, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		conn.Close()
		t.Fatalf("%s still accepts connections after Close", s.Addr())
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestRestartOnSameDirAndAddrServesTheSameDataAtTheSameURI(t *testing.T) {
	dir := t.TempDir()
	s := start(t, embedded.Options{Dir: dir})
	uri, addr := s.URI(), s.Addr()
	c := connect(t, uri)
	ctx := context.Background()
	coll := c.Database("d").Collection("c")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "kept"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = start(t, embedded.Options{Dir: dir, Addr: addr})
	if s.URI() != uri {
		t.Fatalf("URI after restart = %s, want %s", s.URI(), uri)
	}
	// A new client: the old one's pooled connections were cut, and its next
	// call fails once on one of them (see shared/store's outage test).
	coll = connect(t, uri).Database("d").Collection("c")
	n, err := coll.CountDocuments(ctx, bson.D{{Key: "_id", Value: "kept"}})
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("found %d documents after restart, want 1", n)
	}
}

func TestStartFailsOnATakenAddr(t *testing.T) {
	s := start(t, embedded.Options{Dir: t.TempDir()})
	if _, err := embedded.Start(context.Background(), embedded.Options{Dir: t.TempDir(), Addr: s.Addr()}); err == nil {
		t.Fatalf("second server on %s started", s.Addr())
	}
}

func TestStartRequiresDir(t *testing.T) {
	if _, err := embedded.Start(context.Background(), embedded.Options{}); err == nil {
		t.Fatal("Start without Dir: nil error")
	}
}

func TestStartCreatesAMissingDir(t *testing.T) {
	start(t, embedded.Options{Dir: t.TempDir() + "/a/b"})
}
