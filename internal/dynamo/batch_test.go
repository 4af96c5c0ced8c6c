package dynamo_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	f := fenced(t, e.s, "t")
	e.counter.Reset()
	stats, err := e.s.WriteRelationships(c, f, rels("t", 250), nil)
	must(t, err)
	if stats.Calls != 3 || stats.Items != 250 {
		t.Errorf("stats = %+v, want 3 calls, 250 items", stats)
	}
	if got := e.counter.Op("TransactWriteItems"); got != 3 {
		t.Errorf("TransactWriteItems on the wire = %d, want 3", got)
	}
	if got := e.counter.WriteItems(); got != 250 {
		t.Errorf("puts on the wire = %d, want 250", got)
	}
	all, err := e.s.AllRelationships(c, "t", rk)
	must(t, err)
	if len(all) != 250 {
		t.Fatalf("stored %d, want 250", len(all))
	}
	for _, tc := range []struct{ items, calls int }{{1, 1}, {dynamo.TxItems, 1}, {dynamo.TxItems + 1, 2}, {2 * dynamo.TxItems, 2}, {2*dynamo.TxItems + 1, 3}} {
		e.counter.Reset()
		stats, err := e.s.WriteRelationships(c, f, rels("t", tc.items), nil)
		must(t, err)
		if stats.Calls != tc.calls || e.counter.Op("TransactWriteItems") != tc.calls || stats.Items != tc.items {
			t.Errorf("%d items: stats %+v, wire %d calls; want %d calls", tc.items, stats, e.counter.Op("TransactWriteItems"), tc.calls)
		}
	}
	// Changes go in transactions of their own, before the relationships.
	e.counter.Reset()
	ch := []merchantsync.Change{{TenantID: "t", Network: rk, RegionNetwork: 1, AdvertiserID: 1, To: merchantsync.StatusJoined, At: t0}}
	stats, err = e.s.WriteRelationships(c, f, rels("t", 3), ch)
	must(t, err)
	if stats.Calls != 2 || stats.Items != 4 {
		t.Errorf("1 change + 3 relationships: stats %+v, want 2 calls", stats)
	}
	// Duplicate keys in one call are written once (last wins), not refused.
	dup := []merchantsync.Relationship{rel("t", 1, 1, merchantsync.StatusPending), rel("t", 1, 1, merchantsync.StatusRemoved)}
	stats, err = e.s.WriteRelationships(c, f, dup, nil)
	must(t, err)
	all, err = e.s.AllRelationships(c, "t", rk)
	must(t, err)
	if stats.Items != 1 || all[0].Status != merchantsync.StatusRemoved {
		t.Fatalf("duplicate keys: stats %+v, stored %s", stats, all[0].Status)
	}
	// Nothing to write: no call.
	e.counter.Reset()
	stats, err = e.s.WriteRelationships(c, f, nil, nil)
	must(t, err)
	if stats.Calls != 0 || len(e.counter.Ops()) != 0 {
		t.Fatalf("empty write made calls: %+v %v", stats, e.counter.Ops())
	}
	// Another account's items, or no fence, are refused before any call.
	if _, err := e.s.WriteRelationships(c, f, rels("other", 1), nil); merchantsync.ErrorCode(err) != merchantsync.EInvalid {
		t.Errorf("another tenant's relationship under t's fence: %v", err)
	}
	if _, err := e.s.WriteRelationships(c, merchantsync.Fence{TenantID: "t", Network: rk}, rels("t", 1), nil); merchantsync.ErrorCode(err) != merchantsync.EInvalid {
		t.Errorf("a write without a fence: %v", err)
	}
	if len(e.counter.Ops()) != 0 {
		t.Errorf("refused writes made calls: %v", e.counter.Ops())
	}
}

// TestWriteRelationshipsFenced: once the connection changes or another sync
// takes the lease, a run's writes stop, and say why.
func TestWriteRelationshipsFenced(t *testing.T) {
	t.Parallel()
	c := ctx(t)
	for _, tc := range []struct {
		name   string
		break_ func(e *env) error
		want   string
	}{
		{"reconnected", func(e *env) error {
			_, err := e.s.MarkConnected(c, "t", rk, merchantsync.Connection{ID: "20250302T000000.000Z-00000000c2"}, t0)
			return err
		}, merchantsync.EConnectionChanged},
		{"disconnected", func(e *env) error { return e.s.MarkDisconnected(c, "t", rk, conn, t0) }, merchantsync.EConnectionChanged},
		{"account deleted", func(e *env) error { return e.s.DeleteAccount(c, "t", rk, conn) }, merchantsync.EConnectionChanged},
		{"lease taken over after it expired", func(e *env) error {
			_, err := e.s.AcquireLease(c, "t", rk, conn, "run-2~b", t0.Add(2*time.Hour), t0.Add(3*time.Hour))
			return err
		}, merchantsync.EConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			f := fenced(t, e.s, "t")
			_, err := e.s.WriteRelationships(c, f, rels("t", 150), nil)
			must(t, err)
			before := e.snapshot(t, "t")
			must(t, tc.break_(e))
			snap := e.snapshot(t, "t")
			changed := rels("t", 150)
			for i := range changed {
				changed[i].Status = merchantsync.StatusRemoved
			}
			stats, err := e.s.WriteRelationships(c, f, changed, nil)
			wantCode(t, err, tc.want)
			if stats.Items != 0 {
				t.Errorf("stats %+v after the fence broke", stats)
			}
			if after := e.snapshot(t, "t"); fmt.Sprint(after) != fmt.Sprint(snap) || len(before) == 0 {
				t.Errorf("a fenced-out write changed the table")
			}
		})
	}
}

