package syncer

// The race suite: one sync interleaved with everything the publisher can do
// meanwhile (reconnect, connect another application, disconnect, remove the
// IDs, toggle the settings), at every step of the run. A step is an outbound
// request of the sync's own clients (DynamoDB, Secrets Manager, Rakuten),
// intercepted on the wire: the publisher's action runs, through the real
// handlers, just before that request is sent. No sleeps, no hooks in the
// engine: the interleavings are exact and repeatable.
//
// Invariants, checked after every interleaving (and any redelivery):
//   - the stored credentials are the last ones the publisher saved, and no
//     other secret of the tenant exists (none at all after a disconnect);
//   - a run never changes a newer connection: a run that read the account
//     before a reconnect/disconnect ends skipped (connection_changed), and
//     the tenant's items are exactly as the publisher's action left them;
//   - no run stays queued or running; no lease is left behind;
//   - the due keys say exactly what Account.Due says.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/merchantsync/merchantsync/internal/dynamo"
	"github.com/merchantsync/merchantsync/internal/dynamo/dynamotest"
	"github.com/merchantsync/merchantsync/internal/httpapi"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/rakuten"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
	"github.com/merchantsync/merchantsync/internal/secrets"
	"github.com/merchantsync/merchantsync/internal/testenv"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// stepper numbers a sync's outbound requests and runs act before request
// number at (1-based; 0: never).
type stepper struct {
	at  int
	act func()

	mu    sync.Mutex
	steps []string
}

func (s *stepper) wrap(kind string) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			name := kind + " " + stepName(kind, r)
			s.mu.Lock()
			s.steps = append(s.steps, name)
			run := len(s.steps) == s.at
			s.mu.Unlock()
			if run && s.act != nil {
				s.act()
			}
			return next.RoundTrip(r)
		})
	}
}

func (s *stepper) log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.steps)
}

// stepName names a request: its operation, and for a DynamoDB GetItem the
// kind of item (so the step where the sync reads the account is known).
func stepName(kind string, r *http.Request) string {
	if kind == "rakuten" {
		return r.URL.Path
	}
	_, op, _ := strings.Cut(r.Header.Get("X-Amz-Target"), ".")
	if op != "GetItem" || r.Body == nil {
		return op
	}
	b, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	var in struct{ Key map[string]map[string]string }
	_ = json.Unmarshal(b, &in)
	item, _, _ := strings.Cut(in.Key["SK"]["S"], "#")
	return op + " " + item
}

// raceWorld is what every interleaving shares: one table and one Secrets
// Manager (each interleaving has a tenant of its own).
type raceWorld struct {
	t       *testing.T
	ddb     *dynamodb.Client
	table   string
	store   *dynamo.Store
	prefix  string
	secrets *secrets.Store
	n       atomic.Int64
}

func newRaceWorld(t *testing.T) *raceWorld {
	w := &raceWorld{t: t, prefix: testenv.SecretPrefix(t)}
	w.ddb = dynamotest.Client(t)
	w.table = dynamotest.NewTable(t, w.ddb)
	w.store = dynamo.New(w.ddb, w.table)
	w.secrets = secrets.New(testenv.SecretsManagerClient(t), w.prefix, "")
	return w
}

// racePage is the partnerships page size of the race suite: 25 merchants
// make three pages, so actions also land between pages.
const racePage = 10

// raceAction is something the publisher does while a sync runs.
type raceAction struct {
	name string
	// changes says whether it replaces or ends the connection.
	changes bool
	do      func(p *publisher)
}

