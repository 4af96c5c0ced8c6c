package syncer

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/merchantsync/merchantsync/internal/httpapi"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/rakuten"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
	"github.com/merchantsync/merchantsync/internal/testenv"
)

// modeCheckCalls is what a pull-mode self-check costs: one limit=1 request
// unfiltered and one per partner_status.
var modeCheckCalls = 1 + len(rakuten.PartnerStatuses())

// network makes the engine pull through a Network with n's settings (the
// World's client and secrets), and resets the World's count of Secrets
// Manager requests, which it returns.
func (e *env) network(tweak func(*rakuten.Network)) *testenv.Counter {
	e.T.Helper()
	n := e.NetworkOf(e.Rakuten)
	if tweak != nil {
		tweak(n)
	}
	e.engine.Network = n
	e.SMCalls.Reset()
	return e.SMCalls
}

// sandboxWith points the env at a sandbox of its own, made with opts, and
// a client made with cfg's pull mode and page size.
func (e *env) sandboxWith(opts sandbox.Options, cfg rakuten.Config) *sandbox.Server {
	e.T.Helper()
	sb := sandbox.New(opts)
	srv := httptest.NewServer(sb)
	e.T.Cleanup(srv.Close)
	e.Sandbox, e.sim = sb, sb
	e.useRakuten(e.RakutenClient(srv.URL, func(c *rakuten.Config) { c.PullMode, c.PageSize = cfg.PullMode, cfg.PageSize }))
	return sb
}

// view is GET /v1/networks/rakuten through the api function's handler.
func (e *env) view(tenant string) map[string]any {
	e.T.Helper()
	r := httpapi.NewAPIRouter(&httpapi.API{Store: e.Store, Now: e.Clock.Now}, nil)
	resp := testenv.Invoke(e.T, r.Handle, testenv.APIEvent("GET", "/v1/networks/rakuten", tenant, "", nil))
	var body map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &body); err != nil || resp.StatusCode != http.StatusOK {
		e.T.Fatalf("GET /v1/networks/rakuten: %d %s %v", resp.StatusCode, resp.Body, err)
	}
	return body
}

// TestAutoModeAgainstTheSpec is the first "done when": against a
// sandbox whose next links drop the filters (as Rakuten's spec shows them)
// and whose unfiltered listing holds only active partnerships, a sync with
// no configuration stores every merchant in every status exactly once, and
// the account shows the mode it chose: checked when connecting, or, for an
// account connected before pull modes, by its first sync. (The old code,
// unconfigured, pulled unfiltered and stored the active ones only;
// configured by status, it followed the filterless links:
// TestByStatusPagingKeepsFilters.)
func TestAutoModeAgainstTheSpec(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(map[bool]string{false: "connected", true: "connected before pull modes"}[legacy], func(t *testing.T) {
			e := newEnv(t)
			sb := e.sandboxWith(sandbox.Options{UnfilteredActiveOnly: true}, rakuten.Config{})
			connect, checks := e.connect, 0
			if legacy {
				connect, checks = e.connectLegacy, modeCheckCalls
			}
			acct := connect("t1", 1000)
			connectedAt := e.Clock.Now()
			counts := sb.CountsByStatus(acct.SiteID)

			run := e.sync("t1")
			if run.State != merchantsync.RunSucceeded || run.MerchantsSynced != 1000 || !equalCounts(run.Counts, e.wantCounts(acct.SiteID)) {
				t.Fatalf("sync: %+v, want all 1000 with the sandbox's counts %v", run, counts)
			}
			rels := e.Relationships("t1")
			raw := map[int64]string{}
			for _, r := range rels {
				if _, dup := raw[r.AdvertiserID]; dup {
					t.Fatalf("MID %d stored twice", r.AdvertiserID)
				}
				raw[r.AdvertiserID] = r.RawStatus
			}
			for _, m := range sb.Merchants(acct.SiteID) {
				if raw[m.MID] != m.Status {
					t.Fatalf("MID %d stored as %q, Rakuten says %q", m.MID, raw[m.MID], m.Status)
				}
			}
			if len(rels) != 1000 {
				t.Fatalf("%d relationships stored, want 1000", len(rels))
			}
			pages := 0
			for _, s := range rakuten.PartnerStatuses() {
				pages += max(1, (counts[s]+rakuten.PageLimit-1)/rakuten.PageLimit)
			}
			if got := sb.Calls(sandbox.EndpointPartnerships); got != checks+pages {
				t.Errorf("partnerships calls %d, want %d (the check) + %d (pages by status)", got, checks, pages)
			}

			checkedAt := connectedAt
			if legacy {
				checkedAt = e.Clock.Now()
			}
			a := e.Account("t1")
			if a.PullMode != merchantsync.PullByStatus || !a.PullModeCheckedAt.Equal(checkedAt) || a.Auth != merchantsync.AuthTokenKey {
				t.Fatalf("account: mode %q checked %v auth %q, want by_status checked %v with the token key", a.PullMode, a.PullModeCheckedAt, a.Auth, checkedAt)
			}
			v := e.view("t1")
			if v["pullMode"] != "by_status" || v["auth"] != "token_key" || v["pullModeCheckedAt"] == nil {
				t.Fatalf("GET /v1/networks/rakuten: %v", v)
			}
			if mismatch := strings.Contains(e.metrics.String(), `"`+MetricPullModeMismatch+`":1`); mismatch != legacy {
				t.Errorf("%s metric %v, want %v (the sync's check found it): %s", MetricPullModeMismatch, mismatch, legacy, e.metrics.String())
			}
			assertNoLeaks(t, e)
		})
	}
}

