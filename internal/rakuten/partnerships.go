package rakuten

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Partnership is one publisher–advertiser relationship.
type Partnership struct {
	AdvertiserID     int64  // MID
	Network          int    // regional network id (US 1, UK 3, …); 0 when the source does not say
	Name             string // advertiser name
	AdvertiserStatus string // the advertiser's own program status (active/inactive)
	Status           string // raw partnership status, exactly as Rakuten sent it
	StatusUpdatedAt  time.Time
	ApprovedAt       time.Time
	AppliedAt        time.Time
}

// PullStats describes one pull, for run records and cost tracking.
type PullStats struct {
	Pages     int // pages passed to fn
	Calls     int // HTTP requests to the endpoint, retries included
	Retries   int // requests repeated after a throttle, outage or 401
	Throttles int // throttle answers received
	Refreshes int // new tokens obtained during the pull
	Skipped   int // entries without an advertiser id, dropped
	Lookups   int // single partnerships looked up
}

// add counts o's requests and pages into st.
func (st *PullStats) add(o PullStats) {
	st.Pages += o.Pages
	st.Calls += o.Calls
	st.Retries += o.Retries
	st.Throttles += o.Throttles
	st.Refreshes += o.Refreshes
	st.Skipped += o.Skipped
	st.Lookups += o.Lookups
}

// PageLimit is the largest page the Partnerships API serves.
const PageLimit = 200

// maxRowsPerPage bounds the rows one page may bring (5× the limit we ask
// for): a body is only bounded in bytes, and a page of a million tiny rows
// would otherwise fill the sync's memory.
const maxRowsPerPage = 5 * PageLimit

// maxPages is the API's own page bound (page ≤ 1000): a loop past it means
// the links are broken, not that there is more data.
const maxPages = 1000

// PartnerStatuses are the Partnerships API's partner_status values
// (docs/rakuten.md), in the order a by-status pull asks for them.
func PartnerStatuses() []string {
	return []string{"active", "extended", "pending", "temp-decline", "permanent-decline",
		"temp-remove", "permanent-remove", "self-removed"}
}

// Partnerships pages through GET /v1/partnerships in the client's pull
// mode (Config.PullMode; auto pulls unfiltered here, since choosing needs
// an account's history: Network.Pull does that) and calls fn with each
// page. See PartnershipsBy.
func (c *Client) Partnerships(ctx context.Context, ts *TokenSource, fn func(page []Partnership) error) (PullStats, error) {
	return c.PartnershipsBy(ctx, ts, c.mode == ModeByStatus, fn)
}

// PartnershipsBy pages through GET /v1/partnerships (limit 200) and calls
// fn with each page: unfiltered, or with byStatus one run of pages per
// PartnerStatuses value (partner_status=…). Throttles, 5xx and network
// errors are retried with backoff within ctx's deadline; a 401 gets a new
// token once and repeats the page. fn's error stops the pull and is
// returned as is.
func (c *Client) PartnershipsBy(ctx context.Context, ts *TokenSource, byStatus bool, fn func(page []Partnership) error) (st PullStats, err error) {
	return c.partnerships(ctx, ts, byStatus, nil, fn)
}

// PartnershipsSince is PartnershipsBy for the partnerships whose status
// changed within since (status_update_range: 1d, 7d or 30d, the smallest
// that covers it), newest first (sort_by=status_update_datetime). The
// filter is Rakuten's to honour: the caller checks the rows' dates.
func (c *Client) PartnershipsSince(ctx context.Context, ts *TokenSource, byStatus bool, since time.Duration, fn func(page []Partnership) error) (PullStats, error) {
	return c.partnerships(ctx, ts, byStatus, url.Values{
		"status_update_range": {RecencyRange(since)},
		"sort_by":             {"status_update_datetime"},
	}, fn)
}

// RecencyRange is the status_update_range value that covers d.
func RecencyRange(d time.Duration) string {
	switch {
	case d <= 24*time.Hour:
		return "1d"
	case d <= 7*24*time.Hour:
		return "7d"
	}
	return "30d"
}

func (c *Client) partnerships(ctx context.Context, ts *TokenSource, byStatus bool, extra url.Values, fn func(page []Partnership) error) (st PullStats, err error) {
	before := ts.Refreshes()
	defer func() { st.Refreshes = ts.Refreshes() - before }()
	filter := func(status string) url.Values {
		f := url.Values{}
		for k, v := range extra {
			f[k] = v
		}
		if status != "" {
			f.Set("partner_status", status)
		}
		return f
	}
	if !byStatus {
		return st, c.pull(ctx, ts, filter(""), fn, &st)
	}
	for _, s := range PartnerStatuses() {
		if err := c.pull(ctx, ts, filter(s), fn, &st); err != nil {
			return st, err
		}
	}
	return st, nil
}

