package dynamo

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// StaleRunAfter is how long after it was queued (or started) an unfinished
// run stops being joined by a manual sync: its message was lost or its worker
// died without finishing it, and a new run may start.
const StaleRunAfter = 30 * time.Minute

func validateRun(r merchantsync.Run) error {
	if err := validateKey(r.TenantID, r.Network); err != nil {
		return err
	}
	if r.RunID == "" {
		return merchantsync.FieldError(merchantsync.EInvalid, "runId", "run id is required")
	}
	return nil
}

func (s *Store) putRun(r merchantsync.Run, onlyNew bool) (*types.Put, error) {
	item, err := attributevalue.MarshalMap(newRunItem(r))
	if err != nil {
		return nil, err
	}
	p := &types.Put{TableName: aws.String(s.table), Item: item}
	if onlyNew {
		p.ConditionExpression = aws.String("attribute_not_exists(#pk)")
		p.ExpressionAttributeNames = map[string]string{"#pk": AttrPK}
	}
	return p, nil
}

func (s *Store) doPut(ctx context.Context, op string, p *types.Put) error {
	_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: p.TableName, Item: p.Item,
		ConditionExpression:      p.ConditionExpression,
		ExpressionAttributeNames: p.ExpressionAttributeNames,
	})
	return err
}

// CreateRun stores a new run; a run with the same id → merchantsync.EConflict.
func (s *Store) CreateRun(ctx context.Context, run merchantsync.Run) error {
	if err := validateRun(run); err != nil {
		return err
	}
	p, err := s.putRun(run, true)
	if err != nil {
		return wrap("create run", err)
	}
	err = s.doPut(ctx, "create run", p)
	if isConditionFailed(err) {
		return merchantsync.Errorf(merchantsync.EConflict, "run %s already exists", run.RunID)
	}
	return wrap("create run", err)
}

// PutRun stores run, overwriting the stored one (state updates while it runs).
func (s *Store) PutRun(ctx context.Context, run merchantsync.Run) error {
	if err := validateRun(run); err != nil {
		return err
	}
	p, err := s.putRun(run, false)
	if err != nil {
		return wrap("put run", err)
	}
	return wrap("put run", s.doPut(ctx, "put run", p))
}

// GetRun returns one run, or nil when absent.
func (s *Store) GetRun(ctx context.Context, tenant, network, runID string) (*merchantsync.Run, error) {
	if err := validateKey(tenant, network); err != nil {
		return nil, err
	}
	if runID == "" {
		return nil, nil
	}
	var it runItem
	ok, err := s.getItem(ctx, "get run", pkTenant(tenant), runSK(network, runID), &it)
	if err != nil || !ok {
		return nil, err
	}
	r := it.runSummary.domain()
	return &r, nil
}

// ListRuns returns the account's runs, newest first (run ids sort by time).
func (s *Store) ListRuns(ctx context.Context, tenant, network string, limit int, cursor string) ([]merchantsync.Run, string, error) {
	if err := validateKey(tenant, network); err != nil {
		return nil, "", err
	}
	limit, err := checkLimit(limit)
	if err != nil {
		return nil, "", err
	}
	prefix := runPrefix(network)
	start, err := decodeCursor(cursor, prefix, "", "")
	if err != nil {
		return nil, "", err
	}
	items, next, err := s.queryPage(ctx, "list runs", tenant, prefix, start, limit, nil)
	if err != nil {
		return nil, "", err
	}
	out := make([]merchantsync.Run, 0, len(items))
	for _, item := range items {
		var it runItem
		if err := attributevalue.UnmarshalMap(item, &it); err != nil {
			return nil, "", wrap("list runs", err)
		}
		out = append(out, it.runSummary.domain())
	}
	return out, next, nil
}

func stale(r *merchantsync.Run, now time.Time) bool {
	last := r.QueuedAt
	if r.StartedAt.After(last) {
		last = r.StartedAt
	}
	return !last.IsZero() && now.Sub(last) > StaleRunAfter
}

