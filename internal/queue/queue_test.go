package queue_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/queue"
	"github.com/merchantsync/merchantsync/internal/testenv"
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

// received decodes every message of the queue, receiving and deleting it.
func received(t testing.TB, url string) []merchantsync.SyncRequest {
	t.Helper()
	var out []merchantsync.SyncRequest
	for _, m := range testenv.Drain(t, url) {
		req, err := merchantsync.DecodeSyncRequest(aws.ToString(m.Body))
		if err != nil {
			t.Fatalf("DecodeSyncRequest(%q): %v", aws.ToString(m.Body), err)
		}
		out = append(out, req)
	}
	return out
}

// decoded decodes the bodies a testenv.Sink was sent.
func decoded(t testing.TB, bodies []string) []merchantsync.SyncRequest {
	t.Helper()
	var out []merchantsync.SyncRequest
	for _, b := range bodies {
		req, err := merchantsync.DecodeSyncRequest(b)
		if err != nil {
			t.Fatalf("DecodeSyncRequest(%q): %v", b, err)
		}
		out = append(out, req)
	}
	return out
}

// moto is a fresh queue on moto and a client for it.
func moto(t testing.TB) (*sqs.Client, string) {
	t.Helper()
	url, _ := testenv.NewQueue(t, testenv.QueueOptions{VisibilityTimeout: 30})
	return testenv.SQSClient(t), url
}

// sinkURL names the queue of tests whose messages go to a testenv.Sink.
const sinkURL = "https://sqs.us-east-1.amazonaws.com/123456789012/sink"

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
	client, url := moto(t)
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

// The emulator's errors reach the code as the SDK's typed errors.
func TestEmulatorErrorsAreTyped(t *testing.T) {
	ctx := context.Background()
	client, url := moto(t)
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

// TestSendBatchFullBatches: requests go out ten per call, each once; on
// moto at a few hundred (an emulator's queue slows with depth), and at
// 10,000 into a sink at the queue's SQS port.
func TestSendBatchFullBatches(t *testing.T) {
	ctx := context.Background()
	client, url := moto(t)
	reqs := requests(300)
	st, err := queue.New(client, url).SendBatch(ctx, reqs)
	if err != nil || st != (queue.SendStats{Sent: 300, Calls: 30}) {
		t.Fatalf("SendBatch of 300: %+v, %v; want 300 sent in 30 calls", st, err)
	}
	exactlyOnce(t, reqs, received(t, url))

	sink := &testenv.Sink{}
	reqs = requests(10_000)
	st, err = queue.New(sink, sinkURL).SendBatch(ctx, reqs)
	if err != nil || st != (queue.SendStats{Sent: 10_000, Calls: 1_000}) || sink.Calls("SendMessageBatch") != 1_000 {
		t.Fatalf("SendBatch of 10,000: %+v, %v (%d calls); want 10,000 sent in 1,000 calls", st, err, sink.Calls("SendMessageBatch"))
	}
	exactlyOnce(t, reqs, decoded(t, sink.Bodies()))
}

// Entries SQS reports Failed (moto never does: injected at the port) are
// sent again, and every request arrives exactly once.
func TestSendBatchRetriesFailedEntries(t *testing.T) {
	ctx := context.Background()
	client, url := moto(t)
	inj := &testenv.FailEntries{Next: client}
	q := queue.New(inj, url)
	q.BaseDelay, q.MaxDelay = time.Millisecond, 5*time.Millisecond
	inj.Fail(25, false)
	reqs := requests(300)
	st, err := q.SendBatch(ctx, reqs)
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	t.Logf("stats: %+v", st)
	if tr, _ := inj.Injected(); tr != 25 {
		t.Fatalf("injected %d failures, want 25", tr)
	}
	if st.Sent != 300 || st.Retried < 25 || st.Calls <= 30 || st.Calls > 30+st.Retried {
		t.Errorf("stats = %+v: want Sent 300, Retried ≥ 25, 30 < Calls ≤ 30 + Retried", st)
	}
	exactlyOnce(t, reqs, received(t, url))
}

func TestSendBatchSenderFaultNotRetried(t *testing.T) {
	ctx := context.Background()
	client, url := moto(t)
	inj := &testenv.FailEntries{Next: client}
	q := queue.New(inj, url)
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
	got := received(t, url)
	for _, f := range be.Failed {
		if !f.SenderFault || f.Code != "InvalidMessageContents" {
			t.Errorf("failed entry %+v", f)
		}
		if !strings.Contains(err.Error(), reqs[f.Index].TenantID) || slices.Contains(got, reqs[f.Index]) {
			t.Errorf("entry #%d (%s) is not the one refused, or not named in %q", f.Index, reqs[f.Index].TenantID, err)
		}
	}
	if st.Sent != 97 || st.Retried != 0 || st.Calls != 10 || len(got) != 97 {
		t.Errorf("stats = %+v, queue held %d; want Sent 97, Retried 0, Calls 10", st, len(got))
	}
}

func TestSendBatchGivesUpAfterMaxAttempts(t *testing.T) {
	ctx := context.Background()
	client, url := moto(t)
	inj := &testenv.FailEntries{Next: client, PerCall: 1, TimesPerEntry: 1000}
	q := queue.New(inj, url)
	q.BaseDelay, q.MaxAttempts = time.Millisecond, 3
	inj.Fail(1_000, false) // entry #0 fails every time
	st, err := q.SendBatch(ctx, requests(10))
	var be *queue.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || be.Failed[0].Index != 0 || be.Failed[0].SenderFault {
		t.Fatalf("err = %v, want entry #0 given up", err)
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
	client, url := moto(t)
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

// BenchmarkSendBatch10k: the queue adapter's own cost of sending 10,000
// requests (encoding, batching, concurrency), into a sink at its SQS port.
func BenchmarkSendBatch10k(b *testing.B) {
	ctx := context.Background()
	reqs := requests(10_000)
	calls, n := 0, 0
	for b.Loop() {
		n++
		st, err := queue.New(&testenv.Sink{}, sinkURL).SendBatch(ctx, reqs)
		if err != nil || st.Sent != len(reqs) {
			b.Fatalf("SendBatch: %+v, %v", st, err)
		}
		calls += st.Calls
	}
	b.ReportMetric(float64(calls)/float64(n), "calls/op")
}

// count is how many messages the queue holds: visible, in flight or delayed.
func count(t testing.TB, _ *sqs.Client, url string) int {
	t.Helper()
	return testenv.QueueCount(t, url)
}

func TestMain(m *testing.M) { testenv.Main(m) }
