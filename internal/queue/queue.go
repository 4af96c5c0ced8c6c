// Package queue sends sync requests to the SQS sync queue and decodes them
// on the other side. Poller (poller.go) emulates Lambda's SQS event source
// mapping for the local stack.
package queue

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/merchantsync/merchantsync/internal/backoff"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// MaxBatch is SQS's limit of entries in one SendMessageBatch.
const MaxBatch = 10

// API is the part of the SQS client the Queue uses; *sqs.Client is one. A
// test wraps it to inject what the emulator cannot produce (entries SQS
// reports Failed) or to count calls at a scale no emulator holds.
type API interface {
	SendMessage(context.Context, *sqs.SendMessageInput, ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	SendMessageBatch(context.Context, *sqs.SendMessageBatchInput, ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
	ChangeMessageVisibility(context.Context, *sqs.ChangeMessageVisibilityInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
}

// Queue sends merchantsync.SyncRequests to one SQS queue.
type Queue struct {
	client API
	url    string

	// MaxAttempts bounds the SendMessageBatch calls made for one batch of
	// ten (the first and the retries of its Failed entries); 0 means 5.
	MaxAttempts int
	// BaseDelay and MaxDelay shape the backoff between those attempts:
	// full jitter over BaseDelay·2^n, capped at MaxDelay. 0 means 100ms and 5s.
	BaseDelay, MaxDelay time.Duration
	// Concurrency is how many SendMessageBatch calls SendAll keeps in
	// flight; 0 means 4.
	Concurrency int
}

// New returns a Queue that sends to the queue at url.
func New(client API, url string) *Queue {
	return &Queue{client: client, url: url}
}

// URL returns the queue's URL.
func (q *Queue) URL() string { return q.url }

// Send sends one request as one message.
func (q *Queue) Send(ctx context.Context, req merchantsync.SyncRequest) error {
	body, err := merchantsync.EncodeSyncRequest(req)
	if err != nil {
		return err
	}
	if _, err := q.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(q.url), MessageBody: aws.String(body)}); err != nil {
		return fmt.Errorf("queue: send %s/%s run %s: %w", req.TenantID, req.Network, req.RunID, err)
	}
	return nil
}

// RetryAfter makes a received message visible again d from now (SQS
// ChangeMessageVisibility, at most 12 hours): the sync worker gives a
// message back sooner than the queue's visibility timeout.
func (q *Queue) RetryAfter(ctx context.Context, receiptHandle string, d time.Duration) error {
	secs := int32(min(d, 12*time.Hour) / time.Second)
	_, err := q.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(q.url), ReceiptHandle: aws.String(receiptHandle), VisibilityTimeout: secs,
	})
	if err != nil {
		return fmt.Errorf("queue: change visibility: %w", err)
	}
	return nil
}

// SendStats counts what SendAll did.
type SendStats = merchantsync.SendStats

// FailedEntry is one request SQS refused for good.
type FailedEntry struct {
	Index       int // position in the stream given to SendAll
	TenantID    string
	RunID       string
	Code        string
	Message     string
	SenderFault bool
}

// BatchError lists the requests SendAll could not send. The others were
// sent.
type BatchError struct {
	Failed []FailedEntry
}

func (e *BatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "queue: %d of the batch not sent:", len(e.Failed))
	for i, f := range e.Failed {
		if i == 5 {
			fmt.Fprintf(&b, " …and %d more", len(e.Failed)-5)
			break
		}
		kind := "gave up after retries"
		if f.SenderFault {
			kind = "sender fault, not retried"
		}
		fmt.Fprintf(&b, " [#%d tenant %q run %q: %s: %s (%s)]", f.Index, f.TenantID, f.RunID, f.Code, f.Message, kind)
	}
	return b.String()
}

// entry is one request on its way: its position in the stream and body.
type entry struct {
	index int
	req   merchantsync.SyncRequest
	body  string
}

