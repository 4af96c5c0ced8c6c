package rakuten

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// Authorization schemes Rakuten's token endpoint has been documented with.
const (
	SchemeBasic  = "Basic"
	SchemeBearer = "Bearer"
)

// Credentials identify a publisher's Rakuten application and site.
type Credentials struct {
	ClientID     string
	ClientSecret string
	SiteID       string // the SID; Rakuten's OAuth scope
}

// tokenKey is base64(client_id:client_secret), Rakuten's "token key". It is
// reversible to the secret, so it is handled like one.
func (cr Credentials) tokenKey() string {
	return base64.StdEncoding.EncodeToString([]byte(cr.ClientID + ":" + cr.ClientSecret))
}

func (cr Credentials) check() error {
	if cr.ClientID == "" || cr.ClientSecret == "" || cr.SiteID == "" {
		return &Error{Kind: KindInvalidRequest, Message: "client ID, client secret and Site ID are required"}
	}
	return nil
}

// Token is a Rakuten token pair.
type Token struct {
	AccessToken  string
	RefreshToken string
	Expiry       time.Time // zero: unknown, treated as valid until Rakuten says 401
	// Scheme is the Authorization scheme the token endpoint accepted
	// ("Basic" or "Bearer"); store it and refresh with it.
	Scheme string
}

// expiryDelta refreshes a little early so a token does not expire between
// Token() and the request that uses it.
const expiryDelta = 30 * time.Second

func (t *Token) valid(now time.Time) bool {
	return t != nil && t.AccessToken != "" && (t.Expiry.IsZero() || now.Add(expiryDelta).Before(t.Expiry))
}

// tokenCalls bounds attempts per scheme on throttles and outages: the
// credentials form has a person waiting, so fail fast rather than back off
// for long.
const tokenCalls = 2

// PasswordGrant exchanges the publisher's username and password for tokens
// (starting with the Basic scheme). The password is used for this request
// only and never appears in errors or logs.
func (c *Client) PasswordGrant(ctx context.Context, cr Credentials, username, password string) (*Token, error) {
	if err := cr.check(); err != nil {
		return nil, err
	}
	if username == "" || password == "" {
		return nil, &Error{Kind: KindInvalidRequest, Message: "username and password are required"}
	}
	form := url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}, "scope": {cr.SiteID}}
	return c.token(ctx, cr, form, SchemeBasic, password)
}

// RefreshGrant exchanges a refresh token for a new pair. Rakuten rotates
// refresh tokens: the caller must persist the returned one before using the
// access token. scheme is the Token.Scheme that worked before ("" = Basic).
func (c *Client) RefreshGrant(ctx context.Context, cr Credentials, refreshToken, scheme string) (*Token, error) {
	if err := cr.check(); err != nil {
		return nil, err
	}
	if refreshToken == "" {
		return nil, &Error{Kind: KindInvalidRequest, Message: "no refresh token"}
	}
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}, "scope": {cr.SiteID}}
	return c.token(ctx, cr, form, orScheme(scheme, SchemeBasic), refreshToken)
}

// TokenKeyGrant obtains tokens with the client credentials alone, the
// current developer portal's style (starting with the Bearer scheme).
// Sources disagree on its body: some send only scope=<SID>, others add
// grant_type=client_credentials or grant_type=password without user and
// password. We send grant_type=client_credentials&scope=<SID>, the RFC 6749
// spelling a standards-minded gateway (Rakuten's is WSO2) accepts; a real
// account may prove otherwise.
func (c *Client) TokenKeyGrant(ctx context.Context, cr Credentials, scheme string) (*Token, error) {
	if err := cr.check(); err != nil {
		return nil, err
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {cr.SiteID}}
	return c.token(ctx, cr, form, orScheme(scheme, SchemeBearer))
}

func orScheme(s, def string) string {
	switch strings.ToLower(s) {
	case "basic":
		return SchemeBasic
	case "bearer":
		return SchemeBearer
	}
	return def
}

func otherScheme(s string) string {
	if s == SchemeBasic {
		return SchemeBearer
	}
	return SchemeBasic
}

// token posts a grant to {base}/token. It is hand-written rather than
// oauth2.Config because Rakuten's dialect does not fit it: the scheme word
// varies (retry once with the other on 401), expires_in may be a string,
// and failures may be WSO2 XML faults rather than OAuth JSON.
func (c *Client) token(ctx context.Context, cr Credentials, form url.Values, scheme string, extraSecrets ...string) (*Token, error) {
	secrets := append([]string{cr.ClientSecret, cr.tokenKey()}, extraSecrets...)
	tok, err := c.tokenScheme(ctx, cr, form, scheme, secrets)
	if err != nil && KindOf(err) != "" && httpStatus(err) == http.StatusUnauthorized {
		// The scheme word may be what was refused: same key, other word.
		c.log.LogAttrs(ctx, slog.LevelDebug, "rakuten: token endpoint refused scheme, trying the other",
			slog.String("scheme", scheme))
		tok, err = c.tokenScheme(ctx, cr, form, otherScheme(scheme), secrets)
	}
	return tok, err
}

