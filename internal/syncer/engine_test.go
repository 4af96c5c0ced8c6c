package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
)

// TestSyncFirstPullThenChanges: a baseline of 1,000 merchants, then ten
// status changes cost ten relationship writes and ten change events.
func TestSyncFirstPullThenChanges(t *testing.T) {
	e := newEnv(t)
	acct := e.connect("t1", 1000)

	run := e.sync("t1")
	if run.State != merchantsync.RunSucceeded || run.MerchantsSynced != 1000 {
		t.Fatalf("first sync: %+v", run)
	}
	if want := e.wantCounts(acct.SiteID); !equalCounts(run.Counts, want) {
		t.Fatalf("counts %v, sandbox says %v", run.Counts, want)
	}
	if run.Changes != 0 {
		t.Fatalf("the first pull is a baseline, got %d changes", run.Changes)
	}
	// Connecting checked the pull mode; its access token has expired by
	// the first sync, a day later, which mints one with the token key.
	if tok, pages := e.Sandbox.Calls(sandbox.EndpointToken), e.Sandbox.Calls(sandbox.EndpointPartnerships); tok != 1 || pages != 5 {
		t.Fatalf("rakuten calls: token %d partnerships %d, want 1 + 5", tok, pages)
	}
	if run.APICalls != 6 {
		t.Fatalf("run.APICalls = %d, want 6", run.APICalls)
	}
	if got := len(e.Relationships("t1")); got != 1000 {
		t.Fatalf("stored %d relationships", got)
	}
	a := e.Account("t1")
	if a.LastRun == nil || a.LastRun.RunID != run.RunID || !equalCounts(a.Counts, run.Counts) || a.LastSyncAt.IsZero() {
		t.Fatalf("account after sync: %+v", a)
	}
	if a.LeaseRunID != "" || a.ActiveRunID != "" {
		t.Fatalf("lease or active run left behind: %+v", a)
	}
	t.Logf("first sync of 1000: DynamoDB writes %v", e.writeOps())

	// Change ten statuses.
	ms := e.Sandbox.Merchants(acct.SiteID)
	changed := map[int64]string{}
	for _, m := range ms {
		if len(changed) == 10 {
			break
		}
		if m.Status == "active" {
			changed[m.MID] = "temp-remove"
		}
	}
	for mid, st := range changed {
		if err := e.Sandbox.SetStatus(acct.SiteID, mid, st); err != nil {
			t.Fatal(err)
		}
	}
	e.Sandbox.ResetCalls()
	e.DDBCalls.Reset()
	run2 := e.sync("t1")
	if run2.State != merchantsync.RunSucceeded || run2.Changes != 10 || run2.MerchantsSynced != 1000 {
		t.Fatalf("second sync: %+v", run2)
	}
	if tok, pages := e.Sandbox.Calls(sandbox.EndpointToken), e.Sandbox.Calls(sandbox.EndpointPartnerships); tok != 1 || pages != 5 {
		t.Fatalf("second sync rakuten calls: token %d partnerships %d, want 1 + 5 (the first sync kept no token)", tok, pages)
	}
	w := e.writeOps()
	t.Logf("10 changes: DynamoDB writes %v", w)
	// 10 change events, then 10 relationships, in transactions of their own
	// (a failed one must not leave a relationship updated without its
	// change event), each fenced by a check of the connection and lease;
	// then the finish: the run put and the account update (lease released)
	// in one transaction. Before that the run is created and marked
	// running (2 PutItem) and the lease taken (1 UpdateItem).
	if w["batchItems"] != 20+1 || w["TransactWriteItems"] != 2+1 {
		t.Fatalf("writes %v, want 10 changes and 10 relationships in 2 transactions, and the finish's", w)
	}
	if w["PutItem"] != 2 || w["UpdateItem"] != 1 || w["DeleteItem"] != 0 || w["BatchWriteItem"] != 0 {
		t.Fatalf("run/account writes %v, want 2 PutItem (run created, running), 1 UpdateItem (lease taken)", w)
	}
	if acct, err := e.Store.GetAccount(e.Ctx, "t1", network); err != nil || acct.LeaseRunID != "" {
		t.Fatalf("lease after the run: %+v %v, want released", acct, err)
	}
	changes, _, err := e.Store.ListChanges(e.Ctx, "t1", network, time.Time{}, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 10 {
		t.Fatalf("stored %d changes, want 10", len(changes))
	}
	for _, c := range changes {
		if _, ok := changed[c.AdvertiserID]; !ok || c.From != merchantsync.StatusJoined || c.To != merchantsync.StatusRemoved ||
			c.RawFrom != "active" || c.RawTo != "temp-remove" || c.RunID != run2.RunID {
			t.Fatalf("unexpected change %+v", c)
		}
	}
	if want := e.wantCounts(acct.SiteID); !equalCounts(run2.Counts, want) {
		t.Fatalf("counts %v, sandbox says %v", run2.Counts, want)
	}

	// Nothing changed: nothing but the run and account items is written
	// (the finish transaction's run put).
	e.DDBCalls.Reset()
	run3 := e.sync("t1")
	if run3.Changes != 0 || e.DDBCalls.WriteItems() != 1 || e.DDBCalls.Op("TransactWriteItems") != 1 {
		t.Fatalf("unchanged sync put %d items in %d transactions: %+v", e.DDBCalls.WriteItems(), e.DDBCalls.Op("TransactWriteItems"), run3)
	}

	// Syncs on the token key stored nothing; once Rakuten refuses the
	// token key, the refresh chain rotates the refresh token and saves it.
	sec, err := e.Credentials("t1")
	if err != nil || sec.RefreshToken == "" {
		t.Fatalf("secret after sync: %v %v", sec, err)
	}
	e.Sandbox.SetTokenKeyEnabled(false)
	e.Sandbox.ExpireAccessTokens()
	e.Sandbox.ResetCalls()
	run4 := e.sync("t1")
	if run4.State != merchantsync.RunSucceeded || e.Sandbox.Calls(sandbox.EndpointToken) != 2 {
		t.Fatalf("sync with the rotated refresh token: %+v, token calls %d", run4, e.Sandbox.Calls(sandbox.EndpointToken))
	}
	sec2, _ := e.Credentials("t1")
	if sec2.RefreshToken == sec.RefreshToken {
		t.Fatal("refresh token not rotated in Secrets Manager")
	}
	assertNoLeaks(t, e)
	checkEMF(t, e.metrics.String(), "t1")
	for _, attr := range []string{`"tenant_id":"t1"`, `"run_id":"` + run2.RunID + `"`, `"trigger":"manual"`, `"network":"rakuten"`, `"mode":"full"`} {
		if !strings.Contains(e.Logs.String(), attr) {
			t.Errorf("logs lack %s", attr)
		}
	}
}

// assertNoLeaks: no secret value in any DynamoDB item, log line or metric.
func assertNoLeaks(t *testing.T, e *env) {
	t.Helper()
	items := e.ScanTable()
	logs := e.Logs.String()
	metrics := e.metrics.String()
	vals := e.SecretValues()
	if len(vals) < 4 {
		t.Fatalf("leak check has only %d values to look for", len(vals))
	}
	for _, v := range vals {
		if strings.Contains(items, v) {
			t.Errorf("secret value found in a DynamoDB item")
		}
		if strings.Contains(logs, v) {
			t.Errorf("secret value found in the logs")
		}
		if strings.Contains(metrics, v) {
			t.Errorf("secret value found in the metrics")
		}
	}
}

func findRel(rs []merchantsync.Relationship, mid int64) *merchantsync.Relationship {
	for i := range rs {
		if rs[i].AdvertiserID == mid {
			return &rs[i]
		}
	}
	return nil
}

// TestSyncVanishingMerchant: removed only on the third missed pull.
func TestSyncVanishingMerchant(t *testing.T) {
	e := newEnv(t)
	acct := e.connect("t1", 50)
	first := e.sync("t1")
	var mid int64
	for _, m := range e.Sandbox.Merchants(acct.SiteID) {
		if m.Status == "active" {
			mid = m.MID
			break
		}
	}
	e.Sandbox.RemoveMerchant(acct.SiteID, mid)
	for i := 1; i <= 4; i++ {
		run := e.sync("t1")
		r := findRel(e.Relationships("t1"), mid)
		if r == nil {
			t.Fatalf("miss %d: relationship deleted", i)
		}
		switch {
		case i < 3:
			if r.Status != merchantsync.StatusJoined || r.MissedPulls != i || run.Changes != 0 {
				t.Fatalf("miss %d: %+v, run changes %d", i, r, run.Changes)
			}
			if !r.LastSeenAt.Equal(first.FinishedAt) && i == 1 {
				// LastSeenAt is the last pull that had it: the account's LastSyncAt then.
				t.Logf("LastSeenAt %v, first run finished %v", r.LastSeenAt, first.FinishedAt)
			}
		case i == 3:
			if r.Status != merchantsync.StatusRemoved || r.RawStatus != RawMissing || run.Changes != 1 {
				t.Fatalf("miss 3: %+v, run changes %d", r, run.Changes)
			}
			if run.Counts[merchantsync.StatusRemoved] != first.Counts[merchantsync.StatusRemoved]+1 {
				t.Fatalf("counts after removal %v (before %v)", run.Counts, first.Counts)
			}
		default:
			if run.Changes != 0 || r.MissedPulls != 3 {
				t.Fatalf("miss 4: %+v changes %d", r, run.Changes)
			}
		}
	}
	// It comes back: joined again, one change.
	e.Sandbox.AddMerchant(acct.SiteID, sandbox.Merchant{MID: mid, Network: 1, Name: "Back", Status: "active", AdvertiserStatus: "active"})
	run := e.sync("t1")
	r := findRel(e.Relationships("t1"), mid)
	if r.Status != merchantsync.StatusJoined || r.MissedPulls != 0 || run.Changes != 1 {
		t.Fatalf("back: %+v changes %d", r, run.Changes)
	}
}

// TestSyncSuspiciousEmptyPull: an empty pull removes nothing.
func TestSyncSuspiciousEmptyPull(t *testing.T) {
	e := newEnv(t)
	acct := e.connect("t1", 30)
	e.sync("t1")
	before := e.Relationships("t1")
	for _, m := range e.Sandbox.Merchants(acct.SiteID) {
		e.Sandbox.RemoveMerchant(acct.SiteID, m.MID)
	}
	for range 3 {
		run := e.sync("t1")
		if run.State != merchantsync.RunFailed || run.Error == nil || run.Error.Code != merchantsync.ENetworkUnavailable {
			t.Fatalf("empty pull: %+v", run)
		}
	}
	if after := e.Relationships("t1"); !reflect.DeepEqual(before, after) {
		t.Fatal("an empty pull changed stored relationships")
	}
	if a := e.Account("t1"); a.State != merchantsync.StateError || a.LeaseRunID != "" {
		t.Fatalf("account after empty pull: %+v", a)
	}
}

// TestSyncFaults: every Rakuten fault ends in a succeeded run or a clean
// failed one, and a failed run leaves every stored relationship intact.
func TestSyncFaults(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name    string
		arrange func(a sandbox.Account)
		ctx     func() (context.Context, context.CancelFunc)
		state   merchantsync.RunState
		code    string
		acct    merchantsync.ConnectionState
	}{
		{name: "401 expiry mid-paging", arrange: func(a sandbox.Account) {
			f := sandbox.ExpiredTokenFault()
			f.AfterCalls = 2
			e.Sandbox.Inject(f)
		}, state: merchantsync.RunSucceeded},
		{name: "throttle 403", arrange: func(a sandbox.Account) {
			f := sandbox.ThrottleFault403()
			f.Times, f.AfterCalls = 3, 1
			e.Sandbox.Inject(f)
		}, state: merchantsync.RunSucceeded},
		{name: "throttle 429", arrange: func(a sandbox.Account) {
			f := sandbox.Throttle429()
			f.Times = 2
			e.Sandbox.Inject(f)
		}, state: merchantsync.RunSucceeded},
		{name: "throttle 503", arrange: func(a sandbox.Account) {
			f := sandbox.Unavailable503XML()
			f.Times, f.AfterCalls = 2, 3
			e.Sandbox.Inject(f)
		}, state: merchantsync.RunSucceeded},
		{name: "500 twice", arrange: func(a sandbox.Account) {
			f := sandbox.ServerError500JSON()
			f.Times, f.AfterCalls = 2, 1
			e.Sandbox.Inject(f)
		}, state: merchantsync.RunSucceeded},
		{name: "500 for good", arrange: func(a sandbox.Account) {
			f := sandbox.ServerError500JSON()
			f.Times, f.AfterCalls = -1, 2
			e.Sandbox.Inject(f)
		}, state: merchantsync.RunFailed, code: merchantsync.ENetworkUnavailable, acct: merchantsync.StateError},
		{name: "throttled for good", arrange: func(a sandbox.Account) {
			f := sandbox.ThrottleFault403()
			f.Times, f.AfterCalls = -1, 1
			e.Sandbox.Inject(f)
		}, state: merchantsync.RunFailed, code: merchantsync.ENetworkUnavailable, acct: merchantsync.StateError},
		{name: "malformed page", arrange: func(a sandbox.Account) {
			f := sandbox.MalformedJSON()
			f.AfterCalls = 3
			e.Sandbox.Inject(f)
		}, state: merchantsync.RunFailed, code: merchantsync.ENetworkUnavailable, acct: merchantsync.StateError},
		{name: "html page", arrange: func(a sandbox.Account) {
			f := sandbox.HTMLErrorPage()
			f.AfterCalls = 1
			e.Sandbox.Inject(f)
		}, state: merchantsync.RunFailed, code: merchantsync.ENetworkUnavailable, acct: merchantsync.StateError},
		{name: "entitlement", arrange: func(a sandbox.Account) {
			e.Sandbox.Inject(sandbox.EntitlementFault403())
		}, state: merchantsync.RunFailed, code: merchantsync.ENetworkAuthFailed, acct: merchantsync.StateError},
		{name: "slow past the deadline", arrange: func(a sandbox.Account) {
			e.Sandbox.Inject(sandbox.Fault{Endpoint: sandbox.EndpointPartnerships, AfterCalls: 2, Delay: time.Minute})
		}, ctx: func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 3*time.Second) // FinishReserve 2s: the pull gets ~1s
		}, state: merchantsync.RunFailed, code: merchantsync.ENetworkUnavailable, acct: merchantsync.StateError},
		{name: "refresh refused, token key works", arrange: func(a sandbox.Account) {
			e.Sandbox.ExpireAccessTokens()
			e.Sandbox.RevokeRefreshTokens(a.SiteID)
		}, state: merchantsync.RunSucceeded},
		{name: "refresh and token key refused", arrange: func(a sandbox.Account) {
			e.Sandbox.ExpireAccessTokens()
			e.Sandbox.RevokeRefreshTokens(a.SiteID)
			e.Sandbox.SetTokenKeyEnabled(false)
		}, state: merchantsync.RunFailed, code: merchantsync.EReauthRequired, acct: merchantsync.StateReauthRequired},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tenant := "fault" + string(rune('a'+i))
			a := e.connect(tenant, 700) // 4 pages
			base := e.sync(tenant)
			if base.State != merchantsync.RunSucceeded {
				t.Fatalf("baseline: %+v", base)
			}
			// Some changes that a failed run must not apply.
			n := 0
			for _, m := range e.Sandbox.Merchants(a.SiteID) {
				if n < 5 && m.Status != "permanent-remove" {
					_ = e.Sandbox.SetStatus(a.SiteID, m.MID, "permanent-remove")
					n++
				}
			}
			before := e.Relationships(tenant)
			e.Sandbox.ResetCalls()
			tc.arrange(a)
			t.Cleanup(func() { e.Sandbox.ClearFaults(); e.Sandbox.SetTokenKeyEnabled(true) })

			ctx, cancel := context.WithCancel(context.Background())
			if tc.ctx != nil {
				ctx, cancel = tc.ctx()
			}
			defer cancel()
			eng := *e.engine
			eng.FinishReserve = 2 * time.Second
			e.Clock.Advance(24 * time.Hour)
			run, err := eng.Sync(ctx, manual(tenant, e.Clock.Now()))
			if err != nil {
				t.Fatalf("Sync: %v", err)
			}
			if run.State != tc.state {
				t.Fatalf("state %s, want %s: %+v %+v", run.State, tc.state, run, run.Error)
			}
			stored, _ := e.Store.GetRun(e.Ctx, tenant, network, run.RunID)
			if stored == nil || stored.State != run.State {
				t.Fatalf("stored run %+v", stored)
			}
			acct := e.Account(tenant)
			if acct.LeaseRunID != "" {
				t.Fatalf("lease left behind: %+v", acct)
			}
			after := e.Relationships(tenant)
			if run.State == merchantsync.RunFailed {
				if run.Error == nil || run.Error.Code != tc.code || run.Error.Message == "" {
					t.Fatalf("error %+v, want code %s", run.Error, tc.code)
				}
				if acct.State != tc.acct {
					t.Fatalf("account state %s, want %s", acct.State, tc.acct)
				}
				if !reflect.DeepEqual(before, after) {
					t.Fatal("a failed run changed stored relationships")
				}
				if acct.LastSyncAt != base.FinishedAt && !acct.LastSyncAt.Equal(base.FinishedAt) {
					t.Fatalf("failed run moved LastSyncAt")
				}
				t.Logf("failed cleanly: %s: %s", run.Error.Code, run.Error.Message)
			} else {
				if run.Changes != 5 || run.MerchantsSynced != 700 || !equalCounts(run.Counts, e.wantCounts(a.SiteID)) {
					t.Fatalf("succeeded run %+v", run)
				}
				if acct.State != merchantsync.StateConnected {
					t.Fatalf("account state %s", acct.State)
				}
				t.Logf("succeeded: rakuten calls %d (token %d, partnerships %d)", run.APICalls,
					e.Sandbox.Calls(sandbox.EndpointToken), e.Sandbox.Calls(sandbox.EndpointPartnerships))
			}
			if tc.acct == merchantsync.StateReauthRequired {
				due := 0
				for shard := range 16 {
					_, _ = e.Store.QueryDue(e.Ctx, shard, func(p []merchantsync.AccountKey) error {
						for _, d := range p {
							if d.TenantID == tenant {
								due++
							}
						}
						return nil
					})
				}
				if due != 0 {
					t.Fatal("a reauth_required account is still due")
				}
			}
		})
	}
	assertNoLeaks(t, e)
}

