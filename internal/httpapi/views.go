package httpapi

import (
	"time"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// JSON shapes of the REST contract (camelCase, RFC 3339 UTC times).

type networkJSON struct {
	Network     string         `json:"network"`
	Name        string         `json:"name"`
	State       string         `json:"state"`
	AffiliateID string         `json:"affiliateId,omitempty"`
	SiteID      string         `json:"siteId,omitempty"`
	Username    string         `json:"username,omitempty"`
	SyncEnabled bool           `json:"syncEnabled"`
	SyncEvery   string         `json:"syncEvery"`
	ConnectedAt *time.Time     `json:"connectedAt,omitempty"`
	LastSyncAt  *time.Time     `json:"lastSyncAt,omitempty"`
	NextSyncAt  *time.Time     `json:"nextSyncAt,omitempty"`
	LastRun     *runJSON       `json:"lastRun,omitempty"`
	ActiveRunID string         `json:"activeRunId,omitempty"`
	Counts      map[string]int `json:"counts"`
	// What the network reported about the connection: how syncs obtain
	// their tokens, how they list relationships and when that was checked.
	Auth              string     `json:"auth,omitempty"`
	PullMode          string     `json:"pullMode,omitempty"`
	PullModeCheckedAt *time.Time `json:"pullModeCheckedAt,omitempty"`
	// IncrementalOff says why an hourly tenant's account syncs with full
	// pulls only (Rakuten refused or ignored the recency filter).
	IncrementalOff string `json:"incrementalOff,omitempty"`
	// Notice is only in the answer to PUT credentials.
	Notice *errorDetail `json:"notice,omitempty"`
}

type settingsJSON struct {
	Enabled   bool       `json:"enabled"`
	SyncEvery string     `json:"syncEvery"`
	UpdatedAt *time.Time `json:"updatedAt,omitempty"`
}

func toSettingsJSON(st merchantsync.Settings) settingsJSON {
	return settingsJSON{Enabled: st.Enabled, SyncEvery: string(st.SyncEvery.Or()), UpdatedAt: ts(st.UpdatedAt)}
}

type runJSON struct {
	RunID           string         `json:"runId"`
	Trigger         string         `json:"trigger"`
	Mode            string         `json:"mode"`
	State           string         `json:"state"`
	QueuedAt        *time.Time     `json:"queuedAt,omitempty"`
	StartedAt       *time.Time     `json:"startedAt,omitempty"`
	FinishedAt      *time.Time     `json:"finishedAt,omitempty"`
	MerchantsSynced int            `json:"merchantsSynced"`
	Counts          map[string]int `json:"counts"`
	Changes         int            `json:"changes"`
	JoinedRunID     string         `json:"joinedRunId,omitempty"`
	Error           *errorDetail   `json:"error,omitempty"`
}

type relationshipJSON struct {
	AdvertiserID    int64      `json:"advertiserId"`
	Name            string     `json:"name"`
	Network         string     `json:"network"`
	RegionNetwork   int        `json:"regionNetwork"`
	Status          string     `json:"status"`
	RawStatus       string     `json:"rawStatus"`
	Permanent       bool       `json:"permanent"`
	ProgramStatus   string     `json:"programStatus,omitempty"`
	StatusChangedAt *time.Time `json:"statusChangedAt,omitempty"`
	FirstSeenAt     *time.Time `json:"firstSeenAt,omitempty"`
	LastSeenAt      *time.Time `json:"lastSeenAt,omitempty"`
}

type changeJSON struct {
	AdvertiserID  int64     `json:"advertiserId"`
	Name          string    `json:"name"`
	Network       string    `json:"network"`
	RegionNetwork int       `json:"regionNetwork"`
	From          string    `json:"from,omitempty"`
	To            string    `json:"to"`
	RawFrom       string    `json:"rawFrom,omitempty"`
	RawTo         string    `json:"rawTo"`
	At            time.Time `json:"at"`
	RunID         string    `json:"runId"`
}

type listJSON[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"nextCursor,omitempty"`
}

// runMode is the run's mode; runs recorded before modes were full.
func runMode(m merchantsync.SyncMode) merchantsync.SyncMode {
	if m == "" {
		return merchantsync.ModeFull
	}
	return m
}

func ts(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func countsJSON(c map[merchantsync.Status]int) map[string]int {
	out := make(map[string]int, len(merchantsync.Statuses))
	for _, s := range merchantsync.Statuses {
		out[string(s)] = c[s]
	}
	return out
}

func toRunJSON(r *merchantsync.Run) *runJSON {
	if r == nil {
		return nil
	}
	j := &runJSON{
		RunID: r.RunID, Trigger: string(r.Trigger), Mode: string(runMode(r.Mode)), State: string(r.State),
		QueuedAt: ts(r.QueuedAt), StartedAt: ts(r.StartedAt), FinishedAt: ts(r.FinishedAt),
		MerchantsSynced: r.MerchantsSynced, Counts: countsJSON(r.Counts), Changes: r.Changes,
		JoinedRunID: r.JoinedRunID,
	}
	if r.Error != nil {
		j.Error = &errorDetail{Code: r.Error.Code, Message: r.Error.Message}
	}
	return j
}

// toRelationshipJSON derives lastSeenAt: merchantsync does not rewrite every
// relationship on every sync, so a relationship seen in the last pull
// (MissedPulls == 0) was last seen at the account's last successful sync.
func toRelationshipJSON(r merchantsync.Relationship, lastSyncAt time.Time) relationshipJSON {
	lastSeen := r.LastSeenAt
	if r.MissedPulls == 0 && lastSyncAt.After(lastSeen) {
		lastSeen = lastSyncAt
	}
	return relationshipJSON{
		AdvertiserID: r.AdvertiserID, Name: r.Name, Network: r.Network, RegionNetwork: r.RegionNetwork,
		Status: string(r.Status), RawStatus: r.RawStatus, Permanent: r.Permanent,
		ProgramStatus: r.ProgramStatus, StatusChangedAt: ts(r.StatusChangedAt),
		FirstSeenAt: ts(r.FirstSeenAt), LastSeenAt: ts(lastSeen),
	}
}

func toChangeJSON(c merchantsync.Change) changeJSON {
	return changeJSON{
		AdvertiserID: c.AdvertiserID, Name: c.Name, Network: c.Network, RegionNetwork: c.RegionNetwork,
		From: string(c.From), To: string(c.To), RawFrom: c.RawFrom, RawTo: c.RawTo,
		At: c.At.UTC(), RunID: c.RunID,
	}
}
