package infra

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/merchantsync/merchantsync/internal/dynamo"
	"github.com/merchantsync/merchantsync/internal/testenv"
	"github.com/merchantsync/merchantsync/internal/webhook"
)

// checkEvents holds the events side of the template to what the code
// assumes: the stream with old images (dynamo.StreamEvent compares them),
// the notifier's filters equal to dynamo.StreamFilters, the deliveries
// queue's maxReceiveCount equal to webhook.Attempts (the receive count is
// the attempt number) and a retention that outlasts the retries, a DLQ
// alarm for each of the two dead-letter queues, and the bus's archive.
func checkEvents(tpl map[string]any) []string {
	var problems []string
	bad := func(f string, a ...any) { problems = append(problems, fmt.Sprintf(f, a...)) }
	res := m(tpl["Resources"])
	if v := m(m(m(res["Table"])["Properties"])["StreamSpecification"])["StreamViewType"]; v != "NEW_AND_OLD_IMAGES" {
		bad("Table: StreamViewType %v, want NEW_AND_OLD_IMAGES", v)
	}
	var notify map[string]any
	for _, esm := range resourcesOfType(tpl, "AWS::Lambda::EventSourceMapping") {
		if p := m(esm["Properties"]); m(p["FunctionName"])["Ref"] == "NotifyFunction" {
			notify = p
		}
	}
	if notify == nil {
		bad("no event source mapping feeds the table's stream to NotifyFunction")
	} else {
		var got []string
		for _, f := range list(m(notify["FilterCriteria"])["Filters"]) {
			got = append(got, fmt.Sprint(m(f)["Pattern"]))
		}
		if !slices.Equal(got, dynamo.StreamFilters) {
			bad("NotifyEventSource: filters %q, want dynamo.StreamFilters %q", got, dynamo.StreamFilters)
		}
		if m(m(notify["DestinationConfig"])["OnFailure"])["Destination"] == nil {
			bad("NotifyEventSource: no on-failure destination: records given up on would vanish")
		}
	}
	dq := m(m(res["DeliveryQueue"])["Properties"])
	if mrc := fmt.Sprint(m(dq["RedrivePolicy"])["maxReceiveCount"]); mrc != fmt.Sprint(webhook.Attempts) {
		bad("DeliveryQueue: maxReceiveCount %s, want webhook.Attempts = %d", mrc, webhook.Attempts)
	}
	if r, _ := dq["MessageRetentionPeriod"].(int); r <= int(webhook.LongestSpan.Seconds()) {
		bad("DeliveryQueue: MessageRetentionPeriod %v s does not outlast the retries (%v)", dq["MessageRetentionPeriod"], webhook.LongestSpan)
	}
	watched := map[string]bool{}
	for _, a := range resourcesOfType(tpl, "AWS::CloudWatch::Alarm") {
		for _, d := range list(m(a["Properties"])["Dimensions"]) {
			switch ga := m(m(d)["Value"])["Fn::GetAtt"].(type) {
			case []string: // loadTemplate's form of !GetAtt A.B
				watched[ga[0]] = true
			case []any:
				watched[fmt.Sprint(ga[0])] = true
			}
		}
	}
	for _, q := range []string{"DeliveryDeadLetterQueue", "NotifyDeadLetterQueue"} {
		if !watched[q] {
			bad("%s: no alarm watches it", q)
		}
	}
	if len(resourcesOfType(tpl, "AWS::Events::Archive")) != 1 {
		bad("the event bus has no archive")
	}
	return problems
}

func TestEventsTemplate(t *testing.T) {
	tpl := loadTemplate(t, filepath.Join(repoRoot(t), "template.yaml"))
	for _, p := range checkEvents(tpl) {
		t.Error(p)
	}
	// The checks can fail.
	for name, breakIt := range map[string]func(map[string]any){
		"stream without old images": func(tpl map[string]any) {
			m(m(m(m(tpl["Resources"])["Table"])["Properties"])["StreamSpecification"])["StreamViewType"] = "NEW_IMAGE"
		},
		"a filter dropped": func(tpl map[string]any) {
			fc := m(m(m(m(tpl["Resources"])["NotifyEventSource"])["Properties"])["FilterCriteria"])
			fc["Filters"] = list(fc["Filters"])[1:]
		},
		"deliveries retried 4 times": func(tpl map[string]any) {
			m(m(m(m(tpl["Resources"])["DeliveryQueue"])["Properties"])["RedrivePolicy"])["maxReceiveCount"] = 4
		},
		"no DLQ alarm": func(tpl map[string]any) { delete(m(tpl["Resources"]), "DeliveryDlqDepthAlarm") },
	} {
		broken := loadTemplate(t, filepath.Join(repoRoot(t), "template.yaml"))
		breakIt(broken)
		if len(checkEvents(broken)) == 0 {
			t.Errorf("%s: not reported", name)
		}
	}
}

