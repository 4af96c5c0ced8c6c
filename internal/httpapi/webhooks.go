package httpapi

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/webhook"
)

// Webhooks serves the routes of the webhooks function: a tenant's
// receivers. It may seal secrets (kms:Encrypt) and queue test deliveries;
// it never opens a secret: only the delivery function can.
type Webhooks struct {
	Store  merchantsync.WebhookStore
	Sealer merchantsync.SecretSealer
	Queue  merchantsync.DeliveryQueue
	// Policy is which receivers may be registered; the zero value is the
	// deployed one (public https only).
	Policy webhook.Policy
	Now    func() time.Time
	Logger *slog.Logger
}

// Routes lists the route keys the webhooks function serves.
func (h *Webhooks) Routes() []Route {
	return []Route{
		{"POST /v1/webhooks", h.create},
		{"GET /v1/webhooks", h.list},
		{"GET /v1/webhooks/{webhookId}", h.get},
		{"DELETE /v1/webhooks/{webhookId}", h.delete},
		{"POST /v1/webhooks/{webhookId}/test", h.test},
		{"GET /v1/webhooks/{webhookId}/deliveries", h.deliveries},
	}
}

// NewWebhooksRouter returns the router of the webhooks function.
func NewWebhooksRouter(h *Webhooks, logger *slog.Logger) *Router {
	if h.Now == nil {
		h.Now = time.Now
	}
	if h.Logger == nil {
		h.Logger = slog.New(slog.DiscardHandler)
	}
	return NewRouter(logger, h.Routes()...)
}

// MaxDescription bounds a webhook's description (characters).
const MaxDescription = 200

// SubscribableEvents are the events a webhook can subscribe to
// (webhook.test is only ever sent on request).
var SubscribableEvents = []webhook.EventType{
	webhook.EventRelationshipChanged, webhook.EventSyncCompleted,
	webhook.EventSyncFailed, webhook.EventConnectionReauthRequired,
}

type webhookRequest struct {
	URL         *string   `json:"url"`
	Events      *[]string `json:"events"`
	Description *string   `json:"description"`
}

type webhookJSON struct {
	ID           string     `json:"id"`
	URL          string     `json:"url"`
	Events       []string   `json:"events"`
	Description  string     `json:"description"`
	CreatedAt    *time.Time `json:"createdAt"`
	State        string     `json:"state"`
	FailingSince *time.Time `json:"failingSince,omitempty"`
	LastError    string     `json:"lastError,omitempty"`
	// Secret is only in the answer to the create.
	Secret string `json:"secret,omitempty"`
}

func toWebhookJSON(w *merchantsync.Webhook) webhookJSON {
	v := webhookJSON{ID: w.ID, URL: w.URL, Description: w.Description, CreatedAt: ts(w.CreatedAt),
		State: string(w.State), FailingSince: ts(w.FailingSince), LastError: w.LastError}
	evs := w.Events
	if len(evs) == 0 {
		evs = SubscribableEvents
	}
	for _, e := range evs {
		v.Events = append(v.Events, string(e))
	}
	if v.State == "" {
		v.State = string(merchantsync.WebhookActive)
	}
	return v
}

type attemptJSON struct {
	MessageID     string     `json:"messageId"`
	Type          string     `json:"type"`
	Attempt       int        `json:"attempt"`
	Success       bool       `json:"success"`
	StatusCode    int        `json:"statusCode,omitempty"`
	Error         string     `json:"error,omitempty"`
	At            *time.Time `json:"at"`
	DurationMs    int64      `json:"durationMs"`
	NextAttemptAt *time.Time `json:"nextAttemptAt,omitempty"`
}

func (h *Webhooks) create(ctx context.Context, r *Request) (int, any, error) {
	var body webhookRequest
	if err := decodeJSON(r, &body); err != nil {
		return 0, nil, err
	}
	if body.URL == nil || *body.URL == "" {
		return 0, nil, merchantsync.FieldError(merchantsync.EInvalid, "url", "url is required: the https URL of your webhook receiver.")
	}
	var urlErr *webhook.URLError
	if err := webhook.ValidateURL(*body.URL, h.Policy); errors.As(err, &urlErr) {
		return 0, nil, merchantsync.FieldError(urlErr.Code, "url", urlErr.Message)
	} else if err != nil {
		return 0, nil, err
	}
	w := merchantsync.Webhook{TenantID: r.Tenant, ID: "wh_" + strings.ToLower(rand.Text()), URL: *body.URL,
		CreatedAt: h.Now().UTC(), State: merchantsync.WebhookActive}
	if body.Events != nil {
		evs, err := parseEvents(*body.Events)
		if err != nil {
			return 0, nil, err
		}
		w.Events = evs
	}
	if body.Description != nil {
		d := strings.TrimSpace(*body.Description)
		if utf8.RuneCountInString(d) > MaxDescription || strings.ContainsFunc(d, func(c rune) bool { return c < ' ' || c == 0x7f }) {
			return 0, nil, merchantsync.FieldError(merchantsync.EInvalid, "description",
				fmt.Sprintf("description must be one line of at most %d characters.", MaxDescription))
		}
		w.Description = d
	}
	secret := webhook.NewSecret()
	sealed, err := h.Sealer.Seal(ctx, w.TenantID, w.ID, secret)
	if err != nil {
		return 0, nil, err
	}
	w.Sealed = sealed
	if err := h.Store.CreateWebhook(ctx, w); err != nil {
		return 0, nil, err
	}
	h.Logger.InfoContext(ctx, "webhook created", "tenant", w.TenantID, "webhook", w.ID, "events", len(w.Events))
	v := toWebhookJSON(&w)
	v.Secret = secret.Reveal()
	return http.StatusCreated, v, nil
}

