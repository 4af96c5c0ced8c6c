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
	"sync/atomic"
	"time"
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

// Grant names how a token was obtained.
type Grant string

const (
	GrantPassword Grant = "password"
	GrantRefresh  Grant = "refresh"
	// GrantTokenKey is the token key alone (Bearer, scope=<SID>): always
	// valid while the application exists, so its tokens need no keeping.
	GrantTokenKey Grant = "token_key"
)

// Token is a Rakuten token pair.
type Token struct {
	AccessToken  string
	RefreshToken string
	Expiry       time.Time // zero: unknown, treated as valid until Rakuten says 401
	// Scheme is the Authorization scheme the token endpoint accepted
	// ("Basic" or "Bearer"); store it and refresh with it.
	Scheme string
	// Grant is how the token was obtained ("" for a token read from
	// storage).
	Grant Grant
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
	return withGrant(c.token(ctx, cr, form, SchemeBasic, password))(GrantPassword)
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
	return withGrant(c.token(ctx, cr, form, orScheme(scheme, SchemeBasic), refreshToken))(GrantRefresh)
}

// TokenKeyGrant obtains tokens with the token key alone, Rakuten's current
// documented flow: "Authorization: Bearer <token key>" and the body
// scope=<SID>, nothing else (Rakuten ignores grant_type there, and a
// password-less grant_type=password could be read as the older flow). The
// token key is valid as long as the application exists, so a sync can mint
// its access token from it every time and keep nothing that rotates.
func (c *Client) TokenKeyGrant(ctx context.Context, cr Credentials, scheme string) (*Token, error) {
	if err := cr.check(); err != nil {
		return nil, err
	}
	form := url.Values{"scope": {cr.SiteID}}
	return withGrant(c.token(ctx, cr, form, orScheme(scheme, SchemeBearer)))(GrantTokenKey)
}

// withGrant stamps a grant's name on its token.
func withGrant(t *Token, err error) func(Grant) (*Token, error) {
	return func(g Grant) (*Token, error) {
		if t != nil {
			t.Grant = g
		}
		return t, err
	}
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

// tokenCallsKey carries a counter of token requests (TokenSource.Calls):
// the grants retry and switch schemes inside, so only they can count.
type tokenCallsKey struct{}

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
		if n, ok := ctx.Value(tokenCallsKey{}).(*atomic.Int64); ok {
			n.Add(1)
		}
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
