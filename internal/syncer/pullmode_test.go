package syncer

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/merchantsync/merchantsync/internal/httpapi"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/rakuten"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
	"github.com/merchantsync/merchantsync/internal/secrets"
)

// modeCheckCalls is what a pull-mode self-check costs: one limit=1 request
// unfiltered and one per partner_status.
var modeCheckCalls = 1 + len(rakuten.PartnerStatuses())

// wireCounter counts the Secrets Manager operations the engine's client
// sends, on the wire.
type wireCounter struct {
	mu  sync.Mutex
	ops map[string]int
}

func (c *wireCounter) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		_, op, _ := strings.Cut(r.Header.Get("X-Amz-Target"), ".")
		c.mu.Lock()
		c.ops[op]++
		c.mu.Unlock()
		return next.RoundTrip(r)
	})
}

func (c *wireCounter) get(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ops[op]
}

func (c *wireCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.ops)
}

// network makes the engine pull through n's settings over the env's client
// and a Secrets Manager client whose requests are counted.
func (e *env) network(tweak func(*rakuten.Network)) *wireCounter {
	e.t.Helper()
	c := &wireCounter{ops: map[string]int{}}
	sm := e.smFake.Client(e.t, func(o *secretsmanager.Options) {
		o.HTTPClient = &http.Client{Transport: c.wrap(http.DefaultTransport)}
	})
	n := &rakuten.Network{Client: e.rk, Credentials: secrets.New(sm, "merchantsync/test", ""), Now: e.clock.Now}
	if tweak != nil {
		tweak(n)
	}
	e.engine.Network = n
	return c
}

// sandboxWith points the env at a sandbox of its own, made with opts, and
// a client made with cfg (BaseURL and RequestsPerMinute are set here).
func (e *env) sandboxWith(opts sandbox.Options, cfg rakuten.Config) *sandbox.Server {
	e.t.Helper()
	sb := sandbox.New(opts)
	srv := httptest.NewServer(sb)
	e.t.Cleanup(srv.Close)
	e.sb, e.sim = sb, sb
	cfg.BaseURL, cfg.RequestsPerMinute = srv.URL, -1
	e.useRakuten(rakuten.New(cfg))
	return sb
}

// view is GET /v1/networks/rakuten through the api function's handler.
func (e *env) view(tenant string) map[string]any {
	e.t.Helper()
	r := httpapi.NewAPIRouter(&httpapi.API{Store: e.store, Now: e.clock.Now}, nil)
	path := "/v1/networks/rakuten"
	ev := events.APIGatewayV2HTTPRequest{Version: "2.0", RawPath: path,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "GET", Path: path},
			Authorizer: &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
				JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"tenant_id": tenant}}}}}
	payload, _ := json.Marshal(ev)
	out, err := lambda.NewHandler(r.Handle).Invoke(context.Background(), payload)
	var resp events.APIGatewayV2HTTPResponse
	if err == nil {
		err = json.Unmarshal(out, &resp)
	}
	var body map[string]any
	if err == nil {
		err = json.Unmarshal([]byte(resp.Body), &body)
	}
	if err != nil || resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s %v", path, resp.StatusCode, resp.Body, err)
	}
	return body
}

// TestAutoModeAgainstTheSpec is the first "done when": against a
// sandbox whose next links drop the filters (as Rakuten's spec shows them)
// and whose unfiltered listing holds only active partnerships, a sync with
// no configuration stores every merchant in every status exactly once, and
// the account shows the mode it chose. (The old code, unconfigured, pulled
// unfiltered and stored the active ones only; configured by status, it
// followed the filterless links: TestByStatusPagingKeepsFilters.)
func TestAutoModeAgainstTheSpec(t *testing.T) {
	e := newEnv(t)
	sb := e.sandboxWith(sandbox.Options{UnfilteredActiveOnly: true}, rakuten.Config{})
	acct := e.connect("t1", 1000)
	counts := sb.CountsByStatus(acct.SiteID)

	run := e.sync("t1")
	if run.State != merchantsync.RunSucceeded || run.MerchantsSynced != 1000 || !equalCounts(run.Counts, e.wantCounts(acct.SiteID)) {
		t.Fatalf("sync: %+v, want all 1000 with the sandbox's counts %v", run, counts)
	}
	rels := e.rels("t1")
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
	if got := sb.Calls(sandbox.EndpointPartnerships); got != modeCheckCalls+pages {
		t.Errorf("partnerships calls %d, want %d (the check) + %d (pages by status)", got, modeCheckCalls, pages)
	}

	a := e.account("t1")
	if a.PullMode != merchantsync.PullByStatus || !a.PullModeCheckedAt.Equal(e.clock.Now()) || a.Auth != merchantsync.AuthTokenKey {
		t.Fatalf("account: mode %q checked %v auth %q, want by_status checked now with the token key", a.PullMode, a.PullModeCheckedAt, a.Auth)
	}
	v := e.view("t1")
	if v["pullMode"] != "by_status" || v["auth"] != "token_key" || v["pullModeCheckedAt"] == nil {
		t.Fatalf("GET /v1/networks/rakuten: %v", v)
	}
	if !strings.Contains(e.metrics.String(), `"`+MetricPullModeMismatch+`":1`) {
		t.Errorf("no %s metric: %s", MetricPullModeMismatch, e.metrics.String())
	}
	assertNoLeaks(t, e)
}

