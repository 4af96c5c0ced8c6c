package dynamo

import (
	"context"
	"errors"
	"maps"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

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
		// A new connection starts from what its connect learned, never
		// from what the one it replaces had.
		setNetworkFacts(e, c.Auth, c.PullMode, c.PullModeCheckedAt, true)
		if c.SiteID != "" {
			e.set("siteId", avS(c.SiteID))
		}
		e.remove("leaseRunId", "leaseUntil", "activeRunId")
		// A new connection tries incremental pulls afresh.
		e.remove("incrementalOff")
		setDue(e, tenant, network, st.Enabled, st.Enabled && st.SyncEvery == merchantsync.SyncHourly)
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
	e.remove("username", "connectedAt", "activeRunId", "connectionId", "leaseRunId", "leaseUntil",
		"auth", "pullMode", "pullModeCheckedAt")
	e.remove("incrementalOff")
	setDue(e, tenant, network, false, false)
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

// setNetworkFacts sets what the network reported about a connection (auth
// mode, pull mode and when it was checked). Empty values remove the
// attribute when reset, and keep it otherwise.
func setNetworkFacts(e *expr, auth merchantsync.AuthMode, mode merchantsync.PullMode, checkedAt time.Time, reset bool) {
	for _, f := range []struct{ attr, val string }{
		{"auth", string(auth)}, {"pullMode", string(mode)}, {"pullModeCheckedAt", fmtTime(checkedAt)},
	} {
		switch {
		case f.val != "":
			e.set(f.attr, avS(f.val))
		case reset:
			e.remove(f.attr)
		}
	}
}
