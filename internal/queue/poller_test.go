package queue_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/queue"
	"github.com/merchantsync/merchantsync/internal/testenv"
)

// testQueue is a queue on moto for one test and a client.
type testQueue struct {
	Client           *sqs.Client
	QueueURL, DLQURL string
}

func newTestQueue(t *testing.T, o testenv.QueueOptions) testQueue {
	t.Helper()
	url, dlq := testenv.NewQueue(t, o)
	return testQueue{Client: testenv.SQSClient(t), QueueURL: url, DLQURL: dlq}
}

type delivery struct {
	rec events.SQSMessage
	at  time.Time
}

// recorder is a handler that records deliveries and fails the messages
// whose tenant fail() picks.
type recorder struct {
	mu    sync.Mutex
	seen  map[string][]delivery // by tenant
	calls int
	fail  func(tenant string, n int) bool // n: deliveries of this tenant so far, this one included
	err   func(call int) error
}

func (r *recorder) handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.err != nil {
		if err := r.err(r.calls); err != nil {
			for _, rec := range ev.Records {
				req, _ := merchantsync.DecodeSyncRequest(rec.Body)
				r.seen[req.TenantID] = append(r.seen[req.TenantID], delivery{rec, time.Now()})
			}
			return events.SQSEventResponse{}, err
		}
	}
	var resp events.SQSEventResponse
	for _, rec := range ev.Records {
		req, err := merchantsync.DecodeSyncRequest(rec.Body)
		if err != nil {
			return resp, err
		}
		r.seen[req.TenantID] = append(r.seen[req.TenantID], delivery{rec, time.Now()})
		if r.fail != nil && r.fail(req.TenantID, len(r.seen[req.TenantID])) {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
		}
	}
	return resp, nil
}

func (r *recorder) deliveries(tenant string) []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.seen[tenant]...)
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sendTenants(t *testing.T, q *queue.Queue, tenants ...string) {
	t.Helper()
	var reqs []merchantsync.SyncRequest
	for i, tn := range tenants {
		reqs = append(reqs, merchantsync.SyncRequest{TenantID: tn, Network: "rakuten", RunID: fmt.Sprint("run-", i), Trigger: merchantsync.TriggerManual})
	}
	if _, err := q.SendBatch(context.Background(), reqs); err != nil {
		t.Fatal(err)
	}
}

func runPoller(t *testing.T, p *queue.Poller) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
}

// A handler that fails one message of a batch: only that message comes
// back, after the visibility timeout; the others are deleted.
func TestPollerRedeliversOnlyFailedItems(t *testing.T) {
	env := newTestQueue(t, testenv.QueueOptions{VisibilityTimeout: 1})
	q := queue.New(env.Client, env.QueueURL)
	sendTenants(t, q, "a", "b", "bad", "c", "d")
	rec := &recorder{seen: map[string][]delivery{}, fail: func(tenant string, n int) bool { return tenant == "bad" && n == 1 }}
	runPoller(t, &queue.Poller{Client: env.Client, QueueURL: env.QueueURL, Handler: rec.handle, WaitSeconds: 1})

	waitFor(t, 10*time.Second, "the failed message's redelivery", func() bool { return len(rec.deliveries("bad")) >= 2 })
	bad := rec.deliveries("bad")
	// Not before the visibility timeout: SQS (and moto) keep the first
	// receive's time, and each delivery's receive count.
	if f0, f1 := bad[0].rec.Attributes["ApproximateFirstReceiveTimestamp"], bad[1].rec.Attributes["ApproximateFirstReceiveTimestamp"]; f0 == "" || f0 != f1 {
		t.Errorf("ApproximateFirstReceiveTimestamp %q then %q, want the first receive's both times", f0, f1)
	}
	if c := bad[1].rec.Attributes["ApproximateReceiveCount"]; c != "2" {
		t.Errorf("ApproximateReceiveCount on redelivery = %q, want 2", c)
	}
	if bad[0].rec.MessageId != bad[1].rec.MessageId || bad[0].rec.ReceiptHandle == bad[1].rec.ReceiptHandle {
		t.Errorf("redelivery should be the same message with a new receipt handle")
	}
	r := bad[0].rec
	wantARN := "arn:aws:sqs:" + testenv.Region + ":" + testenv.AccountID + ":" + env.QueueURL[strings.LastIndexByte(env.QueueURL, '/')+1:]
	if r.EventSource != "aws:sqs" || r.EventSourceARN != wantARN || r.AWSRegion != testenv.Region || r.Md5OfBody == "" ||
		r.Attributes["ApproximateReceiveCount"] != "1" || r.Attributes["SentTimestamp"] == "" {
		t.Errorf("record = %+v, want a Lambda-like SQS record from %s", r, wantARN)
	}
	// Let the others' visibility timeout pass too: they must not come back.
	time.Sleep(1500 * time.Millisecond)
	for _, tn := range []string{"a", "b", "c", "d"} {
		if n := len(rec.deliveries(tn)); n != 1 {
			t.Errorf("tenant %s delivered %d times, want 1", tn, n)
		}
	}
	if n := len(rec.deliveries("bad")); n != 2 {
		t.Errorf("failed message delivered %d times, want 2", n)
	}
	if n := count(t, env.Client, env.QueueURL); n != 0 {
		t.Errorf("queue still holds %d messages", n)
	}
}

