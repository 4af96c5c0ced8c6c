package merchantsync

import "time"

// The data of each event type, as webhooks and the event bus carry it
// (camelCase JSON, RFC 3339 UTC times). Every event names its tenant and
// network so that a receiver serving several needs nothing else.

// RelationshipChanged is the data of relationship.changed: one recorded
// status transition (never for an account's first sync, which records
// none).
type RelationshipChanged struct {
	TenantID      string    `json:"tenantId"`
	Network       string    `json:"network"`
	AdvertiserID  int64     `json:"advertiserId"`
	RegionNetwork int       `json:"regionNetwork"`
	Name          string    `json:"name,omitempty"`
	From          Status    `json:"from,omitempty"`
	To            Status    `json:"to"`
	RawFrom       string    `json:"rawFrom,omitempty"`
	RawStatus     string    `json:"rawStatus,omitempty"`
	Permanent     bool      `json:"permanent"`
	ChangedAt     time.Time `json:"changedAt"`
	RunID         string    `json:"runId,omitempty"`
}

// SyncFinished is the data of sync.completed and sync.failed: the run
// summary the front end shows.
type SyncFinished struct {
	TenantID        string         `json:"tenantId"`
	Network         string         `json:"network"`
	RunID           string         `json:"runId"`
	Trigger         string         `json:"trigger,omitempty"`
	Mode            string         `json:"mode,omitempty"`
	State           RunState       `json:"state"`
	StartedAt       *time.Time     `json:"startedAt,omitempty"`
	FinishedAt      *time.Time     `json:"finishedAt,omitempty"`
	MerchantsSynced int            `json:"merchantsSynced"`
	Counts          map[string]int `json:"counts"`
	Changes         int            `json:"changes"`
	Error           *EventError    `json:"error,omitempty"`
}

// EventError is a failed run's error: a code and a message for people.
type EventError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ReauthRequired is the data of connection.reauth_required: the network
// refused the stored credentials; the publisher must connect again.
type ReauthRequired struct {
	TenantID string    `json:"tenantId"`
	Network  string    `json:"network"`
	Username string    `json:"username,omitempty"`
	Message  string    `json:"message"`
	At       time.Time `json:"at"`
}