// TestSyncInternalFaultsResume: DynamoDB or Secrets Manager failing makes the
// message retryable, and the redelivery resumes the same run.
func TestSyncInternalFaultsResume(t *testing.T) {
	e := newEnv(t)
	e.connect("t1", 300)
	e.sync("t1")
	before := e.Relationships("t1")

	for _, tc := range []struct {
		name   string
		inject func()
		change bool // a merchant changes, so relationships are written before the finish
	}{
		{"secrets manager down", func() { e.SMFail.Fail("GetSecretValue", "InternalServiceError", 3) }, true},
		{"dynamodb throttling the writes", func() { e.DDBFaults.Throttle("TransactWriteItems", 3) }, true},
		{"dynamodb throttling the finish", func() { e.DDBFaults.Throttle("TransactWriteItems", 3) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.Clock.Advance(24 * time.Hour)
			if tc.change {
				ms := e.Sandbox.Merchants(e.Tenant("t1").SiteID)
				_ = e.Sandbox.SetStatus(e.Tenant("t1").SiteID, ms[len(ms)-1].MID, "self-removed-"+tc.name[:3])
			}
			req := manual("t1", e.Clock.Now())
			tc.inject()
			run, err := e.engine.Sync(e.Ctx, req)
			if err == nil || !IsRetryable(err) {
				t.Fatalf("want a retryable error, got %v (%+v)", err, run)
			}
			stored, _ := e.Store.GetRun(e.Ctx, "t1", network, req.RunID)
			if stored == nil || stored.State.Finished() {
				t.Fatalf("run after an internal fault: %+v", stored)
			}
			if a := e.Account("t1"); a.LeaseRunID != "" {
				t.Fatalf("lease not released after an internal fault: %+v", a)
			}
			if !reflect.DeepEqual(before, e.Relationships("t1")) && tc.name == "secrets manager down" {
				t.Fatal("relationships changed by a run that could not read its secret")
			}
			// Redelivery: the same run resumes and succeeds.
			run, err = e.engine.Sync(e.Ctx, req)
			if err != nil || run.State != merchantsync.RunSucceeded || run.RunID != req.RunID {
				t.Fatalf("redelivery: %+v %v", run, err)
			}
			before = e.Relationships("t1")
		})
	}
}

