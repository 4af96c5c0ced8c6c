// Package dynamo stores merchantsync's data in one DynamoDB table.
//
// Items (PK / SK):
//
//	TENANT#<t> / SETTINGS                                       the global toggle
//	TENANT#<t> / NETWORK#<n>                                    the account: IDs, state, lease, last run; due keys
//	TENANT#<t> / REL#<n>#<region:05>#<mid:019>                   one merchant relationship
//	TENANT#<t> / RUN#<n>#<runId>                                 a sync run (TTL 90 days)
//	TENANT#<t> / CHANGE#<n>#<at, fixed-width RFC 3339>#<region>#<mid>   a status change (TTL 1 year)
//
// The account item carries duePK/dueSK (the sparse GSI IndexDue) exactly
// while merchantsync.Account.Due holds, sharded over Shards partitions so the
// scheduler reads it in parallel without a Scan. Every invariant is a
// condition expression; writes that depend on what another item says (the
// due keys depend on the settings, a manual run on the account's active run)
// are transactions whose conditions assert what was read, retried when
// another writer got there first.
//
// The store has no field for any secret: client secrets, token keys, tokens
// and passwords live in Secrets Manager only.
package dynamo

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// maxRaces bounds the optimistic read-then-transact loops.
const maxRaces = 8

// Store is merchantsync's DynamoDB store. It is safe for concurrent use.
type Store struct {
	client *dynamodb.Client
	table  string

	// DuePageSize is the Limit of each QueryDue page (default 500).
	DuePageSize int
}

var _ merchantsync.Store = (*Store)(nil)

// New returns a store on table.
func New(client *dynamodb.Client, table string) *Store {
	return &Store{client: client, table: table, DuePageSize: 500}
}

// Table is the table's name.
func (s *Store) Table() string { return s.table }

// getItem reads one item with a consistent read; ok=false when absent.
func (s *Store) getItem(ctx context.Context, op, pk, sk string, out any) (bool, error) {
	res, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            keyOf(pk, sk),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return false, wrap(op, err)
	}
	if len(res.Item) == 0 {
		return false, nil
	}
	if err := attributevalue.UnmarshalMap(res.Item, out); err != nil {
		return false, wrap(op, err)
	}
	return true, nil
}

// ---- settings -------------------------------------------------------------

// settings returns the tenant's settings and whether they were ever saved.
func (s *Store) settings(ctx context.Context, tenant string) (merchantsync.Settings, bool, error) {
	var it settingsItem
	ok, err := s.getItem(ctx, "get settings", pkTenant(tenant), skSettings, &it)
	if err != nil || !ok {
		return merchantsync.Settings{TenantID: tenant, Enabled: true, SyncEvery: merchantsync.SyncDaily}, false, err
	}
	st := it.domain()
	st.TenantID = tenant
	return st, true, nil
}

// settingsCheck asserts in a transaction that the settings are still what
// was read.
func (s *Store) settingsCheck(st merchantsync.Settings, saved bool) types.TransactWriteItem {
	e := newExpr()
	if saved {
		e.cond("%s = %s", e.n("enabled"), e.v(avBool(st.Enabled)))
		if st.SyncEvery.Or() == merchantsync.SyncDaily {
			e.cond("attribute_not_exists(%s) OR %s = %s", e.n("syncEvery"), e.n("syncEvery"), e.v(avS(string(merchantsync.SyncDaily))))
		} else {
			e.cond("%s = %s", e.n("syncEvery"), e.v(avS(string(st.SyncEvery))))
		}
	} else {
		e.cond("attribute_not_exists(%s)", e.n(AttrPK))
	}
	return types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
		TableName:                 aws.String(s.table),
		Key:                       keyOf(pkTenant(st.TenantID), skSettings),
		ConditionExpression:       e.condition(),
		ExpressionAttributeNames:  e.nameMap(),
		ExpressionAttributeValues: e.valueMap(),
	}}
}

