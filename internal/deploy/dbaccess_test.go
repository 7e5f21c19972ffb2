package deploy

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/payfn/payfn/shared/order"
)

// access is what a function may do to the database: collection -> actions
// (MongoDB privilege actions: find, insert, update, remove, createIndex).
type access map[string][]string

func (a access) add(coll string, actions ...string) {
	for _, act := range actions {
		if !slices.Contains(a[coll], act) {
			a[coll] = append(a[coll], act)
			slices.Sort(a[coll])
		}
	}
}

// driverActions maps the mongo-driver collection methods shared/store calls
// to the privilege action MongoDB checks for them.
var driverActions = map[string][]string{
	"Find": {"find"}, "FindOne": {"find"}, "CountDocuments": {"find"}, "Aggregate": {"find"}, "Distinct": {"find"},
	"InsertOne": {"insert"}, "InsertMany": {"insert"},
	"UpdateOne": {"update"}, "UpdateMany": {"update"}, "ReplaceOne": {"update"},
	"DeleteOne": {"remove"}, "DeleteMany": {"remove"},
	"FindOneAndUpdate": {"find", "update"}, "FindOneAndReplace": {"find", "update"}, "FindOneAndDelete": {"find", "remove"},
	"BulkWrite": {"insert", "update", "remove"},
}

func parseDir(t *testing.T, dir string) []*ast.File {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	fset := token.NewFileSet()
	for _, d := range des {
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".go") || strings.HasSuffix(d.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, d.Name()), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}

// methods returns the methods of the named receiver type (pointer or not)
// and the package's plain functions, by name.
func methods(files []*ast.File, recv string) (meth, funcs map[string]*ast.FuncDecl) {
	meth, funcs = map[string]*ast.FuncDecl{}, map[string]*ast.FuncDecl{}
	for _, f := range files {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			if fd.Recv == nil {
				funcs[fd.Name.Name] = fd
				continue
			}
			typ := fd.Recv.List[0].Type
			if s, ok := typ.(*ast.StarExpr); ok {
				typ = s.X
			}
			if id, ok := typ.(*ast.Ident); ok && id.Name == recv {
				meth[fd.Name.Name] = fd
			}
		}
	}
	return meth, funcs
}

// storeAccess reads shared/store and returns, for every exported *Store
// method, the collections and actions it uses, and the indexes every store
// user creates on first use (ensureIndexes).
func storeAccess(t *testing.T) (perMethod map[string]access, indexed []string) {
	t.Helper()
	files := parseDir(t, filepath.Join(root, "shared", "store"))
	// Collection constants: colOrders = "orders".
	colls := map[string]string{}
	for _, f := range files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if strings.HasPrefix(n.Name, "col") && i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok {
							colls[n.Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
		}
	}
	if len(colls) < 5 {
		t.Fatalf("found collection constants %v in shared/store; want products, orders, payments, claims, refunds", colls)
	}
	meth, funcs := methods(files, "Store")
	collArg := func(args []ast.Expr) string {
		for _, a := range args {
			if id, ok := a.(*ast.Ident); ok && colls[id.Name] != "" {
				return colls[id.Name]
			}
		}
		return ""
	}
	// Accessors of one fixed collection (sharingCollection: a method that
	// returns *mongo.Collection and opens colX itself, with the database's
	// Collection or s.collection): a call to one opens colX, as
	// s.collection(ctx, colX) does.
	openers := map[string]string{}
	for name, fd := range meth {
		if fd.Type.Results == nil || !strings.Contains(exprText(fd.Type.Results), "mongo Collection") {
			continue
		}
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			if call, ok := n.(*ast.CallExpr); ok {
				if sel, ok := call.Fun.(*ast.SelectorExpr); ok && (sel.Sel.Name == "Collection" || sel.Sel.Name == "collection" || sel.Sel.Name == "indexedCollection") {
					if c := collArg(call.Args); c != "" {
						openers[name] = c
					}
				}
			}
			return true
		})
	}
	// direct returns the actions a body performs through driver calls and the
	// collections it opened with s.collection(ctx, colX).
	direct := func(body ast.Node) (acts []string, opened []string, calls []string) {
		ast.Inspect(body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			name := sel.Sel.Name
			if a, ok := driverActions[name]; ok {
				acts = append(acts, a...)
				if name == "ReplaceOne" && strings.Contains(exprText(call), "SetUpsert") {
					acts = append(acts, "insert")
				}
			}
			if name == "collection" {
				if c := collArg(call.Args); c != "" {
					opened = append(opened, c)
				}
			}
			if c, ok := openers[name]; ok {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == recvName(meth[name]) {
					opened = append(opened, c)
				}
			}
			if _, ok := meth[name]; ok {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == recvName(meth[name]) {
					calls = append(calls, name)
				}
			}
			return true
		})
		return acts, opened, calls
	}
	// Helpers taking a collection name (insert, findOne, ...) act on
	// whatever collection their caller names.
	helper := map[string][]string{}
	for name, fd := range meth {
		for _, p := range fd.Type.Params.List {
			for _, n := range p.Names {
				if n.Name == "coll" {
					acts, _, _ := direct(fd.Body)
					helper[name] = acts
				}
			}
		}
	}
	perMethod = map[string]access{}
	var visit func(name string, into access, seen map[string]bool)
	visit = func(name string, into access, seen map[string]bool) {
		if seen[name] {
			return
		}
		seen[name] = true
		fd := meth[name]
		acts, opened, calls := direct(fd.Body)
		for _, c := range opened {
			into.add(c, acts...)
		}
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok {
				if h, ok := helper[sel.Sel.Name]; ok {
					if c := collArg(call.Args); c != "" {
						into.add(c, h...)
					}
				}
			}
			return true
		})
		for _, c := range calls {
			if _, isHelper := helper[c]; !isHelper {
				visit(c, into, seen)
			}
		}
	}
	for name := range meth {
		if !ast.IsExported(name) {
			continue
		}
		a := access{}
		visit(name, a, map[string]bool{})
		perMethod[name] = a
	}
	ensure, ok := funcs["ensureIndexes"]
	if !ok {
		t.Fatal("shared/store has no ensureIndexes; update storeAccess")
	}
	ast.Inspect(ensure.Body, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok && colls[id.Name] != "" && !slices.Contains(indexed, colls[id.Name]) {
			indexed = append(indexed, colls[id.Name])
		}
		return true
	})
	slices.Sort(indexed)
	return perMethod, indexed
}

