package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/merchantsync/merchantsync/internal/httpapi"
	"github.com/merchantsync/merchantsync/internal/rakuten"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
	"github.com/merchantsync/merchantsync/internal/secrets"
	"github.com/merchantsync/merchantsync/internal/testenv"
)

// credEnv is the credentials function on real parts: DynamoDB Local, the
// Secrets Manager fake behind the real SDK client, the Rakuten sandbox over HTTP.
type credEnv struct {
	tb      *table
	api     *httpapi.Router
	creds   *httpapi.Router
	prefix  string // of the test's secrets, on moto
	sb      *sandbox.Server
	logs    *lockedBuffer
	account sandbox.Account
}

const (
	testPassword = "pässword-Never-Stored-9f3k"
	testSecret   = "client-secret-Only-In-SM-7x2q"
)

func newCredEnv(t *testing.T) *credEnv {
	t.Helper()
	e := &credEnv{tb: newTable(t), prefix: testenv.SecretPrefix(t), logs: &lockedBuffer{}}
	e.sb = sandbox.New(sandbox.Options{})
	e.account = sandbox.Account{ClientID: "client-1", ClientSecret: testSecret, SiteID: "4022211", Username: "publisher@example.com", Password: testPassword}
	e.sb.AddAccount(e.account)
	srv := httptest.NewServer(e.sb)
	t.Cleanup(srv.Close)
	log := newLogger(e.logs)
	now := func() time.Time { return time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC) }
	e.api = httpapi.NewAPIRouter(&httpapi.API{Store: e.tb.store, Now: now}, log)
	sec := secrets.New(testenv.SecretsManagerClient(t), e.prefix, "")
	rk := rakuten.New(rakuten.Config{BaseURL: srv.URL, Sleep: func(context.Context, time.Duration) error { return nil }})
	e.creds = httpapi.NewCredentialsRouter(&httpapi.Credentials{
		Store:   e.tb.store,
		Secrets: sec,
		Network: &rakuten.Network{Client: rk, Credentials: sec, Now: now},
		Now:     now, Logger: log,
	}, log)
	return e
}

func (e *credEnv) credBody(password string) string {
	b, _ := json.Marshal(map[string]string{
		"clientId": e.account.ClientID, "clientSecret": e.account.ClientSecret, "siteId": "SID4022211",
		"username": e.account.Username, "password": password,
	})
	return string(b)
}

func (e *credEnv) saveIDs(t *testing.T, tenant string) {
	t.Helper()
	if status, body := invoke(t, e.api, req("PUT", "/v1/networks/rakuten/ids", tenant, `{"affiliateId":"lMh2Xiq9xN0","siteId":"4022211"}`, nil)); status != 200 {
		t.Fatalf("save ids: %d %v", status, body)
	}
}

// assertNoLeaks scans every DynamoDB item, every log line and the given
// responses for the password; and DynamoDB, logs and responses (not Secrets
// Manager, where they belong) for the client secret, its base64 token key
// and every token the sandbox issued.
func (e *credEnv) assertNoLeaks(t *testing.T, responses ...map[string]any) {
	t.Helper()
	tokenKey := base64.StdEncoding.EncodeToString([]byte(e.account.ClientID + ":" + e.account.ClientSecret))
	outside := strings.Join(e.tb.snapshot(t), "\n") + "\n" + e.logs.String()
	for _, r := range responses {
		b, _ := json.Marshal(r)
		outside += "\n" + string(b)
	}
	var inSM string
	for _, v := range testenv.SecretValues(t, e.prefix+"/") {
		inSM += v + "\n"
	}
	if strings.Contains(outside, testPassword) || strings.Contains(inSM, testPassword) {
		t.Error("the password was stored, logged or returned")
	}
	for name, v := range map[string]string{"client secret": testSecret, "token key": tokenKey} {
		if strings.Contains(outside, v) {
			t.Errorf("the %s reached DynamoDB, logs or a response", name)
		}
	}
	for _, s := range testenv.SecretValues(t, e.prefix+"/") {
		var sec struct{ RefreshToken, AccessToken string }
		_ = json.Unmarshal([]byte(s), &sec)
		for _, tok := range []string{sec.RefreshToken, sec.AccessToken} {
			if tok != "" && strings.Contains(outside, tok) {
				t.Error("a token reached DynamoDB, logs or a response")
			}
		}
	}
}

