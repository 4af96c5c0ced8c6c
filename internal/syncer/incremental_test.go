package syncer

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/rakuten"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
)

// syncEvery saves tenant's syncEvery setting (enabled).
func (e *env) syncEvery(tenant string, every merchantsync.SyncEvery) {
	e.T.Helper()
	if err := e.Store.PutSettings(e.Ctx, merchantsync.Settings{TenantID: tenant, Enabled: true, SyncEvery: every, UpdatedAt: e.Clock.Now()}); err != nil {
		e.T.Fatalf("PutSettings: %v", err)
	}
}

// hourly fires the hourly schedule at the clock's time and lets the worker
// run what it enqueued; it returns what the scheduler did.
func (e *env) hourly() ScheduleResult {
	e.T.Helper()
	s := &Scheduler{Store: e.Store, Queue: e.Queue, Now: e.Clock.Now, Logger: e.Logger}
	res, err := s.Handle(context.Background(), ScheduleEvent{ScheduledTime: e.Clock.Now().Truncate(time.Hour).Format(time.RFC3339), Mode: "incremental"})
	if err != nil {
		e.T.Fatalf("hourly schedule: %v", err)
	}
	if res.Enqueued > 0 {
		w := NewWorker(e.engine, e.Logger)
		for _, resp := range e.Deliver(w.Handle, res.Enqueued) {
			if len(resp.BatchItemFailures) > 0 {
				e.T.Fatalf("worker gave back %v", resp.BatchItemFailures)
			}
		}
	}
	return res
}

// TestIncrementalRun is the first "done when", on the sandbox over
// HTTP: an hourly account of 1,000 merchants with 5 changed since the last
// full pull (and 3 gone from Rakuten altogether) is synced by the hourly
// schedule with 1 token call and 1 partnerships page; exactly those 5
// changes are recorded, nothing else is written to a relationship, and no
// merchant is counted missing or removed. A daily account is not enqueued.
func TestIncrementalRun(t *testing.T) {
	e := newEnv(t)
	sb := e.sandboxWith(sandbox.Options{Now: e.Clock.Now}, rakuten.Config{})
	acct := e.connect("hourly", 1000)
	e.connect("daily", 50)
	e.syncEvery("hourly", merchantsync.SyncHourly)
	e.sync("hourly")
	e.sync("daily")
	before, lastFull := e.Relationships("hourly"), e.Account("hourly").LastSyncAt

	e.Clock.Advance(2 * time.Hour)
	ms := sb.Merchants(acct.SiteID)
	var changed []int64
	for _, m := range ms[:5] {
		next := sandbox.StatusPending
		if m.Status == sandbox.StatusPending {
			next = sandbox.StatusActive
		}
		if err := sb.SetStatus(acct.SiteID, m.MID, next); err != nil {
			t.Fatal(err)
		}
		changed = append(changed, m.MID)
	}
	for _, m := range ms[500:503] {
		sb.RemoveMerchant(acct.SiteID, m.MID) // missing from every pull from now on
	}
	e.Sandbox.ResetCalls()
	e.DDBCalls.Reset()

	res := e.hourly()
	if res.Accounts != 1 || res.Enqueued != 1 {
		t.Fatalf("hourly schedule read %d accounts and enqueued %d, want only the hourly one", res.Accounts, res.Enqueued)
	}
	tok, pages := e.Sandbox.Calls(sandbox.EndpointToken), e.Sandbox.Calls(sandbox.EndpointPartnerships)
	if tok > 1 || pages != 1 || e.Sandbox.Calls(sandbox.EndpointPartnership) != 0 {
		t.Fatalf("incremental run: %d token + %d partnerships + %d lookups, want ≤1 + 1 + 0", tok, pages, e.Sandbox.Calls(sandbox.EndpointPartnership))
	}
	a := e.Account("hourly")
	run := a.LastRun
	if run == nil || run.State != merchantsync.RunSucceeded || run.Mode != merchantsync.ModeIncremental || run.Changes != 5 || run.MerchantsSynced != 5 {
		t.Fatalf("last run %+v, want an incremental run with 5 merchants and 5 changes", run)
	}
	if d := e.Account("daily"); d.LastRun == nil || d.LastRun.Mode == merchantsync.ModeIncremental || d.LastRun.Trigger != merchantsync.TriggerManual {
		t.Fatalf("the daily account was synced by the hourly schedule: %+v", d.LastRun)
	}

	after := e.Relationships("hourly")
	if len(after) != len(before) {
		t.Fatalf("%d relationships after, %d before", len(after), len(before))
	}
	for i := range after {
		b, x := before[i], after[i]
		if slices.Contains(changed, x.AdvertiserID) {
			if x.Status == b.Status {
				t.Errorf("merchant %d: change not applied (%s)", x.AdvertiserID, x.Status)
			}
			continue
		}
		if x.MissedPulls != 0 || x.Status != b.Status || !x.LastSeenAt.Equal(b.LastSeenAt) || x.RawStatus != b.RawStatus {
			t.Errorf("merchant %d touched by the incremental run: %+v → %+v", x.AdvertiserID, b, x)
		}
	}
	if !a.LastSyncAt.Equal(lastFull) {
		t.Errorf("lastSyncAt %v moved: it is the last full pull's", a.LastSyncAt)
	}
	changes, _, err := e.Store.ListChanges(e.Ctx, "hourly", network, time.Time{}, 100, "")
	if err != nil || len(changes) != 5 {
		t.Fatalf("%d changes recorded (%v), want 5", len(changes), err)
	}
	for _, c := range changes {
		if !slices.Contains(changed, c.AdvertiserID) || c.RunID != run.RunID {
			t.Errorf("change %+v is not one of the 5", c)
		}
	}

	// An hour later again, nothing changed: one page, no writes at all but
	// the run's own.
	e.Clock.Advance(time.Hour)
	e.DDBCalls.Reset()
	e.hourly()
	if run := e.Account("hourly").LastRun; run.State != merchantsync.RunSucceeded || run.Changes != 0 {
		t.Fatalf("quiet hour: %+v", run)
	}
	if w := e.writeOps(); w["BatchWriteItem"] != 0 {
		t.Fatalf("a quiet hour wrote relationships: %v", w)
	}

	// The next full sync, not an incremental one, notices the 3 gone.
	if run := e.sync("hourly"); run.Mode != merchantsync.ModeFull {
		t.Fatalf("Sync now ran %q, want full", run.Mode)
	}
	missed := 0
	for _, r := range e.Relationships("hourly") {
		if r.MissedPulls > 0 {
			missed++
		}
	}
	if missed != 3 {
		t.Fatalf("%d merchants missed by the full sync, want the 3 gone", missed)
	}
	assertNoLeaks(t, e)
}

