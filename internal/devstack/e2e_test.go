package devstack

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/merchantsync/merchantsync/internal/app"
	"github.com/merchantsync/merchantsync/internal/dynamo/dynamotest"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/queue"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
	"github.com/merchantsync/merchantsync/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// writeCounter counts DynamoDB item writes on the wire: one per PutItem,
// UpdateItem or DeleteItem, one per item of a TransactWriteItems
// (ConditionChecks excluded).
type writeCounter struct {
	next http.RoundTripper
	mu   sync.Mutex
	ops  map[string]int
	// items put in transactions, by kind of sort key (REL, CHANGE, RUN, …)
	putKinds map[string]int
	items    int
}

func (c *writeCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	target := r.Header.Get("X-Amz-Target")
	if strings.HasPrefix(target, "DynamoDB_20120810.") && r.Body != nil {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		op := strings.TrimPrefix(target, "DynamoDB_20120810.")
		c.mu.Lock()
		c.ops[op]++
		switch op {
		case "PutItem", "UpdateItem", "DeleteItem":
			c.items++
		case "TransactWriteItems":
			var in struct {
				TransactItems []struct {
					Put *struct {
						Item map[string]map[string]any
					}
					ConditionCheck any
				}
			}
			_ = json.Unmarshal(body, &in)
			for _, it := range in.TransactItems {
				if it.ConditionCheck != nil {
					continue
				}
				c.items++
				if it.Put != nil {
					sk, _ := it.Put.Item["SK"]["S"].(string)
					kind, _, _ := strings.Cut(sk, "#")
					c.putKinds[kind]++
				}
			}
		}
		c.mu.Unlock()
	}
	return c.next.RoundTrip(r)
}

func (c *writeCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ops, c.putKinds, c.items = map[string]int{}, map[string]int{}, 0
}

