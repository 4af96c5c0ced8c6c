package syncer

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/merchantsync/merchantsync/internal/httpapi"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
)

// credentials calls the credentials function's route as tenant, through
// lambda.NewHandler, and returns the status: the publisher connecting or
// disconnecting while a sync runs. Its Rakuten requests (connect's pull-mode
// check among them) go past the gate that holds the sync.
func (e *env) credentials(tenant, method string, a *sandbox.Account) int {
	e.t.Helper()
	r := httpapi.NewCredentialsRouter(&httpapi.Credentials{Store: e.Store, Secrets: e.Secrets,
		Network: e.NetworkOf(e.RakutenClient(e.DirectURL)), Now: e.Clock.Now}, nil)
	body := ""
	if a != nil {
		b, _ := json.Marshal(map[string]string{"clientId": a.ClientID, "clientSecret": a.ClientSecret,
			"siteId": a.SiteID, "username": a.Username, "password": a.Password})
		body = string(b)
	}
	const path = "/v1/networks/rakuten/credentials"
	ev := events.APIGatewayV2HTTPRequest{Version: "2.0", RawPath: path, Body: body,
		Headers: map[string]string{"content-type": "application/json"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: path},
			Authorizer: &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
				JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"tenant_id": tenant}}}}}
	p, _ := json.Marshal(ev)
	out, err := lambda.NewHandler(r.Handle).Invoke(e.Ctx, p)
	if err != nil {
		e.t.Fatal(err)
	}
	var resp events.APIGatewayV2HTTPResponse
	_ = json.Unmarshal(out, &resp)
	if e.t.Failed() {
		e.t.Logf("%s credentials: %d %s", method, resp.StatusCode, resp.Body)
	}
	return resp.StatusCode
}

// appB is a second Rakuten application of the site a.
func (e *env) appB(a sandbox.Account) sandbox.Account {
	b := sandbox.Account{ClientID: "client-B-" + a.SiteID, ClientSecret: "CLIENTSECRET-B-s3cr3t", SiteID: a.SiteID,
		Username: a.Username, Password: a.Password}
	e.Sandbox.AddAccount(b)
	return b
}

// startHeld starts a manual sync of tenant and returns once it is waiting
// at the gate in front of its first partnerships request.
func (e *env) startHeld(tenant string) <-chan merchantsync.Run {
	e.t.Helper()
	e.gate.Close()
	done := make(chan merchantsync.Run, 1)
	req := manual(tenant, e.Clock.Now())
	go func() {
		run, err := e.engine.Sync(e.Ctx, req)
		if err != nil {
			e.t.Errorf("Sync: %v", err)
		}
		done <- run
	}()
	<-e.gate.Arrived()
	return done
}

// reconnectedMidSync connects t1 with app A, starts a sync held before its
// first page, and reconnects t1 with app B of the same site.
func reconnectedMidSync(t *testing.T) (e *env, a, b sandbox.Account, done <-chan merchantsync.Run) {
	t.Helper()
	e = newEnv(t)
	a = e.connect("t1", 30)
	b = e.appB(a)
	done = e.startHeld("t1")
	if st := e.credentials("t1", "PUT", &b); st != 200 {
		t.Fatalf("PUT credentials B: %d", st)
	}
	return e, a, b, done
}

func wantOvertaken(t *testing.T, run merchantsync.Run) {
	t.Helper()
	if run.State != merchantsync.RunSkipped || run.Error == nil || run.Error.Code != merchantsync.EConnectionChanged {
		t.Fatalf("overtaken run ended %s %+v, want skipped with %s", run.State, run.Error, merchantsync.EConnectionChanged)
	}
}

// TestReconnectDuringSyncKeepsNewCredentials: a sync of app A is pulling
// when the publisher reconnects with app B; A's token then expires and the
// sync refreshes it. Before fencing it saved A's rotated token over B's
// credentials (the secret read back as client A).
func TestReconnectDuringSyncKeepsNewCredentials(t *testing.T) {
	e, _, b, done := reconnectedMidSync(t)
	e.Sandbox.ExpireAccessTokens() // the sync's next request refreshes A's token
	e.gate.Open()
	run := <-done
	wantOvertaken(t, run)
	sec, err := e.Credentials("t1")
	if err != nil || sec.ClientID != b.ClientID || sec.ClientSecret != b.ClientSecret {
		t.Fatalf("stored credentials after reconnecting with B during a sync: %v, %v", sec, err)
	}
	if n := len(e.StoredSecrets()); n != 1 {
		t.Fatalf("Secrets Manager holds %d secrets, want only B's", n)
	}
	if got := e.Relationships("t1"); len(got) != 0 {
		t.Fatalf("the overtaken run stored %d relationships", len(got))
	}
	// The next sync uses B and succeeds.
	if run := e.sync("t1"); run.State != merchantsync.RunSucceeded || run.MerchantsSynced != 30 {
		t.Fatalf("sync after the reconnect: %+v", run)
	}
}