// A handler error deletes nothing: the whole batch comes back.
func TestPollerHandlerErrorDeletesNothing(t *testing.T) {
	env := newTestQueue(t, testenv.QueueOptions{VisibilityTimeout: 1})
	q := queue.New(env.Client, env.QueueURL)
	sendTenants(t, q, "a", "b", "c")
	rec := &recorder{seen: map[string][]delivery{}, err: func(call int) error {
		if call == 1 {
			return errors.New("boom")
		}
		return nil
	}}
	runPoller(t, &queue.Poller{Client: env.Client, QueueURL: env.QueueURL, Handler: rec.handle, WaitSeconds: 1})
	waitFor(t, 10*time.Second, "every message twice", func() bool {
		return len(rec.deliveries("a")) == 2 && len(rec.deliveries("b")) == 2 && len(rec.deliveries("c")) == 2
	})
	waitFor(t, 5*time.Second, "an empty queue", func() bool { return count(t, env.Client, env.QueueURL) == 0 })
}

// A panicking handler and a response naming an unknown message both fail
// the whole batch, as in Lambda.
func TestPollerBadResponsesFailTheBatch(t *testing.T) {
	env := newTestQueue(t, testenv.QueueOptions{VisibilityTimeout: 1})
	q := queue.New(env.Client, env.QueueURL)
	sendTenants(t, q, "a", "b")
	var mu sync.Mutex
	calls := 0
	handler := func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		switch calls {
		case 1:
			panic("handler bug")
		case 2:
			return events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{{ItemIdentifier: "not-in-batch"}}}, nil
		}
		return events.SQSEventResponse{}, nil
	}
	runPoller(t, &queue.Poller{Client: env.Client, QueueURL: env.QueueURL, Handler: handler, WaitSeconds: 1})
	waitFor(t, 10*time.Second, "a third delivery and an empty queue", func() bool {
		mu.Lock()
		c := calls
		mu.Unlock()
		return c >= 3 && count(t, env.Client, env.QueueURL) == 0
	})
}

// Redrive: a message that always fails lands in the DLQ after
// maxReceiveCount receives.
func TestPollerPoisonMessageGoesToDLQ(t *testing.T) {
	env := newTestQueue(t, testenv.QueueOptions{VisibilityTimeout: 1, DLQ: true, MaxReceiveCount: 2})
	q := queue.New(env.Client, env.QueueURL)
	sendTenants(t, q, "poison", "ok")
	rec := &recorder{seen: map[string][]delivery{}, fail: func(tenant string, n int) bool { return tenant == "poison" }}
	runPoller(t, &queue.Poller{Client: env.Client, QueueURL: env.QueueURL, Handler: rec.handle, WaitSeconds: 1})
	waitFor(t, 10*time.Second, "the poison message in the DLQ", func() bool { return count(t, env.Client, env.DLQURL) == 1 })
	if n := len(rec.deliveries("poison")); n != 2 {
		t.Errorf("poison delivered %d times, want maxReceiveCount=2", n)
	}
	if n := count(t, env.Client, env.QueueURL); n != 0 {
		t.Errorf("source queue holds %d", n)
	}
	got := received(t, env.DLQURL)
	if len(got) != 1 || got[0].TenantID != "poison" {
		t.Errorf("DLQ holds %+v", got)
	}
}

func TestPollerTimeoutIsTheHandlersDeadline(t *testing.T) {
	env := newTestQueue(t, testenv.QueueOptions{})
	q := queue.New(env.Client, env.QueueURL)
	sendTenants(t, q, "a")
	got := make(chan time.Duration, 1)
	p := &queue.Poller{Client: env.Client, QueueURL: env.QueueURL, WaitSeconds: 1, Timeout: 3 * time.Second,
		Handler: func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			dl, ok := ctx.Deadline()
			if !ok {
				got <- 0
			} else {
				got <- time.Until(dl)
			}
			return events.SQSEventResponse{}, nil
		}}
	n, err := p.PollOnce(context.Background(), "arn:aws:sqs:eu-west-1:1:q")
	if err != nil || n != 1 {
		t.Fatalf("PollOnce = %d, %v", n, err)
	}
	if d := <-got; d <= 2*time.Second || d > 3*time.Second {
		t.Errorf("handler deadline in %v, want ~3s", d)
	}
}
