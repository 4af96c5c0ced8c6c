package merchantsync

import (
	"context"
	"time"

	"github.com/merchantsync/merchantsync/internal/webhook"
)

// MaxWebhooks is how many webhooks one tenant may register: enough for a
// production, a staging and a few tool receivers, few enough that one event
// never fans out into an unbounded number of deliveries.
const MaxWebhooks = 10

// WebhookState is what a webhook's view says about its deliveries.
type WebhookState string

const (
	WebhookActive WebhookState = "active"
	// WebhookFailing: an event was given up on (its last attempt failed, or
	// the receiver cannot be called at all). The next success clears it.
	WebhookFailing WebhookState = "failing"
)

// Webhook is one receiver a tenant registered. Its signing secret is kept
// only sealed (encrypted by a SecretSealer); the domain never holds it in
// the clear outside the moment of creation and of each delivery.
type Webhook struct {
	TenantID     string
	ID           string
	URL          string
	Events       []webhook.EventType // empty: every event
	Description  string
	CreatedAt    time.Time
	State        WebhookState
	FailingSince time.Time
	LastError    string // the last failure's kind and short text; never a body or the URL
	Sealed       []byte // the signing secret, encrypted
}

// Wants reports whether the webhook subscribes to t; webhook.test is sent
// only on request, to the one webhook asked for.
func (w *Webhook) Wants(t webhook.EventType) bool {
	if t == webhook.EventWebhookTest {
		return false
	}
	if len(w.Events) == 0 {
		return true
	}
	for _, e := range w.Events {
		if e == t {
			return true
		}
	}
	return false
}

// Event is one thing that happened to a tenant, for the event bus and the
// webhooks. ID is stable: the same stored fact always gives the same ID, so
// a notifier that runs twice over it produces the same webhook-id and the
// same EventBridge detail id, and receivers can drop the duplicate.
type Event struct {
	ID       string
	Type     webhook.EventType
	TenantID string
	Network  string
	At       time.Time
	Data     any // encoded as the envelope's data: a struct or map
}

// Delivery is one event on its way to one webhook: what the deliveries queue
// carries. Body is the signed envelope, encoded once, so every attempt sends
// the same bytes.
type Delivery struct {
	TenantID  string
	WebhookID string
	MessageID string // webhook-id: the same for every attempt
	Type      webhook.EventType
	Body      []byte
}

// DeliveryAttempt is what is kept of one attempt: no body, no URL, no
// secret. Attempts expire (DeliveryRetention).
type DeliveryAttempt struct {
	TenantID   string
	WebhookID  string
	MessageID  string
	Type       webhook.EventType
	Attempt    int
	Success    bool
	StatusCode int    // 0 when no response arrived
	Error      string // kind: text; empty on success
	At         time.Time
	Duration   time.Duration
	// NextAttemptAt is when the next attempt is due (zero: none).
	NextAttemptAt time.Time
}

// DeliveryRetention is how long attempts stay in a webhook's log: longer
// than an event's retries (webhook.LongestSpan), so the log shows all of an
// event's attempts.
const DeliveryRetention = 14 * 24 * time.Hour

// WebhookStore keeps webhooks and their delivery logs.
type WebhookStore interface {
	// CreateWebhook stores w; EWebhookLimit when the tenant has
	// MaxWebhooks already.
	CreateWebhook(ctx context.Context, w Webhook) error
	// GetWebhook returns one webhook; ENotFound when the tenant has none
	// with that id.
	GetWebhook(ctx context.Context, tenant, id string) (*Webhook, error)
	// ListWebhooks returns the tenant's webhooks, oldest first.
	ListWebhooks(ctx context.Context, tenant string) ([]Webhook, error)
	// DeleteWebhook removes one webhook; ENotFound when it is not there.
	DeleteWebhook(ctx context.Context, tenant, id string) error
	// SetWebhookState records that deliveries to the webhook are failing
	// (lastError set) or work again (lastError empty). A webhook deleted
	// meanwhile stays deleted.
	SetWebhookState(ctx context.Context, tenant, id string, state WebhookState, lastError string, at time.Time) error
	// RecordAttempt adds an attempt to the webhook's delivery log.
	RecordAttempt(ctx context.Context, a DeliveryAttempt) error
	// ListAttempts returns the webhook's most recent attempts, newest first.
	ListAttempts(ctx context.Context, tenant, id string, limit int) ([]DeliveryAttempt, error)
}

// SecretSealer encrypts webhook signing secrets for storage, bound to the
// webhook they belong to: a sealed secret copied onto another tenant's or
// webhook's item does not open.
type SecretSealer interface {
	Seal(ctx context.Context, tenant, webhookID string, s webhook.Secret) ([]byte, error)
	Open(ctx context.Context, tenant, webhookID string, sealed []byte) (webhook.Secret, error)
}

// DeliveryQueue carries deliveries to the delivery function.
type DeliveryQueue interface {
	SendDeliveries(ctx context.Context, ds []Delivery) error
}

// EventBus publishes events for other AWS consumers (the stack's
// EventBridge bus). Publish returns an error unless every event was taken.
type EventBus interface {
	Publish(ctx context.Context, evs []Event) error
}