// TestLocalStackDailyFlow runs the acceptance flow on the local
// stack's parts: the HTTP gateway invoking the API functions, SQS on moto
// with the poller feeding the sync worker, DynamoDB Local, Secrets Manager
// on moto and the Rakuten sandbox seeded with 1,000 merchants.
func TestLocalStackDailyFlow(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	sb := sandbox.New(sandbox.Options{})
	acct := sandbox.Account{ClientID: "e2e-client", ClientSecret: "e2e-secret", SiteID: "3300001", Username: "e2e", Password: "e2e-password"}
	sb.AddAccount(acct)
	sb.SeedMerchants(acct.SiteID, 1000, 42)
	rakutenSrv := httptest.NewServer(sb)
	defer rakutenSrv.Close()
	queueURL, _ := testenv.NewQueue(t, testenv.QueueOptions{VisibilityTimeout: 60})
	sqsClient := testenv.SQSClient(t)
	ddb := dynamotest.Client(t)
	table := dynamotest.NewTable(t, ddb)

	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "local")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "local")
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamotest.Endpoint(t))
	t.Setenv("AWS_ENDPOINT_URL_SQS", testenv.MotoEndpoint(t))
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", testenv.MotoEndpoint(t))
	env := map[string]string{"TABLE_NAME": table, "SYNC_QUEUE_URL": queueURL, "SECRET_PREFIX": testenv.SecretPrefix(t), "RAKUTEN_BASE_URL": rakutenSrv.URL}
	cfg, err := app.Load(ctx, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	counter := &writeCounter{next: http.DefaultTransport}
	counter.reset()
	cfg.AWS.HTTPClient = &http.Client{Transport: counter}
	cfg.Logger = slog.New(slog.DiscardHandler)

	worker := cfg.SyncWorker()
	poller := &queue.Poller{Client: sqsClient, QueueURL: queueURL, BatchSize: 5, WaitSeconds: 1, Timeout: time.Minute, Handler: worker.Handle}
	go func() { _ = poller.Run(ctx) }()
	gw := httptest.NewServer(&Gateway{Functions: []Function{
		{Name: "api", Router: cfg.APIHandler()},
		{Name: "credentials", Router: cfg.CredentialsHandler()},
		{Name: "syncnow", Router: cfg.SyncNowHandler()},
	}, Logger: cfg.Logger})
	defer gw.Close()

	call := func(method, path, body string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, gw.URL+path, strings.NewReader(body))
		req.Header.Set("X-Tenant-Id", "e2e-tenant")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s = %d %v", method, path, resp.StatusCode, out)
		}
		return out
	}

	call("PUT", "/v1/networks/rakuten/ids", `{"affiliateId":"lMh2Xiq9xN0","siteId":"3300001"}`)
	cb, _ := json.Marshal(map[string]string{"clientId": acct.ClientID, "clientSecret": acct.ClientSecret, "siteId": acct.SiteID, "username": acct.Username, "password": acct.Password})
	if got := call("PUT", "/v1/networks/rakuten/credentials", string(cb)); got["state"] != "connected" {
		t.Fatalf("connect: %v", got)
	}

	run := call("POST", "/v1/networks/rakuten/sync?wait=25", "")
	if run["state"] != "succeeded" || run["merchantsSynced"] != float64(1000) {
		t.Fatalf("first sync = %v", run)
	}
	want := map[string]int{}
	for raw, n := range sb.CountsByStatus(acct.SiteID) {
		want[string(merchantsync.NormalizeRakuten(raw).Status)] += n
	}
	for status, n := range run["counts"].(map[string]any) {
		if int(n.(float64)) != want[status] {
			t.Errorf("counts[%s] = %v, sandbox has %d", status, n, want[status])
		}
	}
	// Connect's password grant and token key are the only token calls (the
	// sync uses the access token connect stored); connect's pull-mode check
	// asks for one row unfiltered and per status (9), the sync for 5 pages.
	if tok, pages := sb.Calls(sandbox.EndpointToken), sb.Calls(sandbox.EndpointPartnerships); tok != 2 || pages != 9+5 {
		t.Errorf("Rakuten calls for connect + first sync = %d token + %d pages, want 2 + 9 + ceil(1000/200)=5", tok, pages)
	}

	// Change 10 statuses at Rakuten, sync again.
	ms := sb.Merchants(acct.SiteID)
	changed := 0
	for i := 0; changed < 10; i += 37 {
		m := ms[i%len(ms)]
		next := sandbox.StatusPending
		if m.Status == sandbox.StatusPending {
			next = sandbox.StatusActive
		}
		if err := sb.SetStatus(acct.SiteID, m.MID, next); err != nil {
			t.Fatal(err)
		}
		changed++
	}
	sb.ResetCalls()
	counter.reset()
	run = call("POST", "/v1/networks/rakuten/sync?wait=25", "")
	if run["state"] != "succeeded" || run["changes"] != float64(10) || run["merchantsSynced"] != float64(1000) {
		t.Fatalf("second sync = %v", run)
	}
	changes := call("GET", "/v1/networks/rakuten/changes?limit=50", "")
	if items := changes["items"].([]any); len(items) != 10 {
		t.Errorf("change events = %d, want 10", len(items))
	}
	if tok, pages := sb.Calls(sandbox.EndpointToken), sb.Calls(sandbox.EndpointPartnerships); tok != 0 || pages != 5 {
		t.Errorf("Rakuten calls for the second sync = %d token + %d pages, want 0 + 5", tok, pages)
	}
	counter.mu.Lock()
	defer counter.mu.Unlock()
	if counter.putKinds["REL"] != 10 || counter.putKinds["CHANGE"] != 10 {
		t.Errorf("transaction puts = %v, want exactly 10 REL and 10 CHANGE items", counter.putKinds)
	}
	// Beyond those 20 items, only run and account items: the manual run's
	// creation, the lease, running state, finish (run + account), release.
	other := counter.items - 20
	t.Logf("second sync: %d DynamoDB item writes (10 relationships + 10 changes + %d run/account), ops %v", counter.items, other, counter.ops)
	if other < 1 || other > 8 {
		t.Errorf("run/account writes = %d, want a small constant (≤ 8)", other)
	}
}
