package httpapi_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/merchantsync/merchantsync/internal/httpapi"
)

func newAPI(t *testing.T) (*table, *httpapi.Router) {
	tb := newTable(t)
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	r := httpapi.NewAPIRouter(&httpapi.API{Store: tb.store, Now: func() time.Time { return now }}, nil)
	return tb, r
}

func TestSaveIDsFromPastedLink(t *testing.T) {
	tb, api := newAPI(t)
	// The event sam local invoke uses: a whole pasted Rakuten link.
	status, body := invoke(t, api, loadEvent(t, "api-put-ids.json"))
	if status != 200 {
		t.Fatalf("PUT ids = %d %v", status, body)
	}
	if got := str(body["affiliateId"]); got != "lMh2Xiq9xN0" {
		t.Errorf("affiliateId = %q, want the id= of the link", got)
	}
	if str(body["siteId"]) != "4022211" || str(body["state"]) != "ids_saved" {
		t.Errorf("body = %v", body)
	}
	status, body = invoke(t, api, loadEvent(t, "api-get-network.json"))
	if status != 200 || str(body["state"]) != "ids_saved" || str(body["affiliateId"]) != "lMh2Xiq9xN0" {
		t.Errorf("GET network = %d %v", status, body)
	}
	// The stored item holds the extracted id, not the link.
	snap := tb.snapshot(t)
	if !contains(snap, `"lMh2Xiq9xN0"`) || contains(snap, "linksynergy") {
		t.Errorf("stored items = %v", snap)
	}
}

func TestSiteIDTypedAsAffiliateID(t *testing.T) {
	tb, api := newAPI(t)
	status, body := invoke(t, api, loadEvent(t, "api-put-ids-site-id-mistake.json"))
	if status != 400 || errCode(body) != "looks_like_site_id" {
		t.Fatalf("got %d %v, want 400 looks_like_site_id", status, body)
	}
	if msg := errMessage(body); !strings.Contains(msg, "id=") || !strings.Contains(msg, "Site ID") {
		t.Errorf("message does not explain the difference: %q", msg)
	}
	if snap := tb.snapshot(t); len(snap) != 0 {
		t.Errorf("a refused request stored %v", snap)
	}
}

