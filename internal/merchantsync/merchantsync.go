// Package merchantsync holds the domain of merchantsync: tenants, their
// network accounts, merchant relationships, sync runs and the errors the API
// speaks. It depends on nothing outside the standard library; the packages
// around it (dynamo, secrets, queue, rakuten, httpapi, syncer) implement or
// use these types.
package merchantsync

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// NetworkRakuten is the only network merchantsync syncs today.
const NetworkRakuten = "rakuten"

// Networks lists every supported network, in display order.
var Networks = []NetworkInfo{{ID: NetworkRakuten, Name: "Rakuten Advertising"}}

// NetworkInfo describes a supported affiliate network.
type NetworkInfo struct {
	ID   string
	Name string
}

// LookupNetwork returns the network with id, or ok=false.
func LookupNetwork(id string) (NetworkInfo, bool) {
	for _, n := range Networks {
		if n.ID == id {
			return n, true
		}
	}
	return NetworkInfo{}, false
}

// Settings are a tenant's global merchantsync settings.
type Settings struct {
	TenantID string
	// Enabled is the global "sync network relationships" toggle. A tenant
	// that never saved settings is enabled: connecting credentials is an
	// explicit request to sync.
	Enabled bool
	// SyncEvery is how fresh the tenant wants its relationships: Daily
	// (the default, a full pull a day) or Hourly (an incremental pull every
	// hour besides the daily full one). Empty reads as Daily.
	SyncEvery SyncEvery
	UpdatedAt time.Time
}

// SyncEvery is a tenant's sync frequency setting.
type SyncEvery string

const (
	SyncDaily  SyncEvery = "24h"
	SyncHourly SyncEvery = "1h"
)

// Valid reports whether e is a value the API accepts.
func (e SyncEvery) Valid() bool { return e == SyncDaily || e == SyncHourly }

// Or returns e, or Daily when e is empty.
func (e SyncEvery) Or() SyncEvery {
	if e == "" {
		return SyncDaily
	}
	return e
}

// SyncMode is how much a run pulls.
type SyncMode string

const (
	// ModeFull pulls every merchant: the reconciliation that notices
	// vanished merchants (the daily schedule, Sync now).
	ModeFull SyncMode = "full"
	// ModeIncremental pulls only the partnerships whose status changed in
	// the last day (the hourly schedule); it never counts a merchant
	// missing.
	ModeIncremental SyncMode = "incremental"
)

// IncrementalRange is the recency filter of an incremental pull: a day,
// so an hourly run that failed or was skipped is caught up by the next.
const IncrementalRange = 24 * time.Hour

// ConnectionState is what the API shows for a tenant's network account.
type ConnectionState string

const (
	StateNotConfigured  ConnectionState = "not_configured"  // no IDs saved
	StateIDsSaved       ConnectionState = "ids_saved"       // IDs, no credentials
	StateConnected      ConnectionState = "connected"       // credentials stored, syncing
	StateReauthRequired ConnectionState = "reauth_required" // Rakuten refused the stored credentials
	StateError          ConnectionState = "error"           // last sync failed for another reason
	StateDisabled       ConnectionState = "disabled"        // global toggle off
)

// Account is a tenant's account with one network: the IDs they saved, whether
// credentials are connected, and the state of its sync.
type Account struct {
	TenantID    string
	Network     string
	AffiliateID string
	SiteID      string
	// Username is kept for display only ("connected as …"). Never the password.
	Username  string
	Connected bool // credentials are stored in Secrets Manager
	// ConnectionID names the current connection: every connect starts a new
	// one and every disconnect ends it. A sync remembers the id it started
	// with and every write it makes is conditional on it still being current
	// (see Fence), so a sync never changes a newer connection.
	ConnectionID string
	State        ConnectionState // stored state: ids_saved, connected, reauth_required or error
	ConnectedAt  time.Time
	UpdatedAt    time.Time

	LastRun    *Run           // summary of the last finished run
	Counts     map[Status]int // relationships by status after the last successful run
	LastSyncAt time.Time      // when the last successful run finished
	// ActiveRunID is the queued or running run a manual sync joins instead of
	// starting a second one; empty when none.
	ActiveRunID string
	// LastScheduledRunID is the last schedule run id this account has been
	// synced for, so duplicate scheduled messages are skipped.
	LastScheduledRunID string
	// LeaseRunID and LeaseUntil hold the sync lease: one sync per account at a time.
	LeaseRunID string
	LeaseUntil time.Time
	// Auth, PullMode and PullModeCheckedAt are what the network told the
	// connection's connect and syncs (PullPlan): empty until known.
	Auth              AuthMode
	PullMode          PullMode
	PullModeCheckedAt time.Time
	// IncrementalOff says why the account syncs with full pulls only
	// although its tenant asked for hourly syncs (the network refused or
	// ignored the recency filter); empty while incremental pulls work.
	IncrementalOff string
}