var raceActions = []raceAction{
	{"reconnect with the same application", true, func(p *publisher) { p.connect(p.a) }},
	{"connect another application", true, func(p *publisher) { p.connect(p.b) }},
	{"disconnect", true, func(p *publisher) { p.disconnect() }},
	{"disconnect, then connect another application", true, func(p *publisher) { p.disconnect(); p.connect(p.b) }},
	{"remove the IDs", true, func(p *publisher) { p.deleteIDs() }},
	{"remove the IDs, save them, connect another application", true, func(p *publisher) {
		p.deleteIDs()
		p.saveIDs("GSFNlAS0O*w")
		p.connect(p.b)
	}},
	{"turn syncing off", false, func(p *publisher) { p.settings(false) }},
	{"turn syncing off and on", false, func(p *publisher) { p.settings(false); p.settings(true) }},
	{"save other IDs", false, func(p *publisher) { p.saveIDs("w9s/SuZO5*M") }},
}

// publisher drives the API as one tenant, through the real handlers and
// lambda.NewHandler, and remembers the credentials it last saved.
type publisher struct {
	t           *testing.T
	tenant      string
	api, creds  *httpapi.Router
	a, b        sandbox.Account
	saved       *sandbox.Account // nil after a disconnect or removing the IDs
	conns       []string         // every connection the publisher made
	store       *dynamo.Store
	failed      []string
	snapshot    []string // the tenant's items right after the action
	snapshotted bool
}

func (p *publisher) call(r *httpapi.Router, method, path, body string) {
	ev := events.APIGatewayV2HTTPRequest{Version: "2.0", RawPath: path, Body: body,
		Headers: map[string]string{"content-type": "application/json"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: path},
			Authorizer: &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
				JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"tenant_id": p.tenant}}}}}
	payload, _ := json.Marshal(ev)
	out, err := lambda.NewHandler(r.Handle).Invoke(context.Background(), payload)
	var resp events.APIGatewayV2HTTPResponse
	if err == nil {
		err = json.Unmarshal(out, &resp)
	}
	if err != nil || resp.StatusCode != http.StatusOK {
		p.failed = append(p.failed, fmt.Sprintf("%s %s: %d %s %v", method, path, resp.StatusCode, resp.Body, err))
	}
}

func (p *publisher) connect(a sandbox.Account) {
	b, _ := json.Marshal(map[string]string{"clientId": a.ClientID, "clientSecret": a.ClientSecret,
		"siteId": a.SiteID, "username": a.Username, "password": a.Password})
	p.call(p.creds, "PUT", "/v1/networks/rakuten/credentials", string(b))
	p.saved = &a
	if acct, err := p.store.GetAccount(context.Background(), p.tenant, network); err == nil && acct != nil {
		p.conns = append(p.conns, acct.ConnectionID)
	}
}

func (p *publisher) disconnect() {
	p.call(p.creds, "DELETE", "/v1/networks/rakuten/credentials", "")
	p.saved = nil
}

func (p *publisher) deleteIDs() {
	p.call(p.creds, "DELETE", "/v1/networks/rakuten/ids", "")
	p.saved = nil
}

func (p *publisher) saveIDs(aff string) {
	p.call(p.api, "PUT", "/v1/networks/rakuten/ids", `{"affiliateId":"`+aff+`","siteId":"`+p.a.SiteID+`"}`)
}

func (p *publisher) settings(on bool) {
	p.call(p.api, "PUT", "/v1/merchantsync/settings", fmt.Sprintf(`{"enabled":%t}`, on))
}

// raceCase is one interleaving.
type raceCase struct {
	merchants int  // 25, on pages of 10: three pages
	history   bool // synced once before, then three merchants changed
	expired   bool // the access token has expired: the sync refreshes and saves a token
	trigger   merchantsync.Trigger
	action    raceAction
	at        int // the step the action runs before; 0: no action
}

func (c raceCase) String() string {
	return fmt.Sprintf("%d merchants, history %t, expired %t, %s: %s before step %d",
		c.merchants, c.history, c.expired, c.trigger, c.action.name, c.at)
}

// raceResult is what one interleaving did.
type raceResult struct {
	steps      []string
	run        merchantsync.Run
	violations []string
}

func noSleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

