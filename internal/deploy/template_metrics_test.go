package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/payfn/payfn/shared/app"
)

// TestTemplateAlarmsWatchMetricsPayfnWrites keeps template.yaml's metric
// alarms and dashboard in step with the code and docs/metrics.md: every
// alarm on namespace payfn watches a metric payfn writes, over the whole
// stack (Service = the stack's name); the money-at-risk metrics each have
// one; every alarm has a row in docs/metrics.md; and the dashboard is JSON
// naming only payfn's metrics.
func TestTemplateAlarmsWatchMetricsPayfnWrites(t *testing.T) {
	tp := loadTemplate(t)
	docs, err := os.ReadFile(filepath.Join(root, "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	watched := map[string]bool{}
	for name, a := range tp.GetAllCloudWatchAlarmResources() {
		type metric struct {
			ns, name string
			dims     map[string]string
		}
		var ms []metric
		dimsOf := func(ds []struct{ Name, Value string }) map[string]string {
			m := map[string]string{}
			for _, d := range ds {
				v := d.Value
				if r := refTo(v); r != "" {
					v = "!Ref " + r
				}
				m[d.Name] = v
			}
			return m
		}
		if a.MetricName != nil {
			var ds []struct{ Name, Value string }
			for _, d := range a.Dimensions {
				ds = append(ds, struct{ Name, Value string }{d.Name, d.Value})
			}
			ms = append(ms, metric{deref(a.Namespace), deref(a.MetricName), dimsOf(ds)})
		}
		for _, q := range a.Metrics {
			if q.MetricStat == nil || q.MetricStat.Metric == nil {
				continue
			}
			var ds []struct{ Name, Value string }
			for _, d := range q.MetricStat.Metric.Dimensions {
				ds = append(ds, struct{ Name, Value string }{d.Name, d.Value})
			}
			ms = append(ms, metric{deref(q.MetricStat.Metric.Namespace), deref(q.MetricStat.Metric.MetricName), dimsOf(ds)})
		}
		ours := false
		for _, m := range ms {
			if m.ns != "payfn" || subText(m.name) != "" {
				continue // AWS's metrics, or a log metric filter's
			}
			ours = true
			if !slices.Contains(app.MetricNames, m.name) {
				t.Errorf("alarm %s watches payfn/%s, which payfn does not write", name, m.name)
			}
			if m.dims["Service"] != "!Ref AWS::StackName" {
				t.Errorf("alarm %s watches %s without Service = !Ref AWS::StackName: %v", name, m.name, m.dims)
			}
			watched[m.name] = true
		}
		if !ours {
			continue
		}
		alarmName := strings.TrimPrefix(subText(deref(a.AlarmName)), "${AWS::StackName}")
		if alarmName == "" || !strings.Contains(string(docs), "`<stack>"+alarmName+"`") {
			t.Errorf("alarm %s (AlarmName %q) has no row in docs/metrics.md", name, alarmName)
		}
	}
	for _, m := range []string{app.MetricPaymentExceptions, app.MetricVerificationFailures, app.MetricBillDifferences, app.MetricJobRunFailures} {
		if !watched[m] {
			t.Errorf("no alarm watches %s", m)
		}
	}
	boards := tp.GetAllCloudWatchDashboardResources()
	if len(boards) == 0 {
		t.Fatal("template.yaml has no CloudWatch dashboard")
	}
	for name, d := range boards {
		body := regexp.MustCompile(`\$\{[^}]+\}`).ReplaceAllString(subText(d.DashboardBody), "X")
		var v struct {
			Widgets []struct {
				Properties struct {
					Metrics [][]any `json:"metrics"`
				} `json:"properties"`
			} `json:"widgets"`
		}
		if err := json.Unmarshal([]byte(body), &v); err != nil || len(v.Widgets) == 0 {
			t.Fatalf("dashboard %s: body is not JSON with widgets (a !Sub): %v", name, err)
		}
		for _, w := range v.Widgets {
			for _, m := range w.Properties.Metrics {
				if len(m) > 1 {
					if ns, _ := m[0].(string); ns == "payfn" {
						if n, _ := m[1].(string); !slices.Contains(app.MetricNames, n) {
							t.Errorf("dashboard %s charts payfn/%s, which payfn does not write", name, n)
						}
					}
				}
			}
		}
	}
}