// TestIncrementalNeverRemoves: over many hourly runs whose results leave
// merchants out (they did not change), no merchant is ever counted missing,
// however many runs there are; only full pulls count misses.
func TestIncrementalNeverRemoves(t *testing.T) {
	e := newEnv(t)
	sb := e.sandboxWith(sandbox.Options{Now: e.Clock.Now}, rakuten.Config{})
	acct := e.connect("t1", 40)
	e.syncEvery("t1", merchantsync.SyncHourly)
	e.sync("t1")
	for _, m := range sb.Merchants(acct.SiteID)[:10] {
		sb.RemoveMerchant(acct.SiteID, m.MID)
	}
	for i := range merchantsync.MissesBeforeRemoved + 2 {
		e.Clock.Advance(time.Hour + time.Minute)
		if res := e.hourly(); res.Enqueued != 1 {
			t.Fatalf("hour %d: enqueued %d", i, res.Enqueued)
		}
		if run := e.Account("t1").LastRun; run.State != merchantsync.RunSucceeded || run.Mode != merchantsync.ModeIncremental {
			t.Fatalf("hour %d: %+v", i, run)
		}
	}
	for _, r := range e.Relationships("t1") {
		if r.MissedPulls != 0 || r.Status == merchantsync.StatusRemoved && r.RawStatus == RawMissing {
			t.Fatalf("merchant %d counted missing by incremental runs: %+v", r.AdvertiserID, r)
		}
	}
}

// TestIncrementalSkips: an hourly run within an hour of a full one, or for
// a tenant back on "24h", does nothing (and the 24h account is not even
// enqueued); a sync running holds the lease, and the hourly one joins it.
func TestIncrementalSkips(t *testing.T) {
	e := newEnv(t)
	e.sandboxWith(sandbox.Options{Now: e.Clock.Now}, rakuten.Config{})
	e.connect("t1", 20)
	e.syncEvery("t1", merchantsync.SyncHourly)
	e.sync("t1")

	e.Clock.Advance(30 * time.Minute)
	e.Sandbox.ResetCalls()
	req := scheduled("t1", "hourly-a", e.Clock.Now())
	req.Mode = merchantsync.ModeIncremental
	run, err := e.engine.Sync(e.Ctx, req)
	if err != nil || run.State != merchantsync.RunSkipped || run.Error == nil || run.Error.Code != merchantsync.ERecentlySynced {
		t.Fatalf("within the hour: %+v %v", run, err)
	}
	if n := e.Sandbox.Calls(sandbox.EndpointPartnerships) + e.Sandbox.Calls(sandbox.EndpointToken); n != 0 {
		t.Fatalf("a skipped run called Rakuten %d times", n)
	}

	e.Clock.Advance(time.Hour)
	e.syncEvery("t1", merchantsync.SyncDaily)
	if res := e.hourly(); res.Accounts != 0 {
		t.Fatalf("a 24h account was read by the hourly schedule: %+v", res)
	}
	// A message already queued when the tenant switched back is skipped.
	req = scheduled("t1", "hourly-b", e.Clock.Now())
	req.Mode = merchantsync.ModeIncremental
	if run, err := e.engine.Sync(e.Ctx, req); err != nil || run.State != merchantsync.RunSkipped {
		t.Fatalf("queued before the switch: %+v %v", run, err)
	}

	// Only the schedule asks for incremental runs.
	bad := manual("t1", e.Clock.Now())
	bad.Mode = merchantsync.ModeIncremental
	if _, err := e.engine.Sync(e.Ctx, bad); merchantsync.ErrorCode(err) != merchantsync.EInvalid {
		t.Fatalf("a manual incremental request: %v", err)
	}
}

