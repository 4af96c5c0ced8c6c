package dynamo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// QueryDue reads every due account of one shard (0 ≤ shard < Shards) from
// the sparse index, page by page, calling fn with each non-empty page. It
// returns the number of pages handed to fn. The index is eventually
// consistent: an account connected a moment ago may show up on the next run.
func (s *Store) QueryDue(ctx context.Context, shard int, fn func([]merchantsync.AccountKey) error) (pages int, err error) {
	return s.queryDue(ctx, shard, false, fn)
}

// queryDue is QueryDue, of only the hourly accounts when hourly: a
// begins_with on the sort key, so the daily accounts are not read.
func (s *Store) queryDue(ctx context.Context, shard int, hourly bool, fn func([]merchantsync.AccountKey) error) (pages int, err error) {
	if shard < 0 || shard >= Shards {
		return 0, merchantsync.FieldError(merchantsync.EInvalid, "shard", "shard out of range")
	}
	size := s.DuePageSize
	if size <= 0 {
		size = 500
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(IndexDue),
		KeyConditionExpression:    aws.String("#p = :p"),
		ExpressionAttributeNames:  map[string]string{"#p": AttrDuePK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": avS(duePK(shard))},
		Limit:                     aws.Int32(int32(size)),
	}
	if hourly {
		in.KeyConditionExpression = aws.String("#p = :p AND begins_with(#s, :h)")
		in.ExpressionAttributeNames["#s"] = AttrDueSK
		in.ExpressionAttributeValues[":h"] = avS(hourlyDuePrefix)
	}
	for {
		res, err := s.client.Query(ctx, in)
		if err != nil {
			return pages, wrap("query due", err)
		}
		if len(res.Items) > 0 {
			page := make([]merchantsync.AccountKey, 0, len(res.Items))
			for _, item := range res.Items {
				var k struct {
					TenantID string `dynamodbav:"PK"`
					Network  string `dynamodbav:"SK"`
				}
				if err := attributevalue.UnmarshalMap(item, &k); err != nil {
					return pages, wrap("query due", err)
				}
				page = append(page, merchantsync.AccountKey{
					TenantID: strings.TrimPrefix(k.TenantID, "TENANT#"),
					Network:  strings.TrimPrefix(k.Network, "NETWORK#"),
				})
			}
			pages++
			if err := fn(page); err != nil {
				return pages, err
			}
		}
		if len(res.LastEvaluatedKey) == 0 {
			return pages, nil
		}
		in.ExclusiveStartKey = res.LastEvaluatedKey
	}
}

// EachDue reads every shard of the due index in parallel and calls fn with
// each non-empty page, from one goroutine per shard. It returns the pages
// read; reading stops at the first error.
func (s *Store) EachDue(ctx context.Context, fn func([]merchantsync.AccountKey) error) (int, error) {
	return s.eachDue(ctx, false, fn)
}

// EachDueHourly is EachDue for the accounts of hourly tenants only.
func (s *Store) EachDueHourly(ctx context.Context, fn func([]merchantsync.AccountKey) error) (int, error) {
	return s.eachDue(ctx, true, fn)
}

func (s *Store) eachDue(ctx context.Context, hourly bool, fn func([]merchantsync.AccountKey) error) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		pages int
		errs  []error
		wg    sync.WaitGroup
	)
	for shard := range Shards {
		wg.Go(func() {
			n, err := s.queryDue(ctx, shard, hourly, fn)
			mu.Lock()
			defer mu.Unlock()
			pages += n
			if err != nil {
				errs = append(errs, fmt.Errorf("shard %d: %w", shard, err))
				cancel()
			}
		})
	}
	wg.Wait()
	return pages, errors.Join(errs...)
}