// play runs one interleaving and checks the invariants.
func (w *raceWorld) play(t *testing.T, c raceCase) raceResult {
	ctx := context.Background()
	n := w.n.Add(1)
	tenant := fmt.Sprintf("race-%05d", n)
	site := fmt.Sprint(5000000 + n)
	sb := sandbox.New(sandbox.Options{})
	srv := httptest.NewServer(sb)
	defer srv.Close()
	p := &publisher{t: t, tenant: tenant, store: w.store,
		a: sandbox.Account{ClientID: "app-A-" + site, ClientSecret: "SECRET-A-" + site, SiteID: site, Username: "pub", Password: "PW-" + site},
		b: sandbox.Account{ClientID: "app-B-" + site, ClientSecret: "SECRET-B-" + site, SiteID: site, Username: "pub", Password: "PW-" + site},
	}
	sb.AddAccount(p.a)
	sb.AddAccount(p.b)
	sb.SeedMerchants(site, c.merchants, n)
	plain := rakuten.New(rakuten.Config{BaseURL: srv.URL, RequestsPerMinute: -1, Sleep: noSleep, PageSize: racePage})
	now := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Second)
	clock := func() time.Time { return now }
	p.api = httpapi.NewAPIRouter(&httpapi.API{Store: w.store, Now: clock}, nil)
	plainNet := &rakuten.Network{Client: plain, Credentials: w.secrets, Now: clock}
	p.creds = httpapi.NewCredentialsRouter(&httpapi.Credentials{Store: w.store, Secrets: w.secrets, Network: plainNet, Now: clock}, nil)
	p.saveIDs("lMh2Xiq9xN0")
	p.connect(p.a)
	if c.history {
		e := &Engine{Store: w.store, Network: plainNet, Now: clock}
		if run, err := e.Sync(ctx, manual(tenant, now)); err != nil || run.State != merchantsync.RunSucceeded {
			t.Fatalf("%v: first sync %+v %v", c, run, err)
		}
		for _, m := range sb.Merchants(site)[:3] {
			_ = sb.SetStatus(site, m.MID, sandbox.StatusTempDecline)
		}
		now = now.Add(24 * time.Hour)
	}
	if c.expired {
		sb.ExpireAccessTokens()
	}

	st := &stepper{at: c.at}
	runID := merchantsync.NewRunID(now)
	st.act = func() {
		c.action.do(p)
		p.snapshot, p.snapshotted = w.items(tenant, runID), true
	}
	engine := &Engine{
		Store: dynamo.New(dynamotest.Client(t, dynamotest.WithTransport(st.wrap("dynamodb"))), w.table),
		Network: &rakuten.Network{
			Client: rakuten.New(rakuten.Config{BaseURL: srv.URL, RequestsPerMinute: -1, Sleep: noSleep, PageSize: racePage,
				HTTPClient: &http.Client{Transport: st.wrap("rakuten")(http.DefaultTransport)}}),
			Credentials: secrets.New(testenv.SecretsManagerClient(t, testenv.WithTransport(st.wrap("secretsmanager"))), w.prefix, ""),
			Now:         clock,
		},
		Now: clock,
	}
	req := merchantsync.SyncRequest{TenantID: tenant, Network: network, RunID: runID, Trigger: c.trigger}
	if c.trigger == merchantsync.TriggerSchedule {
		req.ScheduleRunID = "daily-" + now.Format("2006-01-02")
	} else if _, _, err := w.store.StartManualRun(ctx, merchantsync.Run{TenantID: tenant, Network: network, RunID: runID}, now); err != nil {
		t.Fatalf("%v: StartManualRun: %v", c, err)
	}
	var run merchantsync.Run
	var err error
	for attempt := 1; attempt <= 4; attempt++ { // the queue's deliveries
		req.LastAttempt = attempt == 4
		if run, err = engine.Sync(ctx, req); !IsRetryable(err) {
			break
		}
	}
	res := raceResult{steps: st.log(), run: run}
	if err != nil {
		res.violations = append(res.violations, fmt.Sprintf("sync: %v", err))
	}
	res.violations = append(res.violations, p.failed...)
	res.violations = append(res.violations, w.check(c, p, res)...)
	return res
}