// TestIncrementalFallback: when Rakuten refuses the recency filter (400) or
// ignores it (rows older than the range), the account falls back to full
// pulls only: the run says why, the view shows it, the hourly schedule no
// longer enqueues the account, and nothing was applied from the pull.
func TestIncrementalFallback(t *testing.T) {
	for name, opts := range map[string]sandbox.Options{
		"refused": {RecencyRefused: true},
		"ignored": {RecencyIgnored: true},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			opts.Now = e.Clock.Now
			e.sandboxWith(opts, rakuten.Config{})
			e.connect("t1", 30)
			e.syncEvery("t1", merchantsync.SyncHourly)
			e.sync("t1")
			before := e.Relationships("t1")
			e.Clock.Advance(2 * time.Hour)
			if res := e.hourly(); res.Enqueued != 1 {
				t.Fatalf("enqueued %d", res.Enqueued)
			}
			a := e.Account("t1")
			if a.IncrementalOff == "" || a.LastRun.Error == nil || a.LastRun.Error.Code != merchantsync.EIncrementalUnsupported {
				t.Fatalf("fallback not recorded: off=%q run=%+v", a.IncrementalOff, a.LastRun)
			}
			if a.State != merchantsync.StateConnected {
				t.Fatalf("state %q: a refused filter is not an error of the account", a.State)
			}
			if v := e.view("t1"); v["incrementalOff"] != a.IncrementalOff || v["state"] != "connected" {
				t.Fatalf("view: %v", v)
			}
			if after := e.Relationships("t1"); !slices.EqualFunc(before, after, func(x, y merchantsync.Relationship) bool {
				return x.Status == y.Status && x.MissedPulls == y.MissedPulls
			}) {
				t.Fatal("the refused pull changed relationships")
			}
			e.Clock.Advance(time.Hour)
			if res := e.hourly(); res.Accounts != 0 {
				t.Fatalf("the hourly schedule still reads the account: %+v", res)
			}
			if run := e.sync("t1"); run.State != merchantsync.RunSucceeded {
				t.Fatalf("full sync after the fallback: %+v", run)
			}
		})
	}
}

// TestIncrementalOvertaken: an hourly run held in the middle of its pull
// while the publisher reconnects with other credentials ends skipped, and
// nothing of it sticks: no relationship, no change, the new connection's
// state untouched (the fence every sync's writes carry).
func TestIncrementalOvertaken(t *testing.T) {
	e := newEnv(t)
	a := e.connect("t1", 30)
	e.syncEvery("t1", merchantsync.SyncHourly)
	for _, m := range e.Sandbox.Merchants(a.SiteID)[:3] {
		if err := e.Sandbox.SetStatus(a.SiteID, m.MID, sandbox.StatusTempDecline); err != nil {
			t.Fatal(err)
		}
	}
	b := e.appB(a)
	e.gate.Close()
	req := scheduled("t1", "hourly-1", e.Clock.Now())
	req.Mode = merchantsync.ModeIncremental
	done := make(chan merchantsync.Run, 1)
	go func() {
		run, err := e.engine.Sync(e.Ctx, req)
		if err != nil {
			t.Errorf("Sync: %v", err)
		}
		done <- run
	}()
	<-e.gate.Arrived()
	if st := e.credentials("t1", "PUT", &b); st != 200 {
		t.Fatalf("PUT credentials B: %d", st)
	}
	conn := e.Account("t1").ConnectionID
	e.gate.Open()
	run := <-done
	wantOvertaken(t, run)
	if got := e.Relationships("t1"); len(got) != 0 {
		t.Fatalf("the overtaken incremental run stored %d relationships", len(got))
	}
	if a := e.Account("t1"); a.ConnectionID != conn || a.LastRun != nil || a.IncrementalOff != "" || !a.DueHourly(merchantsync.Settings{Enabled: true, SyncEvery: merchantsync.SyncHourly}) {
		t.Fatalf("the new connection changed: %+v", a)
	}
}
