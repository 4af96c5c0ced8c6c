package testenv

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/merchantsync/merchantsync/internal/dynamo"
	"github.com/merchantsync/merchantsync/internal/dynamo/dynamotest"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/queue"
	"github.com/merchantsync/merchantsync/internal/rakuten"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
	"github.com/merchantsync/merchantsync/internal/secrets"
)

// World is one test's merchantsync on real parts: the store on DynamoDB
// Local (a table of its own), the credentials in Secrets Manager and the
// sync queue on moto (names of its own), the Rakuten sandbox over HTTP, and
// a Rakuten client that never sleeps. Every package that tests against the
// system builds it here, and wires the engine or the handlers itself.
type World struct {
	T      testing.TB
	Ctx    context.Context
	Clock  *Clock
	Logs   *Buffer // the JSON log of Logger (debug level)
	Logger *slog.Logger

	// DynamoDB, with requests counted and failures injectable on the wire.
	DDB       *dynamodb.Client
	DDBCalls  *dynamotest.Counter
	DDBFaults *dynamotest.Faults
	Store     *dynamo.Store

	// Secrets Manager, likewise.
	SM           *secretsmanager.Client
	SMCalls      *Counter
	SMFail       *FailRequests
	SecretPrefix string
	Secrets      *secrets.Store

	// The sync queue and its dead-letter queue (MaxReceives receives).
	SQS      *sqs.Client
	QueueURL string
	DLQURL   string
	Queue    *queue.Queue

	Sandbox    *sandbox.Server
	SandboxURL string
	// DirectURL serves the same sandbox without WrapSandbox: for the
	// requests a test must not hold, such as a publisher connecting while
	// a sync is held at the gate.
	DirectURL string
	Rakuten   *rakuten.Client
	Network   *rakuten.Network
	// Sleeps counts the backoff sleeps the Rakuten client skipped.
	Sleeps atomic.Int64

	mu      sync.Mutex
	tenants map[string]sandbox.Account
	sites   int
}

// MaxReceives is the sync queue's maxReceiveCount in every World.
const MaxReceives = 4

// Options adjust a World.
type Options struct {
	// Sandbox configures the Rakuten sandbox.
	Sandbox sandbox.Options
	// WrapSandbox, when set, wraps the sandbox's handler (to hold or count
	// its requests).
	WrapSandbox func(http.Handler) http.Handler
	// DDBAttempts is the DynamoDB client's attempts per operation (0: 3).
	DDBAttempts int
	// QueueVisibility is the sync queue's visibility timeout in seconds (0: 30).
	QueueVisibility int
	// Stream gives the table its stream (dynamotest.WithStream), for
	// tests that read it.
	Stream bool
}

