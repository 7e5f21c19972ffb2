package httpapi

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/payfn/payfn/shared/app"
	"github.com/payfn/payfn/shared/order"
)

// docs/openapi.json describes service mode's routes (the signed server API
// under /v1/ and the operator's /admin/apps) and its webhooks. These tests
// hold it to the code: the same routes, the request structs' exact fields,
// the answer types' fields, and only error codes shared/app declares.

type openAPIOp struct {
	method, path string
	op           map[string]any
}

func loadOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("docs/openapi.json is not JSON: %v", err)
	}
	return doc
}

// openAPIOps lists the document's operations, sorted by path and method.
func openAPIOps(t *testing.T, doc map[string]any) []openAPIOp {
	t.Helper()
	paths, _ := doc["paths"].(map[string]any)
	if len(paths) == 0 {
		t.Fatal("docs/openapi.json has no paths")
	}
	var ops []openAPIOp
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		item, _ := paths[p].(map[string]any)
		for _, m := range slices.Sorted(maps.Keys(item)) {
			switch m {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				op, _ := item[m].(map[string]any)
				ops = append(ops, openAPIOp{method: strings.ToUpper(m), path: p, op: op})
			}
		}
	}
	return ops
}

// sourceRoutes reads the route tables of service.go: every element of a
// []route literal, as "METHOD pattern".
func sourceRoutes(t *testing.T) []string {
	t.Helper()
	file, err := parser.ParseFile(token.NewFileSet(), "service.go", nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	ast.Inspect(file, func(n ast.Node) bool {
		lit, ok := n.(*ast.CompositeLit)
		if !ok {
			return true
		}
		at, ok := lit.Type.(*ast.ArrayType)
		if !ok {
			return true
		}
		if id, ok := at.Elt.(*ast.Ident); !ok || id.Name != "route" {
			return true
		}
		for _, e := range lit.Elts {
			el, ok := e.(*ast.CompositeLit)
			if !ok || len(el.Elts) < 2 {
				t.Fatalf("service.go: a route that is not {method, pattern, fn}: %#v", e)
			}
			sel, ok1 := el.Elts[0].(*ast.SelectorExpr)
			pat, ok2 := el.Elts[1].(*ast.BasicLit)
			if !ok1 || !ok2 || pat.Kind != token.STRING || !strings.HasPrefix(sel.Sel.Name, "Method") {
				t.Fatalf("service.go: teach this test the route at %v", el.Pos())
			}
			p, err := strconv.Unquote(pat.Value)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, strings.ToUpper(strings.TrimPrefix(sel.Sel.Name, "Method"))+" "+p)
		}
		return true
	})
	if len(out) < 10 {
		t.Fatalf("found only %d routes in service.go: is the parse right?", len(out))
	}
	slices.Sort(out)
	return out
}

func TestOpenAPIIsAnOpenAPI31Document(t *testing.T) {
	doc := loadOpenAPI(t)
	if v, _ := doc["openapi"].(string); !regexp.MustCompile(`^3\.1\.\d+$`).MatchString(v) {
		t.Errorf("openapi = %q, want 3.1.x", v)
	}
	info, _ := doc["info"].(map[string]any)
	if info["title"] == nil || info["version"] == nil {
		t.Error("info needs a title and a version")
	}
	comps, _ := doc["components"].(map[string]any)
	schemes, _ := comps["securitySchemes"].(map[string]any)
	headers := map[string]bool{}
	for name, s := range schemes {
		m, _ := s.(map[string]any)
		if m["type"] != "apiKey" || m["in"] != "header" {
			t.Errorf("security scheme %s is not a header", name)
		}
		h, _ := m["name"].(string)
		headers[h] = true
	}
	for _, h := range []string{HeaderKeyID, HeaderTimestamp, HeaderNonce, HeaderSignature, HeaderAdminKey} {
		if !headers[h] {
			t.Errorf("no security scheme for the header %s", h)
		}
	}
	// Every $ref points at something.
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if r, ok := x["$ref"].(string); ok {
				if resolve(doc, x) == nil {
					t.Errorf("$ref %s points at nothing", r)
				}
			}
			for _, y := range x {
				walk(y)
			}
		case []any:
			for _, y := range x {
				walk(y)
			}
		}
	}
	walk(doc)
}

