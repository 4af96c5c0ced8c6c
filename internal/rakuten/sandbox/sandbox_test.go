package sandbox_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
)

var acct = sandbox.Account{ClientID: "cid", ClientSecret: "csecret", SiteID: "1234567", Username: "u", Password: "pw"}

func start(t *testing.T) (*sandbox.Server, *httptest.Server) {
	t.Helper()
	sb := sandbox.New(sandbox.Options{})
	sb.AddAccount(acct)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	return sb, srv
}

func key(a sandbox.Account) string {
	return base64.StdEncoding.EncodeToString([]byte(a.ClientID + ":" + a.ClientSecret))
}

type tokenJSON struct {
	AccessToken  string          `json:"access_token"`
	RefreshToken string          `json:"refresh_token"`
	ExpiresIn    json.RawMessage `json:"expires_in"`
	Error        string          `json:"error"`
	Description  string          `json:"error_description"`
}

func postToken(t *testing.T, srv *httptest.Server, auth string, form url.Values) (int, tokenJSON) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", auth)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tj tokenJSON
	if err := json.NewDecoder(resp.Body).Decode(&tj); err != nil {
		t.Fatalf("token response not JSON: %v", err)
	}
	return resp.StatusCode, tj
}

func get(t *testing.T, srv *httptest.Server, path, token string) (int, string, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

func password(a sandbox.Account) url.Values {
	return url.Values{"grant_type": {"password"}, "username": {a.Username}, "password": {a.Password}, "scope": {a.SiteID}}
}

func TestTokenGrants(t *testing.T) {
	sb, srv := start(t)
	tests := []struct {
		name   string
		auth   string
		form   url.Values
		status int
		err    string
	}{
		{"password basic", "Basic " + key(acct), password(acct), 200, ""},
		{"password bearer", "Bearer " + key(acct), password(acct), 200, ""},
		{"wrong password", "Basic " + key(acct), url.Values{"grant_type": {"password"}, "username": {"u"}, "password": {"nope"}, "scope": {acct.SiteID}}, 400, "invalid_grant"},
		{"wrong secret", "Basic " + key(sandbox.Account{ClientID: "cid", ClientSecret: "x"}), password(acct), 401, "invalid_client"},
		{"unknown scope", "Basic " + key(acct), url.Values{"grant_type": {"password"}, "username": {"u"}, "password": {"pw"}, "scope": {"999"}}, 400, "invalid_scope"},
		{"token key client_credentials", "Bearer " + key(acct), url.Values{"grant_type": {"client_credentials"}, "scope": {acct.SiteID}}, 200, ""},
		{"token key scope only", "Bearer " + key(acct), url.Values{"scope": {acct.SiteID}}, 200, ""},
		{"token key password without user", "Bearer " + key(acct), url.Values{"grant_type": {"password"}, "scope": {acct.SiteID}}, 200, ""},
		{"unsupported grant", "Basic " + key(acct), url.Values{"grant_type": {"implicit"}, "scope": {acct.SiteID}}, 400, "unsupported_grant_type"},
		{"no auth", "", password(acct), 401, "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, tj := postToken(t, srv, tt.auth, tt.form)
			if status != tt.status || tj.Error != tt.err {
				t.Fatalf("got %d %q (%s), want %d %q", status, tj.Error, tj.Description, tt.status, tt.err)
			}
			if tt.status == 200 && (tj.AccessToken == "" || tj.RefreshToken == "" || tj.AccessToken == tj.RefreshToken) {
				t.Fatalf("bad token pair %+v", tj)
			}
			if strings.Contains(tj.Description, "nope") {
				t.Fatalf("error echoes the password: %q", tj.Description)
			}
		})
	}
	if got := sb.Calls(sandbox.EndpointToken); got != len(tests) {
		t.Errorf("token calls = %d, want %d", got, len(tests))
	}
}

