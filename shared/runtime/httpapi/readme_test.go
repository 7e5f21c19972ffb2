package httpapi

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/payfn/payfn/shared/app"
)

// Issue 10, item 10: README.md's HTTP contract names every error code the
// functions can answer, so a code cannot be added without being documented.

// readmeContract returns the "## HTTP contract" section of README.md.
func readmeContract(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## HTTP contract\n")
	if !ok {
		t.Fatal(`README.md has no "## HTTP contract" section`)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	return sec
}

// appCodes returns every Code* string constant declared in shared/app's
// source (not its tests), by name, read with go/parser so a new file or a
// constant outside errors.go is found too.
func appCodes(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "app", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no shared/app sources (%v)", err)
	}
	codes := map[string]string{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range file.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if !strings.HasPrefix(name.Name, "Code") || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Errorf("%s: %s is not a string literal; name its code in README.md and teach this test", f, name.Name)
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					codes[name.Name] = v
				}
			}
		}
	}
	if len(codes) < 20 {
		t.Fatalf("found only %d Code constants in shared/app: is the parse right?", len(codes))
	}
	return codes
}

// names reports whether text names code as a whole word.
func names(text, code string) bool {
	return regexp.MustCompile(`(^|[^A-Z0-9_])` + regexp.QuoteMeta(code) + `([^A-Z0-9_]|$)`).MatchString(text)
}

func TestREADMEContractNamesEveryErrorCode(t *testing.T) {
	contract := readmeContract(t)
	codes := appCodes(t)
	for _, name := range slices.Sorted(maps.Keys(codes)) {
		if !names(contract, codes[name]) {
			t.Errorf("app.%s = %q is not in README.md's HTTP contract: add a row for each function that answers it", name, codes[name])
		}
	}
}

// TestREADMEContractListsEachFunctionsAnswers: each function's section
// names the answers every function can give and its own fields' codes.
func TestREADMEContractListsEachFunctionsAnswers(t *testing.T) {
	contract := readmeContract(t)
	type route struct {
		path   string
		json   bool            // a client JSON route (not a notification)
		fields map[string]bool // the request's fields
		extra  []string        // codes of its own
	}
	routes := []route{
		{PathLogin, true, fieldsOf(&loginRequest{}), []string{"LOGIN_CODE_REJECTED", "PAYMENT_CHANNEL_UNAVAILABLE"}},
		{PathCreateOrder, true, fieldsOf(&createOrderRequest{}), []string{"UNAUTHENTICATED", "TOO_MANY_OPEN_ORDERS", "STORE_UNAVAILABLE"}},
		{PathPay, true, fieldsOf(&orderRequest{}), []string{"UNAUTHENTICATED", "ORDER_NOT_FOUND", "PAYMENT_CHANNEL_ERROR", "STORE_UNAVAILABLE"}},
		{PathQueryOrder, true, fieldsOf(&orderRequest{}), []string{"UNAUTHENTICATED", "ORDER_NOT_FOUND", "STORE_UNAVAILABLE"}},
		{PathRefund, true, fieldsOf(&refundRequest{}), []string{"ADMIN_UNAUTHENTICATED", "REFUND_REJECTED", "STORE_UNAVAILABLE"}},
		{PathVerifyPayment, false, nil, []string{"SUCCESS", "INVALID_NOTIFICATION", "NOTIFICATION_MISMATCH", "ORDER_NOT_FOUND", "STORE_UNAVAILABLE"}},
		{PathVerifyRefund, false, nil, []string{"SUCCESS", "INVALID_NOTIFICATION", "NOTIFICATION_MISMATCH", "REFUND_NOT_FOUND", "STORE_UNAVAILABLE"}},
	}
	for _, rt := range routes {
		_, sec, ok := strings.Cut(contract, "\n### POST "+rt.path+" ")
		if !ok {
			_, sec, ok = strings.Cut(contract, "\n### POST "+rt.path+"\n")
		}
		if !ok {
			t.Errorf("README.md's HTTP contract has no ### POST %s section", rt.path)
			continue
		}
		sec, _, _ = strings.Cut(sec, "\n### ")
		want := append([]string{"INVALID_REQUEST", "METHOD_NOT_ALLOWED", "BODY_TOO_LARGE", "INTERNAL"}, rt.extra...)
		if rt.json {
			want = append(want, "UNKNOWN_FIELD", "UNSUPPORTED_MEDIA_TYPE")
			for f := range rt.fields {
				want = append(want, fieldCodes[f])
			}
		}
		for _, code := range want {
			if !names(sec, code) {
				t.Errorf("POST %s: README.md does not list %s", rt.path, code)
			}
		}
	}
}

// TestREADMEContractListsEachServiceRoutesAnswers: each operation of
// docs/openapi.json (the server and operator APIs) has its "### METHOD path"
// section in the HTTP contract, which names every code the document lists
// for it (those every route gives included) and METHOD_NOT_ALLOWED.
// SECRETS_UNAVAILABLE is in the table of answers every function gives.
func TestREADMEContractListsEachServiceRoutesAnswers(t *testing.T) {
	contract := readmeContract(t)
	doc := loadOpenAPI(t)
	for _, o := range openAPIOps(t, doc) {
		head := "\n### " + o.method + " " + o.path
		_, sec, ok := strings.Cut(contract, head+"\n")
		if !ok {
			_, sec, ok = strings.Cut(contract, head+" ")
		}
		if !ok {
			t.Errorf("README.md's HTTP contract has no ### %s %s section", o.method, o.path)
			continue
		}
		sec, _, _ = strings.Cut(sec, "\n### ")
		want := []string{app.CodeMethodNotAllowed}
		for _, codes := range errorCodes(t, doc, o) {
			want = append(want, codes...)
		}
		for _, code := range want {
			if code != app.CodeSecretsUnavailable && !names(sec, code) {
				t.Errorf("%s %s: README.md does not list %s", o.method, o.path, code)
			}
		}
	}
}

// TestREADMEServiceModeSigningExample: the worked example of a signed
// server request in README.md is what app.SignServerRequest computes.
func TestREADMEServiceModeSigningExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	_, sec, ok := strings.Cut(readme, "\n## Service mode\n")
	if !ok {
		t.Fatal(`README.md has no "## Service mode" section`)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	const (
		secret = "sk_Xq3vJ0bWcL8zT2mN5pR7sY1uA4dF6gH9kE0iO3wQ5tZ"
		ts     = "1764583200"
		nonce  = "3f9a1c0e5b7d2f4a6c8e0b1d3f5a7c9e"
		body   = `{"product_id":"latte","quantity":1,"request_id":"r-1001","buyer":"u-42","payer_openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}`
	)
	toSign := string(app.StringToSign("POST", "/v1/orders", ts, nonce, []byte(body)))
	for _, want := range []string{"`" + secret + "`", "```\n" + toSign + "\n```", "`" + app.SignServerRequest(secret, "POST", "/v1/orders", ts, nonce, []byte(body)) + "`"} {
		if !strings.Contains(sec, want) {
			t.Errorf("README.md's Service mode section does not show %q", want)
		}
	}
	if i, j := strings.Index(readme, "\n## Service mode\n"), strings.Index(readme, "\n## Configuration\n"); i > j {
		t.Error(`"## Service mode" must come before "## Configuration"`)
	}
}