// TestWriteRelationshipsFaults injects DynamoDB's own failure answers on the
// wire and checks nothing is lost.
func TestWriteRelationshipsFaults(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		inject    func(f *dynamotest.Faults)
		wantCode  string // "" = success
		minCalls  int    // store-level TransactWriteItems calls
		minOnWire int
	}{
		{"conflicting transactions retried", func(f *dynamotest.Faults) { f.Conflict(4) }, "", 2 + 4, 2 + 4},
		{"throttling retried by the SDK", func(f *dynamotest.Faults) { f.Throttle("TransactWriteItems", 2) }, "", 2, 4},
		{"both", func(f *dynamotest.Faults) { f.Throttle("TransactWriteItems", 2); f.Conflict(3) }, "", 2 + 3, 4 + 3},
		{"throttling outlasts the SDK's retries", func(f *dynamotest.Faults) { f.Throttle("TransactWriteItems", 1000) }, merchantsync.EThrottled, 1, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			c := ctx(t)
			f := fenced(t, e.s, "t")
			e.counter.Reset()
			tc.inject(e.faults)
			in := rels("t", 150)
			stats, err := e.s.WriteRelationships(c, f, in, nil)
			if tc.wantCode != "" {
				wantCode(t, err, tc.wantCode)
				if stats.Items != 0 {
					t.Errorf("stats = %+v", stats)
				}
				e.faults.Clear()
				stats, err = e.s.WriteRelationships(c, f, in, nil)
			}
			must(t, err)
			if stats.Items != 150 || stats.Calls < tc.minCalls {
				t.Errorf("stats = %+v, want 150 items in ≥ %d calls", stats, tc.minCalls)
			}
			if got := e.counter.Op("TransactWriteItems"); got < tc.minOnWire {
				t.Errorf("TransactWriteItems on the wire = %d, want ≥ %d (faults %v)", got, tc.minOnWire, e.faults.Injected())
			}
			all, err := e.s.AllRelationships(c, "t", rk)
			must(t, err)
			if len(all) != 150 {
				t.Fatalf("stored %d of 150 (faults %v)", len(all), e.faults.Injected())
			}
			t.Logf("stats %+v, wire %v, injected %v", stats, e.counter.Ops(), e.faults.Injected())
		})
	}
}

// TestWriteRelationshipsContext: conflicts forever end with the context,
// not a hang.
func TestWriteRelationshipsContext(t *testing.T) {
	t.Parallel()
	e := setup(t)
	f := fenced(t, e.s, "t")
	e.faults.Conflict(1 << 20)
	c, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := e.s.WriteRelationships(c, f, rels("t", 1), nil)
	if err == nil || c.Err() == nil {
		t.Fatalf("err = %v, context %v", err, c.Err())
	}
}

// TestWriteRelationshipsOversized: a relationship DynamoDB could never
// store is refused for good (not throttled, not retried).
func TestWriteRelationshipsOversized(t *testing.T) {
	t.Parallel()
	e := setup(t)
	f := fenced(t, e.s, "t")
	big := rel("t", 1, 1, merchantsync.StatusJoined)
	big.Name = strings.Repeat("n", dynamo.MaxItemBytes)
	e.counter.Reset()
	_, err := e.s.WriteRelationships(ctx(t), f, []merchantsync.Relationship{big}, nil)
	if !errors.Is(err, merchantsync.ErrRejected) {
		t.Fatalf("oversized item: %v, want ErrRejected", err)
	}
	if e.counter.Op("TransactWriteItems") != 0 {
		t.Errorf("an item known to be too large was sent")
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
		{"UpdateItem", func() error { _, err := e.s.AcquireLease(c, "t", rk, conn, "r", t0, t0.Add(time.Minute)); return err }},
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
	f := fenced(b, e.s, "bench")
	in := rels("bench", 1000)
	calls := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range in {
			in[j].LastSeenAt = t0.Add(time.Duration(i) * time.Second)
		}
		stats, err := e.s.WriteRelationships(c, f, in, nil)
		if err != nil {
			b.Fatal(err)
		}
		calls += stats.Calls
	}
	b.ReportMetric(float64(calls)/float64(b.N), "txcalls/op")
	b.ReportMetric(float64(e.counter.Op("TransactWriteItems"))/float64(b.N), "wirecalls/op")
}
