package dynamo

import (
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// The sync reads every stored relationship of an account on every run, so
// that read is its hottest store path. On a 10,000-merchant sync, pprof put
// attributevalue's reflection at about a sixth of the sync's CPU: this file
// decodes relationship items by hand instead, and the read asks DynamoDB
// only for the attributes the sync uses (not PK, kind, tenantId, network,
// which the caller already knows, nor the index key relStatus).

// relSyncAttrs are the attributes of a relationship item the sync needs.
var relSyncAttrs = []string{
	"regionNetwork", "advertiserId", "name", "status", "rawStatus", "permanent", "programStatus",
	"statusChangedAt", "firstSeenAt", "lastSeenAt", "missedPulls", "missRunId",
}

// relProjection is relSyncAttrs as a ProjectionExpression with its names
// (several are DynamoDB reserved words, so every one goes through #a<i>).
func relProjection() (string, map[string]string) {
	names := make(map[string]string, len(relSyncAttrs))
	expr := make([]byte, 0, 16*len(relSyncAttrs))
	for i, a := range relSyncAttrs {
		if i > 0 {
			expr = append(expr, ',')
		}
		ph := "#a" + strconv.Itoa(i)
		expr = append(expr, ph...)
		names[ph] = a
	}
	return string(expr), names
}

// relFromItem decodes a relationship item as attributevalue.UnmarshalMap
// into relItem would (the equivalence is tested), for the attributes in
// relSyncAttrs. Missing attributes and NULL are zero values; an attribute
// of the wrong type is an error.
func relFromItem(tenant, network string, item map[string]types.AttributeValue) (merchantsync.Relationship, error) {
	r := merchantsync.Relationship{TenantID: tenant, Network: network}
	var err error
	for name, av := range item {
		switch name {
		case "regionNetwork":
			var n int64
			n, err = avInt(av, strconv.IntSize)
			r.RegionNetwork = int(n)
		case "advertiserId":
			r.AdvertiserID, err = avInt(av, 64)
		case "missedPulls":
			var n int64
			n, err = avInt(av, strconv.IntSize)
			r.MissedPulls = int(n)
		case "permanent":
			r.Permanent, err = avBoolValue(av)
		case "name":
			r.Name, err = avString(av)
		case "status":
			var s string
			s, err = avString(av)
			r.Status = merchantsync.Status(s)
		case "rawStatus":
			r.RawStatus, err = avString(av)
		case "programStatus":
			r.ProgramStatus, err = avString(av)
		case "missRunId":
			r.MissRunID, err = avString(av)
		case "statusChangedAt", "firstSeenAt", "lastSeenAt":
			var s string
			if s, err = avString(av); err == nil {
				t := parseTime(s)
				switch name {
				case "statusChangedAt":
					r.StatusChangedAt = t
				case "firstSeenAt":
					r.FirstSeenAt = t
				default:
					r.LastSeenAt = t
				}
			}
		}
		if err != nil {
			return merchantsync.Relationship{}, fmt.Errorf("relationship attribute %s: %w", name, err)
		}
	}
	return r, nil
}

func isNull(av types.AttributeValue) bool {
	n, ok := av.(*types.AttributeValueMemberNULL)
	return ok && n.Value
}

func avString(av types.AttributeValue) (string, error) {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return v.Value, nil
	}
	if isNull(av) {
		return "", nil
	}
	return "", fmt.Errorf("want a string, got %T", av)
}

func avInt(av types.AttributeValue, bits int) (int64, error) {
	switch v := av.(type) {
	case *types.AttributeValueMemberN:
		return strconv.ParseInt(v.Value, 10, bits)
	}
	if isNull(av) {
		return 0, nil
	}
	return 0, fmt.Errorf("want a number, got %T", av)
}

func avBoolValue(av types.AttributeValue) (bool, error) {
	switch v := av.(type) {
	case *types.AttributeValueMemberBOOL:
		return v.Value, nil
	}
	if isNull(av) {
		return false, nil
	}
	return false, fmt.Errorf("want a boolean, got %T", av)
}
