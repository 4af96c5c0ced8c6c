package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/queue"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
	"github.com/merchantsync/merchantsync/internal/testenv"
)

func sqsEvent(bodies ...string) events.SQSEvent {
	var ev events.SQSEvent
	for i, b := range bodies {
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprintf("m%d", i), Body: b})
	}
	return ev
}

func body(t *testing.T, req merchantsync.SyncRequest) string {
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestWorkerDeadline: with too little time left, every message goes back
// untouched.
func TestWorkerDeadline(t *testing.T) {
	e := newEnv(t)
	e.connect("t1", 10)
	w := NewWorker(e.engine, e.Logger)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // < DefaultStopMargin
	defer cancel()
	reqs := []merchantsync.SyncRequest{manual("t1", e.Clock.Now()), manual("t1", e.Clock.Now().Add(time.Second))}
	resp, err := w.Handle(ctx, sqsEvent(body(t, reqs[0]), body(t, reqs[1])))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.BatchItemFailures) != 2 || resp.BatchItemFailures[0].ItemIdentifier != "m0" || resp.BatchItemFailures[1].ItemIdentifier != "m1" {
		t.Fatalf("failures %+v", resp.BatchItemFailures)
	}
	if e.Sandbox.Calls(sandbox.EndpointPartnerships)+e.Sandbox.Calls(sandbox.EndpointToken) != 0 {
		t.Fatal("a returned message was started")
	}
	for _, r := range reqs {
		if run, _ := e.Store.GetRun(e.Ctx, "t1", network, r.RunID); run != nil {
			t.Fatalf("a returned message left a run: %+v", run)
		}
	}

	// Time for the first only: it runs, the second goes back.
	now := time.Now()
	w.Now = func() time.Time { // after the first message, the clock jumps near the deadline
		if e.Sandbox.Calls(sandbox.EndpointPartnerships) > 0 {
			return now.Add(time.Hour - 5*time.Second)
		}
		return now
	}
	ctx2, cancel2 := context.WithDeadline(context.Background(), now.Add(time.Hour))
	defer cancel2()
	resp, err = w.Handle(ctx2, sqsEvent(body(t, reqs[0]), body(t, reqs[1])))
	if err != nil || len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "m1" {
		t.Fatalf("failures %+v %v", resp.BatchItemFailures, err)
	}
}

// TestWorkerOutcomes: malformed → consumed, internal fault → returned,
// Rakuten refusing → consumed (a failed run).
func TestWorkerOutcomes(t *testing.T) {
	e := newEnv(t)
	e.connect("ok", 10)
	e.connect("internal", 10)
	a := e.connect("refused", 10)
	e.Sandbox.ExpireAccessTokens()
	e.Sandbox.RevokeRefreshTokens(a.SiteID)
	e.Sandbox.SetTokenKeyEnabled(false)
	w := NewWorker(e.engine, e.Logger)
	e.SMFail.Fail("GetSecretValue", "InternalServiceError", 3) // the SDK's 3 attempts of the first read
	resp, err := w.Handle(context.Background(), sqsEvent(
		body(t, manual("internal", e.Clock.Now())),
		`{"tenantId":"x"`,
		body(t, manual("ok", e.Clock.Now())),
		`{"tenantId":"t","network":"rakuten","runId":"r","trigger":"sometimes"}`,
		body(t, manual("refused", e.Clock.Now())),
	))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "m0" {
		t.Fatalf("failures %+v", resp.BatchItemFailures)
	}
	if a := e.Account("ok"); a.LastRun == nil || a.LastRun.State != merchantsync.RunSucceeded {
		t.Fatalf("ok account: %+v", a)
	}
	if a := e.Account("refused"); a.State != merchantsync.StateReauthRequired {
		t.Fatalf("refused account state %s", a.State)
	}
	if !strings.Contains(e.Logs.String(), "malformed sync message") {
		t.Fatal("malformed message not logged")
	}
	assertNoLeaks(t, e)
}

// retryRecorder records the waits the worker asks for (a stand-in for SQS
// ChangeMessageVisibility, whose call queue.RetryAfter makes is tested on
// the queue itself).
type retryRecorder struct {
	mu    sync.Mutex
	waits map[string]time.Duration
}

func (r *retryRecorder) RetryAfter(_ context.Context, receipt string, d time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waits[receipt] = d
	return nil
}

