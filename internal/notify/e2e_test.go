package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"

	"github.com/merchantsync/merchantsync/internal/bus"
	"github.com/merchantsync/merchantsync/internal/devstack"
	"github.com/merchantsync/merchantsync/internal/dynamo"
	"github.com/merchantsync/merchantsync/internal/dynamo/dynamotest"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/notify"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
	"github.com/merchantsync/merchantsync/internal/syncer"
	"github.com/merchantsync/merchantsync/internal/testenv"
	"github.com/merchantsync/merchantsync/internal/webhook"
)

// pipeline is the whole event path on local parts: the sync engine writes
// to DynamoDB Local; its stream (read as Lambda's event source would) feeds
// the notifier, which publishes on an EventBridge bus on moto (routed to a
// queue the test reads) and queues deliveries on SQS on moto; the
// deliverer, fed by that queue, calls receivers on 127.0.0.1.
type pipeline struct {
	*hooks
	notifier *notify.Notifier
	engine   *syncer.Engine
	busQueue string
	// crash, when set, is called by every SendDeliveries before sending:
	// it may send part and panic, as a function dying halfway.
	crash func(ds []merchantsync.Delivery) []merchantsync.Delivery
}

type crashingQueue struct {
	p    *pipeline
	next merchantsync.DeliveryQueue
}

func (c crashingQueue) SendDeliveries(ctx context.Context, ds []merchantsync.Delivery) error {
	if c.p.crash != nil {
		ds = c.p.crash(ds)
	}
	return c.next.SendDeliveries(ctx, ds)
}

