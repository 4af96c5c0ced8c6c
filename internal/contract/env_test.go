package contract

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/merchantsync/merchantsync/internal/dynamo"
	"github.com/merchantsync/merchantsync/internal/dynamo/dynamotest"
	"github.com/merchantsync/merchantsync/internal/httpapi"
	"github.com/merchantsync/merchantsync/internal/kmsseal"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/queue"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
	"github.com/merchantsync/merchantsync/internal/syncer"
	"github.com/merchantsync/merchantsync/internal/testenv"
)

// TestMain runs the tests on DynamoDB Local and, after a full run (no -run
// filter), checks that every documented status of every operation was
// produced by the real handlers and validated (see coverage).
func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if code == 0 && flag.Lookup("test.run").Value.String() == "" && !testing.Short() {
		if missing := coverage.missing(); len(missing) > 0 {
			fmt.Fprintf(os.Stderr, "contract coverage: these documented responses were never produced by a handler and validated:\n  %s\n",
				strings.Join(missing, "\n  "))
			code = 1
		}
	}
	testenv.Stop()
	dynamotest.Stop()
	os.Exit(code)
}

// localServer is the document's local server: requests are matched against it.
const localServer = "http://127.0.0.1:8080"

const (
	tenantA     = "tenant-a"
	affiliateID = "lMh2Xiq9xN0"
)

// contractDoc is the document and its gorillamux router, loaded once.
var contractDoc = sync.OnceValues(func() (*openapi3.T, routers.Router) {
	doc, err := Load(context.Background(), docPath)
	if err != nil {
		panic(err)
	}
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		panic(err)
	}
	return doc, r
})

// ---------------------------------------------------------------- coverage

// notProducible lists documented responses no test can make the handlers
// produce, with the reason. Every other documented (operation, status) must
// be produced and validated by a full run.
var notProducible = map[string]string{
	"* 429":                             "API Gateway's own throttling (GatewayError): the handlers never answer 429",
	"PUT /v1/merchantsync/settings 409": "conflict only after maxRaces lost transactions in a row: a race the tests cannot provoke deterministically",
}

type coverageSet struct {
	mu   sync.Mutex
	seen map[string]bool // "METHOD /path/{param} status"
}

var coverage = &coverageSet{seen: map[string]bool{}}

func (c *coverageSet) add(routeKey string, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[fmt.Sprintf("%s %d", routeKey, status)] = true
}

