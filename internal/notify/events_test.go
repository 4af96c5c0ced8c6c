package notify_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/merchantsync/merchantsync/internal/dynamo"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/notify"
	"github.com/merchantsync/merchantsync/internal/queue"
	"github.com/merchantsync/merchantsync/internal/testenv"
	"github.com/merchantsync/merchantsync/internal/webhook"
)

func invoke(t *testing.T, handler any, file string, resp any) {
	t.Helper()
	payload, err := os.ReadFile(filepath.Join("..", "..", "infra", "events", file))
	if err != nil {
		t.Fatal(err)
	}
	out, err := lambda.NewHandler(handler).Invoke(context.Background(), payload)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if err := json.Unmarshal(out, resp); err != nil {
		t.Fatalf("%s answered %s: %v", file, out, err)
	}
}

// infra/events/notify-stream.json (what `sam local invoke NotifyFunction
// -e` sends) through the notifier's handler queues one delivery per
// webhook of its tenant; infra/events/deliver-sqs.json through the
// deliverer reaches the webhook it names, signed.
func TestSampleEvents(t *testing.T) {
	h := newHooks(t)
	rcv := newReceiver(t, 0)
	wh, secret := h.register(t, "tenant-demo", rcv.URL)
	n := &notify.Notifier{Webhooks: h.w.Store, Deliveries: h.deliveries, Decode: dynamo.StreamEvent, Logger: h.w.Logger}
	var sresp events.DynamoDBEventResponse
	invoke(t, n.Handle, "notify-stream.json", &sresp)
	if len(sresp.BatchItemFailures) != 0 {
		t.Fatalf("notifier reported %v", sresp.BatchItemFailures)
	}
	msgs := testenv.Drain(t, h.url)
	if len(msgs) != 1 {
		t.Fatalf("%d deliveries queued, want 1", len(msgs))
	}
	d, err := queue.DecodeDelivery(*msgs[0].Body)
	if err != nil || d.WebhookID != wh.ID || d.Type != webhook.EventRelationshipChanged || !strings.Contains(string(d.Body), `"advertiserId":2149`) {
		t.Fatalf("delivery = %+v, %v", d, err)
	}

	// The sample delivery names webhook wh_example…: register it so.
	sample, _ := os.ReadFile(filepath.Join("..", "..", "infra", "events", "deliver-sqs.json"))
	var ev events.SQSEvent
	_ = json.Unmarshal(sample, &ev)
	sd, err := queue.DecodeDelivery(ev.Records[0].Body)
	if err != nil {
		t.Fatal(err)
	}
	s2 := webhook.NewSecret()
	sealed, _ := h.sealer.Seal(context.Background(), sd.TenantID, sd.WebhookID, s2)
	if err := h.w.Store.CreateWebhook(context.Background(), merchantsync.Webhook{TenantID: sd.TenantID, ID: sd.WebhookID,
		URL: rcv.URL, CreatedAt: time.Now(), Sealed: sealed}); err != nil {
		t.Fatal(err)
	}
	var qresp events.SQSEventResponse
	invoke(t, h.deliverer.Handle, "deliver-sqs.json", &qresp)
	if len(qresp.BatchItemFailures) != 0 {
		t.Fatalf("deliverer reported %v", qresp.BatchItemFailures)
	}
	reqs := rcv.requests()
	if len(reqs) != 1 || reqs[0].Header.Get(webhook.HeaderID) != sd.MessageID {
		t.Fatalf("receiver got %d requests", len(reqs))
	}
	if err := webhook.Verify(s2.Key(), reqs[0].Header, reqs[0].Body, time.Now()); err != nil {
		t.Fatal(err)
	}
	if webhook.Verify(secret.Key(), reqs[0].Header, reqs[0].Body, time.Now()) == nil {
		t.Fatal("another webhook's secret verifies the request")
	}
}
