// Package syncer is merchantsync's sync engine and the two Lambda handlers
// around it: the SQS sync worker (one message = one tenant × network) and
// the daily scheduler that enqueues every due account.
//
// The engine runs one sync (docs/architecture.md, "The sync"): lease, a
// full pull of the network's relationships, a diff that writes only what
// changed, and a run record. It depends on the world only through the
// domain's ports (merchantsync.Store, merchantsync.Network): tokens and
// secrets stay behind the Network, which saves any token it obtains into
// the connection's credentials before using it.
//
// Files: engine.go starts a run and decides whether it syncs at all;
// pull.go pulls and applies; finish.go records how it ended; observe.go
// logs and counts it; diff.go is the pure diff.
//
// Decisions worth knowing:
//   - Outcomes: a nil error means the message is consumed (succeeded,
//     failed because of Rakuten or the credentials, skipped, joined, or a
//     duplicate of a finished run). *RetryableError means an internal fault
//     (DynamoDB, Secrets Manager): the worker returns the message and its
//     redelivery resumes the same run.
//   - The lease holder id is "<runId>~<nonce>", one nonce per delivery: the
//     store lets a holder re-take its own lease, so without the nonce two
//     concurrent deliveries of one message would both sync. A delivery that
//     finds its own run holding the lease asks for redelivery (by then the
//     run has finished, or the lease of a crashed delivery has expired).
//   - Another run holding the lease: this run ends skipped with
//     JoinedRunID (stored with PutRun: the account's lastRun is left to the
//     run that really syncs).
//   - LastSeenAt is not rewritten on every pull (that would write every
//     merchant every day): it is exact on every write of a seen merchant,
//     and on the first miss it is set to the account's LastSyncAt (the last
//     pull that had it). Readers take the account's LastSyncAt as lastSeenAt
//     while MissedPulls == 0.
//   - Removed by missing: on the MissesBeforeRemoved-th consecutive miss the
//     status becomes removed with raw status RawMissing ("missing") and one
//     change event; further misses write nothing.
//   - An empty pull while merchants are stored is suspicious: the run fails
//     (network_unavailable, account state error) and nothing is applied, so
//     the publisher sees it and LastSyncAt stays truthful.
//   - Fencing: a run syncs the connection the account had when it started
//     (Account.ConnectionID). Every write it makes is conditional on that
//     connection still being current: rotated tokens go to that connection's
//     own secret, relationships and changes are written in transactions that
//     check the connection and the lease, and FinishRun checks it too. A
//     run overtaken by a reconnect or disconnect ends skipped
//     (connection_changed) and changes nothing of the new connection.
//   - A store error that retrying cannot fix (merchantsync.ErrRejected)
//     fails the run instead of asking for redelivery; so does any internal
//     fault on the message's last delivery (SyncRequest.LastAttempt), so no
//     run stays running once its message is gone.
package syncer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// Defaults of the Engine's tunables.
const (
	DefaultLeaseTTL      = 15 * time.Minute // a Lambda never runs longer
	DefaultFinishReserve = 5 * time.Second
)

// Engine syncs one tenant × network per call. The zero values of the
// optional fields are usable.
type Engine struct {
	Store   merchantsync.Store
	Network merchantsync.Network

	Now      func() time.Time // default time.Now
	LeaseTTL time.Duration    // default DefaultLeaseTTL
	// FinishReserve is kept back from ctx's deadline for recording the
	// outcome: the Rakuten pull gets the deadline minus this.
	FinishReserve time.Duration
	Logger        *slog.Logger // default: discard
	// FreshFor: an incremental run this soon after a full one is skipped
	// (default DefaultFreshFor; negative: never, as make dev does so that
	// an hourly run can be tried at once).
	FreshFor time.Duration
	Metrics  *Metrics // nil: no EMF lines
}

// RetryableError is an internal fault (DynamoDB, Secrets Manager, a lease
// held by another delivery of the same run): the message must go back to the
// queue, and its redelivery resumes the run.
type RetryableError struct {
	Op  string
	Err error
}

