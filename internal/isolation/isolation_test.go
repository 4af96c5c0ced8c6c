package isolation

import (
	"context"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/merchantsync/merchantsync/internal/dynamo"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/secrets"
)

// TestTenantIsolation walks every route of the api, credentials and
// sync-now routers as tenant B and asserts B never sees, changes or touches
// anything of tenant A.
func TestTenantIsolation(t *testing.T) {
	w := newWorld(t)
	r := w.routersOn(w.store, w.Secrets)
	res := checkIsolation(w, r)
	for _, v := range res.violations {
		t.Error(v)
	}
	// Every route of every router was exercised, and nothing else.
	var missing []string
	for k := range routeKeys(r) {
		if res.exercised[k] == 0 {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("routes the isolation suite does not exercise (add probes): %v", missing)
	}
	t.Logf("walked %d routes with %d requests as tenant B; %d violations", len(res.exercised), res.requests, len(res.violations))

	// A is intact from its own side too.
	got := w.mustCall(w.setup.API, w.A.ID, "GET", "/v1/networks/rakuten", nil, "", 200)
	if m, _ := got.JSON.(map[string]any); m["state"] != "connected" || m["affiliateId"] != w.A.AffiliateID {
		t.Errorf("A after B's walk: %s", got.Body)
	}
}

// brokenStore is the real store with one method broken: it swaps tenant
// from for tenant to, the bug the isolation suite exists to catch.
type brokenStore struct {
	*dynamo.Store
	method   string
	from, to string
}

func (b *brokenStore) swap(method, tenant string) string {
	if method == b.method && tenant == b.from {
		return b.to
	}
	return tenant
}

func (b *brokenStore) GetAccount(ctx context.Context, tenant, network string) (*merchantsync.Account, error) {
	return b.Store.GetAccount(ctx, b.swap("GetAccount", tenant), network)
}

func (b *brokenStore) GetRun(ctx context.Context, tenant, network, runID string) (*merchantsync.Run, error) {
	return b.Store.GetRun(ctx, b.swap("GetRun", tenant), network, runID)
}

func (b *brokenStore) ListRuns(ctx context.Context, tenant, network string, limit int, cursor string) ([]merchantsync.Run, string, error) {
	return b.Store.ListRuns(ctx, b.swap("ListRuns", tenant), network, limit, cursor)
}

func (b *brokenStore) ListRelationships(ctx context.Context, tenant, network string, status merchantsync.Status, limit int, cursor string) ([]merchantsync.Relationship, string, error) {
	return b.Store.ListRelationships(ctx, b.swap("ListRelationships", tenant), network, status, limit, cursor)
}

func (b *brokenStore) ListChanges(ctx context.Context, tenant, network string, since time.Time, limit int, cursor string) ([]merchantsync.Change, string, error) {
	return b.Store.ListChanges(ctx, b.swap("ListChanges", tenant), network, since, limit, cursor)
}

func (b *brokenStore) SaveIDs(ctx context.Context, tenant, network, affiliateID, siteID string, now time.Time) (*merchantsync.Account, error) {
	return b.Store.SaveIDs(ctx, b.swap("SaveIDs", tenant), network, affiliateID, siteID, now)
}

func (b *brokenStore) MarkDisconnected(ctx context.Context, tenant, network, conn string, now time.Time) error {
	if t := b.swap("MarkDisconnected", tenant); t != tenant {
		// Broken all the way: the other tenant's current connection too.
		a, err := b.Store.GetAccount(ctx, t, network)
		if err != nil {
			return err
		}
		if a != nil {
			conn = a.ConnectionID
		}
		tenant = t
	}
	return b.Store.MarkDisconnected(ctx, tenant, network, conn, now)
}

// brokenSecrets deletes tenant to's secret (its current connection's) when
// asked to delete from's.
type brokenSecrets struct {
	*secrets.Store
	from, to string
	connOf   func(tenant string) string
}

func (b *brokenSecrets) DeleteCredentials(ctx context.Context, k merchantsync.ConnectionKey) error {
	if k.TenantID == b.from {
		k.TenantID, k.ID = b.to, b.connOf(b.to)
	}
	return b.Store.DeleteCredentials(ctx, k)
}

// TestIsolationCheckerCatchesLeaks proves the suite can fail: each case
// breaks isolation in one store (or secrets) method, for tenant B only, and
// the checker must report violations naming what leaked.
func TestIsolationCheckerCatchesLeaks(t *testing.T) {
	tests := []struct {
		method string // brokenStore method, or "secrets.Delete"
		want   string // a substring of at least one violation
	}{
		{"ListRelationships", "A's advertiser id"},
		{"ListChanges", "an item that is not B's"},
		{"ListRuns", "A's data in B's response"},
		{"GetRun", "status 200, want one of [404]"},
		{"GetAccount", `contains "AlphaAff0A1"`},
		{"SaveIDs", "A's items changed"},
		{"MarkDisconnected", "A's items changed"},
		{"secrets.Delete", "A's secret was deleted or changed"},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			t.Parallel() // each on a world of its own
			w := newWorld(t)
			var r routers
			if tt.method == "secrets.Delete" {
				r = w.routersOn(w.store, &brokenSecrets{Store: w.Secrets, from: w.B.ID, to: w.A.ID, connOf: w.connOf})
			} else {
				r = w.routersOn(&brokenStore{Store: w.store, method: tt.method, from: w.B.ID, to: w.A.ID}, w.Secrets)
			}
			res := checkIsolation(w, r)
			if len(res.violations) == 0 {
				t.Fatalf("broken %s: the checker reported no violation", tt.method)
			}
			if !slices.ContainsFunc(res.violations, func(v string) bool { return strings.Contains(v, tt.want) }) {
				t.Errorf("broken %s: no violation mentions %q; got:\n%s", tt.method, tt.want, strings.Join(res.violations, "\n"))
			}
			t.Logf("broken %s: %d violations, e.g. %s", tt.method, len(res.violations), res.violations[0])
		})
	}
}
