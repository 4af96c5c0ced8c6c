package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/merchantsync/merchantsync/internal/httpapi"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// FuzzRouter sends made-up API Gateway events through the real routers'
// Handle. The stores behind them are small in-memory fakes rather than
// DynamoDB Local: the property under test is the parsing and validation
// layer (routing, tenant claim, body decoding, query parameters, field
// validation, error mapping), not the store, and a fake keeps one
// execution in microseconds. The fakes answer deterministically from the
// mode byte (empty results, an existing account, or domain errors) and
// record any call whose arguments did not pass validation.
//
// Properties: Handle never panics and never returns an error; the status is
// never 5xx (every fake error is a domain error, so a 5xx can only come from
// the layer under test, e.g. a recovered panic); every status ≥ 400 carries
// {"error":{"code","message"}} whose code maps to that status; every other
// body is JSON; and the fakes only ever see validated values.

var (
	fuzzTenant      = regexp.MustCompile(`^[A-Za-z0-9_.@:|+=/-]{1,128}$`)
	fuzzAffiliateID = regexp.MustCompile(`^[A-Za-z0-9*/]{11}$`)
	fuzzSiteID      = regexp.MustCompile(`^[0-9]{1,12}$`)
)

const (
	modeStoreErrors  = 1 << iota // every store call fails with a domain error (409)
	modeAccount                  // the tenant has a connected account
	modeRakutenNo                // Rakuten refuses the credentials
	modeSyncDisabled             // the global toggle is off
	modeRawBase64                // with the base64 flag: send the body bytes as they are
	modeSubClaim                 // the tenant comes in the sub claim, not tenant_id
)

// fuzzFake stands in for every port the handlers use, checking what they
// pass. Methods it does not define are the embedded nil interfaces': a
// handler calling one panics, which the fuzzer reports.
type fuzzFake struct {
	merchantsync.Store
	merchantsync.SyncQueue
	merchantsync.Network
	mode uint8
	mu   sync.Mutex
	bad  []string
}

func (f *fuzzFake) violation(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bad = append(f.bad, fmt.Sprintf(format, args...))
}

func (f *fuzzFake) key(method, tenant, network string) error {
	if !fuzzTenant.MatchString(tenant) {
		f.violation("%s: tenant %q", method, tenant)
	}
	if network != "" && network != merchantsync.NetworkRakuten {
		f.violation("%s: network %q", method, network)
	}
	if f.mode&modeStoreErrors != 0 {
		return merchantsync.Errorf(merchantsync.EConflict, "fake store refused %s", method)
	}
	return nil
}

func (f *fuzzFake) page(method string, limit int, cursor string) {
	if limit < 1 || limit > httpapi.MaxLimit {
		f.violation("%s: limit %d", method, limit)
	}
	if len(cursor) > 1024 {
		f.violation("%s: cursor of %d bytes", method, len(cursor))
	}
}

func (f *fuzzFake) account(tenant, network string) *merchantsync.Account {
	if f.mode&modeAccount == 0 {
		return nil
	}
	return &merchantsync.Account{TenantID: tenant, Network: network, AffiliateID: "lMh2Xiq9xN0", SiteID: "4022211",
		Connected: true, State: merchantsync.StateConnected}
}

func (f *fuzzFake) GetSettings(_ context.Context, tenant string) (merchantsync.Settings, error) {
	if err := f.key("GetSettings", tenant, ""); err != nil {
		return merchantsync.Settings{}, err
	}
	return merchantsync.Settings{TenantID: tenant, Enabled: f.mode&modeSyncDisabled == 0}, nil
}

func (f *fuzzFake) PutSettings(_ context.Context, st merchantsync.Settings) error {
	return f.key("PutSettings", st.TenantID, "")
}

func (f *fuzzFake) GetAccount(_ context.Context, tenant, network string) (*merchantsync.Account, error) {
	if err := f.key("GetAccount", tenant, network); err != nil {
		return nil, err
	}
	return f.account(tenant, network), nil
}

func (f *fuzzFake) SaveIDs(_ context.Context, tenant, network, affiliateID, siteID string, _ time.Time) (*merchantsync.Account, error) {
	if !fuzzAffiliateID.MatchString(affiliateID) {
		f.violation("SaveIDs: affiliateId %q", affiliateID)
	}
	if siteID != "" && !fuzzSiteID.MatchString(siteID) {
		f.violation("SaveIDs: siteId %q", siteID)
	}
	if err := f.key("SaveIDs", tenant, network); err != nil {
		return nil, err
	}
	return &merchantsync.Account{TenantID: tenant, Network: network, AffiliateID: affiliateID, SiteID: siteID, State: merchantsync.StateIDsSaved}, nil
}