func TestConnectStoresSecretOnlyInSecretsManager(t *testing.T) {
	e := newCredEnv(t)
	e.saveIDs(t, "tenant-a")
	status, body := invoke(t, e.creds, req("PUT", "/v1/networks/rakuten/credentials", "tenant-a", e.credBody(testPassword), nil))
	if status != 200 || str(body["state"]) != "connected" || str(body["username"]) != e.account.Username {
		t.Fatalf("connect = %d %v", status, body)
	}
	all := testenv.SecretValues(t, e.prefix+"/")
	if len(all) != 1 {
		t.Fatalf("secrets = %d, want 1", len(all))
	}
	for name, v := range all {
		if !strings.HasPrefix(name, e.prefix+"/rakuten/") {
			t.Errorf("secret name %q outside the prefix", name)
		}
		var sec struct{ ClientID, ClientSecret, SiteID, RefreshToken string }
		if err := json.Unmarshal([]byte(v), &sec); err != nil {
			t.Fatal(err)
		}
		if sec.ClientSecret != testSecret || sec.RefreshToken == "" || sec.SiteID != "4022211" {
			t.Errorf("stored secret lacks credentials: client=%q sid=%q refresh set=%v", sec.ClientID, sec.SiteID, sec.RefreshToken != "")
		}
	}
	if e.sb.Calls("token") != 2 { // the password grant, then the token key
		t.Errorf("token calls = %d, want 2", e.sb.Calls("token"))
	}
	_, got := invoke(t, e.api, req("GET", "/v1/networks/rakuten", "tenant-a", "", nil))
	if str(got["state"]) != "connected" || str(got["nextSyncAt"]) == "" {
		t.Errorf("GET network after connect = %v", got)
	}
	e.assertNoLeaks(t, body, got)
}

