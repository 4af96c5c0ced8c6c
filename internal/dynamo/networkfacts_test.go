package dynamo_test

import (
	"testing"
	"time"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// TestNetworkFacts: what the network reported about a connection (auth
// mode, pull mode and when it was checked) is set by MarkConnected, kept or
// replaced by FinishRun under the connection fence, and never outlives its
// connection.
func TestNetworkFacts(t *testing.T) {
	e := setup(t)
	c := ctx(t)
	_, err := e.s.SaveIDs(c, "t", rk, "lMh2Xiq9xN0", "1234567", t0)
	must(t, err)
	checked := t0.Add(-time.Hour)
	_, err = e.s.MarkConnected(c, "t", rk, merchantsync.Connection{ID: "c1", SiteID: "1234567",
		Auth: merchantsync.AuthTokenKey, PullMode: merchantsync.PullByStatus, PullModeCheckedAt: checked}, t0)
	must(t, err)
	want := func(auth merchantsync.AuthMode, mode merchantsync.PullMode, at time.Time) {
		t.Helper()
		a, err := e.s.GetAccount(c, "t", rk)
		must(t, err)
		if a.Auth != auth || a.PullMode != mode || !a.PullModeCheckedAt.Equal(at) {
			t.Fatalf("account: auth %q mode %q checked %v, want %q %q %v", a.Auth, a.PullMode, a.PullModeCheckedAt, auth, mode, at)
		}
	}
	want(merchantsync.AuthTokenKey, merchantsync.PullByStatus, checked)

	finish := func(conn string, out merchantsync.RunOutcome) error {
		out.ConnectionID = conn
		run := merchantsync.Run{RunID: "r-" + conn + string(out.Auth), TenantID: "t", Network: rk, State: merchantsync.RunSucceeded, FinishedAt: t0}
		return e.s.FinishRun(c, run, out)
	}
	// A run that reports nothing keeps them; one that reports replaces them.
	must(t, finish("c1", merchantsync.RunOutcome{State: merchantsync.StateConnected, Succeeded: true}))
	want(merchantsync.AuthTokenKey, merchantsync.PullByStatus, checked)
	must(t, finish("c1", merchantsync.RunOutcome{Succeeded: true, Auth: merchantsync.AuthRefresh,
		PullMode: merchantsync.PullUnfiltered, PullModeCheckedAt: t0}))
	want(merchantsync.AuthRefresh, merchantsync.PullUnfiltered, t0)
	// A run of an ended connection writes none of it.
	wantCode(t, finish("c0", merchantsync.RunOutcome{Auth: merchantsync.AuthTokenKey, PullMode: merchantsync.PullByStatus}),
		merchantsync.EConnectionChanged)
	want(merchantsync.AuthRefresh, merchantsync.PullUnfiltered, t0)

	// A new connection starts from its own connect; a disconnect forgets.
	_, err = e.s.MarkConnected(c, "t", rk, merchantsync.Connection{ID: "c2", SiteID: "1234567"}, t0)
	must(t, err)
	want("", "", time.Time{})
	must(t, finish("c2", merchantsync.RunOutcome{Auth: merchantsync.AuthTokenKey, PullMode: merchantsync.PullUnfiltered, PullModeCheckedAt: t0}))
	must(t, e.s.MarkDisconnected(c, "t", rk, "c2", t0))
	want("", "", time.Time{})
}