// items renders the tenant's items, except the run runID, for comparison.
func (w *raceWorld) items(tenant, runID string) []string {
	var out []string
	p := dynamodb.NewQueryPaginator(w.ddb, &dynamodb.QueryInput{
		TableName: aws.String(w.table), KeyConditionExpression: aws.String("PK = :pk"), ConsistentRead: aws.Bool(true),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: "TENANT#" + tenant}},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			return []string{"query: " + err.Error()}
		}
		for _, it := range page.Items {
			var m map[string]any
			_ = attributevalue.UnmarshalMap(it, &m)
			if m["SK"] == "RUN#"+network+"#"+runID {
				continue
			}
			b, _ := json.Marshal(m)
			out = append(out, string(b))
		}
	}
	sort.Strings(out)
	return out
}

// check returns every invariant the interleaving broke.
func (w *raceWorld) check(c raceCase, p *publisher, res raceResult) []string {
	ctx := context.Background()
	var bad []string
	fail := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	acct, err := w.store.GetAccount(ctx, p.tenant, network)
	if err != nil {
		return []string{err.Error()}
	}

	// The stored credentials are the last ones saved, and only those.
	// Every connection but the current one has no secret left (looked up
	// one by one: listing every secret of the run is slow on moto).
	current := ""
	if acct != nil {
		current = acct.ConnectionID
	}
	for _, conn := range p.conns {
		if conn == current && p.saved != nil {
			continue
		}
		if _, err := w.secrets.GetCredentials(ctx, merchantsync.ConnectionKey{TenantID: p.tenant, Network: network, ID: conn}); merchantsync.ErrorCode(err) != merchantsync.ENotConnected {
			fail("the secret of ended connection %s: %v", conn, err)
		}
	}
	switch {
	case p.saved == nil:
		if acct != nil && (acct.Connected || acct.ConnectionID != "") {
			fail("after a disconnect: account %+v", acct)
		}
	case acct == nil || acct.ConnectionID == "":
		fail("the publisher's last connect is gone: account %+v", acct)
	default:
		sec, err := w.secrets.GetCredentials(ctx, merchantsync.ConnectionKey{TenantID: p.tenant, Network: network, ID: acct.ConnectionID})
		if err != nil || sec.ClientID != p.saved.ClientID || sec.ClientSecret != p.saved.ClientSecret {
			fail("stored credentials %v, %v; want %s's", sec, err, p.saved.ClientID)
		}
	}

	// A run that read the account before the connection changed changes
	// nothing of the new one.
	accountRead := slices.IndexFunc(res.steps, func(s string) bool { return s == "dynamodb GetItem NETWORK" }) + 1
	if c.action.changes && c.at > accountRead && accountRead > 0 {
		if res.run.State != merchantsync.RunSkipped || res.run.Error == nil || res.run.Error.Code != merchantsync.EConnectionChanged {
			fail("run ended %s %+v, want skipped with %s", res.run.State, res.run.Error, merchantsync.EConnectionChanged)
		}
		if !p.snapshotted {
			fail("the action never ran")
		} else if after := w.items(p.tenant, res.run.RunID); !slices.Equal(after, p.snapshot) {
			fail("the overtaken run changed the tenant's items:\n  after the action %v\n  at the end       %v", p.snapshot, after)
		}
	}

	// No run stays queued or running; nothing is left holding the account.
	if stored, err := w.store.GetRun(ctx, p.tenant, network, res.run.RunID); err != nil {
		fail("GetRun: %v", err)
	} else if stored != nil && !stored.State.Finished() {
		fail("run left %s", stored.State)
	}
	if acct != nil && (acct.LeaseRunID != "" || acct.ActiveRunID == res.run.RunID) {
		fail("lease %q / active run %q left behind", acct.LeaseRunID, acct.ActiveRunID)
	}

	// The due keys say what Account.Due says.
	if acct != nil {
		settings, err := w.store.GetSettings(ctx, p.tenant)
		if err != nil {
			return append(bad, err.Error())
		}
		out, err := w.ddb.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(w.table), ConsistentRead: aws.Bool(true),
			Key: map[string]types.AttributeValue{
				"PK": &types.AttributeValueMemberS{Value: "TENANT#" + p.tenant}, "SK": &types.AttributeValueMemberS{Value: "NETWORK#" + network}}})
		if err != nil {
			return append(bad, err.Error())
		}
		if _, due := out.Item[dynamo.AttrDuePK]; due != acct.Due(settings) {
			fail("due keys %t, Account.Due %t (%+v, %+v)", due, acct.Due(settings), acct, settings)
		}
	}
	return bad
}