func newPipeline(t *testing.T) *pipeline {
	p := &pipeline{hooks: newHooks(t)}
	w := p.w
	busName := testenv.NewEventBus(t)
	p.busQueue = testenv.RouteToQueue(t, busName, `{"source":["merchantsync"]}`)
	p.notifier = &notify.Notifier{Webhooks: w.Store, Bus: bus.New(testenv.EventBridgeClient(t), busName),
		Deliveries: crashingQueue{p, p.deliveries}, Decode: dynamo.StreamEvent, Logger: w.Logger}
	p.engine = &syncer.Engine{Store: w.Store, Network: w.Network, Logger: w.Logger}

	desc, err := w.DDB.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String(w.Store.Table())})
	if err != nil {
		t.Fatal(err)
	}
	streams := dynamodbstreams.New(dynamodbstreams.Options{Region: dynamotest.Region, BaseEndpoint: aws.String(dynamotest.Endpoint(t)),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "x", SecretAccessKey: "x"}, nil
		})})
	// The table is new: read its stream from the start, so that no write
	// is missed whenever the poller's first read happens.
	sp := &devstack.StreamPoller{Client: streams, StreamARN: aws.ToString(desc.Table.LatestStreamArn), Interval: 50 * time.Millisecond,
		Handler: p.notifier.Handle, Logger: w.Logger, TrimHorizon: true}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = sp.Run(ctx) })
	wg.Go(func() { _ = p.poller.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return p
}

func (p *pipeline) sync(t *testing.T, tenant string) merchantsync.Run {
	t.Helper()
	run, err := p.engine.Sync(context.Background(), merchantsync.SyncRequest{TenantID: tenant, Network: merchantsync.NetworkRakuten,
		RunID: merchantsync.NewRunID(time.Now()), Trigger: merchantsync.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// churn changes the raw status of n merchants of the tenant's account.
func (p *pipeline) churn(t *testing.T, tenant string, n int) {
	t.Helper()
	site := p.w.Tenant(tenant).SiteID
	for i, m := range p.w.Sandbox.Merchants(site)[:n] {
		next := sandbox.StatusTempDecline
		if m.Status == next {
			next = sandbox.StatusActive
		}
		if err := p.w.Sandbox.SetStatus(site, m.MID, next); err != nil {
			t.Fatalf("churn %d: %v", i, err)
		}
	}
}

// byID groups a receiver's requests by webhook-id.
func byID(reqs []received) map[string][]received {
	out := map[string][]received{}
	for _, r := range reqs {
		id := r.Header.Get(webhook.HeaderID)
		out[id] = append(out[id], r)
	}
	return out
}

func typeOf(r received) (string, map[string]any) {
	var env struct {
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	}
	_ = json.Unmarshal(r.Body, &env)
	return env.Type, env.Data
}

// waitFor polls cond until it holds; the bound is for a broken pipeline,
// not a timing assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The scenario: a receiver registered, 10 merchants churned, a
// sync: the receiver gets 10 relationship.changed and 1 sync.completed,
// each verifiable with the secret (by our Verify and by svix); a receiver
// that answers 500 three times gets each event exactly once more, with the
// same webhook-id; the bus carries the same events with the same ids; the
// account's first sync sends no relationship.changed.
func TestChurnReachesReceivers(t *testing.T) {
	p := newPipeline(t)
	ok, flaky := newReceiver(t, 0), newReceiver(t, 3)
	_, okSecret := p.register(t, "t1", ok.URL+"/hooks")
	_, flakySecret := p.register(t, "t1", flaky.URL+"/hooks")
	p.w.Connect("t1", 120)

	first := p.sync(t, "t1")
	waitFor(t, "the first sync.completed", func() bool { return len(byID(ok.requests())) == 1 })
	if typ, _ := typeOf(ok.requests()[0]); typ != string(webhook.EventSyncCompleted) || first.State != merchantsync.RunSucceeded {
		t.Fatalf("first sync sent %s (run %s); want only sync.completed", typ, first.State)
	}

	p.churn(t, "t1", 10)
	run := p.sync(t, "t1")
	if run.Changes != 10 {
		t.Fatalf("run recorded %d changes, want 10", run.Changes)
	}
	waitFor(t, "12 events at the receiver", func() bool { return len(byID(ok.requests())) == 12 })
	waitFor(t, "each event 4 times at the flaky receiver", func() bool {
		ids := byID(flaky.requests())
		if len(ids) != 12 {
			return false
		}
		for _, rs := range ids {
			if len(rs) < 4 {
				return false
			}
		}
		return true
	})
	// Nothing more is pending: no duplicates beyond the failed attempts.
	waitFor(t, "the deliveries queue to drain", func() bool { return testenv.QueueCount(t, p.url) == 0 })

	changes, _, err := p.w.Store.ListChanges(context.Background(), "t1", merchantsync.NetworkRakuten, time.Time{}, 50, "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[float64]merchantsync.Change{}
	for _, c := range changes {
		want[float64(c.AdvertiserID)] = c
	}
	count := map[string]int{}
	var latencies []time.Duration
	for id, rs := range byID(ok.requests()) {
		if len(rs) != 1 {
			t.Errorf("%s arrived %d times at the receiver that accepts", id, len(rs))
		}
		typ, data := typeOf(rs[0])
		count[typ]++
		if typ == string(webhook.EventRelationshipChanged) {
			c, found := want[data["advertiserId"].(float64)]
			if !found || data["to"] != string(c.To) || data["from"] != string(c.From) || data["runId"] != run.RunID || data["tenantId"] != "t1" {
				t.Errorf("relationship.changed %v does not match a stored change", data)
			}
			at, _ := time.Parse(time.RFC3339Nano, data["changedAt"].(string))
			latencies = append(latencies, rs[0].At.Sub(at))
		}
	}
	if count["relationship.changed"] != 10 || count["sync.completed"] != 2 {
		t.Fatalf("events by type = %v, want 10 relationship.changed and 2 sync.completed", count)
	}
	for id, rs := range byID(flaky.requests()) {
		if len(rs) != 4 {
			t.Errorf("%s arrived %d times at the flaky receiver, want 4 (3 refused + 1)", id, len(rs))
		}
		for _, r := range rs[1:] {
			if string(r.Body) != string(rs[0].Body) {
				t.Errorf("%s: a retry's body differs", id)
			}
		}
	}
	for _, c := range []struct {
		secret webhook.Secret
		reqs   []received
	}{{okSecret, ok.requests()}, {flakySecret, flaky.requests()}} {
		for i, r := range c.reqs {
			if err := webhook.Verify(c.secret.Key(), r.Header, r.Body, time.Now()); err != nil {
				t.Errorf("request %d does not verify: %v", i, err)
			}
		}
		for i, v := range svixVerify(t, c.secret, c.reqs) {
			if v != "verified" {
				t.Errorf("svix on request %d: %s", i, v)
			}
		}
	}
	if slices.Equal(okSecret.Key(), flakySecret.Key()) {
		t.Fatal("two webhooks share a secret")
	}
	// The secrets are in no item and no log line: only sealed.
	table, logs := p.w.ScanTable(), p.w.Logs.String()
	for _, sec := range []webhook.Secret{okSecret, flakySecret} {
		key := strings.TrimPrefix(sec.Reveal(), webhook.SecretPrefix)
		if strings.Contains(table, key) || strings.Contains(logs, key) {
			t.Fatal("a webhook secret is stored or logged in the clear")
		}
	}

	// The bus: the same 12 events, their detail ids the webhook-ids.
	var busIDs []string
	waitFor(t, "12 events on the bus", func() bool {
		for _, m := range testenv.Drain(t, p.busQueue) {
			var env struct {
				DetailType string     `json:"detail-type"`
				Source     string     `json:"source"`
				Detail     bus.Detail `json:"detail"`
			}
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &env); err != nil || env.Source != bus.Source || env.DetailType != env.Detail.Type {
				t.Fatalf("bus event %s: %v", aws.ToString(m.Body), err)
			}
			busIDs = append(busIDs, env.Detail.ID)
		}
		return len(busIDs) >= 12
	})
	for id := range byID(ok.requests()) {
		if !slices.Contains(busIDs, id) {
			t.Errorf("event %s was delivered but not published on the bus", id)
		}
	}

	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	if n := len(latencies); n > 0 {
		t.Logf("change recorded → webhook received: p50 %v, max %v over %d events (local parts; stream poll 50 ms)",
			latencies[n/2].Round(time.Millisecond), latencies[n-1].Round(time.Millisecond), n)
	}
}

// A notifier that dies halfway (after queueing part of a batch's
// deliveries) loses nothing: the stream gives the batch again, every event
// reaches the receiver, and what was sent twice carries the same
// webhook-id, so the receiver can drop it.
func TestNotifierCrashLosesNothing(t *testing.T) {
	p := newPipeline(t)
	rcv := newReceiver(t, 0)
	p.register(t, "t1", rcv.URL)
	p.w.Connect("t1", 60)
	p.sync(t, "t1")
	waitFor(t, "the first sync.completed", func() bool { return len(rcv.requests()) == 1 })

	var crashed atomic.Bool
	p.crash = func(ds []merchantsync.Delivery) []merchantsync.Delivery {
		if len(ds) > 2 && crashed.CompareAndSwap(false, true) {
			half := ds[:len(ds)/2]
			if err := p.deliveries.SendDeliveries(context.Background(), half); err != nil {
				t.Error(err)
			}
			panic(fmt.Sprintf("injected crash after queueing %d of %d deliveries", len(half), len(ds)))
		}
		return ds
	}
	p.churn(t, "t1", 8)
	p.sync(t, "t1")
	waitFor(t, "9 more events", func() bool { return len(byID(rcv.requests())) == 10 })
	if !crashed.Load() {
		t.Fatal("the crash was never injected")
	}
	dup := 0
	for _, rs := range byID(rcv.requests()) {
		dup += len(rs) - 1
		for _, r := range rs[1:] {
			if string(r.Body) != string(rs[0].Body) {
				t.Error("a duplicate's body differs from the first")
			}
		}
	}
	t.Logf("after the crash: 10 distinct events, %d duplicates (same webhook-id)", dup)
	if dup == 0 {
		t.Error("no duplicates: the crash did not happen after part of the batch was queued")
	}
}

// A connection Rakuten refuses sends connection.reauth_required once, and
// the failed run a sync.failed.
func TestReauthRequiredEvent(t *testing.T) {
	p := newPipeline(t)
	rcv := newReceiver(t, 0)
	p.register(t, "t1", rcv.URL, webhook.EventConnectionReauthRequired, webhook.EventSyncFailed)
	p.w.Connect("t1", 10)
	p.sync(t, "t1") // succeeded: not subscribed
	p.w.Sandbox.SetTokenKeyEnabled(false)
	p.w.Sandbox.RevokeRefreshTokens(p.w.Tenant("t1").SiteID)
	p.w.Sandbox.ExpireAccessTokens()
	run := p.sync(t, "t1")
	if run.State != merchantsync.RunFailed {
		t.Fatalf("run %s, want failed", run.State)
	}
	waitFor(t, "2 events", func() bool { return len(rcv.requests()) >= 2 })
	types := map[string]map[string]any{}
	for _, r := range rcv.requests() {
		typ, data := typeOf(r)
		types[typ] = data
	}
	if d := types["connection.reauth_required"]; d == nil || d["network"] != "rakuten" || d["message"] == "" {
		t.Errorf("connection.reauth_required = %v", d)
	}
	if d := types["sync.failed"]; d == nil || d["error"].(map[string]any)["code"] != merchantsync.EReauthRequired {
		t.Errorf("sync.failed = %v", d)
	}
	if len(types) != 2 || len(rcv.requests()) != 2 {
		t.Errorf("got %d requests of types %v, want one of each", len(rcv.requests()), types)
	}
}
