package merchantsync

import "time"

// What an account knows about pulling from its network, and what a pull or
// a connect reports back. The network decides (Network.Connect, Pull); the
// account keeps it (Account, RunOutcome, Connection) so the next pull starts
// from it and the publisher can see it.

// AuthMode is how a connection's syncs obtain their access tokens.
type AuthMode string

const (
	// AuthTokenKey: minted from the client ID and secret on every sync;
	// nothing rotates, nothing is written back to the secret.
	AuthTokenKey AuthMode = "token_key"
	// AuthRefresh: the network refused the token key, so syncs use the
	// refresh token, saving each rotated one before using it.
	AuthRefresh AuthMode = "refresh"
)

// PullMode is how a connection's relationships are listed.
type PullMode string

const (
	// PullUnfiltered: one listing of every relationship.
	PullUnfiltered PullMode = "unfiltered"
	// PullByStatus: one listing per relationship status, for networks
	// whose unfiltered listing leaves some statuses out.
	PullByStatus PullMode = "by_status"
)

// MerchantKey identifies a relationship within one account.
type MerchantKey struct {
	RegionNetwork int
	AdvertiserID  int64
}

// PullPlan is what the account knows, handed to every pull.
type PullPlan struct {
	Auth      AuthMode
	Mode      PullMode  // "" before the first check
	CheckedAt time.Time // when Mode was last checked against the network
	// Known are the stored relationships not yet called removed: the pull
	// looks up those its listing leaves out before they count as missing.
	Known []MerchantKey
	// Since, when set, makes the pull incremental: only partnerships whose
	// status changed within this long (the recency filter), no mode
	// self-check and no lookups of Known merchants.
	Since time.Duration
}

// PullResult is what a pull learned besides the relationships.
type PullResult struct {
	PullStats
	Auth      AuthMode // how this pull's tokens were obtained ("" if it obtained none)
	Mode      PullMode
	CheckedAt time.Time
	// Check is set when this pull checked the pull mode.
	Check *ModeCheck
	// Unverified are Known relationships the pull neither saw nor found
	// gone (its lookups are bounded): they are not a miss this time.
	Unverified []MerchantKey
}

// ModeCheck compares the unfiltered listing's total with the sum of the
// per-status totals.
type ModeCheck struct {
	Unfiltered int
	ByStatus   int
}

// Disagree reports whether the unfiltered listing and the per-status
// listings count different numbers of relationships.
func (c *ModeCheck) Disagree() bool { return c != nil && c.Unfiltered != c.ByStatus }

// Connected is what connecting learned: the credentials to keep (without
// the password) and what the account starts with.
type Connected struct {
	Credentials Credentials
	Auth        AuthMode
	Mode        PullMode
	CheckedAt   time.Time
	Check       *ModeCheck
	// Notice, when set, is something the publisher should read: the
	// connection works, but not quite as they typed it.
	Notice *Notice
}

// Notice is a message for the publisher that is not an error.
type Notice struct {
	Code    string
	Message string
}

// NoticePasswordGrantUnavailable: the network no longer offers the
// username-and-password check but accepted the client ID and secret alone.
const NoticePasswordGrantUnavailable = "password_grant_unavailable"
