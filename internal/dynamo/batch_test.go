package dynamo_test

import (
	"context"
	"testing"
	"time"

	"github.com/merchantsync/merchantsync/internal/dynamo"
	"github.com/merchantsync/merchantsync/internal/dynamo/dynamotest"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

func rels(tenant string, n int) []merchantsync.Relationship {
	out := make([]merchantsync.Relationship, n)
	for i := range n {
		out[i] = rel(tenant, 1, int64(i+1), merchantsync.StatusJoined)
	}
	return out
}

func TestWriteRelationshipsBatches(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := ctx(t)
	stats, err := e.s.WriteRelationships(c, rels("t", 60), nil)
	must(t, err)
	if stats.BatchCalls != 3 || stats.Items != 60 {
		t.Errorf("stats = %+v, want 3 calls, 60 items", stats)
	}
	if got := e.counter.Op("BatchWriteItem"); got != 3 {
		t.Errorf("BatchWriteItem on the wire = %d, want 3", got)
	}
	if got := e.counter.WriteItems(); got != 60 {
		t.Errorf("write items on the wire = %d, want 60", got)
	}
	all, err := e.s.AllRelationships(c, "t", rk)
	must(t, err)
	if len(all) != 60 {
		t.Fatalf("stored %d, want 60", len(all))
	}
	for _, tc := range []struct{ items, calls int }{{1, 1}, {dynamo.BatchSize, 1}, {dynamo.BatchSize + 1, 2}, {2 * dynamo.BatchSize, 2}, {2*dynamo.BatchSize + 1, 3}} {
		e.counter.Reset()
		stats, err := e.s.WriteRelationships(c, rels("t", tc.items), nil)
		must(t, err)
		if stats.BatchCalls != tc.calls || e.counter.Op("BatchWriteItem") != tc.calls || stats.Items != tc.items {
			t.Errorf("%d items: stats %+v, wire %d calls; want %d calls", tc.items, stats, e.counter.Op("BatchWriteItem"), tc.calls)
		}
	}
	// Duplicate keys in one call are written once (last wins), not refused.
	dup := []merchantsync.Relationship{rel("t", 1, 1, merchantsync.StatusPending), rel("t", 1, 1, merchantsync.StatusRemoved)}
	stats, err = e.s.WriteRelationships(c, dup, nil)
	must(t, err)
	all, err = e.s.AllRelationships(c, "t", rk)
	must(t, err)
	if stats.Items != 1 || all[0].Status != merchantsync.StatusRemoved {
		t.Fatalf("duplicate keys: stats %+v, stored %s", stats, all[0].Status)
	}
	// Nothing to write: no call.
	e.counter.Reset()
	stats, err = e.s.WriteRelationships(c, nil, nil)
	must(t, err)
	if stats.BatchCalls != 0 || len(e.counter.Ops()) != 0 {
		t.Fatalf("empty write made calls: %+v %v", stats, e.counter.Ops())
	}
}

// TestWriteRelationshipsFaults injects DynamoDB's own failure answers on the
// wire and checks nothing is lost.
func TestWriteRelationshipsFaults(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		inject     func(f *dynamotest.Faults)
		wantCode   string // "" = success
		minCalls   int    // store-level BatchWriteItem calls
		minOnWire  int
		unprocItem int
	}{
		{"unprocessed items retried", func(f *dynamotest.Faults) { f.Unprocess(4) }, "", 3 + 4, 3 + 4, 1},
		{"throttling retried by the SDK", func(f *dynamotest.Faults) { f.Throttle("BatchWriteItem", 2) }, "", 3, 5, 0},
		{"both", func(f *dynamotest.Faults) { f.Throttle("BatchWriteItem", 2); f.Unprocess(6) }, "", 3 + 6, 5 + 6, 1},
		{"throttling outlasts the SDK's retries", func(f *dynamotest.Faults) { f.Throttle("BatchWriteItem", 1000) }, merchantsync.EThrottled, 1, 3, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			c := ctx(t)
			tc.inject(e.faults)
			in := rels("t", 60)
			stats, err := e.s.WriteRelationships(c, in, nil)
			if tc.wantCode != "" {
				wantCode(t, err, tc.wantCode)
				if stats.Items != 0 {
					t.Errorf("stats = %+v", stats)
				}
				e.faults.Clear()
				stats, err = e.s.WriteRelationships(c, in, nil)
			}
			must(t, err)
			if stats.Items != 60 || stats.BatchCalls < tc.minCalls {
				t.Errorf("stats = %+v, want 60 items in ≥ %d calls", stats, tc.minCalls)
			}
			if got := e.counter.Op("BatchWriteItem"); got < tc.minOnWire {
				t.Errorf("BatchWriteItem on the wire = %d, want ≥ %d (faults %v)", got, tc.minOnWire, e.faults.Injected())
			}
			if tc.unprocItem > 0 && e.faults.Injected()["unprocessedItems"] < tc.unprocItem {
				t.Errorf("no items were left unprocessed: %v", e.faults.Injected())
			}
			all, err := e.s.AllRelationships(c, "t", rk)
			must(t, err)
			if len(all) != 60 {
				t.Fatalf("stored %d of 60 (faults %v)", len(all), e.faults.Injected())
			}
			t.Logf("stats %+v, wire %v, injected %v", stats, e.counter.Ops(), e.faults.Injected())
		})
	}
}

// TestWriteRelationshipsContext: unprocessed items forever end with the
// context, not a hang.
func TestWriteRelationshipsContext(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.faults.Unprocess(1 << 20)
	c, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.s.WriteRelationships(c, rels("t", 1), nil)
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
}

// TestThrottleMapping: single-item operations throttled past the SDK's
// retries answer EThrottled.
func TestThrottleMapping(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := ctx(t)
	connected(t, e.s, "t")
	calls := []struct {
		op string
		do func() error
	}{
		{"GetItem", func() error { _, err := e.s.GetAccount(c, "t", rk); return err }},
		{"UpdateItem", func() error { _, err := e.s.AcquireLease(c, "t", rk, "r", t0, t0.Add(time.Minute)); return err }},
		{"Query", func() error { _, _, err := e.s.ListRuns(c, "t", rk, 0, ""); return err }},
		{"PutItem", func() error { return e.s.PutRun(c, run("t", "r", merchantsync.RunRunning)) }},
	}
	for _, call := range calls {
		e.faults.Throttle(call.op, 3)
		wantCode(t, call.do(), merchantsync.EThrottled)
		must(t, call.do()) // the SDK's retries absorb fewer throttles
	}
}

func BenchmarkWriteRelationships(b *testing.B) {
	e := setup(b)
	c := context.Background()
	in := rels("bench", 1000)
	calls := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range in {
			in[j].LastSeenAt = t0.Add(time.Duration(i) * time.Second)
		}
		stats, err := e.s.WriteRelationships(c, in, nil)
		if err != nil {
			b.Fatal(err)
		}
		calls += stats.BatchCalls
	}
	b.ReportMetric(float64(calls)/float64(b.N), "batchcalls/op")
	b.ReportMetric(float64(e.counter.Op("BatchWriteItem"))/float64(b.N), "wirecalls/op")
}
