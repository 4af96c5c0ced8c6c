package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/merchantsync/merchantsync/internal/dynamo"
	"github.com/merchantsync/merchantsync/internal/dynamo/dynamotest"
	"github.com/merchantsync/merchantsync/internal/httpapi"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// BenchmarkListRelationships: GET /v1/networks/rakuten/relationships?limit=100
// through lambda.NewHandler(...).Invoke on DynamoDB Local, for a tenant
// with 2,000 relationships (status filter off, and on "pending").
func BenchmarkListRelationships(b *testing.B) {
	c := dynamotest.Client(b)
	store := dynamo.New(c, dynamotest.NewTable(b, c))
	ctx := context.Background()
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	if _, err := store.SaveIDs(ctx, "bench", "rakuten", "lMh2Xiq9xN0", "4022211", now); err != nil {
		b.Fatal(err)
	}
	rels := make([]merchantsync.Relationship, 2000)
	for i := range rels {
		st := merchantsync.StatusJoined
		if i%10 == 0 {
			st = merchantsync.StatusPending
		}
		rels[i] = merchantsync.Relationship{TenantID: "bench", Network: "rakuten", RegionNetwork: 1, AdvertiserID: int64(10000 + i),
			Name: fmt.Sprintf("Merchant %d", i), Status: st, RawStatus: string(st), ProgramStatus: "active",
			StatusChangedAt: now, FirstSeenAt: now, LastSeenAt: now}
	}
	const conn = "20261126T030000.000Z-0000000001"
	if _, err := store.MarkConnected(ctx, "bench", "rakuten", merchantsync.Connection{ID: conn}, now); err != nil {
		b.Fatal(err)
	}
	if _, err := store.AcquireLease(ctx, "bench", "rakuten", conn, "bench~1", now, now.Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	fence := merchantsync.Fence{TenantID: "bench", Network: "rakuten", ConnectionID: conn, LeaseHolder: "bench~1"}
	if _, err := store.WriteRelationships(ctx, fence, rels, nil); err != nil {
		b.Fatal(err)
	}
	h := lambda.NewHandler(httpapi.NewAPIRouter(&httpapi.API{Store: store}, nil).Handle)
	for _, status := range []string{"", "pending"} {
		b.Run("status="+status, func(b *testing.B) {
			q := map[string]string{"limit": "100"}
			if status != "" {
				q["status"] = status
			}
			payload, _ := json.Marshal(req("GET", "/v1/networks/rakuten/relationships", "bench", "", q))
			b.ReportAllocs()
			for b.Loop() {
				out, err := h.Invoke(ctx, payload)
				if err != nil {
					b.Fatal(err)
				}
				var resp struct {
					StatusCode int    `json:"statusCode"`
					Body       string `json:"body"`
				}
				if err := json.Unmarshal(out, &resp); err != nil || resp.StatusCode != 200 {
					b.Fatalf("%d %s %v", resp.StatusCode, resp.Body, err)
				}
			}
		})
	}
}
