package rakuten

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// Network is merchantsync's Network port on Rakuten: the Client for the
// calls, a CredentialStore for the connection's credentials and the tokens
// Rakuten rotates. The sync engine sees neither tokens nor secrets.
type Network struct {
	Client      *Client
	Credentials merchantsync.CredentialStore
	Now         func() time.Time // default time.Now
	// CheckEvery is how long an account's pull mode stands before its
	// self-check runs again (auto mode; default DefaultCheckEvery).
	CheckEvery time.Duration
	// MaxLookups bounds the single partnerships one pull looks up (default
	// DefaultMaxLookups): a merchant missing from the listing is looked up
	// before it counts as missing.
	MaxLookups int
}

// Defaults of the Network's tunables.
const (
	DefaultCheckEvery = 7 * 24 * time.Hour
	DefaultMaxLookups = 50
)

var _ merchantsync.Network = (*Network)(nil)

func (n *Network) now() time.Time {
	if n.Now != nil {
		return n.Now().UTC()
	}
	return time.Now().UTC()
}

// Pull reads the connection's credentials and pages through its
// partnerships, handing each page to fn normalized.
//
// Tokens: the token key first, which needs nothing kept; if Rakuten
// refuses it, the refresh chain, whose every new token is saved into the
// connection's credentials before it is used (for a connection that has
// ended the save fails with EConnectionChanged and the token is never used).
//
// Mode: the client's PullMode when forced; in auto mode the plan's, unless
// it is older than CheckEvery (or unknown), when the self-check chooses
// again. Then every Known merchant the listing left out is looked up (at
// most MaxLookups): a program on hold vanishes from the listing but still
// has its partnership, which must not be taken for the publisher's removal.
func (n *Network) Pull(ctx context.Context, k merchantsync.ConnectionKey, plan merchantsync.PullPlan, fn func([]merchantsync.Partnership) error) (merchantsync.PullResult, error) {
	res := merchantsync.PullResult{Auth: plan.Auth, Mode: plan.Mode, CheckedAt: plan.CheckedAt}
	sec, err := n.Credentials.GetCredentials(ctx, k)
	if err != nil {
		return res, err
	}
	cur := *sec
	persist := func(ctx context.Context, t *Token) error {
		next := cur
		if t.RefreshToken != "" {
			next.RefreshToken = t.RefreshToken // a grant without one keeps the old
		}
		next.AccessToken, next.AccessExpiry, next.AuthScheme = t.AccessToken, t.Expiry, t.Scheme
		next.UpdatedAt = n.now()
		if err := n.Credentials.UpdateCredentials(ctx, k, next); err != nil {
			return err
		}
		cur = next
		return nil
	}
	cr := Credentials{ClientID: sec.ClientID, ClientSecret: sec.ClientSecret, SiteID: sec.SiteID}
	tok := &Token{AccessToken: sec.AccessToken, RefreshToken: sec.RefreshToken, Expiry: sec.AccessExpiry, Scheme: sec.AuthScheme}
	if !tok.Expiry.IsZero() && !tok.Expiry.After(n.now().Add(time.Minute)) {
		// Expired by our clock (the one the sync runs on), not only by
		// oauth2's: an hour-long token stored yesterday is not tried.
		tok.AccessToken = ""
	}
	ts := n.Client.KeyTokenSource(ctx, cr, tok, persist)

	var st PullStats
	err = n.pull(ctx, ts, plan, &res, &st, fn)
	switch ts.Grant() {
	case GrantTokenKey:
		res.Auth = merchantsync.AuthTokenKey
	case GrantRefresh:
		res.Auth = merchantsync.AuthRefresh
	}
	res.PullStats = merchantsync.PullStats{Pages: st.Pages, Calls: st.Calls + ts.Calls(), Retries: st.Retries,
		Throttles: st.Throttles, Tokens: ts.Refreshes(), Skipped: st.Skipped, Lookups: st.Lookups}
	return res, explain(err, (*Error).SyncError)
}

// pull chooses the mode, pulls, and looks up the known merchants the
// listing left out.
func (n *Network) pull(ctx context.Context, ts *TokenSource, plan merchantsync.PullPlan, res *merchantsync.PullResult,
	st *PullStats, fn func([]merchantsync.Partnership) error) error {
	if plan.Since > 0 {
		return n.pullSince(ctx, ts, plan, res, st, fn)
	}
	byStatus, err := n.mode(ctx, ts, plan, res, st)
	if err != nil {
		return err
	}
	seen := make(map[merchantsync.MerchantKey]bool, len(plan.Known))
	ps, err := n.Client.PartnershipsBy(ctx, ts, byStatus, func(page []Partnership) error {
		out := make([]merchantsync.Partnership, len(page))
		for i, p := range page {
			out[i] = domain(p)
			seen[merchantsync.MerchantKey{RegionNetwork: p.Network, AdvertiserID: p.AdvertiserID}] = true
		}
		return fn(out)
	})
	st.add(ps)
	if err != nil {
		return err
	}
	return n.lookUp(ctx, ts, plan.Known, seen, res, st, fn)
}

// mode returns whether to pull by status, running the self-check when it
// is due.
func (n *Network) mode(ctx context.Context, ts *TokenSource, plan merchantsync.PullPlan, res *merchantsync.PullResult, st *PullStats) (bool, error) {
	switch n.Client.mode {
	case ModeUnfiltered:
		res.Mode = merchantsync.PullUnfiltered
		return false, nil
	case ModeByStatus:
		res.Mode = merchantsync.PullByStatus
		return true, nil
	}
	if plan.Mode != "" && !plan.CheckedAt.IsZero() && n.now().Sub(plan.CheckedAt) < n.checkEvery() {
		return plan.Mode == merchantsync.PullByStatus, nil
	}
	totals, cs, err := n.Client.CheckModes(ctx, ts)
	st.add(cs)
	if err != nil {
		return false, err
	}
	n.checked(ctx, totals, res)
	return res.Mode == merchantsync.PullByStatus, nil
}