// raceWorkers is how many interleavings of one configuration run at once.
const raceWorkers = 6

// TestRaceSyncWithPublisher plays every action before every step of a
// sync, in every configuration, and checks the invariants each time.
func TestRaceSyncWithPublisher(t *testing.T) {
	w := newRaceWorld(t)
	var configs []raceCase
	for _, merchants := range []int{25} {
		for _, history := range []bool{false, true} {
			for _, expired := range []bool{false, true} {
				for _, trigger := range []merchantsync.Trigger{merchantsync.TriggerManual, merchantsync.TriggerSchedule} {
					configs = append(configs, raceCase{merchants: merchants, history: history, expired: expired, trigger: trigger})
				}
			}
		}
	}
	var played, overtaken, configsRun atomic.Int64
	var mu sync.Mutex
	var failures []string
	for _, cfg := range configs {
		// A run without interference numbers the steps of this configuration.
		dry := w.play(t, cfg)
		if len(dry.violations) > 0 || dry.run.State != merchantsync.RunSucceeded {
			t.Fatalf("%v: %s %v", cfg, dry.run.State, dry.violations)
		}
		t.Run(fmt.Sprintf("%dm-history=%t-expired=%t-%s", cfg.merchants, cfg.history, cfg.expired, cfg.trigger), func(t *testing.T) {
			t.Parallel()
			configsRun.Add(1)
			// Interleavings are independent (a tenant each) and wait on
			// DynamoDB Local most of the time: several at once.
			cases := make(chan raceCase)
			var wg sync.WaitGroup
			for range raceWorkers {
				wg.Go(func() {
					for c := range cases {
						res := w.play(t, c)
						played.Add(1)
						if res.run.Error != nil && res.run.Error.Code == merchantsync.EConnectionChanged {
							overtaken.Add(1)
						}
						if len(res.violations) > 0 {
							mu.Lock()
							failures = append(failures, fmt.Sprintf("%v (step %q):\n  %s", c, step(res.steps, c.at), strings.Join(res.violations, "\n  ")))
							mu.Unlock()
						}
					}
				})
			}
			for _, action := range raceActions {
				for at := 1; at <= len(dry.steps); at++ {
					c := cfg
					c.action, c.at = action, at
					cases <- c
				}
			}
			close(cases)
			wg.Wait()
		})
	}
	t.Cleanup(func() {
		t.Logf("%d interleavings of %d configurations × %d actions × every step; %d runs overtaken", played.Load(), len(configs), len(raceActions), overtaken.Load())
		for i, f := range failures {
			if i == 20 {
				t.Errorf("… and %d more", len(failures)-20)
				break
			}
			t.Error(f)
		}
		if configsRun.Load() == int64(len(configs)) && played.Load() < 1000 {
			t.Errorf("only %d interleavings", played.Load())
		}
	})
}

func step(steps []string, at int) string {
	if at >= 1 && at <= len(steps) {
		return steps[at-1]
	}
	return "?"
}
