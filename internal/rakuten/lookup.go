package rakuten

import (
	"context"
	"net/http"
	"strconv"
)

// Partnership looks up the publisher's partnership with one advertiser:
// GET /v1/partnerships/{mid}. found is false when Rakuten answers 404 (no
// partnership). The answer may be the list's envelope or a bare row.
func (c *Client) Partnership(ctx context.Context, ts *TokenSource, mid int64, st *PullStats) (p Partnership, found bool, err error) {
	resp, err := c.get(ctx, ts, "/v1/partnerships/"+strconv.FormatInt(mid, 10), "application/json", st)
	if err != nil {
		if httpStatus(err) == http.StatusNotFound {
			return Partnership{}, false, nil
		}
		return Partnership{}, false, err
	}
	page, err := decodePartnerships(resp)
	if err != nil {
		return Partnership{}, false, ts.scrub(err)
	}
	rows := page.Partnerships
	if len(rows) == 0 {
		var one partnershipRow
		if err := decodeInto(resp, &one); err != nil {
			return Partnership{}, false, ts.scrub(err)
		}
		rows = []partnershipRow{one}
	}
	for i := range rows {
		if p, ok := rows[i].partnership(); ok && p.AdvertiserID == mid {
			return p, true, nil
		}
	}
	return Partnership{}, false, nil
}
