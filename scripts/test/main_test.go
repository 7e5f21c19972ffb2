package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"testing"
)

// TestListFindsTheFuzzTargetsGoTestWould: the listing reads source instead
// of asking go test -list (which links every test binary), so it must
// apply the same rule.
func TestListFindsTheFuzzTargetsGoTestWould(t *testing.T) {
	pkgs, err := listFuzzTargets("../..")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string][]string{}
	for _, p := range pkgs {
		found[p.path] = p.targets
		if p.dir == "" {
			t.Errorf("%s: no folder", p.path)
		}
	}
	for pkg, names := range map[string][]string{
		"github.com/payfn/payfn/shared/setup":           {"FuzzClientRequest", "FuzzSignedNotificationContent"},
		"github.com/payfn/payfn/shared/wxpay":           {"FuzzParseNotification"},
		"github.com/payfn/payfn/shared/runtime/httpapi": {"FuzzDecodeLoginRequest"},
	} {
		for _, n := range names {
			if !slices.Contains(found[pkg], n) {
				t.Errorf("%s: %s not found (found %v)", pkg, n, found[pkg])
			}
		}
	}
}

func TestIsFuzzTargetFollowsGoTest(t *testing.T) {
	src := `package p
import "testing"
func FuzzA(f *testing.F) {}
func Fuzz(f *testing.F) {}
func Fuzz_b(f *testing.F) {}
func Fuzzy(f *testing.F) {}
func FuzzHelper(t *testing.T) {}
func FuzzTwo(f *testing.F, x int) {}
type r struct{}
func (r) FuzzM(f *testing.F) {}
`
	f, err := parser.ParseFile(token.NewFileSet(), "p_test.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && isFuzzTarget(fd) {
			got = append(got, fd.Name.Name)
		}
	}
	if want := []string{"FuzzA", "Fuzz", "Fuzz_b"}; !slices.Equal(got, want) {
		t.Errorf("targets %v, want %v", got, want)
	}
}
