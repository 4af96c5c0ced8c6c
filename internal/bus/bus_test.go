package bus_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/merchantsync/merchantsync/internal/bus"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/testenv"
	"github.com/merchantsync/merchantsync/internal/webhook"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func events(n int) []merchantsync.Event {
	out := make([]merchantsync.Event, n)
	for i := range out {
		out[i] = merchantsync.Event{ID: webhook.NewMessageID(), Type: webhook.EventRelationshipChanged, TenantID: "t1",
			Network: "rakuten", At: time.Date(2026, 12, 5, 3, 0, i, 0, time.UTC), Data: map[string]any{"advertiserId": i}}
	}
	return out
}

// 23 events reach a bus on moto in 3 PutEvents calls, each as source
// merchantsync, detail-type its type, detail its id, tenant and data.
func TestPublish(t *testing.T) {
	name := testenv.NewEventBus(t)
	q := testenv.RouteToQueue(t, name, `{"source":["merchantsync"],"detail-type":["relationship.changed"]}`)
	c := &countingAPI{next: testenv.EventBridgeClient(t)}
	evs := events(23)
	if err := bus.New(c, name).Publish(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if c.calls.Load() != 3 {
		t.Errorf("%d PutEvents calls, want 3", c.calls.Load())
	}
	seen := map[string]bool{}
	for _, m := range testenv.Drain(t, q) {
		var env struct {
			Source     string     `json:"source"`
			DetailType string     `json:"detail-type"`
			Detail     bus.Detail `json:"detail"`
		}
		if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &env); err != nil || env.Source != "merchantsync" ||
			env.DetailType != "relationship.changed" || env.Detail.TenantID != "t1" || env.Detail.Data == nil {
			t.Fatalf("event %s: %v", aws.ToString(m.Body), err)
		}
		seen[env.Detail.ID] = true
	}
	for _, e := range evs {
		if !seen[e.ID] {
			t.Errorf("event %s not on the bus", e.ID)
		}
	}
}

// Entries EventBridge reports failed are sent again, alone; when they keep
// failing, Publish says so.
func TestPublishRetriesFailedEntries(t *testing.T) {
	name := testenv.NewEventBus(t)
	c := &countingAPI{next: testenv.EventBridgeClient(t), failFirst: 2}
	if err := bus.New(c, name).Publish(context.Background(), events(5)); err != nil {
		t.Fatal(err)
	}
	if got := c.entries.Load(); got != 5+2 {
		t.Errorf("%d entries sent, want 7 (5, then the 2 that failed)", got)
	}
	c = &countingAPI{next: testenv.EventBridgeClient(t), failFirst: 1000}
	b := bus.New(c, name)
	b.MaxAttempts = 3
	if err := b.Publish(context.Background(), events(2)); err == nil {
		t.Fatal("entries that always fail were reported published")
	}
	if c.calls.Load() != 3 {
		t.Errorf("%d calls, want 3 attempts", c.calls.Load())
	}
}

// countingAPI counts PutEvents calls and entries; failFirst entries are
// answered failed (EventBridge's partial failure, which moto never gives).
type countingAPI struct {
	next      bus.API
	calls     atomic.Int64
	entries   atomic.Int64
	failFirst int
}

func (c *countingAPI) PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, opts ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	c.calls.Add(1)
	c.entries.Add(int64(len(in.Entries)))
	var fail []int
	for i := range in.Entries {
		if c.failFirst > 0 {
			c.failFirst--
			fail = append(fail, i)
		}
	}
	if len(fail) == 0 {
		return c.next.PutEvents(ctx, in, opts...)
	}
	out := &eventbridge.PutEventsOutput{FailedEntryCount: int32(len(fail)), Entries: make([]types.PutEventsResultEntry, len(in.Entries))}
	for _, i := range fail {
		out.Entries[i] = types.PutEventsResultEntry{ErrorCode: aws.String("InternalFailure"), ErrorMessage: aws.String("injected")}
	}
	for i := range out.Entries {
		if out.Entries[i].ErrorCode == nil {
			out.Entries[i].EventId = aws.String("ok")
		}
	}
	return out, nil
}
