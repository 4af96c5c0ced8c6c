package syncer

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
)

// TestMetricsStageDimension: every metric carries the stage as a
// dimension, beside the network, so that one stage's alarms do not count
// another's syncs; without a stage there is no Stage dimension.
func TestMetricsStageDimension(t *testing.T) {
	for _, tt := range []struct {
		stage string
		want  []string
	}{{"prod", []string{"Network", "Stage"}}, {"", []string{"Network"}}} {
		var buf bytes.Buffer
		NewMetrics(&buf, tt.stage).emit(map[string]string{"Network": "rakuten"}, nil, count(MetricSyncsFailed, 1))
		var doc struct {
			Stage, Network string
			AWS            struct {
				CloudWatchMetrics []struct {
					Namespace  string
					Dimensions [][]string
				}
			} `json:"_aws"`
		}
		if err := json.Unmarshal(buf.Bytes(), &doc); err != nil || len(doc.AWS.CloudWatchMetrics) != 1 {
			t.Fatalf("EMF line %s: %v", buf.Bytes(), err)
		}
		cwm := doc.AWS.CloudWatchMetrics[0]
		if len(cwm.Dimensions) != 1 || !slices.Equal(cwm.Dimensions[0], tt.want) || doc.Stage != tt.stage || cwm.Namespace != MetricsNamespace {
			t.Errorf("stage %q: dimensions %v, Stage %q, namespace %q; want %v", tt.stage, cwm.Dimensions, doc.Stage, cwm.Namespace, tt.want)
		}
	}
}
