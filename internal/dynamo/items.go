package dynamo

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// The stored shapes. They are explicit structs, not the domain types, so a
// field added to the domain never reaches the table by accident, and none of
// them has a field for a secret (client secret, token key, tokens, password).

const (
	kindSettings = "settings"
	kindAccount  = "account"
	kindRel      = "relationship"
	kindRun      = "run"
	kindChange   = "change"
)

type settingsItem struct {
	PK        string `dynamodbav:"PK"`
	SK        string `dynamodbav:"SK"`
	Kind      string `dynamodbav:"kind"`
	TenantID  string `dynamodbav:"tenantId"`
	Enabled   bool   `dynamodbav:"enabled"`
	SyncEvery string `dynamodbav:"syncEvery,omitempty"` // absent: daily (saved before the setting existed)
	UpdatedAt string `dynamodbav:"updatedAt,omitempty"`
}

// accountItem is TENANT#<t>/NETWORK#<n>. connected, state and affiliateId are
// always present: the conditions that keep the due keys right compare them.
type accountItem struct {
	PK                 string         `dynamodbav:"PK"`
	SK                 string         `dynamodbav:"SK"`
	Kind               string         `dynamodbav:"kind"`
	TenantID           string         `dynamodbav:"tenantId"`
	Network            string         `dynamodbav:"network"`
	AffiliateID        string         `dynamodbav:"affiliateId"`
	SiteID             string         `dynamodbav:"siteId,omitempty"`
	Username           string         `dynamodbav:"username,omitempty"`
	Connected          bool           `dynamodbav:"connected"`
	ConnectionID       string         `dynamodbav:"connectionId,omitempty"`
	State              string         `dynamodbav:"state"`
	ConnectedAt        string         `dynamodbav:"connectedAt,omitempty"`
	UpdatedAt          string         `dynamodbav:"updatedAt,omitempty"`
	LastRun            *runSummary    `dynamodbav:"lastRun,omitempty"`
	Counts             map[string]int `dynamodbav:"counts,omitempty"`
	LastSyncAt         string         `dynamodbav:"lastSyncAt,omitempty"`
	ActiveRunID        string         `dynamodbav:"activeRunId,omitempty"`
	LastScheduledRunID string         `dynamodbav:"lastScheduledRunId,omitempty"`
	LeaseRunID         string         `dynamodbav:"leaseRunId,omitempty"`
	LeaseUntil         int64          `dynamodbav:"leaseUntil,omitempty"` // epoch milliseconds
	DuePK              string         `dynamodbav:"duePK,omitempty"`
	DueSK              string         `dynamodbav:"dueSK,omitempty"`
	// What the network reported about the connection (networkFacts).
	Auth              string `dynamodbav:"auth,omitempty"`
	PullMode          string `dynamodbav:"pullMode,omitempty"`
	PullModeCheckedAt string `dynamodbav:"pullModeCheckedAt,omitempty"`
	// Why incremental pulls are off for the connection (absent: they are not).
	IncrementalOff string `dynamodbav:"incrementalOff,omitempty"`
}

// runSummary is a run as stored inside the run item and as the account's lastRun.
type runSummary struct {
	RunID           string         `dynamodbav:"runId"`
	TenantID        string         `dynamodbav:"tenantId"`
	Network         string         `dynamodbav:"network"`
	Trigger         string         `dynamodbav:"trigger,omitempty"`
	Mode            string         `dynamodbav:"mode,omitempty"`
	State           string         `dynamodbav:"state"`
	QueuedAt        string         `dynamodbav:"queuedAt,omitempty"`
	StartedAt       string         `dynamodbav:"startedAt,omitempty"`
	FinishedAt      string         `dynamodbav:"finishedAt,omitempty"`
	MerchantsSynced int            `dynamodbav:"merchantsSynced"`
	Counts          map[string]int `dynamodbav:"counts,omitempty"`
	Changes         int            `dynamodbav:"changes"`
	APICalls        int            `dynamodbav:"apiCalls"`
	JoinedRunID     string         `dynamodbav:"joinedRunId,omitempty"`
	ErrorCode       string         `dynamodbav:"errorCode,omitempty"`
	ErrorMessage    string         `dynamodbav:"errorMessage,omitempty"`
}

type runItem struct {
	PK   string `dynamodbav:"PK"`
	SK   string `dynamodbav:"SK"`
	Kind string `dynamodbav:"kind"`
	runSummary
	ExpiresAt int64 `dynamodbav:"expiresAt"`
}

