package rakuten_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/merchantsync/merchantsync/internal/rakuten"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
)

// TestCheckModes: nine limit=1 requests; by status only when the
// unfiltered listing holds fewer than the statuses together.
func TestCheckModes(t *testing.T) {
	for _, activeOnly := range []bool{false, true} {
		e := newEnvWith(t, sandbox.Options{UnfilteredActiveOnly: activeOnly})
		e.sb.SeedMerchants(account.SiteID, 500, 8)
		ts, _ := e.source(t, e.login(t))
		got, st, err := e.c.CheckModes(context.Background(), ts)
		if err != nil || st.Calls != 9 || e.sb.Calls(sandbox.EndpointPartnerships) != 9 {
			t.Fatalf("check: %v in %d calls", err, st.Calls)
		}
		want, mode := 500, rakuten.ModeUnfiltered
		if activeOnly {
			want, mode = e.sb.CountsByStatus(account.SiteID)[sandbox.StatusActive], rakuten.ModeByStatus
		}
		if got.Unfiltered != want || got.ByStatus != 500 || got.Choose() != mode {
			t.Fatalf("active only %t: %+v chooses %s, want %d unfiltered, 500 by status, %s", activeOnly, got, got.Choose(), want, mode)
		}
	}
}

// TestCheckModesRefusedFilter: a partner_status Rakuten refuses as a
// filter (400) rules the by-status pull out; a listing without a total
// cannot be checked at all.
func TestCheckModesRefusedFilter(t *testing.T) {
	e := newEnvWith(t, sandbox.Options{UnfilteredActiveOnly: true})
	e.sb.SeedMerchants(account.SiteID, 100, 8)
	ts, _ := e.source(t, e.login(t))
	e.sb.Inject(sandbox.Fault{Endpoint: sandbox.EndpointPartnerships, AfterCalls: 3, Status: http.StatusBadRequest,
		Body: `{"message":"partner_status is invalid","error":"REQUEST_PARAM_INVALID"}`})
	got, _, err := e.c.CheckModes(context.Background(), ts)
	if err != nil || len(got.Refused) != 1 || got.Choose() != rakuten.ModeUnfiltered {
		t.Fatalf("check with a refused filter: %+v %v, want one refused and unfiltered", got, err)
	}

	e.sb.Inject(sandbox.Fault{Endpoint: sandbox.EndpointPartnerships, Status: 200,
		Body: `{"_metadata":{"page":1,"limit":1},"partnerships":[{"advertiser":{"id":1},"status":"active"}]}`})
	if _, _, err := e.c.CheckModes(context.Background(), ts); rakuten.KindOf(err) != rakuten.KindBadResponse ||
		!strings.Contains(err.Error(), "_metadata.total") {
		t.Fatalf("check without a total: %v, want a bad response naming _metadata.total", err)
	}
}

// TestPartnershipLookup reads the single partnership in the list's
// envelope or bare, and a 404 as "none".
func TestPartnershipLookup(t *testing.T) {
	e := newEnv(t)
	e.sb.SeedMerchants(account.SiteID, 10, 8)
	m := e.sb.Merchants(account.SiteID)[2]
	ts, _ := e.source(t, e.login(t))
	var st rakuten.PullStats
	p, found, err := e.c.Partnership(context.Background(), ts, m.MID, &st)
	if err != nil || !found || p.AdvertiserID != m.MID || p.Status != m.Status || p.Network != m.Network {
		t.Fatalf("lookup: %+v %t %v, want %+v", p, found, err, m)
	}
	e.sb.Inject(sandbox.Fault{Endpoint: sandbox.EndpointPartnership, Status: 200,
		Body: `{"advertiser":{"id":77,"network":3,"status":"inactive"},"status":"pending"}`})
	if p, found, err = e.c.Partnership(context.Background(), ts, 77, &st); err != nil || !found || p.Network != 3 || p.AdvertiserStatus != "inactive" {
		t.Fatalf("bare lookup: %+v %t %v", p, found, err)
	}
	if _, found, err = e.c.Partnership(context.Background(), ts, 1, &st); err != nil || found {
		t.Fatalf("404: found %t, %v", found, err)
	}
	if st.Calls != 3 {
		t.Fatalf("%d calls, want 3", st.Calls)
	}
}