func TestAcceptedScheme(t *testing.T) {
	sb, srv := start(t)
	sb.SetAcceptedScheme("Bearer")
	if status, tj := postToken(t, srv, "Basic "+key(acct), password(acct)); status != 401 || tj.Error != "invalid_client" {
		t.Fatalf("Basic with Bearer-only: %d %q", status, tj.Error)
	}
	if status, _ := postToken(t, srv, "Bearer "+key(acct), password(acct)); status != 200 {
		t.Fatalf("Bearer with Bearer-only: %d", status)
	}
}

func TestRefreshRotates(t *testing.T) {
	sb, srv := start(t)
	auth := "Basic " + key(acct)
	_, first := postToken(t, srv, auth, password(acct))
	refresh := func(rt string) (int, tokenJSON) {
		return postToken(t, srv, auth, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {acct.SiteID}})
	}
	status, second := refresh(first.RefreshToken)
	if status != 200 || second.RefreshToken == first.RefreshToken || second.RefreshToken == "" {
		t.Fatalf("refresh: %d %+v", status, second)
	}
	if status, tj := refresh(first.RefreshToken); status != 400 || tj.Error != "invalid_grant" {
		t.Fatalf("reused refresh token: %d %q, want 400 invalid_grant", status, tj.Error)
	}
	// Legacy clients send scope=PRODUCTION.
	status, third := postToken(t, srv, auth, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {second.RefreshToken}, "scope": {"PRODUCTION"}})
	if status != 200 {
		t.Fatalf("refresh with scope=PRODUCTION: %d", status)
	}
	sb.RevokeRefreshTokens(acct.SiteID)
	if status, tj := refresh(third.RefreshToken); status != 400 || tj.Error != "invalid_grant" {
		t.Fatalf("revoked refresh token: %d %q", status, tj.Error)
	}
	sb.SetTokenKeyEnabled(false)
	if status, tj := postToken(t, srv, "Bearer "+key(acct), url.Values{"scope": {acct.SiteID}}); status != 400 || tj.Error != "unauthorized_client" {
		t.Fatalf("token key disabled: %d %q", status, tj.Error)
	}
}

func TestExpiresInShape(t *testing.T) {
	sb, srv := start(t)
	seen := map[bool]bool{}
	for _, id := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		a := sandbox.Account{ClientID: id, ClientSecret: "s", SiteID: "1", Username: "u", Password: "p"}
		sb.AddAccount(a)
		_, tj := postToken(t, srv, "Basic "+key(a), password(a))
		want := "3600"
		if sandbox.ExpiresInAsString(a) {
			want = `"3600"`
		}
		if string(tj.ExpiresIn) != want {
			t.Errorf("account %s: expires_in = %s, want %s", id, tj.ExpiresIn, want)
		}
		seen[sandbox.ExpiresInAsString(a)] = true
	}
	if len(seen) != 2 {
		t.Errorf("want both expires_in shapes across accounts, got %v", seen)
	}
}

type page struct {
	Metadata struct {
		APINameVersion string            `json:"api_name_version"`
		Page           int               `json:"page"`
		Limit          int               `json:"limit"`
		Total          int               `json:"total"`
		Links          map[string]string `json:"_links"`
	} `json:"_metadata"`
	Partnerships []struct {
		Advertiser struct {
			ID      int64  `json:"id"`
			Network int    `json:"network"`
			Name    string `json:"name"`
			Status  string `json:"status"`
		} `json:"advertiser"`
		Status          string `json:"status"`
		StatusUpdatedAt string `json:"status_update_datetime"`
		ApplyDatetime   string `json:"apply_datetime"`
	} `json:"partnerships"`
}

func accessToken(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	_, tj := postToken(t, srv, "Basic "+key(acct), password(acct))
	return tj.AccessToken
}

