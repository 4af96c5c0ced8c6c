package infra

// The IAM-vs-code test: every function's real handler, built by internal/app
// from the environment template.yaml gives it, is driven through all its
// routes and paths against local services (DynamoDB Local, the Secrets
// Manager fake, goaws, the Rakuten sandbox) with AWS clients whose HTTP
// transport records each service operation and the resource it names. The
// IAM permissions (action on resource) the code needed are then compared
// with the function's template policy, both ways.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/merchantsync/merchantsync/internal/app"
	"github.com/merchantsync/merchantsync/internal/dynamo/dynamotest"
	"github.com/merchantsync/merchantsync/internal/httpapi"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/queue"
	"github.com/merchantsync/merchantsync/internal/queue/sqstest"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
	"github.com/merchantsync/merchantsync/internal/secrets/secretstest"
	"github.com/merchantsync/merchantsync/internal/syncer"
)

func TestMain(tm *testing.M) { dynamotest.Main(tm) }

// The account, region and stage the template's pseudo parameters resolve to.
const (
	iamAccount = "123456789012"
	iamRegion  = "us-east-1"
	iamStage   = "dev"
)

// checkedServices are the services whose actions must match the code exactly.
var checkedServices = []string{"dynamodb", "secretsmanager", "sqs"}

// eventSourceActions are granted to SyncFunction for the SQS event source
// mapping: Lambda's poller calls them with the function's role, the code
// never does.
var eventSourceActions = []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"}

// ---- resources ------------------------------------------------------------

// resources are the concrete ARNs of this test's stand-ins for the
// template's resources.
type resources struct {
	table, queueURL, sandboxURL string
}

func (r resources) tableARN(name string) string {
	return fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s", iamRegion, iamAccount, name)
}

func (r resources) queueARN(queueURL string) string {
	u, _ := url.Parse(queueURL)
	return fmt.Sprintf("arn:aws:sqs:%s:%s:%s", iamRegion, iamAccount, path.Base(u.Path))
}

// secretARN is the ARN Secrets Manager gives a secret: its name plus a
// random 6-character suffix.
func (r resources) secretARN(name string) string {
	return fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-AbCdEf", iamRegion, iamAccount, name)
}

func (r resources) keyARN() string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:key/1234abcd-12ab-34cd-56ef-1234567890ab", iamRegion, iamAccount)
}

// resolve turns a template value (a string or an intrinsic) into a string:
// Ref and GetAtt of the table, queue, key and parameters, and Fn::Sub.
func (r resources) resolve(v any) (string, error) {
	refs := map[string]string{
		"Table": r.table, "SyncQueue": r.queueURL, "SecretsKey": "1234abcd-12ab-34cd-56ef-1234567890ab",
		"Stage": iamStage, "RakutenBaseUrl": r.sandboxURL, "SyncHourUtc": "3",
		// A deployment choice; high so that the test never waits on the limiter.
		"RakutenRequestsPerMinute": "6000",
		"RakutenPullByStatus":      "false",
		"AWS::Partition":           "aws", "AWS::Region": iamRegion, "AWS::AccountId": iamAccount,
		"Table.Arn": r.tableARN(r.table), "SyncQueue.Arn": r.queueARN(r.queueURL), "SecretsKey.Arn": r.keyARN(),
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case map[string]any:
		if ref, ok := x["Ref"].(string); ok {
			if s, ok := refs[ref]; ok {
				return s, nil
			}
		}
		var ga []string // loadTemplate splits !GetAtt A.B into []string; the long form is []any
		switch g := x["Fn::GetAtt"].(type) {
		case []string:
			ga = g
		case []any:
			for _, p := range g {
				ga = append(ga, fmt.Sprint(p))
			}
		}
		if len(ga) == 2 {
			if s, ok := refs[ga[0]+"."+ga[1]]; ok {
				return s, nil
			}
		}
		if sub, ok := x["Fn::Sub"].(string); ok {
			var err error
			out := regexp.MustCompile(`\$\{([^}]+)\}`).ReplaceAllStringFunc(sub, func(s string) string {
				name := s[2 : len(s)-1]
				if v, ok := refs[name]; ok {
					return v
				}
				err = fmt.Errorf("unknown ${%s} in %q", name, sub)
				return s
			})
			return out, err
		}
	}
	return "", fmt.Errorf("cannot resolve %v", v)
}

