package infra

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/merchantsync/merchantsync/internal/dynamo"
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