// StartManualRun starts a manual sync or joins the one in progress. In one
// transaction it stores run (queued) and makes it the account's active run,
// on condition that the account still has the active run, connection, state
// and settings that were read; on a lost race it reads again, so concurrent
// callers end up with exactly one run. It returns the run to report and
// whether it is new (the caller enqueues only a new run).
//
// Errors: merchantsync.ENotConnected (no IDs or credentials),
// EReauthRequired, ESyncDisabled (global toggle off).
func (s *Store) StartManualRun(ctx context.Context, run merchantsync.Run, now time.Time) (merchantsync.Run, bool, error) {
	if err := validateRun(run); err != nil {
		return merchantsync.Run{}, false, err
	}
	if run.State == "" {
		run.State = merchantsync.RunQueued
	}
	if run.Trigger == "" {
		run.Trigger = merchantsync.TriggerManual
	}
	if run.QueuedAt.IsZero() {
		run.QueuedAt = now
	}
	p, err := s.putRun(run, true)
	if err != nil {
		return merchantsync.Run{}, false, wrap("start run", err)
	}
	for range maxRaces {
		a, err := s.GetAccount(ctx, run.TenantID, run.Network)
		if err != nil {
			return merchantsync.Run{}, false, err
		}
		switch {
		case a == nil || a.AffiliateID == "" || !a.Connected:
			return merchantsync.Run{}, false, merchantsync.Errorf(merchantsync.ENotConnected,
				"Connect your Rakuten API credentials before syncing.")
		case a.State == merchantsync.StateReauthRequired:
			return merchantsync.Run{}, false, merchantsync.Errorf(merchantsync.EReauthRequired,
				"Rakuten refused the stored credentials; enter them again to sync.")
		}
		st, saved, err := s.settings(ctx, run.TenantID)
		if err != nil {
			return merchantsync.Run{}, false, err
		}
		if !st.Enabled {
			return merchantsync.Run{}, false, merchantsync.Errorf(merchantsync.ESyncDisabled,
				"Network relationship sync is turned off in your settings.")
		}
		if a.ActiveRunID != "" {
			active, err := s.GetRun(ctx, run.TenantID, run.Network, a.ActiveRunID)
			if err != nil {
				return merchantsync.Run{}, false, err
			}
			if active != nil && !active.State.Finished() && !stale(active, now) {
				return *active, false, nil
			}
		}
		e := newExpr()
		e.cond("%s = %s", e.n("connected"), e.v(avBool(true)))
		e.cond("%s = %s", e.n("state"), e.v(avS(string(a.State))))
		if a.ActiveRunID == "" {
			e.cond("attribute_not_exists(%s)", e.n("activeRunId"))
		} else {
			e.cond("%s = %s", e.n("activeRunId"), e.v(avS(a.ActiveRunID)))
		}
		e.set("activeRunId", avS(run.RunID))
		_, err = s.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			{Put: p},
			{Update: s.accountTxUpdate(run.TenantID, run.Network, e)},
			s.settingsCheck(st, saved),
		}})
		if err == nil {
			return run, true, nil
		}
		if r := cancelReasons(err); len(r) > 0 && r[0] == "ConditionalCheckFailed" {
			return merchantsync.Run{}, false, merchantsync.Errorf(merchantsync.EConflict, "run %s already exists", run.RunID)
		}
		if !retryableCancel(err) {
			return merchantsync.Run{}, false, wrap("start run", err)
		}
	}
	return merchantsync.Run{}, false, errRaced("sync")
}

// AcquireLease takes the account's sync lease for holder until until, on
// condition that conn is still the account's connection. It succeeds when
// nobody holds the lease, the holder's lease expired (until ≤ now), or
// holder already holds it (then it is extended). ok=false: another run
// holds it. An absent account → merchantsync.ENotFound; another connection
// → merchantsync.EConnectionChanged.
func (s *Store) AcquireLease(ctx context.Context, tenant, network, conn, holder string, now, until time.Time) (bool, error) {
	if err := validateKey(tenant, network); err != nil {
		return false, err
	}
	if holder == "" {
		return false, merchantsync.FieldError(merchantsync.EInvalid, "runId", "run id is required")
	}
	e := newExpr()
	e.cond("attribute_exists(%s)", e.n(AttrPK))
	condConnection(e, conn)
	e.cond("attribute_not_exists(%s) OR %s <= %s OR %s = %s",
		e.n("leaseRunId"), e.n("leaseUntil"), e.v(avN(now.UnixMilli())), e.n("leaseRunId"), e.v(avS(holder)))
	e.set("leaseRunId", avS(holder))
	e.set("leaseUntil", avN(until.UnixMilli()))
	in := s.accountUpdate(tenant, network, e)
	in.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
	_, err := s.client.UpdateItem(ctx, in)
	if err == nil {
		return true, nil
	}
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return false, wrap("acquire lease", err)
	}
	var a accountItem
	if len(ccf.Item) == 0 {
		return false, merchantsync.Errorf(merchantsync.ENotFound, "no %s account", network)
	}
	if err := attributevalue.UnmarshalMap(ccf.Item, &a); err != nil {
		return false, wrap("acquire lease", err)
	}
	if a.ConnectionID != conn {
		return false, errConnectionChanged(network)
	}
	return false, nil
}

// ClearActiveRun forgets runID as the account's active run, if it still
// is: a manual run that ended without syncing (skipped) must not look like
// a sync in progress.
func (s *Store) ClearActiveRun(ctx context.Context, tenant, network, runID string) error {
	if err := validateKey(tenant, network); err != nil {
		return err
	}
	e := newExpr()
	e.cond("%s = %s", e.n("activeRunId"), e.v(avS(runID)))
	e.remove("activeRunId")
	_, err := s.client.UpdateItem(ctx, s.accountUpdate(tenant, network, e))
	if isConditionFailed(err) {
		return nil
	}
	return wrap("clear active run", err)
}