// TestSyncDuplicateDelivery: the same message twice syncs once.
func TestSyncDuplicateDelivery(t *testing.T) {
	e := newEnv(t)
	e.connect("t1", 400)
	e.Clock.Advance(time.Hour)
	req := scheduled("t1", "sched-1", e.Clock.Now())
	run1, err := e.engine.Sync(e.Ctx, req)
	if err != nil || run1.State != merchantsync.RunSucceeded {
		t.Fatalf("first delivery: %+v %v", run1, err)
	}
	calls := e.Sandbox.Calls(sandbox.EndpointPartnerships)
	run2, err := e.engine.Sync(e.Ctx, req)
	if err != nil || run2.State != merchantsync.RunSucceeded || run2.RunID != run1.RunID {
		t.Fatalf("second delivery: %+v %v", run2, err)
	}
	if got := e.Sandbox.Calls(sandbox.EndpointPartnerships); got != calls {
		t.Fatalf("second delivery called Rakuten: %d → %d", calls, got)
	}
	if a := e.Account("t1"); a.LastScheduledRunID != "sched-1" {
		t.Fatalf("LastScheduledRunID %q", a.LastScheduledRunID)
	}
	// Another run id for the same schedule run (a scheduler retry that
	// computed another time) is skipped too.
	req2 := scheduled("t1", "sched-1", e.Clock.Now().Add(time.Minute))
	run3, err := e.engine.Sync(e.Ctx, req2)
	if err != nil || run3.State != merchantsync.RunSkipped || e.Sandbox.Calls(sandbox.EndpointPartnerships) != calls {
		t.Fatalf("same schedule, other run id: %+v %v", run3, err)
	}
}