func (f *fuzzFake) GetRun(_ context.Context, tenant, network, runID string) (*merchantsync.Run, error) {
	if runID == "" || len(runID) > 64 {
		f.violation("GetRun: runId %q", runID)
	}
	if err := f.key("GetRun", tenant, network); err != nil {
		return nil, err
	}
	if f.mode&modeAccount == 0 {
		return nil, nil
	}
	// Finished, so that ?wait= returns at once.
	return &merchantsync.Run{RunID: runID, TenantID: tenant, Network: network, Trigger: merchantsync.TriggerManual,
		State: merchantsync.RunSucceeded}, nil
}

func (f *fuzzFake) ListRuns(_ context.Context, tenant, network string, limit int, cursor string) ([]merchantsync.Run, string, error) {
	f.page("ListRuns", limit, cursor)
	return nil, "", f.key("ListRuns", tenant, network)
}

func (f *fuzzFake) ListRelationships(_ context.Context, tenant, network string, status merchantsync.Status, limit int, cursor string) ([]merchantsync.Relationship, string, error) {
	f.page("ListRelationships", limit, cursor)
	if _, ok := merchantsync.ParseStatus(string(status)); status != "" && !ok {
		f.violation("ListRelationships: status %q", status)
	}
	return nil, "", f.key("ListRelationships", tenant, network)
}

func (f *fuzzFake) ListChanges(_ context.Context, tenant, network string, _ time.Time, limit int, cursor string) ([]merchantsync.Change, string, error) {
	f.page("ListChanges", limit, cursor)
	return nil, "", f.key("ListChanges", tenant, network)
}

func (f *fuzzFake) MarkConnected(_ context.Context, tenant, network string, c merchantsync.Connection, _ time.Time) (string, error) {
	if !fuzzSiteID.MatchString(c.SiteID) {
		f.violation("MarkConnected: siteId %q", c.SiteID)
	}
	if c.Username == "" || c.Username != strings.TrimSpace(c.Username) || len(c.Username) > 256 {
		f.violation("MarkConnected: username %q", c.Username)
	}
	if c.ID == "" {
		f.violation("MarkConnected: no connection id")
	}
	return "", f.key("MarkConnected", tenant, network)
}

func (f *fuzzFake) MarkDisconnected(_ context.Context, tenant, network, _ string, _ time.Time) error {
	return f.key("MarkDisconnected", tenant, network)
}

func (f *fuzzFake) DeleteAccount(_ context.Context, tenant, network, _ string) error {
	return f.key("DeleteAccount", tenant, network)
}

func (f *fuzzFake) StartManualRun(_ context.Context, run merchantsync.Run, _ time.Time) (merchantsync.Run, bool, error) {
	if err := f.key("StartManualRun", run.TenantID, run.Network); err != nil {
		return merchantsync.Run{}, false, err
	}
	return run, true, nil
}

func (f *fuzzFake) PutRun(_ context.Context, run merchantsync.Run) error {
	return f.key("PutRun", run.TenantID, run.Network)
}

// Secrets.

func (f *fuzzFake) CreateCredentials(_ context.Context, k merchantsync.ConnectionKey, sec merchantsync.Credentials) error {
	tenant, network := k.TenantID, k.Network
	if sec.ClientID == "" || sec.ClientID != strings.TrimSpace(sec.ClientID) || len(sec.ClientID) > 256 ||
		strings.TrimSpace(sec.ClientSecret) == "" || len(sec.ClientSecret) > 512 || !fuzzSiteID.MatchString(sec.SiteID) {
		f.violation("Secrets.Create: unvalidated credentials %q / %d-byte secret / %q", sec.ClientID, len(sec.ClientSecret), sec.SiteID)
	}
	return f.key("Secrets.Create", tenant, network)
}

func (f *fuzzFake) DeleteCredentials(_ context.Context, k merchantsync.ConnectionKey) error {
	return f.key("Secrets.Delete", k.TenantID, k.Network)
}

func (f *fuzzFake) GetCredentials(context.Context, merchantsync.ConnectionKey) (*merchantsync.Credentials, error) {
	panic("the API never reads credentials")
}