// resolve follows a local $ref (any depth) and returns the object it names.
func resolve(doc map[string]any, v map[string]any) map[string]any {
	for i := 0; i < 10; i++ {
		r, ok := v["$ref"].(string)
		if !ok {
			return v
		}
		var cur any = doc
		for _, part := range strings.Split(strings.TrimPrefix(r, "#/"), "/") {
			m, _ := cur.(map[string]any)
			cur = m[part]
		}
		next, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		v = next
	}
	return nil
}

func TestOpenAPIOperationsAreTheRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	ops := openAPIOps(t, doc)
	var documented []string
	methods := map[string][]string{} // path -> methods
	for _, o := range ops {
		documented = append(documented, o.method+" "+o.path)
		methods[o.path] = append(methods[o.path], o.method)
	}
	slices.Sort(documented)
	if code := sourceRoutes(t); !slices.Equal(documented, code) {
		t.Errorf("docs/openapi.json's operations are not service.go's routes:\n doc:  %q\n code: %q", documented, code)
	}

	// The live handlers agree: each documented operation reaches its
	// route (and stops at authentication, since this App has no service
	// key and no admin key), and any other method on its path is 405 with
	// exactly the documented methods in Allow.
	api := New(app.New(app.Config{}), nil)
	handler := func(path string) http.Handler {
		if strings.HasPrefix(path, PathServerAPI) {
			return api.ServerAPI()
		}
		return api.AdminApps()
	}
	fill := regexp.MustCompile(`\{[a-z_]+\}`)
	for _, o := range ops {
		path := fill.ReplaceAllString(o.path, "abc")
		req := httptest.NewRequest(o.method, path, nil)
		if o.method == http.MethodPost || o.method == http.MethodPatch {
			req.Header.Set("Content-Type", "application/json")
		}
		rec := httptest.NewRecorder()
		handler(o.path).ServeHTTP(rec, req)
		wantStatus, wantCode := http.StatusUnauthorized, app.CodeAdminUnauthorized
		if strings.HasPrefix(o.path, PathServerAPI) {
			wantStatus, wantCode = http.StatusServiceUnavailable, app.CodeServiceNotEnabled
		}
		if got := codeOfBody(rec.Body.Bytes()); rec.Code != wantStatus || got != wantCode {
			t.Errorf("%s %s: %d %s, want %d %s (the route's authentication)", o.method, o.path, rec.Code, got, wantStatus, wantCode)
		}
	}
	for p, ms := range methods {
		rec := httptest.NewRecorder()
		handler(p).ServeHTTP(rec, httptest.NewRequest(http.MethodPut, fill.ReplaceAllString(p, "abc"), nil))
		allow := strings.Split(rec.Header().Get("Allow"), ", ")
		slices.Sort(allow)
		slices.Sort(ms)
		if rec.Code != http.StatusMethodNotAllowed || !slices.Equal(allow, ms) {
			t.Errorf("PUT %s: %d Allow %q, want 405 Allow %q", p, rec.Code, rec.Header().Get("Allow"), ms)
		}
	}

	// Path parameters are declared as the template names them, and each
	// operation names the security its API uses.
	for _, o := range ops {
		var want, got []string
		for _, m := range fill.FindAllString(o.path, -1) {
			want = append(want, strings.Trim(m, "{}"))
		}
		params, _ := o.op["parameters"].([]any)
		for _, p := range params {
			pm := resolve(doc, p.(map[string]any))
			if pm["in"] == "path" {
				got = append(got, pm["name"].(string))
				if pm["required"] != true {
					t.Errorf("%s %s: path parameter %s is not required", o.method, o.path, pm["name"])
				}
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(want, got) {
			t.Errorf("%s %s: path parameters %q, want %q", o.method, o.path, got, want)
		}
		sec, _ := json.Marshal(o.op["security"])
		wantSec := `[{"payfnAdminKey":[]}]`
		if strings.HasPrefix(o.path, PathServerAPI) {
			wantSec = `[{"payfnKeyId":[],"payfnNonce":[],"payfnSignature":[],"payfnTimestamp":[]}]`
		}
		if string(sec) != wantSec {
			t.Errorf("%s %s: security %s, want %s", o.method, o.path, sec, wantSec)
		}
	}
}

func codeOfBody(b []byte) string {
	var e errorBody
	_ = json.Unmarshal(b, &e)
	return e.Code
}

// requestStructs is the request struct each operation with a body decodes.
var requestStructs = map[string]any{
	"POST /v1/products":                             &productRequest{},
	"PATCH /v1/products/{id}":                       &productPatch{},
	"POST /v1/orders":                               &serviceOrderRequest{},
	"POST /v1/orders/{id}/refunds":                  &serviceRefundRequest{},
	"POST /v1/events/{id}/redeliver":                &struct{}{},
	"POST /admin/apps":                              &appRequest{},
	"PATCH /admin/apps/{app}":                       &appPatch{},
	"POST /admin/apps/{app}/keys":                   &overlapRequest{},
	"POST /admin/apps/{app}/endpoints":              &endpointRequest{},
	"PATCH /admin/apps/{app}/endpoints/{ep}":        &endpointPatch{},
	"POST /admin/apps/{app}/endpoints/{ep}/secret":  &overlapRequest{},
	"POST /admin/apps/{app}/events/{evt}/redeliver": &struct{}{},
}

// requestSchema returns an operation's JSON request body schema, resolved.
func requestSchema(t *testing.T, doc map[string]any, o openAPIOp) map[string]any {
	t.Helper()
	rb, ok := o.op["requestBody"].(map[string]any)
	if !ok {
		return nil
	}
	content, _ := resolve(doc, rb)["content"].(map[string]any)
	media, _ := content["application/json"].(map[string]any)
	s, _ := media["schema"].(map[string]any)
	if s == nil {
		t.Fatalf("%s %s: the request body has no application/json schema", o.method, o.path)
	}
	return resolve(doc, s)
}

// schemaProps returns the property names of a schema, through $ref and
// allOf.
func schemaProps(doc map[string]any, s map[string]any) map[string]bool {
	s = resolve(doc, s)
	out := map[string]bool{}
	if s == nil {
		return out
	}
	if all, ok := s["allOf"].([]any); ok {
		for _, part := range all {
			maps.Copy(out, schemaProps(doc, part.(map[string]any)))
		}
	}
	props, _ := s["properties"].(map[string]any)
	for k := range props {
		out[k] = true
	}
	return out
}

func TestOpenAPIRequestBodiesAreTheRequestStructs(t *testing.T) {
	doc := loadOpenAPI(t)
	seen := map[string]bool{}
	for _, o := range openAPIOps(t, doc) {
		key := o.method + " " + o.path
		s := requestSchema(t, doc, o)
		v, takesBody := requestStructs[key]
		switch {
		case s == nil && takesBody:
			t.Errorf("%s: no request body documented; it decodes %T", key, v)
			continue
		case s == nil:
			if o.method == http.MethodPost || o.method == http.MethodPatch {
				t.Errorf("%s: a POST or PATCH with no documented body: add its struct to requestStructs", key)
			}
			continue
		case !takesBody:
			t.Errorf("%s: a request body is documented but the route takes none", key)
			continue
		}
		seen[key] = true
		if s["type"] != "object" || s["additionalProperties"] != false {
			t.Errorf("%s: the body schema must be an object with additionalProperties false (unknown fields are refused)", key)
		}
		got, want := schemaProps(doc, s), fieldsOf(v)
		if !maps.Equal(got, want) {
			t.Errorf("%s: body properties %v, want the fields of %T: %v", key, slices.Sorted(maps.Keys(got)), v, slices.Sorted(maps.Keys(want)))
		}
		req, _ := s["required"].([]any)
		for _, r := range req {
			if !want[r.(string)] {
				t.Errorf("%s: required %v is not a field", key, r)
			}
		}
	}
	for key := range requestStructs {
		if !seen[key] {
			t.Errorf("requestStructs names %s, which docs/openapi.json does not document with a body", key)
		}
	}
}

// errorCodes returns, per status, the codes an operation's error responses
// list in their code enums.
func errorCodes(t *testing.T, doc map[string]any, o openAPIOp) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	resps, _ := o.op["responses"].(map[string]any)
	for st, r := range resps {
		n, err := strconv.Atoi(st)
		if err != nil {
			t.Errorf("%s %s: response %q is not a status", o.method, o.path, st)
			continue
		}
		if n < 400 {
			continue
		}
		resp := resolve(doc, r.(map[string]any))
		content, _ := resp["content"].(map[string]any)
		media, _ := content["application/json"].(map[string]any)
		s, _ := media["schema"].(map[string]any)
		codes := enumOf(doc, s, "code")
		if len(codes) == 0 {
			t.Errorf("%s %s: the %s response lists no codes", o.method, o.path, st)
		}
		out[st] = codes
	}
	return out
}

