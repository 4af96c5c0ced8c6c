// Package rakuten is merchantsync's client for the Rakuten Advertising
// publisher API: the OAuth token endpoint, the Partnerships API and the
// Link Locator fallback, as described in docs/rakuten.md.
//
// Rakuten documents little (no rate-limit numbers, two auth schemes in use,
// expires_in as number or string, XML faults on JSON endpoints), so the
// client is defensive everywhere: it sniffs bodies before decoding, retries
// what retrying can fix within the caller's deadline, and classifies every
// failure into a Kind the sync engine can act on. Errors never carry the
// password, the client secret, the token key or any token.
package rakuten

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/merchantsync/merchantsync/internal/backoff"
)

// DefaultBaseURL is Rakuten's API host.
const DefaultBaseURL = "https://api.linksynergy.com"

// Config configures a Client. The zero value is usable.
type Config struct {
	BaseURL    string       // RAKUTEN_BASE_URL; default DefaultBaseURL
	HTTPClient *http.Client // default: a client with sane timeouts
	// RequestsPerMinute is the per-credential limiter rate (default 100).
	// Rakuten publishes no number; negative means unlimited (tests).
	RequestsPerMinute float64
	Burst             int           // limiter burst (default 5)
	MaxRetryWait      time.Duration // cap on one backoff sleep (default 30s)
	// MaxRetries bounds retries of one request (default 8) so a context
	// without a deadline cannot retry forever; with a deadline, retrying also
	// stops when the next sleep would pass it.
	MaxRetries int
	// Sleep waits d or until ctx is done; injectable so tests need no wall time.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock for token expiry (default time.Now).
	Now func() time.Time
	// Logger receives debug lines about retries and refreshes; never secrets.
	Logger *slog.Logger
	// UserAgent is sent on every request.
	UserAgent string
	// PullMode is RAKUTEN_PULL_MODE: ModeAuto (default) lets each
	// account's weekly self-check choose (Network.Pull); ModeUnfiltered
	// and ModeByStatus force one for every account.
	PullMode PullMode
	// PullByStatus is the older switch (RAKUTEN_PULL_BY_STATUS): true means
	// ModeByStatus when PullMode is not set.
	PullByStatus bool
	// PageSize is the limit asked for per partnerships page (default and
	// most PageLimit). Smaller pages are for tests that need several pages
	// of a few merchants.
	PageSize int
}