func (f *fuzzFake) UpdateCredentials(context.Context, merchantsync.ConnectionKey, merchantsync.Credentials) error {
	panic("the API never rewrites credentials")
}

// Rakuten.

func (f *fuzzFake) Connect(_ context.Context, l merchantsync.Login) (*merchantsync.Connected, error) {
	if l.ClientID == "" || l.ClientID != strings.TrimSpace(l.ClientID) || len(l.ClientID) > 256 ||
		strings.TrimSpace(l.ClientSecret) == "" || len(l.ClientSecret) > 512 || !fuzzSiteID.MatchString(l.SiteID) ||
		l.Username == "" || l.Username != strings.TrimSpace(l.Username) || len(l.Username) > 256 ||
		strings.TrimSpace(l.Password) == "" || len(l.Password) > 1024 {
		f.violation("Connect: unvalidated %q / %q / %q", l.ClientID, l.SiteID, l.Username)
	}
	if f.mode&modeRakutenNo != 0 {
		return nil, merchantsync.Errorf(merchantsync.ENetworkAuthFailed, "refused by the fake")
	}
	return &merchantsync.Connected{Credentials: merchantsync.Credentials{ClientID: l.ClientID, ClientSecret: l.ClientSecret, SiteID: l.SiteID,
		AccessToken: "fake-access", RefreshToken: "fake-refresh", AuthScheme: "Basic"}}, nil
}

// Queue.

func (f *fuzzFake) Send(_ context.Context, req merchantsync.SyncRequest) error {
	if req.RunID == "" || req.Trigger != merchantsync.TriggerManual {
		f.violation("Send: %+v", req)
	}
	return f.key("Send", req.TenantID, req.Network)
}

type fuzzRoute struct {
	router int // 0 api, 1 credentials, 2 syncnow
	method string
	path   string // {n} is the network, {id} a run id
}

var fuzzRoutes = []fuzzRoute{
	{0, "GET", "/v1/networks"},
	{0, "GET", "/v1/networks/{n}"},
	{0, "PUT", "/v1/networks/{n}/ids"},
	{0, "GET", "/v1/merchantsync/settings"},
	{0, "PUT", "/v1/merchantsync/settings"},
	{0, "GET", "/v1/networks/{n}/sync-runs"},
	{0, "GET", "/v1/networks/{n}/sync-runs/{id}"},
	{0, "GET", "/v1/networks/{n}/relationships"},
	{0, "GET", "/v1/networks/{n}/changes"},
	{1, "PUT", "/v1/networks/{n}/credentials"},
	{1, "DELETE", "/v1/networks/{n}/credentials"},
	{1, "DELETE", "/v1/networks/{n}/ids"},
	{2, "POST", "/v1/networks/{n}/sync"},
	{0, "POST", "/v1/networks/{n}/ids"},        // 405
	{1, "GET", "/v1/networks/{n}/credentials"}, // 405
	{2, "GET", "/{id}"},                        // any path
}

var fuzzMethods = []string{"GET", "PUT", "POST", "DELETE", "PATCH", "", "get"}