// ---- the recording transport ---------------------------------------------

// recorder is the HTTP transport of one function's AWS clients. It records
// the IAM permission every request needs ("dynamodb:GetItem <arn>") from
// its X-Amz-Target and body, and forwards it to the local stand-in of the
// service.
type recorder struct {
	res       resources
	endpoints map[string]string // service → base URL

	mu       sync.Mutex
	used     map[string]int // "action resource" → requests
	failNext map[string]int // X-Amz-Target → requests to refuse
}

func newRecorder(res resources, endpoints map[string]string) *recorder {
	return &recorder{res: res, endpoints: endpoints, used: map[string]int{}, failNext: map[string]int{}}
}

var targetService = map[string]string{
	"DynamoDB_20120810": "dynamodb",
	"secretsmanager":    "secretsmanager",
	"AmazonSQS":         "sqs",
}

// sqsAction maps SQS batch operations to the action IAM checks for them.
var sqsAction = map[string]string{
	"SendMessageBatch":             "SendMessage",
	"DeleteMessageBatch":           "DeleteMessage",
	"ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}

func (rc *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	target := req.Header.Get("X-Amz-Target")
	prefix, op, _ := strings.Cut(target, ".")
	service := targetService[prefix]
	if service == "" || op == "" {
		return nil, fmt.Errorf("recorder: unknown AWS request %q to %s", target, req.URL)
	}
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body.Close()
	}
	perms, err := rc.permissions(service, op, body)
	if err != nil {
		return nil, err
	}
	rc.mu.Lock()
	for _, p := range perms {
		rc.used[p]++
	}
	fail := rc.failNext[target] > 0
	if fail {
		rc.failNext[target]--
	}
	rc.mu.Unlock()
	if fail {
		return refusal(req, service), nil
	}
	ep, _ := url.Parse(rc.endpoints[service])
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host, out.Host = ep.Scheme, ep.Host, ep.Host
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	return http.DefaultTransport.RoundTrip(out)
}

// refusal is a non-retryable error answer of the service.
func refusal(req *http.Request, service string) *http.Response {
	h := http.Header{"Content-Type": {"application/x-amz-json-1.0"}}
	body := `{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."}`
	if service == "sqs" {
		h.Set("x-amzn-query-error", "AWS.SimpleQueueService.NonExistentQueue;Sender")
	} else {
		body = `{"__type":"ValidationException","message":"refused by the test"}`
	}
	return &http.Response{StatusCode: 400, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: req}
}

// permissions returns the "action resource" pairs IAM authorizes a request on.
func (rc *recorder) permissions(service, op string, body []byte) ([]string, error) {
	var in struct {
		TableName, IndexName string
		RequestItems         map[string]json.RawMessage
		TransactItems        []map[string]struct{ TableName string }
		SecretId, Name       string
		Tags                 []json.RawMessage
		QueueUrl             string
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, fmt.Errorf("recorder: %s.%s body: %v", service, op, err)
	}
	action := service + ":" + op
	if service == "dynamodb" && len(in.TransactItems) > 0 {
		return rc.transactionPermissions(in.TransactItems)
	}
	var arns []string
	switch service {
	case "dynamodb":
		tables := map[string]bool{}
		if in.TableName != "" {
			tables[in.TableName] = true
		}
		for t := range in.RequestItems {
			tables[t] = true
		}
		for t := range tables {
			arn := rc.res.tableARN(t)
			if in.IndexName != "" {
				arn += "/index/" + in.IndexName
			}
			arns = append(arns, arn)
		}
	case "secretsmanager":
		arns = []string{rc.res.secretARN(in.SecretId + in.Name)}
	case "sqs":
		if a, ok := sqsAction[op]; ok {
			action = "sqs:" + a
		}
		arns = []string{rc.res.queueARN(in.QueueUrl)}
	}
	if len(arns) == 0 {
		return nil, fmt.Errorf("recorder: %s names no resource", action)
	}
	var out []string
	for _, arn := range arns {
		out = append(out, action+" "+arn)
		// Tags on CreateSecret are authorized as secretsmanager:TagResource.
		if action == "secretsmanager:CreateSecret" && len(in.Tags) > 0 {
			out = append(out, "secretsmanager:TagResource "+arn)
		}
	}
	return out, nil
}