type relItem struct {
	PK              string `dynamodbav:"PK"`
	SK              string `dynamodbav:"SK"`
	Kind            string `dynamodbav:"kind"`
	TenantID        string `dynamodbav:"tenantId"`
	Network         string `dynamodbav:"network"`
	RegionNetwork   int    `dynamodbav:"regionNetwork"`
	AdvertiserID    int64  `dynamodbav:"advertiserId"`
	Name            string `dynamodbav:"name,omitempty"`
	Status          string `dynamodbav:"status"`
	RawStatus       string `dynamodbav:"rawStatus,omitempty"`
	Permanent       bool   `dynamodbav:"permanent"`
	ProgramStatus   string `dynamodbav:"programStatus,omitempty"`
	StatusChangedAt string `dynamodbav:"statusChangedAt,omitempty"`
	FirstSeenAt     string `dynamodbav:"firstSeenAt,omitempty"`
	LastSeenAt      string `dynamodbav:"lastSeenAt,omitempty"`
	MissedPulls     int    `dynamodbav:"missedPulls"`
	MissRunID       string `dynamodbav:"missRunId,omitempty"`
	StatusKey       string `dynamodbav:"relStatus"` // IndexStatus partition key
}

type changeItem struct {
	PK            string `dynamodbav:"PK"`
	SK            string `dynamodbav:"SK"`
	Kind          string `dynamodbav:"kind"`
	TenantID      string `dynamodbav:"tenantId"`
	Network       string `dynamodbav:"network"`
	RegionNetwork int    `dynamodbav:"regionNetwork"`
	AdvertiserID  int64  `dynamodbav:"advertiserId"`
	Name          string `dynamodbav:"name,omitempty"`
	From          string `dynamodbav:"from,omitempty"`
	To            string `dynamodbav:"to"`
	RawFrom       string `dynamodbav:"rawFrom,omitempty"`
	RawTo         string `dynamodbav:"rawTo,omitempty"`
	Permanent     bool   `dynamodbav:"permanent,omitempty"`
	At            string `dynamodbav:"at"`
	RunID         string `dynamodbav:"runId,omitempty"`
	ExpiresAt     int64  `dynamodbav:"expiresAt"`
}

// Times are stored as RFC 3339 UTC strings; the zero time is not stored.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

func fromCounts(c map[merchantsync.Status]int) map[string]int {
	if len(c) == 0 {
		return nil
	}
	m := make(map[string]int, len(c))
	for k, v := range c {
		m[string(k)] = v
	}
	return m
}

func toCounts(c map[string]int) map[merchantsync.Status]int {
	if len(c) == 0 {
		return nil
	}
	m := make(map[merchantsync.Status]int, len(c))
	for k, v := range c {
		m[merchantsync.Status(k)] = v
	}
	return m
}

func (it *settingsItem) domain() merchantsync.Settings {
	return merchantsync.Settings{TenantID: it.TenantID, Enabled: it.Enabled,
		SyncEvery: merchantsync.SyncEvery(it.SyncEvery).Or(), UpdatedAt: parseTime(it.UpdatedAt)}
}

func (it *accountItem) domain() *merchantsync.Account {
	a := &merchantsync.Account{
		TenantID:           it.TenantID,
		Network:            it.Network,
		AffiliateID:        it.AffiliateID,
		SiteID:             it.SiteID,
		Username:           it.Username,
		Connected:          it.Connected,
		ConnectionID:       it.ConnectionID,
		State:              merchantsync.ConnectionState(it.State),
		ConnectedAt:        parseTime(it.ConnectedAt),
		UpdatedAt:          parseTime(it.UpdatedAt),
		Counts:             toCounts(it.Counts),
		LastSyncAt:         parseTime(it.LastSyncAt),
		ActiveRunID:        it.ActiveRunID,
		LastScheduledRunID: it.LastScheduledRunID,
		LeaseRunID:         it.LeaseRunID,
		Auth:               merchantsync.AuthMode(it.Auth),
		PullMode:           merchantsync.PullMode(it.PullMode),
		PullModeCheckedAt:  parseTime(it.PullModeCheckedAt),
		IncrementalOff:     it.IncrementalOff,
	}
	if it.LeaseUntil != 0 {
		a.LeaseUntil = time.UnixMilli(it.LeaseUntil).UTC()
	}
	if it.LastRun != nil {
		r := it.LastRun.domain()
		a.LastRun = &r
	}
	return a
}

func newRunSummary(r merchantsync.Run) runSummary {
	s := runSummary{
		RunID:           r.RunID,
		TenantID:        r.TenantID,
		Network:         r.Network,
		Trigger:         string(r.Trigger),
		Mode:            string(r.Mode),
		State:           string(r.State),
		QueuedAt:        fmtTime(r.QueuedAt),
		StartedAt:       fmtTime(r.StartedAt),
		FinishedAt:      fmtTime(r.FinishedAt),
		MerchantsSynced: r.MerchantsSynced,
		Counts:          fromCounts(r.Counts),
		Changes:         r.Changes,
		APICalls:        r.APICalls,
		JoinedRunID:     r.JoinedRunID,
	}
	if r.Error != nil {
		s.ErrorCode, s.ErrorMessage = r.Error.Code, r.Error.Message
	}
	return s
}

