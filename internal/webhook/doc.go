// Package webhook is the core of merchantsync's signed webhooks for
// publishers, per the Standard Webhooks specification: signing secrets
// (secret.go), signatures (sign.go), the event envelope (message.go), which
// receivers may be called (urlpolicy.go, addr.go), the HTTP client and one
// delivery attempt (client.go, deliver.go) and the retry schedule
// (schedule.go). It stores nothing and calls no AWS service.
//
// Design decisions:
//
//   - The body is encoded once, when the event is queued, and every attempt
//     sends and signs those exact bytes; webhook-id stays the same across
//     attempts (receivers deduplicate on it), webhook-timestamp is each
//     attempt's own (receivers refuse replays older than Tolerance).
//
//   - Retries ride on the SQS queue that feeds the delivery Lambda: a failed
//     message is returned as a batch item failure after its visibility
//     timeout is set to NextDelay. The queue is then the only store of
//     pending deliveries (no table, timer or workflow to keep consistent),
//     the receive count is the attempt number, and maxReceiveCount =
//     Attempts lets SQS itself move an exhausted message to the dead-letter
//     queue. The price: one wait is at most 12 hours (a visibility
//     timeout's limit, hence 10 h where the specification's example has
//     14 h), a receive that never reaches the handler (a crash) uses up an
//     attempt, and the queue must keep messages longer than LongestSpan.
//
//   - The address is checked when the socket connects, not only when the URL
//     is saved: a name's DNS answer can change between the two (DNS
//     rebinding, or just a new record). The client's net.Dialer Control
//     function sees the very IP each connection goes to, after resolution,
//     for every address tried; ValidateURL at save time only gives early,
//     readable feedback. For the same reason no proxy is taken from the
//     environment (the proxy would connect, unchecked) and redirects are
//     never followed (the specification counts a 3xx as a failure).
//
//   - Of a response only the status code is kept, with a short error text
//     built from the failure's kind, never from the URL (its query may hold
//     a token), the secret or the body; at most 64 KiB of the body is read.
package webhook
