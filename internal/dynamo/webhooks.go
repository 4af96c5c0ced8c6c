package dynamo

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/webhook"
)

// Webhooks live beside the tenant's other items:
//
//	TENANT#<t> / WEBHOOK#<id>                          one webhook (its secret sealed)
//	TENANT#<t> / WEBHOOKS                              how many the tenant has
//	TENANT#<t> / WHLOG#<id>#<time>#<message>#<attempt> one delivery attempt (TTL)
//
// The count item makes the limit hold under concurrent creates: creating
// is one transaction that raises the count only while it is below
// MaxWebhooks and puts the webhook; deleting lowers it in the same
// transaction that deletes. Counting with a query first would let two
// creates at 9 both succeed.

const (
	kindWebhook = "webhook"
	kindAttempt = "webhook_attempt"
	skWebhooks  = "WEBHOOKS"
)

func skWebhook(id string) string { return "WEBHOOK#" + id }
func attemptPrefix(id string) string {
	return "WHLOG#" + id + "#"
}

type webhookItem struct {
	PK           string   `dynamodbav:"PK"`
	SK           string   `dynamodbav:"SK"`
	Kind         string   `dynamodbav:"kind"`
	TenantID     string   `dynamodbav:"tenantId"`
	WebhookID    string   `dynamodbav:"webhookId"`
	URL          string   `dynamodbav:"url"`
	Events       []string `dynamodbav:"events,omitempty"`
	Description  string   `dynamodbav:"description,omitempty"`
	CreatedAt    string   `dynamodbav:"createdAt"`
	State        string   `dynamodbav:"state"`
	FailingSince string   `dynamodbav:"failingSince,omitempty"`
	LastError    string   `dynamodbav:"lastError,omitempty"`
	// Sealed is the signing secret encrypted with the stack's KMS key
	// (binary): the secret itself is never an attribute.
	Sealed []byte `dynamodbav:"sealedSecret"`
}

type attemptItem struct {
	PK            string `dynamodbav:"PK"`
	SK            string `dynamodbav:"SK"`
	Kind          string `dynamodbav:"kind"`
	TenantID      string `dynamodbav:"tenantId"`
	WebhookID     string `dynamodbav:"webhookId"`
	MessageID     string `dynamodbav:"messageId"`
	Type          string `dynamodbav:"type"`
	Attempt       int    `dynamodbav:"attempt"`
	Success       bool   `dynamodbav:"success"`
	StatusCode    int    `dynamodbav:"statusCode,omitempty"`
	Error         string `dynamodbav:"error,omitempty"`
	At            string `dynamodbav:"at"`
	DurationMs    int64  `dynamodbav:"durationMs"`
	NextAttemptAt string `dynamodbav:"nextAttemptAt,omitempty"`
	ExpiresAt     int64  `dynamodbav:"expiresAt"`
}

func (it *webhookItem) domain() *merchantsync.Webhook {
	w := &merchantsync.Webhook{
		TenantID: it.TenantID, ID: it.WebhookID, URL: it.URL, Description: it.Description,
		CreatedAt: parseTime(it.CreatedAt), State: merchantsync.WebhookState(it.State),
		FailingSince: parseTime(it.FailingSince), LastError: it.LastError, Sealed: it.Sealed,
	}
	for _, e := range it.Events {
		w.Events = append(w.Events, webhook.EventType(e))
	}
	return w
}

func validWebhookKey(tenant, id string) error {
	if err := validateTenant(tenant); err != nil {
		return err
	}
	if id == "" || len(id) > 64 || strings.ContainsAny(id, "#") {
		return merchantsync.Errorf(merchantsync.ENotFound, "no webhook %q", id)
	}
	return nil
}

