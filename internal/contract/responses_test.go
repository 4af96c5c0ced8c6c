package contract

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"

	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
)

// The whole journey of a publisher, every success response validated:
// networks, settings, IDs, credentials, sync (queued, joined, waited for),
// run history, relationships and changes with paging, disconnect, remove.
func TestSuccessResponsesMatchTheDocument(t *testing.T) {
	e := newEnv(t, envOptions{worker: true})

	res := e.expect(call{method: "GET", path: "/v1/networks"}, 200, "")
	if items, _ := res.json["items"].([]any); len(items) != 1 {
		t.Errorf("networks = %s", res.body)
	}
	if res = e.expect(call{method: "GET", path: "/v1/networks/rakuten"}, 200, ""); res.str("state") != "not_configured" {
		t.Errorf("new tenant: %s", res.body)
	}
	e.expect(call{method: "GET", path: "/v1/merchantsync/settings"}, 200, "")
	e.expect(call{method: "PUT", path: "/v1/merchantsync/settings", body: `{"enabled":true}`}, 200, "")

	// IDs from a pasted link; then credentials.
	res = e.expect(call{method: "PUT", path: "/v1/networks/rakuten/ids",
		body: `{"affiliateId":"https://click.linksynergy.com/link?id=lMh2Xiq9xN0&offerid=1234.5&type=3","siteId":"SID4022211"}`}, 200, "")
	if res.str("state") != "ids_saved" || res.str("affiliateId") != affiliateID {
		t.Errorf("PUT ids: %s", res.body)
	}
	res = e.expect(call{method: "PUT", path: "/v1/networks/rakuten/credentials", body: e.credentialsBody(testPassword)}, 200, "")
	if res.str("state") != "connected" || res.str("username") != e.account.Username || res.str("nextSyncAt") == "" {
		t.Errorf("PUT credentials: %s", res.body)
	}

	// Sync now without waiting: 202 queued; then wait for it.
	queued := e.expect(call{method: "POST", path: "/v1/networks/rakuten/sync"}, 202, "")
	runID := queued.str("runId")
	if runID == "" {
		t.Fatalf("no runId: %s", queued.body)
	}
	waitRun(t, e, runID)

	// Sync now and wait: 200 with the finished run.
	done := e.syncAndWait(tenantA)
	if done.str("state") != "succeeded" || done.json["merchantsSynced"].(float64) != 12 {
		t.Errorf("waited sync: %s", done.body)
	}

	// Two merchants change the relationship: the next sync records changes with from/rawFrom.
	for i, m := range e.sb.Merchants(e.account.SiteID)[:2] {
		status := []string{sandbox.StatusTempRemove, sandbox.StatusPermanentDecline}[i]
		if m.Status == status {
			status = sandbox.StatusSelfRemoved
		}
		if err := e.sb.SetStatus(e.account.SiteID, m.MID, status); err != nil {
			t.Fatal(err)
		}
	}
	if res = e.syncAndWait(tenantA); res.json["changes"].(float64) < 2 {
		t.Errorf("no change recorded: %s", res.body)
	}

	// Paged lists: a first page with nextCursor, then the next page.
	for _, p := range []struct {
		path  string
		query map[string]string
	}{
		{"/v1/networks/rakuten/sync-runs", nil},
		{"/v1/networks/rakuten/relationships", nil},
		{"/v1/networks/rakuten/relationships", map[string]string{"status": "removed"}},
		{"/v1/networks/rakuten/changes", nil},
		{"/v1/networks/rakuten/changes", map[string]string{"since": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}},
	} {
		q := map[string]string{"limit": "1"}
		for k, v := range p.query {
			q[k] = v
		}
		first := e.expect(call{method: "GET", path: p.path, query: q}, 200, "")
		if cur := first.str("nextCursor"); cur != "" {
			q["cursor"] = cur
			e.expect(call{method: "GET", path: p.path, query: q}, 200, "")
		} else if p.query == nil {
			t.Errorf("%s?limit=1: no nextCursor: %s", p.path, first.body)
		}
		e.expect(call{method: "GET", path: p.path, query: p.query}, 200, "")
	}
	var sawFrom bool
	changes := e.expect(call{method: "GET", path: "/v1/networks/rakuten/changes", query: map[string]string{"limit": "200"}}, 200, "")
	for _, it := range changes.json["items"].([]any) {
		_, ok := it.(map[string]any)["from"]
		sawFrom = sawFrom || ok
	}
	if !sawFrom {
		t.Errorf("no change with a from status was validated: %s", changes.body)
	}

	res = e.expect(call{method: "GET", path: "/v1/networks/rakuten/sync-runs/" + runID}, 200, "")
	if res.str("runId") != runID {
		t.Errorf("GET run: %s", res.body)
	}
	res = e.expect(call{method: "GET", path: "/v1/networks/rakuten"}, 200, "")
	if _, ok := res.json["lastRun"]; !ok || res.str("lastSyncAt") == "" {
		t.Errorf("connected network without lastRun/lastSyncAt: %s", res.body)
	}
	e.expect(call{method: "GET", path: "/v1/networks"}, 200, "")

	// Turned off: state disabled (still a valid network).
	e.expect(call{method: "PUT", path: "/v1/merchantsync/settings", body: `{"enabled":false}`}, 200, "")
	if res = e.expect(call{method: "GET", path: "/v1/networks/rakuten"}, 200, ""); res.str("state") != "disabled" {
		t.Errorf("disabled: %s", res.body)
	}
	e.expect(call{method: "PUT", path: "/v1/merchantsync/settings", body: `{"enabled":true}`}, 200, "")

	// Disconnect, then remove the IDs.
	if res = e.expect(call{method: "DELETE", path: "/v1/networks/rakuten/credentials"}, 200, ""); res.str("state") != "ids_saved" {
		t.Errorf("DELETE credentials: %s", res.body)
	}
	if res = e.expect(call{method: "DELETE", path: "/v1/networks/rakuten/ids"}, 200, ""); res.str("state") != "not_configured" {
		t.Errorf("DELETE ids: %s", res.body)
	}
}