// TestWorkerRetriesSoonThenGivesUp: a message given back after an internal
// fault comes back in RetryDelay (30 s, 1 min, …) rather than the queue's
// 90-minute visibility timeout; on its last delivery the run is failed and
// the message consumed, so no run stays running once its message is gone.
// Before, the run stayed running and the message went to the DLQ.
func TestWorkerRetriesSoonThenGivesUp(t *testing.T) {
	e := newEnv(t)
	e.connect("t1", 10)
	rec := &retryRecorder{waits: map[string]time.Duration{}}
	w := NewWorker(e.engine, e.Logger)
	w.Queue, w.MaxReceives = rec, 4
	req := manual("t1", e.Clock.Now())
	deliver := func(n int) events.SQSEventResponse {
		ev := sqsEvent(body(t, req))
		ev.Records[0].ReceiptHandle = fmt.Sprintf("receipt-%d", n)
		ev.Records[0].Attributes = map[string]string{"ApproximateReceiveCount": fmt.Sprint(n)}
		e.SMFail.Fail("GetSecretValue", "InternalServiceError", 3) // the SDK's 3 attempts
		resp, err := w.Handle(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for n := 1; n < 4; n++ {
		if resp := deliver(n); len(resp.BatchItemFailures) != 1 {
			t.Fatalf("delivery %d: %+v, want the message back", n, resp)
		}
		if got, want := rec.waits[fmt.Sprintf("receipt-%d", n)], RetryDelay(n); got != want || want > 2*time.Minute {
			t.Fatalf("delivery %d: retry in %v, want %v", n, got, want)
		}
		if run, _ := e.Store.GetRun(e.Ctx, "t1", network, req.RunID); run == nil || run.State.Finished() {
			t.Fatalf("delivery %d: run %+v, want it still to be resumed", n, run)
		}
	}
	if resp := deliver(4); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("last delivery: %+v, want it consumed", resp)
	}
	run, _ := e.Store.GetRun(e.Ctx, "t1", network, req.RunID)
	if run == nil || run.State != merchantsync.RunFailed || run.Error == nil || run.Error.Code != merchantsync.EInternal {
		t.Fatalf("run after the last delivery: %+v", run)
	}
	if a := e.Account("t1"); a.LeaseRunID != "" || a.ActiveRunID != "" || a.State != merchantsync.StateError {
		t.Fatalf("account after the last delivery: %+v", a)
	}
	if _, ok := rec.waits["receipt-4"]; ok {
		t.Fatal("a consumed message was given back")
	}
	// The next sync runs normally.
	if run := e.sync("t1"); run.State != merchantsync.RunSucceeded {
		t.Fatalf("next sync: %+v", run)
	}
}

func TestRetryDelay(t *testing.T) {
	for n, want := range map[int]time.Duration{0: 30 * time.Second, 1: 30 * time.Second, 2: time.Minute, 3: 2 * time.Minute, 6: 15 * time.Minute, 100: 15 * time.Minute} {
		if got := RetryDelay(n); got != want {
			t.Errorf("RetryDelay(%d) = %v, want %v", n, got, want)
		}
	}
}

// TestSchedulerRetryAndWorker: two invocations with the same runId enqueue
// everything twice, and the worker syncs each account once.
func TestSchedulerRetryAndWorker(t *testing.T) {
	e := newEnv(t)
	const tenants = 6
	for i := range tenants {
		e.connect(fmt.Sprintf("s%d", i), 20)
	}
	s := &Scheduler{Store: e.Store, Queue: e.Queue, Now: e.Clock.Now, Logger: e.Logger}
	ev := ScheduleEvent{RunID: "exec-1", ScheduledTime: "2026-11-27T03:00:00Z"}
	for range 2 {
		res, err := s.Handle(context.Background(), ev)
		if err != nil || res.Enqueued != tenants || res.Accounts != tenants {
			t.Fatalf("scheduler: %+v %v", res, err)
		}
	}
	w := NewWorker(e.engine, e.Logger)
	for _, resp := range e.Deliver(w.Handle, 2*tenants) {
		if len(resp.BatchItemFailures) > 0 {
			t.Fatalf("worker gave back %v", resp.BatchItemFailures)
		}
	}
	if calls := e.Sandbox.Calls(sandbox.EndpointPartnerships); calls != tenants {
		t.Fatalf("%d partnerships calls for %d accounts (one page each)", calls, tenants)
	}
	for i := range tenants {
		a := e.Account(fmt.Sprintf("s%d", i))
		if a.LastScheduledRunID != "exec-1" || a.LastRun == nil || a.LastRun.State != merchantsync.RunSucceeded {
			t.Fatalf("account %d: %+v", i, a)
		}
	}
	if n := testenv.QueueCount(t, e.QueueURL); n != 0 {
		t.Fatalf("%d messages left in the queue", n)
	}
	// Without runId the day names the run: a retry the same day is the same run.
	id1, _, _ := s.scheduleIdentity(ScheduleEvent{ScheduledTime: "2026-11-27T03:00:00Z"}, merchantsync.ModeFull)
	id2, _, _ := s.scheduleIdentity(ScheduleEvent{ScheduledTime: "2026-11-27T03:00:00Z"}, merchantsync.ModeFull)
	if id1 != id2 || id1 == "" {
		t.Fatalf("derived schedule ids %q %q", id1, id2)
	}
}

// TestScheduler10k: 10,000 due accounts, every one enqueued once, in
// 1,000 full batches plus the calls retrying injected Failed entries.
func TestScheduler10k(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 accounts")
	}
	e := newEnv(t)
	const n = 10000
	var wg sync.WaitGroup
	next := make(chan int)
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				tenant := fmt.Sprintf("bulk-%05d", i)
				if _, err := e.Store.SaveIDs(e.Ctx, tenant, network, "lMh2Xiq9xN0", "4000000", e.Clock.Now()); err != nil {
					errs <- err
					return
				}
				if _, err := e.Store.MarkConnected(e.Ctx, tenant, network, merchantsync.Connection{ID: "c-" + tenant, Username: "u"}, e.Clock.Now()); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}

	// 10,000 messages are more than an emulator's queue holds in a test's
	// time (moto slows with depth): the queue adapter sends them to a sink
	// at its SQS port, which keeps them, with 25 entries failed on the way.
	sink := &testenv.Sink{}
	fail := &testenv.FailEntries{Next: sink, PerCall: 2}
	q := queue.New(fail, "https://sqs.us-east-1.amazonaws.com/123456789012/sink")
	q.BaseDelay, q.MaxDelay = time.Millisecond, 5*time.Millisecond
	fail.Fail(25, false)
	s := &Scheduler{Store: e.Store, Queue: q, Now: e.Clock.Now, Logger: e.Logger}
	res, err := s.Handle(context.Background(), ScheduleEvent{RunID: "exec-10k", ScheduledTime: "2026-11-27T03:00:00Z"})
	if err != nil {
		t.Fatal(err)
	}
	transient, _ := fail.Injected()
	t.Logf("scheduler: %+v; injected Failed entries %d", res, transient)
	if res.Accounts != n || res.Enqueued != n {
		t.Fatalf("accounts %d enqueued %d, want %d", res.Accounts, res.Enqueued, n)
	}
	if transient != 25 || res.Retried < 25 {
		t.Fatalf("injected %d, retried %d", transient, res.Retried)
	}
	// 1,000 full batches; the retries of Failed entries come on top.
	if first := res.BatchCalls - res.Retried; first > n/queue.MaxBatch {
		t.Fatalf("%d batch calls, %d retried entries: more than %d first calls", res.BatchCalls, res.Retried, n/queue.MaxBatch)
	}
	if res.BatchCalls > n/queue.MaxBatch+res.Retried {
		t.Fatalf("batch calls %d", res.BatchCalls)
	}
	if calls := sink.Calls("SendMessageBatch"); calls > res.BatchCalls || calls < n/queue.MaxBatch {
		t.Fatalf("the sink saw %d calls, the scheduler reports %d", calls, res.BatchCalls)
	}
	bodies := sink.Bodies()
	seen := map[string]bool{}
	for _, b := range bodies {
		req, err := merchantsync.DecodeSyncRequest(b)
		if err != nil {
			t.Fatal(err)
		}
		if req.ScheduleRunID != "exec-10k" || req.Trigger != merchantsync.TriggerSchedule {
			t.Fatalf("message %+v", req)
		}
		seen[req.TenantID] = true
	}
	if len(bodies) != n || len(seen) != n {
		t.Fatalf("queue holds %d messages for %d tenants, want %d", len(bodies), len(seen), n)
	}
}
