// Package isolation holds the tenant-isolation suite: two tenants on real
// local parts (testenv.World: DynamoDB Local, Secrets Manager and SQS on
// moto, the Rakuten sandbox over HTTP; the real sync worker), and a
// walk of every route of every router as tenant B that must never see, change
// or touch anything of tenant A. It is made of test files only.
package isolation

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/merchantsync/merchantsync/internal/dynamo"
	"github.com/merchantsync/merchantsync/internal/httpapi"
	"github.com/merchantsync/merchantsync/internal/kmsseal"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/queue"
	"github.com/merchantsync/merchantsync/internal/rakuten"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
	"github.com/merchantsync/merchantsync/internal/syncer"
	"github.com/merchantsync/merchantsync/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	network      = merchantsync.NetworkRakuten
	secretPrefix = "merchantsync/isolation"
)

// tenant is one publisher of the suite: its ids, its Rakuten sandbox
// account and the merchants only it has.
type tenant struct {
	ID          string
	AffiliateID string
	SiteID      string
	Account     sandbox.Account
	Merchants   []sandbox.Merchant
}

func (tn *tenant) mids() map[int64]bool {
	out := map[int64]bool{}
	for _, m := range tn.Merchants {
		out[m.MID] = true
	}
	return out
}

// newTenant builds a tenant whose every identifying value (merchant ids and
// names, ids, username, client id) is its own: a value of A found in a
// response to B can only be a leak.
func newTenant(id, affiliateID, siteID, word string, midBase int64, n int) *tenant {
	tn := &tenant{
		ID: id, AffiliateID: affiliateID, SiteID: siteID,
		Account: sandbox.Account{
			ClientID: "client-" + id, ClientSecret: "secret-" + id + "-Zq8",
			SiteID: siteID, Username: word + "@" + id + ".example", Password: "pw-" + id + "-Kx3",
		},
	}
	statuses := sandbox.PartnershipStatuses()
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		st := statuses[i%len(statuses)]
		m := sandbox.Merchant{
			MID: midBase + int64(i), Network: 1,
			Name:   fmt.Sprintf("%s Merchant %d", word, i),
			Status: st, AdvertiserStatus: "active", Categories: []string{"Books & Media"},
			AppliedAt: base, StatusUpdatedAt: base.Add(24 * time.Hour),
		}
		if st == sandbox.StatusActive || st == sandbox.StatusExtended {
			m.ApprovedAt = m.StatusUpdatedAt
		}
		tn.Merchants = append(tn.Merchants, m)
	}
	return tn
}

// world is the whole system for two tenants on the shared test world.
type world struct {
	*testenv.World
	t      *testing.T
	ctx    context.Context
	store  *dynamo.Store
	sb     *sandbox.Server
	worker *syncer.Worker
	logger *slog.Logger
	A, B   *tenant
	// The webhooks function's parts, and A's webhook.
	sealer     *kmsseal.Sealer
	deliveries *queue.Queue
	aHook      string

	// setup is the system with the real store and secrets, used to build
	// the tenants' data.
	setup routers
}

// routers are the four HTTP functions.
type routers struct {
	API, Credentials, SyncNow, Webhooks *httpapi.Router
}

func (r routers) all() map[string]*httpapi.Router {
	return map[string]*httpapi.Router{"api": r.API, "credentials": r.Credentials, "syncnow": r.SyncNow, "webhooks": r.Webhooks}
}

// routersOn builds the three routers the way internal/app does, on store and
// sec (which the broken-decorator tests replace).
func (w *world) routersOn(store merchantsync.Store, sec merchantsync.CredentialStore) routers {
	return routers{
		API: httpapi.NewAPIRouter(&httpapi.API{Store: store, Now: time.Now}, w.logger),
		Credentials: httpapi.NewCredentialsRouter(&httpapi.Credentials{
			Store: store, Secrets: sec, Network: &rakuten.Network{Client: w.Rakuten, Credentials: sec}, Now: time.Now, Logger: w.logger,
		}, w.logger),
		SyncNow: httpapi.NewSyncNowRouter(&httpapi.SyncNow{
			Store: store, Queue: w.Queue, Now: time.Now, Poll: 20 * time.Millisecond, Logger: w.logger,
		}, w.logger),
		Webhooks: httpapi.NewWebhooksRouter(&httpapi.Webhooks{
			Store: w.store, Sealer: w.sealer, Queue: w.deliveries, Now: time.Now, Logger: w.logger,
		}, w.logger),
	}
}

