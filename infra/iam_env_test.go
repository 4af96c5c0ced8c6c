package infra

// The IAM-vs-code test's system: every function built by internal/app from
// the environment the translated template gives it, on local services, and
// the drive that takes each through its routes and paths.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/merchantsync/merchantsync/internal/app"
	"github.com/merchantsync/merchantsync/internal/dynamo/dynamotest"
	"github.com/merchantsync/merchantsync/internal/httpapi"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/notify"
	"github.com/merchantsync/merchantsync/internal/queue"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
	"github.com/merchantsync/merchantsync/internal/syncer"
	"github.com/merchantsync/merchantsync/internal/testenv"
)

// iamStage is the stage the IAM test deploys.
const iamStage = "dev"

// iamEnv is the local system and one recorder per function.
type iamEnv struct {
	t        *testing.T
	ctx      context.Context
	cfn      map[string]any // template.yaml as SAM translates it
	stack    stack          // what its intrinsics resolve to here
	res      resources
	sb       *sandbox.Server
	sqs      *sqs.Client // the tests' own (unrecorded) client of the queue
	queueURL string
	rec      map[string]*recorder // by logical id
	out      map[string]*os.File  // each function's stdout: a file, as safe as stdout for concurrent writers
	cfg      map[string]app.Config
	rewrite  map[string]string // template resource ids → the local stand-ins' (the KMS key)

	api, creds, syncNow, hooks *httpapi.Router
	worker                     *syncer.Worker
	scheduler                  *syncer.Scheduler
	notifier                   *notify.Notifier
	deliverer                  *notify.Deliverer
	driven                     map[string]bool  // route keys invoked
	ddb                        *dynamodb.Client // the test's own (unrecorded) client of the table
}

// config loads the function's configuration with app.Load from its template
// environment, then gives its AWS clients the recording transport.
func (e *iamEnv) config(id string, endpoints map[string]string) app.Config {
	e.t.Helper()
	vars := functionEnvironment(e.t, e.cfn, e.stack, id)
	out, err := os.Create(filepath.Join(e.t.TempDir(), id+".stdout"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { out.Close() })
	e.out[id] = out
	c, err := app.Load(e.ctx, func(k string) string { return vars[k] }, e.out[id])
	if err != nil {
		e.t.Fatalf("%s: app.Load: %v", id, err)
	}
	rec := newRecorder(endpoints)
	rec.rewrite = e.rewrite
	e.rec[id] = rec
	c.AWS = aws.Config{
		Region:       iamRegion,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDIAMTEST", "iam-test-secret", ""),
		HTTPClient:   &http.Client{Transport: rec, Timeout: 30 * time.Second},
		BaseEndpoint: aws.String("http://aws.recorded.invalid"),
	}
	return c
}

func newIAMEnv(t *testing.T) *iamEnv {
	t.Helper()
	e := &iamEnv{
		t: t, ctx: context.Background(), cfn: translateTemplate(t, iamStage),
		rec: map[string]*recorder{}, out: map[string]*os.File{}, cfg: map[string]app.Config{}, driven: map[string]bool{},
	}
	ddb := dynamotest.Client(t)
	e.ddb = ddb
	table := dynamotest.NewTable(t, ddb)
	e.queueURL, _ = testenv.NewQueue(t, testenv.QueueOptions{VisibilityTimeout: 30, DLQ: true, MaxReceiveCount: 4})
	deliveriesURL, _ := testenv.NewQueue(t, testenv.QueueOptions{VisibilityTimeout: 30, DLQ: true, MaxReceiveCount: 8})
	e.rewrite = map[string]string{keyID: testenv.NewKey(t)}
	e.sqs = testenv.SQSClient(t)
	e.sb = sandbox.New(sandbox.Options{})
	sbSrv := httptest.NewServer(e.sb)
	t.Cleanup(sbSrv.Close)
	e.res = resources{table: table, queueURL: e.queueURL, deliveriesURL: deliveriesURL, bus: testenv.NewEventBus(t)}
	e.stack = newStack(t, e.cfn, map[string]string{
		"Stage": iamStage, "RakutenBaseUrl": sbSrv.URL,
		// A deployment choice; high so that the test never waits on the limiter.
		"RakutenRequestsPerMinute": "6000",
	}, e.res)

	endpoints := map[string]string{
		"dynamodb": dynamotest.Endpoint(t), "secretsmanager": testenv.MotoEndpoint(t), "sqs": testenv.MotoEndpoint(t),
		"kms": testenv.MotoEndpoint(t), "events": testenv.MotoEndpoint(t),
	}
	for id := range resourcesOfType(e.cfn, "AWS::Lambda::Function") {
		e.cfg[id] = e.config(id, endpoints)
	}
	e.api = e.cfg["ApiFunction"].APIHandler()
	e.creds = e.cfg["CredentialsFunction"].CredentialsHandler()
	e.syncNow = e.cfg["SyncNowFunction"].SyncNowHandler()
	e.worker = e.cfg["SyncFunction"].SyncWorker()
	e.scheduler = e.cfg["SchedulerFunction"].Scheduler()
	e.hooks = e.cfg["WebhooksFunction"].WebhooksHandler()
	e.notifier = e.cfg["NotifyFunction"].Notifier()
	e.deliverer = e.cfg["DeliverFunction"].Deliverer()
	if n := len(e.rec); n != 8 {
		t.Fatalf("template has %d functions, the test drives 8", n)
	}
	return e
}

// call invokes a route of r as tenant through lambda.NewHandler, with the
// event API Gateway sends, and checks the status.
func (e *iamEnv) call(r *httpapi.Router, tenant, key string, params, query map[string]string, body string, status int) map[string]any {
	e.t.Helper()
	method, p, _ := strings.Cut(key, " ")
	p = strings.ReplaceAll(p, "{network}", merchantsync.NetworkRakuten)
	for k, v := range params {
		p = strings.ReplaceAll(p, "{"+k+"}", v)
	}
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RawPath: p, Body: body, QueryStringParameters: query,
		Headers: map[string]string{"content-type": "application/json"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID: "iam", HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: p},
			Authorizer: &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
				JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"tenant_id": tenant}},
			},
		},
	}
	payload, _ := json.Marshal(ev)
	out, err := lambda.NewHandler(r.Handle).Invoke(e.ctx, payload)
	if err != nil {
		e.t.Fatalf("%s: %v", key, err)
	}
	var resp events.APIGatewayV2HTTPResponse
	_ = json.Unmarshal(out, &resp)
	if resp.StatusCode != status {
		e.t.Fatalf("%s %v %v as %s = %d %s, want %d", key, params, query, tenant, resp.StatusCode, resp.Body, status)
	}
	e.driven[key] = true
	var b map[string]any
	_ = json.Unmarshal([]byte(resp.Body), &b)
	return b
}