// ReleaseLease gives up the lease if runID holds it; otherwise it does nothing.
func (s *Store) ReleaseLease(ctx context.Context, tenant, network, runID string) error {
	if err := validateKey(tenant, network); err != nil {
		return err
	}
	e := newExpr()
	e.cond("%s = %s", e.n("leaseRunId"), e.v(avS(runID)))
	e.remove("leaseRunId", "leaseUntil")
	_, err := s.client.UpdateItem(ctx, s.accountUpdate(tenant, network, e))
	if isConditionFailed(err) {
		return nil
	}
	return wrap("release lease", err)
}

// FinishRun records a finished run and, in the same transaction, updates its
// account: lastRun, State (upd.State), Counts and LastSyncAt when
// upd.Succeeded, LastScheduledRunID, clears ActiveRunID and the lease when
// they name this run, and removes the due keys when the state becomes
// reauth_required, and what the pull reported about the connection (auth
// mode, pull mode, when it was checked). All of it only while upd.ConnectionID is still the
// account's connection: otherwise nothing is written and the error is
// merchantsync.EConnectionChanged (the caller records the run as overtaken).
func (s *Store) FinishRun(ctx context.Context, run merchantsync.Run, upd merchantsync.RunOutcome) error {
	if err := validateRun(run); err != nil {
		return err
	}
	p, err := s.putRun(run, false)
	if err != nil {
		return wrap("finish run", err)
	}
	lastRun, err := attributevalue.Marshal(newRunSummary(run))
	if err != nil {
		return wrap("finish run", err)
	}
	for range maxRaces {
		a, err := s.GetAccount(ctx, run.TenantID, run.Network)
		if err != nil {
			return err
		}
		if a == nil || a.ConnectionID != upd.ConnectionID || upd.ConnectionID == "" {
			return errConnectionChanged(run.Network)
		}
		now := run.FinishedAt
		if now.IsZero() {
			now = time.Now()
		}
		e := newExpr()
		e.cond("attribute_exists(%s)", e.n(AttrPK))
		condConnection(e, upd.ConnectionID)
		e.set("lastRun", lastRun)
		e.set("updatedAt", avS(fmtTime(now)))
		if upd.State != "" {
			e.set("state", avS(string(upd.State)))
			if upd.State == merchantsync.StateReauthRequired {
				setDue(e, run.TenantID, run.Network, false, false)
			}
		}
		if upd.Succeeded {
			counts := upd.Counts
			if counts == nil {
				counts = run.Counts
			}
			if c := fromCounts(counts); c != nil {
				av, err := attributevalue.Marshal(c)
				if err != nil {
					return wrap("finish run", err)
				}
				e.set("counts", av)
			} else {
				e.remove("counts")
			}
			if !upd.Incremental {
				// lastSyncAt is the last full pull: relationships derive
				// lastSeenAt from it, and the hourly run waits an hour
				// after it.
				e.set("lastSyncAt", avS(fmtTime(now)))
			}
		}
		if upd.IncrementalOff != "" {
			e.set("incrementalOff", avS(upd.IncrementalOff))
		}
		if upd.ScheduleRunID != "" {
			e.set("lastScheduledRunId", avS(upd.ScheduleRunID))
		}
		setNetworkFacts(e, upd.Auth, upd.PullMode, upd.PullModeCheckedAt, false)
		if a.ActiveRunID == run.RunID {
			e.cond("%s = %s", e.n("activeRunId"), e.v(avS(run.RunID)))
			e.remove("activeRunId")
		}
		if a.LeaseRunID != "" && (a.LeaseRunID == run.RunID || a.LeaseRunID == upd.LeaseHolder) {
			e.cond("%s = %s", e.n("leaseRunId"), e.v(avS(a.LeaseRunID)))
			e.remove("leaseRunId", "leaseUntil")
		}
		_, err = s.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			{Put: p},
			{Update: s.accountTxUpdate(run.TenantID, run.Network, e)},
		}})
		if err == nil {
			if upd.IncrementalOff != "" {
				return s.hourlyOff(ctx, run.TenantID, run.Network, upd.ConnectionID)
			}
			return nil
		}
		if !retryableCancel(err) {
			return wrap("finish run", err)
		}
	}
	return errRaced("account")
}

// hourlyOff moves an account whose incremental pulls were turned off from
// the hourly due keys to the daily ones, if it has hourly ones and conn is
// still its connection (the hourly schedule stops enqueueing it).
func (s *Store) hourlyOff(ctx context.Context, tenant, network, conn string) error {
	e := newExpr()
	condConnection(e, conn)
	e.cond("begins_with(%s, %s)", e.n(AttrDueSK), e.v(avS(hourlyDuePrefix)))
	e.cond("attribute_exists(%s)", e.n("incrementalOff"))
	e.set(AttrDueSK, avS(dueSK(tenant, network, false)))
	_, err := s.client.UpdateItem(ctx, s.accountUpdate(tenant, network, e))
	if isConditionFailed(err) {
		return nil
	}
	return wrap("finish run", err)
}
