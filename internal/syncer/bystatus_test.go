package syncer

import (
	"net/http/httptest"
	"testing"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/rakuten"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
)

// TestPullByStatusAfterAnActiveOnlyAPI runs the story of a forced
// unfiltered pull (RAKUTEN_PULL_MODE=unfiltered, which skips the self-check
// of auto mode): against an API whose unfiltered call returns only active
// partnerships, the other merchants never appear, and one declined since
// the baseline is looked up (not called removed after three misses);
// switching the client to PullByStatus brings every merchant in.
func TestPullByStatusAfterAnActiveOnlyAPI(t *testing.T) {
	e := newEnv(t)
	sb := sandbox.New(sandbox.Options{UnfilteredActiveOnly: true})
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	e.Sandbox, e.sim = sb, sb
	e.useRakuten(e.RakutenClient(srv.URL, func(c *rakuten.Config) { c.PullMode = rakuten.ModeUnfiltered }))
	acct := e.connect("t1", 300)
	counts := sb.CountsByStatus(acct.SiteID)

	run := e.sync("t1")
	if run.State != merchantsync.RunSucceeded || run.MerchantsSynced != counts[sandbox.StatusActive] {
		t.Fatalf("unfiltered sync against an active-only API: %+v, want the %d active merchants", run, counts[sandbox.StatusActive])
	}
	var declined int64
	for _, m := range sb.Merchants(acct.SiteID) {
		if m.Status == sandbox.StatusActive {
			declined = m.MID
			break
		}
	}
	if err := sb.SetStatus(acct.SiteID, declined, sandbox.StatusTempDecline); err != nil {
		t.Fatal(err)
	}
	for range merchantsync.MissesBeforeRemoved {
		if run = e.sync("t1"); run.State != merchantsync.RunSucceeded {
			t.Fatalf("sync: %+v", run)
		}
	}
	var r merchantsync.Relationship
	for _, x := range e.Relationships("t1") {
		if x.AdvertiserID == declined {
			r = x
		}
	}
	// Missing from the listing, it is looked up (GET /v1/partnerships/{mid})
	// rather than called removed after three misses.
	if r.Status != merchantsync.StatusDeclined || r.RawStatus != sandbox.StatusTempDecline || r.MissedPulls != 0 {
		t.Fatalf("declined merchant after %d unfiltered syncs: %+v, want declined (looked up)", merchantsync.MissesBeforeRemoved, r)
	}

	e.useRakuten(rakuten.New(rakuten.Config{BaseURL: srv.URL, RequestsPerMinute: -1, PullByStatus: true}))
	since := e.Clock.Now()
	run = e.sync("t1")
	if run.State != merchantsync.RunSucceeded || run.MerchantsSynced != 300 || !equalCounts(run.Counts, e.wantCounts(acct.SiteID)) {
		t.Fatalf("by-status sync: %+v, want all 300 with the sandbox's counts %v", run, e.wantCounts(acct.SiteID))
	}
	changes, _, err := e.Store.ListChanges(e.Ctx, "t1", network, since, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 0 || run.Changes != 0 {
		t.Fatalf("changes %+v (run says %d), want none: the looked-up merchant was right already", changes, run.Changes)
	}
	if n := len(e.Relationships("t1")); n != 300 {
		t.Fatalf("%d relationships stored, want 300", n)
	}
}
