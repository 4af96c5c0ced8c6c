package httpapi_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
	"github.com/merchantsync/merchantsync/internal/testenv"
)

// TestConnectLearnsAuthAndPullMode: connecting verifies the password, then
// tries the token key (auth token_key, or refresh when Rakuten refuses it)
// and runs the first pull-mode check; the answer and GET show what it
// learned. If Rakuten no longer offers the password grant but accepts the
// token key, the connection is made with the token key and a notice says
// so; the secret then holds no password and the notice no secret.
func TestConnectLearnsAuthAndPullMode(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(*sandbox.Server)
		auth       string
		notice     string
		tokenCalls int
	}{
		{name: "token key", auth: "token_key", tokenCalls: 2},
		{name: "token key refused", setup: func(sb *sandbox.Server) { sb.SetTokenKeyEnabled(false) }, auth: "refresh", tokenCalls: 2},
		{name: "password grant not offered", setup: func(sb *sandbox.Server) { sb.SetPasswordGrantEnabled(false) },
			auth: "token_key", notice: "password_grant_unavailable", tokenCalls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newCredEnv(t)
			e.saveIDs(t, "tenant-a")
			e.sb.SeedMerchants(e.account.SiteID, 30, 3)
			if tt.setup != nil {
				tt.setup(e.sb)
			}
			status, body := invoke(t, e.creds, req("PUT", "/v1/networks/rakuten/credentials", "tenant-a", e.credBody(testPassword), nil))
			notice, _ := body["notice"].(map[string]any)
			if status != 200 || str(body["auth"]) != tt.auth || str(body["pullMode"]) != "unfiltered" || body["pullModeCheckedAt"] == nil ||
				str(notice["code"]) != tt.notice {
				t.Fatalf("connect = %d %v, want auth %s, pull mode unfiltered, notice %q", status, body, tt.auth, tt.notice)
			}
			if tt.notice != "" && !strings.Contains(str(notice["message"]), "client ID and secret") {
				t.Errorf("notice message %q", notice["message"])
			}
			if n, p := e.sb.Calls(sandbox.EndpointToken), e.sb.Calls(sandbox.EndpointPartnerships); n != tt.tokenCalls || p != 9 {
				t.Errorf("connect made %d token and %d partnerships calls, want %d and 9 (the check)", n, p, tt.tokenCalls)
			}
			_, got := invoke(t, e.api, req("GET", "/v1/networks/rakuten", "tenant-a", "", nil))
			if str(got["auth"]) != tt.auth || str(got["pullMode"]) != "unfiltered" || got["notice"] != nil {
				t.Errorf("GET after connect = %v", got)
			}
			for _, v := range testenv.SecretValues(t, e.prefix+"/") {
				var sec map[string]any
				if err := json.Unmarshal([]byte(v), &sec); err != nil || str(sec["clientSecret"]) != testSecret || str(sec["accessToken"]) == "" || strings.Contains(v, testPassword) {
					t.Errorf("stored secret lacks credentials or holds the password (%v)", err)
				}
			}
			e.assertNoLeaks(t, body, got)
		})
	}
}
