package devstack

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/merchantsync/merchantsync/internal/webhook"
)

// Receiver is the local stack's webhook receiver (`go run ./infra/dev/receiver`):
// it verifies each request's signature with Secret, as a publisher's
// receiver should, and prints one JSON line per request. Fail makes it
// answer 500 to the first Fail requests of each webhook-id, to watch the
// retries.
type Receiver struct {
	Secret webhook.Secret
	Fail   int
	Out    io.Writer
	Now    func() time.Time

	mu   sync.Mutex
	seen map[string]int
}

// ReceivedLine is what the receiver prints per request.
type ReceivedLine struct {
	Type      string `json:"type"`
	WebhookID string `json:"webhookId"`
	Attempt   int    `json:"attempt"` // the how-manieth request with this webhook-id
	Verified  bool   `json:"verified"`
	Error     string `json:"error,omitempty"`
	Answered  int    `json:"answered"`
	// LatencyMs is from the event's own time (a change's changedAt, a
	// run's finishedAt) to its arrival here.
	LatencyMs int64           `json:"latencyMs,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
}

func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now
	if rc.Now != nil {
		now = rc.Now
	}
	at := now()
	body, err := io.ReadAll(io.LimitReader(r.Body, webhook.MaxBodyBytes+1))
	if err != nil {
		http.Error(w, "read error", http.StatusBadRequest)
		return
	}
	line := ReceivedLine{WebhookID: r.Header.Get(webhook.HeaderID), Answered: http.StatusNoContent}
	if err := webhook.Verify(rc.Secret.Key(), r.Header, body, at); err != nil {
		line.Error = err.Error()
		line.Answered = http.StatusUnauthorized
	} else {
		line.Verified = true
	}
	var env struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	_ = json.Unmarshal(body, &env)
	line.Type, line.Data = env.Type, env.Data
	var times struct {
		ChangedAt  time.Time `json:"changedAt"`
		FinishedAt time.Time `json:"finishedAt"`
	}
	_ = json.Unmarshal(env.Data, &times)
	for _, t := range []time.Time{times.ChangedAt, times.FinishedAt} {
		if !t.IsZero() {
			line.LatencyMs = at.Sub(t).Milliseconds()
		}
	}
	rc.mu.Lock()
	if rc.seen == nil {
		rc.seen = map[string]int{}
	}
	rc.seen[line.WebhookID]++
	line.Attempt = rc.seen[line.WebhookID]
	rc.mu.Unlock()
	if line.Verified && line.Attempt <= rc.Fail {
		line.Answered = http.StatusInternalServerError
	}
	b, _ := json.Marshal(line)
	rc.mu.Lock()
	fmt.Fprintln(rc.Out, string(b))
	rc.mu.Unlock()
	w.WriteHeader(line.Answered)
}