// parseEvents reads a subscription list: known, subscribable, no
// duplicates; an empty list means every event, as leaving it out does.
func parseEvents(in []string) ([]webhook.EventType, error) {
	var out []webhook.EventType
	seen := map[string]bool{}
	for _, s := range in {
		t := webhook.EventType(s)
		if !slices.Contains(SubscribableEvents, t) {
			names := make([]string, len(SubscribableEvents))
			for i, e := range SubscribableEvents {
				names[i] = string(e)
			}
			return nil, merchantsync.FieldError(merchantsync.EInvalid, "events",
				fmt.Sprintf("%q is not an event you can subscribe to; choose from %s (or leave events out for all).", truncate(s, 64), strings.Join(names, ", ")))
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, t)
		}
	}
	if len(out) == len(SubscribableEvents) {
		return nil, nil // all of them: stored as "every event", so new ones are included too
	}
	return out, nil
}

func (h *Webhooks) list(ctx context.Context, r *Request) (int, any, error) {
	ws, err := h.Store.ListWebhooks(ctx, r.Tenant)
	if err != nil {
		return 0, nil, err
	}
	items := make([]webhookJSON, len(ws))
	for i := range ws {
		items[i] = toWebhookJSON(&ws[i])
	}
	return http.StatusOK, map[string]any{"items": items}, nil
}

func (h *Webhooks) get(ctx context.Context, r *Request) (int, any, error) {
	w, err := h.Store.GetWebhook(ctx, r.Tenant, r.PathParams["webhookId"])
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, toWebhookJSON(w), nil
}

func (h *Webhooks) delete(ctx context.Context, r *Request) (int, any, error) {
	if err := h.Store.DeleteWebhook(ctx, r.Tenant, r.PathParams["webhookId"]); err != nil {
		return 0, nil, err
	}
	h.Logger.InfoContext(ctx, "webhook deleted", "tenant", r.Tenant, "webhook", r.PathParams["webhookId"])
	return http.StatusOK, map[string]any{"id": r.PathParams["webhookId"], "deleted": true}, nil
}

// testData is the data of a webhook.test event.
type testData struct {
	WebhookID string `json:"webhookId"`
	Message   string `json:"message"`
}

func (h *Webhooks) test(ctx context.Context, r *Request) (int, any, error) {
	if len(r.Body) > 0 {
		return 0, nil, merchantsync.Errorf(merchantsync.EInvalid, "This request takes no body.")
	}
	w, err := h.Store.GetWebhook(ctx, r.Tenant, r.PathParams["webhookId"])
	if err != nil {
		return 0, nil, err
	}
	msg, err := webhook.NewMessage(webhook.EventWebhookTest, h.Now(), testData{WebhookID: w.ID,
		Message: "This is a test event from merchantsync: your receiver is set up."})
	if err != nil {
		return 0, nil, err
	}
	if err := h.Queue.SendDeliveries(ctx, []merchantsync.Delivery{{TenantID: w.TenantID, WebhookID: w.ID,
		MessageID: msg.ID, Type: msg.Type, Body: msg.Body}}); err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, map[string]string{"messageId": msg.ID, "type": string(msg.Type)}, nil
}

func (h *Webhooks) deliveries(ctx context.Context, r *Request) (int, any, error) {
	limit, err := parseLimit(r)
	if err != nil {
		return 0, nil, err
	}
	w, err := h.Store.GetWebhook(ctx, r.Tenant, r.PathParams["webhookId"])
	if err != nil {
		return 0, nil, err
	}
	as, err := h.Store.ListAttempts(ctx, w.TenantID, w.ID, limit)
	if err != nil {
		return 0, nil, err
	}
	items := make([]attemptJSON, len(as))
	for i, a := range as {
		items[i] = attemptJSON{MessageID: a.MessageID, Type: string(a.Type), Attempt: a.Attempt, Success: a.Success,
			StatusCode: a.StatusCode, Error: a.Error, At: ts(a.At), DurationMs: a.Duration.Milliseconds(),
			NextAttemptAt: ts(a.NextAttemptAt)}
	}
	return http.StatusOK, map[string]any{"items": items}, nil
}
