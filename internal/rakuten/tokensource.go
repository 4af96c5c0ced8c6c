package rakuten

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"golang.org/x/oauth2"
)

// MaxTokensPerSource bounds the new tokens one TokenSource (one sync)
// obtains: a token refused as soon as it is issued must not make a sync
// loop between the token endpoint and a 401.
const MaxTokensPerSource = 6

// TokenSource hands out access tokens for one credential, refreshing as
// needed and persisting every new token before handing it out. It is safe
// for concurrent use; concurrent callers share one refresh.
type TokenSource struct {
	c       *Client
	ctx     context.Context
	cr      Credentials
	persist func(context.Context, *Token) error
	// keyFirst: the token key first, the refresh chain only when Rakuten
	// refuses it (KeyTokenSource).
	keyFirst bool
	calls    atomic.Int64 // token requests sent (tokenCallsKey)

	mu        sync.Mutex
	grant     Grant // of the last token obtained
	tok       *Token
	invalid   bool
	unsaved   *Token // obtained but not yet persisted: retried before another refresh
	refreshes int
}

// TokenSource returns a source of access tokens for cr, starting from
// current (which may be nil or hold only a refresh token). When the access
// token is missing, expired or invalidated it uses the refresh grant; if
// Rakuten refuses the refresh token it falls back to the token-key grant;
// if that is refused too it returns an *Error of KindReauthRequired.
// Outages and throttles never fall back: they are returned as they are so
// a down Rakuten is not mistaken for revoked credentials.
//
// Every new token is passed to persist, and returned only if persist
// succeeded: Rakuten rotates refresh tokens, so the new one must be saved
// before the access token is used, or the next sync cannot refresh.
// ctx is used by Token(); Partnerships uses its own call's context.
func (c *Client) TokenSource(ctx context.Context, cr Credentials, current *Token, persist func(context.Context, *Token) error) *TokenSource {
	if ctx == nil {
		ctx = context.Background()
	}
	if persist == nil {
		// Only for callers that keep nothing (tools, tests): a sync must
		// always persist, or tomorrow's refresh fails.
		persist = func(context.Context, *Token) error { return nil }
	}
	ts := &TokenSource{c: c, ctx: ctx, cr: cr, persist: persist}
	if current != nil {
		cp := *current
		ts.tok = &cp
	}
	return ts
}

// Token implements oauth2.TokenSource.
func (ts *TokenSource) Token() (*oauth2.Token, error) {
	t, err := ts.token(ts.ctx)
	if err != nil {
		return nil, err
	}
	return &oauth2.Token{AccessToken: t.AccessToken, TokenType: "Bearer", RefreshToken: t.RefreshToken, Expiry: t.Expiry}, nil
}

var _ oauth2.TokenSource = (*TokenSource)(nil)

// KeyTokenSource is a TokenSource that mints access tokens with the token
// key (TokenKeyGrant) and keeps nothing: those tokens are never passed to
// persist, since the next sync can mint its own. Only when Rakuten refuses
// the token key does it fall back to the refresh chain of current, whose
// rotated tokens are persisted before use as in TokenSource; both refused
// is KindReauthRequired.
func (c *Client) KeyTokenSource(ctx context.Context, cr Credentials, current *Token, persist func(context.Context, *Token) error) *TokenSource {
	ts := c.TokenSource(ctx, cr, current, persist)
	ts.keyFirst = true
	return ts
}

// Grant returns how the source's last new token was obtained (GrantTokenKey
// or GrantRefresh), "" while it has obtained none.
func (ts *TokenSource) Grant() Grant {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.grant
}

// Invalidate forces the next Token() to obtain a new token (after a 401).
func (ts *TokenSource) Invalidate() {
	ts.mu.Lock()
	ts.invalid = true
	ts.mu.Unlock()
}

// invalidate marks access as bad only if it is still the current token, so
// several requests failing with the same token cause one refresh, not many.
func (ts *TokenSource) invalidate(access string) {
	ts.mu.Lock()
	if ts.tok != nil && ts.tok.AccessToken == access {
		ts.invalid = true
	}
	ts.mu.Unlock()
}

// Calls returns how many requests this source sent to the token
// endpoint, refused and retried ones included.
func (ts *TokenSource) Calls() int { return int(ts.calls.Load()) }

