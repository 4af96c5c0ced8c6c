package syncer

import (
	"encoding/json"
	"io"
	"slices"
	"sync"
	"time"
)

// MetricsNamespace is the CloudWatch namespace of merchantsync's sync metrics.
const MetricsNamespace = "MerchantSync"

// DimensionStage is the dimension naming the stack's stage (Metrics.Stage).
const DimensionStage = "Stage"

// Metrics writes CloudWatch Embedded Metric Format (EMF) lines: one JSON
// object per line on W (in Lambda: stdout, which CloudWatch Logs turns into
// metrics without any API call). The dimensions are the stage and, for a
// sync, the network; tenant ids travel as properties (searchable in Logs
// Insights) and never as dimensions, which would create a metric per tenant.
//
// A nil *Metrics, or one with a nil W, emits nothing.
type Metrics struct {
	W io.Writer
	// Stage is a dimension of every metric (when set): a dev and a prod
	// stack can share an account, and one's syncs must not count in the
	// other's alarms.
	Stage string
	mu    sync.Mutex
	now   func() time.Time
}

// NewMetrics returns Metrics writing EMF lines to w, for stage.
func NewMetrics(w io.Writer, stage string) *Metrics { return &Metrics{W: w, Stage: stage} }

// Metric names.
const (
	MetricSyncsSucceeded   = "SyncsSucceeded"
	MetricSyncsFailed      = "SyncsFailed"
	MetricSyncsSkipped     = "SyncsSkipped"
	MetricMerchantsChanged = "MerchantsChanged"
	MetricMerchantsSynced  = "MerchantsSynced"
	MetricRakutenCalls     = "RakutenCalls"
	MetricThrottles        = "RakutenThrottles"
	MetricReauthRequired   = "ReauthRequired"
	MetricDynamoWrites     = "RelationshipWrites"
	MetricSyncDuration     = "SyncDurationMs"
	MetricMessagesEnqueued = "SyncMessagesEnqueued"
	MetricDueAccounts      = "DueAccounts"
	// MetricPullModeMismatch counts pull-mode checks whose unfiltered
	// listing and per-status listings disagreed (the network's unfiltered
	// listing leaves some statuses out, or lists some we do not ask for).
	MetricPullModeMismatch = "PullModeMismatch"
)

// metric is one value with its CloudWatch unit.
type metric struct {
	Name  string
	Unit  string // Count, Milliseconds
	Value float64
}

// emit writes one EMF line with the given metrics, dimension values and
// properties. Properties must never hold secrets.
func (m *Metrics) emit(dims map[string]string, props map[string]any, ms ...metric) {
	if m == nil || m.W == nil || len(ms) == 0 {
		return
	}
	now := time.Now
	if m.now != nil {
		now = m.now
	}
	defs := make([]map[string]string, 0, len(ms))
	doc := make(map[string]any, len(ms)+len(dims)+len(props)+1)
	for k, v := range props {
		doc[k] = v
	}
	dimNames := make([]string, 0, len(dims)+1)
	for k, v := range dims {
		doc[k] = v
		dimNames = append(dimNames, k)
	}
	if m.Stage != "" {
		doc[DimensionStage] = m.Stage
		dimNames = append(dimNames, DimensionStage)
	}
	slices.Sort(dimNames)
	for _, x := range ms {
		defs = append(defs, map[string]string{"Name": x.Name, "Unit": x.Unit})
		doc[x.Name] = x.Value
	}
	dimSets := [][]string{dimNames}
	doc["_aws"] = map[string]any{
		"Timestamp": now().UnixMilli(),
		"CloudWatchMetrics": []map[string]any{{
			"Namespace":  MetricsNamespace,
			"Dimensions": dimSets,
			"Metrics":    defs,
		}},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return
	}
	b = append(b, '\n')
	m.mu.Lock()
	defer m.mu.Unlock()
	_, _ = m.W.Write(b)
}

func count(name string, v int) metric { return metric{Name: name, Unit: "Count", Value: float64(v)} }
