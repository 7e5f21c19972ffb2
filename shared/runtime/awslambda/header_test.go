package awslambda

import (
	"maps"
	"net/http"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// sortedHeader is the straightforward conversion newHeader must match:
// every name in sorted order through http.Header.Add.
func sortedHeader(in map[string]string) http.Header {
	h := make(http.Header, len(in))
	for _, k := range slices.Sorted(maps.Keys(in)) {
		h.Add(k, in[k])
	}
	return h
}

func TestNewHeaderMatchesSortedAdd(t *testing.T) {
	for name, in := range map[string]map[string]string{
		"none": {},
		"api gateway": {
			"content-type": "application/json", "host": "payfn.example", "wechatpay-nonce": "n",
			"wechatpay-serial": "PUB_KEY_ID_1", "wechatpay-signature": "c2ln", "wechatpay-signature-type": "WECHATPAY2-SHA256-RSA2048",
			"wechatpay-timestamp": "1700000000", "request-id": "r", "x-forwarded-for": "203.0.113.7, 198.51.100.2",
			"accept": "a,b", "x-custom_name": "underscore", "bad key": "kept as is", "": "empty name",
		},
		"names differing in case": {"wechatpay-nonce": "lower", "Wechatpay-Nonce": "canonical", "WECHATPAY-NONCE": "upper", "host": "h"},
		"canonical already":       {"Content-Type": "text/plain", "X-Amzn-Trace-Id": "Root=1"},
	} {
		for range 20 { // map order varies from run to run
			if diff := cmp.Diff(sortedHeader(in), newHeader(in)); diff != "" {
				t.Fatalf("%s (-want +got):\n%s", name, diff)
			}
		}
	}
}

// TestNewHeaderValuesDoNotAlias: the value slices share one array, so an
// Add to one name must not overwrite the value of another.
func TestNewHeaderValuesDoNotAlias(t *testing.T) {
	in := map[string]string{"a": "1", "b": "2", "c": "3"}
	h := newHeader(in)
	for _, k := range []string{"A", "B", "C"} {
		h.Add(k, "added")
	}
	want := http.Header{"A": {"1", "added"}, "B": {"2", "added"}, "C": {"3", "added"}}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

// TestKnownKeysAreCanonical: the table only saves allocations.
func TestKnownKeysAreCanonical(t *testing.T) {
	for k, ck := range knownKeys {
		if got := http.CanonicalHeaderKey(k); got != ck {
			t.Errorf("knownKeys[%q] = %q, CanonicalHeaderKey gives %q", k, ck, got)
		}
	}
}
