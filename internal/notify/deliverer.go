package notify

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/webhook"
)

// Deliverer is the delivery function: one SQS message = one event for one
// webhook. Its retries ride on the queue (see internal/webhook): a failed
// attempt's message is made visible again after webhook.NextDelay and
// reported as a batch item failure; the receive count is the attempt
// number; after webhook.Attempts receives SQS moves it to the dead-letter
// queue, and the webhook shows state failing.
type Deliverer struct {
	Webhooks merchantsync.WebhookStore
	Sealer   merchantsync.SecretSealer
	Queue    merchantsync.Redeliverer
	Client   *http.Client // from webhook.NewClient
	Decode   func(body string) (merchantsync.Delivery, error)
	Now      func() time.Time
	Rand     webhook.Rand // nil: math/rand
	// DelayScale multiplies every retry delay (the local stack's is small,
	// so retries can be watched); 0 means 1.
	DelayScale float64
	Logger     *slog.Logger

	mu      sync.Mutex
	secrets map[[32]byte]cachedSecret
}

// secretTTL is how long an opened secret is kept in memory: one KMS
// Decrypt per webhook per warm function per five minutes, not per event.
const secretTTL = 5 * time.Minute

type cachedSecret struct {
	s       webhook.Secret
	expires time.Time
}

// Handle delivers a batch, every message at once (each attempt is bounded
// by the client's 10 s timeout).
func (d *Deliverer) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	failed := make([]bool, len(ev.Records))
	var wg sync.WaitGroup
	for i := range ev.Records {
		wg.Go(func() { failed[i] = !d.deliver(ctx, ev.Records[i]) })
	}
	wg.Wait()
	var resp events.SQSEventResponse
	for i, f := range failed {
		if f {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: ev.Records[i].MessageId})
		}
	}
	return resp, nil
}

// deliver makes one attempt; false gives the message back for a retry.
func (d *Deliverer) deliver(ctx context.Context, m events.SQSMessage) bool {
	log := d.logger().With("sqsMessage", m.MessageId)
	dl, err := d.Decode(m.Body)
	if err != nil {
		log.ErrorContext(ctx, "not a delivery, dropped", "err", err.Error())
		return true
	}
	attempt, _ := strconv.Atoi(m.Attributes["ApproximateReceiveCount"])
	attempt = max(attempt, 1)
	log = log.With("tenant", dl.TenantID, "webhook", dl.WebhookID, "message", dl.MessageID, "type", dl.Type, "attempt", attempt)
	w, err := d.Webhooks.GetWebhook(ctx, dl.TenantID, dl.WebhookID)
	if merchantsync.ErrorCode(err) == merchantsync.ENotFound {
		log.InfoContext(ctx, "webhook deleted, delivery dropped")
		return true
	}
	if err != nil {
		log.WarnContext(ctx, "webhook not readable; retrying", "err", err.Error())
		return false // the queue's visibility timeout, not an attempt
	}
	secret, err := d.secret(ctx, w)
	if err != nil {
		log.ErrorContext(ctx, "secret not opened; retrying", "err", err.Error())
		return false
	}
	now := d.now()
	a := webhook.Deliver(ctx, d.Client, w.URL, secret.Key(), webhook.Message{ID: dl.MessageID, Type: dl.Type, Body: dl.Body}, now)
	rec := merchantsync.DeliveryAttempt{TenantID: w.TenantID, WebhookID: w.ID, MessageID: dl.MessageID, Type: dl.Type,
		Attempt: attempt, Success: a.Success, StatusCode: a.StatusCode, At: now, Duration: a.Duration}
	if a.Err != nil {
		rec.Error = a.Err.Error()
	}
	var delay time.Duration
	retry := !a.Success && a.Retryable()
	if retry {
		var ok bool
		if delay, ok = webhook.NextDelay(attempt, a.RetryAfter, d.Rand); ok {
			delay = d.scale(delay)
			rec.NextAttemptAt = now.Add(delay)
		}
	}
	if err := d.Webhooks.RecordAttempt(ctx, rec); err != nil {
		log.WarnContext(ctx, "attempt not recorded", "err", err.Error())
	}
	switch {
	case a.Success:
		log.InfoContext(ctx, "delivered", "status", a.StatusCode, "ms", a.Duration.Milliseconds())
		if w.State == merchantsync.WebhookFailing {
			d.setState(ctx, log, w, merchantsync.WebhookActive, "")
		}
		return true
	case !rec.NextAttemptAt.IsZero():
		log.InfoContext(ctx, "attempt failed; retrying", "err", rec.Error, "retryIn", delay.String())
		if err := d.Queue.RetryAfter(ctx, m.ReceiptHandle, delay); err != nil {
			log.WarnContext(ctx, "retry delay not set; the queue's visibility timeout applies", "err", err.Error())
		}
		return false
	case retry:
		// The last attempt: SQS moves the message to the dead-letter
		// queue when it is received again (maxReceiveCount = Attempts).
		log.WarnContext(ctx, "last attempt failed; the delivery goes to the dead-letter queue", "err", rec.Error)
		d.setState(ctx, log, w, merchantsync.WebhookFailing, rec.Error)
		if err := d.Queue.RetryAfter(ctx, m.ReceiptHandle, 0); err != nil {
			log.WarnContext(ctx, "could not hand the delivery to the dead-letter queue at once", "err", err.Error())
		}
		return false
	default:
		// Retrying cannot help (a refused address, 410 Gone): dropped, and
		// the webhook shows why.
		log.WarnContext(ctx, "delivery given up", "err", rec.Error, "status", a.StatusCode)
		text := rec.Error
		if text == "" {
			text = "HTTP " + strconv.Itoa(a.StatusCode)
		}
		d.setState(ctx, log, w, merchantsync.WebhookFailing, text)
		return true
	}
}

