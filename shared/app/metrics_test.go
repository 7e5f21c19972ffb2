package app_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/payfn/payfn/shared/app"
)

// TestMetricsAreEachDocumented: docs/metrics.md has a row for every metric
// payfn writes, and MetricNames lists each name once.
func TestMetricsAreEachDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, m := range app.MetricNames {
		if !strings.Contains(doc, "| `"+m+"`") && !strings.Contains(doc, ", `"+m+"` |") {
			t.Errorf("docs/metrics.md has no row for %s", m)
		}
	}
	if s := slices.Compact(slices.Sorted(slices.Values(app.MetricNames))); len(s) != len(app.MetricNames) {
		t.Errorf("MetricNames repeats a name")
	}
}
