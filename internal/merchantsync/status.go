package merchantsync

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Status is a normalized relationship status.
type Status string

const (
	StatusJoined   Status = "joined"
	StatusPending  Status = "pending"
	StatusDeclined Status = "declined"
	StatusRemoved  Status = "removed"
	StatusLeft     Status = "left"
	StatusUnknown  Status = "unknown"
)

// Statuses lists every normalized status in display order.
var Statuses = []Status{StatusJoined, StatusPending, StatusDeclined, StatusRemoved, StatusLeft, StatusUnknown}

// ParseStatus returns the status named s, or ok=false.
func ParseStatus(s string) (Status, bool) {
	for _, st := range Statuses {
		if string(st) == s {
			return st, true
		}
	}
	return "", false
}

// Normalized is a network's raw status mapped onto merchantsync's statuses.
type Normalized struct {
	Status    Status
	Permanent bool   // a permanent decline or removal
	Extended  bool   // Rakuten's "approval extended"
	Raw       string // exactly what the network said
}

// NormalizeRakuten maps a Rakuten partnership status (Partnerships API) or
// application status (Link Locator) onto a normalized status. Spelling in
// responses is unconfirmed, so it compares case-insensitively and treats
// '_' and ' ' like '-'. Anything unrecognised is unknown, never joined.
func NormalizeRakuten(raw string) Normalized {
	k := asciiLowerDashes(strings.TrimSpace(raw))
	n := Normalized{Raw: raw, Status: StatusUnknown}
	switch k {
	case "active", "approved":
		n.Status = StatusJoined
	case "extended", "approval-extended":
		n.Status, n.Extended = StatusJoined, true
	case "pending", "wait":
		n.Status = StatusPending
	case "temp-decline", "temp-rejected":
		n.Status = StatusDeclined
	case "permanent-decline", "perm-rejected":
		n.Status, n.Permanent = StatusDeclined, true
	case "temp-remove", "temp-removed":
		n.Status = StatusRemoved
	case "permanent-remove", "perm-removed":
		n.Status, n.Permanent = StatusRemoved, true
	case "self-removed":
		n.Status = StatusLeft
	}
	return n
}

// asciiLowerDashes lower-cases ASCII letters only and turns '_' and ' ' into
// '-'. Rakuten's spellings are ASCII: strings.ToLower would also fold
// look-alikes such as U+0130 (İ) into 'i' and so read "ACTİVE" as joined.
func asciiLowerDashes(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case 'A' <= c && c <= 'Z':
			b[i] = c + ('a' - 'A')
		case c == '_' || c == ' ':
			b[i] = '-'
		}
	}
	return string(b)
}

// Relationship is a tenant's relationship with one merchant on one network.
type Relationship struct {
	TenantID string
	Network  string // merchantsync network, e.g. "rakuten"
	// RegionNetwork is the network's own regional id (Rakuten: US 1, UK 3, …).
	// One account can hold partnerships in several regions, so relationships
	// are keyed by (RegionNetwork, AdvertiserID).
	RegionNetwork   int
	AdvertiserID    int64
	Name            string
	Status          Status
	RawStatus       string
	Permanent       bool
	ProgramStatus   string // the advertiser's own program status (active/inactive)
	StatusChangedAt time.Time
	FirstSeenAt     time.Time
	LastSeenAt      time.Time
	// MissedPulls counts consecutive successful pulls that did not list this
	// merchant. It becomes removed only after MissesBeforeRemoved.
	MissedPulls int
	// MissRunID is the run that last counted a miss, so a run resumed after
	// a partial write (SQS redelivery) never counts the same miss twice.
	MissRunID string
}

// MissesBeforeRemoved is how many consecutive successful pulls must miss a
// merchant before merchantsync calls the relationship removed.
const MissesBeforeRemoved = 3

// Change is one status transition of one relationship.
type Change struct {
	TenantID      string
	Network       string
	RegionNetwork int
	AdvertiserID  int64
	Name          string
	From          Status // empty for a merchant seen for the first time
	To            Status
	RawFrom       string
	RawTo         string
	Permanent     bool // the relationship's permanent flag after the change
	At            time.Time
	RunID         string
}

// Bounds on text a network sends, in bytes. Whatever a network sends, a
// relationship item must stay far below DynamoDB's 400 KB item limit; real
// merchant names are a few dozen bytes and statuses a word.
const (
	MaxNameBytes   = 1024
	MaxStatusBytes = 64
)

// Clip returns s cut to at most max bytes on a rune boundary, ending in "…"
// when it was cut, so a clipped name still reads as one.
func Clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const ellipsis = "…"
	cut := max - len(ellipsis)
	if cut <= 0 {
		return s[:0]
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
