package syncer

import (
	"context"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/queue"
)

// DefaultStopMargin is how much time before the Lambda's deadline the worker
// stops starting messages.
const DefaultStopMargin = 10 * time.Second

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
	if n := msg.Attributes["ApproximateReceiveCount"]; n != "" && n != "1" {
		log = log.With(slog.String("receive_count", n))
	}
	req, err := queue.DecodeSyncRequest(msg.Body)
	if err != nil {
		// It can never succeed: consume it (the log keeps the evidence; the
		// body holds ids only, never secrets, but is not logged in full).
		log.LogAttrs(ctx, slog.LevelError, "worker: malformed sync message, dropped",
			slog.String("error", err.Error()), slog.Int("body_bytes", len(msg.Body)))
		return false
	}
	defer func() {
		if p := recover(); p != nil {
			log.LogAttrs(ctx, slog.LevelError, "worker: sync panicked", slog.Any("panic", p),
				slog.String("tenant_id", req.TenantID), slog.String("run_id", req.RunID))
			redeliver = true // the DLQ takes it after a few receives
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
