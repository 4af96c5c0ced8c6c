package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// pullAndApply pulls every relationship of the run's connection, diffs the
// pull against what is stored, writes what changed and finishes the run.
func (s *syncRun) pullAndApply(ctx context.Context, run merchantsync.Run) (merchantsync.Run, error) {
	e, req := s.e, s.req
	// The stored relationships come first: the pull looks up those its
	// listing leaves out before they count as missing.
	stored, err := e.Store.AllRelationships(ctx, req.TenantID, req.Network)
	if err != nil {
		return run, s.abort(ctx, retry("read relationships", err))
	}
	var lastSyncAt time.Time
	var pp merchantsync.PullPlan
	if s.acct != nil {
		lastSyncAt, pp = s.acct.LastSyncAt, s.acct.Plan()
	}
	if s.incremental() {
		// Only recent changes: nothing is missing, nothing to look up.
		pp.Since = merchantsync.IncrementalRange
	} else {
		for i := range stored {
			if !removedByMissing(&stored[i]) {
				pp.Known = append(pp.Known, merchantsync.MerchantKey{RegionNetwork: stored[i].RegionNetwork, AdvertiserID: stored[i].AdvertiserID})
			}
		}
	}

	pctx, cancel := s.pullCtx(ctx)
	defer cancel()
	var pull []merchantsync.Partnership
	key := merchantsync.ConnectionKey{TenantID: req.TenantID, Network: req.Network, ID: s.conn}
	res, perr := e.Network.Pull(pctx, key, pp, func(page []merchantsync.Partnership) error {
		pull = append(pull, page...)
		return nil
	})
	s.pull, s.result = res.PullStats, &res
	run.APICalls = res.Calls
	if perr != nil {
		return s.pullFailed(ctx, run, perr, pctx.Err() != nil)
	}

	// Everything this run records is as of its start, so a resumed run
	// computes the same keys and values as the attempt it resumes.
	var p plan
	if s.incremental() {
		p = diffRecent(req.TenantID, req.Network, req.RunID, run.StartedAt, lastSyncAt, stored, pull)
	} else {
		p = diffPull(req.TenantID, req.Network, req.RunID, run.StartedAt, lastSyncAt, stored, pull, res.Unverified...)
	}
	s.plan = &p
	if p.Suspicious {
		s.log.LogAttrs(ctx, slog.LevelWarn, "sync: the network returned no partnerships although some are stored; nothing applied",
			slog.Int("stored", len(stored)))
		return s.fail(ctx, run, merchantsync.StateError, &merchantsync.RunError{
			Code: merchantsync.ENetworkUnavailable,
			Message: fmt.Sprintf("Rakuten returned no partnerships although %d merchants are stored; nothing was changed. "+
				"This is usually a passing problem at Rakuten.", len(stored))})
	}
	if len(p.Writes) > 0 || len(p.Changes) > 0 {
		fence := merchantsync.Fence{TenantID: req.TenantID, Network: req.Network, ConnectionID: s.conn, LeaseHolder: s.leaseID}
		ws, err := e.Store.WriteRelationships(ctx, fence, p.Writes, p.Changes)
		s.stats = ws
		switch {
		case err == nil:
		case merchantsync.ErrorCode(err) == merchantsync.EConnectionChanged:
			return s.overtaken(ctx, run)
		case merchantsync.ErrorCode(err) == merchantsync.EConflict:
			// Our lease expired and another sync of this connection took
			// it: that sync does the work, this one stops writing.
			s.leased = false
			return s.join(ctx, run)
		case errors.Is(err, merchantsync.ErrRejected):
			s.log.LogAttrs(ctx, slog.LevelError, "sync: the table refused relationship data", slog.String("error", err.Error()))
			return s.fail(ctx, run, merchantsync.StateError, &merchantsync.RunError{
				Code: merchantsync.EInternal,
				Message: "Some of Rakuten's data could not be stored, so the sync stopped; merchants already updated keep their new status. " +
					"It will be tried again at the next sync."})
		default:
			return run, s.abort(ctx, retry("write relationships", err))
		}
	}

	run.State = merchantsync.RunSucceeded
	run.MerchantsSynced = p.Pulled
	run.Counts = p.Counts
	run.Changes = len(p.Changes)
	run.FinishedAt = e.now()
	run.Error = nil
	return s.finish(ctx, run, merchantsync.RunOutcome{State: merchantsync.StateConnected, Succeeded: true, Counts: p.Counts,
		Incremental: s.incremental()})
}

// pullCtx bounds the pull so that FinishReserve is left to record the
// outcome before ctx's deadline.
func (s *syncRun) pullCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(ctx, dl.Add(-s.e.finishReserve()))
	}
	return context.WithCancel(ctx)
}

// pullFailed turns a failed pull into a finished run (the network's answer
// or the credentials': consumed), an overtaken run, or a retryable error
// (ours). The Network has put the publisher's words in front of its own
// errors (a *merchantsync.Error with a network code).
func (s *syncRun) pullFailed(ctx context.Context, run merchantsync.Run, err error, pctxDone bool) (merchantsync.Run, error) {
	code := merchantsync.ErrorCode(err)
	attrs := []slog.Attr{slog.String("code", code), slog.String("error", err.Error())}
	switch code {
	case merchantsync.EConnectionChanged, merchantsync.ENotConnected:
		// The connection's secret is gone, or a token could not be saved
		// into it: disconnected or replaced since the run read the account.
		return s.overtaken(ctx, run)
	case merchantsync.EReauthRequired:
		s.reauth = true
		s.log.LogAttrs(ctx, slog.LevelWarn, "sync: the network refused the stored credentials", attrs...)
		return s.fail(ctx, run, merchantsync.StateReauthRequired, runError(err))
	case merchantsync.EIncrementalUnsupported:
		return s.incrementalOff(ctx, run, err)
	case merchantsync.ENetworkAuthFailed:
		s.log.LogAttrs(ctx, slog.LevelWarn, "sync: the network refused access", attrs...)
		return s.fail(ctx, run, merchantsync.StateError, runError(err))
	case merchantsync.ENetworkUnavailable:
		if ctx.Err() != nil {
			// Our own deadline or cancellation, not the network: let the
			// redelivery resume.
			return run, s.abort(ctx, retry("pull", err))
		}
		s.log.LogAttrs(ctx, slog.LevelWarn, "sync: the network did not answer properly", attrs...)
		why := runError(err)
		if pctxDone {
			why.Message = "Rakuten answered too slowly and the sync ran out of time; nothing was changed. It will be tried again at the next sync."
		}
		return s.fail(ctx, run, merchantsync.StateError, why)
	}
	// An internal fault (the credential store, our deadline): redeliver.
	s.log.LogAttrs(ctx, slog.LevelError, "sync: pull failed", attrs...)
	return run, s.abort(ctx, retry("pull", err))
}

// runError is the publisher's part of err: its code and message.
func runError(err error) *merchantsync.RunError {
	return &merchantsync.RunError{Code: merchantsync.ErrorCode(err), Message: merchantsync.ErrorMessage(err)}
}