func (c *coverageSet) missing() []string {
	doc, _ := contractDoc()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status := range op.Responses.Map() {
				k := method + " " + path + " " + status
				if c.seen[k] || notProducible[k] != "" || notProducible["* "+status] != "" {
					continue
				}
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

// ---------------------------------------------------------------- environment

// env is the three API functions on the shared test world (DynamoDB Local,
// Secrets Manager and SQS on moto, the Rakuten sandbox over HTTP) and,
// optionally, the sync worker fed by the queue poller (as in the local
// stack).
type env struct {
	*testenv.World
	t       *testing.T
	faults  *dynamotest.Faults
	sb      *sandbox.Server
	account sandbox.Account

	api, creds, syncNow, hooks *httpapi.Router
	byKey                      map[string]*httpapi.Router
	deliveriesURL              string
}

type envOptions struct {
	worker bool // run the sync worker on the queue (for POST …/sync?wait)
	store  merchantsync.Store
}

const testPassword = "correct-horse-battery-staple"

func newEnv(t *testing.T, opt envOptions) *env {
	t.Helper()
	// One DynamoDB attempt: an injected throttle answers at once.
	w := testenv.New(t, func(o *testenv.Options) { o.DDBAttempts = 1 })
	e := &env{World: w, t: t, faults: w.DDBFaults, sb: w.Sandbox}
	var store merchantsync.Store = w.Store
	if opt.store != nil {
		store = opt.store
	}
	e.account = sandbox.Account{ClientID: "client-1", ClientSecret: "client-secret-1", SiteID: "4022211",
		Username: "publisher@example.com", Password: testPassword}
	e.sb.AddAccount(e.account)
	e.sb.SeedMerchants(e.account.SiteID, 12, 7)

	e.api = httpapi.NewAPIRouter(&httpapi.API{Store: store}, nil)
	e.creds = httpapi.NewCredentialsRouter(&httpapi.Credentials{Store: store, Secrets: w.Secrets, Network: w.Network}, nil)
	e.syncNow = httpapi.NewSyncNowRouter(&httpapi.SyncNow{Store: store, Queue: w.Queue, Poll: 50 * time.Millisecond}, nil)
	var deliveries *queue.Queue
	e.deliveriesURL, _ = testenv.NewQueue(t, testenv.QueueOptions{})
	deliveries = queue.New(w.SQS, e.deliveriesURL)
	var hookStore merchantsync.WebhookStore = w.Store
	if ws, ok := store.(merchantsync.WebhookStore); ok {
		hookStore = ws
	}
	e.hooks = httpapi.NewWebhooksRouter(&httpapi.Webhooks{Store: hookStore, Sealer: kmsseal.New(testenv.KMSClient(t), testenv.NewKey(t)),
		Queue: deliveries}, nil)
	e.byKey = map[string]*httpapi.Router{}
	for _, r := range []*httpapi.Router{e.api, e.creds, e.syncNow, e.hooks} {
		for _, k := range r.Keys() {
			e.byKey[k] = r
		}
	}

	if opt.worker {
		engine := &syncer.Engine{Store: w.Store, Network: w.Network}
		p := &queue.Poller{
			Client: w.SQS, QueueURL: w.QueueURL, Handler: syncer.NewWorker(engine, nil).Handle,
			WaitSeconds: 1, Timeout: 2 * time.Minute, Logger: slog.New(slog.DiscardHandler),
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = p.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	return e
}

// call is one API request.
type call struct {
	method, path string
	query        map[string]string
	body         string
	contentType  string // default application/json when there is a body; "-" sends none
	tenant       string // default tenantA
	noTenant     bool   // no JWT claims at all
	base64       bool   // send the body base64-encoded, as API Gateway does for binary types
	router       *httpapi.Router
}

// result is a handler's answer and what the document says of it.
type result struct {
	status   int
	header   http.Header
	body     string
	json     map[string]any
	routeKey string // the document's "METHOD /path/{param}", "" when no operation matched
	invalid  error  // ValidateResponse's verdict (or why it could not run)
	raw      events.APIGatewayV2HTTPResponse
	req      *http.Request
}

func (r *result) code() string {
	e, _ := r.json["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (r *result) str(key string) string {
	s, _ := r.json[key].(string)
	return s
}

func (c call) event() events.APIGatewayV2HTTPRequest {
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: "$default", RawPath: c.path, RawQueryString: c.rawQuery(),
		Body: c.body, IsBase64Encoded: c.base64, QueryStringParameters: c.query,
		Headers: map[string]string{"host": "127.0.0.1:8080", "authorization": "Bearer test-jwt"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID: "contract-test", Stage: "$default",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: c.method, Path: c.path},
		},
	}
	if ct := c.ct(); ct != "" {
		ev.Headers["content-type"] = ct
	}
	if !c.noTenant {
		tenant := c.tenant
		if tenant == "" {
			tenant = tenantA
		}
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"tenant_id": tenant, "sub": "user-" + tenant}},
		}
	}
	return ev
}

func (c call) ct() string {
	switch {
	case c.contentType == "-":
		return ""
	case c.contentType != "":
		return c.contentType
	case c.body != "":
		return "application/json"
	}
	return ""
}

func (c call) rawQuery() string {
	v := url.Values{}
	for k, s := range c.query {
		v.Set(k, s)
	}
	return v.Encode()
}

// httpRequest is the request as the front end sends it to the local server,
// for the document's router and request validator.
func (c call) httpRequest() *http.Request {
	u := localServer + c.path
	if q := c.rawQuery(); q != "" {
		u += "?" + q
	}
	var body io.Reader = http.NoBody
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, u, body)
	if err != nil {
		panic(err)
	}
	if ct := c.ct(); ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("Authorization", "Bearer test-jwt")
	return req
}

