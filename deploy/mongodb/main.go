// Command mongodb creates one least-privilege MongoDB role per payfn function
// (and, with -users, one user holding it), from roles.json beside this file:
//
//	MONGODB_ADMIN_URI='mongodb+srv://admin:…@cluster/' go run ./deploy/mongodb -db payfn -users
//
// Each role payfn_<function> may do exactly what that function does to each
// collection (internal/deploy derives it from the source and checks
// roles.json against it), so a leaked connection string of, say, queryOrder
// cannot write refunds. Run it again after an upgrade: existing roles are
// updated to the new privileges; existing users keep their password unless
// -rotate is given. New passwords are printed once, as the MONGODB_URI
// user:password to put in each function's secret.
//
// -indexes also creates payfn's indexes (the admin user then needs
// createIndex too), so that no function's first call has to.
//
// -print writes the commands as extended JSON instead of running them, for
// review or for pasting into mongosh (db.getSiblingDB(<db>).runCommand(…)).
//
// The admin URI comes from the environment so it stays out of shell history;
// its user needs userAdmin (or userAdminAnyDatabase) on the database.
package main

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/payfn/payfn/shared/store"
)

//go:embed roles.json
var rolesJSON []byte

// rolesFile is roles.json: function -> collection -> privilege actions.
type rolesFile struct {
	Comment string                         `json:"comment"`
	Roles   map[string]map[string][]string `json:"roles"`
}

func main() {
	db := flag.String("db", "payfn", "database the functions use (MONGODB_DATABASE)")
	prefix := flag.String("prefix", "payfn_", "prefix of role and user names")
	users := flag.Bool("users", false, "also create one user per function holding its role")
	rotate := flag.Bool("rotate", false, "with -users: give existing users a new password too")
	printOnly := flag.Bool("print", false, "print the commands as extended JSON; connect to nothing")
	indexes := flag.Bool("indexes", false, "also create payfn's indexes now (the admin user needs createIndex), so no function's first call creates them")
	flag.Parse()
	uri := os.Getenv("MONGODB_ADMIN_URI")
	if err := run(os.Stdout, uri, *db, *prefix, *users, *rotate, *printOnly); err != nil {
		fmt.Fprintln(os.Stderr, "mongodb:", err)
		os.Exit(1)
	}
	if *indexes && !*printOnly {
		if err := ensureIndexes(os.Stdout, uri, *db); err != nil {
			fmt.Fprintln(os.Stderr, "mongodb:", err)
			os.Exit(1)
		}
	}
}

