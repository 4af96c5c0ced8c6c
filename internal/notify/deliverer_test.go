package notify_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/testenv"
	"github.com/merchantsync/merchantsync/internal/webhook"
)

func sendOne(t *testing.T, h *hooks, wh merchantsync.Webhook, typ webhook.EventType) webhook.Message {
	t.Helper()
	msg, err := webhook.NewMessage(typ, time.Now(), map[string]any{"runId": "r1", "merchantsSynced": 480})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.deliveries.SendDeliveries(context.Background(), []merchantsync.Delivery{{TenantID: wh.TenantID,
		WebhookID: wh.ID, MessageID: msg.ID, Type: msg.Type, Body: msg.Body}}); err != nil {
		t.Fatal(err)
	}
	return msg
}

// A receiver that answers 500 three times, then 204, gets the event four
// times with the same webhook-id and the same body, each signed so that
// both our Verify and svix accept it, and then never again.
func TestDeliveryRetriesUntilAccepted(t *testing.T) {
	h := newHooks(t)
	rcv := newReceiver(t, 3)
	wh, secret := h.register(t, "t1", rcv.URL+"/hooks")
	msg := sendOne(t, h, wh, webhook.EventSyncCompleted)

	h.pump(t, func() bool { return len(rcv.requests()) >= 4 })
	for range 3 { // more polls: nothing more may arrive
		h.pump(t, func() bool { return true })
		_, _ = h.poller.PollOnce(context.Background(), testenv.QueueARN(t, h.url))
	}
	reqs := rcv.requests()
	if len(reqs) != 4 {
		t.Fatalf("receiver got %d requests, want 4 (3 refused + 1 accepted)", len(reqs))
	}
	for i, r := range reqs {
		if id := r.Header.Get(webhook.HeaderID); id != msg.ID || string(r.Body) != string(msg.Body) {
			t.Errorf("request %d: webhook-id %q body %s; want %q and the queued body", i, id, r.Body, msg.ID)
		}
		if err := webhook.Verify(secret.Key(), r.Header, r.Body, time.Now()); err != nil {
			t.Errorf("request %d does not verify: %v", i, err)
		}
	}
	for i, v := range svixVerify(t, secret, reqs) {
		if v != "verified" {
			t.Errorf("svix on request %d: %s", i, v)
		}
	}
	as, err := h.w.Store.ListAttempts(context.Background(), "t1", wh.ID, 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 4 || !as[0].Success || as[0].Attempt != 4 || as[0].StatusCode != 204 ||
		as[3].Success || as[3].StatusCode != 500 || as[3].NextAttemptAt.IsZero() || as[3].Error == "" {
		t.Fatalf("attempt log = %+v", as)
	}
	if n := testenv.QueueCount(t, h.url) + testenv.QueueCount(t, h.dlq); n != 0 {
		t.Errorf("%d messages left in the queues", n)
	}
	if logs := h.w.Logs.String(); strings.Contains(logs, secret.Reveal()) || strings.Contains(logs, secret.Reveal()[len(webhook.SecretPrefix):]) {
		t.Error("the secret reached the logs")
	}
}

// A receiver that never accepts gets webhook.Attempts attempts; then the
// delivery is in the dead-letter queue and the webhook shows failing.
func TestDeliveryGivesUpToTheDeadLetterQueue(t *testing.T) {
	h := newHooks(t)
	rcv := newReceiver(t, 1000)
	wh, _ := h.register(t, "t1", rcv.URL)
	sendOne(t, h, wh, webhook.EventSyncFailed)
	h.pump(t, func() bool { return testenv.QueueCount(t, h.dlq) == 1 })
	if n := len(rcv.requests()); n != webhook.Attempts {
		t.Errorf("receiver got %d attempts, want %d", n, webhook.Attempts)
	}
	got, err := h.w.Store.GetWebhook(context.Background(), "t1", wh.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != merchantsync.WebhookFailing || got.LastError != "http_status: HTTP 500" || got.FailingSince.IsZero() {
		t.Fatalf("webhook after giving up = %+v", got)
	}

	// The next success makes it active again.
	rcv.Fail = 0
	sendOne(t, h, wh, webhook.EventSyncCompleted)
	h.pump(t, func() bool { return len(rcv.requests()) == webhook.Attempts+1 })
	h.pump(t, func() bool {
		got, _ = h.w.Store.GetWebhook(context.Background(), "t1", wh.ID)
		return got.State == merchantsync.WebhookActive
	})
}

// Deliveries that retrying cannot help are dropped at once: to an address
// the policy refuses (checked when connecting), to a receiver that
// answered 410 Gone, and to a deleted webhook.
func TestDeliveryDroppedWhenRetryingCannotHelp(t *testing.T) {
	h := newHooks(t)
	gone := newReceiver(t, 0)
	gone.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusGone) })
	private, _ := h.register(t, "t1", "http://10.1.2.3/hook")
	goneHook, _ := h.register(t, "t1", gone.URL)
	rcv := newReceiver(t, 0)
	deleted, _ := h.register(t, "t1", rcv.URL)
	for _, wh := range []merchantsync.Webhook{private, goneHook, deleted} {
		sendOne(t, h, wh, webhook.EventRelationshipChanged)
	}
	if err := h.w.Store.DeleteWebhook(context.Background(), "t1", deleted.ID); err != nil {
		t.Fatal(err)
	}
	h.pump(t, func() bool { return testenv.QueueCount(t, h.url) == 0 })
	if n := len(rcv.requests()); n != 0 {
		t.Errorf("a deleted webhook got %d requests", n)
	}
	for _, tc := range []struct {
		wh   merchantsync.Webhook
		kind string
	}{{private, "url_refused"}, {goneHook, "http_status"}} {
		got, err := h.w.Store.GetWebhook(context.Background(), "t1", tc.wh.ID)
		if err != nil {
			t.Fatal(err)
		}
		as, _ := h.w.Store.ListAttempts(context.Background(), "t1", tc.wh.ID, 50)
		if got.State != merchantsync.WebhookFailing || !strings.HasPrefix(got.LastError, tc.kind) || len(as) != 1 {
			t.Errorf("%s: webhook %+v after %d attempts, want failing with %s after 1", tc.wh.URL, got, len(as), tc.kind)
		}
	}
	if n := testenv.QueueCount(t, h.dlq); n != 0 {
		t.Errorf("%d deliveries in the dead-letter queue; dropped ones do not go there", n)
	}
}
