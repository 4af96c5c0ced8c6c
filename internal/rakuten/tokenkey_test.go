package rakuten_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/merchantsync/merchantsync/internal/rakuten"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
)

// TestTokenKeyGrantOnTheWire: the token-key grant is what Rakuten
// documents today, to the byte: Bearer <base64(id:secret)> and the body
// scope=<SID>, nothing else.
func TestTokenKeyGrantOnTheWire(t *testing.T) {
	sb := sandbox.New(sandbox.Options{})
	sb.AddAccount(account)
	var mu sync.Mutex
	var auth, body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		auth, body = r.Header.Get("Authorization"), string(b)
		mu.Unlock()
		r.Body = io.NopCloser(strings.NewReader(string(b)))
		sb.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c := rakuten.New(rakuten.Config{BaseURL: srv.URL, RequestsPerMinute: -1})
	tok, err := c.TokenKeyGrant(context.Background(), creds(account), "")
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if auth != "Bearer "+tokenKey(account) || body != "scope="+account.SiteID {
		t.Fatalf("sent %q with body %q, want the Bearer token key and scope=%s only", auth, body, account.SiteID)
	}
	if tok.Grant != rakuten.GrantTokenKey || tok.Scheme != rakuten.SchemeBearer {
		t.Fatalf("token grant %q scheme %q", tok.Grant, tok.Scheme)
	}
}

// TestKeyTokenSource: the token key first, nothing persisted; the refresh
// chain (persisting before use) only when Rakuten refuses the token key.
func TestKeyTokenSource(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(*sandbox.Server)
		noRefresh  bool
		grant      rakuten.Grant
		kind       rakuten.Kind // "" = success
		tokenCalls int
		persisted  int
	}{
		{name: "token key", grant: rakuten.GrantTokenKey, tokenCalls: 1},
		{name: "token key refused: refresh", setup: func(sb *sandbox.Server) { sb.SetTokenKeyEnabled(false) },
			grant: rakuten.GrantRefresh, tokenCalls: 2, persisted: 1},
		{name: "both refused", setup: func(sb *sandbox.Server) {
			sb.SetTokenKeyEnabled(false)
			sb.RevokeRefreshTokens(account.SiteID)
		}, kind: rakuten.KindReauthRequired, tokenCalls: 2},
		{name: "token key refused, no refresh token", setup: func(sb *sandbox.Server) { sb.SetTokenKeyEnabled(false) },
			noRefresh: true, kind: rakuten.KindReauthRequired, tokenCalls: 1},
		{name: "outage is not a fallback", setup: func(sb *sandbox.Server) {
			f := sandbox.Unavailable503XML()
			f.Endpoint, f.Times = sandbox.EndpointToken, -1
			sb.Inject(f)
		}, kind: rakuten.KindUnavailable, tokenCalls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tok := e.login(t)
			if tt.setup != nil {
				tt.setup(e.sb)
			}
			current := &rakuten.Token{RefreshToken: tok.RefreshToken, Scheme: tok.Scheme}
			if tt.noRefresh {
				current = nil
			}
			var saved []*rakuten.Token
			ts := e.c.KeyTokenSource(context.Background(), e.cr, current, func(_ context.Context, t *rakuten.Token) error {
				saved = append(saved, t)
				return nil
			})
			got, err := ts.Token()
			if n := e.sb.Calls(sandbox.EndpointToken); n != tt.tokenCalls || ts.Calls() != tt.tokenCalls {
				t.Errorf("token calls: sandbox %d, source %d, want %d", n, ts.Calls(), tt.tokenCalls)
			}
			if len(saved) != tt.persisted {
				t.Errorf("persisted %d tokens, want %d", len(saved), tt.persisted)
			}
			if tt.kind != "" {
				wantKind(t, err, tt.kind)
				return
			}
			if err != nil || got.AccessToken == "" || ts.Grant() != tt.grant {
				t.Fatalf("Token() = %+v, %v, grant %q; want grant %q", got, err, ts.Grant(), tt.grant)
			}
			if tt.persisted > 0 && (saved[0].AccessToken != got.AccessToken || saved[0].RefreshToken == tok.RefreshToken) {
				t.Fatal("the refresh chain handed out a token it had not saved, or did not rotate")
			}
		})
	}
}
