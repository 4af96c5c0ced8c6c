package rakuten_test

import (
	"context"
	"testing"

	"github.com/merchantsync/merchantsync/internal/rakuten"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
)

// TestByStatusPagingKeepsFilters: Rakuten's published spec gives
// _links.next without the request's filters. A by-status pull that
// followed it would read page 2 onward of every status unfiltered:
// merchants twice, under the wrong status. Each next page is built from
// the request instead. Pages of 50 give every status several pages.
func TestByStatusPagingKeepsFilters(t *testing.T) {
	e := newEnv(t, func(c *rakuten.Config) { c.PullByStatus = true; c.PageSize = 50 })
	e.sb.SeedMerchants(account.SiteID, 1000, 5)
	tok := e.login(t)
	ts, _ := e.source(t, tok)
	seen := map[int64]string{}
	dups := 0
	_, err := e.c.Partnerships(context.Background(), ts, func(page []rakuten.Partnership) error {
		for _, p := range page {
			if _, ok := seen[p.AdvertiserID]; ok {
				dups++
			}
			seen[p.AdvertiserID] = p.Status
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if dups != 0 || len(seen) != 1000 {
		t.Fatalf("by-status pull: %d merchants, %d rows seen twice; want 1000 once each", len(seen), dups)
	}
	for _, m := range e.sb.Merchants(account.SiteID) {
		if seen[m.MID] != m.Status {
			t.Fatalf("MID %d pulled as %q, sandbox has %q", m.MID, seen[m.MID], m.Status)
		}
	}
}

// TestPagingFollowsTheServedLimit: pages are built here, so a page size
// Rakuten serves below the one asked for must carry on to every later
// page, or their offsets would skip rows.
func TestPagingFollowsTheServedLimit(t *testing.T) {
	e := newEnvWith(t, sandbox.Options{MaxPageSize: 50})
	e.sb.SeedMerchants(account.SiteID, 1000, 6)
	tok := e.login(t)
	ts, _ := e.source(t, tok)
	seen := map[int64]bool{}
	st, err := e.c.Partnerships(context.Background(), ts, func(page []rakuten.Partnership) error {
		for _, p := range page {
			if seen[p.AdvertiserID] {
				t.Fatalf("MID %d twice", p.AdvertiserID)
			}
			seen[p.AdvertiserID] = true
		}
		return nil
	})
	if err != nil || len(seen) != 1000 || st.Pages != 20 {
		t.Fatalf("%d merchants in %d pages (%v), want 1000 in 20", len(seen), st.Pages, err)
	}
}