func TestConnectRefusals(t *testing.T) {
	tests := []struct {
		name     string
		saveIDs  bool
		password string
		fault    *sandbox.Fault
		status   int
		code     string
	}{
		{"no affiliate id", false, testPassword, nil, 409, "network_id_required"},
		{"wrong password", true, "wrong-password", nil, 422, "network_auth_failed"},
		{"rakuten down", true, testPassword, ptr(sandbox.Unavailable503XML()), 502, "network_unavailable"},
		{"rakuten html error", true, testPassword, ptr(sandbox.HTMLErrorPage()), 502, "network_unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newCredEnv(t)
			if tt.saveIDs {
				e.saveIDs(t, "tenant-a")
			}
			if tt.fault != nil {
				f := *tt.fault
				f.Endpoint, f.Times = "token", 100
				e.sb.Inject(f)
			}
			before := e.tb.snapshot(t)
			status, body := invoke(t, e.creds, req("PUT", "/v1/networks/rakuten/credentials", "tenant-a", e.credBody(tt.password), nil))
			if status != tt.status || errCode(body) != tt.code {
				t.Fatalf("got %d %v, want %d %s", status, body, tt.status, tt.code)
			}
			if n := len(testenv.SecretValues(t, e.prefix+"/")); n != 0 {
				t.Errorf("%d secrets stored after a refusal", n)
			}
			if after := e.tb.snapshot(t); strings.Join(before, "") != strings.Join(after, "") {
				t.Errorf("table changed after a refusal")
			}
			if tt.code == "network_auth_failed" && !strings.Contains(errMessage(body), "Rakuten said") {
				t.Errorf("message lacks Rakuten's reason: %q", errMessage(body))
			}
			e.assertNoLeaks(t, body)
			if strings.Contains(e.logs.String(), "wrong-password") {
				t.Error("the wrong password was logged")
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestCredentialsBadInput(t *testing.T) {
	e := newCredEnv(t)
	e.saveIDs(t, "tenant-a")
	before := e.tb.snapshot(t)
	tests := []struct{ name, body, code string }{
		{"missing password", `{"clientId":"a","clientSecret":"b","siteId":"4022211","username":"u"}`, "invalid_request"},
		{"bad site id", `{"clientId":"a","clientSecret":"b","siteId":"abc","username":"u","password":"p"}`, "invalid_request"},
		{"number password", `{"clientId":"a","clientSecret":"b","siteId":"4022211","username":"u","password":12}`, "invalid_json"},
		{"unknown field", `{"clientId":"a","clientSecret":"b","siteId":"4022211","username":"u","password":"p","tenant":"x"}`, "invalid_json"},
		{"malformed", `{"clientId":`, "invalid_json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := invoke(t, e.creds, req("PUT", "/v1/networks/rakuten/credentials", "tenant-a", tt.body, nil))
			if status != 400 || errCode(body) != tt.code {
				t.Fatalf("got %d %v, want 400 %s", status, body, tt.code)
			}
		})
	}
	if e.sb.Calls("token") != 0 || len(testenv.SecretValues(t, e.prefix+"/")) != 0 || strings.Join(before, "") != strings.Join(e.tb.snapshot(t), "") {
		t.Error("bad input reached Rakuten or changed state")
	}
}

func TestCredentialsTenantIsolation(t *testing.T) {
	e := newCredEnv(t)
	e.saveIDs(t, "tenant-a")
	if status, body := invoke(t, e.creds, req("PUT", "/v1/networks/rakuten/credentials", "tenant-a", e.credBody(testPassword), nil)); status != 200 {
		t.Fatalf("A connects: %d %v", status, body)
	}
	secretsBefore := testenv.SecretValues(t, e.prefix+"/")
	// B has no IDs: it cannot connect, and it cannot reach A's secret.
	if status, body := invoke(t, e.creds, req("PUT", "/v1/networks/rakuten/credentials", "tenant-b", e.credBody(testPassword), nil)); status != 409 {
		t.Fatalf("B connects without ids: %d %v", status, body)
	}
	// B's disconnect and DELETE ids touch only B.
	for _, path := range []string{"/v1/networks/rakuten/credentials", "/v1/networks/rakuten/ids"} {
		if status, body := invoke(t, e.creds, req("DELETE", path, "tenant-b", "", nil)); status != 200 || str(body["state"]) != "not_configured" {
			t.Fatalf("B DELETE %s: %d %v", path, status, body)
		}
	}
	if after := testenv.SecretValues(t, e.prefix+"/"); len(after) != 1 || len(secretsBefore) != 1 {
		t.Fatalf("A's secret was touched: %v", after)
	}
	for k, v := range secretsBefore {
		if testenv.SecretValues(t, e.prefix+"/")[k] != v {
			t.Error("A's secret changed")
		}
	}
	_, body := invoke(t, e.api, req("GET", "/v1/networks/rakuten", "tenant-a", "", nil))
	if str(body["state"]) != "connected" {
		t.Errorf("A after B's deletes: %v", body)
	}
	// No route reads a secret back: the API has no such route at all.
	status, _ := invoke(t, e.creds, req("GET", "/v1/networks/rakuten/credentials", "tenant-a", "", nil))
	if status != 405 {
		t.Errorf("GET credentials = %d, want 405", status)
	}
}

func TestDisconnectAndRemoveIDs(t *testing.T) {
	e := newCredEnv(t)
	e.saveIDs(t, "tenant-a")
	if status, _ := invoke(t, e.creds, req("PUT", "/v1/networks/rakuten/credentials", "tenant-a", e.credBody(testPassword), nil)); status != 200 {
		t.Fatal("connect")
	}
	status, body := invoke(t, e.creds, req("DELETE", "/v1/networks/rakuten/credentials", "tenant-a", "", nil))
	if status != 200 || str(body["state"]) != "ids_saved" || len(testenv.SecretValues(t, e.prefix+"/")) != 0 {
		t.Fatalf("disconnect = %d %v, secrets %d", status, body, len(testenv.SecretValues(t, e.prefix+"/")))
	}
	// Reconnecting at once works (the secret was deleted without a recovery window).
	if status, body := invoke(t, e.creds, req("PUT", "/v1/networks/rakuten/credentials", "tenant-a", e.credBody(testPassword), nil)); status != 200 {
		t.Fatalf("reconnect = %d %v", status, body)
	}
	status, body = invoke(t, e.creds, loadEventTenant(t, "credentials-delete-ids.json", "tenant-a"))
	if status != 200 || str(body["state"]) != "not_configured" || len(testenv.SecretValues(t, e.prefix+"/")) != 0 {
		t.Fatalf("DELETE ids = %d %v, secrets %d", status, body, len(testenv.SecretValues(t, e.prefix+"/")))
	}
	e.assertNoLeaks(t, body)
}

func loadEventTenant(t *testing.T, name, tenant string) events.APIGatewayV2HTTPRequest {
	ev := loadEvent(t, name)
	ev.RequestContext.Authorizer.JWT.Claims["tenant_id"] = tenant
	return ev
}
