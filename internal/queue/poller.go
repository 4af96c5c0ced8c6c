package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/merchantsync/merchantsync/internal/backoff"
)

// Poller emulates Lambda's SQS event source mapping for the local stack:
// it receives batches from a queue, hands each to Handler as an
// events.SQSEvent built the way Lambda builds it, and deletes the messages
// the handler did not report in BatchItemFailures (ReportBatchItemFailures
// semantics). Failed messages are left alone and come back after their
// visibility timeout, and to the queue's DLQ after maxReceiveCount.
type Poller struct {
	Client   *sqs.Client
	QueueURL string
	Handler  func(context.Context, events.SQSEvent) (events.SQSEventResponse, error)
	// BatchSize is the most messages per event (1–10); 0 means 10.
	BatchSize int
	// WaitSeconds is the long-poll wait (0–20); 0 means 20.
	WaitSeconds int
	// VisibilityTimeout, when set, overrides the queue's for received
	// messages (seconds).
	VisibilityTimeout int
	// Timeout, when set, is the handler's deadline, like a function's
	// timeout: the handler's ctx ends after it.
	Timeout time.Duration
	// QueueARN is the eventSourceARN; empty means read from the queue.
	QueueARN string
	// Region is awsRegion in the records; empty means "us-east-1".
	Region string
	Logger *slog.Logger
}

// Run polls until ctx is done, then returns nil. A handler that returns an
// error or panics fails its whole batch: nothing is deleted. A response
// naming a message that is not in the batch (or an empty id) also fails
// the whole batch, as in Lambda.
func (p *Poller) Run(ctx context.Context) error {
	if p.Client == nil || p.QueueURL == "" || p.Handler == nil {
		return errors.New("queue: Poller needs Client, QueueURL and Handler")
	}
	log := p.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("queue", p.QueueURL)
	arn := p.QueueARN
	if arn == "" {
		for ctx.Err() == nil {
			out, err := p.Client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
				QueueUrl:       aws.String(p.QueueURL),
				AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
			})
			if err == nil {
				arn = out.Attributes[string(types.QueueAttributeNameQueueArn)]
				break
			}
			log.Error("poller: reading the queue ARN", "err", err)
			if backoff.Sleep(ctx, time.Second) != nil {
				return nil
			}
		}
	}
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		if _, err := p.PollOnce(ctx, arn); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Error("poller: receive", "err", err)
			if backoff.Sleep(ctx, wait) != nil {
				return nil
			}
			wait = min(wait*2, 5*time.Second)
			continue
		}
		wait = 100 * time.Millisecond
	}
	return nil
}

// PollOnce receives one batch (waiting up to WaitSeconds), runs the handler
// on it and deletes what succeeded. It returns how many messages it
// received. Run calls it in a loop; tests may call it directly.
func (p *Poller) PollOnce(ctx context.Context, queueARN string) (int, error) {
	log := p.Logger
	if log == nil {
		log = slog.Default()
	}
	size := p.BatchSize
	if size <= 0 || size > 10 {
		size = 10
	}
	wait := p.WaitSeconds
	if wait <= 0 || wait > 20 {
		wait = 20
	}
	in := &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(p.QueueURL),
		MaxNumberOfMessages:         int32(size),
		WaitTimeSeconds:             int32(wait),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	}
	if p.VisibilityTimeout > 0 {
		in.VisibilityTimeout = int32(p.VisibilityTimeout)
	}
	out, err := p.Client.ReceiveMessage(ctx, in)
	if err != nil {
		return 0, err
	}
	if len(out.Messages) == 0 {
		return 0, nil
	}
	event := p.event(out.Messages, queueARN)
	resp, err := p.invoke(ctx, event)
	if err != nil {
		log.Error("poller: handler failed; the batch will be redelivered", "messages", len(event.Records), "err", err)
		return len(out.Messages), nil
	}
	failed := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		if !inBatch(event, f.ItemIdentifier) {
			log.Error("poller: BatchItemFailures names a message not in the batch; the batch fails as a whole", "itemIdentifier", f.ItemIdentifier)
			return len(out.Messages), nil
		}
		failed[f.ItemIdentifier] = true
	}
	var entries []types.DeleteMessageBatchRequestEntry
	for i, m := range out.Messages {
		if !failed[aws.ToString(m.MessageId)] {
			entries = append(entries, types.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: m.ReceiptHandle})
		}
	}
	if len(entries) > 0 {
		// Deleting is not tied to the poll's ctx: what was processed
		// should be deleted even when shutting down.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		dout, err := p.Client.DeleteMessageBatch(dctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(p.QueueURL), Entries: entries})
		if err != nil {
			return len(out.Messages), fmt.Errorf("delete processed messages: %w", err)
		}
		for _, f := range dout.Failed {
			log.Error("poller: delete failed; the message will be redelivered", "id", aws.ToString(f.Id), "code", aws.ToString(f.Code))
		}
	}
	return len(out.Messages), nil
}

func inBatch(ev events.SQSEvent, id string) bool {
	if id == "" {
		return false
	}
	for _, r := range ev.Records {
		if r.MessageId == id {
			return true
		}
	}
	return false
}

func (p *Poller) invoke(ctx context.Context, ev events.SQSEvent) (resp events.SQSEventResponse, err error) {
	if p.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.Timeout)
		defer cancel()
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return p.Handler(ctx, ev)
}

// event builds the SQSEvent Lambda would deliver for msgs.
func (p *Poller) event(msgs []types.Message, queueARN string) events.SQSEvent {
	region := p.Region
	if region == "" {
		region = regionOf(queueARN)
	}
	ev := events.SQSEvent{Records: make([]events.SQSMessage, 0, len(msgs))}
	for _, m := range msgs {
		rec := events.SQSMessage{
			MessageId:              aws.ToString(m.MessageId),
			ReceiptHandle:          aws.ToString(m.ReceiptHandle),
			Body:                   aws.ToString(m.Body),
			Md5OfBody:              aws.ToString(m.MD5OfBody),
			Md5OfMessageAttributes: aws.ToString(m.MD5OfMessageAttributes),
			Attributes:             m.Attributes,
			MessageAttributes:      map[string]events.SQSMessageAttribute{},
			EventSourceARN:         queueARN,
			EventSource:            "aws:sqs",
			AWSRegion:              region,
		}
		if rec.Attributes == nil {
			rec.Attributes = map[string]string{}
		}
		for k, v := range m.MessageAttributes {
			rec.MessageAttributes[k] = events.SQSMessageAttribute{
				StringValue:      v.StringValue,
				BinaryValue:      v.BinaryValue,
				StringListValues: v.StringListValues,
				BinaryListValues: v.BinaryListValues,
				DataType:         aws.ToString(v.DataType),
			}
		}
		ev.Records = append(ev.Records, rec)
	}
	return ev
}

// regionOf returns the region of an ARN, or us-east-1.
func regionOf(arn string) string {
	parts := strings.Split(arn, ":")
	if len(parts) > 3 && parts[3] != "" {
		return parts[3]
	}
	return "us-east-1"
}