// New builds a World for t.
func New(t testing.TB, opts ...func(*Options)) *World {
	t.Helper()
	var o Options
	for _, fn := range opts {
		fn(&o)
	}
	w := &World{
		T: t, Ctx: context.Background(),
		Clock:     &Clock{t: time.Now().UTC().Truncate(time.Millisecond)},
		Logs:      &Buffer{},
		DDBCalls:  dynamotest.NewCounter(),
		DDBFaults: dynamotest.NewFaults(),
		SMCalls:   &Counter{},
		SMFail:    &FailRequests{},
		tenants:   map[string]sandbox.Account{},
	}
	w.Logger = slog.New(slog.NewJSONHandler(w.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	ddbOpts := []dynamotest.Option{dynamotest.WithCounter(w.DDBCalls), dynamotest.WithFaults(w.DDBFaults)}
	if o.DDBAttempts > 0 {
		ddbOpts = append(ddbOpts, dynamotest.WithMaxAttempts(o.DDBAttempts))
	}
	w.DDB = dynamotest.Client(t, ddbOpts...)
	var tableOpts []dynamotest.TableOption
	if o.Stream {
		tableOpts = append(tableOpts, dynamotest.WithStream())
	}
	w.Store = dynamo.New(w.DDB, dynamotest.NewTable(t, w.DDB, tableOpts...))

	w.SM = SecretsManagerClient(t, WithTransport(func(next http.RoundTripper) http.RoundTripper {
		return w.SMCalls.Wrap(w.SMFail.Wrap(next))
	}))
	w.SecretPrefix = SecretPrefix(t)
	w.Secrets = secrets.New(w.SM, w.SecretPrefix, "")

	w.SQS = SQSClient(t)
	w.QueueURL, w.DLQURL = NewQueue(t, QueueOptions{VisibilityTimeout: cmp(o.QueueVisibility, 30), DLQ: true, MaxReceiveCount: MaxReceives})
	w.Queue = queue.New(w.SQS, w.QueueURL)

	if o.Sandbox.Logger == nil {
		o.Sandbox.Logger = w.Logger
	}
	w.Sandbox = sandbox.New(o.Sandbox)
	var h http.Handler = w.Sandbox
	if o.WrapSandbox != nil {
		h = o.WrapSandbox(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	w.SandboxURL, w.DirectURL = srv.URL, srv.URL
	if o.WrapSandbox != nil {
		direct := httptest.NewServer(w.Sandbox)
		t.Cleanup(direct.Close)
		w.DirectURL = direct.URL
	}
	w.Rakuten = w.RakutenClient(srv.URL)
	w.Network = w.NetworkOf(w.Rakuten)
	return w
}

// RakutenClient returns a client of the Rakuten API at url as the sync uses
// it, except that it never sleeps (backoff returns at once, counted in
// Sleeps) and has no rate limit: tests assert on outcomes, never on time.
func (w *World) RakutenClient(url string, tweak ...func(*rakuten.Config)) *rakuten.Client {
	cfg := rakuten.Config{
		BaseURL: url, RequestsPerMinute: -1, Logger: w.Logger,
		Sleep: func(ctx context.Context, _ time.Duration) error {
			w.Sleeps.Add(1)
			return ctx.Err()
		},
	}
	for _, fn := range tweak {
		fn(&cfg)
	}
	return rakuten.New(cfg)
}

// NetworkOf is the Network port on client c and the World's secrets.
func (w *World) NetworkOf(c *rakuten.Client) *rakuten.Network {
	return &rakuten.Network{Client: c, Credentials: w.Secrets, Now: w.Clock.Now}
}

// UseRakuten makes the World's Network (and Connect) use c.
func (w *World) UseRakuten(c *rakuten.Client) {
	w.Rakuten = c
	w.Network = w.NetworkOf(c)
}

// App is tenant's Rakuten application for site, with credentials a leak
// check can recognise.
func App(tenant, site string) sandbox.Account {
	return sandbox.Account{
		ClientID:     "client-" + tenant,
		ClientSecret: "CLIENTSECRET-" + tenant + "-s3cr3t",
		SiteID:       site,
		Username:     "user-" + tenant,
		Password:     "PASSWORD-" + tenant + "-pw",
	}
}

// NewAccount registers a sandbox application for a new site of tenant,
// with n seeded merchants (n may be 0), and returns it.
func (w *World) NewAccount(tenant string, n int) sandbox.Account {
	w.mu.Lock()
	w.sites++
	site := fmt.Sprint(4022200 + w.sites)
	seed := int64(w.sites)
	w.mu.Unlock()
	a := App(tenant, site)
	w.Sandbox.AddAccount(a)
	if n > 0 {
		w.Sandbox.SeedMerchants(site, n, seed)
	}
	return a
}

// Connect creates tenant the way the API does: IDs saved, the publisher's
// credentials verified by the Network (the password used once), stored as a
// new connection's secret, the account marked connected. The sandbox site
// gets n seeded merchants. Calls and counters are reset afterwards.
func (w *World) Connect(tenant string, n int) sandbox.Account {
	w.T.Helper()
	return w.ConnectAccount(tenant, w.NewAccount(tenant, n))
}

// ConnectAccount is Connect with an existing sandbox account.
func (w *World) ConnectAccount(tenant string, a sandbox.Account) sandbox.Account {
	w.T.Helper()
	now := w.Clock.Now()
	if _, err := w.Store.SaveIDs(w.Ctx, tenant, merchantsync.NetworkRakuten, "lMh2Xiq9xN0", a.SiteID, now); err != nil {
		w.T.Fatalf("SaveIDs: %v", err)
	}
	got, err := w.Network.Connect(w.Ctx, merchantsync.Login{ClientID: a.ClientID, ClientSecret: a.ClientSecret,
		SiteID: a.SiteID, Username: a.Username, Password: a.Password})
	if err != nil {
		w.T.Fatalf("Connect: %v", err)
	}
	conn := merchantsync.Connection{ID: merchantsync.NewConnectionID(now), SiteID: a.SiteID, Username: a.Username,
		Auth: got.Auth, PullMode: got.Mode, PullModeCheckedAt: got.CheckedAt}
	k := merchantsync.ConnectionKey{TenantID: tenant, Network: merchantsync.NetworkRakuten, ID: conn.ID}
	if err := w.Secrets.CreateCredentials(w.Ctx, k, got.Credentials); err != nil {
		w.T.Fatalf("CreateCredentials: %v", err)
	}
	if _, err := w.Store.MarkConnected(w.Ctx, tenant, merchantsync.NetworkRakuten, conn, now); err != nil {
		w.T.Fatalf("MarkConnected: %v", err)
	}
	w.Track(tenant, a)
	w.Sandbox.ResetCalls()
	w.DDBCalls.Reset()
	return a
}

// Track records that tenant connected with a some other way than Connect,
// for Tenant and the leak check (SecretValues).
func (w *World) Track(tenant string, a sandbox.Account) {
	w.mu.Lock()
	w.tenants[tenant] = a
	w.mu.Unlock()
}

// Tenant returns the sandbox account tenant was connected with.
func (w *World) Tenant(tenant string) sandbox.Account {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.tenants[tenant]
}

// Account returns tenant's rakuten account, failing the test when absent.
func (w *World) Account(tenant string) *merchantsync.Account {
	w.T.Helper()
	a, err := w.Store.GetAccount(w.Ctx, tenant, merchantsync.NetworkRakuten)
	if err != nil || a == nil {
		w.T.Fatalf("GetAccount(%s): %v %v", tenant, a, err)
	}
	return a
}

// Credentials reads the secret of tenant's current connection.
func (w *World) Credentials(tenant string) (*merchantsync.Credentials, error) {
	a, err := w.Store.GetAccount(w.Ctx, tenant, merchantsync.NetworkRakuten)
	if err != nil {
		return nil, err
	}
	if a == nil || a.ConnectionID == "" {
		return nil, merchantsync.Errorf(merchantsync.ENotConnected, "%s has no connection", tenant)
	}
	return w.Secrets.GetCredentials(w.Ctx, merchantsync.ConnectionKey{TenantID: tenant, Network: merchantsync.NetworkRakuten, ID: a.ConnectionID})
}

// Relationships returns every stored relationship of tenant.
func (w *World) Relationships(tenant string) []merchantsync.Relationship {
	w.T.Helper()
	rs, err := w.Store.AllRelationships(w.Ctx, tenant, merchantsync.NetworkRakuten)
	if err != nil {
		w.T.Fatalf("AllRelationships: %v", err)
	}
	return rs
}

// StoredSecrets returns every secret of the World (name → value).
func (w *World) StoredSecrets() map[string]string {
	w.T.Helper()
	return SecretValues(w.T, w.SecretPrefix+"/")
}

// SecretValues lists every value a leak check must not find anywhere but
// in Secrets Manager: each connected tenant's client secret, token key and
// password, every token Secrets Manager holds, and extra.
func (w *World) SecretValues(extra ...string) []string {
	w.T.Helper()
	var out []string
	w.mu.Lock()
	for _, a := range w.tenants {
		out = append(out, a.ClientSecret, a.Password, base64.StdEncoding.EncodeToString([]byte(a.ClientID+":"+a.ClientSecret)))
	}
	w.mu.Unlock()
	for _, v := range w.StoredSecrets() {
		for _, field := range []string{"refreshToken", "accessToken"} {
			if tok := jsonField(v, field); tok != "" {
				out = append(out, tok)
			}
		}
	}
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

// ScanTable renders every item of the World's table as text, every
// attribute as name=value on a line of its own.
func (w *World) ScanTable() string {
	w.T.Helper()
	var b strings.Builder
	p := dynamodb.NewScanPaginator(w.DDB, &dynamodb.ScanInput{TableName: aws.String(w.Store.Table())})
	for p.HasMorePages() {
		out, err := p.NextPage(w.Ctx)
		if err != nil {
			w.T.Fatalf("scan: %v", err)
		}
		for _, it := range out.Items {
			for k, v := range it {
				fmt.Fprintf(&b, "%s=%s\n", k, AttrText(v))
			}
		}
	}
	return b.String()
}
