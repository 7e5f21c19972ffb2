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

func TestDeadlineRaceIsRetriedOnlyWhenNoInputFailed(t *testing.T) {
	race := "fuzz: elapsed: 4s, execs: 28623 (10069/sec), new interesting: 38 (total: 48)\n--- FAIL: FuzzParseNotification (4.25s)\n    context deadline exceeded\nFAIL\n"
	if !deadlineRace([]byte(race)) {
		t.Error("the coordinator's bare deadline failure is not recognised")
	}
	for _, real := range []string{
		race + "    Failing input written to testdata/fuzz/FuzzX/abc\n",
		"--- FAIL: FuzzX (0.1s)\n    fuzz_test.go:12: parse: context deadline exceeded\n",
		"panic: boom\n context deadline exceeded\n",
		"--- FAIL: FuzzX\n    index out of range\n",
	} {
		if deadlineRace([]byte(real)) {
			t.Errorf("a real failure is taken for the deadline race: %q", real)
		}
	}
}
