package httpapi_test

import (
	"strings"
	"testing"
	"time"

	"github.com/merchantsync/merchantsync/internal/httpapi"
	"github.com/merchantsync/merchantsync/internal/kmsseal"
	"github.com/merchantsync/merchantsync/internal/queue"
	"github.com/merchantsync/merchantsync/internal/testenv"
)

func newWebhooks(t *testing.T, keyID string) (*table, *httpapi.Router) {
	tb := newTable(t)
	url, _ := testenv.NewQueue(t, testenv.QueueOptions{})
	r := httpapi.NewWebhooksRouter(&httpapi.Webhooks{Store: tb.store, Sealer: kmsseal.New(testenv.KMSClient(t), keyID),
		Queue: queue.New(testenv.SQSClient(t), url), Now: func() time.Time { return time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC) }}, nil)
	return tb, r
}

// infra/events/webhooks-create.json registers a webhook; its secret is
// answered once and stored only sealed.
func TestCreateWebhookFromSampleEvent(t *testing.T) {
	tb, r := newWebhooks(t, testenv.NewKey(t))
	status, body := invoke(t, r, loadEvent(t, "webhooks-create.json"))
	if status != 201 {
		t.Fatalf("POST /v1/webhooks = %d %v", status, body)
	}
	secret := str(body["secret"])
	if !strings.HasPrefix(secret, "whsec_") || str(body["description"]) != "Slack relay" || len(body["events"].([]any)) != 2 {
		t.Fatalf("body = %v", body)
	}
	snap := strings.Join(tb.snapshot(t), "\n")
	if strings.Contains(snap, strings.TrimPrefix(secret, "whsec_")) || !strings.Contains(snap, "hooks.example.com") {
		t.Fatal("the secret is stored in the clear, or the webhook is not stored")
	}
	status, body = invoke(t, r, req("GET", "/v1/webhooks/"+str(body["id"]), "tenant-demo", "", nil))
	if status != 200 || str(body["secret"]) != "" {
		t.Fatalf("GET = %d %v", status, body)
	}
}

// When KMS cannot seal (here: no such key) the create fails with a 500
// and stores nothing; a refused URL is a 400 and stores nothing either.
func TestCreateWebhookStoresNothingOnFailure(t *testing.T) {
	tb, r := newWebhooks(t, "alias/does-not-exist")
	status, body := invoke(t, r, req("POST", "/v1/webhooks", "t1", `{"url":"https://hooks.example.com/x"}`, nil))
	if status != 500 || errCode(body) != "internal" {
		t.Fatalf("create without a usable key = %d %v", status, body)
	}
	status, body = invoke(t, r, req("POST", "/v1/webhooks", "t1", `{"url":"https://192.168.1.10/x"}`, nil))
	if status != 400 || errCode(body) != "webhook_url_private" {
		t.Fatalf("private URL = %d %v", status, body)
	}
	if snap := tb.snapshot(t); len(snap) != 0 {
		t.Fatalf("items stored after failed creates: %v", snap)
	}
}