// transactItemAction is the IAM action of each kind of TransactItems entry:
// IAM authorises a transaction item by item, as the single-item operation
// it performs, and never as dynamodb:TransactWriteItems.
var transactItemAction = map[string]string{
	"Put":            "dynamodb:PutItem",
	"Update":         "dynamodb:UpdateItem",
	"Delete":         "dynamodb:DeleteItem",
	"ConditionCheck": "dynamodb:ConditionCheckItem",
	"Get":            "dynamodb:GetItem",
}

// transactionPermissions returns one permission per TransactItems entry,
// by its kind, on its table.
func (rc *recorder) transactionPermissions(items []map[string]struct{ TableName string }) ([]string, error) {
	var out []string
	for i, it := range items {
		if len(it) != 1 {
			return nil, fmt.Errorf("recorder: TransactItems[%d] has %d operations, want 1", i, len(it))
		}
		for kind, x := range it {
			action, ok := transactItemAction[kind]
			if !ok || x.TableName == "" {
				return nil, fmt.Errorf("recorder: TransactItems[%d]: unknown %q or no table", i, kind)
			}
			out = append(out, action+" "+rc.res.tableARN(x.TableName))
		}
	}
	return out, nil
}

func (rc *recorder) refuseNext(target string) {
	rc.mu.Lock()
	rc.failNext[target]++
	rc.mu.Unlock()
}

func (rc *recorder) permissionsUsed() map[string]bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := map[string]bool{}
	for p := range rc.used {
		out[p] = true
	}
	return out
}

// ---- the functions, as internal/app builds them ----------------------------

// iamEnv is the local system and one recorder per function.
type iamEnv struct {
	t      *testing.T
	ctx    context.Context
	tpl    map[string]any
	res    resources
	sb     *sandbox.Server
	sqsEnv sqstest.Env
	rec    map[string]*recorder // by logical id
	cfg    map[string]app.Config

	api, creds, syncNow *httpapi.Router
	worker              *syncer.Worker
	scheduler           *syncer.Scheduler
	driven              map[string]bool // route keys invoked
}

// functionEnv is what a function's getenv returns: the template's Globals
// and function Environment, resolved.
func (e *iamEnv) functionEnv(id string) func(string) string {
	vars := map[string]string{}
	add := func(v any) {
		for k, val := range m(m(v)["Variables"]) {
			s, err := e.res.resolve(val)
			if err != nil {
				e.t.Fatalf("%s: env %s: %v", id, k, err)
			}
			vars[k] = s
		}
	}
	add(m(m(e.tpl["Globals"])["Function"])["Environment"])
	add(m(m(m(m(e.tpl["Resources"])[id])["Properties"]))["Environment"])
	return func(k string) string { return vars[k] }
}