// newWorld builds the parts and the two tenants A and B, each with IDs
// saved, credentials connected (its own sandbox account and merchants) and
// two finished syncs: runs, relationships and changes exist for both.
func newWorld(t *testing.T) *world {
	t.Helper()
	tw := testenv.New(t)
	w := &world{World: tw, t: t, ctx: tw.Ctx, store: tw.Store, sb: tw.Sandbox, logger: slog.New(slog.NewJSONHandler(io.Discard, nil))}
	w.worker = syncer.NewWorker(&syncer.Engine{Store: w.store, Network: tw.Network, Logger: w.logger}, w.logger)
	w.sealer = kmsseal.New(testenv.KMSClient(t), testenv.NewKey(t))
	deliveriesURL, _ := testenv.NewQueue(t, testenv.QueueOptions{})
	w.deliveries = queue.New(tw.SQS, deliveriesURL)
	w.setup = w.routersOn(w.store, tw.Secrets)

	// 12 merchants for A (more than one page at limit 5), 9 for B.
	w.A = newTenant("tenant-a", "AlphaAff0A1", "4022211", "Alphaville", 9_137_001, 12)
	w.B = newTenant("tenant-b", "BravoAff0B2", "5033322", "Bravotown", 5_246_001, 9)
	for _, tn := range []*tenant{w.A, w.B} {
		w.sb.AddAccount(tn.Account)
		for _, m := range tn.Merchants {
			w.sb.AddMerchant(tn.SiteID, m)
		}
		w.mustCall(w.setup.API, tn.ID, "PUT", "/v1/networks/rakuten/ids", nil,
			fmt.Sprintf(`{"affiliateId":%q,"siteId":%q}`, tn.AffiliateID, tn.SiteID), 200)
		w.mustCall(w.setup.Credentials, tn.ID, "PUT", "/v1/networks/rakuten/credentials", nil, credBody(tn), 200)
	}
	// First sync: the baseline (relationships, one run each).
	w.syncBoth()
	// Rakuten changes two statuses of each: the second sync records changes.
	for _, tn := range []*tenant{w.A, w.B} {
		for _, m := range tn.Merchants[:2] {
			if err := w.sb.SetStatus(tn.SiteID, m.MID, sandbox.StatusTempDecline); err != nil {
				t.Fatal(err)
			}
		}
	}
	w.syncBoth()
	// A has a webhook with a delivery attempt in its log.
	hook := w.mustCall(w.setup.Webhooks, w.A.ID, "POST", "/v1/webhooks", nil,
		`{"url":"https://alphaville-hooks.example.com/in","description":"Alphaville relay"}`, 201)
	w.aHook, _ = hook.JSON.(map[string]any)["id"].(string)
	if err := w.store.RecordAttempt(w.ctx, merchantsync.DeliveryAttempt{TenantID: w.A.ID, WebhookID: w.aHook,
		MessageID: "msg_alphaville1", Type: "sync.completed", Attempt: 1, Success: true, StatusCode: 204, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, tn := range []*tenant{w.A, w.B} {
		if n := len(w.runIDs(tn.ID)); n != 2 {
			t.Fatalf("%s has %d runs after setup, want 2", tn.ID, n)
		}
		changes, _, err := w.store.ListChanges(w.ctx, tn.ID, network, time.Time{}, 200, "")
		if err != nil || len(changes) < 2 {
			t.Fatalf("%s changes after setup: %d %v", tn.ID, len(changes), err)
		}
		rels, err := w.store.AllRelationships(w.ctx, tn.ID, network)
		if err != nil || len(rels) != len(tn.Merchants) {
			t.Fatalf("%s relationships after setup: %d %v", tn.ID, len(rels), err)
		}
	}
	return w
}

func credBody(tn *tenant) string {
	b, _ := json.Marshal(map[string]string{
		"clientId": tn.Account.ClientID, "clientSecret": tn.Account.ClientSecret,
		"siteId": tn.SiteID, "username": tn.Account.Username, "password": tn.Account.Password,
	})
	return string(b)
}

// syncBoth queues a manual sync for A and B through the sync-now function
// and lets the sync worker run them off the queue.
func (w *world) syncBoth() {
	w.t.Helper()
	for _, tn := range []*tenant{w.A, w.B} {
		w.mustCall(w.setup.SyncNow, tn.ID, "POST", "/v1/networks/rakuten/sync", nil, "", 202)
	}
	w.drainQueue(2)
	for _, tn := range []*tenant{w.A, w.B} {
		a, err := w.store.GetAccount(w.ctx, tn.ID, network)
		if err != nil || a == nil || a.LastRun == nil || a.LastRun.State != merchantsync.RunSucceeded {
			w.t.Fatalf("%s: sync did not succeed: %+v %v", tn.ID, a, err)
		}
	}
}

// drainQueue runs the sync worker on the queue's messages, the way the
// event source mapping does, until want messages were handled.
func (w *world) drainQueue(want int) {
	w.t.Helper()
	w.Deliver(w.worker.Handle, want)
}

// response is one API answer.
type response struct {
	Status int
	Body   string
	JSON   any
}

// call invokes r with an API Gateway v2 event as the JWT authorizer sends
// it, through lambda.NewHandler(r.Handle).Invoke (the runtime's JSON path).
func (w *world) call(r *httpapi.Router, tenantID, method, path string, query map[string]string, body string) response {
	w.t.Helper()
	ev := testenv.APIEvent(method, path, tenantID, body, query)
	payload, err := json.Marshal(ev)
	if err != nil {
		w.t.Fatal(err)
	}
	out, err := lambda.NewHandler(r.Handle).Invoke(w.ctx, payload)
	if err != nil {
		w.t.Fatalf("invoke %s %s: %v", method, path, err)
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		w.t.Fatalf("response of %s %s: %v", method, path, err)
	}
	res := response{Status: resp.StatusCode, Body: resp.Body}
	if resp.Body != "" {
		if err := json.Unmarshal([]byte(resp.Body), &res.JSON); err != nil {
			w.t.Fatalf("%s %s: body is not JSON: %q", method, path, resp.Body)
		}
	}
	return res
}

func (w *world) mustCall(r *httpapi.Router, tenantID, method, path string, query map[string]string, body string, status int) response {
	w.t.Helper()
	res := w.call(r, tenantID, method, path, query, body)
	if res.Status != status {
		w.t.Fatalf("%s %s %s as %s = %d %s, want %d", method, path, query, tenantID, res.Status, res.Body, status)
	}
	return res
}

// snapshot returns every item whose partition key begins with
// TENANT#<tenant>, as sorted canonical JSON lines (strongly consistent scan).
func (w *world) snapshot(tenantID string) []string {
	w.t.Helper()
	var out []string
	p := dynamodb.NewScanPaginator(w.DDB, &dynamodb.ScanInput{
		TableName:                 aws.String(w.store.Table()),
		ConsistentRead:            aws.Bool(true),
		FilterExpression:          aws.String("begins_with(#pk, :pk)"),
		ExpressionAttributeNames:  map[string]string{"#pk": dynamo.AttrPK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: "TENANT#" + tenantID}},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(w.ctx)
		if err != nil {
			w.t.Fatalf("scan: %v", err)
		}
		for _, it := range page.Items {
			b, _ := json.Marshal(it)
			out = append(out, string(b))
		}
	}
	sort.Strings(out)
	return out
}

// runIDs lists a tenant's run ids as stored.
func (w *world) runIDs(tenantID string) []string {
	w.t.Helper()
	runs, _, err := w.store.ListRuns(w.ctx, tenantID, network, 200, "")
	if err != nil {
		w.t.Fatalf("ListRuns: %v", err)
	}
	var out []string
	for _, r := range runs {
		out = append(out, r.RunID)
	}
	return out
}

// connOf returns the tenant's current connection id ("" when none).
func (w *world) connOf(tenantID string) string {
	a, err := w.store.GetAccount(w.ctx, tenantID, network)
	if err != nil {
		w.t.Fatalf("GetAccount: %v", err)
	}
	if a == nil {
		return ""
	}
	return a.ConnectionID
}

// secretOf returns the secret of the tenant's current connection as the
// fake holds it ("", false when absent).
func (w *world) secretOf(tenantID string) (string, bool) {
	conn := w.connOf(tenantID)
	if conn == "" {
		return "", false
	}
	v, ok := w.StoredSecrets()[w.Secrets.Name(tenantID, network, conn)]
	return v, ok
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