// do sends c through lambda.NewHandler(router.Handle).Invoke — the JSON path
// the Lambda runtime takes — and validates the response against the
// document. It does not fail the test; check res.invalid.
func (e *env) do(c call) *result {
	e.t.Helper()
	_, router := contractDoc()
	res := &result{req: c.httpRequest()}
	route, params, findErr := router.FindRoute(res.req)
	r := c.router
	if findErr == nil {
		res.routeKey = route.Method + " " + route.Path
		if r == nil {
			r = e.byKey[res.routeKey]
		}
	}
	if r == nil {
		e.t.Fatalf("%s %s: no router (document: %v)", c.method, c.path, findErr)
	}
	payload, err := json.Marshal(c.event())
	if err != nil {
		e.t.Fatal(err)
	}
	out, err := lambda.NewHandler(r.Handle).Invoke(context.Background(), payload)
	if err != nil {
		e.t.Fatalf("invoke: %v", err)
	}
	if err := json.Unmarshal(out, &res.raw); err != nil {
		e.t.Fatalf("response: %v", err)
	}
	res.status, res.body = res.raw.StatusCode, res.raw.Body
	res.header = http.Header{}
	for k, v := range res.raw.Headers {
		res.header.Set(k, v)
	}
	if res.body != "" {
		if err := json.Unmarshal([]byte(res.body), &res.json); err != nil {
			e.t.Errorf("%s %s: response body is not a JSON object: %q", c.method, c.path, res.body)
		}
	}
	if findErr != nil {
		res.invalid = fmt.Errorf("no operation of the document matches %s %s: %w", c.method, c.path, findErr)
		return res
	}
	res.invalid = validateResponse(route, params, res.req, res.status, res.header, []byte(res.body))
	if res.invalid == nil {
		coverage.add(res.routeKey, res.status)
	}
	return res
}

// validateResponse checks one response against the document, as strictly as
// kin-openapi can: undocumented statuses fail, headers and body are checked.
func validateResponse(route *routers.Route, params map[string]string, req *http.Request, status int, header http.Header, body []byte) error {
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status:  status,
		Header:  header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(context.Background(), in)
}

// validateRequest is the document's verdict on a request, as a front end
// (or a gateway validating requests) would apply it.
func validateRequest(c call) error {
	_, router := contractDoc()
	req := c.httpRequest()
	route, params, err := router.FindRoute(req)
	if err != nil {
		return err
	}
	return openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{
			AuthenticationFunc:                openapi3filter.NoopAuthenticationFunc,
			RejectWhenRequestBodyNotSpecified: true,
			MultiError:                        true,
		},
	})
}

// expect sends c and fails the test unless the answer has status (and error
// code, when code is set) and is valid under the document.
func (e *env) expect(c call, status int, code string) *result {
	e.t.Helper()
	res := e.do(c)
	if res.status != status || (code != "" && res.code() != code) {
		e.t.Errorf("%s %s %v: got %d %s, want %d %s", c.method, c.path, c.query, res.status, res.body, status, code)
	}
	if res.invalid != nil {
		e.t.Errorf("%s %s: the %d response does not match docs/openapi.yaml:\n%v\nbody: %s", c.method, c.path, res.status, res.invalid, res.body)
	}
	return res
}

// ---------------------------------------------------------------- fixtures

func (e *env) saveIDs(tenant string) {
	e.t.Helper()
	e.expect(call{method: "PUT", path: "/v1/networks/rakuten/ids", tenant: tenant,
		body: `{"affiliateId":"` + affiliateID + `","siteId":"` + e.account.SiteID + `"}`}, 200, "")
}

func (e *env) credentialsBody(password string) string {
	b, _ := json.Marshal(map[string]string{
		"clientId": e.account.ClientID, "clientSecret": e.account.ClientSecret, "siteId": "SID" + e.account.SiteID,
		"username": e.account.Username, "password": password,
	})
	return string(b)
}

func (e *env) connect(tenant string) {
	e.t.Helper()
	e.saveIDs(tenant)
	res := e.expect(call{method: "PUT", path: "/v1/networks/rakuten/credentials", tenant: tenant, body: e.credentialsBody(testPassword)}, 200, "")
	if res.str("state") != "connected" {
		e.t.Fatalf("connect: %s", res.body)
	}
}

// syncAndWait runs POST …/sync?wait=20 and returns the finished run.
func (e *env) syncAndWait(tenant string) *result {
	e.t.Helper()
	res := e.expect(call{method: "POST", path: "/v1/networks/rakuten/sync", tenant: tenant, query: map[string]string{"wait": "20"}}, 200, "")
	if res.status != 200 {
		e.t.Fatalf("sync did not finish: %d %s", res.status, res.body)
	}
	return res
}

// brokenStore is a store whose DynamoDB is unreachable: every call fails
// with a non-merchantsync error, which the API answers with 500 internal.
func brokenStore() *dynamo.Store {
	c := dynamodb.New(dynamodb.Options{
		Region: dynamotest.Region, BaseEndpoint: aws.String("http://127.0.0.1:1"),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "x", SecretAccessKey: "x"}, nil
		}),
		RetryMaxAttempts: 1,
	})
	return dynamo.New(c, "unreachable")
}

func jsonBody(v any) string {
	var b bytes.Buffer
	_ = json.NewEncoder(&b).Encode(v)
	return strings.TrimSpace(b.String())
}