// config loads the function's configuration with app.Load from its template
// environment, then gives its AWS clients the recording transport.
func (e *iamEnv) config(id string, endpoints map[string]string) app.Config {
	e.t.Helper()
	c, err := app.Load(e.ctx, e.functionEnv(id), io.Discard)
	if err != nil {
		e.t.Fatalf("%s: app.Load: %v", id, err)
	}
	rec := newRecorder(e.res, endpoints)
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
	root := repoRoot(t)
	e := &iamEnv{
		t: t, ctx: context.Background(), tpl: loadTemplate(t, filepath.Join(root, "template.yaml")),
		rec: map[string]*recorder{}, cfg: map[string]app.Config{}, driven: map[string]bool{},
	}
	ddb := dynamotest.Client(t)
	table := dynamotest.NewTable(t, ddb)
	smSrv := httptest.NewServer(secretstest.New())
	t.Cleanup(smSrv.Close)
	e.sqsEnv = sqstest.StartWith(t, sqstest.QueueOptions{DLQName: "dlq"})
	e.sb = sandbox.New(sandbox.Options{})
	sbSrv := httptest.NewServer(e.sb)
	t.Cleanup(sbSrv.Close)
	e.res = resources{table: table, queueURL: e.sqsEnv.QueueURL, sandboxURL: sbSrv.URL}

	endpoints := map[string]string{
		"dynamodb": dynamotest.Endpoint(t), "secretsmanager": smSrv.URL, "sqs": e.sqsEnv.Endpoint,
	}
	for id := range resourcesOfType(e.tpl, "AWS::Serverless::Function") {
		e.cfg[id] = e.config(id, endpoints)
	}
	e.api = e.cfg["ApiFunction"].APIHandler()
	e.creds = e.cfg["CredentialsFunction"].CredentialsHandler()
	e.syncNow = e.cfg["SyncNowFunction"].SyncNowHandler()
	e.worker = e.cfg["SyncFunction"].SyncWorker()
	e.scheduler = e.cfg["SchedulerFunction"].Scheduler()
	if n := len(e.rec); n != 5 {
		t.Fatalf("template has %d functions, the test drives 5", n)
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
		Client: e.sqsEnv.Client, QueueURL: e.sqsEnv.QueueURL, WaitSeconds: 1, Timeout: time.Minute,
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
		n, err := p.PollOnce(e.ctx, e.res.queueARN(e.res.queueURL))
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
	// token has expired: it refreshes, and saves the rotated refresh token.
	e.sb.ExpireAccessTokens()
	for _, mm := range e.sb.Merchants(accounts["t1"].SiteID)[:3] {
		_ = e.sb.SetStatus(accounts["t1"].SiteID, mm.MID, sandbox.StatusTempDecline)
	}
	run := e.call(e.syncNow, "t1", postSync, nil, nil, "", 202)
	e.deliver(1)
	// The same message delivered again: a duplicate of a finished run.
	dup := merchantsync.SyncRequest{TenantID: "t1", Network: merchantsync.NetworkRakuten, RunID: run["runId"].(string), Trigger: merchantsync.TriggerManual}
	if err := queue.New(e.sqsEnv.Client, e.sqsEnv.QueueURL).Send(e.ctx, dup); err != nil {
		t.Fatal(err)
	}
	e.deliver(1)

	// The daily schedule: both accounts are due.
	ev, _ := json.Marshal(syncer.ScheduleEvent{RunID: "schedule-1", ScheduledTime: time.Now().UTC().Format(time.RFC3339)})
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

	// Every route of every router was driven.
	for fn, r := range map[string]*httpapi.Router{"ApiFunction": e.api, "CredentialsFunction": e.creds, "SyncNowFunction": e.syncNow} {
		for _, k := range r.Keys() {
			if !e.driven[k] {
				t.Errorf("%s: route %s is not driven by the IAM test", fn, k)
			}
		}
	}
}

// codePermissions is, per function, the set of "action resource" pairs its
// code needed, plus the event source mapping's actions for SyncFunction.
func (e *iamEnv) codePermissions() map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for id, rec := range e.rec {
		out[id] = rec.permissionsUsed()
	}
	for _, a := range eventSourceActions {
		out["SyncFunction"][a+" "+e.res.queueARN(e.res.queueURL)] = true
	}
	return out
}

// ---- the comparison -------------------------------------------------------

// grant is one action on one resource pattern of a function's policy.
type grant struct{ action, resource string }

func (g grant) String() string { return g.action + " on " + g.resource }

