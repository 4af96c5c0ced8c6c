package syncer

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/rakuten"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
	"github.com/merchantsync/merchantsync/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const network = merchantsync.NetworkRakuten

// env is the sync engine on the shared test world (testenv.World: DynamoDB
// Local, moto, the Rakuten sandbox over HTTP behind a gate), with short
// names for what these tests use most.
type env struct {
	*testenv.World
	t      testing.TB
	gate   *testenv.Gate
	engine *Engine
	// metrics receives the engine's EMF lines.
	metrics *testenv.Buffer
	// sim is the sandbox connect seeds: the World's, or for BenchmarkSync
	// the sandbox in another process.
	sim interface {
		AddAccount(sandbox.Account)
		SeedMerchants(siteID string, n int, seed int64)
		ResetCalls()
	}

	mu       sync.Mutex
	nextSite int
}

func newEnv(t testing.TB) *env {
	t.Helper()
	gate := &testenv.Gate{Path: "partnerships"}
	w := testenv.New(t, func(o *testenv.Options) { o.WrapSandbox = gate.Wrap })
	e := &env{World: w, t: t, gate: gate, metrics: &testenv.Buffer{}, sim: w.Sandbox}
	e.engine = &Engine{
		Store:   w.Store,
		Network: w.Network,
		Now:     w.Clock.Now,
		Logger:  w.Logger,
		Metrics: NewMetrics(e.metrics, "test"),
	}
	return e
}

// useRakuten makes the engine (and connect) use c.
func (e *env) useRakuten(c *rakuten.Client) {
	e.UseRakuten(c)
	e.engine.Network = e.Network
}

// connect creates a tenant the way the API does (testenv.World.Connect) on
// e.sim, with n seeded merchants.
func (e *env) connect(tenant string, n int) sandbox.Account {
	e.t.Helper()
	a := e.account(tenant, n)
	e.ConnectAccount(tenant, a)
	e.sim.ResetCalls()
	return a
}

// connectLegacy creates a tenant as a release before the token key and
// the pull modes did: the password exchanged for a refresh token, which is
// all the secret holds; the account knows neither its auth nor its pull
// mode. Such accounts exist until their first sync on this release.
func (e *env) connectLegacy(tenant string, n int) sandbox.Account {
	e.t.Helper()
	a := e.account(tenant, n)
	now := e.Clock.Now()
	if _, err := e.Store.SaveIDs(e.Ctx, tenant, network, "lMh2Xiq9xN0", a.SiteID, now); err != nil {
		e.t.Fatalf("SaveIDs: %v", err)
	}
	tok, err := e.Rakuten.PasswordGrant(e.Ctx, rakuten.Credentials{ClientID: a.ClientID, ClientSecret: a.ClientSecret, SiteID: a.SiteID}, a.Username, a.Password)
	if err != nil {
		e.t.Fatalf("PasswordGrant: %v", err)
	}
	conn := merchantsync.Connection{ID: merchantsync.NewConnectionID(now), SiteID: a.SiteID, Username: a.Username}
	if err := e.Secrets.CreateCredentials(e.Ctx, merchantsync.ConnectionKey{TenantID: tenant, Network: network, ID: conn.ID}, merchantsync.Credentials{
		ClientID: a.ClientID, ClientSecret: a.ClientSecret, SiteID: a.SiteID, RefreshToken: tok.RefreshToken, AuthScheme: tok.Scheme,
	}); err != nil {
		e.t.Fatalf("CreateCredentials: %v", err)
	}
	if _, err := e.Store.MarkConnected(e.Ctx, tenant, network, conn, now); err != nil {
		e.t.Fatalf("MarkConnected: %v", err)
	}
	e.Track(tenant, a)
	e.sim.ResetCalls()
	e.DDBCalls.Reset()
	return a
}

// account registers a new sandbox application for tenant on e.sim, with n
// seeded merchants.
func (e *env) account(tenant string, n int) sandbox.Account {
	e.mu.Lock()
	e.nextSite++
	site := fmt.Sprintf("%d", 4022200+e.nextSite)
	seed := int64(e.nextSite)
	e.mu.Unlock()
	a := testenv.App(tenant, site)
	e.sim.AddAccount(a)
	if n > 0 {
		e.sim.SeedMerchants(site, n, seed)
	}
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
	e.Clock.Advance(24 * time.Hour)
	run, err := e.engine.Sync(e.Ctx, manual(tenant, e.Clock.Now()))
	if err != nil {
		e.t.Fatalf("Sync: %v", err)
	}
	return run
}

// wantCounts maps the sandbox's raw statuses to normalized counts.
func (e *env) wantCounts(site string) map[merchantsync.Status]int {
	want := map[merchantsync.Status]int{}
	for raw, n := range e.Sandbox.CountsByStatus(site) {
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

// writeOps is the number of DynamoDB write requests, and the items put in
// transactions.
func (e *env) writeOps() map[string]int {
	ops := e.DDBCalls.Ops()
	return map[string]int{
		"PutItem":            ops["PutItem"],
		"UpdateItem":         ops["UpdateItem"],
		"DeleteItem":         ops["DeleteItem"],
		"TransactWriteItems": ops["TransactWriteItems"],
		"BatchWriteItem":     ops["BatchWriteItem"],
		"batchItems":         e.DDBCalls.WriteItems(),
	}
}
