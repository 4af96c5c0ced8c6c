package dynamo_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/webhook"
)

func newHook(tenant, id string, at time.Time) merchantsync.Webhook {
	return merchantsync.Webhook{TenantID: tenant, ID: id, URL: "https://hooks.example.com/" + id,
		Events: []webhook.EventType{webhook.EventRelationshipChanged}, CreatedAt: at, Sealed: []byte("sealed-" + id)}
}

func TestWebhookLimitHoldsUnderConcurrentCreates(t *testing.T) {
	e := setup(t)
	c := ctx(t)
	const tries = 25
	var wg sync.WaitGroup
	errs := make([]error, tries)
	for i := range tries {
		wg.Go(func() {
			errs[i] = e.s.CreateWebhook(c, newHook("t1", fmt.Sprintf("wh_%02d", i), t0.Add(time.Duration(i))))
		})
	}
	wg.Wait()
	ok, limited := 0, 0
	for _, err := range errs {
		switch merchantsync.ErrorCode(err) {
		case "":
			if err == nil {
				ok++
			}
		case merchantsync.EWebhookLimit:
			limited++
		case merchantsync.EConflict, merchantsync.EInternal:
			// a transaction conflict between two creates: the caller retries
		}
	}
	list, err := e.s.ListWebhooks(c, "t1")
	must(t, err)
	if ok > merchantsync.MaxWebhooks || len(list) != ok {
		t.Fatalf("%d creates succeeded, %d stored; the limit is %d", ok, len(list), merchantsync.MaxWebhooks)
	}
	// Fill up sequentially whatever conflicts left, then one more is refused.
	for i := 0; len(list) < merchantsync.MaxWebhooks; i++ {
		must(t, e.s.CreateWebhook(c, newHook("t1", fmt.Sprintf("wh_x%02d", i), t0.Add(time.Hour))))
		list, _ = e.s.ListWebhooks(c, "t1")
	}
	wantCode(t, e.s.CreateWebhook(c, newHook("t1", "wh_eleven", t0)), merchantsync.EWebhookLimit)
	if limited == 0 {
		t.Errorf("no concurrent create was refused for the limit (ok=%d)", ok)
	}
	for i := 1; i < len(list); i++ {
		if list[i].CreatedAt.Before(list[i-1].CreatedAt) {
			t.Fatalf("list not oldest first: %v then %v", list[i-1].CreatedAt, list[i].CreatedAt)
		}
	}

	// Deleting gives the place back; deleting twice is not_found and
	// does not give a second place.
	must(t, e.s.DeleteWebhook(c, "t1", list[0].ID))
	wantCode(t, e.s.DeleteWebhook(c, "t1", list[0].ID), merchantsync.ENotFound)
	must(t, e.s.CreateWebhook(c, newHook("t1", "wh_again", t0)))
	wantCode(t, e.s.CreateWebhook(c, newHook("t1", "wh_again2", t0)), merchantsync.EWebhookLimit)
	// Another tenant has its own limit and cannot reach t1's webhooks.
	must(t, e.s.CreateWebhook(c, newHook("t2", "wh_t2", t0)))
	_, err = e.s.GetWebhook(c, "t2", "wh_again")
	wantCode(t, err, merchantsync.ENotFound)
	wantCode(t, e.s.DeleteWebhook(c, "t2", "wh_again"), merchantsync.ENotFound)
	if _, err := e.s.GetWebhook(c, "t1", "wh_again"); err != nil {
		t.Fatalf("t2's delete reached t1's webhook: %v", err)
	}
}

func TestWebhookState(t *testing.T) {
	e := setup(t)
	c := ctx(t)
	must(t, e.s.CreateWebhook(c, newHook("t1", "wh_a", t0)))
	got, err := e.s.GetWebhook(c, "t1", "wh_a")
	must(t, err)
	if got.State != merchantsync.WebhookActive || string(got.Sealed) != "sealed-wh_a" || got.URL != "https://hooks.example.com/wh_a" || len(got.Events) != 1 {
		t.Fatalf("stored webhook = %+v", got)
	}
	must(t, e.s.SetWebhookState(c, "t1", "wh_a", merchantsync.WebhookFailing, "http_status: HTTP 500", t0))
	must(t, e.s.SetWebhookState(c, "t1", "wh_a", merchantsync.WebhookFailing, "timeout: no response", t0.Add(time.Hour)))
	got, _ = e.s.GetWebhook(c, "t1", "wh_a")
	if got.State != merchantsync.WebhookFailing || !got.FailingSince.Equal(t0) || got.LastError != "timeout: no response" {
		t.Fatalf("failing webhook = %+v (failingSince must stay the first failure's)", got)
	}
	e.counter.Reset()
	must(t, e.s.SetWebhookState(c, "t1", "wh_a", merchantsync.WebhookActive, "", t0))
	must(t, e.s.SetWebhookState(c, "t1", "wh_a", merchantsync.WebhookActive, "", t0))
	got, _ = e.s.GetWebhook(c, "t1", "wh_a")
	if got.State != merchantsync.WebhookActive || !got.FailingSince.IsZero() || got.LastError != "" {
		t.Fatalf("recovered webhook = %+v", got)
	}
	must(t, e.s.DeleteWebhook(c, "t1", "wh_a"))
	must(t, e.s.SetWebhookState(c, "t1", "wh_a", merchantsync.WebhookFailing, "late", t0))
	if _, err := e.s.GetWebhook(c, "t1", "wh_a"); merchantsync.ErrorCode(err) != merchantsync.ENotFound {
		t.Fatalf("a late state change re-created a deleted webhook: %v", err)
	}
}

func TestWebhookAttempts(t *testing.T) {
	e := setup(t)
	c := ctx(t)
	for i := range 5 {
		must(t, e.s.RecordAttempt(c, merchantsync.DeliveryAttempt{
			TenantID: "t1", WebhookID: "wh_a", MessageID: "msg_1", Type: webhook.EventSyncCompleted,
			Attempt: i + 1, StatusCode: 500, Error: "http_status: HTTP 500", At: t0.Add(time.Duration(i) * time.Minute),
			Duration: 120 * time.Millisecond,
		}))
	}
	must(t, e.s.RecordAttempt(c, merchantsync.DeliveryAttempt{TenantID: "t1", WebhookID: "wh_b", MessageID: "msg_2",
		Type: webhook.EventSyncCompleted, Attempt: 1, Success: true, StatusCode: 204, At: t0.Add(time.Hour)}))
	got, err := e.s.ListAttempts(c, "t1", "wh_a", 3)
	must(t, err)
	if len(got) != 3 || got[0].Attempt != 5 || got[2].Attempt != 3 || got[0].Duration != 120*time.Millisecond || got[0].Error == "" {
		t.Fatalf("attempts = %+v, want the newest 3 of wh_a, newest first", got)
	}
	if other, _ := e.s.ListAttempts(c, "t2", "wh_a", 50); len(other) != 0 {
		t.Fatalf("another tenant read %d attempts", len(other))
	}
	// Attempts expire: each carries the TTL attribute.
	res, err := e.c.Query(c, &dynamodb.QueryInput{TableName: aws.String(e.table),
		KeyConditionExpression:    aws.String("PK = :pk AND begins_with(SK, :p)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: "TENANT#t1"}, ":p": &types.AttributeValueMemberS{Value: "WHLOG#"}}})
	must(t, err)
	for _, it := range res.Items {
		if _, ok := it["expiresAt"]; !ok {
			t.Fatalf("attempt without expiresAt: %v", it)
		}
	}
}
