package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/merchantsync/merchantsync/internal/dynamo"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/queue"
)

// DueStore is what the scheduler needs from the table.
type DueStore interface {
	QueryDue(ctx context.Context, shard int, fn func([]dynamo.DueAccount) error) (pages int, err error)
}

// Queue is what the scheduler needs from the sync queue.
type Queue interface {
	SendBatch(ctx context.Context, reqs []merchantsync.SyncRequest) (queue.SendStats, error)
}

var (
	_ DueStore = (*dynamo.Store)(nil)
	_ Queue    = (*queue.Queue)(nil)
)

// BatchSize is SQS SendMessageBatch's maximum number of entries.
const BatchSize = 10

// ScheduleEvent is the EventBridge Scheduler target's Input:
//
//	{"scheduledTime":"<aws.scheduler.scheduled-time>"}
//
// The scheduled time is the one value every attempt of a scheduled run
// shares: Scheduler gives each delivery attempt a new execution id, and
// Lambda retries an asynchronous invocation with the same payload. So the
// run id is derived from it and a retry enqueues the same run ids. RunID is
// for invoking the scheduler by hand under a name of one's own.
type ScheduleEvent struct {
	RunID         string `json:"runId"`
	ScheduledTime string `json:"scheduledTime"`
}

// ScheduleResult is what one scheduler invocation did.
type ScheduleResult struct {
	ScheduleRunID string `json:"scheduleRunId"`
	Accounts      int    `json:"accounts"`   // due accounts read from the index
	Enqueued      int    `json:"enqueued"`   // messages SQS accepted
	QueryPages    int    `json:"queryPages"` // index pages read, all shards
	BatchCalls    int    `json:"batchCalls"` // SendMessageBatch calls, retries included
	Retried       int    `json:"retried"`    // entries sent again after a Failed answer
}

// Scheduler is the daily scheduler Lambda's handler: it reads every due
// account from the sharded sparse index in parallel and enqueues one sync
// request per account.
type Scheduler struct {
	Store  DueStore
	Queue  Queue
	Now    func() time.Time
	Logger *slog.Logger
	// Metrics receives EMF lines (nil: none).
	Metrics *Metrics
	// Senders is how many SendMessageBatch calls run at once (default 8).
	Senders int
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
func (s *Scheduler) scheduleIdentity(ev ScheduleEvent) (string, time.Time, error) {
	var at time.Time
	if ts := strings.TrimSpace(ev.ScheduledTime); ts != "" {
		t, err := time.Parse(time.RFC3339, ts)
		if err != nil {
			return "", time.Time{}, merchantsync.FieldError(merchantsync.EInvalid, "scheduledTime",
				fmt.Sprintf("scheduledTime %q is not an RFC 3339 time", ts))
		}
		at = t.UTC()
	} else {
		at = s.now().Truncate(24 * time.Hour)
	}
	id := strings.TrimSpace(ev.RunID)
	if id == "" {
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
	runID, at, err := s.scheduleIdentity(ev)
	if err != nil {
		log.LogAttrs(ctx, slog.LevelError, "scheduler: bad event", slog.String("error", err.Error()))
		return ScheduleResult{}, err
	}
	log = log.With(slog.String("schedule_run_id", runID), slog.String("trigger", string(merchantsync.TriggerSchedule)))
	res := ScheduleResult{ScheduleRunID: runID}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		mu       sync.Mutex
		errs     []error
		reqs     = make(chan merchantsync.SyncRequest, 4*BatchSize)
		batches  = make(chan []merchantsync.SyncRequest, 4)
		readers  sync.WaitGroup
		senders  sync.WaitGroup
		batcherD = make(chan struct{})
	)
	addErr := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}

	// Senders: SendMessageBatch, a few at a time.
	n := s.Senders
	if n <= 0 {
		n = 8
	}
	for range n {
		senders.Go(func() {
			for b := range batches {
				st, err := s.Queue.SendBatch(ctx, b)
				mu.Lock()
				res.Enqueued += st.Sent
				res.BatchCalls += st.Calls
				res.Retried += st.Retried
				mu.Unlock()
				if err != nil {
					addErr(fmt.Errorf("send batch of %d: %w", len(b), err))
				}
			}
		})
	}

	// Batcher: one stream of full batches across every shard, so N accounts
	// take ceil(N/10) calls however they spread over shards.
	go func() {
		defer close(batcherD)
		defer close(batches)
		buf := make([]merchantsync.SyncRequest, 0, BatchSize)
		for r := range reqs {
			buf = append(buf, r)
			if len(buf) == BatchSize {
				batches <- buf
				buf = make([]merchantsync.SyncRequest, 0, BatchSize)
			}
		}
		if len(buf) > 0 {
			batches <- buf
		}
	}()

	// Readers: every shard of the due index in parallel.
	for shard := range dynamo.Shards {
		readers.Go(func() {
			pages, err := s.Store.QueryDue(ctx, shard, func(page []dynamo.DueAccount) error {
				mu.Lock()
				res.Accounts += len(page)
				mu.Unlock()
				for _, a := range page {
					req := merchantsync.SyncRequest{
						TenantID:      a.TenantID,
						Network:       a.Network,
						RunID:         merchantsync.ScheduledRunID(runID, at, a.TenantID, a.Network),
						Trigger:       merchantsync.TriggerSchedule,
						ScheduleRunID: runID,
					}
					select {
					case reqs <- req:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				return nil
			})
			mu.Lock()
			res.QueryPages += pages
			mu.Unlock()
			if err != nil {
				addErr(fmt.Errorf("shard %d: %w", shard, err))
			}
		})
	}
	readers.Wait()
	close(reqs)
	<-batcherD
	senders.Wait()

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