// TestPullModeCheckedWeekly: the self-check runs when the account has no
// mode (connected before pull modes) and then once the mode is a week old,
// never in between; a forced mode never checks.
func TestPullModeCheckedWeekly(t *testing.T) {
	e := newEnv(t)
	e.connectLegacy("t1", 300) // two pages
	run := e.sync("t1")
	checked := e.Account("t1").PullModeCheckedAt
	if run.APICalls != 1+modeCheckCalls+2 || e.Account("t1").PullMode != merchantsync.PullUnfiltered || checked.IsZero() {
		t.Fatalf("first sync: %d calls, account %+v", run.APICalls, e.Account("t1"))
	}
	for day := 1; day < 7; day++ {
		if run = e.sync("t1"); run.APICalls != 1+2 {
			t.Fatalf("day %d after the check: %d calls, want 3 (a token, two pages)", day, run.APICalls)
		}
	}
	if !e.Account("t1").PullModeCheckedAt.Equal(checked) {
		t.Fatal("the check time moved without a check")
	}
	if run = e.sync("t1"); run.APICalls != 1+modeCheckCalls+2 || !e.Account("t1").PullModeCheckedAt.Equal(e.Clock.Now()) {
		t.Fatalf("a week after the check: %d calls, checked %v", run.APICalls, e.Account("t1").PullModeCheckedAt)
	}
	if strings.Contains(e.metrics.String(), MetricPullModeMismatch) {
		t.Error("a mismatch metric where the listings agree")
	}

	forced := newEnv(t)
	forced.sandboxWith(sandbox.Options{}, rakuten.Config{PullMode: rakuten.ModeUnfiltered})
	forced.connect("t2", 300)
	forced.Sandbox.ExpireAccessTokens() // a day later
	if run = forced.sync("t2"); run.APICalls != 1+2 || forced.Account("t2").PullMode != merchantsync.PullUnfiltered ||
		!forced.Account("t2").PullModeCheckedAt.IsZero() {
		t.Fatalf("forced unfiltered: %d calls, account %+v", run.APICalls, forced.Account("t2"))
	}
}

