package syncer

import (
	"context"
	"log/slog"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// giveUp ends a run after an internal fault on its message's last delivery:
// nothing will resume it, so it is recorded failed rather than left running.
// If even that cannot be written, the fault is returned and the message
// goes to the dead-letter queue (and its alarm) as it is.
func (s *syncRun) giveUp(ctx context.Context, run merchantsync.Run, cause error) (merchantsync.Run, error) {
	s.log.LogAttrs(ctx, slog.LevelError, "sync: internal fault on the last delivery; failing the run", slog.String("error", cause.Error()))
	if run.RunID == "" {
		return run, cause
	}
	s.reauth = false
	failed, err := s.fail(ctx, run, merchantsync.StateError, &merchantsync.RunError{
		Code:    merchantsync.EInternal,
		Message: "The sync kept failing because of an internal error and was stopped; merchants already updated keep their new status. It will be tried again at the next sync."})
	if err == nil {
		return failed, nil
	}
	return run, cause
}

// fail finishes the run as failed. Stored relationships are not touched.
func (s *syncRun) fail(ctx context.Context, run merchantsync.Run, state merchantsync.ConnectionState, why *merchantsync.RunError) (merchantsync.Run, error) {
	run.State = merchantsync.RunFailed
	run.Error = why
	run.FinishedAt = s.e.now()
	run.MerchantsSynced = 0
	run.Counts = nil
	run.Changes = 0
	return s.finish(ctx, run, merchantsync.RunOutcome{State: state})
}

// finish records the run and updates the account (clearing ActiveRunID and
// releasing the lease) in one call.
func (s *syncRun) finish(ctx context.Context, run merchantsync.Run, upd merchantsync.RunOutcome) (merchantsync.Run, error) {
	if s.req.Trigger == merchantsync.TriggerSchedule {
		upd.ScheduleRunID = s.req.ScheduleRunID
	}
	fctx, cancel := s.e.finishCtx(ctx)
	defer cancel()
	// The lease was taken under a per-delivery holder id: FinishRun
	// releases it in the same transaction.
	upd.LeaseHolder = s.leaseID
	upd.ConnectionID = s.conn
	if r := s.result; r != nil {
		// What the network reported is kept even when the run failed: a
		// mode check that succeeded need not run again tomorrow.
		upd.Auth, upd.PullMode, upd.PullModeCheckedAt = r.Auth, r.Mode, r.CheckedAt
	}
	if err := s.e.Store.FinishRun(fctx, run, upd); err != nil {
		if merchantsync.ErrorCode(err) == merchantsync.EConnectionChanged {
			return s.overtaken(ctx, run)
		}
		return run, s.abort(ctx, retry("finish run", err))
	}
	s.leased = false
	s.outcome = string(run.State)
	return run, nil
}