// deliver plays the event source mapping (with its own, unrecorded SQS
// client): it hands the queued messages to the sync function's handler
// through lambda.NewHandler until want were handled.
func (e *iamEnv) deliver(want int) {
	e.t.Helper()
	p := &queue.Poller{
		Client: e.sqs, QueueURL: e.queueURL, WaitSeconds: 1, Timeout: time.Minute,
		Handler: func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			payload, _ := json.Marshal(ev)
			out, err := lambda.NewHandler(e.worker.Handle).Invoke(ctx, payload)
			var resp events.SQSEventResponse
			if err == nil {
				err = json.Unmarshal(out, &resp)
			}
			if len(resp.BatchItemFailures) > 0 {
				e.t.Errorf("sync function returned %d messages", len(resp.BatchItemFailures))
			}
			return resp, err
		},
	}
	deadline := time.Now().Add(30 * time.Second)
	for got := 0; got < want; {
		if time.Now().After(deadline) {
			e.t.Fatalf("sync function handled %d of %d messages", got, want)
		}
		n, err := p.PollOnce(e.ctx, queueARN(e.res.queueURL))
		if err != nil {
			e.t.Fatal(err)
		}
		got += n
	}
}

func (e *iamEnv) lastRunState(tenant string) string {
	e.t.Helper()
	b := e.call(e.api, tenant, "GET /v1/networks/{network}", nil, nil, "", 200)
	lr, _ := b["lastRun"].(map[string]any)
	s, _ := lr["state"].(string)
	return s
}

