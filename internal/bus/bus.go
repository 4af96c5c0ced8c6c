// Package bus publishes merchantsync's events on the stack's EventBridge
// bus (merchantsync-<stage>): source "merchantsync", the event type as the
// detail-type, and a detail that names the tenant, so rules can route one
// tenant's or one type's events, and the bus's archive can replay them.
package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/merchantsync/merchantsync/internal/backoff"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// Source is every event's source.
const Source = "merchantsync"

// API is the part of the EventBridge client the bus uses.
type API interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, opts ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// Bus implements merchantsync.EventBus on one event bus.
type Bus struct {
	client API
	name   string
	// MaxAttempts bounds the PutEvents calls for one batch (the first and
	// the retries of its failed entries); 0 means 5.
	MaxAttempts int
}

var _ merchantsync.EventBus = (*Bus)(nil)

// New returns a bus publishing on the event bus name (or ARN).
func New(client API, name string) *Bus { return &Bus{client: client, name: name} }

// Detail is an event's detail on the bus. ID is the event's stable id: the
// same as the webhook-id of its deliveries, the key to drop duplicates.
type Detail struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	TenantID string `json:"tenantId"`
	Network  string `json:"network,omitempty"`
	Data     any    `json:"data"`
}

// Publish puts evs (at most 10 per call), retrying the entries EventBridge
// reports failed with backoff; an error means some were not taken.
func (b *Bus) Publish(ctx context.Context, evs []merchantsync.Event) error {
	for start := 0; start < len(evs); start += 10 {
		if err := b.put(ctx, evs[start:min(start+10, len(evs))]); err != nil {
			return err
		}
	}
	return nil
}

func (b *Bus) put(ctx context.Context, evs []merchantsync.Event) error {
	entries := make([]types.PutEventsRequestEntry, len(evs))
	for i, ev := range evs {
		detail, err := json.Marshal(Detail{ID: ev.ID, Type: string(ev.Type), TenantID: ev.TenantID, Network: ev.Network, Data: ev.Data})
		if err != nil {
			return fmt.Errorf("bus: encode %s: %w", ev.ID, err)
		}
		entries[i] = types.PutEventsRequestEntry{
			EventBusName: aws.String(b.name), Source: aws.String(Source), DetailType: aws.String(string(ev.Type)),
			Detail: aws.String(string(detail)), Time: aws.Time(ev.At.UTC()),
		}
	}
	attempts := b.MaxAttempts
	if attempts <= 0 {
		attempts = 5
	}
	for n := 1; ; n++ {
		out, err := b.client.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries})
		if err != nil {
			return fmt.Errorf("bus: PutEvents: %w", err)
		}
		if out.FailedEntryCount == 0 {
			return nil
		}
		// Entries answer in order; those with an ErrorCode were not taken.
		var again []types.PutEventsRequestEntry
		var code string
		for i, r := range out.Entries {
			if r.ErrorCode != nil && i < len(entries) {
				again = append(again, entries[i])
				code = aws.ToString(r.ErrorCode)
			}
		}
		if len(again) == 0 {
			return nil
		}
		if n >= attempts {
			return fmt.Errorf("bus: %d events not taken after %d attempts (%s)", len(again), n, code)
		}
		if err := backoff.Sleep(ctx, time.Duration(50<<n)*time.Millisecond); err != nil {
			return err
		}
		entries = again
	}
}