func (e *RetryableError) Error() string { return "syncer: " + e.Op + ": " + e.Err.Error() }
func (e *RetryableError) Unwrap() error { return e.Err }

// IsRetryable reports whether err asks for the message to be redelivered.
func IsRetryable(err error) bool {
	var r *RetryableError
	return errors.As(err, &r)
}

func retry(op string, err error) error { return &RetryableError{Op: op, Err: err} }

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC()
	}
	return time.Now().UTC()
}

func (e *Engine) logger() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (e *Engine) leaseTTL() time.Duration {
	if e.LeaseTTL > 0 {
		return e.LeaseTTL
	}
	return DefaultLeaseTTL
}

func (e *Engine) finishReserve() time.Duration {
	if e.FinishReserve > 0 {
		return e.FinishReserve
	}
	return DefaultFinishReserve
}

// finishCtx is a context for recording an outcome: it survives the
// cancellation of ctx (the pull's deadline passing must not stop us from
// saying so) but is bounded by FinishReserve.
func (e *Engine) finishCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), e.finishReserve())
}

// leaseSep separates the run id from the delivery nonce in a lease holder id.
const leaseSep = "~"

// leaseHolder returns a lease holder id for one delivery of runID. The
// store lets a holder re-take its own lease; with a nonce per delivery, two
// concurrent deliveries of the same message cannot both hold it.
func leaseHolder(runID string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return runID + leaseSep + hex.EncodeToString(b[:])
}

// leaseRun returns the run id of a lease holder id.
func leaseRun(holder string) string {
	run, _, _ := strings.Cut(holder, leaseSep)
	return run
}

// Sync runs one sync request to its end and returns the run as recorded.
//
// A nil error means the message is consumed, whatever the run's state
// (succeeded, failed because of Rakuten or the credentials, skipped, joined,
// or a duplicate delivery of a finished run). A *RetryableError means an
// internal fault: the message must be redelivered, and the redelivery
// resumes the run. Any other error is a request that can never succeed
// (malformed): consume it.
func (e *Engine) Sync(ctx context.Context, req merchantsync.SyncRequest) (merchantsync.Run, error) {
	log := e.logger().With(
		slog.String("tenant_id", req.TenantID),
		slog.String("network", req.Network),
		slog.String("run_id", req.RunID),
		slog.String("trigger", string(req.Trigger)),
		slog.String("mode", string(runMode(req))),
	)
	if err := req.Validate(); err != nil {
		log.LogAttrs(ctx, slog.LevelError, "sync: invalid request", slog.String("error", err.Error()))
		return merchantsync.Run{}, err
	}
	s := &syncRun{e: e, req: req, log: log, start: e.now(), leaseID: leaseHolder(req.RunID)}
	run, err := s.do(ctx)
	if IsRetryable(err) && req.LastAttempt {
		run, err = s.giveUp(ctx, run, err)
	}
	s.record(ctx, run, err)
	return run, err
}

// syncRun is the state of one Sync call.
type syncRun struct {
	e     *Engine
	req   merchantsync.SyncRequest
	log   *slog.Logger
	start time.Time

	acct    *merchantsync.Account
	conn    string // the connection this run syncs
	leaseID string // runID~nonce: this delivery's lease holder id
	leased  bool
	outcome string // "succeeded", "failed", "skipped", "joined", "duplicate", "overtaken", "retry"
	pull    merchantsync.PullStats
	result  *merchantsync.PullResult // what the pull reported, once it ran
	plan    *plan
	stats   merchantsync.WriteStats
	reauth  bool
}

func (s *syncRun) newRun(now time.Time) merchantsync.Run {
	return merchantsync.Run{
		RunID:    s.req.RunID,
		TenantID: s.req.TenantID,
		Network:  s.req.Network,
		Trigger:  s.req.Trigger,
		Mode:     s.mode(),
		State:    merchantsync.RunQueued,
		QueuedAt: now,
	}
}

