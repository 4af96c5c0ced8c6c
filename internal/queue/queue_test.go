package queue_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/queue"
	"github.com/merchantsync/merchantsync/internal/queue/sqstest"
)

func requests(n int) []merchantsync.SyncRequest {
	out := make([]merchantsync.SyncRequest, n)
	for i := range out {
		out[i] = merchantsync.SyncRequest{
			TenantID:      fmt.Sprintf("tenant-%05d", i),
			Network:       merchantsync.NetworkRakuten,
			RunID:         fmt.Sprintf("run-%05d", i),
			Trigger:       merchantsync.TriggerSchedule,
			ScheduleRunID: "sched-1",
		}
	}
	return out
}

// drain receives and deletes every message, returning the decoded requests.
func drain(t testing.TB, client *sqs.Client, url string) []merchantsync.SyncRequest {
	t.Helper()
	ctx := context.Background()
	var got []merchantsync.SyncRequest
	for {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, VisibilityTimeout: 60})
		if err != nil {
			t.Fatalf("ReceiveMessage: %v", err)
		}
		if len(out.Messages) == 0 {
			return got
		}
		var del []types.DeleteMessageBatchRequestEntry
		for i, m := range out.Messages {
			req, err := merchantsync.DecodeSyncRequest(aws.ToString(m.Body))
			if err != nil {
				t.Fatalf("DecodeSyncRequest(%q): %v", aws.ToString(m.Body), err)
			}
			got = append(got, req)
			del = append(del, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
		}
		dout, err := client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: del})
		if err != nil || len(dout.Failed) > 0 || len(dout.Successful) != len(del) {
			t.Fatalf("DeleteMessageBatch: %v %+v", err, dout)
		}
	}
}

// peek decodes every message in the queue without receiving it.
func peek(t testing.TB, url string) []merchantsync.SyncRequest {
	t.Helper()
	var out []merchantsync.SyncRequest
	for _, b := range sqstest.Peek(url) {
		req, err := merchantsync.DecodeSyncRequest(b)
		if err != nil {
			t.Fatalf("DecodeSyncRequest(%q): %v", b, err)
		}
		out = append(out, req)
	}
	return out
}

func count(t testing.TB, client *sqs.Client, url string) int {
	t.Helper()
	n, err := sqstest.Count(context.Background(), client, url)
	if err != nil {
		t.Fatalf("count: %v", err)
	}
	return n
}

// exactlyOnce checks got holds each of want once.
func exactlyOnce(t *testing.T, want, got []merchantsync.SyncRequest) {
	t.Helper()
	seen := map[merchantsync.SyncRequest]int{}
	for _, g := range got {
		seen[g]++
	}
	if len(got) != len(want) {
		t.Errorf("received %d messages, want %d", len(got), len(want))
	}
	for _, w := range want {
		if seen[w] != 1 {
			t.Errorf("request %+v received %d times", w, seen[w])
			return
		}
	}
}

func TestSendReceiveRoundTrip(t *testing.T) {
	ctx := context.Background()
	client, url := sqstest.Start(t)
	q := queue.New(client, url)
	want := merchantsync.SyncRequest{TenantID: "auth0|abc", Network: "rakuten", RunID: "r1", Trigger: merchantsync.TriggerManual}
	if err := q.Send(ctx, want); err != nil {
		t.Fatalf("Send: %v", err)
	}
	out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
	})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("ReceiveMessage = %+v, %v", out, err)
	}
	m := out.Messages[0]
	got, err := merchantsync.DecodeSyncRequest(aws.ToString(m.Body))
	if err != nil || got != want {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, want)
	}
	if c := m.Attributes["ApproximateReceiveCount"]; c != "1" {
		t.Errorf("ApproximateReceiveCount = %q", c)
	}
	sent, _ := strconv.ParseInt(m.Attributes["SentTimestamp"], 10, 64)
	if d := time.Since(time.UnixMilli(sent)); d < 0 || d > time.Minute {
		t.Errorf("SentTimestamp = %q", m.Attributes["SentTimestamp"])
	}
	// Give it back at once (what the sync worker does, after a delay):
	// received again, now for the second time.
	if err := q.RetryAfter(ctx, aws.ToString(m.ReceiptHandle), 0); err != nil {
		t.Fatalf("RetryAfter: %v", err)
	}
	out, err = client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(url), WaitTimeSeconds: 1,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount},
	})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("second ReceiveMessage = %+v, %v", out, err)
	}
	if a := out.Messages[0].Attributes; a["ApproximateReceiveCount"] != "2" || len(a) != 1 {
		t.Errorf("attributes on second receive = %v, want only ApproximateReceiveCount=2", a)
	}
	if _, err := client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: out.Messages[0].ReceiptHandle}); err != nil {
		t.Fatalf("DeleteMessage: %v", err)
	}
	if n := count(t, client, url); n != 0 {
		t.Errorf("queue holds %d after delete", n)
	}
	// Long poll on an empty queue waits, then answers empty.
	start := time.Now()
	out, err = client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), WaitTimeSeconds: 1})
	if err != nil || len(out.Messages) != 0 || time.Since(start) < 900*time.Millisecond {
		t.Errorf("empty long poll: %d messages, %v, after %v", len(out.Messages), err, time.Since(start))
	}
}

