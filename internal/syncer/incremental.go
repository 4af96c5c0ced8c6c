package syncer

import (
	"context"
	"log/slog"
	"time"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// Incremental runs (the hourly schedule, for tenants whose syncEvery is
// "1h") pull only the partnerships whose status changed within
// merchantsync.IncrementalRange and apply what came back. The daily run and
// Sync now stay full pulls: the reconciliation that notices vanished
// merchants and anything the recency filter misses.

// DefaultFreshFor is how long after a full run an incremental one has
// nothing to add: it is skipped (Engine.FreshFor).
const DefaultFreshFor = time.Hour

func (e *Engine) freshFor() time.Duration {
	if e.FreshFor == 0 {
		return DefaultFreshFor
	}
	return e.FreshFor
}

func (s *syncRun) incremental() bool { return s.req.Mode == merchantsync.ModeIncremental }

func (s *syncRun) mode() merchantsync.SyncMode { return runMode(s.req) }

// runMode is the mode req asks for: incremental, or full.
func runMode(req merchantsync.SyncRequest) merchantsync.SyncMode {
	if req.Mode == merchantsync.ModeIncremental {
		return merchantsync.ModeIncremental
	}
	return merchantsync.ModeFull
}

// skipIncremental says why an incremental run has nothing to do, or nil.
// The caller has checked that the account is connected and due.
func (s *syncRun) skipIncremental(st merchantsync.Settings) *merchantsync.RunError {
	a := s.acct
	switch {
	case a.IncrementalOff != "":
		return &merchantsync.RunError{Code: merchantsync.EIncrementalUnsupported, Message: a.IncrementalOff}
	case st.SyncEvery != merchantsync.SyncHourly:
		return &merchantsync.RunError{Code: merchantsync.ESyncDisabled, Message: "Hourly syncs are turned off; the daily sync still runs."}
	case !a.LastSyncAt.IsZero() && s.e.now().Sub(a.LastSyncAt) < s.e.freshFor():
		return &merchantsync.RunError{Code: merchantsync.ERecentlySynced, Message: "A full sync finished less than an hour ago."}
	}
	return nil
}

// incrementalOff ends a run whose recency filter the network refused or
// ignored: the account syncs with full pulls only from now on (until it is
// connected again), and its view says why. Nothing else changes.
func (s *syncRun) incrementalOff(ctx context.Context, run merchantsync.Run, err error) (merchantsync.Run, error) {
	why := runError(err)
	s.log.LogAttrs(ctx, slog.LevelWarn, "sync: incremental pulls turned off for the account",
		slog.String("code", why.Code), slog.String("error", err.Error()))
	run.State = merchantsync.RunSkipped
	run.Error = why
	run.FinishedAt = s.e.now()
	run.MerchantsSynced, run.Counts, run.Changes = 0, nil, 0
	return s.finish(ctx, run, merchantsync.RunOutcome{IncrementalOff: why.Message})
}

// diffRecent is diffPull for an incremental pull: every merchant it
// returns is applied as diffPull applies it (new ones added, status
// transitions recorded), and a stored merchant it leaves out is unchanged,
// never a miss, and an empty pull is not suspicious: nothing changed.
func diffRecent(tenantID, network, runID string, now, lastSyncAt time.Time,
	stored []merchantsync.Relationship, pull []merchantsync.Partnership) plan {
	if len(pull) == 0 {
		p := plan{Counts: make(map[merchantsync.Status]int)}
		for i := range stored {
			p.Counts[stored[i].Status]++
		}
		return p
	}
	unchanged := make([]merchantsync.MerchantKey, len(stored))
	for i, r := range stored {
		unchanged[i] = merchantsync.MerchantKey{RegionNetwork: r.RegionNetwork, AdvertiserID: r.AdvertiserID}
	}
	return diffPull(tenantID, network, runID, now, lastSyncAt, stored, pull, unchanged...)
}