func recvName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List[0].Names) == 0 {
		return ""
	}
	return fd.Recv.List[0].Names[0].Name
}

func exprText(n ast.Node) string {
	var b strings.Builder
	ast.Inspect(n, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok {
			b.WriteString(id.Name + " ")
		}
		return true
	})
	return b.String()
}

// entryPoints returns, for every function, the App methods its deployed
// handler calls: shared/setup names the httpapi handler of an HTTP function
// (route) and the App method of a scheduled one (jobOf); an httpapi
// handler is followed through the API's own methods and functions to every
// api.app.M it calls (serverApi and adminApps serve many routes, each with
// its own use case).
func entryPoints(t *testing.T) map[string][]string {
	t.Helper()
	setupFiles := parseDir(t, filepath.Join(root, "shared", "setup"))
	// The Function constants: Login Function = "login".
	names := map[string]string{}
	for _, f := range setupFiles {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Function" {
					continue
				}
				for i, n := range vs.Names {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok {
						names[n.Name], _ = strconv.Unquote(lit.Value)
					}
				}
			}
		}
	}
	_, setupFuncs := methods(setupFiles, "")
	// cases maps each function to the selectors named in its case of
	// fnName's switch, those whose receiver expression ends in via.
	cases := func(fnName, via string) map[string][]string {
		fd, ok := setupFuncs[fnName]
		if !ok {
			t.Fatalf("shared/setup has no func %s; update entryPoints", fnName)
		}
		out := map[string][]string{}
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			cc, ok := n.(*ast.CaseClause)
			if !ok {
				return true
			}
			var fns []string
			for _, e := range cc.List {
				if id, ok := e.(*ast.Ident); ok && names[id.Name] != "" {
					fns = append(fns, names[id.Name])
				}
			}
			for _, st := range cc.Body {
				ast.Inspect(st, func(n ast.Node) bool {
					sel, ok := n.(*ast.SelectorExpr)
					if !ok {
						return true
					}
					var recv string
					switch x := sel.X.(type) {
					case *ast.Ident:
						recv = x.Name
					case *ast.SelectorExpr:
						recv = x.Sel.Name
					}
					if recv == via {
						for _, f := range fns {
							out[f] = append(out[f], sel.Sel.Name)
						}
					}
					return true
				})
			}
			return false
		})
		return out
	}
	handlers, jobs := cases("route", "api"), cases("jobOf", "a")
	apiFiles := parseDir(t, filepath.Join(root, "shared", "runtime", "httpapi"))
	apiMeth, apiFuncs := methods(apiFiles, "API")
	out := map[string][]string{}
	for fn, ms := range jobs {
		out[fn] = append(out[fn], ms...)
	}
	for fn, hs := range handlers {
		seen := map[*ast.FuncDecl]bool{}
		var visit func(fd *ast.FuncDecl)
		visit = func(fd *ast.FuncDecl) {
			if seen[fd] {
				return
			}
			seen[fd] = true
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				switch x := n.(type) {
				case *ast.SelectorExpr:
					// api.app.M: a use case.
					if inner, ok := x.X.(*ast.SelectorExpr); ok && inner.Sel.Name == "app" {
						if !slices.Contains(out[fn], x.Sel.Name) {
							out[fn] = append(out[fn], x.Sel.Name)
						}
					}
					// api.m: another API method.
					if id, ok := x.X.(*ast.Ident); ok && id.Name == recvName(fd) {
						if m, ok := apiMeth[x.Sel.Name]; ok {
							visit(m)
						}
					}
				case *ast.Ident:
					if f, ok := apiFuncs[x.Name]; ok {
						visit(f)
					}
				}
				return true
			})
		}
		for _, h := range hs {
			m, ok := apiMeth[h]
			if !ok {
				t.Fatalf("shared/setup serves %s with API.%s, which shared/runtime/httpapi does not define", fn, h)
			}
			visit(m)
		}
	}
	return out
}