// SendAll sends every request received from reqs until it is closed, in
// full batches of ten (SendMessageBatch) whatever the order in which they
// arrive, with Concurrency calls in flight. Entries SQS reports Failed with
// SenderFault=false (throttling, internal errors) are sent again, alone,
// with exponential backoff and full jitter, at most MaxAttempts calls per
// batch and never past ctx. Entries Failed with SenderFault=true, and
// requests that do not encode, are not retried (they would fail again).
//
// Requests that could not be sent are returned in a *BatchError; the rest
// were sent. A call that fails as a whole (after the SDK's own retries)
// stops the sending and is returned as is; SendAll still reads reqs to its
// end, so a producer is never left blocked. Some batches may have been
// sent already, which is safe to repeat because the sync worker skips
// duplicate deliveries of a run.
func (q *Queue) SendAll(ctx context.Context, reqs <-chan merchantsync.SyncRequest) (SendStats, error) {
	conc := q.Concurrency
	if conc <= 0 {
		conc = 4
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		stats    SendStats
		failed   []FailedEntry
		firstErr error
		wg       sync.WaitGroup
		batches  = make(chan []entry)
	)
	for range conc {
		wg.Go(func() {
			for b := range batches {
				st, fl, err := q.sendChunk(ctx, b)
				mu.Lock()
				stats.Sent += st.Sent
				stats.Calls += st.Calls
				stats.Retried += st.Retried
				failed = append(failed, fl...)
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	flush := func(b []entry) {
		if len(b) == 0 {
			return
		}
		select {
		case batches <- b:
		case <-ctx.Done():
		}
	}
	var buf []entry
	n := 0
	for r := range reqs {
		i := n
		n++
		if ctx.Err() != nil {
			continue // stopped: drain, so the producer can finish
		}
		body, err := merchantsync.EncodeSyncRequest(r)
		if err != nil {
			mu.Lock()
			failed = append(failed, FailedEntry{Index: i, TenantID: r.TenantID, RunID: r.RunID,
				Code: merchantsync.ErrorCode(err), Message: err.Error(), SenderFault: true})
			mu.Unlock()
			continue
		}
		buf = append(buf, entry{index: i, req: r, body: body})
		if len(buf) == MaxBatch {
			flush(buf)
			buf = nil
		}
	}
	flush(buf)
	close(batches)
	wg.Wait()

	if firstErr != nil {
		return stats, firstErr
	}
	if len(failed) > 0 {
		sortFailed(failed)
		return stats, &BatchError{Failed: failed}
	}
	return stats, nil
}

// SendBatch sends reqs through SendAll.
func (q *Queue) SendBatch(ctx context.Context, reqs []merchantsync.SyncRequest) (SendStats, error) {
	ch := make(chan merchantsync.SyncRequest)
	go func() {
		defer close(ch)
		for _, r := range reqs {
			ch <- r
		}
	}()
	return q.SendAll(ctx, ch)
}

// sendChunk sends one batch (at most ten) until every entry is sent,
// refused for good, or out of attempts.
func (q *Queue) sendChunk(ctx context.Context, batch []entry) (SendStats, []FailedEntry, error) {
	var st SendStats
	maxAttempts := q.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = 5
	}
	byIndex := make(map[int]entry, len(batch))
	pending := make([]int, 0, len(batch))
	for _, e := range batch {
		byIndex[e.index] = e
		pending = append(pending, e.index)
	}
	var final []FailedEntry
	lastFailure := map[int]types.BatchResultErrorEntry{}
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt > 0 {
			if attempt >= maxAttempts {
				break
			}
			if err := backoff.Sleep(ctx, q.delay(attempt)); err != nil {
				return st, final, fmt.Errorf("queue: retrying %d failed entries: %w", len(pending), err)
			}
			st.Retried += len(pending)
		}
		entries := make([]types.SendMessageBatchRequestEntry, len(pending))
		for k, i := range pending {
			// Ids need only be unique within a call: the stream index is.
			entries[k] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(byIndex[i].body)}
		}
		out, err := q.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.url), Entries: entries})
		st.Calls++
		if err != nil {
			return st, final, fmt.Errorf("queue: SendMessageBatch of %d entries: %w", len(entries), err)
		}
		done := map[int]bool{}
		for _, s := range out.Successful {
			i, ok := entryIndex(s.Id, pending)
			if ok && !done[i] {
				done[i] = true
				st.Sent++
			}
		}
		var retry []int
		for _, f := range out.Failed {
			i, ok := entryIndex(f.Id, pending)
			if !ok || done[i] {
				continue
			}
			done[i] = true
			if f.SenderFault {
				final = append(final, failedEntry(byIndex[i], f))
				continue
			}
			lastFailure[i] = f
			retry = append(retry, i)
		}
		// SQS reports every entry as Successful or Failed. One it reported
		// neither way is in doubt: send it again (a duplicate is harmless,
		// a lost sync is not).
		for _, i := range pending {
			if !done[i] {
				lastFailure[i] = types.BatchResultErrorEntry{Code: aws.String("Unreported"), Message: aws.String("SQS reported the entry neither successful nor failed")}
				retry = append(retry, i)
			}
		}
		pending = retry
	}
	for _, i := range pending {
		final = append(final, failedEntry(byIndex[i], lastFailure[i]))
	}
	return st, final, nil
}

func entryIndex(id *string, pending []int) (int, bool) {
	i, err := strconv.Atoi(aws.ToString(id))
	if err != nil {
		return 0, false
	}
	for _, p := range pending {
		if p == i {
			return i, true
		}
	}
	return 0, false
}

func failedEntry(e entry, f types.BatchResultErrorEntry) FailedEntry {
	return FailedEntry{
		Index: e.index, TenantID: e.req.TenantID, RunID: e.req.RunID,
		Code: aws.ToString(f.Code), Message: aws.ToString(f.Message), SenderFault: f.SenderFault,
	}
}

func sortFailed(f []FailedEntry) {
	for i := 1; i < len(f); i++ {
		for j := i; j > 0 && f[j].Index < f[j-1].Index; j-- {
			f[j], f[j-1] = f[j-1], f[j]
		}
	}
}

// delay returns the wait before attempt n (n ≥ 1): full jitter over
// BaseDelay·2^(n-1), capped at MaxDelay.
func (q *Queue) delay(n int) time.Duration {
	base, maxd := q.BaseDelay, q.MaxDelay
	if base <= 0 {
		base = 100 * time.Millisecond
	}
	if maxd <= 0 {
		maxd = 5 * time.Second
	}
	return backoff.Jitter(n-1, base, maxd)
}

var (
	_ merchantsync.SyncQueue   = (*Queue)(nil)
	_ merchantsync.Redeliverer = (*Queue)(nil)
)
