package rakuten

import (
	"context"
	"errors"
	"fmt"
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
}

var _ merchantsync.Network = (*Network)(nil)

func (n *Network) now() time.Time {
	if n.Now != nil {
		return n.Now()
	}
	return time.Now()
}

// Connect exchanges the publisher's username and password for tokens (the
// password grant) and returns the credentials to keep, without the password.
func (n *Network) Connect(ctx context.Context, l merchantsync.Login) (*merchantsync.Credentials, error) {
	cr := Credentials{ClientID: l.ClientID, ClientSecret: l.ClientSecret, SiteID: l.SiteID}
	tok, err := n.Client.PasswordGrant(ctx, cr, l.Username, l.Password)
	if err != nil {
		return nil, explain(err, (*Error).ConnectError)
	}
	return &merchantsync.Credentials{
		ClientID: l.ClientID, ClientSecret: l.ClientSecret, SiteID: l.SiteID,
		RefreshToken: tok.RefreshToken, AccessToken: tok.AccessToken, AccessExpiry: tok.Expiry,
		AuthScheme: tok.Scheme, UpdatedAt: n.now().UTC(),
	}, nil
}

// Pull reads the connection's credentials and pages through its
// partnerships, handing each page to fn normalized. Every token obtained is
// saved into the connection's credentials before it is used: for a
// connection that has ended the save fails with EConnectionChanged and the
// token is never used.
func (n *Network) Pull(ctx context.Context, k merchantsync.ConnectionKey, fn func([]merchantsync.Partnership) error) (merchantsync.PullStats, error) {
	var st merchantsync.PullStats
	sec, err := n.Credentials.GetCredentials(ctx, k)
	if err != nil {
		return st, err
	}
	cur := *sec
	persist := func(ctx context.Context, t *Token) error {
		next := cur
		if t.RefreshToken != "" {
			next.RefreshToken = t.RefreshToken // a grant without one keeps the old
		}
		next.AccessToken, next.AccessExpiry, next.AuthScheme = t.AccessToken, t.Expiry, t.Scheme
		next.UpdatedAt = n.now().UTC()
		if err := n.Credentials.UpdateCredentials(ctx, k, next); err != nil {
			return err
		}
		cur = next
		return nil
	}
	cr := Credentials{ClientID: sec.ClientID, ClientSecret: sec.ClientSecret, SiteID: sec.SiteID}
	tok := &Token{AccessToken: sec.AccessToken, RefreshToken: sec.RefreshToken, Expiry: sec.AccessExpiry, Scheme: sec.AuthScheme}
	ts := n.Client.TokenSource(ctx, cr, tok, persist)
	ps, err := n.Client.Partnerships(ctx, ts, func(page []Partnership) error {
		out := make([]merchantsync.Partnership, len(page))
		for i, p := range page {
			out[i] = merchantsync.Partnership{
				RegionNetwork:   p.Network,
				AdvertiserID:    p.AdvertiserID,
				Name:            p.Name,
				ProgramStatus:   p.AdvertiserStatus,
				Status:          merchantsync.NormalizeRakuten(p.Status),
				StatusUpdatedAt: p.StatusUpdatedAt,
			}
		}
		return fn(out)
	})
	tokens := max(ps.Refreshes, ts.Refreshes())
	st = merchantsync.PullStats{Pages: ps.Pages, Calls: ps.Calls + tokens, Retries: ps.Retries,
		Throttles: ps.Throttles, Tokens: tokens, Skipped: ps.Skipped}
	return st, explain(err, (*Error).SyncError)
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
