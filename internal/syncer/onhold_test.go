package syncer

import (
	"testing"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/rakuten"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
)

// rel returns the tenant's stored relationship with mid.
func (e *env) rel(tenant string, mid int64) merchantsync.Relationship {
	e.T.Helper()
	for _, r := range e.Relationships(tenant) {
		if r.AdvertiserID == mid {
			return r
		}
	}
	e.T.Fatalf("no relationship with %d", mid)
	return merchantsync.Relationship{}
}

// activeMIDs returns the first n active merchants of a site.
func activeMIDs(sb *sandbox.Server, site string, n int) []int64 {
	var out []int64
	for _, m := range sb.Merchants(site) {
		if m.Status == sandbox.StatusActive && m.AdvertiserStatus == "active" && len(out) < n {
			out = append(out, m.MID)
		}
	}
	return out
}

// TestProgramOnHoldIsNotRemoved: a program on hold vanishes from Rakuten's
// listing. Looked up, its partnership is still there, program inactive: it
// keeps its status with programStatus inactive, however many syncs pass,
// and no change says the publisher was removed. A merchant whose
// partnership is really gone (404) is still called removed after three
// misses.
func TestProgramOnHoldIsNotRemoved(t *testing.T) {
	e := newEnv(t)
	acct := e.connect("t1", 60)
	e.sync("t1")
	mids := activeMIDs(e.Sandbox, acct.SiteID, 2)
	held, gone := mids[0], mids[1]
	e.Sandbox.SetOnHold(acct.SiteID, held, true)
	e.Sandbox.RemoveMerchant(acct.SiteID, gone)

	for i := range merchantsync.MissesBeforeRemoved + 1 {
		e.Sandbox.ResetCalls()
		run := e.sync("t1")
		if run.State != merchantsync.RunSucceeded || e.Sandbox.Calls(sandbox.EndpointPartnership) != 2 && i < merchantsync.MissesBeforeRemoved {
			t.Fatalf("sync %d: %s with %d lookups, want both missing merchants looked up", i+1, run.State, e.Sandbox.Calls(sandbox.EndpointPartnership))
		}
	}
	r := e.rel("t1", held)
	if r.Status != merchantsync.StatusJoined || r.RawStatus != sandbox.StatusActive || r.ProgramStatus != "inactive" || r.MissedPulls != 0 {
		t.Fatalf("merchant on hold: %+v, want joined (active) with programStatus inactive and no miss", r)
	}
	if g := e.rel("t1", gone); g.Status != merchantsync.StatusRemoved || g.RawStatus != RawMissing {
		t.Fatalf("merchant gone: %+v, want removed (missing)", g)
	}
	changes, _, err := e.Store.ListChanges(e.Ctx, "t1", network, e.Account("t1").ConnectedAt, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].AdvertiserID != gone {
		t.Fatalf("changes %+v, want only the gone merchant's", changes)
	}
	if e.Sandbox.Calls(sandbox.EndpointPartnership) != 1 {
		t.Fatalf("%d lookups once the gone merchant is removed, want 1 (the one on hold)", e.Sandbox.Calls(sandbox.EndpointPartnership))
	}

	e.Sandbox.SetOnHold(acct.SiteID, held, false)
	e.Sandbox.ResetCalls()
	e.sync("t1")
	if r := e.rel("t1", held); r.ProgramStatus != "active" || e.Sandbox.Calls(sandbox.EndpointPartnership) != 0 {
		t.Fatalf("off hold: %+v after %d lookups, want program active, no lookup", r, e.Sandbox.Calls(sandbox.EndpointPartnership))
	}
}

// TestLookupsAreBounded: at most MaxLookups merchants are looked up per
// pull; the others are not counted missing, so a listing that leaves out
// many merchants at once calls none of them removed.
func TestLookupsAreBounded(t *testing.T) {
	e := newEnv(t)
	e.network(func(n *rakuten.Network) { n.MaxLookups = 2 })
	acct := e.connect("t1", 60)
	e.sync("t1")
	mids := activeMIDs(e.Sandbox, acct.SiteID, 5)
	for _, mid := range mids {
		e.Sandbox.RemoveMerchant(acct.SiteID, mid)
	}
	e.Sandbox.ResetCalls()
	run := e.sync("t1")
	if run.State != merchantsync.RunSucceeded || e.Sandbox.Calls(sandbox.EndpointPartnership) != 2 {
		t.Fatalf("sync: %s with %d lookups, want 2", run.State, e.Sandbox.Calls(sandbox.EndpointPartnership))
	}
	missed := 0
	for _, mid := range mids {
		missed += e.rel("t1", mid).MissedPulls
	}
	if missed != 2 {
		t.Fatalf("%d misses counted, want 2: only the merchants looked up (and found gone)", missed)
	}
}