// Plan is what the account knows for its next pull (Known is the caller's).
func (a *Account) Plan() PullPlan {
	return PullPlan{Auth: a.Auth, Mode: a.PullMode, CheckedAt: a.PullModeCheckedAt}
}

// EffectiveState is the state the API shows, given the tenant's settings.
func (a *Account) EffectiveState(s Settings) ConnectionState {
	switch {
	case a == nil || a.AffiliateID == "":
		return StateNotConfigured
	case !a.Connected:
		return StateIDsSaved
	case !s.Enabled:
		return StateDisabled
	case a.State == "":
		return StateConnected
	}
	return a.State
}

// Due reports whether the daily schedule should sync this account.
// reauth_required accounts are not due: retrying refused credentials cannot help.
func (a *Account) Due(s Settings) bool {
	return a != nil && a.AffiliateID != "" && a.Connected && s.Enabled && a.State != StateReauthRequired
}

// DueHourly reports whether the hourly schedule should sync this account
// incrementally: due, on an hourly tenant, and incremental pulls not
// turned off for it.
func (a *Account) DueHourly(s Settings) bool {
	return a.Due(s) && s.SyncEvery == SyncHourly && a.IncrementalOff == ""
}

// Trigger says what started a run.
type Trigger string

const (
	TriggerSchedule Trigger = "schedule"
	TriggerManual   Trigger = "manual"
)

// RunState is the lifecycle of a sync run.
type RunState string

const (
	RunQueued    RunState = "queued"
	RunRunning   RunState = "running"
	RunSucceeded RunState = "succeeded"
	RunFailed    RunState = "failed"
	RunSkipped   RunState = "skipped"
)

// Finished reports whether the run has ended.
func (s RunState) Finished() bool {
	return s == RunSucceeded || s == RunFailed || s == RunSkipped
}

// Run is one sync of one tenant × network.
type Run struct {
	RunID           string
	TenantID        string
	Network         string
	Trigger         Trigger
	Mode            SyncMode // "" reads as full (runs recorded before modes)
	State           RunState
	QueuedAt        time.Time
	StartedAt       time.Time
	FinishedAt      time.Time
	MerchantsSynced int
	Counts          map[Status]int
	Changes         int
	APICalls        int
	Error           *RunError
	// JoinedRunID names the run this one joined instead of syncing twice
	// (state skipped): a manual sync that raced the scheduled one, say.
	JoinedRunID string
}

// RunError is why a run failed, safe to show to the publisher.
type RunError struct {
	Code    string
	Message string
}

// SyncRequest is the message that asks the sync worker to sync one account.
// It travels through SQS as JSON.
type SyncRequest struct {
	TenantID string  `json:"tenantId"`
	Network  string  `json:"network"`
	RunID    string  `json:"runId"`
	Trigger  Trigger `json:"trigger"`
	// ScheduleRunID is the schedule invocation's id for scheduled syncs; the
	// same schedule run never syncs an account twice.
	ScheduleRunID string `json:"scheduleRunId,omitempty"`
	// Mode is incremental for the hourly schedule's messages; empty is full.
	Mode SyncMode `json:"mode,omitempty"`
	// LastAttempt is set by the worker (never sent) when the queue will not
	// deliver this message again: an internal fault then fails the run
	// instead of leaving it running.
	LastAttempt bool `json:"-"`
}