// The shim turns goaws's errors into typed SDK errors.
func TestEmulatorErrorsAreTyped(t *testing.T) {
	ctx := context.Background()
	client, url := sqstest.Start(t)
	_, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url + "-missing")})
	var qdne *types.QueueDoesNotExist
	if !errors.As(err, &qdne) {
		t.Errorf("receive from a missing queue: %v, want QueueDoesNotExist", err)
	}
	_, err = client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: aws.String("nope")})
	var rhi *types.ReceiptHandleIsInvalid
	if !errors.As(err, &rhi) {
		t.Errorf("delete with a bad receipt handle: %v, want ReceiptHandleIsInvalid", err)
	}
	entries := make([]types.SendMessageBatchRequestEntry, 11)
	for i := range entries {
		entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String("x")}
	}
	_, err = client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
	var tooMany *types.TooManyEntriesInBatchRequest
	if !errors.As(err, &tooMany) {
		t.Errorf("11 entries: %v, want TooManyEntriesInBatchRequest", err)
	}
	entries[1].Id = aws.String("0")
	_, err = client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries[:2]})
	var notDistinct *types.BatchEntryIdsNotDistinct
	if !errors.As(err, &notDistinct) {
		t.Errorf("duplicate ids: %v, want BatchEntryIdsNotDistinct", err)
	}
}

func TestSendBatch10k(t *testing.T) {
	ctx := context.Background()
	client, url := sqstest.Start(t)
	q := queue.New(client, url)
	reqs := requests(10_000)
	start := time.Now()
	st, err := q.SendBatch(ctx, reqs)
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	t.Logf("SendBatch of 10,000 took %v: %+v", time.Since(start), st)
	if st != (queue.SendStats{Sent: 10_000, Calls: 1_000, Retried: 0}) {
		t.Errorf("stats = %+v, want 10,000 sent in 1,000 calls", st)
	}
	if n := count(t, client, url); n != 10_000 {
		t.Fatalf("queue holds %d messages, want 10,000", n)
	}
	exactlyOnce(t, reqs, peek(t, url))
}

func TestSendBatchRetriesFailedEntries(t *testing.T) {
	ctx := context.Background()
	inj := &sqstest.FailEntries{}
	env := sqstest.StartWith(t, sqstest.QueueOptions{}, sqstest.WithTransport(inj))
	q := queue.New(env.Client, env.QueueURL)
	q.BaseDelay, q.MaxDelay = time.Millisecond, 5*time.Millisecond
	inj.Fail(250, false)
	reqs := requests(10_000)
	st, err := q.SendBatch(ctx, reqs)
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	t.Logf("stats: %+v", st)
	if tr, _ := inj.Injected(); tr != 250 {
		t.Fatalf("injected %d failures, want 250", tr)
	}
	if st.Sent != 10_000 || st.Retried < 250 || st.Calls <= 1_000 || st.Calls > 1_000+st.Retried {
		t.Errorf("stats = %+v: want Sent 10,000, Retried ≥ 250, 1,000 < Calls ≤ 1,000 + Retried", st)
	}
	if n := count(t, env.Client, env.QueueURL); n != 10_000 {
		t.Fatalf("queue holds %d messages, want exactly 10,000", n)
	}
	exactlyOnce(t, reqs, peek(t, env.QueueURL))
}

