// Package storetest gives tests a real store: the real mongo-driver talking
// to an embedded FerretDB (shared/store/embedded), with a fresh database per
// test. Only _test.go files and the dev stack may import it.
package storetest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/payfn/payfn/shared/store"
)

// One embedded server per test binary, started by the first test that needs
// it and left running until the process exits: starting FerretDB per test
// would cost far more than the tests themselves.
var (
	startOnce sync.Once
	serverURI string
	admin     *mongo.Client // drops each test's database when the test ends
	startErr  error
	dbSeq     atomic.Int64
)

func start() {
	dir, err := os.MkdirTemp("", "payfn-storetest-")
	if err != nil {
		startErr = fmt.Errorf("storetest: data folder: %w", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	serverURI, startErr = startServer(ctx, dir)
	if startErr != nil {
		return
	}
	admin, err = mongo.Connect(options.Client().ApplyURI(serverURI).SetServerSelectionTimeout(5 * time.Second))
	if err != nil {
		startErr = fmt.Errorf("storetest: admin client: %w", err)
	}
}

// URI returns the shared embedded server's URI and the name of a database no
// other test uses. The database is dropped when the test ends.
func URI(tb testing.TB) (uri, db string) {
	tb.Helper()
	startOnce.Do(start)
	if startErr != nil {
		tb.Fatal(startErr)
	}
	db = dbName(tb.Name(), dbSeq.Add(1))
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := admin.Database(db).Drop(ctx); err != nil {
			tb.Errorf("storetest: drop database %s: %v", db, err)
		}
	})
	return serverURI, db
}

// New returns a store on a fresh database of the shared embedded server. It
// is closed, and its database dropped, when the test ends.
func New(tb testing.TB) *store.Store {
	tb.Helper()
	uri, db := URI(tb)
	s, err := store.New(store.Options{URI: uri, Database: db})
	if err != nil {
		tb.Fatalf("storetest: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			tb.Errorf("storetest: %v", err)
		}
	})
	return s
}

// dbName turns a test name into a valid, unique database name: letters,
// digits and underscores, short enough for MongoDB's 63-byte limit.
func dbName(test string, seq int64) string {
	var b strings.Builder
	b.WriteString("t_")
	for _, r := range test {
		if b.Len() >= 40 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	fmt.Fprintf(&b, "_%d", seq)
	return b.String()
}
