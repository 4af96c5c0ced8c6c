package infra

import (
	"fmt"
	"path/filepath"
	"sort"
	"testing"
)

// accountNames are the properties that name a resource uniquely in an
// account and region (IAM: in the account). Absent, CloudFormation makes a
// name from the stack's; present, it must differ between stages, or a dev
// and a prod stack in one account collide.
var accountNames = map[string]string{
	"AWS::DynamoDB::Table":     "TableName",
	"AWS::SQS::Queue":          "QueueName",
	"AWS::SNS::Topic":          "TopicName",
	"AWS::Logs::LogGroup":      "LogGroupName",
	"AWS::CloudWatch::Alarm":   "AlarmName",
	"AWS::KMS::Alias":          "AliasName",
	"AWS::Scheduler::Schedule": "Name",
	"AWS::Lambda::Function":    "FunctionName",
	"AWS::IAM::Role":           "RoleName",
}

// checkStageNames returns every explicit resource name that two translated
// stages (Stage dev and prod) share.
func checkStageNames(t testing.TB, dev, prod map[string]any) []string {
	t.Helper()
	names := func(cfn map[string]any, stage string) map[string]string {
		s := newStack(t, cfn, map[string]string{"Stage": stage}, resources{})
		out := map[string]string{}
		for id, r := range m(cfn["Resources"]) {
			prop, ok := accountNames[fmt.Sprint(m(r)["Type"])]
			if v, set := m(m(r)["Properties"])[prop]; ok && set {
				out[id] = s.mustResolve(t, id+"."+prop, v)
			}
		}
		return out
	}
	devNames, prodNames := names(dev, "dev"), names(prod, "prod")
	var problems []string
	for id, n := range devNames {
		if prodNames[id] == n {
			problems = append(problems, fmt.Sprintf("%s is named %q in dev and in prod", id, n))
		}
	}
	sort.Strings(problems)
	return problems
}

// TestNamesDifferBetweenStages: a dev and a prod stack can share an account
// and region. Then breaks the schedule's name to prove the check sees it.
func TestNamesDifferBetweenStages(t *testing.T) {
	root := repoRoot(t)
	schedule := func(tpl map[string]any) map[string]any {
		return m(m(m(m(m(m(tpl["Resources"])["SchedulerFunction"])["Properties"])["Events"])["Daily"])["Properties"])
	}
	tests := []struct {
		name   string
		break_ func(map[string]any)
		want   string
	}{
		{"template.yaml", func(map[string]any) {}, ""},
		// SAM names the schedule after its logical id.
		{"schedule without a name", func(tpl map[string]any) { delete(schedule(tpl), "Name") }, "SchedulerFunctionDaily is named"},
		{"queue named for one stage", func(tpl map[string]any) {
			m(m(m(tpl["Resources"])["SyncQueue"])["Properties"])["QueueName"] = "merchantsync-sync"
		}, `SyncQueue is named "merchantsync-sync" in dev and in prod`},
	}
	var ts []translation
	for _, tt := range tests {
		tpl := loadTemplate(t, filepath.Join(root, "template.yaml"))
		tt.break_(tpl)
		for _, stage := range []string{"dev", "prod"} {
			ts = append(ts, translation{Template: tpl, Parameters: map[string]string{"Stage": stage}})
		}
	}
	cfns, _ := samTranslate(t, nil, ts...)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantProblem(t, tt.name, tt.want, checkStageNames(t, cfns[2*i], cfns[2*i+1]))
		})
	}
}