// pull pages through the partnerships that match filter. Every page's
// request is built here (page+1, the same limit, the same filters): the
// links Rakuten's spec shows drop the filters, and following them would
// turn page 2 of a filtered pull into a page of everything. _links.next,
// total and an empty page only say when to stop: an empty page ends it;
// a total ends it once page*limit reaches it; without a total, a missing
// next link does.
func (c *Client) pull(ctx context.Context, ts *TokenSource, filter url.Values, fn func(page []Partnership) error, st *PullStats) error {
	limit := c.pageSize
	for n := 1; ; n++ {
		if n > maxPages {
			return &Error{Kind: KindBadResponse, Message: fmt.Sprintf("more than %d pages: the totals never end", maxPages)}
		}
		resp, err := c.get(ctx, ts, pageRef(filter, n, limit), "application/json", st)
		if err != nil {
			return err
		}
		page, err := decodePartnerships(resp)
		if err != nil {
			return ts.scrub(err)
		}
		if len(page.Partnerships) > maxRowsPerPage {
			return &Error{Kind: KindBadResponse, HTTPStatus: resp.status,
				Message: fmt.Sprintf("a page of %d partnerships, more than the %d a page may hold", len(page.Partnerships), maxRowsPerPage)}
		}
		m := page.Metadata
		if served := int(m.Limit); served > 0 && served != limit {
			// Rakuten served pages of another size than asked: later pages
			// must use its size, or their offsets skip or repeat rows.
			if n != 1 || served > PageLimit {
				return &Error{Kind: KindBadResponse, HTTPStatus: resp.status,
					Message: fmt.Sprintf("page %d came with limit %d, asked %d", n, served, limit)}
			}
			limit = served
		}
		items := page.partnerships(st)
		st.Pages++
		if err := fn(items); err != nil {
			return err
		}
		switch {
		case len(page.Partnerships) == 0:
			return nil
		case m.Total > 0:
			if int64(n)*int64(limit) >= int64(m.Total) {
				return nil
			}
		case strings.TrimSpace(m.Links.Next) == "":
			return nil
		}
	}
}

// pageRef is the request for page n of the partnerships matching filter.
func pageRef(filter url.Values, n, limit int) string {
	q := url.Values{}
	for k, v := range filter {
		q[k] = v
	}
	q.Set("page", strconv.Itoa(n))
	q.Set("limit", strconv.Itoa(limit))
	return "/v1/partnerships?" + q.Encode()
}

// get GETs ref (a path relative to the base URL) with a bearer token from
// ts, under the credential's rate limiter, retrying what retrying can fix.
// The returned response has a 2xx status.
func (c *Client) get(ctx context.Context, ts *TokenSource, ref, accept string, st *PullStats) (*response, error) {
	u, err := c.endpoint(ref)
	if err != nil {
		return nil, err
	}
	lim := c.limiter(ts.cr)
	authRetries := 0
	retries := 0
	for {
		tok, err := ts.token(ctx)
		if err != nil {
			return nil, err
		}
		if err := lim.Wait(ctx); err != nil {
			return nil, &Error{Kind: KindThrottled, Message: "rate limit would pass the deadline", Err: err}
		}
		req, err := http.NewRequest(http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, fmt.Errorf("rakuten: request: %w", err)
		}
		req.Header.Set("Accept", accept)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		st.Calls++
		resp, serr := c.send(ctx, req)
		var e *Error
		switch {
		case serr != nil:
			e = serr.(*Error)
			if ctx.Err() != nil {
				return nil, e
			}
		case resp.status/100 == 2:
			return resp, nil
		default:
			e = classify(resp.status, resp.header, resp.body)
			secrets := ts.secrets()
			e.Message, e.Code = scrub(e.Message, secrets), scrub(e.Code, secrets)
		}
		if e.throttle {
			st.Throttles++
		}
		switch {
		case e.HTTPStatus == http.StatusUnauthorized && authRetries < maxAuthRetries:
			// The token expired or was revoked mid-pull: get a new one and
			// repeat the same page. A token refused right after it was
			// issued gets one more try; the TokenSource bounds new tokens
			// per sync, and ctx bounds the time.
			authRetries++
			ts.invalidate(tok.AccessToken)
			st.Retries++
			c.log.LogAttrs(ctx, slog.LevelDebug, "rakuten: 401, refreshing token", slog.String("code", e.Code))
			continue
		case !retryable(e):
			return nil, e
		}
		retries++
		if retries > c.maxRetries {
			return nil, &Error{Kind: e.Kind, HTTPStatus: e.HTTPStatus, Code: e.Code,
				Message: fmt.Sprintf("gave up after %d retries", c.maxRetries), Err: e}
		}
		if err := c.wait(ctx, retries, e); err != nil {
			return nil, err
		}
		st.Retries++
	}
}

// maxAuthRetries is how often one request may be repeated with a new token
// after a 401.
const maxAuthRetries = 2

// secrets lists what must never appear in an error for this source.
func (ts *TokenSource) secrets() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := []string{ts.cr.ClientSecret, ts.cr.tokenKey()}
	for _, t := range []*Token{ts.tok, ts.unsaved} {
		if t != nil {
			out = append(out, t.AccessToken, t.RefreshToken)
		}
	}
	return out
}

// scrub removes this source's secrets from an *Error's message and code
// (both may come from the response body).
func (ts *TokenSource) scrub(err error) error {
	if e, ok := err.(*Error); ok {
		secrets := ts.secrets()
		e.Message, e.Code = scrub(e.Message, secrets), scrub(e.Code, secrets)
	}
	return err
}