// GetSettings returns the tenant's settings; a tenant that never saved any is
// enabled.
func (s *Store) GetSettings(ctx context.Context, tenant string) (merchantsync.Settings, error) {
	if err := validateTenant(tenant); err != nil {
		return merchantsync.Settings{}, err
	}
	st, _, err := s.settings(ctx, tenant)
	return st, err
}

// PutSettings saves the settings and, in the same transaction, sets or
// removes the due keys of the tenant's accounts. The transaction asserts that
// the accounts are as read (and absent ones still absent), so a concurrent
// connect or disconnect makes it read again rather than leave stale keys.
func (s *Store) PutSettings(ctx context.Context, st merchantsync.Settings) error {
	if err := validateTenant(st.TenantID); err != nil {
		return err
	}
	if st.UpdatedAt.IsZero() {
		st.UpdatedAt = time.Now()
	}
	st.SyncEvery = st.SyncEvery.Or()
	if !st.SyncEvery.Valid() {
		return merchantsync.FieldError(merchantsync.EInvalid, "syncEvery", `syncEvery must be "24h" or "1h"`)
	}
	item, err := attributevalue.MarshalMap(settingsItem{
		PK: pkTenant(st.TenantID), SK: skSettings, Kind: kindSettings,
		TenantID: st.TenantID, Enabled: st.Enabled, SyncEvery: string(st.SyncEvery), UpdatedAt: fmtTime(st.UpdatedAt),
	})
	if err != nil {
		return wrap("put settings", err)
	}
	for range maxRaces {
		tx := []types.TransactWriteItem{{Put: &types.Put{TableName: aws.String(s.table), Item: item}}}
		for _, n := range merchantsync.Networks {
			a, err := s.GetAccount(ctx, st.TenantID, n.ID)
			if err != nil {
				return err
			}
			tx = append(tx, s.dueUpdate(st.TenantID, n.ID, a, a.Due(st), a.DueHourly(st)))
		}
		_, err := s.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: tx})
		if err == nil {
			return nil
		}
		if !retryableCancel(err) {
			return wrap("put settings", err)
		}
	}
	return errRaced("settings")
}

// dueUpdate sets or removes an account's due keys on condition that the
// fields Due depends on are unchanged; for an absent account it asserts the
// account is still absent.
func (s *Store) dueUpdate(tenant, network string, a *merchantsync.Account, due, hourly bool) types.TransactWriteItem {
	e := newExpr()
	key := keyOf(pkTenant(tenant), skAccount(network))
	if a == nil {
		e.cond("attribute_not_exists(%s)", e.n(AttrPK))
		return types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
			TableName: aws.String(s.table), Key: key, ConditionExpression: e.condition(),
			ExpressionAttributeNames: e.nameMap(),
		}}
	}
	e.cond("attribute_exists(%s)", e.n(AttrPK))
	e.cond("%s = %s", e.n("connected"), e.v(avBool(a.Connected)))
	e.cond("%s = %s", e.n("state"), e.v(avS(string(a.State))))
	e.cond("%s = %s", e.n("affiliateId"), e.v(avS(a.AffiliateID)))
	if a.IncrementalOff == "" {
		e.cond("attribute_not_exists(%s)", e.n("incrementalOff"))
	} else {
		e.cond("attribute_exists(%s)", e.n("incrementalOff"))
	}
	setDue(e, tenant, network, due, hourly)
	return types.TransactWriteItem{Update: s.accountTxUpdate(tenant, network, e)}
}

// setDue sets the account's due keys (hourly ones when hourly) or removes
// them.
func setDue(e *expr, tenant, network string, due, hourly bool) {
	if due {
		e.set(AttrDuePK, avS(duePK(ShardOf(tenant))))
		e.set(AttrDueSK, avS(dueSK(tenant, network, hourly)))
	} else {
		e.remove(AttrDuePK, AttrDueSK)
	}
}
