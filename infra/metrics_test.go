package infra

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/merchantsync/merchantsync/internal/syncer"
)

// metricID names a CloudWatch metric: namespace, name and every dimension
// with its value (a metric is only the same metric with all of them).
func metricID(namespace, name string, dims map[string]string) string {
	var ds []string
	for k, v := range dims {
		ds = append(ds, k+"="+v)
	}
	slices.Sort(ds)
	return fmt.Sprintf("%s %s {%s}", namespace, name, strings.Join(ds, ", "))
}

// emittedMetrics are the metrics of the EMF lines in out.
func emittedMetrics(out string) map[string]bool {
	got := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		var doc map[string]any
		if json.Unmarshal([]byte(line), &doc) != nil || doc["_aws"] == nil {
			continue
		}
		for _, d := range list(m(doc["_aws"])["CloudWatchMetrics"]) {
			for _, set := range list(m(d)["Dimensions"]) {
				dims := map[string]string{}
				for _, k := range list(set) {
					dims[fmt.Sprint(k)] = fmt.Sprint(doc[fmt.Sprint(k)])
				}
				for _, mt := range list(m(d)["Metrics"]) {
					got[metricID(fmt.Sprint(m(d)["Namespace"]), fmt.Sprint(m(mt)["Name"]), dims)] = true
				}
			}
		}
	}
	return got
}

// checkAlarmsOnEmittedMetrics: every metric of merchantsync's namespace that
// an alarm of the translated template watches, resolved in s, is one the
// code emitted in out, dimensions and values included.
func checkAlarmsOnEmittedMetrics(cfn map[string]any, s stack, out string) []string {
	emitted := emittedMetrics(out)
	var problems []string
	for id, a := range resourcesOfType(cfn, "AWS::CloudWatch::Alarm") {
		for _, q := range list(m(a["Properties"])["Metrics"]) {
			mt := m(m(m(q)["MetricStat"])["Metric"])
			if mt["Namespace"] != syncer.MetricsNamespace {
				continue
			}
			dims := map[string]string{}
			for _, d := range list(mt["Dimensions"]) {
				dims[fmt.Sprint(m(d)["Name"])] = s.resolveOrNone(m(d)["Value"])
			}
			if want := metricID(syncer.MetricsNamespace, fmt.Sprint(mt["MetricName"]), dims); !emitted[want] {
				problems = append(problems, fmt.Sprintf("%s watches %s, which the code never emitted (it emitted %v)", id, want, slices.Sorted(maps.Keys(emitted))))
			}
		}
	}
	slices.Sort(problems)
	return problems
}

// TestDocsNameTheMetricsNamespace: the docs spell the namespace the code
// emits, wherever they name one.
func TestDocsNameTheMetricsNamespace(t *testing.T) {
	docs, _ := filepath.Glob(filepath.Join(repoRoot(t), "docs", "*.md"))
	re := regexp.MustCompile("(?i)namespace `([^`]+)`")
	named := 0
	for _, p := range docs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, mt := range re.FindAllStringSubmatch(string(b), -1) {
			named++
			if mt[1] != syncer.MetricsNamespace {
				t.Errorf("%s names the metrics namespace %q; the code emits %q", filepath.Base(p), mt[1], syncer.MetricsNamespace)
			}
		}
	}
	if named == 0 {
		t.Error("no doc names the metrics namespace (docs/operations.md should)")
	}
}