// Connection is what connecting stores about a publisher's credentials
// outside the secret: which connection it is and what may be shown.
type Connection struct {
	ID       string
	SiteID   string
	Username string // for display only; never the password
	// What connecting learned (Connected); empty when unknown.
	Auth              AuthMode
	PullMode          PullMode
	PullModeCheckedAt time.Time
}

// Fence is what a sync's writes are conditional on: the account's
// connection is still the one the run started with, and the run still holds
// the sync lease. A write whose fence no longer holds fails with
// EConnectionChanged (a reconnect or disconnect) or EConflict (another sync
// took the lease over).
type Fence struct {
	TenantID     string
	Network      string
	ConnectionID string
	LeaseHolder  string
}

// NewConnectionID returns a new, time-sortable connection id. It is made of
// characters a Secrets Manager name accepts, because each connection's
// credentials live in a secret of their own.
func NewConnectionID(now time.Time) string { return NewRunID(now) }

// runIDTime is the sortable time prefix of run ids, so RUN# items sort by time.
const runIDTime = "20060102T150405.000Z"

// NewRunID returns a new, time-sortable run id for a manual sync.
func NewRunID(now time.Time) string {
	var b [5]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return now.UTC().Format(runIDTime) + "-" + hex.EncodeToString(b[:])
}

// ScheduledRunID returns the run id of one account's sync in one schedule
// invocation. It is deterministic, so a retried scheduler invocation or a
// duplicate SQS delivery names the same run and is recognised as such.
func ScheduledRunID(scheduleRunID string, scheduledAt time.Time, tenantID, network string) string {
	h := sha256.Sum256([]byte(scheduleRunID + "\x00" + tenantID + "\x00" + network))
	return scheduledAt.UTC().Format(runIDTime) + "-" + hex.EncodeToString(h[:5])
}

// AccountKey names one tenant's account with one network.
type AccountKey struct {
	TenantID string
	Network  string
}

// RunOutcome is what a finished run changes on its account.
type RunOutcome struct {
	// ConnectionID is the connection the run synced: the account is
	// updated only while it is still the current one.
	ConnectionID string
	// State is the account's new stored state (connected, error or
	// reauth_required); empty keeps it.
	State ConnectionState
	// Succeeded sets Counts and LastSyncAt.
	Succeeded bool
	// Counts are the relationships by status after the run; nil takes
	// the run's counts.
	Counts map[Status]int
	// ScheduleRunID, when set, becomes LastScheduledRunID.
	ScheduleRunID string
	// LeaseHolder is the holder id the run took the lease under: the
	// lease is released with the finish.
	LeaseHolder string
	// Auth, PullMode and PullModeCheckedAt are what the run's pull
	// reported (PullResult); empty ones keep the account's.
	Auth              AuthMode
	PullMode          PullMode
	PullModeCheckedAt time.Time
	// Incremental: the run pulled only recent changes, so LastSyncAt (the
	// last full pull) stays.
	Incremental bool
	// IncrementalOff, when set, turns incremental pulls off for the
	// account, with this reason (the network refused or ignored the
	// recency filter).
	IncrementalOff string
}

// WriteStats tells what a relationship write did.
type WriteStats struct {
	Calls int // store calls, retries included
	Items int // items written
}

// SendStats tells what a queue did with a stream of requests.
type SendStats struct {
	Sent    int // requests the queue accepted
	Calls   int // calls made, retries included
	Retried int // requests sent again after the queue refused them once
}

// Partnership is one relationship as a network reports it, normalized.
type Partnership struct {
	RegionNetwork   int
	AdvertiserID    int64
	Name            string
	ProgramStatus   string // the advertiser's own program status (active, inactive)
	Status          Normalized
	StatusUpdatedAt time.Time
}

// PullStats describes one pull, for run records and cost tracking.
type PullStats struct {
	Pages     int // pages handed over
	Calls     int // requests to the network, token requests and retries included
	Retries   int // requests repeated after a throttle, outage or 401
	Throttles int // throttle answers received
	Tokens    int // new access tokens obtained
	Skipped   int // rows without an advertiser id, dropped
	Lookups   int // single relationships looked up (missing from the listing)
}
