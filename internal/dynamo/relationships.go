package dynamo

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/merchantsync/merchantsync/internal/backoff"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// TxItems is how many items WriteRelationships puts per transaction:
// DynamoDB's limit of 100 actions, less the fence's condition check.
const TxItems = 99

// MaxItemBytes is DynamoDB's item size limit.
const MaxItemBytes = 400 * 1024

// Backoff of WriteRelationships between retries of a conflicting transaction.
const (
	conflictBaseDelay = 50 * time.Millisecond
	conflictMaxDelay  = 5 * time.Second
)

// keyRange bounds a Query on one tenant's partition: begins_with(SK, prefix)
// or, when lower is set, SK BETWEEN lower AND upper.
type keyRange struct {
	prefix       string
	lower, upper string
}

// queryPage reads up to limit items of tenant's partition whose SK starts
// with prefix (or lies in kr), newest first for runs and changes, ascending
// for relationships, after the cursor SK start. opts adjust the query (order,
// an index whose range key is SK). next is the SK cursor of the last
// returned item when more may follow.
func (s *Store) queryPage(ctx context.Context, op, tenant, prefix, start string, limit int, kr *keyRange, opts ...func(*dynamodb.QueryInput)) ([]map[string]types.AttributeValue, string, error) {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		ExpressionAttributeNames:  map[string]string{"#pk": AttrPK, "#sk": AttrSK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": avS(pkTenant(tenant))},
		ScanIndexForward:          aws.Bool(false),
	}
	if kr != nil && kr.lower != "" {
		in.KeyConditionExpression = aws.String("#pk = :pk AND #sk BETWEEN :lo AND :hi")
		in.ExpressionAttributeValues[":lo"] = avS(kr.lower)
		in.ExpressionAttributeValues[":hi"] = avS(kr.upper)
	} else {
		in.KeyConditionExpression = aws.String("#pk = :pk AND begins_with(#sk, :prefix)")
		in.ExpressionAttributeValues[":prefix"] = avS(prefix)
	}
	if start != "" {
		in.ExclusiveStartKey = keyOf(pkTenant(tenant), start)
	}
	for _, o := range opts {
		o(in)
	}
	need := limit + 1 // one more tells whether a next page exists
	var items []map[string]types.AttributeValue
	for {
		in.Limit = aws.Int32(int32(need - len(items)))
		res, err := s.client.Query(ctx, in)
		if err != nil {
			return nil, "", wrap(op, err)
		}
		items = append(items, res.Items...)
		if len(items) >= need || len(res.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = res.LastEvaluatedKey
	}
	if len(items) > limit {
		items = items[:limit]
		return items, encodeCursor(skOf(items[limit-1])), nil
	}
	return items, "", nil
}

func ascending(in *dynamodb.QueryInput) { in.ScanIndexForward = aws.Bool(true) }

// AllRelationships returns every stored relationship of the account, in key
// order (region, advertiser id).
func (s *Store) AllRelationships(ctx context.Context, tenant, network string) ([]merchantsync.Relationship, error) {
	if err := validateKey(tenant, network); err != nil {
		return nil, err
	}
	proj, names := relProjection()
	names["#pk"], names["#sk"] = AttrPK, AttrSK
	in := &dynamodb.QueryInput{
		TableName:                aws.String(s.table),
		KeyConditionExpression:   aws.String("#pk = :pk AND begins_with(#sk, :prefix)"),
		ExpressionAttributeNames: names,
		ProjectionExpression:     aws.String(proj),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": avS(pkTenant(tenant)), ":prefix": avS(relPrefix(network)),
		},
		ConsistentRead: aws.Bool(true),
	}
	var out []merchantsync.Relationship
	p := dynamodb.NewQueryPaginator(s.client, in)
	for p.HasMorePages() {
		res, err := p.NextPage(ctx)
		if err != nil {
			return nil, wrap("all relationships", err)
		}
		for _, item := range res.Items {
			r, err := relFromItem(tenant, network, item)
			if err != nil {
				return nil, wrap("all relationships", err)
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// ListRelationships returns one page of the account's relationships in key
// order, only those with status when status is not empty.
func (s *Store) ListRelationships(ctx context.Context, tenant, network string, status merchantsync.Status, limit int, cursor string) ([]merchantsync.Relationship, string, error) {
	if err := validateKey(tenant, network); err != nil {
		return nil, "", err
	}
	if status != "" {
		if _, ok := merchantsync.ParseStatus(string(status)); !ok {
			return nil, "", merchantsync.FieldError(merchantsync.EInvalid, "status", fmt.Sprintf("unknown status %q", status))
		}
	}
	limit, err := checkLimit(limit)
	if err != nil {
		return nil, "", err
	}
	prefix := relPrefix(network)
	start, err := decodeCursor(cursor, prefix, "", "")
	if err != nil {
		return nil, "", err
	}
	opts := []func(*dynamodb.QueryInput){ascending}
	if status != "" {
		// One status: read IndexStatus (same order, same cursor) instead of
		// filtering the whole account. Its reads are eventually consistent:
		// a status changed a moment ago may show under the old one briefly.
		key := relStatusKey(tenant, network, status)
		opts = append(opts, func(in *dynamodb.QueryInput) {
			in.IndexName = aws.String(IndexStatus)
			in.KeyConditionExpression = aws.String("#gpk = :gpk AND begins_with(#sk, :prefix)")
			delete(in.ExpressionAttributeNames, "#pk")
			delete(in.ExpressionAttributeValues, ":pk")
			in.ExpressionAttributeNames["#gpk"] = AttrStatusKey
			in.ExpressionAttributeValues[":gpk"] = avS(key)
			if in.ExclusiveStartKey != nil {
				in.ExclusiveStartKey[AttrStatusKey] = avS(key)
			}
		})
	}
	items, next, err := s.queryPage(ctx, "list relationships", tenant, prefix, start, limit, nil, opts...)
	if err != nil {
		return nil, "", err
	}
	out := make([]merchantsync.Relationship, 0, len(items))
	for _, item := range items {
		r, err := relFromItem(tenant, network, item)
		if err != nil {
			return nil, "", wrap("list relationships", err)
		}
		out = append(out, r)
	}
	return out, next, nil
}

// ListChanges returns one page of the account's status changes, newest
// first, only those after since (the zero time: all).
func (s *Store) ListChanges(ctx context.Context, tenant, network string, since time.Time, limit int, cursor string) ([]merchantsync.Change, string, error) {
	if err := validateKey(tenant, network); err != nil {
		return nil, "", err
	}
	limit, err := checkLimit(limit)
	if err != nil {
		return nil, "", err
	}
	prefix := changePrefix(network)
	var kr *keyRange
	if !since.IsZero() {
		// '~' sorts after the digits that follow the time, so the bound
		// excludes changes at exactly since.
		kr = &keyRange{lower: prefix + since.UTC().Format(keyTime) + "#~", upper: prefix + "~"}
	}
	after, before := "", ""
	if kr != nil {
		after, before = kr.lower, kr.upper
	}
	start, err := decodeCursor(cursor, prefix, after, before)
	if err != nil {
		return nil, "", err
	}
	items, next, err := s.queryPage(ctx, "list changes", tenant, prefix, start, limit, kr)
	if err != nil {
		return nil, "", err
	}
	out := make([]merchantsync.Change, 0, len(items))
	for _, item := range items {
		var it changeItem
		if err := attributevalue.UnmarshalMap(item, &it); err != nil {
			return nil, "", wrap("list changes", err)
		}
		out = append(out, it.domain())
	}
	return out, next, nil
}

// WriteRelationships stores rels and changes (all of the fence's account)
// in transactions of up to TxItems puts, each with a condition check that
// the fence still holds: the account's connection is still the run's and
// the run still holds the lease. So a sync overtaken by a reconnect, a
// disconnect or another sync writes nothing more: the failed chunk is
// merchantsync.EConnectionChanged or merchantsync.EConflict (lease lost).
// (BatchWriteItem cannot carry a condition.)
//
// Items with the same key are written once (the last wins). Change events
// go first, in transactions of their own: if a later chunk fails, the
// redelivered run diffs the relationships it did not write again and
// rewrites the same change items (same keys), so no change is lost and none
// is doubled. Writes are idempotent puts, so retrying the whole call is
// safe. A transaction that conflicts with another is retried with backoff
// until ctx ends; throttling that outlasts the SDK's retries →
// merchantsync.EThrottled; an item DynamoDB refuses for good (too large) →
// an error wrapping merchantsync.ErrRejected. The stats say how far it got.
func (s *Store) WriteRelationships(ctx context.Context, f merchantsync.Fence, rels []merchantsync.Relationship, changes []merchantsync.Change) (merchantsync.WriteStats, error) {
	var stats merchantsync.WriteStats
	if err := validateKey(f.TenantID, f.Network); err != nil {
		return stats, err
	}
	if f.ConnectionID == "" || f.LeaseHolder == "" {
		return stats, merchantsync.FieldError(merchantsync.EInvalid, "fence", "relationship writes need the run's connection and lease")
	}
	mine := func(t, network string) error {
		if t != f.TenantID || network != f.Network {
			return merchantsync.FieldError(merchantsync.EInvalid, "tenant", "one WriteRelationships call writes one account's items")
		}
		return nil
	}
	var puts []types.TransactWriteItem
	seen := map[string]int{}
	add := func(sk string, v any) error {
		item, err := attributevalue.MarshalMap(v)
		if err != nil {
			return wrap("write relationships", err)
		}
		if n := itemSize(item); n > MaxItemBytes {
			return fmt.Errorf("dynamo: write relationships: %w: item %s is %d bytes", merchantsync.ErrRejected, sk, n)
		}
		put := types.TransactWriteItem{Put: &types.Put{TableName: aws.String(s.table), Item: item}}
		if i, ok := seen[sk]; ok {
			puts[i] = put
			return nil
		}
		seen[sk] = len(puts)
		puts = append(puts, put)
		return nil
	}
	for _, c := range changes {
		if err := mine(c.TenantID, c.Network); err != nil {
			return stats, err
		}
		if c.AdvertiserID <= 0 || c.RegionNetwork < 0 || c.At.IsZero() {
			return stats, merchantsync.FieldError(merchantsync.EInvalid, "change", "change needs a positive advertiser id, a region and a time")
		}
		it := newChangeItem(c)
		if err := add(it.SK, it); err != nil {
			return stats, err
		}
	}
	nChanges := len(puts)
	for _, r := range rels {
		if err := mine(r.TenantID, r.Network); err != nil {
			return stats, err
		}
		if r.AdvertiserID <= 0 || r.RegionNetwork < 0 {
			return stats, merchantsync.FieldError(merchantsync.EInvalid, "advertiserId", "relationship needs a positive advertiser id and a region")
		}
		it := newRelItem(r)
		if err := add(it.SK, it); err != nil {
			return stats, err
		}
	}
	check := s.fenceCheck(f)
	for len(puts) > 0 {
		n := min(TxItems, len(puts))
		if nChanges > 0 {
			n = min(n, nChanges)
			nChanges -= n
		}
		chunk := append(puts[:n:n], check)
		puts = puts[n:]
		for attempt := 0; ; attempt++ {
			if attempt > 0 {
				if err := backoff.Sleep(ctx, backoff.Jitter(attempt, conflictBaseDelay, conflictMaxDelay)); err != nil {
					return stats, wrap("write relationships", err)
				}
			}
			stats.Calls++
			_, err := s.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: chunk})
			if err == nil {
				stats.Items += n
				break
			}
			reasons := cancelReasons(err)
			if len(reasons) == len(chunk) && reasons[len(chunk)-1] == "ConditionalCheckFailed" {
				return stats, s.fenceBroken(ctx, f)
			}
			if !slices.Contains(reasons, "TransactionConflict") {
				return stats, wrap("write relationships", err)
			}
		}
	}
	return stats, nil
}

// fenceCheck is the condition check every relationship transaction carries.
func (s *Store) fenceCheck(f merchantsync.Fence) types.TransactWriteItem {
	e := newExpr()
	condConnection(e, f.ConnectionID)
	e.cond("%s = %s", e.n("leaseRunId"), e.v(avS(f.LeaseHolder)))
	return types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
		TableName:                 aws.String(s.table),
		Key:                       keyOf(pkTenant(f.TenantID), skAccount(f.Network)),
		ConditionExpression:       e.condition(),
		ExpressionAttributeNames:  e.nameMap(),
		ExpressionAttributeValues: e.valueMap(),
	}}
}

// fenceBroken says why a fence no longer holds: the connection changed, or
// the lease went to another sync of the same connection.
func (s *Store) fenceBroken(ctx context.Context, f merchantsync.Fence) error {
	a, err := s.GetAccount(ctx, f.TenantID, f.Network)
	if err != nil {
		return err
	}
	if a == nil || a.ConnectionID != f.ConnectionID {
		return errConnectionChanged(f.Network)
	}
	return merchantsync.Errorf(merchantsync.EConflict, "another sync of this account holds its lease")
}