// enumOf finds the enum of property prop in schema s (through allOf) and
// checks the rest of the schema is the error body.
func enumOf(doc map[string]any, s map[string]any, prop string) []string {
	s = resolve(doc, s)
	var out []string
	if all, ok := s["allOf"].([]any); ok {
		for _, part := range all {
			out = append(out, enumOf(doc, part.(map[string]any), prop)...)
		}
	}
	props, _ := s["properties"].(map[string]any)
	p, _ := props[prop].(map[string]any)
	enum, _ := p["enum"].([]any)
	for _, e := range enum {
		out = append(out, e.(string))
	}
	return out
}

func TestOpenAPIErrorCodesAreAppCodes(t *testing.T) {
	doc := loadOpenAPI(t)
	known := map[string]bool{}
	for _, v := range appCodes(t) {
		known[v] = true
	}
	statusOfCode := map[string]string{}
	for _, o := range openAPIOps(t, doc) {
		key := o.method + " " + o.path
		all := map[string]bool{}
		for st, codes := range errorCodes(t, doc, o) {
			for _, c := range codes {
				all[c] = true
				if !known[c] {
					t.Errorf("%s: %s answers %s, which is no Code constant of shared/app", key, st, c)
				}
				if prev, ok := statusOfCode[c]; ok && prev != st {
					t.Errorf("%s: %s is under %s here and under %s elsewhere", key, c, st, prev)
				}
				statusOfCode[c] = st
			}
		}
		// What every route answers, and each body field's own code.
		want := []string{app.CodeInvalidRequest, app.CodeBodyTooLarge, app.CodeInternal, app.CodeStoreUnavailable, app.CodeSecretsUnavailable}
		if strings.HasPrefix(o.path, PathServerAPI) {
			want = append(want, app.CodeInvalidSignature, app.CodeRequestExpired, app.CodeNonceReused, app.CodeAppDisabled, app.CodeServiceNotEnabled)
		} else {
			want = append(want, app.CodeAdminUnauthorized)
		}
		if o.method == http.MethodPost || o.method == http.MethodPatch {
			want = append(want, app.CodeUnsupportedMedia, app.CodeUnknownField)
		}
		if v, ok := requestStructs[key]; ok {
			for f := range fieldsOf(v) {
				want = append(want, fieldCodes[f])
			}
		}
		for _, c := range want {
			if !all[c] {
				t.Errorf("%s: docs/openapi.json does not list %s", key, c)
			}
		}
	}
}

