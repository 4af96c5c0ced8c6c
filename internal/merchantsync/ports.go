package merchantsync

import (
	"context"
	"time"
)

// The ports: what the sync engine (internal/syncer) and the API handlers
// (internal/httpapi) need from the world, in domain types only. One package
// per dependency implements them: internal/dynamo the stores,
// internal/secrets the CredentialStore, internal/queue the queues,
// internal/rakuten the Network. internal/app wires them.

// SettingsStore keeps a tenant's global settings.
type SettingsStore interface {
	// GetSettings returns the tenant's settings; a tenant that never
	// saved any is enabled.
	GetSettings(ctx context.Context, tenant string) (Settings, error)
	// PutSettings saves them and sets or removes the due keys of the
	// tenant's accounts to match.
	PutSettings(ctx context.Context, st Settings) error
}

// AccountStore keeps a tenant's network accounts: IDs and connection.
type AccountStore interface {
	GetAccount(ctx context.Context, tenant, network string) (*Account, error)
	SaveIDs(ctx context.Context, tenant, network, affiliateID, siteID string, now time.Time) (*Account, error)
	// MarkConnected makes c the account's connection and returns the id
	// of the one it replaced ("" if none). ENetworkIDRequired without IDs.
	MarkConnected(ctx context.Context, tenant, network string, c Connection, now time.Time) (string, error)
	// MarkDisconnected ends connection conn; EConnectionChanged when the
	// account's connection is another.
	MarkDisconnected(ctx context.Context, tenant, network, conn string, now time.Time) error
	// DeleteAccount removes the account if its connection is conn ("" =
	// none); EConnectionChanged otherwise.
	DeleteAccount(ctx context.Context, tenant, network, conn string) error
}

// DueAccounts lists the accounts the daily schedule syncs.
type DueAccounts interface {
	// EachDue calls fn with every due account, a page at a time, from
	// several goroutines at once (fn must be safe for that). It returns
	// the number of pages read.
	EachDue(ctx context.Context, fn func([]AccountKey) error) (pages int, err error)
	// EachDueHourly is EachDue for the accounts the hourly schedule syncs
	// incrementally (DueHourly), read without reading the others.
	EachDueHourly(ctx context.Context, fn func([]AccountKey) error) (pages int, err error)
}

// RunStore keeps sync runs and the account's sync lease.
type RunStore interface {
	CreateRun(ctx context.Context, run Run) error
	GetRun(ctx context.Context, tenant, network, runID string) (*Run, error)
	PutRun(ctx context.Context, run Run) error
	ListRuns(ctx context.Context, tenant, network string, limit int, cursor string) ([]Run, string, error)
	// StartManualRun starts a manual sync or returns the one in progress
	// (isNew false).
	StartManualRun(ctx context.Context, run Run, now time.Time) (started Run, isNew bool, err error)
	// AcquireLease takes the account's sync lease for holder while conn is
	// its connection; ok=false when another holder has it.
	AcquireLease(ctx context.Context, tenant, network, conn, holder string, now, until time.Time) (ok bool, err error)
	ReleaseLease(ctx context.Context, tenant, network, holder string) error
	// ClearActiveRun forgets runID as the account's active run.
	ClearActiveRun(ctx context.Context, tenant, network, runID string) error
	// FinishRun records a finished run and applies its outcome to the
	// account, only while out.ConnectionID is its connection
	// (EConnectionChanged otherwise, and nothing is written).
	FinishRun(ctx context.Context, run Run, out RunOutcome) error
}

// RelationshipStore keeps merchant relationships and their changes.
type RelationshipStore interface {
	AllRelationships(ctx context.Context, tenant, network string) ([]Relationship, error)
	// WriteRelationships stores rels and changes of the fence's account
	// while the fence holds (EConnectionChanged, or EConflict when another
	// sync took the lease). Data refused for good wraps ErrRejected.
	WriteRelationships(ctx context.Context, f Fence, rels []Relationship, changes []Change) (WriteStats, error)
	ListRelationships(ctx context.Context, tenant, network string, status Status, limit int, cursor string) ([]Relationship, string, error)
	ListChanges(ctx context.Context, tenant, network string, since time.Time, limit int, cursor string) ([]Change, string, error)
}

// Store is every store port; internal/dynamo implements it on one table.
type Store interface {
	SettingsStore
	AccountStore
	DueAccounts
	RunStore
	RelationshipStore
}

// CredentialStore keeps the credentials of each connection, a secret per
// connection (so a write for an ended connection cannot reach a new one).
type CredentialStore interface {
	// CreateCredentials stores a new connection's credentials.
	CreateCredentials(ctx context.Context, k ConnectionKey, c Credentials) error
	// GetCredentials reads them; ENotConnected when the connection ended.
	GetCredentials(ctx context.Context, k ConnectionKey) (*Credentials, error)
	// UpdateCredentials writes new tokens into an existing connection's
	// secret, never creating one; EConnectionChanged when it ended.
	UpdateCredentials(ctx context.Context, k ConnectionKey, c Credentials) error
	// DeleteCredentials deletes them at once; absent is not an error.
	DeleteCredentials(ctx context.Context, k ConnectionKey) error
}

// SyncQueue carries sync requests to the sync worker.
type SyncQueue interface {
	Send(ctx context.Context, req SyncRequest) error
	// SendAll sends every request received from reqs until it is closed,
	// in as few calls as the queue allows, and reports what it did.
	SendAll(ctx context.Context, reqs <-chan SyncRequest) (SendStats, error)
}

// Redeliverer gives a received message back to its queue, visible again
// after d.
type Redeliverer interface {
	RetryAfter(ctx context.Context, receipt string, d time.Duration) error
}

// Network is an affiliate network's API as the sync and the credentials
// function use it. Errors the network answered with are *Error values with
// a code and a message for the publisher (ENetworkAuthFailed,
// ENetworkUnavailable, EReauthRequired); EConnectionChanged when the
// connection ended during a pull; anything else is an internal fault.
type Network interface {
	// Connect verifies what the publisher typed (the password is used for
	// this one exchange) and returns the credentials to keep and what the
	// account starts with.
	Connect(ctx context.Context, l Login) (*Connected, error)
	// Pull reads every relationship of a connection, a page at a time,
	// starting from what the account knows (plan). A token it must keep
	// (a rotated refresh token) is saved into the connection's credentials
	// before it is used; a token it can mint again is not saved at all.
	Pull(ctx context.Context, k ConnectionKey, plan PullPlan, fn func([]Partnership) error) (PullResult, error)
}
