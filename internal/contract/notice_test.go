package contract

import "testing"

// TestConnectNoticeMatchesTheDocument: the answer to a connect that Rakuten
// accepted on the token key alone (no password grant offered) carries a
// notice, auth and pull mode, and the document describes all of it.
func TestConnectNoticeMatchesTheDocument(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.sb.SetPasswordGrantEnabled(false)
	e.saveIDs("t1")
	res := e.expect(call{method: "PUT", path: "/v1/networks/rakuten/credentials", tenant: "t1", body: e.credentialsBody(testPassword)}, 200, "")
	notice, _ := res.json["notice"].(map[string]any)
	if res.str("auth") != "token_key" || res.str("pullMode") == "" || notice["code"] != "password_grant_unavailable" {
		t.Fatalf("connect: %s", res.body)
	}
	got := e.expect(call{method: "GET", path: "/v1/networks/rakuten", tenant: "t1"}, 200, "")
	if got.str("auth") != "token_key" || got.json["notice"] != nil {
		t.Fatalf("GET: %s", got.body)
	}
}
