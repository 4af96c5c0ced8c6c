package syncer

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/merchantsync/merchantsync/internal/dynamo"
	"github.com/merchantsync/merchantsync/internal/dynamo/dynamotest"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/rakuten"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
	"github.com/merchantsync/merchantsync/internal/secrets"
	"github.com/merchantsync/merchantsync/internal/secrets/secretstest"
)

func TestMain(m *testing.M) { dynamotest.Main(m) }

const network = merchantsync.NetworkRakuten

// clock is the engine's injected clock; tests move it a day between syncs.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// gate blocks partnerships requests while closed (to hold a sync inside its
// lease deterministically) and reports when one arrives.
type gate struct {
	mu      sync.Mutex
	closed  chan struct{} // nil: open
	arrived chan struct{}
}

func (g *gate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "partnerships") {
			g.mu.Lock()
			closed, arrived := g.closed, g.arrived
			g.mu.Unlock()
			if closed != nil {
				select {
				case arrived <- struct{}{}:
				default:
				}
				select {
				case <-closed:
				case <-r.Context().Done():
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (g *gate) Close() {
	g.mu.Lock()
	g.closed, g.arrived = make(chan struct{}), make(chan struct{}, 1)
	g.mu.Unlock()
}

func (g *gate) Open() {
	g.mu.Lock()
	if g.closed != nil {
		close(g.closed)
	}
	g.closed = nil
	g.mu.Unlock()
}

// env wires the real packages: DynamoDB Local, the Secrets Manager fake
// behind the real SDK client, the Rakuten sandbox behind httptest and the
// real Rakuten client.
type env struct {
	t       testing.TB
	ctx     context.Context
	clock   *clock
	ddb     *dynamodb.Client
	counter *dynamotest.Counter
	faults  *dynamotest.Faults
	store   *dynamo.Store
	smFake  *secretstest.Fake
	secrets *secrets.Store
	sb      *sandbox.Server
	// sim is the sandbox connect seeds: sb, or for BenchmarkSync the
	// sandbox in another process.
	sim interface {
		AddAccount(sandbox.Account)
		SeedMerchants(siteID string, n int, seed int64)
		ResetCalls()
	}
	gate    *gate
	rk      *rakuten.Client
	sleeps  *int64
	logs    *syncBuffer
	metrics *syncBuffer
	engine  *Engine
	logger  *slog.Logger

	mu       sync.Mutex
	tenants  map[string]sandbox.Account
	nextSite int
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{
		t:       t,
		ctx:     context.Background(),
		clock:   &clock{t: time.Now().UTC().Truncate(time.Millisecond)},
		counter: dynamotest.NewCounter(),
		faults:  dynamotest.NewFaults(),
		logs:    &syncBuffer{},
		metrics: &syncBuffer{},
		tenants: map[string]sandbox.Account{},
		gate:    &gate{},
	}
	e.ddb = dynamotest.Client(t, dynamotest.WithCounter(e.counter), dynamotest.WithFaults(e.faults))
	e.store = dynamo.New(e.ddb, dynamotest.NewTable(t, e.ddb))

	e.smFake = secretstest.New()
	e.secrets = secrets.New(e.smFake.Client(t), "merchantsync/test", "")

	e.logger = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.sb = sandbox.New(sandbox.Options{Logger: e.logger})
	e.sim = e.sb
	srv := httptest.NewServer(e.gate.wrap(e.sb))
	t.Cleanup(srv.Close)
	var sleeps int64
	e.sleeps = &sleeps
	e.rk = e.newRakuten(srv.URL)
	e.engine = &Engine{
		Store:   e.store,
		Network: &rakuten.Network{Client: e.rk, Credentials: e.secrets, Now: e.clock.Now},
		Now:     e.clock.Now,
		Logger:  e.logger,
		Metrics: NewMetrics(e.metrics, "test"),
	}
	return e
}

// useRakuten makes the engine (and connect) use c.
func (e *env) useRakuten(c *rakuten.Client) {
	e.rk = c
	e.engine.Network = &rakuten.Network{Client: c, Credentials: e.secrets, Now: e.clock.Now}
}

// newRakuten is the client the engine uses, against the sandbox at url.
func (e *env) newRakuten(url string) *rakuten.Client {
	var sleepMu sync.Mutex
	return rakuten.New(rakuten.Config{
		BaseURL:           url,
		RequestsPerMinute: -1,
		Logger:            e.logger,
		// Backoff without waiting: the tests assert on outcomes, never on time.
		Sleep: func(ctx context.Context, d time.Duration) error {
			sleepMu.Lock()
			*e.sleeps++
			sleepMu.Unlock()
			return ctx.Err()
		},
	})
}

// connect creates a tenant the way the API does: IDs saved, the password
// exchanged for tokens at the (sandbox) token endpoint, client id/secret and
// refresh token stored in Secrets Manager, the account marked connected.
// The sandbox site gets n seeded merchants.
func (e *env) connect(tenant string, n int) sandbox.Account {
	e.t.Helper()
	e.mu.Lock()
	e.nextSite++
	site := fmt.Sprintf("%d", 4022200+e.nextSite)
	e.mu.Unlock()
	a := sandbox.Account{
		ClientID:     "client-" + tenant,
		ClientSecret: "CLIENTSECRET-" + tenant + "-s3cr3t",
		SiteID:       site,
		Username:     "user-" + tenant,
		Password:     "PASSWORD-" + tenant + "-pw",
	}
	e.sim.AddAccount(a)
	if n > 0 {
		e.sim.SeedMerchants(site, n, int64(e.nextSite))
	}
	now := e.clock.Now()
	if _, err := e.store.SaveIDs(e.ctx, tenant, network, "lMh2Xiq9xN0", site, now); err != nil {
		e.t.Fatalf("SaveIDs: %v", err)
	}
	cr := rakuten.Credentials{ClientID: a.ClientID, ClientSecret: a.ClientSecret, SiteID: site}
	tok, err := e.rk.PasswordGrant(e.ctx, cr, a.Username, a.Password)
	if err != nil {
		e.t.Fatalf("PasswordGrant: %v", err)
	}
	// Only the refresh token is stored, as the credentials function does:
	// the first sync starts with a refresh.
	conn := merchantsync.NewConnectionID(now)
	if err := e.secrets.CreateCredentials(e.ctx, merchantsync.ConnectionKey{TenantID: tenant, Network: network, ID: conn}, merchantsync.Credentials{
		ClientID: a.ClientID, ClientSecret: a.ClientSecret, SiteID: site,
		RefreshToken: tok.RefreshToken, AuthScheme: tok.Scheme,
	}); err != nil {
		e.t.Fatalf("secrets.Create: %v", err)
	}
	if _, err := e.store.MarkConnected(e.ctx, tenant, network, merchantsync.Connection{ID: conn, SiteID: site, Username: a.Username}, now); err != nil {
		e.t.Fatalf("MarkConnected: %v", err)
	}
	e.mu.Lock()
	e.tenants[tenant] = a
	e.mu.Unlock()
	e.sim.ResetCalls()
	e.counter.Reset()
	return a
}

func manual(tenant string, now time.Time) merchantsync.SyncRequest {
	return merchantsync.SyncRequest{TenantID: tenant, Network: network, RunID: merchantsync.NewRunID(now), Trigger: merchantsync.TriggerManual}
}

func scheduled(tenant, scheduleRunID string, at time.Time) merchantsync.SyncRequest {
	return merchantsync.SyncRequest{
		TenantID: tenant, Network: network, Trigger: merchantsync.TriggerSchedule, ScheduleRunID: scheduleRunID,
		RunID: merchantsync.ScheduledRunID(scheduleRunID, at, tenant, network),
	}
}

// sync runs a manual sync a day after the previous one and fails the test
// on an error.
func (e *env) sync(tenant string) merchantsync.Run {
	e.t.Helper()
	e.clock.Advance(24 * time.Hour)
	run, err := e.engine.Sync(e.ctx, manual(tenant, e.clock.Now()))
	if err != nil {
		e.t.Fatalf("Sync: %v", err)
	}
	return run
}

// secret reads the secret of the tenant's current connection.
func (e *env) secret(tenant string) (*merchantsync.Credentials, error) {
	a, err := e.store.GetAccount(e.ctx, tenant, network)
	if err != nil {
		return nil, err
	}
	if a == nil || a.ConnectionID == "" {
		return nil, merchantsync.Errorf(merchantsync.ENotConnected, "%s has no connection", tenant)
	}
	return e.secrets.GetCredentials(e.ctx, merchantsync.ConnectionKey{TenantID: tenant, Network: network, ID: a.ConnectionID})
}

func (e *env) rels(tenant string) []merchantsync.Relationship {
	e.t.Helper()
	rs, err := e.store.AllRelationships(e.ctx, tenant, network)
	if err != nil {
		e.t.Fatalf("AllRelationships: %v", err)
	}
	return rs
}

func (e *env) account(tenant string) *merchantsync.Account {
	e.t.Helper()
	a, err := e.store.GetAccount(e.ctx, tenant, network)
	if err != nil || a == nil {
		e.t.Fatalf("GetAccount: %v %v", a, err)
	}
	return a
}

// wantCounts maps the sandbox's raw statuses to normalized counts.
func (e *env) wantCounts(site string) map[merchantsync.Status]int {
	want := map[merchantsync.Status]int{}
	for raw, n := range e.sb.CountsByStatus(site) {
		want[merchantsync.NormalizeRakuten(raw).Status] += n
	}
	return want
}

func equalCounts(a, b map[merchantsync.Status]int) bool {
	for _, s := range merchantsync.Statuses {
		if a[s] != b[s] {
			return false
		}
	}
	return true
}

// secretValues lists every secret value a leak check must not find: client
// secrets, token keys, passwords, and every token Secrets Manager holds.
func (e *env) secretValues(extra ...string) []string {
	e.t.Helper()
	var out []string
	e.mu.Lock()
	for tenant, a := range e.tenants {
		out = append(out, a.ClientSecret, a.Password,
			base64.StdEncoding.EncodeToString([]byte(a.ClientID+":"+a.ClientSecret)))
		sec, err := e.secret(tenant)
		if err == nil {
			out = append(out, sec.RefreshToken, sec.AccessToken)
		}
	}
	e.mu.Unlock()
	out = append(out, extra...)
	sort.Strings(out)
	var nonEmpty []string
	for _, s := range out {
		if s != "" {
			nonEmpty = append(nonEmpty, s)
		}
	}
	return nonEmpty
}

// scanTable returns every item of the table as text.
func (e *env) scanTable() string {
	e.t.Helper()
	var b strings.Builder
	p := dynamodb.NewScanPaginator(e.ddb, &dynamodb.ScanInput{TableName: aws.String(e.store.Table())})
	for p.HasMorePages() {
		out, err := p.NextPage(e.ctx)
		if err != nil {
			e.t.Fatalf("scan: %v", err)
		}
		for _, it := range out.Items {
			fmt.Fprintf(&b, "%#v\n", it)
			for k, v := range it {
				fmt.Fprintf(&b, "%s=%s\n", k, avText(v))
			}
		}
	}
	return b.String()
}

// writeOps is the number of DynamoDB write requests (items for batches).
func (e *env) writeOps() map[string]int {
	ops := e.counter.Ops()
	return map[string]int{
		"PutItem":            ops["PutItem"],
		"UpdateItem":         ops["UpdateItem"],
		"DeleteItem":         ops["DeleteItem"],
		"TransactWriteItems": ops["TransactWriteItems"],
		"BatchWriteItem":     ops["BatchWriteItem"],
		"batchItems":         e.counter.WriteItems(),
	}
}

func avText(v types.AttributeValue) string {
	switch x := v.(type) {
	case *types.AttributeValueMemberS:
		return x.Value
	case *types.AttributeValueMemberN:
		return x.Value
	case *types.AttributeValueMemberBOOL:
		return fmt.Sprint(x.Value)
	case *types.AttributeValueMemberM:
		var b strings.Builder
		for k, vv := range x.Value {
			fmt.Fprintf(&b, "%s=%s;", k, avText(vv))
		}
		return b.String()
	case *types.AttributeValueMemberL:
		var b strings.Builder
		for _, vv := range x.Value {
			b.WriteString(avText(vv) + ";")
		}
		return b.String()
	case *types.AttributeValueMemberSS:
		return strings.Join(x.Value, ";")
	case *types.AttributeValueMemberB:
		return string(x.Value)
	}
	return fmt.Sprintf("%v", v)
}
