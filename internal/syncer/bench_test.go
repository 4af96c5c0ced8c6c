package syncer

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
)

// cpuTime is this process's user+system CPU time. The benchmark's ns/op is
// wall time and includes waiting for DynamoDB Local (another process); CPU
// per merchant is what the Lambda pays for.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSync measures one steady-state sync (1 % of merchants changed
// since the last one) on real parts: DynamoDB Local, the Secrets Manager
// fake, the Rakuten sandbox over HTTP in a process of its own, so that
// cpu-ns/merchant is what the sync Lambda would pay: the engine, the
// Rakuten client decoding every page, the SDK reading every stored
// relationship and writing the changed ones, and the garbage collector.
func BenchmarkSync(b *testing.B) {
	for _, merchants := range []int{10_000, 50_000} {
		b.Run(fmt.Sprintf("merchants=%d/churn=1pct", merchants), func(b *testing.B) {
			benchSync(b, merchants, merchants/100)
		})
	}
}

func benchSync(b *testing.B, merchants, churn int) {
	e := newEnv(b)
	sim := startSandboxProcess(b)
	e.sim = sim
	e.useRakuten(e.RakutenClient(sim.URL))
	acct := e.connect("bench", merchants)
	if run := e.sync("bench"); run.State != merchantsync.RunSucceeded || run.MerchantsSynced != merchants {
		b.Fatalf("baseline: %+v", run)
	}
	ms := sim.Merchants(acct.SiteID)
	var changes int
	var cpu time.Duration
	e.DDBCalls.Reset()
	sim.ResetCalls()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		for k := range churn {
			j := (i*churn + k) % len(ms)
			st := sandbox.StatusPending
			if ms[j].Status == sandbox.StatusPending {
				st = sandbox.StatusActive
			}
			ms[j].Status = st
			sim.SetStatus(acct.SiteID, ms[j].MID, st)
		}
		e.Clock.Advance(24 * time.Hour)
		req := manual("bench", e.Clock.Now())
		b.StartTimer()
		start := cpuTime()
		run, err := e.engine.Sync(e.Ctx, req)
		cpu += cpuTime() - start
		if err != nil || run.State != merchantsync.RunSucceeded {
			b.Fatalf("sync: %+v %v", run, err)
		}
		changes += run.Changes
	}
	b.StopTimer()
	n := float64(b.N)
	w := e.writeOps()
	// Items written: relationship + change items in batches, run puts,
	// account updates (lease), and the finish transaction's two items.
	writes := w["batchItems"] + w["PutItem"] + w["UpdateItem"] + 2*w["TransactWriteItems"]
	rakutenCalls := sim.Calls(sandbox.EndpointToken) + sim.Calls(sandbox.EndpointPartnerships)
	b.ReportMetric(float64(writes)/n, "dynamo-writes/op")
	b.ReportMetric(float64(w["BatchWriteItem"]+w["PutItem"]+w["UpdateItem"]+w["TransactWriteItems"])/n, "dynamo-write-calls/op")
	b.ReportMetric(float64(rakutenCalls)/n, "rakuten-calls/op")
	b.ReportMetric(float64(changes)/n, "changes/op")
	b.ReportMetric(float64(cpu.Nanoseconds())/n/float64(merchants), "cpu-ns/merchant")
}

// BenchmarkDiff is the engine's own work per sync without any I/O:
// normalizing a pull and diffing it against the stored relationships.
func BenchmarkDiff(b *testing.B) {
	for _, merchants := range []int{10_000, 50_000} {
		b.Run(fmt.Sprintf("merchants=%d/churn=1pct", merchants), func(b *testing.B) {
			now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
			stored := make([]merchantsync.Relationship, merchants)
			raw := make([]struct {
				region int
				mid    int64
				name   string
				status string
			}, merchants)
			statuses := sandbox.PartnershipStatuses()
			for i := range stored {
				st := statuses[i%len(statuses)]
				n := merchantsync.NormalizeRakuten(st)
				stored[i] = merchantsync.Relationship{TenantID: "t", Network: "rakuten", RegionNetwork: 1 + i%4, AdvertiserID: int64(10000 + i),
					Name: fmt.Sprintf("Merchant %d", i), Status: n.Status, RawStatus: st, Permanent: n.Permanent, ProgramStatus: "active"}
				raw[i].region, raw[i].mid, raw[i].name, raw[i].status = 1+i%4, int64(10000+i), stored[i].Name, st
				if i%100 == 0 { // 1 % churn
					raw[i].status = sandbox.StatusPending
					if st == sandbox.StatusPending {
						raw[i].status = sandbox.StatusActive
					}
				}
			}
			b.ReportAllocs()
			var p plan
			for b.Loop() {
				pull := make([]merchantsync.Partnership, len(raw))
				for i, r := range raw {
					pull[i] = merchantsync.Partnership{RegionNetwork: r.region, AdvertiserID: r.mid, Name: r.name, ProgramStatus: "active", Status: merchantsync.NormalizeRakuten(r.status)}
				}
				p = diffPull("t", "rakuten", "run", now, now.Add(-24*time.Hour), stored, pull)
			}
			if len(p.Changes) != merchants/100 {
				b.Fatalf("changes = %d, want %d", len(p.Changes), merchants/100)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(merchants), "ns/merchant")
		})
	}
}
