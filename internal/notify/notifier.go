// Package notify turns what merchantsync stored into events for publishers:
// the notifier reads the table's stream (the outbox) and publishes each
// event to the event bus and, per webhook that wants it, onto the
// deliveries queue; the deliverer (deliverer.go) makes the signed HTTP
// attempts and their retries.
//
// Nothing is lost when a function dies halfway: the stream keeps a record
// until the notifier's batch succeeds (or reports the record it failed at,
// from which Lambda retries), and the deliveries queue keeps a delivery
// until an attempt succeeds or its retries run out. The price is
// duplicates, which carry the same id (webhook-id for receivers, the
// detail's id on the bus) so they can be dropped.
package notify

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-lambda-go/events"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/webhook"
)

// Notifier fans events out to the bus and the webhooks.
type Notifier struct {
	Webhooks   merchantsync.WebhookStore
	Bus        merchantsync.EventBus // nil: no bus (a stack without one)
	Deliveries merchantsync.DeliveryQueue
	// Decode reads a stream record (dynamo.StreamEvent): nil for records
	// that are no event.
	Decode func(events.DynamoDBEventRecord) (*merchantsync.Event, error)
	Logger *slog.Logger
}

// chunk is how many events go to the bus and the queue at a time: one
// PutEvents call takes at most 10.
const chunk = 10

// Notify publishes evs in order. It returns the index of the first event
// that may not have reached everyone (len(evs) when all did) and why. An
// event before that index was published and queued for every webhook.
func (n *Notifier) Notify(ctx context.Context, evs []merchantsync.Event) (int, error) {
	hooks := map[string][]merchantsync.Webhook{} // per tenant, read once per call
	for start := 0; start < len(evs); start += chunk {
		part := evs[start:min(start+chunk, len(evs))]
		if n.Bus != nil {
			if err := n.Bus.Publish(ctx, part); err != nil {
				return start, fmt.Errorf("notify: publish: %w", err)
			}
		}
		var ds []merchantsync.Delivery
		for _, ev := range part {
			ws, ok := hooks[ev.TenantID]
			if !ok {
				var err error
				if ws, err = n.Webhooks.ListWebhooks(ctx, ev.TenantID); err != nil {
					return start, fmt.Errorf("notify: webhooks of %s: %w", ev.TenantID, err)
				}
				hooks[ev.TenantID] = ws
			}
			var body []byte
			for i := range ws {
				if !ws[i].Wants(ev.Type) {
					continue
				}
				if body == nil {
					b, err := webhook.EncodeBody(ev.Type, ev.At, ev.Data)
					if err != nil {
						// An event that cannot be encoded never will be:
						// logged and dropped, not retried forever.
						n.logger().ErrorContext(ctx, "event not encodable", "event", ev.ID, "type", ev.Type, "err", err.Error())
						break
					}
					body = b
				}
				ds = append(ds, merchantsync.Delivery{TenantID: ev.TenantID, WebhookID: ws[i].ID,
					MessageID: ev.ID, Type: ev.Type, Body: body})
			}
		}
		if len(ds) > 0 {
			if err := n.Deliveries.SendDeliveries(ctx, ds); err != nil {
				return start, fmt.Errorf("notify: queue %d deliveries: %w", len(ds), err)
			}
		}
	}
	return len(evs), nil
}

func (n *Notifier) logger() *slog.Logger {
	if n.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return n.Logger
}

// Handle is the notifier function's handler: a batch of stream records
// from the table (ReportBatchItemFailures). A record that cannot be read
// is logged and skipped: retrying would only block its shard. When an event
// could not be sent, the batch reports its record, and Lambda sends the
// batch again from there.
func (n *Notifier) Handle(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	var evs []merchantsync.Event
	var seq []string // the sequence number of each event's record
	for _, rec := range ev.Records {
		e, err := n.Decode(rec)
		if err != nil {
			n.logger().ErrorContext(ctx, "stream record not readable, skipped", "eventID", rec.EventID, "err", err.Error())
			continue
		}
		if e == nil {
			continue
		}
		evs = append(evs, *e)
		seq = append(seq, rec.Change.SequenceNumber)
	}
	done, err := n.Notify(ctx, evs)
	if err == nil {
		if len(evs) > 0 {
			n.logger().InfoContext(ctx, "events sent", "records", len(ev.Records), "events", len(evs))
		}
		return events.DynamoDBEventResponse{}, nil
	}
	n.logger().WarnContext(ctx, "events not all sent; retrying from the first not sent",
		"records", len(ev.Records), "events", len(evs), "sent", done, "err", err.Error())
	return events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{{ItemIdentifier: seq[done]}}}, nil
}
