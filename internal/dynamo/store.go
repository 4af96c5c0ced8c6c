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
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
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
		return merchantsync.Settings{TenantID: tenant, Enabled: true}, false, err
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
	item, err := attributevalue.MarshalMap(settingsItem{
		PK: pkTenant(st.TenantID), SK: skSettings, Kind: kindSettings,
		TenantID: st.TenantID, Enabled: st.Enabled, UpdatedAt: fmtTime(st.UpdatedAt),
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
			tx = append(tx, s.dueUpdate(st.TenantID, n.ID, a, a.Due(st)))
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
func (s *Store) dueUpdate(tenant, network string, a *merchantsync.Account, due bool) types.TransactWriteItem {
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
	setDue(e, tenant, network, due)
	return types.TransactWriteItem{Update: s.accountTxUpdate(tenant, network, e)}
}

func setDue(e *expr, tenant, network string, due bool) {
	if due {
		e.set(AttrDuePK, avS(duePK(ShardOf(tenant))))
		e.set(AttrDueSK, avS(dueSK(tenant, network)))
	} else {
		e.remove(AttrDuePK, AttrDueSK)
	}
}

// ---- accounts -------------------------------------------------------------

// GetAccount returns the tenant's account with network, or nil when none.
func (s *Store) GetAccount(ctx context.Context, tenant, network string) (*merchantsync.Account, error) {
	if err := validateKey(tenant, network); err != nil {
		return nil, err
	}
	var it accountItem
	ok, err := s.getItem(ctx, "get account", pkTenant(tenant), skAccount(network), &it)
	if err != nil || !ok {
		return nil, err
	}
	return it.domain(), nil
}

// SaveIDs creates or updates the account's IDs. It keeps the connection and
// sync state; an empty siteID keeps the stored one. Validating the IDs'
// format is the caller's job (merchantsync.ParseAffiliateID, ParseSiteID).
func (s *Store) SaveIDs(ctx context.Context, tenant, network, affiliateID, siteID string, now time.Time) (*merchantsync.Account, error) {
	if err := validateKey(tenant, network); err != nil {
		return nil, err
	}
	if affiliateID == "" {
		return nil, merchantsync.FieldError(merchantsync.EInvalid, "affiliateId", "Affiliate ID is required.")
	}
	e := newExpr()
	e.set("kind", avS(kindAccount))
	e.set("tenantId", avS(tenant))
	e.set("network", avS(network))
	e.set("affiliateId", avS(affiliateID))
	if siteID != "" {
		e.set("siteId", avS(siteID))
	}
	e.set("updatedAt", avS(fmtTime(now)))
	e.setRaw(e.n("connected") + " = if_not_exists(" + e.n("connected") + ", " + e.v(avBool(false)) + ")")
	e.setRaw(e.n("state") + " = if_not_exists(" + e.n("state") + ", " + e.v(avS(string(merchantsync.StateIDsSaved))) + ")")
	in := s.accountUpdate(tenant, network, e)
	in.ReturnValues = types.ReturnValueAllNew
	res, err := s.client.UpdateItem(ctx, in)
	if err != nil {
		return nil, wrap("save ids", err)
	}
	var it accountItem
	if err := attributevalue.UnmarshalMap(res.Attributes, &it); err != nil {
		return nil, wrap("save ids", err)
	}
	return it.domain(), nil
}

// DeleteAccount removes the account item (IDs, connection, lease, due keys)
// if its connection is still conn ("" = none). Relationships, runs and
// changes stay as history. Deleting an absent account is not an error; an
// account connected meanwhile is merchantsync.EConnectionChanged.
func (s *Store) DeleteAccount(ctx context.Context, tenant, network, conn string) error {
	if err := validateKey(tenant, network); err != nil {
		return err
	}
	e := newExpr()
	condConnection(e, conn)
	_, err := s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                           aws.String(s.table),
		Key:                                 keyOf(pkTenant(tenant), skAccount(network)),
		ConditionExpression:                 aws.String("attribute_not_exists(#PK) OR " + *e.condition()),
		ExpressionAttributeNames:            mergeNames(e.nameMap(), map[string]string{"#PK": AttrPK}),
		ExpressionAttributeValues:           e.valueMap(),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if isConditionFailed(err) {
		return errConnectionChanged(network)
	}
	return wrap("delete account", err)
}

func mergeNames(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	maps.Copy(out, a)
	maps.Copy(out, b)
	return out
}

// condConnection asserts that the account's current connection is conn
// (none when conn is empty).
func condConnection(e *expr, conn string) {
	if conn == "" {
		e.cond("attribute_not_exists(%s)", e.n("connectionId"))
		return
	}
	e.cond("%s = %s", e.n("connectionId"), e.v(avS(conn)))
}

// errConnectionChanged says that the account's connection is no longer the
// one the caller acted for.
func errConnectionChanged(network string) error {
	return merchantsync.Errorf(merchantsync.EConnectionChanged,
		"The %s connection was replaced or removed meanwhile.", network)
}

// MarkConnected makes c the account's connection: Connected, state
// connected, ConnectedAt, the username for display, the Site ID when given,
// and the due keys when the tenant's settings are enabled (asserted in the
// same transaction). It returns the id of the connection it replaced ("" if
// none), whose secret the caller deletes.
//
// A new connection fences out every sync of the one it replaces: their
// writes are conditional on the connection id. The lease and the active run
// are cleared with it, so a manual sync of the new connection starts at once
// rather than joining a run whose results will be discarded. Without an
// Affiliate ID it fails with merchantsync.ENetworkIDRequired.
func (s *Store) MarkConnected(ctx context.Context, tenant, network string, c merchantsync.Connection, now time.Time) (string, error) {
	if err := validateKey(tenant, network); err != nil {
		return "", err
	}
	if c.ID == "" {
		return "", merchantsync.FieldError(merchantsync.EInvalid, "connectionId", "connection id is required")
	}
	for range maxRaces {
		a, err := s.GetAccount(ctx, tenant, network)
		if err != nil {
			return "", err
		}
		if a == nil || a.AffiliateID == "" {
			return "", merchantsync.Errorf(merchantsync.ENetworkIDRequired,
				"Save your Affiliate ID before connecting your Rakuten API credentials.")
		}
		st, saved, err := s.settings(ctx, tenant)
		if err != nil {
			return "", err
		}
		e := newExpr()
		e.cond("%s = %s", e.n("affiliateId"), e.v(avS(a.AffiliateID)))
		condConnection(e, a.ConnectionID)
		e.set("connectionId", avS(c.ID))
		e.set("connected", avBool(true))
		e.set("state", avS(string(merchantsync.StateConnected)))
		e.set("connectedAt", avS(fmtTime(now)))
		e.set("updatedAt", avS(fmtTime(now)))
		e.setS("username", c.Username)
		if c.SiteID != "" {
			e.set("siteId", avS(c.SiteID))
		}
		e.remove("leaseRunId", "leaseUntil", "activeRunId")
		setDue(e, tenant, network, st.Enabled)
		_, err = s.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			{Update: s.accountTxUpdate(tenant, network, e)},
			s.settingsCheck(st, saved),
		}})
		if err == nil {
			return a.ConnectionID, nil
		}
		if !retryableCancel(err) {
			return "", wrap("mark connected", err)
		}
		// The IDs, the connection or the settings changed since we read
		// them: read again.
	}
	return "", errRaced("account")
}

