package syncer

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/merchantsync/merchantsync/internal/dynamo"
	"github.com/merchantsync/merchantsync/internal/queue"
	"github.com/merchantsync/merchantsync/internal/testenv"
)

// seedDue writes n due account items straight into the table, keys only:
// the due index is KEYS_ONLY and the scheduler reads nothing else. (The
// store's own SaveIDs + MarkConnected path is tested in TestScheduler10k;
// here it would take minutes for 100,000 accounts.)
func seedDue(b *testing.B, client *dynamodb.Client, table string, n int) {
	b.Helper()
	work := make(chan []types.WriteRequest)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for reqs := range work {
				items := map[string][]types.WriteRequest{table: reqs}
				for len(items) > 0 {
					out, err := client.BatchWriteItem(context.Background(), &dynamodb.BatchWriteItemInput{RequestItems: items})
					if err != nil {
						errs <- err
						return
					}
					items = out.UnprocessedItems
				}
			}
		})
	}
	var batch []types.WriteRequest
	for i := range n {
		tenant := fmt.Sprintf("tenant-%06d", i)
		s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
		batch = append(batch, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
			dynamo.AttrPK: s("TENANT#" + tenant), dynamo.AttrSK: s("NETWORK#rakuten"),
			dynamo.AttrDuePK: s(fmt.Sprintf("SYNC#%d", dynamo.ShardOf(tenant))), dynamo.AttrDueSK: s("TENANT#" + tenant + "#NETWORK#rakuten"),
		}}})
		if len(batch) == 25 { // BatchWriteItem's limit
			work <- batch
			batch = nil
		}
	}
	if len(batch) > 0 {
		work <- batch
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}

// BenchmarkScheduler: one daily fan-out over 100,000 due accounts on
// DynamoDB Local (16 shards of the sparse index), enqueued through the real
// queue adapter into a sink at its SQS port (no emulator queue holds
// 100,000 messages in a benchmark's time): SQS's own latency is not in it.
func BenchmarkScheduler(b *testing.B) {
	const accounts = 100_000
	e := newEnv(b)
	seedDue(b, e.DDB, e.Store.Table(), accounts)
	var pages, calls, enqueued int
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		s := &Scheduler{Store: e.Store, Queue: queue.New(&testenv.Sink{}, "https://sqs.us-east-1.amazonaws.com/123456789012/sink"),
			Now: time.Now, Logger: e.Logger}
		b.StartTimer()
		res, err := s.Handle(context.Background(), ScheduleEvent{RunID: fmt.Sprintf("bench-%d", i), ScheduledTime: "2026-11-27T03:00:00Z"})
		if err != nil {
			b.Fatal(err)
		}
		if res.Enqueued != accounts {
			b.Fatalf("enqueued %d, want %d", res.Enqueued, accounts)
		}
		pages, calls, enqueued = pages+res.QueryPages, calls+res.BatchCalls, enqueued+res.Enqueued
	}
	n := float64(b.N)
	b.ReportMetric(float64(pages)/n, "query-pages/op")
	b.ReportMetric(float64(calls)/n, "batch-calls/op")
	b.ReportMetric(float64(enqueued)/n, "enqueued/op")
}