func (s *syncRun) do(ctx context.Context) (merchantsync.Run, error) {
	e, req := s.e, s.req
	st := e.Store

	existing, err := st.GetRun(ctx, req.TenantID, req.Network, req.RunID)
	if err != nil {
		return merchantsync.Run{}, retry("get run", err)
	}
	if existing != nil && existing.State.Finished() {
		s.outcome = "duplicate"
		return *existing, nil
	}

	acct, err := st.GetAccount(ctx, req.TenantID, req.Network)
	if err != nil {
		return merchantsync.Run{}, retry("get account", err)
	}
	s.acct = acct
	if acct != nil {
		s.conn = acct.ConnectionID
	}
	settings, err := st.GetSettings(ctx, req.TenantID)
	if err != nil {
		return merchantsync.Run{}, retry("get settings", err)
	}

	run := s.newRun(e.now())
	if existing != nil {
		run = *existing
	}

	// Is there anything to sync?
	var skip *merchantsync.RunError
	switch {
	case req.Trigger == merchantsync.TriggerSchedule && acct != nil && acct.LastScheduledRunID == req.ScheduleRunID:
		// This schedule run already synced the account (a retried scheduler
		// invocation that computed another run id, say): nothing to record.
		s.outcome = "duplicate"
		run.State = merchantsync.RunSkipped
		return run, nil
	case acct == nil || acct.AffiliateID == "" || !acct.Connected || acct.ConnectionID == "":
		skip = &merchantsync.RunError{Code: merchantsync.ENotConnected, Message: "Rakuten is not connected: nothing to sync."}
	case !settings.Enabled:
		skip = &merchantsync.RunError{Code: merchantsync.ESyncDisabled, Message: "Syncing network relationships is turned off."}
	case req.Trigger == merchantsync.TriggerSchedule && !acct.Due(settings):
		skip = &merchantsync.RunError{Code: merchantsync.EReauthRequired, Message: "Rakuten refused the stored credentials; enter them again to resume daily syncs."}
	case s.incremental():
		skip = s.skipIncremental(settings)
	}
	if skip != nil {
		return s.skip(ctx, run, existing != nil, skip)
	}

	if existing == nil {
		if err := st.CreateRun(ctx, run); err != nil {
			// Another delivery of this message may have created it first.
			again, gerr := st.GetRun(ctx, req.TenantID, req.Network, req.RunID)
			if gerr != nil || again == nil {
				return run, retry("create run", err)
			}
			if again.State.Finished() {
				s.outcome = "duplicate"
				return *again, nil
			}
			run = *again
		}
	}

	// The lease: one sync per account at a time.
	now := e.now()
	ok, err := st.AcquireLease(ctx, req.TenantID, req.Network, s.conn, s.leaseID, now, now.Add(e.leaseTTL()))
	if merchantsync.ErrorCode(err) == merchantsync.EConnectionChanged || merchantsync.ErrorCode(err) == merchantsync.ENotFound {
		return s.overtaken(ctx, run)
	}
	if err != nil {
		return run, retry("acquire lease", err)
	}
	if !ok {
		return s.join(ctx, run)
	}
	s.leased = true

	run.State = merchantsync.RunRunning
	if run.StartedAt.IsZero() {
		// A resumed run (redelivered after a fault) keeps its start: its
		// change events are keyed by it, so rewriting them is idempotent.
		run.StartedAt = now
	}
	run.FinishedAt = time.Time{}
	run.Error = nil
	if err := st.PutRun(ctx, run); err != nil {
		return run, s.abort(ctx, retry("put run", err))
	}
	return s.pullAndApply(ctx, run)
}

