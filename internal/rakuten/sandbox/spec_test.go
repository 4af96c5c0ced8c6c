package sandbox_test

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
)

// The behaviours of Rakuten's published spec and help centre the sandbox
// plays (docs/rakuten.md).

func startWith(t *testing.T, opts sandbox.Options) (*sandbox.Server, *httptest.Server) {
	t.Helper()
	sb := sandbox.New(opts)
	sb.AddAccount(acct)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	return sb, srv
}

func TestNextLinksDropFilters(t *testing.T) {
	for _, keep := range []bool{false, true} {
		sb, srv := startWith(t, sandbox.Options{NextKeepsFilters: keep})
		sb.SeedMerchants(acct.SiteID, 300, 4)
		_, _, body := get(t, srv, "/v1/partnerships?partner_status=active&page=1&limit=10", accessToken(t, srv))
		var p page
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		next := p.Metadata.Links["next"]
		if want := !keep; strings.Contains(next, "partner_status") == want || !strings.Contains(next, "page=2") || !strings.Contains(next, "limit=10") {
			t.Fatalf("NextKeepsFilters=%t: next %q", keep, next)
		}
	}
}

func TestMaxPageSize(t *testing.T) {
	sb, srv := startWith(t, sandbox.Options{MaxPageSize: 30})
	sb.SeedMerchants(acct.SiteID, 100, 4)
	_, _, body := get(t, srv, "/v1/partnerships?page=2&limit=200", accessToken(t, srv))
	var p page
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Partnerships) != 30 || p.Metadata.Limit != 30 || p.Partnerships[0].Advertiser.ID != sb.Merchants(acct.SiteID)[30].MID {
		t.Fatalf("page 2 of 30: %d rows, limit %d", len(p.Partnerships), p.Metadata.Limit)
	}
}

func TestTokenKeyIgnoresGrantType(t *testing.T) {
	sb, srv := start(t)
	sb.SetPasswordGrantEnabled(false)
	for _, form := range []url.Values{{"scope": {acct.SiteID}}, {"grant_type": {"implicit"}, "scope": {acct.SiteID}}} {
		if status, tj := postToken(t, srv, "Bearer "+key(acct), form); status != 200 || tj.AccessToken == "" {
			t.Fatalf("token key %v: %d %+v", form, status, tj)
		}
	}
	if status, tj := postToken(t, srv, "Basic "+key(acct), password(acct)); status != 400 || tj.Error != "unsupported_grant_type" {
		t.Fatalf("password grant switched off: %d %q", status, tj.Error)
	}
	sb.SetPasswordGrantEnabled(true)
	if status, _ := postToken(t, srv, "Basic "+key(acct), password(acct)); status != 200 {
		t.Fatalf("password grant back on: %d", status)
	}
}

func TestOnHoldAndSinglePartnership(t *testing.T) {
	sb, srv := start(t)
	sb.SeedMerchants(acct.SiteID, 20, 9)
	tok := accessToken(t, srv)
	ms := sb.Merchants(acct.SiteID)
	held := ms[3]
	if !sb.SetOnHold(acct.SiteID, held.MID, true) || sb.SetOnHold(acct.SiteID, 1, true) {
		t.Fatal("SetOnHold: wrong answer for a known or an unknown MID")
	}
	_, _, body := get(t, srv, "/v1/partnerships?limit=200", tok)
	var p page
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Metadata.Total != 19 || len(p.Partnerships) != 19 {
		t.Fatalf("list with one program on hold: total %d, %d rows", p.Metadata.Total, len(p.Partnerships))
	}
	for _, it := range p.Partnerships {
		if it.Advertiser.ID == held.MID {
			t.Fatal("a program on hold is listed")
		}
	}
	status, _, body := get(t, srv, "/v1/partnerships/"+itoa(held.MID), tok)
	var one page
	if err := json.Unmarshal(body, &one); err != nil || status != 200 || len(one.Partnerships) != 1 {
		t.Fatalf("single partnership on hold: %d %s", status, body)
	}
	if got := one.Partnerships[0]; got.Advertiser.ID != held.MID || got.Status != held.Status || got.Advertiser.Status != "inactive" {
		t.Fatalf("single partnership on hold: %+v, want %s with the program inactive", got, held.Status)
	}
	if status, _, body := get(t, srv, "/v1/partnerships/1", tok); status != 404 || !strings.Contains(string(body), "NOT_FOUND") {
		t.Fatalf("no partnership: %d %s", status, body)
	}
	if n := sb.Calls(sandbox.EndpointPartnership); n != 2 {
		t.Fatalf("single-partnership calls %d, want 2", n)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