func TestTenantIsolation(t *testing.T) {
	_, api := newAPI(t)
	if status, body := invoke(t, api, req("PUT", "/v1/networks/rakuten/ids", "tenant-a", `{"affiliateId":"lMh2Xiq9xN0","siteId":"4022211"}`, nil)); status != 200 {
		t.Fatalf("A saves: %d %v", status, body)
	}
	status, body := invoke(t, api, req("GET", "/v1/networks/rakuten", "tenant-b", "", nil))
	if status != 200 || str(body["state"]) != "not_configured" || body["affiliateId"] != nil {
		t.Errorf("B sees %d %v, want not_configured and no ids", status, body)
	}
	// B saving its own ids never touches A's.
	if status, _ := invoke(t, api, req("PUT", "/v1/networks/rakuten/ids", "tenant-b", `{"affiliateId":"GSFNlAS0O*w"}`, nil)); status != 200 {
		t.Fatal("B saves its own ids")
	}
	_, body = invoke(t, api, req("GET", "/v1/networks/rakuten", "tenant-a", "", nil))
	if str(body["affiliateId"]) != "lMh2Xiq9xN0" || str(body["siteId"]) != "4022211" {
		t.Errorf("A's ids changed: %v", body)
	}
	// A tenant id in the body or path is refused, never obeyed.
	status, body = invoke(t, api, req("PUT", "/v1/networks/rakuten/ids", "tenant-b", `{"affiliateId":"w9s/SuZO5*M","tenantId":"tenant-a"}`, nil))
	if status != 400 || errCode(body) != "invalid_json" {
		t.Errorf("tenantId in body: %d %v", status, body)
	}
	_, body = invoke(t, api, req("GET", "/v1/networks/rakuten", "tenant-a", "", nil))
	if str(body["affiliateId"]) != "lMh2Xiq9xN0" {
		t.Errorf("A's ids changed: %v", body)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	tb, api := newAPI(t)
	// Existing state that no bad request may change.
	if status, _ := invoke(t, api, req("PUT", "/v1/networks/rakuten/ids", "tenant-a", `{"affiliateId":"lMh2Xiq9xN0","siteId":"4022211"}`, nil)); status != 200 {
		t.Fatal("seed")
	}
	before := tb.snapshot(t)
	huge := `{"affiliateId":"` + strings.Repeat("a", 70<<10) + `"}`
	tests := []struct {
		name, method, path, tenant, body string
		query                            map[string]string
		status                           int
		code                             string
	}{
		{"malformed json", "PUT", "/v1/networks/rakuten/ids", "tenant-a", `{"affiliateId":`, nil, 400, "invalid_json"},
		{"not an object", "PUT", "/v1/networks/rakuten/ids", "tenant-a", `["lMh2Xiq9xN0"]`, nil, 400, "invalid_json"},
		{"wrong type", "PUT", "/v1/networks/rakuten/ids", "tenant-a", `{"affiliateId":12345678901}`, nil, 400, "invalid_json"},
		{"unknown field", "PUT", "/v1/networks/rakuten/ids", "tenant-a", `{"affiliateId":"GSFNlAS0O*w","extra":1}`, nil, 400, "invalid_json"},
		{"two objects", "PUT", "/v1/networks/rakuten/ids", "tenant-a", `{"affiliateId":"GSFNlAS0O*w"}{}`, nil, 400, "invalid_json"},
		{"empty body", "PUT", "/v1/networks/rakuten/ids", "tenant-a", ``, nil, 400, "invalid_json"},
		{"null affiliate id", "PUT", "/v1/networks/rakuten/ids", "tenant-a", `{"affiliateId":null}`, nil, 400, "invalid_request"},
		{"huge body", "PUT", "/v1/networks/rakuten/ids", "tenant-a", huge, nil, 413, "body_too_large"},
		{"bad affiliate id", "PUT", "/v1/networks/rakuten/ids", "tenant-a", `{"affiliateId":"abc"}`, nil, 400, "invalid_request"},
		{"site id as affiliate id", "PUT", "/v1/networks/rakuten/ids", "tenant-a", `{"affiliateId":"SID4022211"}`, nil, 400, "looks_like_site_id"},
		{"bad site id", "PUT", "/v1/networks/rakuten/ids", "tenant-a", `{"affiliateId":"GSFNlAS0O*w","siteId":"40x"}`, nil, 400, "invalid_request"},
		{"missing tenant", "PUT", "/v1/networks/rakuten/ids", "", `{"affiliateId":"GSFNlAS0O*w"}`, nil, 401, "unauthorized"},
		{"bad tenant", "PUT", "/v1/networks/rakuten/ids", "a#b", `{"affiliateId":"GSFNlAS0O*w"}`, nil, 401, "unauthorized"},
		{"unknown network", "PUT", "/v1/networks/awin/ids", "tenant-a", `{"affiliateId":"GSFNlAS0O*w"}`, nil, 404, "not_found"},
		{"unknown route", "GET", "/v1/nothing", "tenant-a", ``, nil, 404, "not_found"},
		{"wrong method", "PATCH", "/v1/networks/rakuten/ids", "tenant-a", `{}`, nil, 405, "method_not_allowed"},
		{"settings wrong type", "PUT", "/v1/merchantsync/settings", "tenant-a", `{"enabled":"yes"}`, nil, 400, "invalid_json"},
		{"settings missing field", "PUT", "/v1/merchantsync/settings", "tenant-a", `{}`, nil, 400, "invalid_request"},
		{"settings bad syncEvery", "PUT", "/v1/merchantsync/settings", "tenant-a", `{"enabled":true,"syncEvery":"2h"}`, nil, 400, "invalid_request"},
		{"settings syncEvery not a string", "PUT", "/v1/merchantsync/settings", "tenant-a", `{"enabled":true,"syncEvery":1}`, nil, 400, "invalid_json"},
		{"bad limit", "GET", "/v1/networks/rakuten/relationships", "tenant-a", ``, map[string]string{"limit": "1000"}, 400, "invalid_request"},
		{"bad status", "GET", "/v1/networks/rakuten/relationships", "tenant-a", ``, map[string]string{"status": "approved"}, 400, "invalid_request"},
		{"forged cursor", "GET", "/v1/networks/rakuten/relationships", "tenant-a", ``, map[string]string{"cursor": "not-a-cursor"}, 400, "invalid_request"},
		{"bad since", "GET", "/v1/networks/rakuten/changes", "tenant-a", ``, map[string]string{"since": "yesterday"}, 400, "invalid_request"},
		{"unknown run", "GET", "/v1/networks/rakuten/sync-runs/nope", "tenant-a", ``, nil, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := req(tt.method, tt.path, tt.tenant, tt.body, tt.query)
			status, body := invoke(t, api, ev)
			if status != tt.status || errCode(body) != tt.code {
				t.Fatalf("got %d %v, want %d %s", status, body, tt.status, tt.code)
			}
			if errMessage(body) == "" {
				t.Errorf("no message: %v", body)
			}
			if after := tb.snapshot(t); !slices.Equal(before, after) {
				t.Errorf("table changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

func TestWrongContentType(t *testing.T) {
	_, api := newAPI(t)
	ev := req("PUT", "/v1/merchantsync/settings", "tenant-a", `{"enabled":true}`, nil)
	ev.Headers["content-type"] = "text/plain"
	if status, body := invoke(t, api, ev); status != 415 || errCode(body) != "unsupported_media_type" {
		t.Errorf("got %d %v", status, body)
	}
}

// TestSettingsSyncEvery: syncEvery defaults to "24h", is saved, stays when
// a PUT leaves it out, and an hourly tenant's connected account shows the
// hourly schedule's next run as nextSyncAt.
func TestSettingsSyncEvery(t *testing.T) {
	_, api := newAPI(t)
	get := func() map[string]any {
		t.Helper()
		_, body := invoke(t, api, req("GET", "/v1/merchantsync/settings", "tenant-h", "", nil))
		return body
	}
	if b := get(); b["syncEvery"] != "24h" {
		t.Fatalf("default: %v", b)
	}
	if status, b := invoke(t, api, req("PUT", "/v1/merchantsync/settings", "tenant-h", `{"enabled":true,"syncEvery":"1h"}`, nil)); status != 200 || b["syncEvery"] != "1h" {
		t.Fatalf("PUT 1h: %d %v", status, b)
	}
	if status, b := invoke(t, api, req("PUT", "/v1/merchantsync/settings", "tenant-h", `{"enabled":true}`, nil)); status != 200 || b["syncEvery"] != "1h" {
		t.Fatalf("PUT without syncEvery reset it: %d %v", status, b)
	}
	if b := get(); b["syncEvery"] != "1h" || b["enabled"] != true {
		t.Fatalf("after PUTs: %v", b)
	}
}

func TestSettingsToggle(t *testing.T) {
	_, api := newAPI(t)
	status, body := invoke(t, api, loadEvent(t, "api-get-settings.json"))
	if status != 200 || body["enabled"] != true {
		t.Fatalf("default settings = %d %v, want enabled", status, body)
	}
	if status, body = invoke(t, api, req("PUT", "/v1/merchantsync/settings", "tenant-demo", `{"enabled":false}`, nil)); status != 200 || body["enabled"] != false {
		t.Fatalf("PUT = %d %v", status, body)
	}
	if _, body = invoke(t, api, loadEvent(t, "api-get-settings.json")); body["enabled"] != false {
		t.Errorf("after PUT false: %v", body)
	}
	// Another tenant's toggle is its own.
	if _, body = invoke(t, api, req("GET", "/v1/merchantsync/settings", "tenant-other", "", nil)); body["enabled"] != true {
		t.Errorf("other tenant: %v", body)
	}
	status, body = invoke(t, api, loadEvent(t, "api-list-networks.json"))
	items, _ := body["items"].([]any)
	if status != 200 || len(items) != 1 {
		t.Fatalf("networks = %d %v", status, body)
	}
	if n := items[0].(map[string]any); n["network"] != "rakuten" || n["state"] != "not_configured" || n["syncEnabled"] != false {
		t.Errorf("network = %v", n)
	}
}

func TestEmptyListsAndEvents(t *testing.T) {
	_, api := newAPI(t)
	for _, name := range []string{"api-list-relationships.json", "api-list-changes.json", "api-list-sync-runs.json"} {
		status, body := invoke(t, api, loadEvent(t, name))
		items, ok := body["items"].([]any)
		if status != 200 || !ok || len(items) != 0 {
			t.Errorf("%s = %d %v, want 200 and an empty items list", name, status, body)
		}
	}
}

// TestTenantClaim: the tenant comes from the configured claim and no other.
// Before, a token without tenant_id was silently the tenant named by its
// sub: one user's id could then name another tenant's data.
func TestTenantClaim(t *testing.T) {
	_, api := newAPI(t)
	withClaims := func(claims map[string]string) events.APIGatewayV2HTTPRequest {
		ev := req("GET", "/v1/networks/rakuten", "", "", nil)
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: claims}}
		return ev
	}
	if status, body := invoke(t, api, withClaims(map[string]string{"sub": "tenant-a"})); status != 401 || errCode(body) != "unauthorized" ||
		!strings.Contains(errMessage(body), "tenant_id") {
		t.Errorf("a token with sub only: %d %v, want 401 naming the claim", status, body)
	}
	api.TenantClaim = "custom:tenant"
	if status, body := invoke(t, api, withClaims(map[string]string{"tenant_id": "tenant-a"})); status != 401 {
		t.Errorf("tenant_id when the stack reads custom:tenant: %d %v", status, body)
	}
	if status, body := invoke(t, api, withClaims(map[string]string{"custom:tenant": "tenant-a", "tenant_id": "tenant-b"})); status != 200 {
		t.Errorf("the configured claim: %d %v", status, body)
	}
}
