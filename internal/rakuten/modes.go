package rakuten

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
)

// Whether GET /v1/partnerships without partner_status lists every status
// is not documented. The self-check asks: one request with limit=1 without
// a filter and one per partner_status, and compares _metadata.total with
// the sum of the per-status totals (docs/rakuten.md).

// ModeTotals is what the self-check counted.
type ModeTotals struct {
	Unfiltered int // total of the unfiltered listing
	ByStatus   int // sum of the per-status totals
	// Refused lists partner_status values Rakuten refused as a filter
	// (400): a by-status pull would fail on them.
	Refused []string
}

// Choose returns the mode that lists every partnership: by status when the
// unfiltered listing holds fewer than the statuses together (it leaves
// some out); unfiltered otherwise, since it then holds at least as many
// (a status we do not ask for included) and costs fewer calls, and also
// when a status filter is refused.
func (t ModeTotals) Choose() PullMode {
	if len(t.Refused) == 0 && t.Unfiltered < t.ByStatus {
		return ModeByStatus
	}
	return ModeUnfiltered
}

// CheckModes runs the self-check: 1 + len(PartnerStatuses()) requests.
func (c *Client) CheckModes(ctx context.Context, ts *TokenSource) (ModeTotals, PullStats, error) {
	var t ModeTotals
	var st PullStats
	before := ts.Refreshes()
	defer func() { st.Refreshes = ts.Refreshes() - before }()
	n, err := c.total(ctx, ts, url.Values{}, &st)
	if err != nil {
		return t, st, err
	}
	t.Unfiltered = n
	for _, s := range PartnerStatuses() {
		n, err := c.total(ctx, ts, url.Values{"partner_status": {s}}, &st)
		switch {
		case err == nil:
			t.ByStatus += n
		case KindOf(err) == KindInvalidRequest && httpStatus(err) == http.StatusBadRequest:
			t.Refused = append(t.Refused, s)
		default:
			return t, st, err
		}
	}
	return t, st, nil
}

// total asks for one row of the partnerships matching filter and returns
// _metadata.total.
func (c *Client) total(ctx context.Context, ts *TokenSource, filter url.Values, st *PullStats) (int, error) {
	resp, err := c.get(ctx, ts, pageRef(filter, 1, 1), "application/json", st)
	if err != nil {
		return 0, err
	}
	page, err := decodePartnerships(resp)
	if err != nil {
		return 0, ts.scrub(err)
	}
	if page.Metadata.Total <= 0 && len(page.Partnerships) > 0 {
		return 0, &Error{Kind: KindBadResponse, HTTPStatus: resp.status,
			Message: fmt.Sprintf("partnerships (%s) came without _metadata.total: the pull mode cannot be checked", describe(filter))}
	}
	return int(max(page.Metadata.Total, 0)), nil
}

func describe(filter url.Values) string {
	if len(filter) == 0 {
		return "unfiltered"
	}
	return filter.Encode()
}