// TestPullModeCheckedWeekly: the self-check runs when the account has no
// mode and then once the mode is a week old, never in between; a forced
// mode never checks.
func TestPullModeCheckedWeekly(t *testing.T) {
	e := newEnv(t)
	e.connect("t1", 300) // two pages
	run := e.sync("t1")
	checked := e.account("t1").PullModeCheckedAt
	if run.APICalls != 1+modeCheckCalls+2 || e.account("t1").PullMode != merchantsync.PullUnfiltered || checked.IsZero() {
		t.Fatalf("first sync: %d calls, account %+v", run.APICalls, e.account("t1"))
	}
	for day := 1; day < 7; day++ {
		if run = e.sync("t1"); run.APICalls != 1+2 {
			t.Fatalf("day %d after the check: %d calls, want 3 (a token, two pages)", day, run.APICalls)
		}
	}
	if !e.account("t1").PullModeCheckedAt.Equal(checked) {
		t.Fatal("the check time moved without a check")
	}
	if run = e.sync("t1"); run.APICalls != 1+modeCheckCalls+2 || !e.account("t1").PullModeCheckedAt.Equal(e.clock.Now()) {
		t.Fatalf("a week after the check: %d calls, checked %v", run.APICalls, e.account("t1").PullModeCheckedAt)
	}
	if strings.Contains(e.metrics.String(), MetricPullModeMismatch) {
		t.Error("a mismatch metric where the listings agree")
	}

	forced := newEnv(t)
	forced.sandboxWith(sandbox.Options{}, rakuten.Config{PullMode: rakuten.ModeUnfiltered})
	forced.connect("t2", 300)
	if run = forced.sync("t2"); run.APICalls != 1+2 || forced.account("t2").PullMode != merchantsync.PullUnfiltered ||
		!forced.account("t2").PullModeCheckedAt.IsZero() {
		t.Fatalf("forced unfiltered: %d calls, account %+v", run.APICalls, forced.account("t2"))
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
	e.sync("t1") // the first sync checks the pull mode

	e.sb.ResetCalls()
	sm.reset()
	run := e.sync("t1")
	tok, pages := e.sb.Calls(sandbox.EndpointToken), e.sb.Calls(sandbox.EndpointPartnerships)
	if run.State != merchantsync.RunSucceeded || tok != 1 || pages != 5 || run.APICalls != 6 {
		t.Fatalf("steady state: %s, %d token + %d partnerships calls (run says %d), want 1 + 5", run.State, tok, pages, run.APICalls)
	}
	if sm.get("PutSecretValue") != 0 || sm.get("GetSecretValue") != 1 {
		t.Fatalf("Secrets Manager on the wire: %v, want one GetSecretValue and nothing else", sm.ops)
	}
	if a := e.account("t1"); a.Auth != merchantsync.AuthTokenKey {
		t.Fatalf("auth %q, want token_key", a.Auth)
	}

	e.sb.SetTokenKeyEnabled(false)
	for i := range 2 {
		e.sb.ExpireAccessTokens() // a day later, as the engine's clock says
		e.sb.ResetCalls()
		sm.reset()
		run = e.sync("t1")
		if run.State != merchantsync.RunSucceeded || e.sb.Calls(sandbox.EndpointToken) != 2 || sm.get("PutSecretValue") != 1 {
			t.Fatalf("refused token key, sync %d: %s, %d token calls, Secrets Manager %v; want the key refused, a refresh, one save",
				i+1, run.State, e.sb.Calls(sandbox.EndpointToken), sm.ops)
		}
		if a := e.account("t1"); a.Auth != merchantsync.AuthRefresh || e.view("t1")["auth"] != "refresh" {
			t.Fatalf("auth %q, want refresh", a.Auth)
		}
	}

	e.sb.SetTokenKeyEnabled(true)
	e.sb.ExpireAccessTokens()
	sm.reset()
	if run = e.sync("t1"); run.State != merchantsync.RunSucceeded || sm.get("PutSecretValue") != 0 || e.account("t1").Auth != merchantsync.AuthTokenKey {
		t.Fatalf("token key back: %s, Secrets Manager %v, auth %q", run.State, sm.ops, e.account("t1").Auth)
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
	e.sb.Inject(sandbox.Fault{Endpoint: sandbox.EndpointPartnerships, Status: 200,
		Body: `{"_metadata":{"page":1,"limit":200,"total":3},"partnerships":[` + row + "," + other + "," + row + `]}`})
	run := e.sync("t1")
	if run.State != merchantsync.RunSucceeded || run.MerchantsSynced != 2 || len(e.rels("t1")) != 2 ||
		run.Counts[merchantsync.StatusJoined] != 1 || run.Counts[merchantsync.StatusPending] != 1 {
		t.Fatalf("sync: %+v, %d stored; want 2 merchants, counted once each", run, len(e.rels("t1")))
	}
}