// CreateWebhook stores w, within the tenant's limit.
func (s *Store) CreateWebhook(ctx context.Context, w merchantsync.Webhook) error {
	if err := validWebhookKey(w.TenantID, w.ID); err != nil {
		return err
	}
	if len(w.Sealed) == 0 {
		return fmt.Errorf("dynamo: CreateWebhook: the secret is not sealed")
	}
	it := webhookItem{
		PK: pkTenant(w.TenantID), SK: skWebhook(w.ID), Kind: kindWebhook,
		TenantID: w.TenantID, WebhookID: w.ID, URL: w.URL, Description: w.Description,
		CreatedAt: fmtTime(w.CreatedAt), State: string(merchantsync.WebhookActive), Sealed: w.Sealed,
	}
	for _, e := range w.Events {
		it.Events = append(it.Events, string(e))
	}
	item, err := attributevalue.MarshalMap(it)
	if err != nil {
		return wrap("CreateWebhook", err)
	}
	_, err = s.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: &types.Update{
			TableName:                 aws.String(s.table),
			Key:                       keyOf(pkTenant(w.TenantID), skWebhooks),
			UpdateExpression:          aws.String("SET #n = if_not_exists(#n, :zero) + :one, #k = :kind"),
			ConditionExpression:       aws.String("attribute_not_exists(#n) OR #n < :max"),
			ExpressionAttributeNames:  map[string]string{"#n": "count", "#k": "kind"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":zero": avN(0), ":one": avN(1), ":max": avN(merchantsync.MaxWebhooks), ":kind": avS("webhook_count")},
		}},
		{Put: &types.Put{
			TableName:           aws.String(s.table),
			Item:                item,
			ConditionExpression: aws.String("attribute_not_exists(PK)"),
		}},
	}})
	if reasons := cancelReasons(err); len(reasons) == 2 && reasons[0] == "ConditionalCheckFailed" {
		return merchantsync.Errorf(merchantsync.EWebhookLimit,
			"You already have %d webhooks, the most a workspace can have; delete one you no longer use first.", merchantsync.MaxWebhooks)
	}
	return wrap("CreateWebhook", err)
}

// GetWebhook returns one of the tenant's webhooks.
func (s *Store) GetWebhook(ctx context.Context, tenant, id string) (*merchantsync.Webhook, error) {
	if err := validWebhookKey(tenant, id); err != nil {
		return nil, err
	}
	var it webhookItem
	ok, err := s.getItem(ctx, "GetWebhook", pkTenant(tenant), skWebhook(id), &it)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, merchantsync.Errorf(merchantsync.ENotFound, "no webhook %q", id)
	}
	return it.domain(), nil
}

// ListWebhooks returns the tenant's webhooks, oldest first (at most
// MaxWebhooks: one query page).
func (s *Store) ListWebhooks(ctx context.Context, tenant string) ([]merchantsync.Webhook, error) {
	if err := validateTenant(tenant); err != nil {
		return nil, err
	}
	p := dynamodb.NewQueryPaginator(s.client, &dynamodb.QueryInput{
		TableName:              aws.String(s.table),
		KeyConditionExpression: aws.String("PK = :pk AND begins_with(SK, :p)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": avS(pkTenant(tenant)), ":p": avS(skWebhook("")),
		},
		ConsistentRead: aws.Bool(true),
	})
	var out []merchantsync.Webhook
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, wrap("ListWebhooks", err)
		}
		var items []webhookItem
		if err := attributevalue.UnmarshalListOfMaps(page.Items, &items); err != nil {
			return nil, wrap("ListWebhooks", err)
		}
		for i := range items {
			out = append(out, *items[i].domain())
		}
	}
	sortWebhooks(out)
	return out, nil
}

func sortWebhooks(ws []merchantsync.Webhook) {
	slices.SortFunc(ws, func(a, b merchantsync.Webhook) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// DeleteWebhook removes a webhook and gives its place back. Its attempts
// expire on their own.
func (s *Store) DeleteWebhook(ctx context.Context, tenant, id string) error {
	if err := validWebhookKey(tenant, id); err != nil {
		return err
	}
	_, err := s.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Delete: &types.Delete{
			TableName:           aws.String(s.table),
			Key:                 keyOf(pkTenant(tenant), skWebhook(id)),
			ConditionExpression: aws.String("attribute_exists(PK)"),
		}},
		{Update: &types.Update{
			TableName:                 aws.String(s.table),
			Key:                       keyOf(pkTenant(tenant), skWebhooks),
			UpdateExpression:          aws.String("SET #n = #n - :one"),
			ConditionExpression:       aws.String("#n > :zero"),
			ExpressionAttributeNames:  map[string]string{"#n": "count"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":zero": avN(0), ":one": avN(1)},
		}},
	}})
	if reasons := cancelReasons(err); len(reasons) == 2 && reasons[0] == "ConditionalCheckFailed" {
		return merchantsync.Errorf(merchantsync.ENotFound, "no webhook %q", id)
	}
	return wrap("DeleteWebhook", err)
}