// TestSyncConcurrentDuplicates: concurrent deliveries of one message sync once.
func TestSyncConcurrentDuplicates(t *testing.T) {
	e := newEnv(t)
	e.connect("t1", 400) // 2 pages
	e.Clock.Advance(time.Hour)
	req := scheduled("t1", "sched-c", e.Clock.Now())
	const n = 6
	var wg sync.WaitGroup
	runs := make([]merchantsync.Run, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { runs[i], errs[i] = e.engine.Sync(e.Ctx, req) })
	}
	wg.Wait()
	succeeded, retry := 0, 0
	for i := range n {
		switch {
		case errs[i] != nil && IsRetryable(errs[i]):
			retry++
		case errs[i] != nil:
			t.Fatalf("delivery %d: %v", i, errs[i])
		case runs[i].State == merchantsync.RunSucceeded:
			succeeded++
		default:
			t.Fatalf("delivery %d: %+v", i, runs[i])
		}
	}
	if got := e.Sandbox.Calls(sandbox.EndpointPartnerships); got != 2 {
		t.Fatalf("%d partnerships calls for %d concurrent deliveries, want 2 (one sync)", got, n)
	}
	// The returned messages come back later: all duplicates now.
	for range retry {
		run, err := e.engine.Sync(e.Ctx, req)
		if err != nil || run.State != merchantsync.RunSucceeded {
			t.Fatalf("redelivery: %+v %v", run, err)
		}
	}
	if got := e.Sandbox.Calls(sandbox.EndpointPartnerships); got != 2 {
		t.Fatalf("redeliveries synced again: %d calls", got)
	}
	t.Logf("%d deliveries: %d returned the finished run, %d asked for redelivery", n, succeeded, retry)
}

