package dynamo

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/webhook"
)

// The table's stream is the outbox of merchantsync's events: the items a
// sync writes anyway are the events' source, so an event exists exactly
// when its fact was stored (no second write to keep in step). StreamEvent
// reads one stream record:
//
//   - a change item inserted → relationship.changed;
//   - a run item whose state became succeeded or failed → sync.completed or
//     sync.failed (a run rewritten while already finished gives nothing);
//   - an account item whose state became reauth_required →
//     connection.reauth_required.
//
// Everything else gives nil. The template's FilterCriteria (StreamFilters)
// let only such records reach the notifier; StreamEvent checks them again,
// so the local stack, which has no filters, behaves the same.
//
// An event's ID is derived from the item (its key and what made it an
// event), so reading the same record twice, as a retried batch does, gives
// the same ID: the same webhook-id for receivers to drop the duplicate.

// StreamFilters are the Lambda event filter patterns for the notifier's
// event source mapping: the same rules as StreamEvent, as far as patterns
// can say them (they cannot compare the new image with the old one).
var StreamFilters = []string{
	`{"eventName":["INSERT"],"dynamodb":{"NewImage":{"kind":{"S":["change"]}}}}`,
	`{"eventName":["INSERT","MODIFY"],"dynamodb":{"NewImage":{"kind":{"S":["run"]},"state":{"S":["succeeded","failed"]}}}}`,
	`{"eventName":["INSERT","MODIFY"],"dynamodb":{"NewImage":{"kind":{"S":["account"]},"state":{"S":["reauth_required"]}}}}`,
}

