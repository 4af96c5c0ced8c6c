package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// MaxWait bounds ?wait=: API Gateway ends every request at 30 s.
const MaxWait = 25

// SyncNow serves POST /v1/networks/{network}/sync: queue a manual sync, and
// optionally wait for it to finish.
type SyncNow struct {
	Store  merchantsync.Store
	Queue  merchantsync.SyncQueue
	Now    func() time.Time
	Poll   time.Duration // how often ?wait polls the run; default 250ms
	Logger *slog.Logger
}

// Routes lists the route keys the sync-now function serves.
func (s *SyncNow) Routes() []Route {
	return []Route{{"POST /v1/networks/{network}/sync", s.postSync}}
}

// NewSyncNowRouter returns the router of the sync-now function.
func NewSyncNowRouter(s *SyncNow, logger *slog.Logger) *Router {
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Poll == 0 {
		s.Poll = 250 * time.Millisecond
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	return NewRouter(logger, s.Routes()...)
}

func (s *SyncNow) postSync(ctx context.Context, r *Request) (int, any, error) {
	wait := 0
	if w, ok := r.Query["wait"]; ok && w != "" {
		n, err := strconv.Atoi(w)
		if err != nil || n < 0 || n > MaxWait {
			return 0, nil, merchantsync.FieldError(merchantsync.EInvalid, "wait", "wait must be a whole number of seconds from 0 to 25.")
		}
		wait = n
	}
	if len(r.Body) > 0 {
		return 0, nil, merchantsync.Errorf(merchantsync.EInvalid, "This request takes no body.")
	}
	network := r.PathParams["network"]
	st, err := s.Store.GetSettings(ctx, r.Tenant)
	if err != nil {
		return 0, nil, err
	}
	if !st.Enabled {
		return 0, nil, merchantsync.Errorf(merchantsync.ESyncDisabled,
			"Syncing network relationships is turned off. Turn it on in the settings first.")
	}
	acct, err := s.Store.GetAccount(ctx, r.Tenant, network)
	if err != nil {
		return 0, nil, err
	}
	switch {
	case acct == nil || acct.AffiliateID == "":
		return 0, nil, merchantsync.Errorf(merchantsync.ENetworkIDRequired, "Save your Affiliate ID and connect your API credentials first.")
	case !acct.Connected:
		return 0, nil, merchantsync.Errorf(merchantsync.ENotConnected, "Connect your Rakuten API credentials first.")
	case acct.State == merchantsync.StateReauthRequired:
		return 0, nil, merchantsync.Errorf(merchantsync.EReauthRequired,
			"Rakuten no longer accepts the stored credentials. Enter your credentials again to reconnect.")
	}

	now := s.Now().UTC()
	run := merchantsync.Run{
		RunID: merchantsync.NewRunID(now), TenantID: r.Tenant, Network: network,
		Trigger: merchantsync.TriggerManual, State: merchantsync.RunQueued, QueuedAt: now,
	}
	run, created, err := s.Store.StartManualRun(ctx, run, now)
	if err != nil {
		return 0, nil, err
	}
	if created {
		req := merchantsync.SyncRequest{TenantID: r.Tenant, Network: network, RunID: run.RunID, Trigger: merchantsync.TriggerManual}
		if err := s.Queue.Send(ctx, req); err != nil {
			// Mark the run failed so the next request starts a fresh one
			// instead of joining a run that will never happen.
			run.State, run.FinishedAt = merchantsync.RunFailed, s.Now().UTC()
			run.Error = &merchantsync.RunError{Code: merchantsync.EInternal, Message: "The sync could not be queued."}
			if perr := s.Store.PutRun(ctx, run); perr != nil {
				s.Logger.ErrorContext(ctx, "mark unqueued run failed", "tenant_id", r.Tenant, "run_id", run.RunID, "err", perr.Error())
			}
			return 0, nil, err
		}
		s.Logger.InfoContext(ctx, "manual sync queued", "tenant_id", r.Tenant, "network", network, "run_id", run.RunID)
	}
	if wait > 0 {
		if done := s.await(ctx, r.Tenant, network, run.RunID, time.Duration(wait)*time.Second); done != nil {
			return http.StatusOK, toRunJSON(done), nil
		}
	}
	return http.StatusAccepted, toRunJSON(&run), nil
}

// await polls the run until it finishes or d passes. A run that joined
// another (state skipped) is followed to the run that did the work.
func (s *SyncNow) await(ctx context.Context, tenant, network, runID string, d time.Duration) *merchantsync.Run {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	t := time.NewTicker(s.Poll)
	defer t.Stop()
	for hops := 0; ; {
		run, err := s.Store.GetRun(ctx, tenant, network, runID)
		if err == nil && run != nil && run.State.Finished() {
			if run.JoinedRunID == "" || hops > 3 {
				return run
			}
			runID, hops = run.JoinedRunID, hops+1
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