// TestSyncManualRacingScheduled: the manual run joins the scheduled one.
func TestSyncManualRacingScheduled(t *testing.T) {
	e := newEnv(t)
	e.connect("t1", 400)
	e.Clock.Advance(time.Hour)
	sreq := scheduled("t1", "sched-r", e.Clock.Now())

	e.gate.Close()
	done := make(chan struct{})
	var srun merchantsync.Run
	var serr error
	go func() {
		defer close(done)
		srun, serr = e.engine.Sync(e.Ctx, sreq)
	}()
	<-e.gate.Arrived() // the scheduled sync holds the lease and is pulling

	// The API queues a manual run (StartManualRun), then the worker gets it.
	mrun, isNew, err := e.Store.StartManualRun(e.Ctx, merchantsync.Run{
		RunID: merchantsync.NewRunID(e.Clock.Now()), TenantID: "t1", Network: network, Trigger: merchantsync.TriggerManual,
	}, e.Clock.Now())
	if err != nil || !isNew {
		t.Fatalf("StartManualRun: %v %v", isNew, err)
	}
	got, err := e.engine.Sync(e.Ctx, merchantsync.SyncRequest{TenantID: "t1", Network: network, RunID: mrun.RunID, Trigger: merchantsync.TriggerManual})
	if err != nil || got.State != merchantsync.RunSkipped || got.JoinedRunID != sreq.RunID {
		t.Fatalf("manual run: %+v %v, want skipped joining %s", got, err, sreq.RunID)
	}
	e.gate.Open()
	<-done
	if serr != nil || srun.State != merchantsync.RunSucceeded {
		t.Fatalf("scheduled run: %+v %v", srun, serr)
	}
	if calls := e.Sandbox.Calls(sandbox.EndpointPartnerships); calls != 2 {
		t.Fatalf("%d partnerships calls, want 2 (one sync)", calls)
	}
	stored, _ := e.Store.GetRun(e.Ctx, "t1", network, mrun.RunID)
	if stored == nil || stored.State != merchantsync.RunSkipped {
		t.Fatalf("stored manual run %+v", stored)
	}
	if stored.JoinedRunID != sreq.RunID {
		t.Errorf("stored manual run lost JoinedRunID (%q): dynamo's run item has no joinedRunId attribute", stored.JoinedRunID)
	}
}

