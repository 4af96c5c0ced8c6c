package syncer

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// DefaultStopMargin is how much time before the Lambda's deadline the worker
// stops starting messages.
const DefaultStopMargin = 10 * time.Second

// Retry backoff of a message the worker gives back after an internal fault:
// RetryBase after the first receive, doubling, at most RetryMax. Without
// it the message would wait out the queue's whole visibility timeout (90
// minutes, sized for the longest sync).
const (
	RetryBase = 30 * time.Second
	RetryMax  = 15 * time.Minute
)

// Worker is the sync Lambda's SQS handler. The event source mapping must
// enable ReportBatchItemFailures.
type Worker struct {
	Engine *Engine
	Logger *slog.Logger
	// StopMargin: a message is only started while more than this remains
	// before ctx's deadline; the rest are returned to the queue untouched.
	StopMargin time.Duration
	// Now is the clock compared with ctx's deadline (default time.Now).
	Now func() time.Time
	// Queue, when set, shortens the wait of a message given back after an
	// internal fault (RetryDelay).
	Queue merchantsync.Redeliverer
	// MaxReceives is the queue's maxReceiveCount: the delivery with that
	// receive count is the last (0: unknown, never treated as the last).
	MaxReceives int
}

// RetryDelay is how long a message received n times waits before its next
// delivery.
func RetryDelay(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	if n > 10 {
		return RetryMax
	}
	return min(RetryBase<<(n-1), RetryMax)
}

// NewWorker returns a Worker running e.
func NewWorker(e *Engine, logger *slog.Logger) *Worker {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Worker{Engine: e, Logger: logger, StopMargin: DefaultStopMargin}
}

func (w *Worker) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

// Handle syncs the batch's messages one after the other. Messages it could
// not finish (an internal fault, or too little time left) are reported as
// batch item failures so SQS redelivers only them; everything else is
// consumed. It never returns an error for a message's fault: that would
// redeliver the whole batch.
func (w *Worker) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	margin := w.StopMargin
	if margin <= 0 {
		margin = DefaultStopMargin
	}
	for i, msg := range ev.Records {
		if dl, ok := ctx.Deadline(); (ok && dl.Sub(w.now()) < margin) || ctx.Err() != nil {
			for _, rest := range ev.Records[i:] {
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rest.MessageId})
			}
			w.Logger.LogAttrs(ctx, slog.LevelWarn, "worker: too little time left, returning messages",
				slog.Int("returned", len(ev.Records)-i), slog.Int("done", i))
			break
		}
		if w.handleOne(ctx, msg) {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: msg.MessageId})
		}
	}
	return resp, nil
}

// handleOne reports whether msg must be redelivered.
func (w *Worker) handleOne(ctx context.Context, msg events.SQSMessage) (redeliver bool) {
	log := w.Logger.With(slog.String("message_id", msg.MessageId))
	received, _ := strconv.Atoi(msg.Attributes["ApproximateReceiveCount"])
	if received > 1 {
		log = log.With(slog.Int("receive_count", received))
	}
	req, err := merchantsync.DecodeSyncRequest(msg.Body)
	if err != nil {
		// It can never succeed: consume it (the log keeps the evidence; the
		// body holds ids only, never secrets, but is not logged in full).
		log.LogAttrs(ctx, slog.LevelError, "worker: malformed sync message, dropped",
			slog.String("error", err.Error()), slog.Int("body_bytes", len(msg.Body)))
		return false
	}
	req.LastAttempt = w.MaxReceives > 0 && received >= w.MaxReceives
	defer func() {
		if p := recover(); p != nil {
			log.LogAttrs(ctx, slog.LevelError, "worker: sync panicked", slog.Any("panic", p),
				slog.String("tenant_id", req.TenantID), slog.String("run_id", req.RunID))
			redeliver = true // the DLQ takes it after a few receives
		}
		if redeliver {
			w.retryLater(ctx, log, msg, received)
		}
	}()
	run, err := w.Engine.Sync(ctx, req)
	switch {
	case err == nil:
		return false
	case IsRetryable(err):
		log.LogAttrs(ctx, slog.LevelWarn, "worker: sync will be retried",
			slog.String("tenant_id", req.TenantID), slog.String("run_id", req.RunID), slog.String("error", err.Error()))
		return true
	default:
		log.LogAttrs(ctx, slog.LevelError, "worker: sync request dropped",
			slog.String("tenant_id", req.TenantID), slog.String("run_id", req.RunID),
			slog.String("state", string(run.State)), slog.String("code", merchantsync.ErrorCode(err)),
			slog.String("error", err.Error()))
		return false
	}
}

// retryLater makes a message given back visible again after RetryDelay
// rather than the queue's visibility timeout. Failing that, it is only
// logged: the message is still redelivered, later.
func (w *Worker) retryLater(ctx context.Context, log *slog.Logger, msg events.SQSMessage, received int) {
	if w.Queue == nil || msg.ReceiptHandle == "" {
		return
	}
	d := RetryDelay(received)
	if err := w.Queue.RetryAfter(context.WithoutCancel(ctx), msg.ReceiptHandle, d); err != nil {
		log.LogAttrs(ctx, slog.LevelWarn, "worker: could not shorten the retry wait", slog.String("error", err.Error()))
		return
	}
	log.LogAttrs(ctx, slog.LevelInfo, "worker: message given back", slog.Duration("retry_in", d))
}