// arnMatch is IAM's resource matching: * any run of characters, ? one.
func arnMatch(pattern, arn string) bool {
	var re strings.Builder
	re.WriteString("^")
	for _, r := range pattern {
		switch r {
		case '*':
			re.WriteString(".*")
		case '?':
			re.WriteString(".")
		default:
			re.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	re.WriteString("$")
	return regexp.MustCompile(re.String()).MatchString(arn)
}

func serviceOf(action string) string { s, _, _ := strings.Cut(action, ":"); return s }

// compareIAM returns every difference between the functions' template
// policies and the permissions their code used: a permission used but not
// granted, a grant the code never uses (both for dynamodb, secretsmanager
// and sqs, on resources), a KMS grant not scoped to the secrets key, and a
// scheduler Query on anything but the due index.
func compareIAM(tpl map[string]any, res resources, used map[string]map[string]bool) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for id, fn := range resourcesOfType(tpl, "AWS::Serverless::Function") {
		var grants []grant
		for _, s := range policyStatements(fn) {
			if s["Effect"] != "Allow" {
				continue
			}
			for _, a := range actions(s) {
				for _, r := range list(s["Resource"]) {
					arn, err := res.resolve(r)
					if err != nil {
						bad("%s: %s: %v", id, a, err)
						continue
					}
					grants = append(grants, grant{a, arn})
				}
			}
		}
		checked := func(action string) bool { return slices.Contains(checkedServices, serviceOf(action)) }
		// Used → granted.
		var perms []string
		for p := range used[id] {
			perms = append(perms, p)
		}
		sort.Strings(perms)
		for _, p := range perms {
			action, arn, _ := strings.Cut(p, " ")
			if !slices.ContainsFunc(grants, func(g grant) bool { return g.action == action && arnMatch(g.resource, arn) }) {
				why := ""
				if slices.Contains(eventSourceActions, action) && id == "SyncFunction" {
					why = " (needed by the SQS event source mapping)"
				}
				bad("%s: code uses %s on %s, which the template does not grant%s", id, action, arn, why)
			}
		}
		// Granted → used.
		for _, g := range grants {
			switch {
			case checked(g.action):
				if !slices.ContainsFunc(perms, func(p string) bool {
					action, arn, _ := strings.Cut(p, " ")
					return action == g.action && arnMatch(g.resource, arn)
				}) {
					bad("%s: template grants %s, which the code never uses", id, g)
				}
			case serviceOf(g.action) == "kms":
				// Secrets Manager calls KMS for the function; only the scope is checked.
				if g.resource != res.keyARN() {
					bad("%s: %s is not scoped to the secrets key (SecretsKey.Arn)", id, g)
				}
			}
		}
		if id == "SchedulerFunction" {
			due := res.tableARN(res.table) + "/index/" + "due"
			for _, g := range grants {
				if g.action == "dynamodb:Query" && g.resource != due {
					bad("%s: dynamodb:Query must be granted on the due index only, not on %s", id, g.resource)
				}
			}
			for _, p := range perms {
				if action, arn, _ := strings.Cut(p, " "); action == "dynamodb:Query" && arn != due {
					bad("%s: the code queries %s, not only the due index", id, arn)
				}
			}
		}
	}
	sort.Strings(problems)
	return problems
}

// TestIAMMatchesCode drives every function and compares its policy with
// what it did; then breaks the parsed template to prove the comparison
// reports a missing and an extra action.
func TestIAMMatchesCode(t *testing.T) {
	e := newIAMEnv(t)
	e.drive()
	used := e.codePermissions()
	for _, p := range compareIAM(e.tpl, e.res, used) {
		t.Error(p)
	}
	nActions, nPerms := 0, 0
	for id, perms := range used {
		var list []string
		acts := map[string]bool{}
		for p := range perms {
			list = append(list, p)
			a, _, _ := strings.Cut(p, " ")
			acts[a] = true
		}
		sort.Strings(list)
		nActions, nPerms = nActions+len(acts), nPerms+len(list)
		t.Logf("%s uses %d actions (%d action-resource pairs):\n  %s", id, len(acts), len(list), strings.Join(list, "\n  "))
	}
	t.Logf("compared %d actions (%d action-resource pairs) of %d functions with their policies", nActions, nPerms, len(used))

	root := repoRoot(t)
	stmts := func(tpl map[string]any, id string) []any {
		return list(m(list(m(m(m(tpl["Resources"])[id])["Properties"])["Policies"])[0])["Statement"])
	}
	// withAction finds the statement of id granting action.
	withAction := func(tpl map[string]any, id, action string) map[string]any {
		for _, s := range stmts(tpl, id) {
			if slices.Contains(actions(m(s)), action) {
				return m(s)
			}
		}
		t.Fatalf("%s grants no %s", id, action)
		return nil
	}
	remove := func(id, action string) func(map[string]any) {
		return func(tpl map[string]any) {
			s := withAction(tpl, id, action)
			var keep []any
			for _, a := range list(s["Action"]) {
				if a != action {
					keep = append(keep, a)
				}
			}
			s["Action"] = keep
		}
	}
	add := func(id, existing, action string) func(map[string]any) {
		return func(tpl map[string]any) {
			s := withAction(tpl, id, existing)
			s["Action"] = append(list(s["Action"]), action)
		}
	}
	tests := []struct {
		name   string
		break_ func(map[string]any)
		want   string
	}{
		{"credentials without DeleteItem", remove("CredentialsFunction", "dynamodb:DeleteItem"), "CredentialsFunction: code uses dynamodb:DeleteItem"},
		{"credentials without TagResource", remove("CredentialsFunction", "secretsmanager:TagResource"), "CredentialsFunction: code uses secretsmanager:TagResource"},
		{"syncnow without PutItem", remove("SyncNowFunction", "dynamodb:PutItem"), "SyncNowFunction: code uses dynamodb:PutItem"},
		{"scheduler without SendMessage", remove("SchedulerFunction", "sqs:SendMessage"), "SchedulerFunction: code uses sqs:SendMessage"},
		{"sync without PutSecretValue", remove("SyncFunction", "secretsmanager:PutSecretValue"), "SyncFunction: code uses secretsmanager:PutSecretValue"},
		{"sync without ReceiveMessage", remove("SyncFunction", "sqs:ReceiveMessage"), "needed by the SQS event source mapping"},
		{"api with Scan", add("ApiFunction", "dynamodb:GetItem", "dynamodb:Scan"), "ApiFunction: template grants dynamodb:Scan"},
		{"api with DeleteItem", add("ApiFunction", "dynamodb:GetItem", "dynamodb:DeleteItem"), "ApiFunction: template grants dynamodb:DeleteItem"},
		{"syncnow's transaction granted as TransactWriteItems only", func(tpl map[string]any) {
			for _, a := range []string{"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"} {
				remove("SyncNowFunction", a)(tpl)
			}
			add("SyncNowFunction", "dynamodb:GetItem", "dynamodb:TransactWriteItems")(tpl)
		}, "SyncNowFunction: code uses dynamodb:ConditionCheckItem"},
		{"credentials with GetSecretValue", add("CredentialsFunction", "secretsmanager:CreateSecret", "secretsmanager:GetSecretValue"), "CredentialsFunction: template grants secretsmanager:GetSecretValue"},
		{"syncnow with SendMessageBatch's own name", add("SyncNowFunction", "sqs:SendMessage", "sqs:SendMessageBatch"), "SyncNowFunction: template grants sqs:SendMessageBatch"},
		{"scheduler queries the table", func(tpl map[string]any) {
			withAction(tpl, "SchedulerFunction", "dynamodb:Query")["Resource"] = map[string]any{"Fn::GetAtt": []any{"Table", "Arn"}}
		}, "SchedulerFunction: dynamodb:Query must be granted on the due index only"},
		{"kms on every key", func(tpl map[string]any) {
			withAction(tpl, "SyncFunction", "kms:Decrypt")["Resource"] = map[string]any{"Fn::Sub": "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*"}
		}, "SyncFunction: kms:Decrypt on arn:aws:kms:us-east-1:123456789012:key/* is not scoped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl := loadTemplate(t, filepath.Join(root, "template.yaml"))
			tt.break_(tpl)
			got := compareIAM(tpl, e.res, used)
			if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, tt.want) }) {
				t.Errorf("breaking %q: want a problem containing %q, got %q", tt.name, tt.want, got)
			}
		})
	}
}