// MarkDisconnected ends connection conn: not connected, state ids_saved, no
// connection id, username, due keys, lease or active run. The IDs stay. An
// absent account is not an error; an account whose connection is no longer
// conn (a concurrent connect) is merchantsync.EConnectionChanged, and the
// caller reads it again.
func (s *Store) MarkDisconnected(ctx context.Context, tenant, network, conn string, now time.Time) error {
	if err := validateKey(tenant, network); err != nil {
		return err
	}
	e := newExpr()
	e.cond("attribute_exists(%s)", e.n(AttrPK))
	condConnection(e, conn)
	e.set("connected", avBool(false))
	e.set("state", avS(string(merchantsync.StateIDsSaved)))
	e.set("updatedAt", avS(fmtTime(now)))
	e.remove("username", "connectedAt", "activeRunId", "connectionId", "leaseRunId", "leaseUntil")
	setDue(e, tenant, network, false)
	in := s.accountUpdate(tenant, network, e)
	in.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
	_, err := s.client.UpdateItem(ctx, in)
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		if len(ccf.Item) == 0 {
			return nil // no account: nothing to disconnect
		}
		return errConnectionChanged(network)
	}
	return wrap("mark disconnected", err)
}

// QueryDue reads every due account of one shard (0 ≤ shard < Shards) from
// the sparse index, page by page, calling fn with each non-empty page. It
// returns the number of pages handed to fn. The index is eventually
// consistent: an account connected a moment ago may show up on the next run.
func (s *Store) QueryDue(ctx context.Context, shard int, fn func([]merchantsync.AccountKey) error) (pages int, err error) {
	if shard < 0 || shard >= Shards {
		return 0, merchantsync.FieldError(merchantsync.EInvalid, "shard", "shard out of range")
	}
	size := s.DuePageSize
	if size <= 0 {
		size = 500
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(IndexDue),
		KeyConditionExpression:    aws.String("#p = :p"),
		ExpressionAttributeNames:  map[string]string{"#p": AttrDuePK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": avS(duePK(shard))},
		Limit:                     aws.Int32(int32(size)),
	}
	for {
		res, err := s.client.Query(ctx, in)
		if err != nil {
			return pages, wrap("query due", err)
		}
		if len(res.Items) > 0 {
			page := make([]merchantsync.AccountKey, 0, len(res.Items))
			for _, item := range res.Items {
				var k struct {
					TenantID string `dynamodbav:"PK"`
					Network  string `dynamodbav:"SK"`
				}
				if err := attributevalue.UnmarshalMap(item, &k); err != nil {
					return pages, wrap("query due", err)
				}
				page = append(page, merchantsync.AccountKey{
					TenantID: strings.TrimPrefix(k.TenantID, "TENANT#"),
					Network:  strings.TrimPrefix(k.Network, "NETWORK#"),
				})
			}
			pages++
			if err := fn(page); err != nil {
				return pages, err
			}
		}
		if len(res.LastEvaluatedKey) == 0 {
			return pages, nil
		}
		in.ExclusiveStartKey = res.LastEvaluatedKey
	}
}

// EachDue reads every shard of the due index in parallel and calls fn with
// each non-empty page, from one goroutine per shard. It returns the pages
// read; reading stops at the first error.
func (s *Store) EachDue(ctx context.Context, fn func([]merchantsync.AccountKey) error) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		pages int
		errs  []error
		wg    sync.WaitGroup
	)
	for shard := range Shards {
		wg.Go(func() {
			n, err := s.QueryDue(ctx, shard, fn)
			mu.Lock()
			defer mu.Unlock()
			pages += n
			if err != nil {
				errs = append(errs, fmt.Errorf("shard %d: %w", shard, err))
				cancel()
			}
		})
	}
	wg.Wait()
	return pages, errors.Join(errs...)
}

var _ merchantsync.Store = (*Store)(nil)
