package dynamo_test

import (
	"context"
	"slices"
	"sort"
	"testing"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// hourly lists the accounts EachDueHourly reads.
func (e *env) hourly(t testing.TB) []string {
	t.Helper()
	var out []string
	_, err := e.s.EachDueHourly(context.Background(), func(page []merchantsync.AccountKey) error {
		for _, d := range page {
			out = append(out, d.TenantID+"/"+d.Network)
		}
		return nil
	})
	must(t, err)
	sort.Strings(out)
	return out
}

// TestHourlyDueKeys: the hourly schedule's accounts are exactly the due
// accounts of tenants on syncEvery "1h" whose incremental pulls work; every
// one of them stays due for the daily schedule too, and a fallback, a
// switch back, a disconnect or reauth_required takes it out.
func TestHourlyDueKeys(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := ctx(t)
	every := func(tenant string, ev merchantsync.SyncEvery) func() error {
		return func() error {
			return e.s.PutSettings(c, merchantsync.Settings{TenantID: tenant, Enabled: true, SyncEvery: ev})
		}
	}
	for _, tn := range []string{"t1", "t2", "t3"} {
		connected(t, e.s, tn)
	}
	all := []string{"t1/rakuten", "t2/rakuten", "t3/rakuten"}
	steps := []struct {
		name         string
		do           func() error
		hourly, full []string
	}{
		{"all daily", func() error { return nil }, nil, all},
		{"t1 hourly", every("t1", merchantsync.SyncHourly), []string{"t1/rakuten"}, all},
		{"t2 hourly", every("t2", merchantsync.SyncHourly), []string{"t1/rakuten", "t2/rakuten"}, all},
		{"t2 back to daily", every("t2", merchantsync.SyncDaily), []string{"t1/rakuten"}, all},
		{"t1 incremental off", func() error {
			return e.s.FinishRun(c, run("t1", "r-off", merchantsync.RunSkipped), merchantsync.RunOutcome{ConnectionID: conn, IncrementalOff: "refused"})
		}, nil, all},
		{"settings saved again keep t1 off", every("t1", merchantsync.SyncHourly), nil, all},
		{"reconnect tries again", func() error { return connect(c, e.s, "t1", conn+"2", "", "") }, []string{"t1/rakuten"}, all},
		{"t3 hourly then reauth_required", func() error {
			must(t, every("t3", merchantsync.SyncHourly)())
			return e.s.FinishRun(c, run("t3", "r-reauth", merchantsync.RunFailed), merchantsync.RunOutcome{ConnectionID: conn, State: merchantsync.StateReauthRequired})
		}, []string{"t1/rakuten"}, []string{"t1/rakuten", "t2/rakuten"}},
		{"disconnect", func() error { return e.s.MarkDisconnected(c, "t1", rk, conn+"2", t0) }, nil, []string{"t2/rakuten"}},
	}
	for _, st := range steps {
		must(t, st.do())
		if got := e.hourly(t); !slices.Equal(got, st.hourly) {
			t.Fatalf("%s: hourly = %v, want %v", st.name, got, st.hourly)
		}
		if got := e.due(t); !slices.Equal(got, st.full) {
			t.Fatalf("%s: due = %v, want %v", st.name, got, st.full)
		}
	}
	if st, err := e.s.GetSettings(c, "t2"); err != nil || st.SyncEvery != merchantsync.SyncDaily {
		t.Fatalf("settings %+v %v", st, err)
	}
	if st, err := e.s.GetSettings(c, "never-saved"); err != nil || st.SyncEvery != merchantsync.SyncDaily {
		t.Fatalf("default settings %+v %v", st, err)
	}
	wantCode(t, e.s.PutSettings(c, merchantsync.Settings{TenantID: "t2", Enabled: true, SyncEvery: "2h"}), merchantsync.EInvalid)
}