// derivedAccess follows each function's use cases through shared/app
// (every method and function they can reach, including func values) to the
// store methods they call, and returns what each function does to each
// collection. A function reaching no store method gets nil.
func derivedAccess(t *testing.T) map[string]access {
	t.Helper()
	perMethod, indexed := storeAccess(t)
	files := parseDir(t, filepath.Join(root, "shared", "app"))
	meth, funcs := methods(files, "App")
	entries := entryPoints(t)
	out := map[string]access{}
	for _, fn := range functions(t) {
		roots := entries[string(fn.Name)]
		if len(roots) == 0 {
			t.Fatalf("found no use case that function %s calls (shared/setup route or jobOf); update entryPoints", fn.Name)
		}
		used := map[string]bool{}
		seen := map[*ast.FuncDecl]bool{}
		var visit func(fd *ast.FuncDecl)
		visit = func(fd *ast.FuncDecl) {
			if seen[fd] {
				return
			}
			seen[fd] = true
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				switch x := n.(type) {
				case *ast.SelectorExpr:
					// a.store.M: a store call.
					if inner, ok := x.X.(*ast.SelectorExpr); ok && inner.Sel.Name == "store" {
						if _, ok := perMethod[x.Sel.Name]; ok {
							used[x.Sel.Name] = true
						}
					}
					// a.m or a.m(...): another App method (a call or a
					// method value handed on).
					if id, ok := x.X.(*ast.Ident); ok && id.Name == recvName(fd) {
						if m, ok := meth[x.Sel.Name]; ok {
							visit(m)
						}
					}
				case *ast.Ident:
					if f, ok := funcs[x.Name]; ok {
						visit(f)
					}
				}
				return true
			})
		}
		for _, r := range roots {
			m, ok := meth[r]
			if !ok {
				t.Fatalf("function %s calls App.%s, which shared/app does not define", fn.Name, r)
			}
			visit(m)
		}
		if len(used) == 0 {
			out[string(fn.Name)] = nil
			continue
		}
		a := access{}
		for m := range used {
			for c, acts := range perMethod[m] {
				a.add(c, acts...)
			}
		}
		// The store ensures its indexes on first use, whatever the call.
		for _, c := range indexed {
			a.add(c, "createIndex")
		}
		out[string(fn.Name)] = a
	}
	return out
}

// rolesFile is deploy/mongodb/roles.json.
type rolesFile struct {
	Comment string                         `json:"comment"`
	Roles   map[string]map[string][]string `json:"roles"` // function -> collection -> actions
}

func loadRoles(t *testing.T) rolesFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "deploy", "mongodb", "roles.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rf rolesFile
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("deploy/mongodb/roles.json: %v", err)
	}
	return rf
}

var writeActions = []string{"insert", "update", "remove"}

