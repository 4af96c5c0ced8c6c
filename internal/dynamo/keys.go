package dynamo

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// Shards is the number of partitions of the due index: the scheduler reads
// SYNC#0 … SYNC#<Shards-1> in parallel.
const Shards = 16

// Retention of history items (DynamoDB TTL on AttrTTL).
const (
	RunTTL    = 90 * 24 * time.Hour
	ChangeTTL = 365 * 24 * time.Hour
)

// Page sizes of the list methods.
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

const skSettings = "SETTINGS"

// ShardOf is the due-index shard of a tenant: fnv32a(tenant) % Shards.
func ShardOf(tenant string) int {
	h := fnv.New32a()
	h.Write([]byte(tenant))
	return int(h.Sum32() % Shards)
}

func pkTenant(tenant string) string   { return "TENANT#" + tenant }
func skAccount(network string) string { return "NETWORK#" + network }
func duePK(shard int) string          { return fmt.Sprintf("SYNC#%d", shard) }

// dueSK is an account's due sort key. Hourly accounts' start with
// hourlyDuePrefix, so the hourly schedule reads only them (begins_with on
// the sort key) and the daily one reads the whole partition.
func dueSK(tenant, network string, hourly bool) string {
	sk := "TENANT#" + tenant + "#NETWORK#" + network
	if hourly {
		return hourlyDuePrefix + sk
	}
	return sk
}

const hourlyDuePrefix = "H#"

func relPrefix(network string) string    { return "REL#" + network + "#" }
func runPrefix(network string) string    { return "RUN#" + network + "#" }
func changePrefix(network string) string { return "CHANGE#" + network + "#" }

// relStatusKey is a relationship's IndexStatus partition key.
func relStatusKey(tenant, network string, status merchantsync.Status) string {
	return pkTenant(tenant) + "#" + relPrefix(network) + string(status)
}

// Numeric key parts are zero-padded so that keys sort numerically.
func relKey(network string, region int, mid int64) string {
	return fmt.Sprintf("%s%05d#%019d", relPrefix(network), region, mid)
}

func runSK(network, runID string) string { return runPrefix(network) + runID }

// keyTime is a fixed-width UTC RFC 3339 time with nanoseconds: unlike
// time.RFC3339Nano it keeps trailing zeros, so keys sort by time.
const keyTime = "2006-01-02T15:04:05.000000000Z"

func changeSK(network string, at time.Time, region int, mid int64) string {
	return fmt.Sprintf("%s%s#%05d#%019d", changePrefix(network), at.UTC().Format(keyTime), region, mid)
}

// validateTenant guards every key: the store never builds a key for an empty
// tenant or network, and only for networks merchantsync knows (their names
// contain no '#', so a begins_with on one network never matches another).
func validateKey(tenant, network string) error {
	if tenant == "" {
		return merchantsync.FieldError(merchantsync.EInvalid, "tenant", "tenant is required")
	}
	if _, ok := merchantsync.LookupNetwork(network); !ok {
		return merchantsync.FieldError(merchantsync.EInvalid, "network", fmt.Sprintf("unknown network %q", network))
	}
	return nil
}

func validateTenant(tenant string) error {
	if tenant == "" {
		return merchantsync.FieldError(merchantsync.EInvalid, "tenant", "tenant is required")
	}
	return nil
}

// cursor is the opaque page token: only the last sort key. The partition key
// always comes from the caller's tenant, so a cursor can never reach another
// tenant's items.
type cursor struct {
	SK string `json:"k"`
}

func encodeCursor(sk string) string {
	if sk == "" {
		return ""
	}
	b, _ := json.Marshal(cursor{SK: sk})
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor returns the SK in c; it must start with prefix and, when
// after (before) is not empty, sort strictly after (not after) it: the
// query's own bounds. DynamoDB refuses an ExclusiveStartKey outside the key
// condition, so a cursor outside them is the caller's mistake (400), never a
// failed query (500).
func decodeCursor(c, prefix, after, before string) (string, error) {
	if c == "" {
		return "", nil
	}
	bad := merchantsync.FieldError(merchantsync.EInvalid, "cursor", "cursor is not valid for this list; start again without it")
	if len(c) > 2048 {
		return "", bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(c, "="))
	if err != nil {
		return "", bad
	}
	var cur cursor
	if err := json.Unmarshal(raw, &cur); err != nil || !strings.HasPrefix(cur.SK, prefix) || len(cur.SK) == len(prefix) {
		return "", bad
	}
	if after != "" && cur.SK <= after || before != "" && cur.SK > before {
		return "", bad
	}
	return cur.SK, nil
}

func checkLimit(limit int) (int, error) {
	switch {
	case limit == 0:
		return DefaultLimit, nil
	case limit < 0 || limit > MaxLimit:
		return 0, merchantsync.FieldError(merchantsync.EInvalid, "limit", fmt.Sprintf("limit must be between 1 and %d", MaxLimit))
	}
	return limit, nil
}
