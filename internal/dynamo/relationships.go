package dynamo

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/merchantsync/merchantsync/internal/backoff"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// BatchSize is DynamoDB's BatchWriteItem limit.
const BatchSize = 25

// Backoff of WriteRelationships between retries of UnprocessedItems.
const (
	unprocessedBaseDelay = 50 * time.Millisecond
	unprocessedMaxDelay  = 5 * time.Second
)

// WriteStats tells what WriteRelationships did.
type WriteStats struct {
	BatchCalls int // BatchWriteItem calls, retries of unprocessed items included
	Items      int // items written
}

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
	start, err := decodeCursor(cursor, prefix, "")
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
	after := ""
	if kr != nil {
		after = kr.lower
	}
	start, err := decodeCursor(cursor, prefix, after)
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

// WriteRelationships stores rels and changes (all of one tenant) with
// BatchWriteItem in chunks of BatchSize, retrying UnprocessedItems with
// exponential backoff and full jitter until ctx ends. Items with the same key
// are written once (the last wins). Throttling that outlasts the SDK's
// retries → merchantsync.EThrottled; the stats say how far it got. Writes
// are idempotent puts, so retrying the whole call is safe.
func (s *Store) WriteRelationships(ctx context.Context, rels []merchantsync.Relationship, changes []merchantsync.Change) (WriteStats, error) {
	var stats WriteStats
	tenant := ""
	sameTenant := func(t, network string) error {
		if err := validateKey(t, network); err != nil {
			return err
		}
		if tenant == "" {
			tenant = t
		} else if t != tenant {
			return merchantsync.FieldError(merchantsync.EInvalid, "tenant", "one WriteRelationships call writes one tenant's items")
		}
		return nil
	}
	var reqs []types.WriteRequest
	seen := map[string]int{}
	add := func(sk string, v any) error {
		item, err := attributevalue.MarshalMap(v)
		if err != nil {
			return wrap("write relationships", err)
		}
		req := types.WriteRequest{PutRequest: &types.PutRequest{Item: item}}
		if i, ok := seen[sk]; ok {
			reqs[i] = req
			return nil
		}
		seen[sk] = len(reqs)
		reqs = append(reqs, req)
		return nil
	}
	for _, c := range changes {
		if err := sameTenant(c.TenantID, c.Network); err != nil {
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
	// Change events go first, in batches of their own: if a later batch
	// fails, the redelivered run diffs the relationships it did not write
	// again and rewrites the same change items (same keys), so no change is
	// lost and none is doubled.
	nChanges := len(reqs)
	for _, r := range rels {
		if err := sameTenant(r.TenantID, r.Network); err != nil {
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
	for len(reqs) > 0 {
		n := min(BatchSize, len(reqs))
		if nChanges > 0 {
			n = min(n, nChanges)
			nChanges -= n
		}
		chunk := reqs[:n]
		reqs = reqs[n:]
		for attempt := 0; len(chunk) > 0; attempt++ {
			if attempt > 0 {
				if err := backoff.Sleep(ctx, backoff.Jitter(attempt, unprocessedBaseDelay, unprocessedMaxDelay)); err != nil {
					return stats, wrap("write relationships", err)
				}
			}
			stats.BatchCalls++
			res, err := s.client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
				RequestItems: map[string][]types.WriteRequest{s.table: chunk},
			})
			if err != nil {
				return stats, wrap("write relationships", err)
			}
			left := res.UnprocessedItems[s.table]
			stats.Items += len(chunk) - len(left)
			chunk = left
		}
	}
	return stats, nil
}