func TestSendBatchSenderFaultNotRetried(t *testing.T) {
	ctx := context.Background()
	inj := &sqstest.FailEntries{}
	env := sqstest.StartWith(t, sqstest.QueueOptions{}, sqstest.WithTransport(inj))
	q := queue.New(env.Client, env.QueueURL)
	q.BaseDelay = time.Millisecond
	inj.Fail(3, true)
	reqs := requests(100)
	st, err := q.SendBatch(ctx, reqs)
	var be *queue.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("SendBatch error = %v, want *BatchError", err)
	}
	if len(be.Failed) != 3 {
		t.Fatalf("Failed = %+v, want 3", be.Failed)
	}
	failedBodies := strings.Join(inj.FailedBodies(), "\n")
	for _, f := range be.Failed {
		if !f.SenderFault || f.Code != "InvalidMessageContents" {
			t.Errorf("failed entry %+v", f)
		}
		if !strings.Contains(err.Error(), reqs[f.Index].TenantID) || !strings.Contains(failedBodies, reqs[f.Index].RunID) {
			t.Errorf("entry #%d (%s) is not the one refused, or not named in %q", f.Index, reqs[f.Index].TenantID, err)
		}
	}
	if st.Sent != 97 || st.Retried != 0 || st.Calls != 10 {
		t.Errorf("stats = %+v, want Sent 97, Retried 0, Calls 10", st)
	}
	if n := count(t, env.Client, env.QueueURL); n != 97 {
		t.Errorf("queue holds %d, want 97", n)
	}
}

func TestSendBatchGivesUpAfterMaxAttempts(t *testing.T) {
	ctx := context.Background()
	inj := &sqstest.FailEntries{PerCall: 1, TimesPerEntry: 1000}
	env := sqstest.StartWith(t, sqstest.QueueOptions{}, sqstest.WithTransport(inj))
	q := queue.New(env.Client, env.QueueURL)
	q.BaseDelay, q.MaxAttempts = time.Millisecond, 3
	inj.Fail(1_000, false) // entry #1 fails every time
	st, err := q.SendBatch(ctx, requests(10))
	var be *queue.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || be.Failed[0].Index != 1 || be.Failed[0].SenderFault {
		t.Fatalf("err = %v, want entry #1 given up", err)
	}
	if st.Calls != 3 || st.Sent != 9 || st.Retried != 2 {
		t.Errorf("stats = %+v, want Calls 3, Sent 9, Retried 2", st)
	}

	// And ctx bounds the backoff.
	q.BaseDelay, q.MaxDelay, q.MaxAttempts = time.Hour, time.Hour, 5
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = q.SendBatch(cctx, requests(10))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("SendBatch with a short ctx: %v after %v", err, time.Since(start))
	}
}

func TestSendRejectsInvalidRequests(t *testing.T) {
	client, url := sqstest.Start(t)
	q := queue.New(client, url)
	bad := merchantsync.SyncRequest{TenantID: "t", Network: "rakuten", Trigger: merchantsync.TriggerManual} // no runId
	if err := q.Send(context.Background(), bad); merchantsync.ErrorCode(err) != merchantsync.EInvalid {
		t.Errorf("Send of an invalid request: %v", err)
	}
	// In a stream, an invalid request is reported and never sent; it does
	// not hold back the valid ones.
	reqs := append(requests(5), bad)
	st, err := q.SendBatch(context.Background(), reqs)
	var be *queue.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || be.Failed[0].Index != 5 || !be.Failed[0].SenderFault ||
		be.Failed[0].Code != merchantsync.EInvalid || st.Sent != 5 || st.Calls != 1 {
		t.Errorf("SendBatch with an invalid request: %+v, %v", st, err)
	}
	if n := count(t, client, url); n != 5 {
		t.Errorf("queue holds %d, want the 5 valid requests", n)
	}
}

