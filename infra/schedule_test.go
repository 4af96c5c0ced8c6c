package infra

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/merchantsync/merchantsync/internal/dynamo"
	"github.com/merchantsync/merchantsync/internal/dynamo/dynamotest"
	"github.com/merchantsync/merchantsync/internal/queue"
	"github.com/merchantsync/merchantsync/internal/syncer"
	"github.com/merchantsync/merchantsync/internal/testenv"
)

// scheduleInput is the Input of the translated template's schedule that
// targets the scheduler function.
func scheduleInput(t testing.TB, cfn map[string]any, event string) string {
	t.Helper()
	for id, sch := range resourcesOfType(cfn, "AWS::Scheduler::Schedule") {
		target := m(m(sch["Properties"])["Target"])
		if getAttOf(target["Arn"]) == "SchedulerFunction" && id == "SchedulerFunction"+event {
			in, ok := target["Input"].(string)
			if !ok {
				t.Fatalf("%s: Input %v is not a string", id, target["Input"])
			}
			return in
		}
	}
	t.Fatalf("no schedule SchedulerFunction%s targets SchedulerFunction", event)
	return ""
}

// schedulerAttribute matches EventBridge Scheduler's context attributes.
var schedulerAttribute = regexp.MustCompile(`<aws\.scheduler\.[a-z-]+>`)

// renderScheduleInput is the payload Scheduler sends for one attempt of the
// run scheduled at at: it replaces each context attribute of the Input
// with its value for that attempt.
func renderScheduleInput(t testing.TB, input string, at time.Time, executionID string, attempt int) []byte {
	t.Helper()
	values := map[string]string{
		"<aws.scheduler.schedule-arn>":   fmt.Sprintf("arn:aws:scheduler:%s:%s:schedule/default/daily", iamRegion, iamAccount),
		"<aws.scheduler.scheduled-time>": at.UTC().Format(time.RFC3339),
		"<aws.scheduler.execution-id>":   executionID,
		"<aws.scheduler.attempt-number>": fmt.Sprint(attempt),
	}
	out := schedulerAttribute.ReplaceAllStringFunc(input, func(a string) string {
		v, ok := values[a]
		if !ok {
			t.Fatalf("Input uses %s, which EventBridge Scheduler does not define", a)
		}
		return v
	})
	if !json.Valid([]byte(out)) {
		t.Fatalf("Input %q is not JSON once rendered: %s", input, out)
	}
	return []byte(out)
}

// TestScheduleRunIDSameForEveryAttempt: EventBridge Scheduler gives each
// delivery attempt its own execution id and attempt number, and Lambda
// retries an asynchronous invocation with the same payload. The scheduler,
// fed the template's Input as each attempt renders it, must name one
// scheduled run the same every time (so a retry enqueues the same run ids,
// which the worker skips), and two scheduled runs differently.
func TestScheduleRunIDSameForEveryAttempt(t *testing.T) {
	for _, event := range []string{"Daily", "Hourly"} {
		t.Run(event, func(t *testing.T) {
			scheduleRunIDSameForEveryAttempt(t, scheduleInput(t, translateTemplate(t, "prod"), event), "scheduler-"+strings.ToLower(event)+".json")
		})
	}
}

func scheduleRunIDSameForEveryAttempt(t *testing.T, input, byHandEvent string) {
	qURL, _ := testenv.NewQueue(t, testenv.QueueOptions{})
	s := &syncer.Scheduler{
		Store: dynamo.New(dynamotest.Client(t), dynamotest.NewTable(t, dynamotest.Client(t))),
		Queue: queue.New(testenv.SQSClient(t), qURL),
	}
	runID := func(payload []byte) string {
		t.Helper()
		out, err := lambda.NewHandler(s.Handle).Invoke(context.Background(), payload)
		if err != nil {
			t.Fatalf("scheduler with %s: %v", payload, err)
		}
		var res syncer.ScheduleResult
		if err := json.Unmarshal(out, &res); err != nil || res.ScheduleRunID == "" {
			t.Fatalf("scheduler answered %s (%v)", out, err)
		}
		return res.ScheduleRunID
	}
	day := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	first := runID(renderScheduleInput(t, input, day, "d32c5kddcf5bb8c3", 1))
	retry := runID(renderScheduleInput(t, input, day, "a17f09e2b4c6d8e0", 2))
	if retry != first {
		t.Errorf("two attempts of the run scheduled at %s are runs %q and %q: a retry would sync every account again", day, first, retry)
	}
	if next := runID(renderScheduleInput(t, input, day.AddDate(0, 0, 1), "d32c5kddcf5bb8c3", 1)); next == first {
		t.Errorf("the runs of two days are both %q: the second day would sync nothing", first)
	}

	// The event for invoking the scheduler by hand has the Input's fields.
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "infra", "events", byHandEvent))
	if err != nil {
		t.Fatal(err)
	}
	var byHand, scheduled map[string]any
	if err := json.Unmarshal(b, &byHand); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(renderScheduleInput(t, input, day, "x", 1), &scheduled)
	if k, want := slices.Sorted(maps.Keys(byHand)), slices.Sorted(maps.Keys(scheduled)); !slices.Equal(k, want) {
		t.Errorf("infra/events/%s has %s, the schedule sends %s", byHandEvent, strings.Join(k, ", "), strings.Join(want, ", "))
	}
}