// jsonFields returns the JSON names encoding/json writes for struct type
// t, embedded structs flattened.
func jsonFields(t reflect.Type) map[string]bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	out := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			maps.Copy(out, jsonFields(f.Type))
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = true
	}
	return out
}

func TestOpenAPIAnswerSchemasAreTheAnswerTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	comps, _ := doc["components"].(map[string]any)
	schemas, _ := comps["schemas"].(map[string]any)
	for name, v := range map[string]any{
		"Error":         errorBody{},
		"Product":       order.Product{},
		"Snapshot":      order.Snapshot{},
		"EventOrder":    app.EventOrder{},
		"EventRefund":   app.EventRefund{},
		"ServiceOrder":  app.ServiceOrder{},
		"ServiceRefund": app.ServiceRefund{},
		"PaymentParams": app.PaymentParams{},
		"RefundSummary": order.RefundSummary{},
		"EventView":     app.EventView{},
		"EventPage":     app.EventPage{},
		"Delivery":      order.Delivery{},
		"Attempt":       order.Attempt{},
		"App":           app.AppView{},
		"APIKey":        order.APIKey{},
		"Endpoint":      order.Endpoint{},
		"NewKey":        app.NewCredential{},
	} {
		s, ok := schemas[name].(map[string]any)
		if !ok {
			t.Errorf("no schema %s", name)
			continue
		}
		got, want := schemaProps(doc, s), jsonFields(reflect.TypeOf(v))
		if !maps.Equal(got, want) {
			t.Errorf("schema %s: %v, want the JSON fields of %T: %v", name, slices.Sorted(maps.Keys(got)), v, slices.Sorted(maps.Keys(want)))
		}
	}
	hooks, _ := doc["webhooks"].(map[string]any)
	if got := slices.Sorted(maps.Keys(hooks)); !slices.Equal(got, slices.Sorted(slices.Values(order.EventTypes))) {
		t.Errorf("webhooks %q, want one per event type %q", got, order.EventTypes)
	}
}