func (s *runSummary) domain() merchantsync.Run {
	r := merchantsync.Run{
		RunID:           s.RunID,
		TenantID:        s.TenantID,
		Network:         s.Network,
		Trigger:         merchantsync.Trigger(s.Trigger),
		Mode:            merchantsync.SyncMode(s.Mode),
		State:           merchantsync.RunState(s.State),
		QueuedAt:        parseTime(s.QueuedAt),
		StartedAt:       parseTime(s.StartedAt),
		FinishedAt:      parseTime(s.FinishedAt),
		MerchantsSynced: s.MerchantsSynced,
		Counts:          toCounts(s.Counts),
		Changes:         s.Changes,
		APICalls:        s.APICalls,
		JoinedRunID:     s.JoinedRunID,
	}
	if s.ErrorCode != "" || s.ErrorMessage != "" {
		r.Error = &merchantsync.RunError{Code: s.ErrorCode, Message: s.ErrorMessage}
	}
	return r
}

func newRunItem(r merchantsync.Run) runItem {
	base := r.QueuedAt
	for _, t := range []time.Time{r.StartedAt, r.FinishedAt} {
		if base.IsZero() {
			base = t
		}
	}
	if base.IsZero() {
		base = time.Now()
	}
	return runItem{
		PK:         pkTenant(r.TenantID),
		SK:         runSK(r.Network, r.RunID),
		Kind:       kindRun,
		runSummary: newRunSummary(r),
		ExpiresAt:  base.Add(RunTTL).Unix(),
	}
}

func newRelItem(r merchantsync.Relationship) relItem {
	return relItem{
		PK:              pkTenant(r.TenantID),
		SK:              relKey(r.Network, r.RegionNetwork, r.AdvertiserID),
		Kind:            kindRel,
		TenantID:        r.TenantID,
		Network:         r.Network,
		RegionNetwork:   r.RegionNetwork,
		AdvertiserID:    r.AdvertiserID,
		Name:            r.Name,
		Status:          string(r.Status),
		RawStatus:       r.RawStatus,
		Permanent:       r.Permanent,
		ProgramStatus:   r.ProgramStatus,
		StatusChangedAt: fmtTime(r.StatusChangedAt),
		FirstSeenAt:     fmtTime(r.FirstSeenAt),
		LastSeenAt:      fmtTime(r.LastSeenAt),
		MissedPulls:     r.MissedPulls,
		MissRunID:       r.MissRunID,
		StatusKey:       relStatusKey(r.TenantID, r.Network, r.Status),
	}
}

func newChangeItem(c merchantsync.Change) changeItem {
	return changeItem{
		PK:            pkTenant(c.TenantID),
		SK:            changeSK(c.Network, c.At, c.RegionNetwork, c.AdvertiserID),
		Kind:          kindChange,
		TenantID:      c.TenantID,
		Network:       c.Network,
		RegionNetwork: c.RegionNetwork,
		AdvertiserID:  c.AdvertiserID,
		Name:          c.Name,
		From:          string(c.From),
		To:            string(c.To),
		RawFrom:       c.RawFrom,
		RawTo:         c.RawTo,
		Permanent:     c.Permanent,
		At:            fmtTime(c.At),
		RunID:         c.RunID,
		ExpiresAt:     c.At.Add(ChangeTTL).Unix(),
	}
}

func (it *changeItem) domain() merchantsync.Change {
	return merchantsync.Change{
		TenantID:      it.TenantID,
		Network:       it.Network,
		RegionNetwork: it.RegionNetwork,
		AdvertiserID:  it.AdvertiserID,
		Name:          it.Name,
		From:          merchantsync.Status(it.From),
		To:            merchantsync.Status(it.To),
		RawFrom:       it.RawFrom,
		RawTo:         it.RawTo,
		Permanent:     it.Permanent,
		At:            parseTime(it.At),
		RunID:         it.RunID,
	}
}

// itemSize is an upper bound of an item's size as DynamoDB counts it
// against MaxItemBytes: attribute names plus values (numbers count at most
// 21 bytes, maps and lists 3 bytes plus their elements).
func itemSize(item map[string]types.AttributeValue) int {
	n := 0
	for k, v := range item {
		n += len(k) + avSize(v)
	}
	return n
}

func avSize(v types.AttributeValue) int {
	switch x := v.(type) {
	case *types.AttributeValueMemberS:
		return len(x.Value)
	case *types.AttributeValueMemberN:
		return 21
	case *types.AttributeValueMemberB:
		return len(x.Value)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberM:
		return 3 + itemSize(x.Value)
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range x.Value {
			n += 1 + avSize(e)
		}
		return n
	case *types.AttributeValueMemberSS:
		n := 0
		for _, s := range x.Value {
			n += len(s)
		}
		return n
	}
	return 0
}