func FuzzRouter(f *testing.F) {
	const (
		link     = "https://click.linksynergy.com/link?id=lMh2Xiq9xN0&offerid=1234.5&type=3"
		creds    = `{"clientId":"demo-client","clientSecret":"demo-secret","siteId":"4022211","username":"demo","password":"demo-password"}`
		ct       = "application/json"
		network  = 0x80 // sel bit: take the network path segment from seg
		anyRoute = 15
	)
	add := func(sel uint8, seg, query, contentType, body string, b64 bool, tenant string, mode uint8) {
		f.Add(sel, seg, query, contentType, []byte(body), b64, tenant, mode)
	}
	// One seed per route, as the front end calls them.
	for i := range fuzzRoutes {
		add(uint8(i), "run-1", "", ct, "", false, "demo-tenant", modeAccount)
	}
	add(2, "", "", ct, `{"affiliateId":"`+link+`","siteId":"4022211"}`, false, "demo-tenant", 0)
	add(2, "", "", ct, `{"affiliateId":"4022211"}`, false, "demo-tenant", 0)
	add(2, "", "", ct, `{"affiliateId":"GSFNlAS0O%2Aw","siteId":"SID4022211"}`, false, "demo-tenant", 0)
	add(2, "", "", ct, `{"affiliateId":"w9s/SuZO5*M","siteId":""}`, true, "auth0|abc", modeAccount)
	add(2, "", "", "application/merge-patch+json; charset=utf-8", `{"affiliateId":"lMh2Xiq9xN0","tenantId":"other"}`, false, "t", 0)
	add(2, "", "", "text/plain", `{"affiliateId":"lMh2Xiq9xN0"}`, false, "t", 0)
	add(2, "", "", ct, `{"affiliateId":"lMh2Xiq9xN0"} {"affiliateId":"lMh2Xiq9xN0"}`, false, "t", 0)
	add(2, "", "", ct, `{"affiliateId":12345678901}`, false, "t", 0)
	add(2, "", "", ct, `[{"affiliateId":"lMh2Xiq9xN0"}]`, false, "t", 0)
	add(2, "", "", ct, `{"affiliateId":"lMh2Xiq9xN0"`, false, "t", 0)
	add(2, "", "", ct, `{"affiliateId":null,"siteId":null}`, false, "t", 0)
	add(2, "", "", ct, `{"affiliateId":"`+strings.Repeat("a", httpapi.MaxBodyBytes)+`"}`, false, "t", 0)
	add(2, "", "", ct, "\xef\xbb\xbf{\"affiliateId\":\"lMh2Xiq9xN0\"}", false, "t", 0)
	add(2, "", "", ct, "eyJhZmZpbGlhdGVJZCI6ImxNaDJYaXE5eE4wIn0=", true, "t", modeRawBase64)
	add(2, "", "", ct, "not base64!", true, "t", modeRawBase64)
	add(2, "", "", ct, `{"affiliateId":"lMh2Xiq9xN0"}`, false, "", 0)
	add(2, "", "", ct, `{"affiliateId":"lMh2Xiq9xN0"}`, false, "a#b", 0)
	add(2, "", "", ct, `{"affiliateId":"lMh2Xiq9xN0"}`, false, "t", modeStoreErrors)
	add(2|network, "Rakuten", "", ct, `{"affiliateId":"lMh2Xiq9xN0"}`, false, "t", 0)
	add(4, "", "", ct, `{"enabled":false}`, false, "demo-tenant", 0)
	add(4, "", "", ct, `{"enabled":"false"}`, false, "demo-tenant", 0)
	add(4, "", "", ct, `{}`, false, "demo-tenant", 0)
	add(4, "", "", "application/json; charset=", `{"enabled":true}`, false, "demo-tenant", 0)
	add(5, "", "limit=5&cursor=eyJrIjoiUlVOI3Jha3V0ZW4jMjAyNiJ9", "", "", false, "demo-tenant", modeAccount)
	add(6, strings.Repeat("r", 65), "", "", "", false, "demo-tenant", modeAccount)
	add(6, "", "", "", "", false, "demo-tenant", 0)
	add(7, "", "status=joined&limit=5", "", "", false, "demo-tenant", modeAccount)
	add(7, "", "status=JOINED&limit=0", "", "", false, "demo-tenant", 0)
	add(7, "", "limit=201&cursor="+strings.Repeat("x", 1025), "", "", false, "demo-tenant", 0)
	add(7, "", "limit=-1", "", "", false, "demo-tenant", 0)
	add(7, "", "limit=99999999999999999999", "", "", false, "demo-tenant", 0)
	add(8, "", "since=2026-01-01T00:00:00Z", "", "", false, "demo-tenant", modeAccount)
	add(8, "", "since=2026-01-01&limit=1", "", "", false, "demo-tenant", 0)
	add(9, "", "", ct, creds, false, "demo-tenant", modeAccount)
	add(9, "", "", ct, creds, false, "demo-tenant", modeAccount|modeRakutenNo)
	add(9, "", "", ct, creds, false, "demo-tenant", 0)
	add(9, "", "", ct, `{"clientId":" ","clientSecret":"s","siteId":"x","username":"u","password":"p"}`, false, "demo-tenant", modeAccount)
	add(9, "", "", ct, `{"clientId":"c","clientSecret":"s","siteId":"SID 4022211","username":" u ","password":" "}`, false, "demo-tenant", modeAccount)
	add(10, "", "", "", "", false, "demo-tenant", modeAccount)
	add(11, "", "", "", "", false, "demo-tenant", modeStoreErrors)
	add(12, "", "wait=20", "", "", false, "demo-tenant", modeAccount)
	add(12, "", "wait=26", "", "", false, "demo-tenant", modeAccount)
	add(12, "", "", "", "", false, "demo-tenant", modeAccount|modeSyncDisabled)
	add(12, "", "", ct, `{}`, false, "demo-tenant", modeAccount)
	add(12, "", "", "", "", false, "demo-tenant", 0)
	add(anyRoute, "v1/networks/rakuten/../../v1/networks", "", "", "", false, "demo-tenant", 0)
	add(anyRoute|0x10, "//v1//networks", "", "", "", false, "sub-only", modeSubClaim)
	add(anyRoute|0x20, "", "", "", "", false, "demo-tenant", 0)

	f.Fuzz(func(t *testing.T, sel uint8, seg, query, contentType string, body []byte, b64 bool, tenant string, mode uint8) {
		fake := &fuzzFake{mode: mode}
		now := func() time.Time { return time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC) }
		routers := []*httpapi.Router{
			httpapi.NewAPIRouter(&httpapi.API{Store: fake, Now: now}, nil),
			httpapi.NewCredentialsRouter(&httpapi.Credentials{Store: fake, Secrets: fake, Network: fake, Now: now}, nil),
			httpapi.NewSyncNowRouter(&httpapi.SyncNow{Store: fake, Queue: fake, Now: now, Poll: time.Millisecond}, nil),
		}
		rt := fuzzRoutes[int(sel&0x7f)%len(fuzzRoutes)]
		method := rt.method
		if int(sel&0x7f)%len(fuzzRoutes) == len(fuzzRoutes)-1 {
			rt.router = int(sel>>4) % len(routers)
			method = fuzzMethods[int(mode>>6)%len(fuzzMethods)]
		}
		network := merchantsync.NetworkRakuten
		if sel&0x80 != 0 {
			network = seg
		}
		runID := seg
		if runID == "" {
			runID = "run-1"
		}
		path := strings.NewReplacer("{n}", network, "{id}", runID).Replace(rt.path)

		ev := events.APIGatewayV2HTTPRequest{
			Version: "2.0", RawPath: path, Headers: map[string]string{},
			RequestContext: events.APIGatewayV2HTTPRequestContext{
				RequestID: "fuzz",
				HTTP:      events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: path},
			},
		}
		if contentType != "" {
			ev.Headers["Content-Type"] = contentType
		}
		if q, _ := url.ParseQuery(query); len(q) > 0 {
			ev.QueryStringParameters = map[string]string{}
			for k, v := range q {
				ev.QueryStringParameters[k] = v[0]
			}
		}
		ev.Body, ev.IsBase64Encoded = string(body), b64
		if b64 && mode&modeRawBase64 == 0 {
			ev.Body = base64.StdEncoding.EncodeToString(body)
		}
		if tenant != "" {
			claim := "tenant_id"
			if mode&modeSubClaim != 0 {
				claim = "sub"
			}
			ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
				JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{claim: tenant}},
			}
		}

		// ?wait polls a finished run and returns at once; the deadline only
		// bounds a regression.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := routers[rt.router].Handle(ctx, ev)
		if err != nil {
			t.Fatalf("%s %s: Handle returned an error: %v", method, path, err)
		}
		if resp.StatusCode < 200 || resp.StatusCode >= 500 {
			t.Fatalf("%s %s: status %d, body %s", method, path, resp.StatusCode, resp.Body)
		}
		if resp.Headers["Content-Type"] != "application/json" {
			t.Fatalf("%s %s: Content-Type %q", method, path, resp.Headers["Content-Type"])
		}
		if resp.StatusCode >= 400 {
			var e struct {
				Error struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(resp.Body), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("%s %s: status %d without an error code and message: %s", method, path, resp.StatusCode, resp.Body)
			}
			if got := merchantsync.HTTPStatus(e.Error.Code); got != resp.StatusCode {
				t.Fatalf("%s %s: status %d but code %q means %d", method, path, resp.StatusCode, e.Error.Code, got)
			}
		} else if resp.StatusCode != 204 && !json.Valid([]byte(resp.Body)) {
			t.Fatalf("%s %s: status %d with a body that is not JSON: %q", method, path, resp.StatusCode, resp.Body)
		}
		if len(fake.bad) > 0 {
			t.Fatalf("%s %s (status %d): the store saw unvalidated values: %v", method, path, resp.StatusCode, fake.bad)
		}
	})
}