func (d *Deliverer) setState(ctx context.Context, log *slog.Logger, w *merchantsync.Webhook, st merchantsync.WebhookState, why string) {
	if err := d.Webhooks.SetWebhookState(ctx, w.TenantID, w.ID, st, why, d.now()); err != nil {
		log.WarnContext(ctx, "webhook state not saved", "state", st, "err", err.Error())
	}
}

// secret opens the webhook's sealed secret, or takes it from the cache
// (keyed by the sealed bytes too, so a webhook re-created under the same
// id never gets the old one).
func (d *Deliverer) secret(ctx context.Context, w *merchantsync.Webhook) (webhook.Secret, error) {
	k := sha256.Sum256(append([]byte(w.TenantID+"\x00"+w.ID+"\x00"), w.Sealed...))
	now := d.now()
	d.mu.Lock()
	c, ok := d.secrets[k]
	d.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.s, nil
	}
	s, err := d.Sealer.Open(ctx, w.TenantID, w.ID, w.Sealed)
	if err != nil {
		return webhook.Secret{}, err
	}
	d.mu.Lock()
	if d.secrets == nil {
		d.secrets = map[[32]byte]cachedSecret{}
	}
	for key, v := range d.secrets { // a handful at most: drop the expired
		if !now.Before(v.expires) {
			delete(d.secrets, key)
		}
	}
	d.secrets[k] = cachedSecret{s: s, expires: now.Add(secretTTL)}
	d.mu.Unlock()
	return s, nil
}

func (d *Deliverer) scale(t time.Duration) time.Duration {
	if d.DelayScale <= 0 || d.DelayScale == 1 {
		return t
	}
	return max(time.Duration(float64(t)*d.DelayScale), time.Second).Round(time.Second)
}

func (d *Deliverer) now() time.Time {
	if d.Now == nil {
		return time.Now()
	}
	return d.Now()
}

func (d *Deliverer) logger() *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Logger
}
