package webhook_test

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/merchantsync/merchantsync/internal/webhook"
)

// The sender's side: a secret per endpoint (stored, shown to its owner
// once), a message per event, one attempt per SQS receive.
func Example() {
	secret := webhook.NewSecret() // store secret.Reveal() encrypted
	msg, err := webhook.NewMessage(webhook.EventRelationshipChanged, time.Now(),
		map[string]string{"merchantId": "38605", "status": "joined"})
	if err != nil {
		panic(err)
	}
	client := webhook.NewClient(webhook.ClientOptions{}) // once per Lambda instance

	receiveCount := 1 // the SQS message's ApproximateReceiveCount
	a := webhook.Deliver(context.Background(), client, "https://hooks.example.com/merchantsync", secret.Key(), msg, time.Now())
	if !a.Success && a.Retryable() {
		if wait, ok := webhook.NextDelay(receiveCount, a.RetryAfter, nil); ok {
			fmt.Println("ChangeMessageVisibility to", wait, "and report a batch item failure")
		}
	}
}

// The receiver's side, for our documentation: verify the raw body before
// parsing it.
func ExampleVerify() {
	key, err := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		panic(err)
	}
	body := []byte(`{"test": 2432232314}`)
	h := http.Header{}
	h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set("webhook-timestamp", "1614265330")
	h.Set("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")

	fmt.Println(webhook.Verify(key, h, body, time.Unix(1614265330+60, 0)))
	fmt.Println(webhook.Verify(key, h, body, time.Unix(1614265330+3600, 0)))
	// Output:
	// <nil>
	// webhook: message timestamp too old
}