func TestDecodeSyncRequest(t *testing.T) {
	ok := `{"tenantId":"auth0|a","network":"rakuten","runId":"r1","trigger":"manual"}`
	if got, err := merchantsync.DecodeSyncRequest(ok); err != nil || got.TenantID != "auth0|a" || got.Trigger != merchantsync.TriggerManual {
		t.Fatalf("DecodeSyncRequest(ok) = %+v, %v", got, err)
	}
	sched := `{"tenantId":"t","network":"rakuten","runId":"r1","trigger":"schedule","scheduleRunId":"s1"}`
	if got, err := merchantsync.DecodeSyncRequest(sched); err != nil || got.ScheduleRunID != "s1" {
		t.Fatalf("DecodeSyncRequest(sched) = %+v, %v", got, err)
	}
	for _, tc := range []struct {
		name, body, code, field string
	}{
		{"empty", ``, merchantsync.EInvalidJSON, ""},
		{"not json", `tenant=t`, merchantsync.EInvalidJSON, ""},
		{"truncated", `{"tenantId":"t"`, merchantsync.EInvalidJSON, ""},
		{"array", `[]`, merchantsync.EInvalidJSON, ""},
		{"null", `null`, merchantsync.EInvalid, "tenantId"},
		{"two objects", ok + ok, merchantsync.EInvalidJSON, ""},
		{"trailing garbage", ok + `x`, merchantsync.EInvalidJSON, ""},
		{"unknown field", `{"tenantId":"t","network":"rakuten","runId":"r1","trigger":"manual","password":"p"}`, merchantsync.EInvalidJSON, ""},
		{"wrong case field", `{"TenantID":"t","network":"rakuten","runId":"r1","trigger":"manual"}`, merchantsync.EInvalidJSON, ""},
		{"duplicate field", `{"tenantId":"t","tenantId":"u","network":"rakuten","runId":"r1","trigger":"manual"}`, merchantsync.EInvalidJSON, ""},
		{"wrong type", `{"tenantId":1,"network":"rakuten","runId":"r1","trigger":"manual"}`, merchantsync.EInvalidJSON, ""},
		{"missing tenant", `{"network":"rakuten","runId":"r1","trigger":"manual"}`, merchantsync.EInvalid, "tenantId"},
		{"blank tenant", `{"tenantId":" ","network":"rakuten","runId":"r1","trigger":"manual"}`, merchantsync.EInvalid, "tenantId"},
		{"missing network", `{"tenantId":"t","runId":"r1","trigger":"manual"}`, merchantsync.EInvalid, "network"},
		{"unknown network", `{"tenantId":"t","network":"cj","runId":"r1","trigger":"manual"}`, merchantsync.EInvalid, "network"},
		{"missing run", `{"tenantId":"t","network":"rakuten","trigger":"manual"}`, merchantsync.EInvalid, "runId"},
		{"missing trigger", `{"tenantId":"t","network":"rakuten","runId":"r1"}`, merchantsync.EInvalid, "trigger"},
		{"bad trigger", `{"tenantId":"t","network":"rakuten","runId":"r1","trigger":"cron"}`, merchantsync.EInvalid, "trigger"},
		{"schedule without scheduleRunId", `{"tenantId":"t","network":"rakuten","runId":"r1","trigger":"schedule"}`, merchantsync.EInvalid, "scheduleRunId"},
		{"huge", `{"tenantId":"` + strings.Repeat("a", 20_000) + `"}`, merchantsync.EInvalidJSON, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := merchantsync.DecodeSyncRequest(tc.body)
			if err == nil {
				t.Fatalf("accepted: %+v", got)
			}
			if c := merchantsync.ErrorCode(err); c != tc.code {
				t.Errorf("code = %s (%v), want %s", c, err, tc.code)
			}
			if f := merchantsync.ErrorField(err); f != tc.field {
				t.Errorf("field = %q, want %q", f, tc.field)
			}
			if got != (merchantsync.SyncRequest{}) {
				t.Errorf("returned a partial request %+v", got)
			}
		})
	}
}

func BenchmarkSendBatch10k(b *testing.B) {
	ctx := context.Background()
	client, url := sqstest.Start(b)
	q := queue.New(client, url)
	reqs := requests(10_000)
	calls, n := 0, 0
	for b.Loop() {
		n++
		st, err := q.SendBatch(ctx, reqs)
		if err != nil || st.Sent != len(reqs) {
			b.Fatalf("SendBatch: %+v, %v", st, err)
		}
		calls += st.Calls
		b.StopTimer()
		if _, err := client.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: aws.String(url)}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(calls)/float64(n), "calls/op")
}
