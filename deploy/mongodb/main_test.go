package main

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/payfn/payfn/shared/store/storetest"
)

// The embedded FerretDB v1 store has no createRole (it implements only the
// user commands), so the role commands are checked here by their shape; what
// each role grants is checked against the source in internal/deploy.

func TestPrintedCommandsAreOneCreateRolePerFunctionScopedToCollections(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out, "", "shop", "payfn_", false, false, true); err != nil {
		t.Fatal(err)
	}
	rf, err := parseRoles(rolesJSON)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(rf.Roles) {
		t.Fatalf("printed %d commands for %d roles:\n%s", len(lines), len(rf.Roles), out.String())
	}
	for _, line := range lines {
		var cmd struct {
			CreateRole string `json:"createRole"`
			Privileges []struct {
				Resource map[string]string `json:"resource"`
				Actions  []string          `json:"actions"`
			} `json:"privileges"`
			Roles []any `json:"roles"`
		}
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cmd); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		fn, ok := strings.CutPrefix(cmd.CreateRole, "payfn_")
		want := rf.Roles[fn]
		if !ok || want == nil {
			t.Fatalf("role %q is not payfn_<function>", cmd.CreateRole)
		}
		if len(cmd.Roles) != 0 {
			t.Errorf("%s inherits roles %v; it must hold only its own privileges", cmd.CreateRole, cmd.Roles)
		}
		if len(cmd.Privileges) != len(want) {
			t.Errorf("%s has %d privileges, want one per collection (%d)", cmd.CreateRole, len(cmd.Privileges), len(want))
		}
		for _, p := range cmd.Privileges {
			coll := p.Resource["collection"]
			if p.Resource["db"] != "shop" || coll == "" || len(p.Resource) != 2 {
				t.Errorf("%s: resource %v; want {db: shop, collection: <one collection>}", cmd.CreateRole, p.Resource)
			}
			if !slices.Equal(p.Actions, want[coll]) {
				t.Errorf("%s on %s: actions %v, want %v", cmd.CreateRole, coll, p.Actions, want[coll])
			}
		}
	}
}

func TestRunRefusesToConnectWithoutAnAdminURI(t *testing.T) {
	err := run(&bytes.Buffer{}, "", "payfn", "payfn_", true, false, false)
	if err == nil || !strings.Contains(err.Error(), "MONGODB_ADMIN_URI") {
		t.Fatalf("err = %v, want one naming MONGODB_ADMIN_URI", err)
	}
}

func TestPasswordsAreLongAndDistinct(t *testing.T) {
	a, err := password()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := password()
	if len(a) < 40 || a == b || strings.ContainsAny(a, "@:/?#%") {
		t.Fatalf("passwords %q %q: want ≥ 40 URL-safe characters, different each time", a, b)
	}
}

func TestIndexesStepCreatesTheStoresIndexes(t *testing.T) {
	uri, db := storetest.URI(t)
	var out bytes.Buffer
	if err := ensureIndexes(&out, uri, db); err != nil {
		t.Fatal(err)
	}
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(context.Background())
	cur, err := c.Database(db).Collection("orders").Indexes().List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var specs []struct {
		Name string `bson:"name"`
	}
	if err := cur.All(context.Background(), &specs); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	if !slices.Contains(names, "request_key_unique") || !strings.Contains(out.String(), "indexes ensured") {
		t.Fatalf("orders indexes %v, output %q", names, out.String())
	}
}