// TestDisconnectAndReconnectDuringSync: DELETE then PUT B while a sync of A
// runs never brings A back.
func TestDisconnectAndReconnectDuringSync(t *testing.T) {
	e := newEnv(t)
	a := e.connect("t1", 30)
	b := e.appB(a)
	done := e.startHeld("t1")
	if st := e.credentials("t1", "DELETE", nil); st != 200 {
		t.Fatalf("DELETE credentials: %d", st)
	}
	if st := e.credentials("t1", "PUT", &b); st != 200 {
		t.Fatalf("PUT credentials B: %d", st)
	}
	e.Sandbox.ExpireAccessTokens()
	e.gate.Open()
	wantOvertaken(t, <-done)
	for name, v := range e.StoredSecrets() {
		if strings.Contains(v, a.ClientSecret) {
			t.Fatalf("A's credentials are back in %s", name)
		}
	}
	if sec, err := e.Credentials("t1"); err != nil || sec.ClientID != b.ClientID {
		t.Fatalf("stored credentials: %v, %v", sec, err)
	}
}

// TestStaleRunOutcomeLeavesNewConnectionAlone: run A is pulling, the
// publisher reconnects with B, and A's credentials stop working (the app
// was deleted at Rakuten). Before fencing, run A's failure turned the
// account, connected with the valid B, into reauth_required: daily syncs
// stopped and Sync now answered 409.
func TestStaleRunOutcomeLeavesNewConnectionAlone(t *testing.T) {
	e, a, _, done := reconnectedMidSync(t)
	before := e.Account("t1")
	e.Sandbox.AddAccount(sandbox.Account{ClientID: a.ClientID, ClientSecret: "rotated-at-rakuten", SiteID: a.SiteID})
	e.Sandbox.ExpireAccessTokens()
	e.gate.Open()
	wantOvertaken(t, <-done)
	after := e.Account("t1")
	if after.State != merchantsync.StateConnected || after.ConnectionID != before.ConnectionID || after.LastRun != nil {
		t.Fatalf("account of the new connection after the stale run: %+v", after)
	}
	st, _ := e.Store.GetSettings(e.Ctx, "t1")
	if !after.Due(st) {
		t.Fatal("the new connection is not due for daily syncs")
	}
}

// TestOversizedMerchantName: one merchant with a 450,000-character name
// (over DynamoDB's 400 KB item limit). Before, its BatchWriteItem failed as
// a retryable error on every delivery and the run stayed running.
func TestOversizedMerchantName(t *testing.T) {
	e := newEnv(t)
	a := e.connect("t1", 5)
	e.Sandbox.AddMerchant(a.SiteID, sandbox.Merchant{MID: 99, Network: 1, Name: strings.Repeat("n", 450_000),
		Status: "active", AdvertiserStatus: "active", StatusUpdatedAt: e.Clock.Now()})
	e.Clock.Advance(time.Hour)
	run, err := e.engine.Sync(e.Ctx, manual("t1", e.Clock.Now()))
	if err != nil || run.State != merchantsync.RunSucceeded || run.MerchantsSynced != 6 {
		t.Fatalf("sync with a 450,000-character merchant name: %+v, %v", run, err)
	}
	r := findRel(e.Relationships("t1"), 99)
	if r == nil || len(r.Name) > merchantsync.MaxNameBytes || !strings.HasPrefix(r.Name, "nnnn") || !strings.HasSuffix(r.Name, "…") {
		t.Fatalf("stored name: %d bytes", len(r.Name))
	}
}

// TestTokenRefusedTwiceInARow: the access token is refused on a page, and
// so is the first new one. Before, one refresh per request was all a pull
// allowed and the run failed as "Rakuten did not answer properly".
func TestTokenRefusedTwiceInARow(t *testing.T) {
	e := newEnv(t)
	e.connect("t1", 1000)
	e.sync("t1")
	e.Sandbox.Inject(sandbox.Fault{Endpoint: sandbox.EndpointPartnerships, AfterCalls: 1, Times: 2, Status: 401,
		Body: sandbox.ExpiredTokenFault().Body})
	if run := e.sync("t1"); run.State != merchantsync.RunSucceeded {
		t.Fatalf("a token refused twice in a row: %s %+v", run.State, run.Error)
	}
	// Refused every time: an auth problem of these credentials, bounded,
	// and said so; never "Rakuten is down".
	e.Sandbox.Inject(sandbox.Fault{Endpoint: sandbox.EndpointPartnerships, Times: -1, Status: 401, Body: sandbox.ExpiredTokenFault().Body})
	e.Sandbox.ResetCalls()
	run := e.sync("t1")
	if run.State != merchantsync.RunFailed || run.Error == nil || run.Error.Code != merchantsync.ENetworkAuthFailed {
		t.Fatalf("tokens refused forever: %s %+v", run.State, run.Error)
	}
	if n := e.Sandbox.Calls(sandbox.EndpointToken); n > 6 {
		t.Fatalf("%d token requests in one sync", n)
	}
}
