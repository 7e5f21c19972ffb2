// Package layout checks design.md's dependency rule on the real import graph,
// so a function binary can never link the embedded store or the simulator and
// the core never reaches a cloud SDK.
package layout

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/payfn/payfn/"

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// list runs `go list -deps=false -json` style queries over the module.
func list(t *testing.T, patterns ...string) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json"}, patterns...)...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs
}

func hasPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if s == p || strings.HasPrefix(s, p+"/") {
			return true
		}
	}
	return false
}

// testOnly are packages no function binary may link.
var testOnly = []string{
	"github.com/FerretDB/FerretDB",
	module + "shared/paysim",
	module + "shared/alipaysim",
	module + "shared/internal/simkit", // the simulators' shared plumbing
	module + "shared/store/embedded",
	module + "shared/store/storetest",
	module + "scripts",
}

var cloudSDKs = []string{"github.com/aws/aws-lambda-go", "github.com/tencentyun/scf-go-lib"}

func TestFunctionBinariesLinkNoTestOnlyPackage(t *testing.T) {
	pkgs := list(t, "./functions/...")
	if len(pkgs) < 5 {
		t.Fatalf("found %d function packages, want at least 5", len(pkgs))
	}
	for path, p := range pkgs {
		for _, d := range p.Deps {
			if hasPrefix(d, testOnly...) {
				t.Errorf("%s links %s", path, d)
			}
		}
	}
}

func TestCoreImportsFollowTheDependencyRule(t *testing.T) {
	pkgs := list(t, "./shared/...")
	// allowed lists, per core package, the payfn packages it may import
	// directly; nil means none.
	allowed := map[string][]string{
		"shared/order":  nil,
		"shared/config": nil,
		// shared/webhook is a leaf like order: the Standard Webhooks format,
		// standard library only, imported by projects' servers too. app
		// signs with it; its Sender reaches app only through a port.
		"shared/app":      {"shared/order", "shared/webhook"},
		"shared/webhook":  nil,
		"shared/identity": {"shared/app"},
		"shared/store":    {"shared/order"},
		"shared/wxpay":    {"shared/app", "shared/order"},
		// The simulators share only their plumbing; simkit stands alone.
		"shared/paysim":          {"shared/internal/simkit"},
		"shared/alipaysim":       {"shared/internal/simkit"},
		"shared/internal/simkit": nil,
	}
	for rel, ok := range allowed {
		p, found := pkgs[module+rel]
		if !found {
			t.Errorf("package %s not found", rel)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			if !hasPrefix(strings.TrimPrefix(imp, module), ok...) {
				t.Errorf("%s imports %s; allowed: %v", rel, imp, ok)
			}
		}
		for _, d := range p.Deps {
			if hasPrefix(d, cloudSDKs...) {
				t.Errorf("%s depends on cloud SDK %s", rel, d)
			}
		}
	}
	for _, d := range pkgs[module+"shared/setup"].Deps {
		if hasPrefix(d, testOnly...) || hasPrefix(d, cloudSDKs...) {
			t.Errorf("shared/setup depends on %s", d)
		}
	}
	for _, rel := range []string{"shared/order", "shared/app"} {
		for _, d := range pkgs[module+rel].Deps {
			if hasPrefix(d, "go.mongodb.org", "github.com/wechatpay-apiv3") {
				t.Errorf("%s depends on %s", rel, d)
			}
		}
	}
}
