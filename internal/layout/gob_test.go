package layout

import "testing"

// TestFunctionBinariesLinkNoGob keeps encoding/gob, and net/rpc which needs
// it, out of the function binaries as they are built (-tags lambda.norpc,
// which takes net/rpc out of aws-lambda-go). encoding/gob and the
// reflection it compiles codecs from cost about 300 KB per binary, over the
// 12 MB budget; the Tencent SCF runtime's net/rpc protocol is spoken by the
// small codec in shared/runtime/tencentscf/gob.go instead, so a new import
// of either (scf-go-lib's cloudfunction, a gob-based cache...) fails here
// rather than in a size check.
func TestFunctionBinariesLinkNoGob(t *testing.T) {
	pkgs := list(t, "-tags", "lambda.norpc", "./functions/...")
	if len(pkgs) < 5 {
		t.Fatalf("found %d function packages, want at least 5", len(pkgs))
	}
	for path, p := range pkgs {
		for _, d := range p.Deps {
			if d == "encoding/gob" || d == "net/rpc" {
				t.Errorf("%s links %s", path, d)
			}
		}
	}
}