// Client talks to Rakuten. It is safe for concurrent use; its rate limiters
// are shared by every call made through it.
type Client struct {
	base       *url.URL
	hc         *http.Client
	rpm        float64
	burst      int
	maxWait    time.Duration
	maxRetries int
	sleep      func(context.Context, time.Duration) error
	now        func() time.Time
	log        *slog.Logger
	ua         string
	mode       PullMode
	pageSize   int

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

// New returns a Client. An unparsable BaseURL is reported by the first call.
func New(cfg Config) *Client {
	c := &Client{
		hc:         cfg.HTTPClient,
		rpm:        cfg.RequestsPerMinute,
		burst:      cfg.Burst,
		maxWait:    cfg.MaxRetryWait,
		maxRetries: cfg.MaxRetries,
		sleep:      cfg.Sleep,
		now:        cfg.Now,
		log:        cfg.Logger,
		ua:         cfg.UserAgent,
		mode:       cfg.PullMode,
		pageSize:   cfg.PageSize,
		limiters:   make(map[string]*rate.Limiter),
	}
	raw := strings.TrimRight(cfg.BaseURL, "/")
	if raw == "" {
		raw = DefaultBaseURL
	}
	c.base, _ = url.Parse(raw)
	if c.hc == nil {
		c.hc = defaultHTTPClient()
	}
	// Never follow a redirect, whatever client was given: the host pinning
	// of endpoint() would be bypassed (a token request re-sent elsewhere
	// with its body, password included). A 3xx is classified KindRedirect.
	hc := *c.hc
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.hc = &hc
	if c.rpm == 0 {
		c.rpm = 100
	}
	switch {
	case c.mode != "":
	case cfg.PullByStatus:
		c.mode = ModeByStatus
	default:
		c.mode = ModeAuto
	}
	if c.pageSize <= 0 || c.pageSize > PageLimit {
		c.pageSize = PageLimit
	}
	if c.burst <= 0 {
		c.burst = 5
	}
	if c.maxWait <= 0 {
		c.maxWait = 30 * time.Second
	}
	if c.maxRetries <= 0 {
		c.maxRetries = 8
	}
	if c.sleep == nil {
		c.sleep = backoff.Sleep
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.ua == "" {
		c.ua = "merchantsync"
	}
	return c
}

func defaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 60 * time.Second
	t.MaxIdleConnsPerHost = 4
	// The overall timeout is a backstop; callers bound calls with their
	// context (a Lambda's deadline).
	return &http.Client{Transport: t, Timeout: 2 * time.Minute}
}

// limiter returns the limiter for one credential (client id + SID): Rakuten
// limits per application and site, so two tenants never share a budget but
// every page of one sync does.
func (c *Client) limiter(cr Credentials) *rate.Limiter {
	key := cr.ClientID + "\x00" + cr.SiteID
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.limiters[key]
	if !ok {
		r := rate.Limit(c.rpm / 60)
		if c.rpm < 0 {
			r = rate.Inf
		}
		l = rate.NewLimiter(r, c.burst)
		c.limiters[key] = l
	}
	return l
}

// endpoint resolves a path (optionally with a query) against the base URL,
// keeping any path prefix the base carries.
func (c *Client) endpoint(ref string) (*url.URL, error) {
	if c.base == nil || c.base.Scheme == "" || c.base.Host == "" {
		return nil, &Error{Kind: KindInvalidRequest, Message: "invalid Rakuten base URL"}
	}
	r, err := url.Parse(ref)
	if err != nil {
		return nil, &Error{Kind: KindBadResponse, Message: "unreadable link", Err: err}
	}
	if r.IsAbs() || r.Host != "" {
		u := c.base.ResolveReference(r)
		// Never send a bearer token to a host Rakuten's link points at but
		// we were not configured for.
		if u.Scheme != c.base.Scheme || u.Host != c.base.Host {
			return nil, &Error{Kind: KindBadResponse, Message: "link points to another host: " + u.Host}
		}
		return u, nil
	}
	u := *c.base
	p := r.Path
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if prefix := strings.TrimRight(c.base.Path, "/"); prefix != "" && !strings.HasPrefix(p, prefix+"/") {
		p = prefix + p
	}
	u.Path, u.RawPath = p, ""
	u.RawQuery = r.RawQuery
	return &u, nil
}

// maxBody bounds what we read from Rakuten: a page of 200 partnerships is
// well under 1 MiB.
const maxBody = 16 << 20

// response is a fully read HTTP response.
type response struct {
	status int
	header http.Header
	body   []byte
}

// send performs one HTTP request and reads the whole body. A transport
// failure becomes a KindUnavailable *Error wrapping the cause (which never
// holds a secret: secrets travel only in headers and bodies).
func (c *Client) send(ctx context.Context, req *http.Request) (*response, error) {
	req.Header.Set("User-Agent", c.ua)
	resp, err := c.hc.Do(req.WithContext(ctx))
	if err != nil {
		msg := "network error"
		if ctx.Err() != nil {
			msg = "request cancelled or past its deadline"
		}
		return nil, &Error{Kind: KindUnavailable, Message: msg, Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, &Error{Kind: KindUnavailable, HTTPStatus: resp.StatusCode, Message: "reading response", Err: err}
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// backoff returns how long to wait before retry number n (1-based): full
// jitter over an exponential window capped at MaxRetryWait, or the server's
// Retry-After (also capped: one sleep never exceeds MaxRetryWait).
func (c *Client) backoff(n int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, c.maxWait)
	}
	window := c.maxWait
	if n < 30 {
		window = min(c.maxWait, 500*time.Millisecond<<n)
	}
	return rand.N(window + 1)
}

// wait sleeps before retry n of a failed request. It returns a non-nil
// error, wrapping last, when the sleep would pass ctx's deadline or ctx ends.
func (c *Client) wait(ctx context.Context, n int, last *Error) error {
	d := c.backoff(n, last.retryAfter)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return &Error{Kind: last.Kind, HTTPStatus: last.HTTPStatus, Code: last.Code,
			Message: "gave up retrying before the deadline", Err: last}
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "rakuten: retrying",
		slog.Int("attempt", n), slog.Duration("wait", d),
		slog.Int("status", last.HTTPStatus), slog.String("kind", string(last.Kind)))
	if err := c.sleep(ctx, d); err != nil {
		return &Error{Kind: last.Kind, HTTPStatus: last.HTTPStatus, Code: last.Code,
			Message: "gave up retrying", Err: fmt.Errorf("%w (last: %w)", err, last)}
	}
	return nil
}

// PullMode is how partnerships are pulled (Config.PullMode).
type PullMode string

const (
	// ModeAuto: each account's self-check chooses between the other two.
	ModeAuto PullMode = "auto"
	// ModeUnfiltered: one run of pages without partner_status.
	ModeUnfiltered PullMode = "unfiltered"
	// ModeByStatus: one run of pages per partner_status value.
	ModeByStatus PullMode = "by_status"
)

// ParsePullMode reads RAKUTEN_PULL_MODE ("" is ModeAuto).
func ParsePullMode(s string) (PullMode, error) {
	switch m := PullMode(strings.ToLower(strings.TrimSpace(s))); m {
	case "":
		return ModeAuto, nil
	case ModeAuto, ModeUnfiltered, ModeByStatus:
		return m, nil
	}
	return "", fmt.Errorf("pull mode %q: want auto, unfiltered or by_status", s)
}
