// Package webhook is the core of merchantsync's signed webhooks for
// publishers, per the Standard Webhooks specification: signing secrets,
// signatures, the event envelope, the policy that decides which receiver
// URLs and addresses may be called, the HTTP client and single delivery
// attempt, and the retry schedule. It stores nothing and talks to no AWS
// service; the delivery Lambda around it does.
package webhook
