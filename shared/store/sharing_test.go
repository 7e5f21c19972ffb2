package store_test

import (
	"context"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/payfn/payfn/shared/store"
	"github.com/payfn/payfn/shared/store/storetest"
)

// The shareProfits job's queries have their indexes among those every
// store ensures (no separate step for the dev stack or a deploy to run).
func TestSharingIndexesAreAmongTheEnsuredIndexes(t *testing.T) {
	uri, db := storetest.URI(t)
	s, err := store.New(store.Options{URI: uri, Database: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	ctx := testCtx(t)
	if err := s.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	for _, want := range []struct{ coll, name, keys string }{
		{"splittasks", "open_due_at_id", "[open due_at _id]"},
		{"returntasks", "open_due_at_id", "[open due_at _id]"},
		{"orders", "status_updated_at_id", "[status updated_at _id]"},
	} {
		cur, err := c.Database(db).Collection(want.coll).Indexes().List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var docs []struct {
			Name string `bson:"name"`
			Key  bson.D `bson:"key"`
		}
		if err := cur.All(ctx, &docs); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, d := range docs {
			var k []string
			for _, e := range d.Key {
				k = append(k, e.Key)
			}
			got[d.Name] = fmt.Sprint(k)
		}
		if got[want.name] != want.keys {
			t.Errorf("%s index %s = %q, want %q (all: %v)", want.coll, want.name, got[want.name], want.keys, got)
		}
	}
}