func TestPartnershipsPagingAndLinks(t *testing.T) {
	sb, srv := start(t)
	sb.SeedMerchants(acct.SiteID, 450, 7)
	tok := accessToken(t, srv)
	want := sb.Merchants(acct.SiteID)
	var got []int64
	next := "/v1/partnerships?page=1&limit=200"
	pages := 0
	for next != "" {
		status, ct, body := get(t, srv, next, tok)
		if status != 200 || !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("GET %s: %d %s %s", next, status, ct, body)
		}
		var p page
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		pages++
		if p.Metadata.Total != 450 || p.Metadata.Limit != 200 || p.Metadata.Page != pages {
			t.Fatalf("metadata %+v", p.Metadata)
		}
		for _, it := range p.Partnerships {
			got = append(got, it.Advertiser.ID)
			if _, err := time.Parse(time.RFC3339, it.ApplyDatetime); err != nil {
				t.Fatalf("apply_datetime %q: %v", it.ApplyDatetime, err)
			}
		}
		next = p.Metadata.Links["next"]
		if next != "" && !strings.HasPrefix(next, "/v1/partnerships?") {
			t.Fatalf("next link not relative: %q", next)
		}
		if pages == 3 && next != "" {
			t.Fatalf("last page has next %q", next)
		}
	}
	if pages != 3 || len(got) != len(want) {
		t.Fatalf("pages=%d merchants=%d, want 3 and %d", pages, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i].MID {
			t.Fatalf("merchant %d: MID %d, want %d (sorted by MID)", i, got[i], want[i].MID)
		}
	}
}

