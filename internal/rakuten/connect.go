package rakuten

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// connectCheckTime bounds the pull-mode self-check of a connect, and
// connectReserve is left of the request's deadline for storing the
// connection: the publisher is waiting, and a check that does not finish
// in time is left to the first sync.
const (
	connectCheckTime = 15 * time.Second
	connectReserve   = 5 * time.Second
)

// Connect verifies what the publisher typed and returns the credentials to
// keep (never the password) with what the account starts with.
//
// The password grant verifies the username and password; then the token
// key is tried, to learn whether syncs can mint their tokens from it
// (AuthTokenKey) or need the refresh token (AuthRefresh). A wrong
// username or password is refused as always; but if Rakuten no longer
// offers the password grant (the older flow) and accepts the token key,
// the connection is made with the token key and a Notice says so. Last, in
// auto mode, the pull-mode self-check runs once (its failure only leaves it
// to the first sync).
func (n *Network) Connect(ctx context.Context, l merchantsync.Login) (*merchantsync.Connected, error) {
	cr := Credentials{ClientID: l.ClientID, ClientSecret: l.ClientSecret, SiteID: l.SiteID}
	out := &merchantsync.Connected{}
	pw, err := n.Client.PasswordGrant(ctx, cr, l.Username, l.Password)
	if err != nil && !grantRefused(err) {
		return nil, explain(err, (*Error).ConnectError)
	}
	key, kerr := n.Client.TokenKeyGrant(ctx, cr, "")
	switch {
	case kerr == nil:
		out.Auth = merchantsync.AuthTokenKey
	case err == nil && refused(kerr):
		out.Auth = merchantsync.AuthRefresh
	case err != nil:
		// Neither grant: what the publisher typed is refused.
		return nil, explain(err, (*Error).ConnectError)
	}
	if err != nil {
		out.Notice = &merchantsync.Notice{Code: merchantsync.NoticePasswordGrantUnavailable,
			Message: "Rakuten no longer checks a username and password for this application" + reasonOf(err) +
				", but accepted the client ID and secret alone: you are connected with those, and syncs need nothing else."}
	}
	use, keep := pw, pw
	if key != nil {
		use = key
	}
	if keep == nil {
		keep = key
	}
	out.Credentials = merchantsync.Credentials{
		ClientID: l.ClientID, ClientSecret: l.ClientSecret, SiteID: l.SiteID,
		RefreshToken: keep.RefreshToken, AuthScheme: keep.Scheme,
		AccessToken: use.AccessToken, AccessExpiry: use.Expiry, UpdatedAt: n.now(),
	}
	if n.Client.mode == ModeAuto {
		n.connectCheck(ctx, cr, use, out)
	}
	return out, nil
}

// connectCheck runs the pull-mode self-check with the access token just
// obtained. Its token source has no refresh token: using one here would
// rotate the token about to be stored.
func (n *Network) connectCheck(ctx context.Context, cr Credentials, use *Token, out *merchantsync.Connected) {
	until := time.Now().Add(connectCheckTime)
	if dl, ok := ctx.Deadline(); ok && dl.Add(-connectReserve).Before(until) {
		until = dl.Add(-connectReserve)
	}
	if time.Until(until) <= 0 {
		return
	}
	cctx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	ts := n.Client.KeyTokenSource(cctx, cr, &Token{AccessToken: use.AccessToken, Expiry: use.Expiry, Scheme: use.Scheme}, nil)
	totals, _, err := n.Client.CheckModes(cctx, ts)
	if err != nil {
		n.Client.log.LogAttrs(ctx, slog.LevelInfo, "rakuten: pull-mode check at connect failed; the first sync checks",
			slog.String("code", logCode(err)))
		return
	}
	var res merchantsync.PullResult
	n.checked(ctx, totals, &res)
	out.Mode, out.CheckedAt, out.Check = res.Mode, res.CheckedAt, res.Check
}

// grantRefused reports whether Rakuten refused the password grant itself
// (it does not offer that flow to the application), as opposed to the
// username and password typed: only then may the token key stand in.
func grantRefused(err error) bool {
	var e *Error
	if !errors.As(err, &e) || !refused(err) {
		return false
	}
	switch e.Code {
	case "unsupported_grant_type", "unauthorized_client":
		return true
	}
	return false
}

// reasonOf is Rakuten's scrubbed reason for a refusal, for the publisher.
func reasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.reason()
	}
	return ""
}
