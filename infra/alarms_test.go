package infra

import (
	"fmt"
	"slices"
	"strings"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/syncer"
)

// checkAlarms: every dead-letter queue, the sync failure rate (on the EMF
// metrics the syncer emits) and the scheduler's and sync function's errors
// raise alarms, and every alarm notifies an SNS topic of the template whose
// email subscription exists only when AlarmEmail is set.
func checkAlarms(tpl map[string]any) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	alarms := resourcesOfType(tpl, "AWS::CloudWatch::Alarm")
	topics := resourcesOfType(tpl, "AWS::SNS::Topic")
	above := func(p map[string]any, threshold string) bool {
		return fmt.Sprint(p["Threshold"]) == threshold && p["ComparisonOperator"] == "GreaterThanThreshold"
	}
	num := func(v any) int { n, _ := v.(int); return n }
	found := func(match func(p map[string]any) bool) bool {
		for _, a := range alarms {
			if match(m(a["Properties"])) {
				return true
			}
		}
		return false
	}
	for id, a := range alarms {
		notifies := false
		for _, act := range list(m(a["Properties"])["AlarmActions"]) {
			for topic := range topics {
				notifies = notifies || refersTo(act, topic)
			}
		}
		if !notifies {
			bad("%s: AlarmActions must notify an SNS topic of this template", id)
		}
	}
	for _, dlq := range deadLetterQueues(tpl) {
		if !found(func(p map[string]any) bool {
			return p["Namespace"] == "AWS/SQS" && p["MetricName"] == "ApproximateNumberOfMessagesVisible" &&
				refersTo(dimension(p, "QueueName"), dlq) && above(p, "0") &&
				num(p["Period"])*num(p["EvaluationPeriods"]) == 300
		}) {
			bad("alarms: no alarm on %s ApproximateNumberOfMessagesVisible > 0 for 5 minutes", dlq)
		}
	}
	if !found(func(p map[string]any) bool {
		stats := map[string]string{} // metric name → query id
		var expr string
		for _, q := range list(p["Metrics"]) {
			ms := m(m(q)["MetricStat"])
			mt := m(ms["Metric"])
			if mt["Namespace"] == syncer.MetricsNamespace && dimension(mt, "Network") == merchantsync.NetworkRakuten &&
				refersTo(dimension(mt, syncer.DimensionStage), "Stage") && num(ms["Period"]) == 3600 && ms["Stat"] == "Sum" {
				stats[fmt.Sprint(mt["MetricName"])] = fmt.Sprint(m(q)["Id"])
			}
			if e, ok := m(q)["Expression"].(string); ok && m(q)["ReturnData"] == true {
				expr = e
			}
		}
		f, s := stats[syncer.MetricSyncsFailed], stats[syncer.MetricSyncsSucceeded]
		return f != "" && s != "" && strings.Contains(expr, f) && strings.Contains(expr, s) &&
			strings.Contains(expr, ">=") && above(p, "20")
	}) {
		bad("alarms: no sync failure-rate alarm (%s %s / (%s + %s), Network=%s, Stage=the stack's, 1 h, minimum count, > 20%%)",
			syncer.MetricsNamespace, syncer.MetricSyncsFailed, syncer.MetricSyncsFailed, syncer.MetricSyncsSucceeded, merchantsync.NetworkRakuten)
	}
	for _, want := range []struct{ fn, metric string }{
		{"SchedulerFunction", "Errors"}, {"SyncFunction", "Errors"}, {"SyncFunction", "Throttles"},
	} {
		if !found(func(p map[string]any) bool {
			return p["Namespace"] == "AWS/Lambda" && p["MetricName"] == want.metric &&
				refersTo(dimension(p, "FunctionName"), want.fn) && above(p, "0")
		}) {
			bad("alarms: no AWS/Lambda %s > 0 alarm on %s", want.metric, want.fn)
		}
	}
	subscribed := false
	for id, sub := range resourcesOfType(tpl, "AWS::SNS::Subscription") {
		if !refersTo(m(sub["Properties"])["Endpoint"], "AlarmEmail") {
			continue
		}
		subscribed = true
		cond, _ := sub["Condition"].(string)
		if cond == "" || !strings.Contains(fmt.Sprint(m(tpl["Conditions"])[cond]), "AlarmEmail") {
			bad("%s: the AlarmEmail subscription needs a Condition on a non-empty AlarmEmail", id)
		}
	}
	if !subscribed || m(m(tpl["Parameters"])["AlarmEmail"])["Default"] != "" {
		bad("alarms: want an AlarmEmail parameter (default empty) subscribed to the alarm topic")
	}
	return problems
}

// deadLetterQueues are the template's queues that keep what failed: a
// queue's redrive target, a schedule's DeadLetterConfig and a function's
// OnFailure destination.
func deadLetterQueues(tpl map[string]any) []string {
	var refs []any
	for _, q := range resourcesOfType(tpl, "AWS::SQS::Queue") {
		refs = append(refs, m(m(q["Properties"])["RedrivePolicy"])["deadLetterTargetArn"])
	}
	for _, fn := range resourcesOfType(tpl, "AWS::Serverless::Function") {
		p := m(fn["Properties"])
		refs = append(refs, m(m(m(p["EventInvokeConfig"])["DestinationConfig"])["OnFailure"])["Destination"])
		for _, ev := range m(p["Events"]) {
			refs = append(refs, m(m(m(ev)["Properties"])["DeadLetterConfig"])["Arn"])
		}
	}
	var out []string
	for id := range resourcesOfType(tpl, "AWS::SQS::Queue") {
		if slices.ContainsFunc(refs, func(r any) bool { return refersTo(r, id) }) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// checkSchedules: a scheduled function's failures are kept. The schedule
// has a dead-letter queue for events it could not deliver, and the
// function an OnFailure destination for invocations that failed after
// Lambda's asynchronous retries.
func checkSchedules(tpl map[string]any) []string {
	var problems []string
	for id, fn := range resourcesOfType(tpl, "AWS::Serverless::Function") {
		p := m(fn["Properties"])
		scheduled := false
		for name, ev := range m(p["Events"]) {
			if m(ev)["Type"] != "ScheduleV2" {
				continue
			}
			scheduled = true
			if m(m(m(ev)["Properties"])["DeadLetterConfig"])["Arn"] == nil {
				problems = append(problems, fmt.Sprintf("%s: schedule %s has no DeadLetterConfig for events it cannot deliver", id, name))
			}
		}
		onFailure := m(m(m(p["EventInvokeConfig"])["DestinationConfig"])["OnFailure"])
		if scheduled && (onFailure["Type"] != "SQS" || onFailure["Destination"] == nil) {
			problems = append(problems, fmt.Sprintf("%s: invoked asynchronously by a schedule but has no OnFailure destination", id))
		}
	}
	return problems
}
