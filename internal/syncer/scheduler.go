package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// ScheduleEvent is the EventBridge Scheduler target's Input:
//
//	{"scheduledTime":"<aws.scheduler.scheduled-time>"}
//
// The scheduled time is the one value every attempt of a scheduled run
// shares: Scheduler gives each delivery attempt a new execution id, and
// Lambda retries an asynchronous invocation with the same payload. So the
// run id is derived from it and a retry enqueues the same run ids. RunID is
// for invoking the scheduler by hand under a name of one's own. Mode is
// "incremental" for the hourly schedule (only the accounts of hourly
// tenants, incremental runs); empty or "full" for the daily one (every due
// account, full runs).
type ScheduleEvent struct {
	RunID         string `json:"runId"`
	ScheduledTime string `json:"scheduledTime"`
	Mode          string `json:"mode,omitempty"`
}

// ScheduleResult is what one scheduler invocation did.
type ScheduleResult struct {
	ScheduleRunID string `json:"scheduleRunId"`
	Mode          string `json:"mode"`
	Accounts      int    `json:"accounts"`   // due accounts read from the index
	Enqueued      int    `json:"enqueued"`   // messages SQS accepted
	QueryPages    int    `json:"queryPages"` // index pages read, all shards
	BatchCalls    int    `json:"batchCalls"` // SendMessageBatch calls, retries included
	Retried       int    `json:"retried"`    // entries sent again after a Failed answer
}

// Scheduler is the daily scheduler Lambda's handler: it streams every due
// account (the store reads its index in parallel) into the queue, which
// batches them, one sync request per account.
type Scheduler struct {
	Store  merchantsync.DueAccounts
	Queue  merchantsync.SyncQueue
	Now    func() time.Time
	Logger *slog.Logger
	// Metrics receives EMF lines (nil: none).
	Metrics *Metrics
}

func (s *Scheduler) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// scheduleIdentity returns the schedule run id and scheduled time of ev.
// Without a scheduled time, today's midnight (UTC) stands in; without a run
// id, the scheduled time names the run, so every attempt of one scheduled
// run is the same run.
func (s *Scheduler) scheduleIdentity(ev ScheduleEvent, mode merchantsync.SyncMode) (string, time.Time, error) {
	var at time.Time
	if ts := strings.TrimSpace(ev.ScheduledTime); ts != "" {
		t, err := time.Parse(time.RFC3339, ts)
		if err != nil {
			return "", time.Time{}, merchantsync.FieldError(merchantsync.EInvalid, "scheduledTime",
				fmt.Sprintf("scheduledTime %q is not an RFC 3339 time", ts))
		}
		at = t.UTC()
	} else if mode == merchantsync.ModeIncremental {
		at = s.now().Truncate(time.Hour)
	} else {
		at = s.now().Truncate(24 * time.Hour)
	}
	id := strings.TrimSpace(ev.RunID)
	switch {
	case id != "":
	case mode == merchantsync.ModeIncremental:
		id = "hourly-" + at.Format(time.RFC3339)
	default:
		id = "schedule-" + at.Format(time.RFC3339)
	}
	return id, at, nil
}

// Handle enqueues a sync of every due account. Reading stops at the first
// index error; a batch SQS would not take (after the queue's own retries)
// does not stop the others. Either way Handle returns an error so that
// Lambda retries the asynchronous invocation (then sends it to the
// OnFailure destination): the retry names the same runs, so accounts
// already synced are skipped and nothing runs twice.
func (s *Scheduler) Handle(ctx context.Context, ev ScheduleEvent) (ScheduleResult, error) {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := s.now()
	var mode merchantsync.SyncMode
	switch merchantsync.SyncMode(strings.TrimSpace(ev.Mode)) {
	case "", merchantsync.ModeFull:
		mode = merchantsync.ModeFull
	case merchantsync.ModeIncremental:
		mode = merchantsync.ModeIncremental
	default:
		err := merchantsync.FieldError(merchantsync.EInvalid, "mode", fmt.Sprintf(`mode %q is neither "full" nor "incremental"`, ev.Mode))
		log.LogAttrs(ctx, slog.LevelError, "scheduler: bad event", slog.String("error", err.Error()))
		return ScheduleResult{}, err
	}
	runID, at, err := s.scheduleIdentity(ev, mode)
	if err != nil {
		log.LogAttrs(ctx, slog.LevelError, "scheduler: bad event", slog.String("error", err.Error()))
		return ScheduleResult{}, err
	}
	log = log.With(slog.String("schedule_run_id", runID), slog.String("trigger", string(merchantsync.TriggerSchedule)),
		slog.String("mode", string(mode)))
	res := ScheduleResult{ScheduleRunID: runID, Mode: string(mode)}
	each, reqMode := s.Store.EachDue, merchantsync.SyncMode("")
	if mode == merchantsync.ModeIncremental {
		// Only the hourly accounts' own due keys are read.
		each, reqMode = s.Store.EachDueHourly, merchantsync.ModeIncremental
	}

	// One stream from every shard to the queue: it fills batches across
	// shards, so N accounts take about N/10 calls however they spread.
	reqs := make(chan merchantsync.SyncRequest, 64)
	var accounts atomic.Int64
	var readErr error
	go func() {
		defer close(reqs)
		res.QueryPages, readErr = each(ctx, func(page []merchantsync.AccountKey) error {
			accounts.Add(int64(len(page)))
			for _, a := range page {
				req := merchantsync.SyncRequest{
					TenantID:      a.TenantID,
					Network:       a.Network,
					RunID:         merchantsync.ScheduledRunID(runID, at, a.TenantID, a.Network),
					Trigger:       merchantsync.TriggerSchedule,
					ScheduleRunID: runID,
					Mode:          reqMode,
				}
				select {
				case reqs <- req:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
	}()
	st, sendErr := s.Queue.SendAll(ctx, reqs)
	res.Accounts = int(accounts.Load())
	res.Enqueued, res.BatchCalls, res.Retried = st.Sent, st.Calls, st.Retried
	var errs []error
	if readErr != nil {
		errs = append(errs, fmt.Errorf("reading due accounts: %w", readErr))
	}
	if sendErr != nil {
		errs = append(errs, fmt.Errorf("enqueueing: %w", sendErr))
	}

	err = errors.Join(errs...)
	attrs := []slog.Attr{
		slog.Int("accounts", res.Accounts), slog.Int("enqueued", res.Enqueued),
		slog.Int("query_pages", res.QueryPages), slog.Int("batch_calls", res.BatchCalls),
		slog.Int("retried", res.Retried), slog.Time("scheduled_time", at),
		slog.Int64("duration_ms", s.now().Sub(start).Milliseconds()),
	}
	if err != nil {
		log.LogAttrs(ctx, slog.LevelError, "scheduler: incomplete", append(attrs, slog.String("error", err.Error()))...)
	} else {
		log.LogAttrs(ctx, slog.LevelInfo, "scheduler: done", attrs...)
	}
	s.Metrics.emit(nil, map[string]any{"schedule_run_id": runID},
		count(MetricDueAccounts, res.Accounts), count(MetricMessagesEnqueued, res.Enqueued))
	return res, err
}