// ensureIndexes creates the indexes the store relies on, the way the store
// itself does, so a deploy step can take index creation off every
// function's first calls.
func ensureIndexes(out io.Writer, uri, db string) error {
	s, err := store.New(store.Options{URI: uri, Database: db})
	if err != nil {
		return fmt.Errorf("indexes: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	defer s.Close(context.Background())
	if err := s.EnsureIndexes(ctx); err != nil {
		return fmt.Errorf("indexes: %w", err)
	}
	fmt.Fprintf(out, "indexes ensured on %s\n", db)
	return nil
}

func run(out io.Writer, uri, db, prefix string, users, rotate, printOnly bool) error {
	rf, err := parseRoles(rolesJSON)
	if err != nil {
		return err
	}
	roles := roleCommands(rf, db, prefix)
	if printOnly {
		for _, c := range roles {
			b, err := bson.MarshalExtJSON(c.create, false, false)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s\n", b)
		}
		return nil
	}
	if uri == "" {
		return errors.New("set MONGODB_ADMIN_URI to an admin connection string (or use -print)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		return err
	}
	defer client.Disconnect(context.Background())
	d := client.Database(db)

	// Create the collections up front: a function's first call creates its
	// indexes, and creating an index on a missing collection would need
	// createCollection, which no role grants.
	existing, err := d.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("list collections: %w", err)
	}
	for _, c := range collections(rf) {
		if slices.Contains(existing, c) {
			continue
		}
		if err := d.CreateCollection(ctx, c); err != nil {
			return fmt.Errorf("create collection %s: %w", c, err)
		}
		fmt.Fprintf(out, "created collection %s.%s\n", db, c)
	}

	for _, c := range roles {
		var info struct {
			Roles []bson.Raw `bson:"roles"`
		}
		if err := d.RunCommand(ctx, bson.D{{Key: "rolesInfo", Value: c.name}}).Decode(&info); err != nil {
			return fmt.Errorf("rolesInfo %s: %w", c.name, err)
		}
		cmd, verb := c.create, "created"
		if len(info.Roles) > 0 {
			cmd, verb = c.update, "updated"
		}
		if err := d.RunCommand(ctx, cmd).Err(); err != nil {
			return fmt.Errorf("%s role %s: %w", verb, c.name, err)
		}
		fmt.Fprintf(out, "%s role %s\n", verb, c.name)
		if !users {
			continue
		}
		var uinfo struct {
			Users []bson.Raw `bson:"users"`
		}
		if err := d.RunCommand(ctx, bson.D{{Key: "usersInfo", Value: c.name}}).Decode(&uinfo); err != nil {
			return fmt.Errorf("usersInfo %s: %w", c.name, err)
		}
		exists := len(uinfo.Users) > 0
		roleList := bson.A{bson.D{{Key: "role", Value: c.name}, {Key: "db", Value: db}}}
		ucmd := bson.D{{Key: "updateUser", Value: c.name}, {Key: "roles", Value: roleList}}
		var pwd string
		if !exists || rotate {
			if pwd, err = password(); err != nil {
				return err
			}
			if exists {
				ucmd = append(ucmd, bson.E{Key: "pwd", Value: pwd})
			} else {
				ucmd = bson.D{{Key: "createUser", Value: c.name}, {Key: "pwd", Value: pwd}, {Key: "roles", Value: roleList}}
			}
		}
		if err := d.RunCommand(ctx, ucmd).Err(); err != nil {
			return fmt.Errorf("user %s: %w", c.name, err)
		}
		if pwd != "" {
			// Printed once: it goes into that function's MONGODB_URI secret
			// (with authSource=<db>), nowhere else.
			fmt.Fprintf(out, "user %s for %s: password %s (authSource=%s)\n", c.name, c.function, pwd, db)
		} else {
			fmt.Fprintf(out, "user %s for %s: role refreshed, password unchanged\n", c.name, c.function)
		}
	}
	return nil
}

func parseRoles(b []byte) (rolesFile, error) {
	var rf rolesFile
	if err := json.Unmarshal(b, &rf); err != nil {
		return rolesFile{}, fmt.Errorf("roles.json: %w", err)
	}
	if len(rf.Roles) == 0 {
		return rolesFile{}, errors.New("roles.json defines no roles")
	}
	return rf, nil
}

// roleCommand is the createRole and updateRole command of one function.
type roleCommand struct {
	function, name string
	create, update bson.D
}

// roleCommands builds one role per function, in a stable order. Each
// privilege names one collection of db: never the whole database, so a role
// reaches no collection payfn adds later.
func roleCommands(rf rolesFile, db, prefix string) []roleCommand {
	var out []roleCommand
	for _, fn := range slices.Sorted(maps.Keys(rf.Roles)) {
		var privs bson.A
		for _, coll := range slices.Sorted(maps.Keys(rf.Roles[fn])) {
			privs = append(privs, bson.D{
				{Key: "resource", Value: bson.D{{Key: "db", Value: db}, {Key: "collection", Value: coll}}},
				{Key: "actions", Value: rf.Roles[fn][coll]},
			})
		}
		name := prefix + fn
		out = append(out, roleCommand{
			function: fn, name: name,
			create: bson.D{{Key: "createRole", Value: name}, {Key: "privileges", Value: privs}, {Key: "roles", Value: bson.A{}}},
			update: bson.D{{Key: "updateRole", Value: name}, {Key: "privileges", Value: privs}, {Key: "roles", Value: bson.A{}}},
		})
	}
	return out
}

func collections(rf rolesFile) []string {
	var out []string
	for _, colls := range rf.Roles {
		for c := range colls {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	slices.Sort(out)
	return out
}

// password is 32 random bytes, URL-safe so it can sit in a connection string
// without escaping.
func password() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