// waitRun polls GET …/sync-runs/{runId} (validating each answer) until the run is final.
func waitRun(t *testing.T, e *env, runID string) *result {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res := e.expect(call{method: "GET", path: "/v1/networks/rakuten/sync-runs/" + runID}, 200, "")
		switch res.str("state") {
		case "succeeded", "failed", "skipped":
			return res
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s never finished: %s", runID, res.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Rakuten refuses the stored credentials: the waited run is failed with
// error.code reauth_required, the network shows reauth_required, and the
// next "Sync now" is refused with 409 reauth_required.
func TestReauthRequiredResponses(t *testing.T) {
	e := newEnv(t, envOptions{worker: true})
	e.connect(tenantA)
	e.sb.ExpireAccessTokens()
	e.sb.RevokeRefreshTokens(e.account.SiteID)
	e.sb.SetTokenKeyEnabled(false)

	run := e.syncAndWait(tenantA)
	if errObj, _ := run.json["error"].(map[string]any); run.str("state") != "failed" || errObj["code"] != "reauth_required" {
		t.Fatalf("run = %s, want failed with reauth_required", run.body)
	}
	if res := e.expect(call{method: "GET", path: "/v1/networks/rakuten"}, 200, ""); res.str("state") != "reauth_required" {
		t.Errorf("network: %s", res.body)
	}
	e.expect(call{method: "POST", path: "/v1/networks/rakuten/sync"}, 409, "reauth_required")
	e.expect(call{method: "GET", path: "/v1/networks/rakuten/sync-runs"}, 200, "")
}

// Every error the handlers answer, for every reason a front end must
// handle, is documented for its route with its code.
func TestErrorResponsesMatchTheDocument(t *testing.T) {
	e := newEnv(t, envOptions{})
	const (
		ids      = "/v1/networks/rakuten/ids"
		creds    = "/v1/networks/rakuten/credentials"
		syncPath = "/v1/networks/rakuten/sync"
		settings = "/v1/merchantsync/settings"
	)
	huge := `{"affiliateId":"` + strings.Repeat("a", 70<<10) + `"}`

	// Before any IDs.
	e.expect(call{method: "PUT", path: creds, body: e.credentialsBody(testPassword)}, 409, "network_id_required")
	e.expect(call{method: "POST", path: syncPath}, 409, "network_id_required")

	for _, tc := range []struct {
		name   string
		c      call
		status int
		code   string
	}{
		{"no tenant claim", call{method: "GET", path: "/v1/networks", noTenant: true}, 401, "unauthorized"},
		{"invalid tenant claim", call{method: "GET", path: settings, tenant: "a#b"}, 401, "unauthorized"},
		{"unknown network", call{method: "GET", path: "/v1/networks/cj"}, 404, "not_found"},
		{"unknown run", call{method: "GET", path: "/v1/networks/rakuten/sync-runs/20261126T100000.000Z-0000000000"}, 404, "not_found"},
		{"overlong run id", call{method: "GET", path: "/v1/networks/rakuten/sync-runs/" + strings.Repeat("9", 80)}, 404, "not_found"},
		{"bad JSON", call{method: "PUT", path: ids, body: `{"affiliateId":`}, 400, "invalid_json"},
		{"not an object", call{method: "PUT", path: ids, body: `["lMh2Xiq9xN0"]`}, 400, "invalid_json"},
		{"unknown field", call{method: "PUT", path: ids, body: `{"affiliateId":"lMh2Xiq9xN0","tenantId":"tenant-b"}`}, 400, "invalid_json"},
		{"wrong type", call{method: "PUT", path: ids, body: `{"affiliateId":12345678901}`}, 400, "invalid_json"},
		{"empty body", call{method: "PUT", path: ids, body: ` `}, 400, "invalid_json"},
		{"missing affiliateId", call{method: "PUT", path: ids, body: `{"siteId":"4022211"}`}, 400, "invalid_request"},
		{"looks like a site id", call{method: "PUT", path: ids, body: `{"affiliateId":"4022211"}`}, 400, "looks_like_site_id"},
		{"link with a site id", call{method: "PUT", path: ids, body: `{"affiliateId":"https://click.linksynergy.com/link?id=4022211"}`}, 400, "looks_like_site_id"},
		{"bad site id", call{method: "PUT", path: ids, body: `{"affiliateId":"lMh2Xiq9xN0","siteId":"abc"}`}, 400, "invalid_request"},
		{"huge body", call{method: "PUT", path: ids, body: huge}, 413, "body_too_large"},
		{"not JSON content type", call{method: "PUT", path: ids, body: `{"affiliateId":"lMh2Xiq9xN0"}`, contentType: "text/plain"}, 415, "unsupported_media_type"},
		{"settings: missing enabled", call{method: "PUT", path: settings, body: `{}`}, 400, "invalid_request"},
		{"settings: enabled null", call{method: "PUT", path: settings, body: `{"enabled":null}`}, 400, "invalid_request"},
		{"settings: enabled string", call{method: "PUT", path: settings, body: `{"enabled":"true"}`}, 400, "invalid_json"},
		{"settings: form content type", call{method: "PUT", path: settings, body: `enabled=true`, contentType: "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"},
		{"credentials: missing password", call{method: "PUT", path: creds, body: `{"clientId":"a","clientSecret":"b","siteId":"4022211","username":"u"}`}, 400, "invalid_request"},
		{"credentials: number password", call{method: "PUT", path: creds, body: `{"clientId":"a","clientSecret":"b","siteId":"4022211","username":"u","password":12}`}, 400, "invalid_json"},
		{"sync: wait too long", call{method: "POST", path: syncPath, query: map[string]string{"wait": "26"}}, 400, "invalid_request"},
		{"sync: a body", call{method: "POST", path: syncPath, body: `{}`}, 400, "invalid_request"},
		{"sync: huge body", call{method: "POST", path: syncPath, body: huge}, 413, "body_too_large"},
		{"runs: limit 0", call{method: "GET", path: "/v1/networks/rakuten/sync-runs", query: map[string]string{"limit": "0"}}, 400, "invalid_request"},
		{"runs: mangled cursor", call{method: "GET", path: "/v1/networks/rakuten/sync-runs", query: map[string]string{"cursor": "not-a-cursor"}}, 400, "invalid_request"},
		{"relationships: bad status", call{method: "GET", path: "/v1/networks/rakuten/relationships", query: map[string]string{"status": "active"}}, 400, "invalid_request"},
		{"relationships: limit 201", call{method: "GET", path: "/v1/networks/rakuten/relationships", query: map[string]string{"limit": "201"}}, 400, "invalid_request"},
		{"relationships: cursor too long", call{method: "GET", path: "/v1/networks/rakuten/relationships", query: map[string]string{"cursor": strings.Repeat("c", 1025)}}, 400, "invalid_request"},
		{"changes: bad since", call{method: "GET", path: "/v1/networks/rakuten/changes", query: map[string]string{"since": "yesterday"}}, 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			defer func() { e.t = nil }()
			res := e.expect(tc.c, tc.status, tc.code)
			if f, _ := res.json["error"].(map[string]any); f != nil && f["message"] == "" {
				t.Errorf("empty message: %s", res.body)
			}
		})
	}
	e.t = t

	// IDs saved, no credentials: sync is not possible yet.
	e.saveIDs(tenantA)
	e.expect(call{method: "POST", path: syncPath}, 409, "not_connected")

	// Rakuten refuses the password: 422 with Rakuten's reason, nothing stored.
	res := e.expect(call{method: "PUT", path: creds, body: e.credentialsBody("wrong-password")}, 422, "network_auth_failed")
	if !strings.Contains(res.body, "Rakuten said") {
		t.Errorf("422 without Rakuten's reason: %s", res.body)
	}
	// Rakuten is down: 502.
	f := sandbox.Unavailable503XML()
	f.Endpoint, f.Times = "token", 100
	e.sb.Inject(f)
	e.expect(call{method: "PUT", path: creds, body: e.credentialsBody(testPassword)}, 502, "network_unavailable")
	e.sb.ClearFaults()

	// Connected but turned off: 409 sync_disabled.
	e.connect(tenantA)
	e.expect(call{method: "PUT", path: settings, body: `{"enabled":false}`}, 200, "")
	e.expect(call{method: "POST", path: syncPath}, 409, "sync_disabled")
	// A 500 from a Secrets Manager fault.
	e.SMFail.Fail("DeleteSecret", "InternalServiceError", 10)
	e.expect(call{method: "DELETE", path: creds}, 500, "internal")
}

// A method the path does not have answers 405 method_not_allowed in the
// Error shape. The document has no such operation (API Gateway answers it
// with its own 404), so the body is checked against the Error schema.
func TestMethodNotAllowedIsAnError(t *testing.T) {
	e := newEnv(t, envOptions{})
	doc, router := contractDoc()
	c := call{method: "GET", path: "/v1/networks/rakuten/credentials", router: e.creds}
	if _, _, err := router.FindRoute(c.httpRequest()); err == nil || !strings.Contains(err.Error(), routers.ErrMethodNotAllowed.Error()) {
		t.Fatalf("the document has GET credentials? %v", err)
	}
	res := e.do(c)
	if res.status != 405 || res.code() != "method_not_allowed" {
		t.Fatalf("got %d %s", res.status, res.body)
	}
	var v any
	_ = json.Unmarshal([]byte(res.body), &v)
	if err := doc.Components.Schemas["Error"].Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		t.Errorf("405 body is not an Error: %v", err)
	}
}

// validRequests is one request per operation that a connected tenant's
// handlers accept; the sweeps below break it in one way each.
func validRequests() map[string]call {
	return map[string]call{
		"GET /v1/networks":                             {method: "GET", path: "/v1/networks"},
		"GET /v1/networks/{network}":                   {method: "GET", path: "/v1/networks/rakuten"},
		"PUT /v1/networks/{network}/ids":               {method: "PUT", path: "/v1/networks/rakuten/ids", body: `{"affiliateId":"lMh2Xiq9xN0","siteId":"4022211"}`},
		"DELETE /v1/networks/{network}/ids":            {method: "DELETE", path: "/v1/networks/rakuten/ids"},
		"GET /v1/merchantsync/settings":                {method: "GET", path: "/v1/merchantsync/settings"},
		"PUT /v1/merchantsync/settings":                {method: "PUT", path: "/v1/merchantsync/settings", body: `{"enabled":true}`},
		"PUT /v1/networks/{network}/credentials":       {method: "PUT", path: "/v1/networks/rakuten/credentials", body: `{"clientId":"client-1","clientSecret":"client-secret-1","siteId":"4022211","username":"publisher@example.com","password":"` + testPassword + `"}`},
		"DELETE /v1/networks/{network}/credentials":    {method: "DELETE", path: "/v1/networks/rakuten/credentials"},
		"POST /v1/networks/{network}/sync":             {method: "POST", path: "/v1/networks/rakuten/sync"},
		"GET /v1/networks/{network}/sync-runs":         {method: "GET", path: "/v1/networks/rakuten/sync-runs"},
		"GET /v1/networks/{network}/sync-runs/{runId}": {method: "GET", path: "/v1/networks/rakuten/sync-runs/20261126T100000.000Z-0000000000"},
		"GET /v1/networks/{network}/relationships":     {method: "GET", path: "/v1/networks/rakuten/relationships"},
		"GET /v1/networks/{network}/changes":           {method: "GET", path: "/v1/networks/rakuten/changes"},
		"POST /v1/webhooks":                            {method: "POST", path: "/v1/webhooks", body: `{"url":"https://hooks.example.com/merchantsync"}`},
		"GET /v1/webhooks":                             {method: "GET", path: "/v1/webhooks"},
		"GET /v1/webhooks/{webhookId}":                 {method: "GET", path: "/v1/webhooks/wh_contract"},
		"DELETE /v1/webhooks/{webhookId}":              {method: "DELETE", path: "/v1/webhooks/wh_contract"},
		"POST /v1/webhooks/{webhookId}/test":           {method: "POST", path: "/v1/webhooks/wh_contract/test"},
		"GET /v1/webhooks/{webhookId}/deliveries":      {method: "GET", path: "/v1/webhooks/wh_contract/deliveries"},
	}
}

// documentedStatuses returns the statuses the document lists for routeKey.
func documentedStatuses(t *testing.T, routeKey string) []string {
	doc, _ := contractDoc()
	method, path, _ := strings.Cut(routeKey, " ")
	op := doc.Paths.Find(path).GetOperation(method)
	if op == nil {
		t.Fatalf("no operation %s", routeKey)
	}
	var out []string
	for s := range op.Responses.Map() {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// For every operation of the document: the router-level errors (401 no
// tenant, 404 unknown network, 413 huge body, 415 not JSON) and the
// dependency failures (500 DynamoDB unreachable, 503 DynamoDB throttling)
// are answered, documented and valid.
func TestEveryOperationFailureModes(t *testing.T) {
	doc, _ := contractDoc()
	valid := validRequests()
	if got := DocumentRoutes(doc); len(got) != len(valid) {
		t.Fatalf("validRequests covers %d operations, the document has %d", len(valid), len(got))
	}
	e := newEnv(t, envOptions{})
	e.connect(tenantA)
	broken := newEnv(t, envOptions{store: brokenStore()})

	huge := `{"x":"` + strings.Repeat("x", 70<<10) + `"}`
	for key, c := range valid {
		statuses := documentedStatuses(t, key)
		has := func(s int) bool { return slices.Contains(statuses, fmt.Sprint(s)) }
		t.Run(key, func(t *testing.T) {
			e.t, broken.t = t, t

			nc := c
			nc.noTenant = true
			e.expect(nc, 401, "unauthorized")

			if strings.Contains(key, "{network}") {
				uc := c
				uc.path = strings.Replace(c.path, "/rakuten", "/awin", 1)
				e.expect(uc, 404, "not_found")
			}
			if has(413) {
				hc := c
				hc.body = huge
				e.expect(hc, 413, "body_too_large")
			} else if c.method != "GET" {
				t.Errorf("%s takes a body but does not document 413", key)
			}
			if has(415) {
				tc := c
				tc.contentType = "text/plain; charset=utf-8"
				e.expect(tc, 415, "unsupported_media_type")
			}

			broken.expect(c, 500, "internal")

			for _, op := range []string{"GetItem", "Query", "UpdateItem", "DeleteItem", "PutItem", "TransactWriteItems"} {
				e.faults.Throttle(op, 1000)
			}
			e.expect(c, 503, "throttled")
			e.faults.Clear()
		})
	}
}

// Breaking the contract fails a test: responses the handlers did not give —
// a renamed or added field, an undocumented status, a wrong error code for
// the status, a missing header, a non-UTC time — are all refused by the
// validator the tests above use.
func TestValidatorRejectsResponsesOffContract(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.saveIDs(tenantA)
	_, router := contractDoc()
	captured := e.expect(call{method: "GET", path: "/v1/networks/rakuten"}, 200, "")
	route, params, err := router.FindRoute(captured.req)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, status int, header http.Header, body string) {
		t.Helper()
		if validateResponse(route, params, captured.req, status, header, []byte(body)) == nil {
			t.Errorf("%s: the validator accepted it", name)
		}
	}
	if err := validateResponse(route, params, captured.req, captured.status, captured.header, []byte(captured.body)); err != nil {
		t.Fatalf("the captured response itself is invalid: %v", err)
	}
	check("field renamed syncEnabled → sync_enabled", 200, captured.header, strings.Replace(captured.body, `"syncEnabled"`, `"sync_enabled"`, 1))
	check("field renamed affiliateId → affiliateID", 200, captured.header, strings.Replace(captured.body, `"affiliateId"`, `"affiliateID"`, 1))
	check("field added", 200, captured.header, strings.Replace(captured.body, `{`, `{"tenantId":"tenant-a",`, 1))
	check("required field dropped", 200, captured.header, strings.Replace(captured.body, `"state":"ids_saved",`, ``, 1))
	check("enum value changed", 200, captured.header, strings.Replace(captured.body, `"ids_saved"`, `"idsSaved"`, 1))
	check("count as a string", 200, captured.header, strings.Replace(captured.body, `"joined":0`, `"joined":"0"`, 1))
	check("undocumented status 418", 418, captured.header, captured.body)
	check("undocumented status 409 on GET network", 409, captured.header, `{"error":{"code":"conflict","message":"x"}}`)
	check("error code not of this status", 404, captured.header, `{"error":{"code":"conflict","message":"x"}}`)
	check("error with an extra field", 404, captured.header, `{"error":{"code":"not_found","message":"x","detail":"y"}}`)
	check("error without message", 404, captured.header, `{"error":{"code":"not_found"}}`)
	check("error code outside the enum", 404, captured.header, `{"error":{"code":"NotFound","message":"x"}}`)
	noCache := captured.header.Clone()
	noCache.Del("Cache-Control")
	check("Cache-Control missing", 200, noCache, captured.body)
	htmlCT := captured.header.Clone()
	htmlCT.Set("Content-Type", "text/html")
	check("not JSON", 200, htmlCT, captured.body)

	withTime := strings.Replace(captured.body, `{`, `{"lastSyncAt":"2026-11-26T05:00:00+02:00",`, 1)
	check("time not in UTC", 200, captured.header, withTime)
	utc := strings.Replace(captured.body, `{`, `{"lastSyncAt":"2026-11-26T03:00:00Z",`, 1)
	if err := validateResponse(route, params, captured.req, 200, captured.header, []byte(utc)); err != nil {
		t.Errorf("a UTC time was refused: %v", err)
	}
}
