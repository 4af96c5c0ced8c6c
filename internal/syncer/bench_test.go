package syncer

import (
	"testing"
	"time"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
)

// BenchmarkSync10kMerchants1pct: an account with 10,000 merchants, 1% of
// them changing status between syncs. Everything is real but Rakuten (the
// sandbox over loopback HTTP): DynamoDB Local and the Secrets Manager fake.
func BenchmarkSync10kMerchants1pct(b *testing.B) {
	e := newEnv(b)
	acct := e.connect("bench", 10000)
	if run := e.sync("bench"); run.State != merchantsync.RunSucceeded || run.MerchantsSynced != 10000 {
		b.Fatalf("baseline: %+v", run)
	}
	ms := e.sb.Merchants(acct.SiteID)
	const churn = 100
	var writes, rakutenCalls, changes int
	e.counter.Reset()
	e.sb.ResetCalls()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		for k := range churn {
			m := ms[(i*churn+k)%len(ms)]
			st := "pending"
			if m.Status == "pending" {
				st = "active"
			}
			ms[(i*churn+k)%len(ms)].Status = st
			if err := e.sb.SetStatus(acct.SiteID, m.MID, st); err != nil {
				b.Fatal(err)
			}
		}
		e.clock.Advance(24 * time.Hour)
		req := manual("bench", e.clock.Now())
		b.StartTimer()
		run, err := e.engine.Sync(e.ctx, req)
		if err != nil || run.State != merchantsync.RunSucceeded {
			b.Fatalf("sync: %+v %v", run, err)
		}
		changes += run.Changes
	}
	b.StopTimer()
	n := b.N
	w := e.writeOps()
	// Items written: relationship + change items in batches, run puts,
	// account updates (lease), and the finish transaction's two items.
	writes = w["batchItems"] + w["PutItem"] + w["UpdateItem"] + 2*w["TransactWriteItems"]
	rakutenCalls = e.sb.Calls(sandbox.EndpointToken) + e.sb.Calls(sandbox.EndpointPartnerships)
	b.ReportMetric(float64(writes)/float64(n), "dynamo-writes/op")
	b.ReportMetric(float64(w["BatchWriteItem"]+w["PutItem"]+w["UpdateItem"]+w["TransactWriteItems"])/float64(n), "dynamo-write-calls/op")
	b.ReportMetric(float64(rakutenCalls)/float64(n), "rakuten-calls/op")
	b.ReportMetric(float64(changes)/float64(n), "changes/op")
}
