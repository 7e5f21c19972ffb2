package setup_test

import (
	"go/ast"
	"go/parser"
	gotoken "go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/payfn/payfn/shared/setup"
)

// TestEachFunctionMainServesWhatSetupNamesForIt: a function's main names
// its own handler (HandlerWith) or work (JobWith), so its binary links only
// that code; setup's route and jobOf tables are what the tests and the
// local stack run. The two must agree, for every function: a main that
// served another function's route would pass every test that builds the
// function through setup.
func TestEachFunctionMainServesWhatSetupNamesForIt(t *testing.T) {
	fset := gotoken.NewFileSet()
	setupFile, err := parser.ParseFile(fset, "setup.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{} // Login -> "login"
	tables := map[string]map[string]string{"route": {}, "jobOf": {}}
	for _, d := range setupFile.Decls {
		switch d := d.(type) {
		case *ast.GenDecl:
			if d.Tok != gotoken.CONST {
				continue
			}
			for _, s := range d.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok {
							consts[n.Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
		case *ast.FuncDecl:
			table, ok := tables[d.Name.Name]
			if !ok {
				continue
			}
			ast.Inspect(d.Body, func(n ast.Node) bool {
				cc, ok := n.(*ast.CaseClause)
				if !ok || len(cc.List) != 1 {
					return true
				}
				id, ok := cc.List[0].(*ast.Ident)
				if !ok {
					return true
				}
				table[id.Name] = lastSelector(cc.Body)
				return false
			})
		}
	}
	for _, f := range setup.Functions {
		t.Run(string(f.Name), func(t *testing.T) {
			path := filepath.Join("..", "..", "functions", strings.ToLower(string(f.Name)), "main.go")
			file, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			builder, table := "HandlerWith", "route"
			if f.Schedule != "" {
				builder, table = "JobWith", "jobOf"
			}
			var named, picks string
			ast.Inspect(file, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || sel.Sel.Name != builder || len(call.Args) < 2 {
					return true
				}
				if s, ok := call.Args[0].(*ast.SelectorExpr); ok {
					named = s.Sel.Name
				}
				if lit, ok := call.Args[1].(*ast.FuncLit); ok {
					picks = lastSelector(lit.Body.List)
				}
				return false
			})
			if named == "" || consts[named] != string(f.Name) {
				t.Fatalf("%s does not call setup.%s(setup.<%s>, …): it names %q", path, builder, f.Name, named)
			}
			want := tables[table][named]
			if want == "" || picks != want {
				t.Errorf("%s serves %q; setup's %s names %q for %s", path, picks, table, want, f.Name)
			}
		})
	}
}

// lastSelector is the name of the last method selected in stmts: the
// handler or the job they return.
func lastSelector(stmts []ast.Stmt) string {
	var name string
	for _, st := range stmts {
		ast.Inspect(st, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && (x.Name == "api" || x.Name == "a") {
					name = sel.Sel.Name
				}
			}
			return true
		})
	}
	return name
}