func TestPartnershipsErrors(t *testing.T) {
	sb, srv := start(t)
	sb.SeedMerchants(acct.SiteID, 10, 1)
	tok := accessToken(t, srv)
	tests := []struct {
		name, path, token string
		status            int
		contains          string
	}{
		{"limit too big", "/v1/partnerships?limit=201", tok, 400, `"error":"REQUEST_PARAM_INVALID"`},
		{"limit zero", "/v1/partnerships?limit=0", tok, 400, "limit must be between 1 and 200"},
		{"page too big", "/v1/partnerships?page=1001", tok, 400, "page must be between 1 and 1000"},
		{"no token", "/v1/partnerships", "", 401, "<ams:code>900901</ams:code>"},
		{"unknown token", "/v1/partnerships", "nope", 401, "<ams:code>900901</ams:code>"},
		{"filter", "/v1/partnerships?partner_status=pending&limit=200", tok, 200, `"status":"pending"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := get(t, srv, tt.path, tt.token)
			if status != tt.status || !strings.Contains(string(body), tt.contains) {
				t.Fatalf("got %d %s, want %d containing %s", status, body, tt.status, tt.contains)
			}
		})
	}
	sb.ExpireAccessTokens()
	status, ct, body := get(t, srv, "/v1/partnerships", tok)
	if status != 401 || !strings.Contains(ct, "xml") || !strings.Contains(string(body), "900903") {
		t.Fatalf("expired token: %d %s %s", status, ct, body)
	}
}

func TestPartnershipsFilter(t *testing.T) {
	sb, srv := start(t)
	sb.SeedMerchants(acct.SiteID, 300, 3)
	tok := accessToken(t, srv)
	counts := sb.CountsByStatus(acct.SiteID)
	_, _, body := get(t, srv, "/v1/partnerships?limit=200&partner_status=temp-remove,self-removed&network=1", tok)
	var p page
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, m := range sb.Merchants(acct.SiteID) {
		if m.Network == 1 && (m.Status == "temp-remove" || m.Status == "self-removed") {
			want++
		}
	}
	if p.Metadata.Total != want || len(p.Partnerships) != want || want == 0 {
		t.Fatalf("filtered total %d (%d items), want %d (counts %v)", p.Metadata.Total, len(p.Partnerships), want, counts)
	}
	for _, it := range p.Partnerships {
		if it.Advertiser.Network != 1 || (it.Status != "temp-remove" && it.Status != "self-removed") {
			t.Fatalf("filter leaked %+v", it)
		}
	}
}

func TestSeedMerchants(t *testing.T) {
	a, b := sandbox.New(sandbox.Options{}), sandbox.New(sandbox.Options{})
	a.SeedMerchants("1", 500, 42)
	b.SeedMerchants("1", 500, 42)
	ma, mb := a.Merchants("1"), b.Merchants("1")
	if !reflect.DeepEqual(ma, mb) {
		t.Fatal("same seed, different merchants")
	}
	a.SeedMerchants("1", 500, 43) // a second batch keeps MIDs unique
	all := a.Merchants("1")
	if len(all) != 1000 {
		t.Fatalf("len = %d", len(all))
	}
	mids := map[int64]bool{}
	for i, m := range all {
		if mids[m.MID] {
			t.Fatalf("duplicate MID %d", m.MID)
		}
		mids[m.MID] = true
		if i > 0 && all[i-1].MID >= m.MID {
			t.Fatal("not sorted by MID")
		}
		switch m.Network {
		case 1, 3, 5, 41:
		default:
			t.Fatalf("network %d", m.Network)
		}
	}
	counts := a.CountsByStatus("1")
	for _, s := range sandbox.PartnershipStatuses() {
		if counts[s] == 0 {
			t.Errorf("no merchant with status %s: %v", s, counts)
		}
	}
	if counts[sandbox.StatusActive] < 500 {
		t.Errorf("want mostly active, got %v", counts)
	}
	small := sandbox.New(sandbox.Options{})
	small.SeedMerchants("1", 8, 1)
	if c := small.CountsByStatus("1"); len(c) != 8 {
		t.Errorf("8 merchants should cover all 8 statuses, got %v", c)
	}
}

func TestMutations(t *testing.T) {
	sb := sandbox.New(sandbox.Options{})
	sb.SeedMerchants("1", 20, 1)
	m := sb.Merchants("1")[3]
	if err := sb.SetStatus("1", m.MID, "self-removed"); err != nil {
		t.Fatal(err)
	}
	if got := sb.Merchants("1")[3].Status; got != "self-removed" {
		t.Fatalf("status = %q", got)
	}
	if err := sb.SetStatus("1", 1, "active"); err == nil {
		t.Fatal("SetStatus on a missing MID succeeded")
	}
	sb.RemoveMerchant("1", m.MID)
	if n := len(sb.Merchants("1")); n != 19 {
		t.Fatalf("after remove: %d", n)
	}
	// Merchants returns a copy.
	sb.Merchants("1")[0].Status = "changed"
	if sb.Merchants("1")[0].Status == "changed" {
		t.Fatal("Merchants is not a copy")
	}
}

func TestFaults(t *testing.T) {
	sb, srv := start(t)
	tok := accessToken(t, srv)
	sb.ResetCalls()
	f := sandbox.ServerError500JSON()
	f.AfterCalls, f.Times = 1, 2
	sb.Inject(f)
	var got []int
	for range 4 {
		status, _, _ := get(t, srv, "/v1/partnerships", tok)
		got = append(got, status)
	}
	if want := []int{200, 500, 500, 200}; !reflect.DeepEqual(got, want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
	if n := sb.Calls(sandbox.EndpointPartnerships); n != 4 {
		t.Fatalf("calls = %d", n)
	}
	th := sandbox.Throttle429()
	sb.Inject(th)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/partnerships", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("429 fault: %d Retry-After=%q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// A fault for another endpoint leaves this one alone.
	tf := sandbox.Unavailable503XML()
	tf.Endpoint = sandbox.EndpointToken
	sb.Inject(tf)
	if status, _, _ := get(t, srv, "/v1/partnerships", tok); status != 200 {
		t.Fatalf("token fault hit partnerships: %d", status)
	}
	if status, _ := postTokenRaw(t, srv); status != 503 {
		t.Fatalf("token fault: %d", status)
	}
}

func postTokenRaw(t *testing.T, srv *httptest.Server) (int, string) {
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/token", strings.NewReader(password(acct).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Basic "+key(acct))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestLinkLocator(t *testing.T) {
	sb, srv := start(t)
	sb.SeedMerchants(acct.SiteID, 200, 5)
	tok := accessToken(t, srv)
	counts := sb.CountsByStatus(acct.SiteID)
	status, ct, body := get(t, srv, "/linklocator/1.0/getMerchByAppStatus/approval%20extended", tok)
	if status != 200 || !strings.Contains(ct, "xml") {
		t.Fatalf("%d %s", status, ct)
	}
	s := string(body)
	if !strings.Contains(s, `xmlns:ns1="http://endpoint.linkservice.linkshare.com/"`) {
		t.Fatalf("no ns1 namespace: %.200s", s)
	}
	if n := strings.Count(s, "<ns1:return>"); n != counts[sandbox.StatusExtended] || n == 0 {
		t.Fatalf("returns = %d, want %d", n, counts[sandbox.StatusExtended])
	}
	// ?token= is accepted too.
	status, _, _ = get(t, srv, "/linklocator/1.0/getMerchByAppStatus/approved?token="+tok, "")
	if status != 200 {
		t.Fatalf("?token=: %d", status)
	}
	if n := sb.Calls(sandbox.EndpointLinkLocator); n != 2 {
		t.Fatalf("linklocator calls = %d", n)
	}
}

func TestDemoAccount(t *testing.T) {
	sb := sandbox.New(sandbox.Options{})
	a := sb.DemoAccount()
	b := sb.DemoAccount()
	if a != b || a.ClientID != sandbox.DemoClientID || a.SiteID != sandbox.DemoSiteID {
		t.Fatalf("demo accounts %+v %+v", a, b)
	}
	if n := len(sb.Merchants(a.SiteID)); n != sandbox.DemoMerchantCount {
		t.Fatalf("demo merchants = %d, want %d (seeded once)", n, sandbox.DemoMerchantCount)
	}
}

func TestAccessTokenTTL(t *testing.T) {
	var now atomic.Int64 // the handler reads the clock on another goroutine
	now.Store(time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC).Unix())
	sb := sandbox.New(sandbox.Options{AccessTokenTTL: time.Minute, Now: func() time.Time { return time.Unix(now.Load(), 0) }})
	sb.AddAccount(acct)
	srv := httptest.NewServer(sb)
	defer srv.Close()
	_, tj := postToken(t, srv, "Basic "+key(acct), password(acct))
	if string(tj.ExpiresIn) != "60" && string(tj.ExpiresIn) != `"60"` {
		t.Fatalf("expires_in = %s", tj.ExpiresIn)
	}
	if status, _, _ := get(t, srv, "/v1/partnerships", tj.AccessToken); status != 200 {
		t.Fatalf("fresh token: %d", status)
	}
	now.Add(120)
	if status, _, body := get(t, srv, "/v1/partnerships", tj.AccessToken); status != 401 || !strings.Contains(string(body), "900903") {
		t.Fatalf("token past TTL: %d %s", status, body)
	}
}

// TestPartnershipsRecency: status_update_range keeps only the partnerships
// whose status changed within the range, sort_by=status_update_datetime
// lists them newest first, and a range Rakuten does not list is a 400.
func TestPartnershipsRecency(t *testing.T) {
	now := time.Now()
	sb := sandbox.New(sandbox.Options{Now: func() time.Time { return now }})
	sb.AddAccount(acct)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	sb.SeedMerchants(acct.SiteID, 300, 3)
	ms := sb.Merchants(acct.SiteID)
	for i, m := range ms[:3] {
		if err := sb.SetStatus(acct.SiteID, m.MID, []string{"pending", "active", "temp-decline"}[i]); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Minute) // the next change a minute later
	}
	tok := accessToken(t, srv)
	_, _, body := get(t, srv, "/v1/partnerships?limit=200&status_update_range=1d&sort_by=status_update_datetime", tok)
	var p page
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Metadata.Total != 3 || len(p.Partnerships) != 3 {
		t.Fatalf("recent total %d (%d items), want the 3 changed", p.Metadata.Total, len(p.Partnerships))
	}
	for i, it := range p.Partnerships {
		if want := ms[2-i].MID; it.Advertiser.ID != want {
			t.Fatalf("item %d is %d, want %d (newest first)", i, it.Advertiser.ID, want)
		}
	}
	if status, _, _ := get(t, srv, "/v1/partnerships?limit=200&status_update_range=2h", tok); status != 400 {
		t.Fatalf("status_update_range=2h answered %d, want 400", status)
	}
}