// checked records a self-check's totals and choice in res.
func (n *Network) checked(ctx context.Context, t ModeTotals, res *merchantsync.PullResult) {
	res.Mode = merchantsync.PullUnfiltered
	if t.Choose() == ModeByStatus {
		res.Mode = merchantsync.PullByStatus
	}
	res.CheckedAt = n.now()
	res.Check = &merchantsync.ModeCheck{Unfiltered: t.Unfiltered, ByStatus: t.ByStatus}
	if len(t.Refused) > 0 {
		n.Client.log.LogAttrs(ctx, slog.LevelWarn, "rakuten: partner_status values refused as filters; pulling unfiltered",
			slog.Any("refused", t.Refused))
	}
}

// lookUp looks up the known merchants the listing left out, at most
// MaxLookups of them, starting at a random one so that each gets its turn
// over the syncs. Found ones go to fn like any other; a 404 means gone (a
// miss); the rest, and all of them after a failed lookup, are reported
// Unverified: not a miss this time. A failed lookup does not fail the pull,
// which has succeeded.
func (n *Network) lookUp(ctx context.Context, ts *TokenSource, known []merchantsync.MerchantKey, seen map[merchantsync.MerchantKey]bool,
	res *merchantsync.PullResult, st *PullStats, fn func([]merchantsync.Partnership) error) error {
	var missing []merchantsync.MerchantKey
	for _, k := range known {
		if !seen[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	start, budget := rand.IntN(len(missing)), n.maxLookups()
	var found []merchantsync.Partnership
	for i := range missing {
		k := missing[(start+i)%len(missing)]
		if budget == 0 {
			res.Unverified = append(res.Unverified, k)
			continue
		}
		budget--
		st.Lookups++
		p, ok, err := n.Client.Partnership(ctx, ts, k.AdvertiserID, st)
		if err != nil {
			n.Client.log.LogAttrs(ctx, slog.LevelWarn, "rakuten: partnership lookup failed; the merchants left are not counted missing",
				slog.String("code", logCode(err)))
			budget = 0
			res.Unverified = append(res.Unverified, k)
			continue
		}
		if !ok {
			continue
		}
		if p.Network == 0 {
			p.Network = k.RegionNetwork // the lookup was for this region's relationship
		}
		if p.Network == k.RegionNetwork {
			found = append(found, domain(p))
		}
	}
	if len(found) == 0 {
		return nil
	}
	return fn(found)
}

func (n *Network) checkEvery() time.Duration {
	if n.CheckEvery > 0 {
		return n.CheckEvery
	}
	return DefaultCheckEvery
}

func (n *Network) maxLookups() int {
	if n.MaxLookups > 0 {
		return n.MaxLookups
	}
	return DefaultMaxLookups
}

// domain is a partnership in the domain's words.
func domain(p Partnership) merchantsync.Partnership {
	return merchantsync.Partnership{
		RegionNetwork:   p.Network,
		AdvertiserID:    p.AdvertiserID,
		Name:            p.Name,
		ProgramStatus:   p.AdvertiserStatus,
		Status:          merchantsync.NormalizeRakuten(p.Status),
		StatusUpdatedAt: p.StatusUpdatedAt,
	}
}

// explain puts the publisher's words (a *merchantsync.Error) in front of a
// Rakuten error, keeping it for the logs; other errors pass as they are.
func explain(err error, words func(*Error) *merchantsync.Error) error {
	var e *Error
	if err == nil || !errors.As(err, &e) {
		return err
	}
	return fmt.Errorf("%w: %w", words(e), err)
}

// recencySlack is how much older than the range a row may be before the
// recency filter counts as ignored: clocks and Rakuten's own day boundary
// differ.
const recencySlack = time.Hour

// pullSince is an incremental pull: the account's mode as it stands (no
// self-check), the recency filter on every page, no lookups (a merchant
// absent from it has simply not changed). A 400 to the filter, or a row
// older than the range, is KindRecencyUnsupported: a filter Rakuten does not
// apply would make an "incremental" pull a full one that never reconciles.
func (n *Network) pullSince(ctx context.Context, ts *TokenSource, plan merchantsync.PullPlan, res *merchantsync.PullResult,
	st *PullStats, fn func([]merchantsync.Partnership) error) error {
	byStatus := plan.Mode == merchantsync.PullByStatus
	switch n.Client.mode {
	case ModeUnfiltered:
		byStatus = false
	case ModeByStatus:
		byStatus = true
	}
	oldest := n.now().Add(-plan.Since - recencySlack)
	ps, err := n.Client.PartnershipsSince(ctx, ts, byStatus, plan.Since, func(page []Partnership) error {
		out := make([]merchantsync.Partnership, len(page))
		for i, p := range page {
			if !p.StatusUpdatedAt.IsZero() && p.StatusUpdatedAt.Before(oldest) {
				return &Error{Kind: KindRecencyUnsupported,
					Message: fmt.Sprintf("asked for status changes within %s, got one from %s", RecencyRange(plan.Since), p.StatusUpdatedAt.UTC().Format(time.RFC3339))}
			}
			out[i] = domain(p)
		}
		return fn(out)
	})
	st.add(ps)
	var re *Error
	if errors.As(err, &re) && re.Kind == KindInvalidRequest {
		return &Error{Kind: KindRecencyUnsupported, HTTPStatus: re.HTTPStatus, Message: re.Message}
	}
	return err
}
