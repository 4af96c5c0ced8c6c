package contract

import (
	"fmt"
	"strings"
	"testing"

	"github.com/merchantsync/merchantsync/internal/testenv"
	"github.com/merchantsync/merchantsync/internal/webhook"
)

// The webhook routes, every documented answer produced and validated
// against the document: register (201 with the secret, 400 for each kind of
// refused URL, 409 at the limit), list, get, test (202, and the queued
// delivery), deliveries, delete, and 404 for another tenant's webhook.
func TestWebhookRoutes(t *testing.T) {
	e := newEnv(t, envOptions{})
	created := e.expect(call{method: "POST", path: "/v1/webhooks",
		body: `{"url":"https://hooks.example.com/merchantsync","events":["relationship.changed","sync.failed"],"description":"Slack relay"}`}, 201, "")
	id, secret := created.str("id"), created.str("secret")
	if !strings.HasPrefix(id, "wh_") || !strings.HasPrefix(secret, webhook.SecretPrefix) || created.str("state") != "active" {
		t.Fatalf("created = %s", created.body)
	}
	if key, err := webhook.ParseSecret(secret); err != nil || len(key) < 24 {
		t.Fatalf("secret %q: %v", secret, err)
	}

	for body, code := range map[string]string{
		`{"url":"http://hooks.example.com/x"}`:                            "webhook_url_not_https",
		`{"url":"https://10.0.0.5/x"}`:                                    "webhook_url_private",
		`{"url":"https://169.254.169.254/latest"}`:                        "webhook_url_private",
		`{"url":"https://localhost/x"}`:                                   "webhook_url_private",
		`{"url":"https://user:pw@hooks.example.com/x"}`:                   "webhook_url_credentials",
		`{"url":"hooks.example.com"}`:                                     "webhook_url_invalid",
		`{}`:                                                              "invalid_request",
		`{"url":"https://hooks.example.com/x","events":["webhook.test"]}`: "invalid_request",
		`{"url":"https://hooks.example.com/x","events":["nope"]}`:         "invalid_request",
		`{"url":"https://hooks.example.com/x","secret":"whsec_mine"}`:     "invalid_json",
		`{"url":"https://hooks.example.com/x","description":"` + strings.Repeat("d", 201) + `"}`: "invalid_request",
	} {
		r := e.expect(call{method: "POST", path: "/v1/webhooks", body: body}, 400, code)
		if f, _ := r.json["error"].(map[string]any)["field"].(string); code != "invalid_json" && f == "" {
			t.Errorf("%s: no field in %s", body, r.body)
		}
	}

	got := e.expect(call{method: "GET", path: "/v1/webhooks/" + id}, 200, "")
	if strings.Contains(got.body, secret) || got.str("secret") != "" {
		t.Fatal("GET shows the secret again")
	}
	list := e.expect(call{method: "GET", path: "/v1/webhooks"}, 200, "")
	if strings.Contains(list.body, secret) || len(list.json["items"].([]any)) != 1 {
		t.Fatalf("list = %s", list.body)
	}

	// Another tenant can neither see, test, read the deliveries of, nor
	// delete it.
	other := "tenant-b"
	for _, c := range []call{
		{method: "GET", path: "/v1/webhooks/" + id, tenant: other},
		{method: "POST", path: "/v1/webhooks/" + id + "/test", tenant: other},
		{method: "GET", path: "/v1/webhooks/" + id + "/deliveries", tenant: other},
		{method: "DELETE", path: "/v1/webhooks/" + id, tenant: other},
	} {
		e.expect(c, 404, "not_found")
	}
	if l := e.expect(call{method: "GET", path: "/v1/webhooks", tenant: other}, 200, ""); len(l.json["items"].([]any)) != 0 {
		t.Fatalf("another tenant lists %s", l.body)
	}

	test := e.expect(call{method: "POST", path: "/v1/webhooks/" + id + "/test"}, 202, "")
	e.expect(call{method: "POST", path: "/v1/webhooks/" + id + "/test", body: `{}`}, 400, "invalid_request")
	msgs := testenv.Drain(t, e.deliveriesURL)
	if len(msgs) != 1 || !strings.Contains(*msgs[0].Body, test.str("messageId")) || !strings.Contains(*msgs[0].Body, `webhook.test`) ||
		strings.Contains(*msgs[0].Body, secret) {
		t.Fatalf("queued = %v", msgs)
	}
	e.expect(call{method: "GET", path: "/v1/webhooks/" + id + "/deliveries"}, 200, "")
	e.expect(call{method: "GET", path: "/v1/webhooks/" + id + "/deliveries", query: map[string]string{"limit": "0"}}, 400, "invalid_request")

	// The limit: 10 per tenant.
	for i := 1; i < 10; i++ {
		e.expect(call{method: "POST", path: "/v1/webhooks", body: fmt.Sprintf(`{"url":"https://hooks.example.com/%d"}`, i)}, 201, "")
	}
	e.expect(call{method: "POST", path: "/v1/webhooks", body: `{"url":"https://hooks.example.com/eleven"}`}, 409, "webhook_limit_reached")

	e.expect(call{method: "DELETE", path: "/v1/webhooks/" + id}, 200, "")
	e.expect(call{method: "DELETE", path: "/v1/webhooks/" + id}, 404, "not_found")
	e.expect(call{method: "POST", path: "/v1/webhooks/" + id + "/test"}, 404, "not_found")
	e.expect(call{method: "POST", path: "/v1/webhooks", body: `{"url":"https://hooks.example.com/again"}`}, 201, "")
}
