// Package queue sends sync requests to the SQS sync queue and decodes them
// on the other side. Poller (poller.go) emulates Lambda's SQS event source
// mapping for the local stack.
package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// Queue sends merchantsync.SyncRequests to one SQS queue.
type Queue struct {
	client *sqs.Client
	url    string

	// MaxAttempts bounds the SendMessageBatch calls made for one batch of
	// ten (the first and the retries of its Failed entries); 0 means 5.
	MaxAttempts int
	// BaseDelay and MaxDelay shape the backoff between those attempts:
	// full jitter over BaseDelay·2^n, capped at MaxDelay. 0 means 100ms and 5s.
	BaseDelay, MaxDelay time.Duration
	// Concurrency is how many SendMessageBatch calls SendBatch keeps in
	// flight; 0 means 4.
	Concurrency int
}

// New returns a Queue that sends to the queue at url.
func New(client *sqs.Client, url string) *Queue {
	return &Queue{client: client, url: url}
}

// URL returns the queue's URL.
func (q *Queue) URL() string { return q.url }

// Send sends one request as one message.
func (q *Queue) Send(ctx context.Context, req merchantsync.SyncRequest) error {
	body, err := encode(req)
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

// SendStats counts what SendBatch did.
type SendStats struct {
	Sent    int // requests SQS accepted
	Calls   int // SendMessageBatch calls made
	Retried int // entries sent again after SQS reported them Failed
}

// FailedEntry is one request SQS refused for good.
type FailedEntry struct {
	Index       int // position in the reqs given to SendBatch
	TenantID    string
	RunID       string
	Code        string
	Message     string
	SenderFault bool
}

// BatchError lists the requests SendBatch could not send. The others were
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

// SendBatch sends reqs with SendMessageBatch, ten per call. Entries SQS
// reports Failed with SenderFault=false (throttling, internal errors) are
// sent again, alone, with exponential backoff and full jitter, at most
// MaxAttempts calls per batch and never past ctx. Entries Failed with
// SenderFault=true are not retried (the same message would fail again).
//
// Requests that could not be sent are returned in a *BatchError; the rest
// were sent. A call that fails as a whole (after the SDK's own retries)
// stops SendBatch and is returned as is: some batches may have been sent
// already, which is safe to repeat because the sync worker skips duplicate
// deliveries of a run.
func (q *Queue) SendBatch(ctx context.Context, reqs []merchantsync.SyncRequest) (SendStats, error) {
	bodies := make([]string, len(reqs))
	for i, r := range reqs {
		b, err := encode(r)
		if err != nil {
			return SendStats{}, fmt.Errorf("queue: request #%d: %w", i, err)
		}
		bodies[i] = b
	}
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
		next     = make(chan int)
	)
	for range min(conc, (len(reqs)+MaxBatch-1)/MaxBatch) {
		wg.Go(func() {
			for start := range next {
				end := min(start+MaxBatch, len(reqs))
				st, fl, err := q.sendChunk(ctx, reqs, bodies, start, end)
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
feed:
	for start := 0; start < len(reqs); start += MaxBatch {
		select {
		case next <- start:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
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

// sendChunk sends reqs[start:end] (at most ten) until every entry is sent,
// refused for good, or out of attempts.
func (q *Queue) sendChunk(ctx context.Context, reqs []merchantsync.SyncRequest, bodies []string, start, end int) (SendStats, []FailedEntry, error) {
	var st SendStats
	maxAttempts := q.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = 5
	}
	pending := make([]int, 0, end-start)
	for i := start; i < end; i++ {
		pending = append(pending, i)
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
			// Ids need only be unique within a call: the index in reqs is.
			entries[k] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(bodies[i])}
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
				final = append(final, failedEntry(reqs, i, f))
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
		final = append(final, failedEntry(reqs, i, lastFailure[i]))
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

func failedEntry(reqs []merchantsync.SyncRequest, i int, f types.BatchResultErrorEntry) FailedEntry {
	return FailedEntry{
		Index: i, TenantID: reqs[i].TenantID, RunID: reqs[i].RunID,
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

// encode validates req and returns its JSON body.
func encode(req merchantsync.SyncRequest) (string, error) {
	if err := validate(req); err != nil {
		return "", err
	}
	b, err := json.Marshal(req)
	if err != nil {
		return "", fmt.Errorf("queue: encode: %w", err)
	}
	if len(b) > maxBody {
		// JSON escaping can grow a request past what DecodeSyncRequest
		// reads: never send a message the consumer would drop.
		return "", merchantsync.Errorf(merchantsync.EInvalid, "sync request encodes to %d bytes, more than %d", len(b), maxBody)
	}
	return string(b), nil
}

// maxBody bounds what DecodeSyncRequest reads; real requests are ~200 bytes.
const maxBody = 16 << 10

// DecodeSyncRequest decodes a message body strictly: one JSON object, no
// unknown fields, every required field present and valid. Its errors are
// *merchantsync.Error with code EInvalid (or EInvalidJSON): a message that
// fails to decode will never decode, so the consumer should drop it (or let
// it go to the DLQ) rather than retry.
func DecodeSyncRequest(body string) (merchantsync.SyncRequest, error) {
	var req merchantsync.SyncRequest
	if len(body) > maxBody {
		return req, merchantsync.Errorf(merchantsync.EInvalidJSON, "sync request is %d bytes, more than %d", len(body), maxBody)
	}
	if err := checkKeys(body); err != nil {
		return req, err
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return merchantsync.SyncRequest{}, merchantsync.Errorf(merchantsync.EInvalidJSON, "sync request is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return merchantsync.SyncRequest{}, merchantsync.Errorf(merchantsync.EInvalidJSON, "sync request has data after the JSON object")
	}
	if err := validate(req); err != nil {
		return merchantsync.SyncRequest{}, err
	}
	return req, nil
}

// syncRequestKeys are SyncRequest's JSON keys, exactly as spelled.
var syncRequestKeys = map[string]bool{"tenantId": true, "network": true, "runId": true, "trigger": true, "scheduleRunId": true}

// checkKeys makes decoding stricter than encoding/json: the body must be
// one object whose keys are SyncRequest's, spelled exactly (encoding/json
// would take "TenantID" for "tenantId") and each at most once.
func checkKeys(body string) error {
	bad := func(format string, args ...any) error {
		return merchantsync.Errorf(merchantsync.EInvalidJSON, "sync request "+format, args...)
	}
	dec := json.NewDecoder(strings.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		if string(bytes.TrimSpace([]byte(body))) == "null" {
			return nil // decodes to the zero request: "required" errors follow
		}
		return bad("is not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return bad("is not valid JSON: %v", err)
		}
		key, _ := tok.(string)
		if !syncRequestKeys[key] {
			return bad("has an unknown field %q", key)
		}
		if seen[key] {
			return bad("has the field %q twice", key)
		}
		seen[key] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return bad("is not valid JSON: %v", err)
		}
	}
	return nil
}

func validate(req merchantsync.SyncRequest) error {
	missing := func(field string) error {
		return merchantsync.FieldError(merchantsync.EInvalid, field, "sync request: "+field+" is required")
	}
	switch {
	case strings.TrimSpace(req.TenantID) == "":
		return missing("tenantId")
	case req.Network == "":
		return missing("network")
	case strings.TrimSpace(req.RunID) == "":
		return missing("runId")
	case req.Trigger == "":
		return missing("trigger")
	}
	if _, ok := merchantsync.LookupNetwork(req.Network); !ok {
		return merchantsync.FieldError(merchantsync.EInvalid, "network", fmt.Sprintf("sync request: unknown network %q", req.Network))
	}
	switch req.Trigger {
	case merchantsync.TriggerManual:
	case merchantsync.TriggerSchedule:
		if req.ScheduleRunID == "" {
			return missing("scheduleRunId")
		}
	default:
		return merchantsync.FieldError(merchantsync.EInvalid, "trigger", fmt.Sprintf("sync request: unknown trigger %q", req.Trigger))
	}
	return nil
}
