package dynamo

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// The projection must name every attribute of relItem but the ones the
// caller knows: a field added to relItem and forgotten here would read as
// its zero value on every sync.
func TestRelProjectionCoversRelItem(t *testing.T) {
	known := []string{"PK", "SK", "kind", "tenantId", "network", "relStatus"}
	var want []string
	rt := reflect.TypeFor[relItem]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("dynamodbav"), ",")
		if !slices.Contains(known, name) {
			want = append(want, name)
		}
	}
	got := slices.Clone(relSyncAttrs)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("relSyncAttrs = %v, want the relItem attributes %v", got, want)
	}
	expr, names := relProjection()
	if n := strings.Count(expr, ",") + 1; n != len(relSyncAttrs) || len(names) != n {
		t.Fatalf("projection %q with %d names for %d attributes", expr, len(names), len(relSyncAttrs))
	}
}

// relFromItem decodes what attributevalue decodes, for the items the store
// writes.
func TestRelFromItemMatchesAttributeValue(t *testing.T) {
	at := time.Date(2026, 11, 26, 3, 4, 5, 600, time.UTC)
	rels := []merchantsync.Relationship{
		{TenantID: "t1", Network: "rakuten", RegionNetwork: 1, AdvertiserID: 2149},
		{TenantID: "t1", Network: "rakuten", RegionNetwork: 41, AdvertiserID: 1<<53 + 7, Name: "Ümlaut & Co",
			Status: merchantsync.StatusJoined, RawStatus: "active", Permanent: true, ProgramStatus: "active",
			StatusChangedAt: at, FirstSeenAt: at.Add(-time.Hour), LastSeenAt: at, MissedPulls: 2, MissRunID: "run-1"},
		{TenantID: "t1", Network: "rakuten", RegionNetwork: 3, AdvertiserID: 9, Status: merchantsync.StatusRemoved,
			RawStatus: "missing", MissedPulls: 3},
	}
	for _, r := range rels {
		item, err := attributevalue.MarshalMap(newRelItem(r))
		if err != nil {
			t.Fatal(err)
		}
		var it relItem
		if err := attributevalue.UnmarshalMap(item, &it); err != nil {
			t.Fatal(err)
		}
		want := it.domain()
		got, err := relFromItem(r.TenantID, r.Network, item)
		if err != nil {
			t.Fatalf("%d: %v", r.AdvertiserID, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("relFromItem = %+v\nattributevalue = %+v", got, want)
		}
	}
}

func TestRelFromItemWrongTypes(t *testing.T) {
	for name, av := range map[string]types.AttributeValue{
		"advertiserId":  &types.AttributeValueMemberS{Value: "12"},
		"regionNetwork": &types.AttributeValueMemberN{Value: "1.5"},
		"missedPulls":   &types.AttributeValueMemberN{Value: "99999999999999999999"},
		"status":        &types.AttributeValueMemberN{Value: "1"},
		"permanent":     &types.AttributeValueMemberS{Value: "true"},
		"lastSeenAt":    &types.AttributeValueMemberBOOL{Value: true},
	} {
		if _, err := relFromItem("t", "rakuten", map[string]types.AttributeValue{name: av}); err == nil {
			t.Errorf("%s = %#v decoded without error", name, av)
		}
	}
	r, err := relFromItem("t", "rakuten", map[string]types.AttributeValue{
		"name": &types.AttributeValueMemberNULL{Value: true}, "missedPulls": &types.AttributeValueMemberNULL{Value: true}})
	if err != nil || r.Name != "" || r.MissedPulls != 0 {
		t.Fatalf("NULLs: %+v, %v", r, err)
	}
}

// BenchmarkRelFromItem compares the hand decoder with attributevalue on
// one typical relationship item.
func BenchmarkRelFromItem(b *testing.B) {
	at := time.Date(2026, 11, 26, 3, 4, 5, 0, time.UTC)
	item, err := attributevalue.MarshalMap(newRelItem(merchantsync.Relationship{TenantID: "t1", Network: "rakuten",
		RegionNetwork: 1, AdvertiserID: 41234, Name: "Example Store", Status: merchantsync.StatusJoined,
		RawStatus: "active", ProgramStatus: "active", StatusChangedAt: at, FirstSeenAt: at}))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decoder=hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := relFromItem("t1", "rakuten", item); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decoder=attributevalue", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var it relItem
			if err := attributevalue.UnmarshalMap(item, &it); err != nil {
				b.Fatal(err)
			}
			_ = it.domain()
		}
	})
}

// domain is the reflection-based decoding relFromItem replaced: the
// oracle of TestRelFromItemMatchesAttributeValue.
func (it *relItem) domain() merchantsync.Relationship {
	return merchantsync.Relationship{
		TenantID:        it.TenantID,
		Network:         it.Network,
		RegionNetwork:   it.RegionNetwork,
		AdvertiserID:    it.AdvertiserID,
		Name:            it.Name,
		Status:          merchantsync.Status(it.Status),
		RawStatus:       it.RawStatus,
		Permanent:       it.Permanent,
		ProgramStatus:   it.ProgramStatus,
		StatusChangedAt: parseTime(it.StatusChangedAt),
		FirstSeenAt:     parseTime(it.FirstSeenAt),
		LastSeenAt:      parseTime(it.LastSeenAt),
		MissedPulls:     it.MissedPulls,
		MissRunID:       it.MissRunID,
	}
}