// TestSteadyStateSyncCost is the second "done when", counted on the
// wire: a steady-state sync makes one token call, ⌈N/200⌉ pages and no
// Secrets Manager write; a refused token key falls back to the refresh
// chain, which saves each rotated token, and the account says so.
func TestSteadyStateSyncCost(t *testing.T) {
	e := newEnv(t)
	sm := e.network(nil)
	e.connect("t1", 1000)
	e.sync("t1")

	e.Sandbox.ExpireAccessTokens() // a day later: the hour-long token is gone
	e.Sandbox.ResetCalls()
	sm.Reset()
	run := e.sync("t1")
	tok, pages := e.Sandbox.Calls(sandbox.EndpointToken), e.Sandbox.Calls(sandbox.EndpointPartnerships)
	if run.State != merchantsync.RunSucceeded || tok != 1 || pages != 5 || run.APICalls != 6 {
		t.Fatalf("steady state: %s, %d token + %d partnerships calls (run says %d), want 1 + 5", run.State, tok, pages, run.APICalls)
	}
	if sm.Calls("PutSecretValue") != 0 || sm.Calls("GetSecretValue") != 1 {
		t.Fatalf("Secrets Manager on the wire: %v, want one GetSecretValue and nothing else", sm)
	}
	if a := e.Account("t1"); a.Auth != merchantsync.AuthTokenKey {
		t.Fatalf("auth %q, want token_key", a.Auth)
	}

	e.Sandbox.SetTokenKeyEnabled(false)
	for i := range 2 {
		e.Sandbox.ExpireAccessTokens() // a day later, as the engine's clock says
		e.Sandbox.ResetCalls()
		sm.Reset()
		run = e.sync("t1")
		if run.State != merchantsync.RunSucceeded || e.Sandbox.Calls(sandbox.EndpointToken) != 2 || sm.Calls("PutSecretValue") != 1 {
			t.Fatalf("refused token key, sync %d: %s, %d token calls, Secrets Manager %v; want the key refused, a refresh, one save",
				i+1, run.State, e.Sandbox.Calls(sandbox.EndpointToken), sm)
		}
		if a := e.Account("t1"); a.Auth != merchantsync.AuthRefresh || e.view("t1")["auth"] != "refresh" {
			t.Fatalf("auth %q, want refresh", a.Auth)
		}
	}

	e.Sandbox.SetTokenKeyEnabled(true)
	e.Sandbox.ExpireAccessTokens()
	sm.Reset()
	if run = e.sync("t1"); run.State != merchantsync.RunSucceeded || sm.Calls("PutSecretValue") != 0 || e.Account("t1").Auth != merchantsync.AuthTokenKey {
		t.Fatalf("token key back: %s, Secrets Manager %v, auth %q", run.State, sm, e.Account("t1").Auth)
	}
	assertNoLeaks(t, e)
}

// TestRowsSeenTwiceCountOnce: a merchant listed twice in one pull (a page
// repeated while Rakuten's list shifted, say) is one relationship.
func TestRowsSeenTwiceCountOnce(t *testing.T) {
	e := newEnv(t)
	e.sandboxWith(sandbox.Options{}, rakuten.Config{PullMode: rakuten.ModeUnfiltered})
	e.connect("t1", 0)
	row := `{"advertiser":{"id":7001,"network":1,"name":"Twice","status":"active"},"status":"active"}`
	other := `{"advertiser":{"id":7002,"network":1,"name":"Once","status":"active"},"status":"pending"}`
	e.Sandbox.Inject(sandbox.Fault{Endpoint: sandbox.EndpointPartnerships, Status: 200,
		Body: `{"_metadata":{"page":1,"limit":200,"total":3},"partnerships":[` + row + "," + other + "," + row + `]}`})
	run := e.sync("t1")
	if run.State != merchantsync.RunSucceeded || run.MerchantsSynced != 2 || len(e.Relationships("t1")) != 2 ||
		run.Counts[merchantsync.StatusJoined] != 1 || run.Counts[merchantsync.StatusPending] != 1 {
		t.Fatalf("sync: %+v, %d stored; want 2 merchants, counted once each", run, len(e.Relationships("t1")))
	}
}
