package syncer

import (
	"context"
	"log/slog"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// record logs the outcome and emits its metrics.
func (s *syncRun) record(ctx context.Context, run merchantsync.Run, err error) {
	dur := s.e.now().Sub(s.start)
	attrs := []slog.Attr{
		slog.String("outcome", s.outcome),
		slog.String("state", string(run.State)),
		slog.Int("merchants_synced", run.MerchantsSynced),
		slog.Int("changes", run.Changes),
		slog.Int("rakuten_calls", s.pull.Calls),
		slog.Int("pages", s.pull.Pages),
		slog.Int("rakuten_retries", s.pull.Retries),
		slog.Int("throttles", s.pull.Throttles),
		slog.Int("token_refreshes", s.pull.Tokens),
		slog.Int64("duration_ms", dur.Milliseconds()),
	}
	if s.plan != nil {
		attrs = append(attrs,
			slog.Int("added", s.plan.Added), slog.Int("updated", s.plan.Updated),
			slog.Int("missed", s.plan.Missed), slog.Int("removed_by_missing", s.plan.RemovedByMissing),
			slog.Int("relationship_writes", len(s.plan.Writes)),
			slog.Int("dynamo_write_calls", s.stats.Calls))
	}
	if r := s.result; r != nil {
		attrs = append(attrs, slog.String("auth", string(r.Auth)), slog.String("pull_mode", string(r.Mode)),
			slog.Int("lookups", r.Lookups), slog.Int("unverified", len(r.Unverified)))
		if r.Check != nil {
			attrs = append(attrs, slog.Int("mode_check_unfiltered", r.Check.Unfiltered), slog.Int("mode_check_by_status", r.Check.ByStatus))
		}
	}
	if run.JoinedRunID != "" {
		attrs = append(attrs, slog.String("joined_run_id", run.JoinedRunID))
	}
	if run.Error != nil {
		attrs = append(attrs, slog.String("error_code", run.Error.Code))
	}
	level := slog.LevelInfo
	if err != nil {
		level = slog.LevelError
		attrs = append(attrs, slog.String("error", err.Error()), slog.Bool("retryable", IsRetryable(err)))
	} else if run.State == merchantsync.RunFailed {
		level = slog.LevelWarn
	}
	s.log.LogAttrs(ctx, level, "sync: done", attrs...)

	if s.e.Metrics == nil {
		return
	}
	var ms []metric
	switch {
	case err != nil:
		// Internal faults are visible as Lambda errors and DLQ depth.
	case s.outcome == "duplicate":
		// A redelivery of a finished run: counted when it ran.
	case run.State == merchantsync.RunSucceeded:
		writes := 0
		if s.plan != nil {
			writes = len(s.plan.Writes) + len(s.plan.Changes)
		}
		ms = append(ms, count(MetricSyncsSucceeded, 1), count(MetricMerchantsSynced, run.MerchantsSynced),
			count(MetricMerchantsChanged, run.Changes), count(MetricDynamoWrites, writes))
	case run.State == merchantsync.RunFailed:
		ms = append(ms, count(MetricSyncsFailed, 1))
	case run.State == merchantsync.RunSkipped:
		ms = append(ms, count(MetricSyncsSkipped, 1))
	}
	if s.reauth {
		ms = append(ms, count(MetricReauthRequired, 1))
	}
	if s.result != nil && s.result.Check.Disagree() {
		ms = append(ms, count(MetricPullModeMismatch, 1))
	}
	if s.pull.Calls > 0 {
		ms = append(ms, count(MetricRakutenCalls, s.pull.Calls), count(MetricThrottles, s.pull.Throttles),
			metric{Name: MetricSyncDuration, Unit: "Milliseconds", Value: float64(dur.Milliseconds())})
	}
	s.e.Metrics.emit(map[string]string{"Network": s.req.Network},
		map[string]any{"tenant_id": s.req.TenantID, "run_id": s.req.RunID, "trigger": string(s.req.Trigger), "outcome": s.outcome},
		ms...)
}