func httpStatus(err error) int {
	if e, ok := err.(*Error); ok {
		return e.HTTPStatus
	}
	return 0
}

func (c *Client) tokenScheme(ctx context.Context, cr Credentials, form url.Values, scheme string, secrets []string) (*Token, error) {
	u, err := c.endpoint("/token")
	if err != nil {
		return nil, err
	}
	var last *Error
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequest(http.MethodPost, u.String(), strings.NewReader(form.Encode()))
		if err != nil {
			return nil, fmt.Errorf("rakuten: token request: %w", err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Authorization", scheme+" "+cr.tokenKey())
		tok, terr := c.tokenOnce(ctx, req, secrets)
		if terr == nil {
			tok.Scheme = scheme
			return tok, nil
		}
		last = terr
		if !retryable(last) || attempt >= tokenCalls || ctx.Err() != nil {
			return nil, last
		}
		if werr := c.wait(ctx, attempt, last); werr != nil {
			return nil, werr
		}
	}
}

// tokenResponse is Rakuten's token JSON.
type tokenResponse struct {
	AccessToken  string  `json:"access_token"`
	RefreshToken string  `json:"refresh_token"`
	TokenType    string  `json:"token_type"`
	ExpiresIn    flexInt `json:"expires_in"`
}

// defaultExpiresIn is assumed when Rakuten omits expires_in.
const defaultExpiresIn = 3600

// maxExpiresIn bounds a believable expires_in (a year); anything larger is
// treated as missing.
const maxExpiresIn = 366 * 24 * 3600

// minExpiresIn floors expires_in at twice the early-refresh margin, so a
// token just obtained is always valid for at least one request.
const minExpiresIn = int64(2 * expiryDelta / time.Second)

// tokenOnce sends one token request; every error is an *Error.
func (c *Client) tokenOnce(ctx context.Context, req *http.Request, secrets []string) (*Token, *Error) {
	resp, err := c.send(ctx, req)
	if err != nil {
		return nil, err.(*Error)
	}
	if resp.status/100 != 2 {
		e := classify(resp.status, resp.header, resp.body)
		e.Message, e.Code = scrub(e.Message, secrets), scrub(e.Code, secrets)
		return nil, e
	}
	if sniff(resp.body) != '{' {
		b := parseBody(resp.body)
		return nil, &Error{Kind: KindBadResponse, HTTPStatus: resp.status,
			Message: scrub("token endpoint answered "+b.format+" instead of JSON", secrets)}
	}
	var tr tokenResponse
	if err := json.Unmarshal(resp.body, &tr); err != nil {
		// The JSON error may quote the body, which holds tokens: do not wrap it.
		return nil, &Error{Kind: KindBadResponse, HTTPStatus: resp.status, Message: "malformed token response"}
	}
	if tr.AccessToken == "" {
		return nil, &Error{Kind: KindBadResponse, HTTPStatus: resp.status, Message: "token response has no access_token"}
	}
	exp := int64(tr.ExpiresIn)
	switch {
	case exp <= 0 || exp > maxExpiresIn:
		// Missing, or so large that the expiry would overflow time.Duration
		// and land in the past: assume the usual hour.
		exp = defaultExpiresIn
	case exp < minExpiresIn:
		// A lifetime inside the early-refresh margin would make the fresh
		// token count as expired at once, so every call would refresh (and
		// rotate the refresh token). Floor it: if the token really expires
		// sooner, Rakuten answers 401 and the client refreshes once.
		exp = minExpiresIn
	}
	return &Token{
		AccessToken:  tr.AccessToken,
		RefreshToken: tr.RefreshToken,
		Expiry:       c.now().Add(time.Duration(exp) * time.Second),
	}, nil
}

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

	mu        sync.Mutex
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

// obtain runs the grant chain: refresh → token key → reauth required.
func (ts *TokenSource) obtain(ctx context.Context) (*Token, error) {
	c := ts.c
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
			c.log.LogAttrs(ctx, slog.LevelInfo, "rakuten: refresh token refused, trying the token-key grant",
				slog.String("code", logCode(err)))
		}
	}
	t, err := c.TokenKeyGrant(ctx, ts.cr, "")
	if err == nil {
		return t, nil
	}
	if !refused(err) {
		return nil, err
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