// TestMongoRolesAreExactlyWhatEachFunctionDoes derives, from the source of
// shared/app and shared/store, which collections each function reads and
// writes, and requires deploy/mongodb/roles.json to grant exactly that: a
// role for every function that uses the store, none for one that does not,
// no write on a collection the function never writes, and nothing missing
// (a missing action would fail in production with "not authorized").
func TestMongoRolesAreExactlyWhatEachFunctionDoes(t *testing.T) {
	derived := derivedAccess(t)
	rf := loadRoles(t)
	for _, fn := range functions(t) {
		want := derived[string(fn.Name)]
		got, ok := rf.Roles[string(fn.Name)]
		if want == nil {
			if ok {
				t.Errorf("roles.json has a role for %s, which never touches the store", fn.Name)
			}
			continue
		}
		if !ok {
			t.Errorf("roles.json has no role for %s; it needs %v", fn.Name, want)
			continue
		}
		for c, acts := range got {
			for _, a := range acts {
				if !slices.Contains(want[c], a) {
					kind := "grants"
					if slices.Contains(writeActions, a) {
						kind = "grants write"
					}
					t.Errorf("%s: roles.json %s %s on %s, which the function never does", fn.Name, kind, a, c)
				}
			}
		}
		for c, acts := range want {
			for _, a := range acts {
				if !slices.Contains(got[c], a) {
					t.Errorf("%s: roles.json lacks %s on %s, which the function does", fn.Name, a, c)
				}
			}
		}
	}
	for name := range rf.Roles {
		if _, ok := derived[name]; !ok {
			t.Errorf("roles.json has a role for %s, which is no function", name)
		}
	}
	// Sanity: the derivation itself must see the obvious facts, or a broken
	// walk would agree with a broken file.
	if !slices.Contains(derived["createOrder"]["orders"], "insert") || !slices.Contains(derived["verifyPayment"]["payments"], "insert") ||
		slices.Contains(derived["createOrder"]["payments"], "insert") || derived["login"] != nil ||
		// Service mode: the server API creates orders, the operator's API
		// creates apps, the dispatcher reads events and creates no order.
		!slices.Contains(derived["serverApi"]["orders"], "insert") || !slices.Contains(derived["adminApps"]["apps"], "insert") ||
		!slices.Contains(derived["dispatchWebhooks"]["events"], "find") || slices.Contains(derived["dispatchWebhooks"]["orders"], "insert") ||
		// Profit sharing: the job inserts its decisions (through the
		// sharing collection's own accessor) and never writes an order.
		!slices.Contains(derived["shareProfits"]["sharing"], "insert") || !slices.Contains(derived["shareProfits"]["sharing"], "find") ||
		slices.Contains(derived["shareProfits"]["orders"], "update") {
		t.Fatalf("the derivation is off: %v", derived)
	}
	t.Logf("derived: %v", derived)
}

// TestCloudBaseRulesCloseClientWrites checks the document-store permission
// rules: every collection the store uses has one; nobody may write any of
// them from a client; orders are readable by their owner only (the rule names
// the field the store writes the buyer's openid to); the ledger, claims and
// refunds are not readable by clients at all; products are a public catalogue.
func TestCloudBaseRulesCloseClientWrites(t *testing.T) {
	perMethod, _ := storeAccess(t)
	colls := map[string]bool{}
	for _, a := range perMethod {
		for c := range a {
			colls[c] = true
		}
	}
	dir := filepath.Join(root, "deploy", "cloudbase")
	for _, c := range slices.Sorted(maps.Keys(colls)) {
		b, err := os.ReadFile(filepath.Join(dir, c+".json"))
		if err != nil {
			t.Errorf("no permission rule for collection %s: %v", c, err)
			continue
		}
		var rule map[string]any
		if err := json.Unmarshal(b, &rule); err != nil {
			t.Errorf("%s.json: %v", c, err)
			continue
		}
		if len(rule) != 2 || rule["write"] != false {
			t.Errorf("%s.json = %v; want exactly read and \"write\": false", c, rule)
		}
		read := rule["read"]
		switch c {
		case "orders":
			// The store writes the caller's openid to "owner" (order.Order's
			// bson tag); CloudBase's auth.openid is the signed-in user.
			f, _ := reflect.TypeFor[order.Order]().FieldByName("Owner")
			field, _, _ := strings.Cut(f.Tag.Get("bson"), ",")
			if want := "doc." + field + " == auth.openid"; field == "" || read != want {
				t.Errorf("orders.json read = %v, want %q", read, want)
			}
		case "products":
			if read != true {
				t.Errorf("products.json read = %v, want true (the catalogue is public)", read)
			}
		default:
			if read != false {
				t.Errorf("%s.json read = %v, want false (server-side only)", c, read)
			}
		}
	}
	des, _ := os.ReadDir(dir)
	for _, d := range des {
		if c, ok := strings.CutSuffix(d.Name(), ".json"); ok && !colls[c] {
			t.Errorf("deploy/cloudbase/%s is for a collection the store does not use", d.Name())
		}
	}
}
