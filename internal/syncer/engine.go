// Package syncer is merchantsync's sync engine and the two Lambda handlers
// around it: the SQS sync worker (one message = one tenant × network) and
// the daily scheduler that enqueues every due account.
//
// The engine implements DESIGN.md "The sync": lease, token refresh with the
// rotated refresh token persisted before use, a full partnerships pull, a
// diff that writes only what changed, and a run record. It depends on the
// store, Secrets Manager and Rakuten only through the small interfaces
// below, which *dynamo.Store, *secrets.Store and *rakuten.Client satisfy.
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
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/merchantsync/merchantsync/internal/dynamo"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/rakuten"
	"github.com/merchantsync/merchantsync/internal/secrets"
)

// Store is what the engine needs from the table.
type Store interface {
	GetSettings(ctx context.Context, tenant string) (merchantsync.Settings, error)
	GetAccount(ctx context.Context, tenant, network string) (*merchantsync.Account, error)
	CreateRun(ctx context.Context, run merchantsync.Run) error
	GetRun(ctx context.Context, tenant, network, runID string) (*merchantsync.Run, error)
	PutRun(ctx context.Context, run merchantsync.Run) error
	AcquireLease(ctx context.Context, tenant, network, conn, holder string, now, until time.Time) (bool, error)
	ReleaseLease(ctx context.Context, tenant, network, runID string) error
	ClearActiveRun(ctx context.Context, tenant, network, runID string) error
	FinishRun(ctx context.Context, run merchantsync.Run, upd dynamo.AccountUpdate) error
	AllRelationships(ctx context.Context, tenant, network string) ([]merchantsync.Relationship, error)
	WriteRelationships(ctx context.Context, f merchantsync.Fence, rels []merchantsync.Relationship, changes []merchantsync.Change) (dynamo.WriteStats, error)
}

// Secrets is what the engine needs from Secrets Manager: read one
// connection's credentials, and write a new version when Rakuten rotates
// the refresh token. Update never creates a secret and each connection has
// its own, so a sync racing a disconnect or reconnect can neither bring old
// credentials back nor overwrite new ones.
type Secrets interface {
	Get(ctx context.Context, tenant, network, conn string) (*secrets.Secret, error)
	Update(ctx context.Context, tenant, network, conn string, sec secrets.Secret) error
}

// Rakuten is what the engine needs from the Rakuten client.
type Rakuten interface {
	TokenSource(ctx context.Context, cr rakuten.Credentials, current *rakuten.Token, persist func(context.Context, *rakuten.Token) error) *rakuten.TokenSource
	Partnerships(ctx context.Context, ts *rakuten.TokenSource, fn func([]rakuten.Partnership) error) (rakuten.PullStats, error)
}

var (
	_ Store   = (*dynamo.Store)(nil)
	_ Secrets = (*secrets.Store)(nil)
	_ Rakuten = (*rakuten.Client)(nil)
)

// Defaults of the Engine's tunables.
const (
	DefaultLeaseTTL      = 15 * time.Minute // a Lambda never runs longer
	DefaultFinishReserve = 5 * time.Second
)

