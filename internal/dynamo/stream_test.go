package dynamo_test

import (
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/merchantsync/merchantsync/internal/dynamo"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

func img(kv ...string) map[string]events.DynamoDBAttributeValue {
	m := map[string]events.DynamoDBAttributeValue{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = events.NewStringAttribute(kv[i+1])
	}
	return m
}

func rec(name string, newImg, oldImg map[string]events.DynamoDBAttributeValue) events.DynamoDBEventRecord {
	return events.DynamoDBEventRecord{EventName: name, Change: events.DynamoDBStreamRecord{NewImage: newImg, OldImage: oldImg}}
}

// Which stream records are events: the rules of StreamEvent's doc comment.
func TestStreamEventRules(t *testing.T) {
	change := img("PK", "TENANT#t1", "SK", "CHANGE#rakuten#2026-12-05T03:00:00.000000000Z#00001#0000000000000000042",
		"kind", "change", "tenantId", "t1", "network", "rakuten", "to", "removed", "from", "joined", "at", "2026-12-05T03:00:00Z")
	change["advertiserId"] = events.NewNumberAttribute("42")
	change["permanent"] = events.NewBooleanAttribute(true)
	run := func(state string) map[string]events.DynamoDBAttributeValue {
		r := img("PK", "TENANT#t1", "SK", "RUN#rakuten#r1", "kind", "run", "runId", "r1", "tenantId", "t1", "network", "rakuten",
			"state", state, "finishedAt", "2026-12-05T03:00:09Z", "errorCode", "network_unavailable", "errorMessage", "Rakuten is down")
		r["merchantsSynced"] = events.NewNumberAttribute("480")
		r["counts"] = events.NewMapAttribute(map[string]events.DynamoDBAttributeValue{"joined": events.NewNumberAttribute("400")})
		return r
	}
	acct := func(state, lastRun string) map[string]events.DynamoDBAttributeValue {
		a := img("PK", "TENANT#t1", "SK", "NETWORK#rakuten", "kind", "account", "tenantId", "t1", "network", "rakuten", "state", state)
		a["lastRun"] = events.NewMapAttribute(map[string]events.DynamoDBAttributeValue{"runId": events.NewStringAttribute(lastRun),
			"errorMessage": events.NewStringAttribute("Rakuten refused the stored credentials.")})
		return a
	}
	rel := img("PK", "TENANT#t1", "SK", "REL#rakuten#00001#0000000000000000042", "kind", "relationship", "status", "removed")
	for _, tc := range []struct {
		name string
		rec  events.DynamoDBEventRecord
		want string // event type, "" for none
	}{
		{"change inserted", rec("INSERT", change, nil), "relationship.changed"},
		{"change rewritten", rec("MODIFY", change, change), ""},
		{"change expired", rec("REMOVE", nil, change), ""},
		{"relationship", rec("MODIFY", rel, rel), ""},
		{"run created running", rec("INSERT", run("running"), nil), ""},
		{"run succeeded", rec("MODIFY", run("succeeded"), run("running")), "sync.completed"},
		{"run failed", rec("MODIFY", run("failed"), run("running")), "sync.failed"},
		{"run finished and rewritten", rec("MODIFY", run("succeeded"), run("succeeded")), ""},
		{"run skipped", rec("MODIFY", run("skipped"), run("running")), ""},
		{"run written finished", rec("INSERT", run("failed"), nil), "sync.failed"},
		{"account refused", rec("MODIFY", acct("reauth_required", "r1"), acct("connected", "r0")), "connection.reauth_required"},
		{"account still refused", rec("MODIFY", acct("reauth_required", "r2"), acct("reauth_required", "r1")), ""},
		{"account connected", rec("MODIFY", acct("connected", "r1"), acct("reauth_required", "r1")), ""},
	} {
		ev, err := dynamo.StreamEvent(tc.rec)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := ""
		if ev != nil {
			got = string(ev.Type)
		}
		if got != tc.want {
			t.Errorf("%s: event %q, want %q", tc.name, got, tc.want)
		}
	}

	// The same record always gives the same id; another record another.
	a, _ := dynamo.StreamEvent(rec("INSERT", change, nil))
	b, _ := dynamo.StreamEvent(rec("INSERT", change, nil))
	c, _ := dynamo.StreamEvent(rec("MODIFY", run("failed"), run("running")))
	if a.ID != b.ID || a.ID == c.ID || len(a.ID) > 64 {
		t.Errorf("ids %q %q %q", a.ID, b.ID, c.ID)
	}
	d := a.Data.(merchantsync.RelationshipChanged)
	if d.AdvertiserID != 42 || d.To != "removed" || d.From != "joined" || !d.Permanent || d.TenantID != "t1" {
		t.Errorf("relationship.changed data = %+v", d)
	}
	f := c.Data.(merchantsync.SyncFinished)
	if f.MerchantsSynced != 480 || f.Counts["joined"] != 400 || f.Error == nil || f.Error.Code != "network_unavailable" {
		t.Errorf("sync.failed data = %+v", f)
	}
	// Each refusal of a connection is its own event (the run that found it).
	r1, _ := dynamo.StreamEvent(rec("MODIFY", acct("reauth_required", "r1"), acct("connected", "r0")))
	r2, _ := dynamo.StreamEvent(rec("MODIFY", acct("reauth_required", "r5"), acct("connected", "r4")))
	if r1.ID == r2.ID {
		t.Error("two refusals share an event id: the second would be dropped as a duplicate")
	}
}