// drive runs every function through its routes and paths, success and the
// main failures: connect, reconnect, disconnect, delete ids, sync now (and
// its queue failing), sync success with changes, a duplicate delivery, a
// sync that finds the account disconnected, reauth, and the scheduler with
// due accounts.
func (e *iamEnv) drive() {
	t := e.t
	const (
		putIDs      = "PUT /v1/networks/{network}/ids"
		deleteIDs   = "DELETE /v1/networks/{network}/ids"
		putCreds    = "PUT /v1/networks/{network}/credentials"
		deleteCreds = "DELETE /v1/networks/{network}/credentials"
		postSync    = "POST /v1/networks/{network}/sync"
	)
	accounts := map[string]sandbox.Account{}
	for i, tenant := range []string{"t1", "t2"} {
		a := sandbox.Account{ClientID: "client-" + tenant, ClientSecret: "secret-" + tenant,
			SiteID: fmt.Sprint(4022211 + i), Username: "user-" + tenant, Password: "pw-" + tenant}
		e.sb.AddAccount(a)
		e.sb.SeedMerchants(a.SiteID, 30, int64(i+1))
		accounts[tenant] = a
	}
	credBody := func(tenant, password string) string {
		a := accounts[tenant]
		b, _ := json.Marshal(map[string]string{"clientId": a.ClientID, "clientSecret": a.ClientSecret,
			"siteId": a.SiteID, "username": a.Username, "password": password})
		return string(b)
	}

	// api: reads of an empty tenant, settings before any IDs exist (the
	// transaction condition-checks the absent account), IDs (and a refused one).
	e.call(e.api, "t1", "GET /v1/networks", nil, nil, "", 200)
	e.call(e.api, "t1", "GET /v1/networks/{network}", nil, nil, "", 200)
	e.call(e.api, "t1", "PUT /v1/merchantsync/settings", nil, nil, `{"enabled":true}`, 200)
	e.call(e.api, "t1", putIDs, nil, nil, `{"affiliateId":"4022211"}`, 400)
	// credentials: connecting before the IDs are saved is refused.
	e.call(e.creds, "t1", putCreds, nil, nil, credBody("t1", "pw-t1"), 409)
	// sync now: nothing to sync yet.
	e.call(e.syncNow, "t1", postSync, nil, nil, "", 409)
	for _, tenant := range []string{"t1", "t2"} {
		e.call(e.api, tenant, putIDs, nil, nil, `{"affiliateId":"lMh2Xiq9xN0","siteId":"`+accounts[tenant].SiteID+`"}`, 200)
	}
	e.call(e.api, "t1", "GET /v1/merchantsync/settings", nil, nil, "", 200)
	e.call(e.api, "t1", "PUT /v1/merchantsync/settings", nil, nil, `{"enabled":false}`, 200)
	e.call(e.syncNow, "t1", postSync, nil, nil, "", 409) // disabled
	e.call(e.api, "t1", "PUT /v1/merchantsync/settings", nil, nil, `{"enabled":true}`, 200)

	// credentials: a refused password, connect, connect again (new
	// version of the existing secret), disconnect, reconnect.
	e.call(e.creds, "t1", putCreds, nil, nil, credBody("t1", "wrong"), 422)
	e.call(e.creds, "t1", putCreds, nil, nil, credBody("t1", "pw-t1"), 200)
	e.call(e.creds, "t1", putCreds, nil, nil, credBody("t1", "pw-t1"), 200)
	e.call(e.creds, "t1", deleteCreds, nil, nil, "", 200)
	e.call(e.creds, "t1", putCreds, nil, nil, credBody("t1", "pw-t1"), 200)
	e.call(e.creds, "t2", putCreds, nil, nil, credBody("t2", "pw-t2"), 200)

	// sync now: SQS refuses the message (the run is marked failed), then
	// a sync that is queued, joined, waited for, and run by the sync function.
	e.rec["SyncNowFunction"].refuseNext("AmazonSQS.SendMessage")
	e.call(e.syncNow, "t1", postSync, nil, nil, "", 500)
	e.call(e.syncNow, "t1", postSync, nil, nil, "", 202)
	e.call(e.syncNow, "t1", postSync, nil, map[string]string{"wait": "1"}, "", 202) // joins, times out
	e.deliver(1)
	if s := e.lastRunState("t1"); s != "succeeded" {
		t.Fatalf("first sync: %s", s)
	}
	// Rakuten changes statuses: the second sync writes changes. Its access
	// token has expired and Rakuten refuses the token key: it falls back to
	// the refresh token, and saves the rotated one.
	e.sb.ExpireAccessTokens()
	e.sb.SetTokenKeyEnabled(false)
	for _, mm := range e.sb.Merchants(accounts["t1"].SiteID)[:3] {
		_ = e.sb.SetStatus(accounts["t1"].SiteID, mm.MID, sandbox.StatusTempDecline)
	}
	run := e.call(e.syncNow, "t1", postSync, nil, nil, "", 202)
	e.deliver(1)
	// The same message delivered again: a duplicate of a finished run.
	dup := merchantsync.SyncRequest{TenantID: "t1", Network: merchantsync.NetworkRakuten, RunID: run["runId"].(string), Trigger: merchantsync.TriggerManual}
	if err := queue.New(e.sqs, e.queueURL).Send(e.ctx, dup); err != nil {
		t.Fatal(err)
	}
	e.deliver(1)
	e.sb.SetTokenKeyEnabled(true)

	// The daily schedule: both accounts are due.
	ev := renderScheduleInput(t, scheduleInput(t, e.cfn, "Daily"), time.Now(), "d32c5kddcf5bb8c3", 1)
	out, err := lambda.NewHandler(e.scheduler.Handle).Invoke(e.ctx, ev)
	if err != nil {
		t.Fatalf("scheduler: %v", err)
	}
	var sres syncer.ScheduleResult
	_ = json.Unmarshal(out, &sres)
	if sres.Enqueued != 2 {
		t.Fatalf("scheduler enqueued %d, want 2: %s", sres.Enqueued, out)
	}
	e.deliver(2)

	// The hourly schedule: t1 alone is on "1h"; its incremental run is
	// skipped, a full one having just finished.
	e.call(e.api, "t1", "PUT /v1/merchantsync/settings", nil, nil, `{"enabled":true,"syncEvery":"1h"}`, 200)
	ev = renderScheduleInput(t, scheduleInput(t, e.cfn, "Hourly"), time.Now(), "e43d6leedg6cc9d4", 1)
	if out, err = lambda.NewHandler(e.scheduler.Handle).Invoke(e.ctx, ev); err != nil {
		t.Fatalf("hourly scheduler: %v", err)
	}
	if _ = json.Unmarshal(out, &sres); sres.Enqueued != 1 || sres.Mode != "incremental" {
		t.Fatalf("hourly scheduler: %s, want t1 enqueued", out)
	}
	e.deliver(1)

	// A sync that finds its account disconnected meanwhile, then DELETE ids.
	e.call(e.syncNow, "t2", postSync, nil, nil, "", 202)
	e.call(e.creds, "t2", deleteCreds, nil, nil, "", 200)
	e.deliver(1)
	t2runs := e.call(e.api, "t2", "GET /v1/networks/{network}/sync-runs", nil, map[string]string{"limit": "1"}, "", 200)
	if st := t2runs["items"].([]any)[0].(map[string]any)["state"]; st != "skipped" {
		t.Fatalf("t2's sync after its disconnect: %v, want skipped", st)
	}
	e.call(e.creds, "t2", putCreds, nil, nil, credBody("t2", "pw-t2"), 200)
	e.call(e.creds, "t2", deleteIDs, nil, nil, "", 200)

	// Reauth: Rakuten refuses every token of t1's site.
	e.sb.ExpireAccessTokens()
	e.sb.RevokeRefreshTokens(accounts["t1"].SiteID)
	e.sb.SetTokenKeyEnabled(false)
	e.call(e.syncNow, "t1", postSync, nil, nil, "", 202)
	e.deliver(1)
	if b := e.call(e.api, "t1", "GET /v1/networks/{network}", nil, nil, "", 200); b["state"] != "reauth_required" {
		t.Fatalf("after refused tokens: state %v", b["state"])
	}
	e.call(e.syncNow, "t1", postSync, nil, nil, "", 409)

	// api: every read, paged.
	runs := e.call(e.api, "t1", "GET /v1/networks/{network}/sync-runs", nil, map[string]string{"limit": "1"}, "", 200)
	e.call(e.api, "t1", "GET /v1/networks/{network}/sync-runs", nil, map[string]string{"cursor": runs["nextCursor"].(string)}, "", 200)
	id := runs["items"].([]any)[0].(map[string]any)["runId"].(string)
	e.call(e.api, "t1", "GET /v1/networks/{network}/sync-runs/{runId}", map[string]string{"runId": id}, nil, "", 200)
	e.call(e.api, "t1", "GET /v1/networks/{network}/sync-runs/{runId}", map[string]string{"runId": "nope"}, nil, "", 404)
	rels := e.call(e.api, "t1", "GET /v1/networks/{network}/relationships", nil, map[string]string{"limit": "5"}, "", 200)
	e.call(e.api, "t1", "GET /v1/networks/{network}/relationships", nil, map[string]string{"cursor": rels["nextCursor"].(string), "status": "joined"}, "", 200)
	e.call(e.api, "t1", "GET /v1/networks/{network}/changes", nil, map[string]string{"limit": "1"}, "", 200)
	e.call(e.api, "t1", "GET /v1/networks/{network}/changes", nil, map[string]string{"since": "2020-01-01T00:00:00Z"}, "", 200)

	e.driveWebhooks()

	// Every route of every router was driven.
	for fn, r := range map[string]*httpapi.Router{"ApiFunction": e.api, "CredentialsFunction": e.creds, "SyncNowFunction": e.syncNow, "WebhooksFunction": e.hooks} {
		for _, k := range r.Keys() {
			if !e.driven[k] {
				t.Errorf("%s: route %s is not driven by the IAM test", fn, k)
			}
		}
	}
}

// codePermissions is, per function, the set of "action resource" pairs its
// code needed.
func (e *iamEnv) codePermissions() map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for id, rec := range e.rec {
		out[id] = rec.permissionsUsed()
	}
	return out
}

// stdout is what a function wrote to its stdout: log and EMF lines.
func (e *iamEnv) stdout(id string) string {
	e.t.Helper()
	b, err := os.ReadFile(e.out[id].Name())
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}