// TestSyncSkips: nothing to sync → skipped, no Rakuten call.
func TestSyncSkips(t *testing.T) {
	e := newEnv(t)
	e.connect("t1", 10)
	if err := e.Store.MarkDisconnected(e.Ctx, "t1", network, e.Account("t1").ConnectionID, e.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	run, err := e.engine.Sync(e.Ctx, manual("t1", e.Clock.Now()))
	if err != nil || run.State != merchantsync.RunSkipped || run.Error == nil || run.Error.Code != merchantsync.ENotConnected {
		t.Fatalf("disconnected: %+v %v", run, err)
	}
	run, err = e.engine.Sync(e.Ctx, scheduled("nobody", "s", e.Clock.Now()))
	if err != nil || run.State != merchantsync.RunSkipped {
		t.Fatalf("no account: %+v %v", run, err)
	}
	if e.Sandbox.Calls(sandbox.EndpointPartnerships)+e.Sandbox.Calls(sandbox.EndpointToken) != 0 {
		t.Fatal("a skipped run called Rakuten")
	}
	_, err = e.engine.Sync(e.Ctx, merchantsync.SyncRequest{TenantID: "t1", Network: "nope", RunID: "x", Trigger: merchantsync.TriggerManual})
	if err == nil || IsRetryable(err) {
		t.Fatalf("invalid request: %v", err)
	}
	var me *merchantsync.Error
	if !errors.As(err, &me) {
		t.Fatalf("invalid request error %T", err)
	}
}

// checkEMF parses the EMF lines: valid documents, the tenant a property and
// never a dimension, a SyncsSucceeded metric present.
func checkEMF(t *testing.T, out, tenant string) {
	t.Helper()
	succeeded := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var doc map[string]any
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			t.Fatalf("EMF line %q: %v", line, err)
		}
		aws, _ := doc["_aws"].(map[string]any)
		cwm, _ := aws["CloudWatchMetrics"].([]any)
		if len(cwm) != 1 {
			t.Fatalf("EMF line without CloudWatchMetrics: %s", line)
		}
		def := cwm[0].(map[string]any)
		for _, set := range def["Dimensions"].([]any) {
			for _, d := range set.([]any) {
				if d == "tenant_id" {
					t.Fatalf("tenant id is a dimension: %s", line)
				}
			}
		}
		for _, m := range def["Metrics"].([]any) {
			name := m.(map[string]any)["Name"].(string)
			if _, ok := doc[name]; !ok {
				t.Fatalf("metric %s without a value: %s", name, line)
			}
		}
		if doc["tenant_id"] != tenant {
			t.Fatalf("tenant property %v: %s", doc["tenant_id"], line)
		}
		if v, ok := doc[MetricSyncsSucceeded].(float64); ok {
			succeeded += int(v)
		}
	}
	if succeeded == 0 {
		t.Fatalf("no SyncsSucceeded metric in %s", out)
	}
}
