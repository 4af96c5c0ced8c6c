package merchantsync_test

import (
	"net/http"
	"testing"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/webhook"
)

// The API answers a refused URL with internal/webhook's code: the domain's
// constants (which the OpenAPI document lists) must be the same strings.
func TestWebhookURLCodes(t *testing.T) {
	for domain, wh := range map[string]string{
		merchantsync.EWebhookURLInvalid:     webhook.CodeURLInvalid,
		merchantsync.EWebhookURLNotHTTPS:    webhook.CodeURLNotHTTPS,
		merchantsync.EWebhookURLPrivate:     webhook.CodeURLPrivate,
		merchantsync.EWebhookURLCredentials: webhook.CodeURLCredentials,
	} {
		if domain != wh {
			t.Errorf("merchantsync %q != webhook %q", domain, wh)
		}
		if merchantsync.HTTPStatus(domain) != http.StatusBadRequest {
			t.Errorf("%s answers %d, want 400", domain, merchantsync.HTTPStatus(domain))
		}
	}
	if merchantsync.HTTPStatus(merchantsync.EWebhookLimit) != http.StatusConflict {
		t.Error("webhook_limit_reached is not a 409")
	}
}

func TestWebhookWants(t *testing.T) {
	all := merchantsync.Webhook{}
	some := merchantsync.Webhook{Events: []webhook.EventType{webhook.EventSyncFailed}}
	for _, tc := range []struct {
		w    merchantsync.Webhook
		t    webhook.EventType
		want bool
	}{
		{all, webhook.EventRelationshipChanged, true},
		{all, webhook.EventWebhookTest, false},
		{some, webhook.EventSyncFailed, true},
		{some, webhook.EventSyncCompleted, false},
	} {
		if got := tc.w.Wants(tc.t); got != tc.want {
			t.Errorf("%v.Wants(%s) = %v", tc.w.Events, tc.t, got)
		}
	}
}