// Refreshes returns how many new tokens this source has obtained.
func (ts *TokenSource) Refreshes() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.refreshes
}

// token returns a valid, persisted token, obtaining one if needed.
func (ts *TokenSource) token(ctx context.Context) (*Token, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if !ts.invalid && ts.unsaved == nil && ts.tok.valid(ts.c.now()) {
		cp := *ts.tok
		return &cp, nil
	}
	t := ts.unsaved
	if t == nil || !t.valid(ts.c.now()) {
		if ts.refreshes >= MaxTokensPerSource {
			// Rakuten keeps issuing tokens and refusing them: more of the
			// same will not help, and it is about these credentials, not
			// an outage.
			return nil, &Error{Kind: KindExpired, Message: fmt.Sprintf(
				"Rakuten refused the access tokens it issued for these credentials (%d in one sync)", ts.refreshes)}
		}
		var err error
		if t, err = ts.obtain(ctx); err != nil {
			return nil, err
		}
		ts.refreshes++
		ts.grant = t.Grant
	}
	if ts.keyFirst && t.Grant == GrantTokenKey {
		// Nothing rotated: nothing to keep, and no write to the secret.
		ts.unsaved = nil
		ts.tok, ts.invalid = t, false
		cp := *t
		return &cp, nil
	}
	if err := ts.persist(ctx, t); err != nil {
		// Keep the unsaved pair: its refresh token has replaced the stored
		// one at Rakuten, so the next attempt retries saving it rather than
		// refreshing with a token Rakuten no longer accepts.
		ts.unsaved = t
		return nil, fmt.Errorf("rakuten: persisting new token: %w", err)
	}
	ts.unsaved = nil
	ts.tok, ts.invalid = t, false
	cp := *t
	return &cp, nil
}

// obtain runs the grant chain: refresh → token key → reauth required, or
// for a KeyTokenSource token key → refresh → reauth required.
func (ts *TokenSource) obtain(ctx context.Context) (*Token, error) {
	c := ts.c
	ctx = context.WithValue(ctx, tokenCallsKey{}, &ts.calls)
	var keyErr error
	if ts.keyFirst && ts.unsaved == nil {
		t, err := c.TokenKeyGrant(ctx, ts.cr, "")
		if err == nil {
			return t, nil
		}
		if !refused(err) {
			return nil, err
		}
		keyErr = err
		c.log.LogAttrs(ctx, slog.LevelInfo, "rakuten: token key refused, trying the refresh token",
			slog.String("code", logCode(err)))
	}
	var refreshErr error
	scheme := ""
	if ts.unsaved != nil {
		ts.tok = ts.unsaved // its refresh token is the live one
	}
	if ts.tok != nil {
		scheme = ts.tok.Scheme
		if ts.tok.RefreshToken != "" {
			t, err := c.RefreshGrant(ctx, ts.cr, ts.tok.RefreshToken, scheme)
			if err == nil {
				return t, nil
			}
			if !refused(err) {
				return nil, err
			}
			refreshErr = err
			c.log.LogAttrs(ctx, slog.LevelInfo, "rakuten: refresh token refused",
				slog.String("code", logCode(err)))
		}
	}
	err := keyErr
	if keyErr == nil {
		var t *Token
		if t, err = c.TokenKeyGrant(ctx, ts.cr, ""); err == nil {
			return t, nil
		}
		if !refused(err) {
			return nil, err
		}
	}
	msg := "Rakuten refused the stored credentials; enter your Rakuten API credentials again"
	if refreshErr != nil {
		if e, ok := refreshErr.(*Error); ok && e.Message != "" {
			msg += " (" + e.Message + ")"
		}
	}
	e, _ := err.(*Error)
	re := &Error{Kind: KindReauthRequired, Message: msg, Err: err}
	if e != nil {
		re.HTTPStatus, re.Code = e.HTTPStatus, e.Code
	}
	return nil, re
}

// logCode is a short, secret-free description of err for logs.
func logCode(err error) string {
	if e, ok := err.(*Error); ok {
		if e.Code != "" {
			return string(e.Kind) + "/" + e.Code
		}
		return string(e.Kind)
	}
	return "error"
}
