package testenv

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/merchantsync/merchantsync/internal/queue"
)

// FailEntries wraps a queue.API and answers chosen SendMessageBatch entries
// as Failed, as SQS does under throttling (SenderFault false) or for an
// entry it refuses (true), without sending them; the others go to Next.
// moto never fails an entry transiently, so this is how tests show the
// Queue retrying Failed entries. Arm it with Fail.
type FailEntries struct {
	Next queue.API
	// PerCall is the most entries failed in one call; 0 means 3.
	PerCall int
	// TimesPerEntry is how often one message may fail; 0 means once, so
	// that its retry goes through.
	TimesPerEntry int

	mu             sync.Mutex
	transient      int
	sender         int
	injected       int
	injectedSender int
	failed         map[string]int // failures by message body
}

var _ queue.API = (*FailEntries)(nil)

// Fail arms the next n entries to fail, with SenderFault senderFault.
func (f *FailEntries) Fail(n int, senderFault bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if senderFault {
		f.sender += n
	} else {
		f.transient += n
	}
}

// Injected returns how many entries were failed so far, without and with
// SenderFault.
func (f *FailEntries) Injected() (transient, senderFault int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.injected, f.injectedSender
}

func (f *FailEntries) SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	return f.Next.SendMessage(ctx, in, opts...)
}

func (f *FailEntries) ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	return f.Next.ChangeMessageVisibility(ctx, in, opts...)
}

func (f *FailEntries) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	per := f.PerCall
	if per <= 0 {
		per = 3
	}
	times := max(f.TimesPerEntry, 1)
	var fail []types.BatchResultErrorEntry
	var pass []types.SendMessageBatchRequestEntry
	f.mu.Lock()
	if f.failed == nil {
		f.failed = map[string]int{}
	}
	for _, e := range in.Entries {
		body := aws.ToString(e.MessageBody)
		sender := f.sender > 0
		if len(fail) < per && (f.transient > 0 || sender) && f.failed[body] < times {
			f.failed[body]++
			if sender {
				f.sender--
				f.injectedSender++
				fail = append(fail, types.BatchResultErrorEntry{Id: e.Id, SenderFault: true,
					Code: aws.String("InvalidMessageContents"), Message: aws.String("refused by the test")})
			} else {
				f.transient--
				f.injected++
				fail = append(fail, types.BatchResultErrorEntry{Id: e.Id,
					Code: aws.String("ServiceUnavailable"), Message: aws.String("throttled by the test")})
			}
			continue
		}
		pass = append(pass, e)
	}
	f.mu.Unlock()
	out := &sqs.SendMessageBatchOutput{Failed: fail}
	if len(pass) == 0 {
		return out, nil
	}
	next := *in
	next.Entries = pass
	res, err := f.Next.SendMessageBatch(ctx, &next, opts...)
	if err != nil {
		return nil, err
	}
	out.Successful = res.Successful
	out.Failed = append(out.Failed, res.Failed...)
	return out, nil
}

// Sink is a queue.API that keeps every message it is sent, in memory, and
// reports each one sent: for tests of enqueueing at a scale no emulator
// queue holds (moto slows quadratically with a queue's depth). It counts
// its calls like SQS would be called.
type Sink struct {
	mu     sync.Mutex
	bodies []string
	calls  map[string]int
}

var _ queue.API = (*Sink)(nil)

// Bodies returns every message body sent, in order.
func (s *Sink) Bodies() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bodies...)
}

// Calls returns how many calls of op were made.
func (s *Sink) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

func (s *Sink) count(op string, bodies ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls == nil {
		s.calls = map[string]int{}
	}
	s.calls[op]++
	s.bodies = append(s.bodies, bodies...)
}

func (s *Sink) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	s.count("SendMessage", aws.ToString(in.MessageBody))
	return &sqs.SendMessageOutput{MessageId: aws.String(strconv.Itoa(len(s.Bodies())))}, nil
}

func (s *Sink) SendMessageBatch(_ context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	if len(in.Entries) == 0 || len(in.Entries) > 10 {
		return nil, fmt.Errorf("testenv: SendMessageBatch of %d entries: SQS takes 1 to 10", len(in.Entries))
	}
	out := &sqs.SendMessageBatchOutput{}
	bodies := make([]string, len(in.Entries))
	for i, e := range in.Entries {
		bodies[i] = aws.ToString(e.MessageBody)
		out.Successful = append(out.Successful, types.SendMessageBatchResultEntry{Id: e.Id, MessageId: e.Id})
	}
	s.count("SendMessageBatch", bodies...)
	return out, nil
}

func (s *Sink) ChangeMessageVisibility(context.Context, *sqs.ChangeMessageVisibilityInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	s.count("ChangeMessageVisibility")
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}