// Engine syncs one tenant × network per call. The zero values of the
// optional fields are usable.
type Engine struct {
	Store   Store
	Secrets Secrets
	Rakuten Rakuten

	Now      func() time.Time // default time.Now
	LeaseTTL time.Duration    // default DefaultLeaseTTL
	// FinishReserve is kept back from ctx's deadline for recording the
	// outcome: the Rakuten pull gets the deadline minus this.
	FinishReserve time.Duration
	Logger        *slog.Logger // default: discard
	Metrics       *Metrics     // nil: no EMF lines
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

// persistError marks a failure to save a rotated token, so the engine can
// tell it from Rakuten's own errors.
type persistError struct{ err error }

func (p *persistError) Error() string { return "saving rotated token: " + p.err.Error() }
func (p *persistError) Unwrap() error { return p.err }

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
	)
	if err := validate(req); err != nil {
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

func validate(req merchantsync.SyncRequest) error {
	switch {
	case req.TenantID == "":
		return merchantsync.FieldError(merchantsync.EInvalid, "tenantId", "sync request without tenant")
	case req.RunID == "":
		return merchantsync.FieldError(merchantsync.EInvalid, "runId", "sync request without run id")
	case req.Trigger != merchantsync.TriggerSchedule && req.Trigger != merchantsync.TriggerManual:
		return merchantsync.FieldError(merchantsync.EInvalid, "trigger", fmt.Sprintf("unknown trigger %q", req.Trigger))
	case req.Trigger == merchantsync.TriggerSchedule && req.ScheduleRunID == "":
		return merchantsync.FieldError(merchantsync.EInvalid, "scheduleRunId", "scheduled sync request without schedule run id")
	}
	if _, ok := merchantsync.LookupNetwork(req.Network); !ok {
		return merchantsync.FieldError(merchantsync.EInvalid, "network", fmt.Sprintf("unknown network %q", req.Network))
	}
	return nil
}

// syncRun is the state of one Sync call.
type syncRun struct {
	e     *Engine
	req   merchantsync.SyncRequest
	log   *slog.Logger
	start time.Time

	acct     *merchantsync.Account
	conn     string // the connection this run syncs
	leaseID  string // runID~nonce: this delivery's lease holder id
	leased   bool
	outcome  string // "succeeded", "failed", "skipped", "joined", "duplicate", "overtaken", "retry"
	apiCalls int
	pages    int
	retries  int
	throttle int
	refresh  int
	plan     *plan
	stats    dynamo.WriteStats
	reauth   bool
}

func (s *syncRun) newRun(now time.Time) merchantsync.Run {
	return merchantsync.Run{
		RunID:    s.req.RunID,
		TenantID: s.req.TenantID,
		Network:  s.req.Network,
		Trigger:  s.req.Trigger,
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

func (s *syncRun) pullAndApply(ctx context.Context, run merchantsync.Run) (merchantsync.Run, error) {
	e, req := s.e, s.req

	sec, err := e.Secrets.Get(ctx, req.TenantID, req.Network, s.conn)
	if err != nil {
		if merchantsync.ErrorCode(err) == merchantsync.ENotConnected {
			// This connection's secret is gone: disconnected or replaced
			// since the run read the account.
			return s.overtaken(ctx, run)
		}
		return run, s.abort(ctx, retry("get secret", err))
	}
	cur := *sec
	persist := func(ctx context.Context, t *rakuten.Token) error {
		next := cur
		next.RefreshToken = t.RefreshToken
		if next.RefreshToken == "" {
			next.RefreshToken = cur.RefreshToken // a grant without a refresh token keeps the old one
		}
		next.AccessToken = t.AccessToken
		next.AccessExpiry = t.Expiry
		next.AuthScheme = t.Scheme
		next.UpdatedAt = e.now()
		if err := e.Secrets.Update(ctx, req.TenantID, req.Network, s.conn, next); err != nil {
			return &persistError{err}
		}
		cur = next
		return nil
	}
	siteID := sec.SiteID
	if siteID == "" && s.acct != nil {
		siteID = s.acct.SiteID
	}
	creds := rakuten.Credentials{ClientID: sec.ClientID, ClientSecret: sec.ClientSecret, SiteID: siteID}
	tok := &rakuten.Token{AccessToken: sec.AccessToken, RefreshToken: sec.RefreshToken, Expiry: sec.AccessExpiry, Scheme: sec.AuthScheme}

	pctx, cancel := s.pullCtx(ctx)
	defer cancel()
	ts := e.Rakuten.TokenSource(pctx, creds, tok, persist)
	var pull []pulled
	stats, perr := e.Rakuten.Partnerships(pctx, ts, func(page []rakuten.Partnership) error {
		for _, p := range page {
			pull = append(pull, pulled{
				Region:          p.Network,
				AdvertiserID:    p.AdvertiserID,
				Name:            p.Name,
				ProgramStatus:   p.AdvertiserStatus,
				Norm:            merchantsync.NormalizeRakuten(p.Status),
				StatusUpdatedAt: p.StatusUpdatedAt,
			})
		}
		return nil
	})
	s.noteStats(stats, ts)
	run.APICalls = s.apiCalls
	if perr != nil {
		return s.pullFailed(ctx, run, perr, pctx.Err() != nil)
	}

	stored, err := e.Store.AllRelationships(ctx, req.TenantID, req.Network)
	if err != nil {
		return run, s.abort(ctx, retry("read relationships", err))
	}
	var lastSyncAt time.Time
	if s.acct != nil {
		lastSyncAt = s.acct.LastSyncAt
	}
	// Everything this run records is as of its start, so a resumed run
	// computes the same keys and values as the attempt it resumes.
	p := diffPull(req.TenantID, req.Network, req.RunID, run.StartedAt, lastSyncAt, stored, pull)
	s.plan = &p
	if p.Suspicious {
		s.log.LogAttrs(ctx, slog.LevelWarn, "sync: Rakuten returned no partnerships although some are stored; nothing applied",
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
	upd := dynamo.AccountUpdate{State: merchantsync.StateConnected, Succeeded: true, Counts: p.Counts}
	return s.finish(ctx, run, upd)
}

// pullCtx bounds the Rakuten pull so that FinishReserve is left to record
// the outcome before ctx's deadline.
func (s *syncRun) pullCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(ctx, dl.Add(-s.e.finishReserve()))
	}
	return context.WithCancel(ctx)
}

// noteStats keeps the pull's figures. Rakuten calls = partnerships requests
// (retries included) + tokens obtained. The client does not count token
// requests that failed (a refused refresh before the token-key grant), so
// those are missing from the figure.
func (s *syncRun) noteStats(st rakuten.PullStats, ts *rakuten.TokenSource) {
	s.pages = st.Pages
	s.retries = st.Retries
	s.throttle = st.Throttles
	s.refresh = st.Refreshes
	if ts != nil {
		s.refresh = max(s.refresh, ts.Refreshes())
	}
	s.apiCalls = st.Calls + s.refresh
}

// pullFailed turns a failed pull into a finished run (Rakuten's fault or the
// credentials': consumed) or a retryable error (ours).
func (s *syncRun) pullFailed(ctx context.Context, run merchantsync.Run, err error, pctxDone bool) (merchantsync.Run, error) {
	var pe *persistError
	if errors.As(err, &pe) {
		if merchantsync.ErrorCode(pe.err) == merchantsync.EConnectionChanged {
			// The token was obtained for a connection that has ended: it is
			// never used, and the new connection's secret is untouched.
			return s.overtaken(ctx, run)
		}
		return run, s.abort(ctx, retry("save rotated token", pe.err))
	}
	kind := rakuten.KindOf(err)
	msg := rakutenMessage(err)
	attrs := []slog.Attr{slog.String("kind", string(kind)), slog.String("error", describe(err))}
	switch kind {
	case rakuten.KindReauthRequired, rakuten.KindInvalidCredentials:
		s.reauth = true
		s.log.LogAttrs(ctx, slog.LevelWarn, "sync: Rakuten refused the stored credentials", attrs...)
		return s.fail(ctx, run, merchantsync.StateReauthRequired, &merchantsync.RunError{
			Code:    merchantsync.EReauthRequired,
			Message: "Rakuten refused the stored credentials. Enter your Rakuten API credentials again to resume syncing." + suffix(msg)})
	case rakuten.KindExpired:
		// Fresh tokens were refused again and again: an authorization
		// problem of these credentials, not Rakuten being down.
		s.log.LogAttrs(ctx, slog.LevelWarn, "sync: Rakuten kept refusing new access tokens", attrs...)
		return s.fail(ctx, run, merchantsync.StateError, &merchantsync.RunError{
			Code: merchantsync.ENetworkAuthFailed,
			Message: "Rakuten kept refusing the access tokens it issued for these credentials, so the sync stopped; nothing was changed. " +
				"If this happens again, enter your Rakuten API credentials again." + suffix(msg)})
	case rakuten.KindRedirect:
		s.log.LogAttrs(ctx, slog.LevelWarn, "sync: Rakuten answered with a redirect", attrs...)
		return s.fail(ctx, run, merchantsync.StateError, &merchantsync.RunError{
			Code:    merchantsync.ENetworkUnavailable,
			Message: "Rakuten answered with a redirect, which merchantsync never follows; nothing was changed. It will be tried again at the next sync." + suffix(msg)})
	case rakuten.KindEntitlement:
		s.log.LogAttrs(ctx, slog.LevelWarn, "sync: Rakuten refused the service", attrs...)
		return s.fail(ctx, run, merchantsync.StateError, &merchantsync.RunError{
			Code:    merchantsync.ENetworkAuthFailed,
			Message: "Rakuten refused access to the Partnerships API for these credentials; check that your Rakuten application may use it." + suffix(msg)})
	case rakuten.KindThrottled:
		s.log.LogAttrs(ctx, slog.LevelWarn, "sync: Rakuten kept throttling", attrs...)
		return s.fail(ctx, run, merchantsync.StateError, &merchantsync.RunError{
			Code:    merchantsync.ENetworkUnavailable,
			Message: "Rakuten kept limiting our requests, so the sync gave up; nothing was changed. It will be tried again at the next sync."})
	case "":
		if ctx.Err() != nil {
			// Our own deadline or cancellation, not Rakuten: let the
			// redelivery resume.
			return run, s.abort(ctx, retry("pull", err))
		}
		s.log.LogAttrs(ctx, slog.LevelError, "sync: pull failed", slog.String("error", err.Error()))
		return s.fail(ctx, run, merchantsync.StateError, &merchantsync.RunError{
			Code: merchantsync.EInternal, Message: "The sync failed because of an internal error; nothing was changed."})
	default: // unavailable, bad response, invalid request, expired
		s.log.LogAttrs(ctx, slog.LevelWarn, "sync: Rakuten pull failed", attrs...)
		if pctxDone {
			return s.fail(ctx, run, merchantsync.StateError, &merchantsync.RunError{
				Code:    merchantsync.ENetworkUnavailable,
				Message: "Rakuten answered too slowly and the sync ran out of time; nothing was changed. It will be tried again at the next sync."})
		}
		return s.fail(ctx, run, merchantsync.StateError, &merchantsync.RunError{
			Code:    merchantsync.ENetworkUnavailable,
			Message: "Rakuten did not answer properly; nothing was changed. It will be tried again at the next sync." + suffix(msg)})
	}
}

// describe is a short, secret-free description of a Rakuten error for logs.
func describe(err error) string {
	var re *rakuten.Error
	if !errors.As(err, &re) {
		return "error"
	}
	out := string(re.Kind)
	if re.HTTPStatus != 0 {
		out += fmt.Sprintf(" HTTP %d", re.HTTPStatus)
	}
	if re.Code != "" {
		out += " " + re.Code
	}
	return out
}

// rakutenMessage is Rakuten's reason, which the client has scrubbed of every
// secret: safe to show.
func rakutenMessage(err error) string {
	var re *rakuten.Error
	if errors.As(err, &re) {
		return re.Message
	}
	return ""
}

func suffix(msg string) string {
	if msg == "" {
		return ""
	}
	return " (Rakuten: " + msg + ")"
}

// fail finishes the run as failed. Stored relationships are not touched.
func (s *syncRun) fail(ctx context.Context, run merchantsync.Run, state merchantsync.ConnectionState, why *merchantsync.RunError) (merchantsync.Run, error) {
	run.State = merchantsync.RunFailed
	run.Error = why
	run.FinishedAt = s.e.now()
	run.MerchantsSynced = 0
	run.Counts = nil
	run.Changes = 0
	return s.finish(ctx, run, dynamo.AccountUpdate{State: state})
}

// finish records the run and updates the account (clearing ActiveRunID and
// releasing the lease) in one call.
func (s *syncRun) finish(ctx context.Context, run merchantsync.Run, upd dynamo.AccountUpdate) (merchantsync.Run, error) {
	if s.req.Trigger == merchantsync.TriggerSchedule {
		upd.ScheduleRunID = s.req.ScheduleRunID
	}
	fctx, cancel := s.e.finishCtx(ctx)
	defer cancel()
	// The lease was taken under a per-delivery holder id: FinishRun
	// releases it in the same transaction.
	upd.LeaseHolder = s.leaseID
	upd.ConnectionID = s.conn
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

// record logs the outcome and emits its metrics.
func (s *syncRun) record(ctx context.Context, run merchantsync.Run, err error) {
	dur := s.e.now().Sub(s.start)
	attrs := []slog.Attr{
		slog.String("outcome", s.outcome),
		slog.String("state", string(run.State)),
		slog.Int("merchants_synced", run.MerchantsSynced),
		slog.Int("changes", run.Changes),
		slog.Int("rakuten_calls", s.apiCalls),
		slog.Int("pages", s.pages),
		slog.Int("rakuten_retries", s.retries),
		slog.Int("throttles", s.throttle),
		slog.Int("token_refreshes", s.refresh),
		slog.Int64("duration_ms", dur.Milliseconds()),
	}
	if s.plan != nil {
		attrs = append(attrs,
			slog.Int("added", s.plan.Added), slog.Int("updated", s.plan.Updated),
			slog.Int("missed", s.plan.Missed), slog.Int("removed_by_missing", s.plan.RemovedByMissing),
			slog.Int("relationship_writes", len(s.plan.Writes)),
			slog.Int("dynamo_write_calls", s.stats.Calls))
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
	if s.apiCalls > 0 {
		ms = append(ms, count(MetricRakutenCalls, s.apiCalls), count(MetricThrottles, s.throttle),
			metric{Name: MetricSyncDuration, Unit: "Milliseconds", Value: float64(dur.Milliseconds())})
	}
	s.e.Metrics.emit(map[string]string{"Network": s.req.Network},
		map[string]any{"tenant_id": s.req.TenantID, "run_id": s.req.RunID, "trigger": string(s.req.Trigger), "outcome": s.outcome},
		ms...)
}
