package dynamo_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/merchantsync/merchantsync/internal/dynamo"
	"github.com/merchantsync/merchantsync/internal/dynamo/dynamotest"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

func TestMain(m *testing.M) { dynamotest.Main(m) }

const rk = merchantsync.NetworkRakuten

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

type env struct {
	c       *dynamodb.Client
	table   string
	s       *dynamo.Store
	counter *dynamotest.Counter
	faults  *dynamotest.Faults
}

func setup(t testing.TB, opts ...dynamotest.Option) *env {
	t.Helper()
	e := &env{counter: dynamotest.NewCounter(), faults: dynamotest.NewFaults()}
	e.c = dynamotest.Client(t, append([]dynamotest.Option{dynamotest.WithCounter(e.counter), dynamotest.WithFaults(e.faults)}, opts...)...)
	e.table = dynamotest.NewTable(t, e.c)
	e.s = dynamo.New(e.c, e.table)
	e.counter.Reset()
	return e
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantCode(t testing.TB, err error, code string) {
	t.Helper()
	if got := merchantsync.ErrorCode(err); got != code {
		t.Fatalf("error code = %q, want %q (err: %v)", got, code, err)
	}
}

// conn is the connection id connected gives every account.
const conn = "20250301T120000.000Z-00000000c1"

// connected makes tenant's rakuten account with IDs and credentials
// (connection conn).
func connected(t testing.TB, s *dynamo.Store, tenant string) {
	t.Helper()
	c := context.Background()
	_, err := s.SaveIDs(c, tenant, rk, "lMh2Xiq9xN0", "1234567", t0)
	must(t, err)
	_, err = s.MarkConnected(c, tenant, rk, merchantsync.Connection{ID: conn, Username: "pub@example.com"}, t0)
	must(t, err)
}

// connect is MarkConnected of connection id, without the replaced id.
func connect(c context.Context, s *dynamo.Store, tenant, id, site, user string) error {
	_, err := s.MarkConnected(c, tenant, rk, merchantsync.Connection{ID: id, SiteID: site, Username: user}, t0)
	return err
}

// fenced connects tenant and takes its sync lease, as a sync does before
// writing relationships, and returns the fence of those writes.
func fenced(t testing.TB, s *dynamo.Store, tenant string) merchantsync.Fence {
	t.Helper()
	connected(t, s, tenant)
	f := merchantsync.Fence{TenantID: tenant, Network: rk, ConnectionID: conn, LeaseHolder: "run-1~a"}
	ok, err := s.AcquireLease(context.Background(), tenant, rk, conn, f.LeaseHolder, t0, t0.Add(time.Hour))
	must(t, err)
	if !ok {
		t.Fatal("lease not taken")
	}
	return f
}

// scan returns every item of the table.
func (e *env) scan(t testing.TB) []map[string]types.AttributeValue {
	t.Helper()
	var out []map[string]types.AttributeValue
	p := dynamodb.NewScanPaginator(e.c, &dynamodb.ScanInput{TableName: aws.String(e.table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		res, err := p.NextPage(context.Background())
		must(t, err)
		out = append(out, res.Items...)
	}
	return out
}

// snapshot renders every item of tenant's partition, sorted, for comparison.
func (e *env) snapshot(t testing.TB, tenant string) []string {
	t.Helper()
	var out []string
	for _, item := range e.scan(t) {
		var m map[string]any
		must(t, attributevalue.UnmarshalMap(item, &m))
		if m["PK"] == "TENANT#"+tenant {
			out = append(out, fmt.Sprintf("%v", m))
		}
	}
	sort.Strings(out)
	return out
}

// due returns every due account over all shards, as "tenant/network".
func (e *env) due(t testing.TB) []string {
	t.Helper()
	var out []string
	for shard := range dynamo.Shards {
		_, err := e.s.QueryDue(context.Background(), shard, func(page []merchantsync.AccountKey) error {
			for _, d := range page {
				if got := dynamo.ShardOf(d.TenantID); got != shard {
					t.Errorf("%s found in shard %d, belongs in %d", d.TenantID, shard, got)
				}
				out = append(out, d.TenantID+"/"+d.Network)
			}
			return nil
		})
		must(t, err)
	}
	sort.Strings(out)
	return out
}

func rel(tenant string, region int, mid int64, status merchantsync.Status) merchantsync.Relationship {
	return merchantsync.Relationship{
		TenantID: tenant, Network: rk, RegionNetwork: region, AdvertiserID: mid,
		Name: fmt.Sprintf("Merchant %d", mid), Status: status, RawStatus: string(status),
		ProgramStatus: "active", StatusChangedAt: t0, FirstSeenAt: t0, LastSeenAt: t0,
	}
}

func run(tenant, id string, state merchantsync.RunState) merchantsync.Run {
	return merchantsync.Run{RunID: id, TenantID: tenant, Network: rk, Trigger: merchantsync.TriggerManual, State: state, QueuedAt: t0}
}
