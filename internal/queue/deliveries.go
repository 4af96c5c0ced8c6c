package queue

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/webhook"
)

// deliveryMessage is a delivery as the deliveries queue carries it. The
// body is the signed envelope (JSON), kept as a string so that its bytes,
// which the signature covers, arrive unchanged.
type deliveryMessage struct {
	TenantID  string `json:"tenantId"`
	WebhookID string `json:"webhookId"`
	MessageID string `json:"messageId"`
	Type      string `json:"type"`
	Body      string `json:"body"`
}

// maxBatchBytes keeps a SendMessageBatch under SQS's 256 KiB per call,
// with room for the entries' ids and attributes.
const maxBatchBytes = 240 << 10

// SendDeliveries sends deliveries to the deliveries queue, in batches of at
// most ten and 240 KiB, retrying entries SQS reports Failed as SendAll does.
func (q *Queue) SendDeliveries(ctx context.Context, ds []merchantsync.Delivery) error {
	var batch []entry
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, failed, err := q.sendChunk(ctx, batch)
		batch, size = batch[:0], 0
		if err != nil {
			return err
		}
		if len(failed) > 0 {
			return &BatchError{Failed: failed}
		}
		return nil
	}
	for i, d := range ds {
		b, err := json.Marshal(deliveryMessage{TenantID: d.TenantID, WebhookID: d.WebhookID,
			MessageID: d.MessageID, Type: string(d.Type), Body: string(d.Body)})
		if err != nil {
			return fmt.Errorf("queue: encode delivery: %w", err)
		}
		if len(batch) == MaxBatch || size+len(b) > maxBatchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		// The FailedEntry names the tenant and, as its run, the message.
		batch = append(batch, entry{index: i, req: merchantsync.SyncRequest{TenantID: d.TenantID, RunID: d.MessageID}, body: string(b)})
		size += len(b)
	}
	return flush()
}

// DecodeDelivery reads a deliveries-queue message body.
func DecodeDelivery(body string) (merchantsync.Delivery, error) {
	var m deliveryMessage
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return merchantsync.Delivery{}, fmt.Errorf("queue: not a delivery: %w", err)
	}
	if m.TenantID == "" || m.WebhookID == "" || !webhook.ValidMessageID(m.MessageID) || !webhook.EventType(m.Type).Valid() || m.Body == "" {
		return merchantsync.Delivery{}, fmt.Errorf("queue: incomplete delivery (tenant %q, webhook %q, message %q, type %q)", m.TenantID, m.WebhookID, m.MessageID, m.Type)
	}
	return merchantsync.Delivery{TenantID: m.TenantID, WebhookID: m.WebhookID, MessageID: m.MessageID,
		Type: webhook.EventType(m.Type), Body: []byte(m.Body)}, nil
}