// StreamEvent returns the event a stream record stands for, or nil.
func StreamEvent(rec events.DynamoDBEventRecord) (*merchantsync.Event, error) {
	if rec.EventName == "REMOVE" || rec.Change.NewImage == nil {
		return nil, nil
	}
	newImg, err := fromStreamImage(rec.Change.NewImage)
	if err != nil {
		return nil, err
	}
	kind := stringAttr(newImg, "kind")
	switch kind {
	case kindChange:
		if rec.EventName != "INSERT" {
			return nil, nil
		}
		var it changeItem
		if err := attributevalue.UnmarshalMap(newImg, &it); err != nil {
			return nil, fmt.Errorf("dynamo: stream change item: %w", err)
		}
		c := it.domain()
		return &merchantsync.Event{
			ID: eventID(it.PK, it.SK, webhook.EventRelationshipChanged), Type: webhook.EventRelationshipChanged,
			TenantID: c.TenantID, Network: c.Network, At: c.At,
			Data: merchantsync.RelationshipChanged{TenantID: c.TenantID, Network: c.Network, AdvertiserID: c.AdvertiserID,
				RegionNetwork: c.RegionNetwork, Name: c.Name, From: c.From, To: c.To, RawFrom: c.RawFrom,
				RawStatus: c.RawTo, Permanent: c.Permanent, ChangedAt: c.At, RunID: c.RunID},
		}, nil
	case kindRun:
		state := merchantsync.RunState(stringAttr(newImg, "state"))
		if state != merchantsync.RunSucceeded && state != merchantsync.RunFailed {
			return nil, nil
		}
		if old, err := fromStreamImage(rec.Change.OldImage); err == nil && stringAttr(old, "state") == string(state) {
			return nil, nil // already finished before this write
		}
		var it runItem
		if err := attributevalue.UnmarshalMap(newImg, &it); err != nil {
			return nil, fmt.Errorf("dynamo: stream run item: %w", err)
		}
		r := it.domain()
		typ := webhook.EventSyncCompleted
		if state == merchantsync.RunFailed {
			typ = webhook.EventSyncFailed
		}
		d := merchantsync.SyncFinished{TenantID: r.TenantID, Network: r.Network, RunID: r.RunID,
			Trigger: string(r.Trigger), Mode: string(r.Mode), State: r.State, StartedAt: timePtr(r.StartedAt),
			FinishedAt: timePtr(r.FinishedAt), MerchantsSynced: r.MerchantsSynced, Counts: fromCounts(r.Counts), Changes: r.Changes}
		if d.Counts == nil {
			d.Counts = map[string]int{}
		}
		if r.Error != nil {
			d.Error = &merchantsync.EventError{Code: r.Error.Code, Message: r.Error.Message}
		}
		at := r.FinishedAt
		if at.IsZero() {
			at = time.Unix(0, 0)
		}
		return &merchantsync.Event{ID: eventID(it.PK, it.SK, typ), Type: typ, TenantID: r.TenantID,
			Network: r.Network, At: at, Data: d}, nil
	case kindAccount:
		if stringAttr(newImg, "state") != string(merchantsync.StateReauthRequired) {
			return nil, nil
		}
		if old, err := fromStreamImage(rec.Change.OldImage); err == nil && stringAttr(old, "state") == string(merchantsync.StateReauthRequired) {
			return nil, nil
		}
		var it accountItem
		if err := attributevalue.UnmarshalMap(newImg, &it); err != nil {
			return nil, fmt.Errorf("dynamo: stream account item: %w", err)
		}
		at, why, ref := parseTime(it.UpdatedAt), "", it.UpdatedAt
		if it.LastRun != nil {
			ref = it.LastRun.RunID // the run that found it: one event per refusal
			why = it.LastRun.ErrorMessage
			if t := parseTime(it.LastRun.FinishedAt); !t.IsZero() {
				at = t
			}
		}
		if why == "" {
			why = "The network refused the stored credentials; connect the account again."
		}
		return &merchantsync.Event{ID: eventID(it.PK, it.SK+"#"+ref, webhook.EventConnectionReauthRequired),
			Type: webhook.EventConnectionReauthRequired, TenantID: it.TenantID, Network: it.Network, At: at,
			Data: merchantsync.ReauthRequired{TenantID: it.TenantID, Network: it.Network, Username: it.Username, Message: why, At: at}}, nil
	}
	return nil, nil
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func stringAttr(item map[string]types.AttributeValue, name string) string {
	if s, ok := item[name].(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// eventID is a message id (webhook.ValidMessageID) derived from the item
// and the event type.
func eventID(pk, sk string, typ webhook.EventType) string {
	sum := sha256.Sum256([]byte(pk + "\x00" + sk + "\x00" + string(typ)))
	return "msg_" + idEncoding.EncodeToString(sum[:20])
}

// fromStreamImage converts a stream image (aws-lambda-go's attribute
// values, as Lambda delivers them) to the SDK's, which the item codecs read.
func fromStreamImage(img map[string]events.DynamoDBAttributeValue) (map[string]types.AttributeValue, error) {
	if img == nil {
		return nil, fmt.Errorf("dynamo: no image")
	}
	out := make(map[string]types.AttributeValue, len(img))
	for k, v := range img {
		av, err := fromStreamValue(v)
		if err != nil {
			return nil, fmt.Errorf("dynamo: attribute %q: %w", k, err)
		}
		out[k] = av
	}
	return out, nil
}

func fromStreamValue(v events.DynamoDBAttributeValue) (types.AttributeValue, error) {
	switch v.DataType() {
	case events.DataTypeString:
		return &types.AttributeValueMemberS{Value: v.String()}, nil
	case events.DataTypeNumber:
		return &types.AttributeValueMemberN{Value: v.Number()}, nil
	case events.DataTypeBinary:
		return &types.AttributeValueMemberB{Value: v.Binary()}, nil
	case events.DataTypeBoolean:
		return &types.AttributeValueMemberBOOL{Value: v.Boolean()}, nil
	case events.DataTypeNull:
		return &types.AttributeValueMemberNULL{Value: true}, nil
	case events.DataTypeStringSet:
		return &types.AttributeValueMemberSS{Value: v.StringSet()}, nil
	case events.DataTypeNumberSet:
		return &types.AttributeValueMemberNS{Value: v.NumberSet()}, nil
	case events.DataTypeBinarySet:
		return &types.AttributeValueMemberBS{Value: v.BinarySet()}, nil
	case events.DataTypeList:
		l := v.List()
		out := make([]types.AttributeValue, len(l))
		for i := range l {
			av, err := fromStreamValue(l[i])
			if err != nil {
				return nil, err
			}
			out[i] = av
		}
		return &types.AttributeValueMemberL{Value: out}, nil
	case events.DataTypeMap:
		m, err := fromStreamImage(v.Map())
		if err != nil {
			return nil, err
		}
		return &types.AttributeValueMemberM{Value: m}, nil
	}
	return nil, fmt.Errorf("unknown attribute type %v", v.DataType())
}