// SetWebhookState marks a webhook failing or active again. It never
// re-creates a deleted webhook, and writes nothing when the state is
// already the one asked for with the same error (every success of a
// healthy webhook would otherwise write).
func (s *Store) SetWebhookState(ctx context.Context, tenant, id string, state merchantsync.WebhookState, lastError string, at time.Time) error {
	if err := validWebhookKey(tenant, id); err != nil {
		return err
	}
	e := newExpr()
	e.setS("state", string(state))
	switch state {
	case merchantsync.WebhookFailing:
		e.setS("lastError", lastError)
		e.setRaw(fmt.Sprintf("%s = if_not_exists(%s, %s)", e.n("failingSince"), e.n("failingSince"), e.v(avS(fmtTime(at)))))
		e.cond("attribute_exists(PK) AND (%s <> %s OR %s <> %s)", e.n("state"), e.v(avS(string(state))), e.n("lastError"), e.v(avS(lastError)))
	default:
		e.remove("lastError", "failingSince")
		e.cond("attribute_exists(PK) AND %s <> %s", e.n("state"), e.v(avS(string(state))))
	}
	_, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       keyOf(pkTenant(tenant), skWebhook(id)),
		UpdateExpression:          e.update(),
		ConditionExpression:       e.condition(),
		ExpressionAttributeNames:  e.nameMap(),
		ExpressionAttributeValues: e.valueMap(),
	})
	if isConditionFailed(err) {
		return nil // deleted, or already so
	}
	return wrap("SetWebhookState", err)
}

// RecordAttempt adds one attempt to the webhook's log.
func (s *Store) RecordAttempt(ctx context.Context, a merchantsync.DeliveryAttempt) error {
	if err := validWebhookKey(a.TenantID, a.WebhookID); err != nil {
		return err
	}
	it := attemptItem{
		PK:   pkTenant(a.TenantID),
		SK:   fmt.Sprintf("%s%s#%s#%02d", attemptPrefix(a.WebhookID), a.At.UTC().Format(keyTime), a.MessageID, a.Attempt),
		Kind: kindAttempt, TenantID: a.TenantID, WebhookID: a.WebhookID, MessageID: a.MessageID,
		Type: string(a.Type), Attempt: a.Attempt, Success: a.Success, StatusCode: a.StatusCode,
		Error: a.Error, At: fmtTime(a.At), DurationMs: a.Duration.Milliseconds(),
		NextAttemptAt: fmtTime(a.NextAttemptAt),
		ExpiresAt:     a.At.Add(merchantsync.DeliveryRetention).Unix(),
	}
	item, err := attributevalue.MarshalMap(it)
	if err != nil {
		return wrap("RecordAttempt", err)
	}
	_, err = s.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: item})
	return wrap("RecordAttempt", err)
}

// ListAttempts returns the webhook's most recent attempts, newest first.
func (s *Store) ListAttempts(ctx context.Context, tenant, id string, limit int) ([]merchantsync.DeliveryAttempt, error) {
	if err := validWebhookKey(tenant, id); err != nil {
		return nil, err
	}
	limit, err := checkLimit(limit)
	if err != nil {
		return nil, err
	}
	res, err := s.client.Query(ctx, &dynamodb.QueryInput{
		TableName:              aws.String(s.table),
		KeyConditionExpression: aws.String("PK = :pk AND begins_with(SK, :p)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": avS(pkTenant(tenant)), ":p": avS(attemptPrefix(id)),
		},
		ScanIndexForward: aws.Bool(false),
		Limit:            aws.Int32(int32(limit)),
	})
	if err != nil {
		return nil, wrap("ListAttempts", err)
	}
	var items []attemptItem
	if err := attributevalue.UnmarshalListOfMaps(res.Items, &items); err != nil {
		return nil, wrap("ListAttempts", err)
	}
	out := make([]merchantsync.DeliveryAttempt, len(items))
	for i, it := range items {
		out[i] = merchantsync.DeliveryAttempt{
			TenantID: it.TenantID, WebhookID: it.WebhookID, MessageID: it.MessageID,
			Type: webhook.EventType(it.Type), Attempt: it.Attempt, Success: it.Success,
			StatusCode: it.StatusCode, Error: it.Error, At: parseTime(it.At),
			Duration: time.Duration(it.DurationMs) * time.Millisecond, NextAttemptAt: parseTime(it.NextAttemptAt),
		}
	}
	return out, nil
}