// skip ends a run that has nothing to sync. A scheduled message for an
// account that stopped being due leaves no record (there was none); a
// manual run the API queued is marked skipped so nobody waits for it.
func (s *syncRun) skip(ctx context.Context, run merchantsync.Run, recorded bool, why *merchantsync.RunError) (merchantsync.Run, error) {
	s.outcome = "skipped"
	run.State = merchantsync.RunSkipped
	run.FinishedAt = s.e.now()
	run.Error = why
	s.log.LogAttrs(ctx, slog.LevelInfo, "sync: skipped", slog.String("reason", why.Code))
	if !recorded {
		return run, nil
	}
	if err := s.e.Store.PutRun(ctx, run); err != nil {
		return run, retry("put skipped run", err)
	}
	if err := s.e.Store.ClearActiveRun(ctx, run.TenantID, run.Network, run.RunID); err != nil {
		return run, retry("clear active run", err)
	}
	return run, nil
}

// overtaken ends a run whose connection was replaced or removed while it
// ran: it is recorded as skipped (connection_changed) and nothing else is
// written, so nothing of it reaches the new connection. The reconnect or
// disconnect cleared the lease and the active run with the connection.
func (s *syncRun) overtaken(ctx context.Context, run merchantsync.Run) (merchantsync.Run, error) {
	s.outcome = "overtaken"
	s.leased = false
	run.State = merchantsync.RunSkipped
	run.FinishedAt = s.e.now()
	run.MerchantsSynced, run.Counts, run.Changes = 0, nil, 0
	run.Error = &merchantsync.RunError{Code: merchantsync.EConnectionChanged,
		Message: "Your Rakuten connection changed while this sync ran, so its results were discarded; the next sync uses the new connection."}
	s.log.LogAttrs(ctx, slog.LevelInfo, "sync: overtaken by a reconnect or disconnect; nothing applied")
	fctx, cancel := s.e.finishCtx(ctx)
	defer cancel()
	if err := s.e.Store.PutRun(fctx, run); err != nil {
		return run, retry("put overtaken run", err)
	}
	return run, nil
}

// join handles a lease held by someone else. Another run → this one ends
// skipped with JoinedRunID. The same run (a concurrent duplicate delivery,
// or a crashed delivery whose lease has not expired yet) → retry later: by
// then the run has finished (the redelivery is a duplicate) or the lease has
// expired (the redelivery resumes it).
func (s *syncRun) join(ctx context.Context, run merchantsync.Run) (merchantsync.Run, error) {
	e, req := s.e, s.req
	acct, err := e.Store.GetAccount(ctx, req.TenantID, req.Network)
	if err != nil {
		return run, retry("get account", err)
	}
	holder := ""
	if acct != nil && acct.LeaseRunID != "" && acct.LeaseUntil.After(e.now()) {
		holder = leaseRun(acct.LeaseRunID)
	}
	switch holder {
	case "":
		// Released between our attempt and our read: let the redelivery try.
		return run, retry("acquire lease", errors.New("lease busy"))
	case req.RunID:
		s.outcome = "retry"
		return run, retry("acquire lease", errors.New("run "+req.RunID+" is being synced by another delivery"))
	}
	s.outcome = "joined"
	run.State = merchantsync.RunSkipped
	run.JoinedRunID = holder
	run.FinishedAt = e.now()
	s.log.LogAttrs(ctx, slog.LevelInfo, "sync: joined the running sync", slog.String("joined_run_id", holder))
	if err := e.Store.PutRun(ctx, run); err != nil {
		return run, retry("put joined run", err)
	}
	return run, nil
}

// abort releases the lease after an internal fault so that the redelivery
// can resume the run at once, and returns err.
func (s *syncRun) abort(ctx context.Context, err error) error {
	if s.leased {
		fctx, cancel := s.e.finishCtx(ctx)
		defer cancel()
		if rerr := s.e.Store.ReleaseLease(fctx, s.req.TenantID, s.req.Network, s.leaseID); rerr != nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "sync: releasing lease", slog.String("error", rerr.Error()))
		}
		s.leased = false
	}
	s.outcome = "retry"
	return err
}