// The notifier's filter patterns, evaluated by moto's EventBridge pattern
// matcher (infra/scripts/event-pattern-match.py; Lambda's event filtering
// uses the same pattern language), let through every stream record
// dynamo.StreamEvent makes an event of, and keep out the relationship
// writes and unfinished runs that make up nearly all of a sync's records.
func TestStreamFiltersMatchWhatStreamEventReads(t *testing.T) {
	s := func(v string) events.DynamoDBAttributeValue { return events.NewStringAttribute(v) }
	image := func(kind, state string) map[string]events.DynamoDBAttributeValue {
		m := map[string]events.DynamoDBAttributeValue{"PK": s("TENANT#t1"), "SK": s(strings.ToUpper(kind) + "#rakuten#x"), "kind": s(kind),
			"tenantId": s("t1"), "network": s("rakuten"), "runId": s("r1"), "at": s("2026-12-05T03:00:00Z"), "to": s("removed")}
		if state != "" {
			m["state"] = s(state)
		}
		return m
	}
	cases := []struct {
		name   string
		event  string
		newImg map[string]events.DynamoDBAttributeValue
		oldImg map[string]events.DynamoDBAttributeValue
		pass   bool // what the filters must answer
	}{
		{"change inserted", "INSERT", image("change", ""), nil, true},
		{"relationship written", "MODIFY", image("relationship", ""), image("relationship", ""), false},
		{"relationship inserted", "INSERT", image("relationship", ""), nil, false},
		{"run started", "INSERT", image("run", "running"), nil, false},
		{"run succeeded", "MODIFY", image("run", "succeeded"), image("run", "running"), true},
		{"run failed", "MODIFY", image("run", "failed"), image("run", "running"), true},
		{"run skipped", "MODIFY", image("run", "skipped"), image("run", "running"), false},
		{"account refused", "MODIFY", image("account", "reauth_required"), image("account", "connected"), true},
		{"account synced", "MODIFY", image("account", "connected"), image("account", "connected"), false},
		{"settings", "MODIFY", image("settings", ""), image("settings", ""), false},
		{"change expired", "REMOVE", nil, image("change", ""), false},
	}
	type matchCase struct {
		Pattern string         `json:"pattern"`
		Event   map[string]any `json:"event"`
	}
	var in []matchCase
	for _, tc := range cases {
		rec := events.DynamoDBEventRecord{EventID: "1", EventName: tc.event, EventSource: "aws:dynamodb", AWSRegion: "us-east-1",
			Change: events.DynamoDBStreamRecord{NewImage: tc.newImg, OldImage: tc.oldImg, StreamViewType: "NEW_AND_OLD_IMAGES"}}
		ev, err := dynamo.StreamEvent(rec)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if ev != nil && !tc.pass {
			t.Fatalf("%s: StreamEvent made an event of a record the filters must keep out", tc.name)
		}
		// The record as Lambda's filter sees it: its JSON form.
		raw, _ := json.Marshal(rec)
		var doc map[string]any
		_ = json.Unmarshal(raw, &doc)
		for _, p := range dynamo.StreamFilters {
			in = append(in, matchCase{Pattern: p, Event: doc})
		}
	}
	py, err := testenv.MotoPython()
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(in)
	cmd := exec.Command(py, filepath.Join(repoRoot(t), "infra", "scripts", "event-pattern-match.py"))
	cmd.Stdin = bytes.NewReader(body)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("event-pattern-match.py: %v: %s", err, stderr.String())
	}
	lines := strings.Fields(string(out))
	if len(lines) != len(in) {
		t.Fatalf("the matcher answered %d lines for %d cases", len(lines), len(in))
	}
	n := len(dynamo.StreamFilters)
	for i, tc := range cases {
		matched := slices.Contains(lines[i*n:(i+1)*n], "true")
		if matched != tc.pass {
			t.Errorf("%s: the filters let it through = %v, want %v", tc.name, matched, tc.pass)
		}
	}
}
