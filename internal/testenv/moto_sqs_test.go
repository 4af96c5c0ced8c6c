package testenv_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/merchantsync/merchantsync/internal/testenv"
)

func receive(t *testing.T, c *sqs.Client, in *sqs.ReceiveMessageInput) []types.Message {
	t.Helper()
	out, err := c.ReceiveMessage(context.Background(), in)
	if err != nil {
		t.Fatalf("ReceiveMessage: %v", err)
	}
	return out.Messages
}

func allAttrs(url string, wait int32) *sqs.ReceiveMessageInput {
	return &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: wait,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	}
}

// SendMessage and SendMessageBatch round-trip bodies and message attributes
// (the SDK checks moto's MD5s of both); a receive reports SentTimestamp,
// ApproximateReceiveCount, and only the system attributes asked for.
func TestSQSSendReceiveRoundTrip(t *testing.T) {
	ctx := context.Background()
	c := testenv.SQSClient(t)
	url, _ := testenv.NewQueue(t, testenv.QueueOptions{})
	attrs := map[string]types.MessageAttributeValue{
		"runId":   {DataType: aws.String("String"), StringValue: aws.String("run-1")},
		"attempt": {DataType: aws.String("Number"), StringValue: aws.String("3")},
		"blob":    {DataType: aws.String("Binary"), BinaryValue: []byte{0, 1, 2, 0xff}},
	}
	before := time.Now().UnixMilli()
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(`{"n":0}`), MessageAttributes: attrs}); err != nil {
		t.Fatal(err)
	}
	entries := make([]types.SendMessageBatchRequestEntry, 9)
	for i := range entries {
		entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i + 1)), MessageBody: aws.String(fmt.Sprintf(`{"n":%d}`, i+1)), MessageAttributes: attrs}
	}
	out, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
	if err != nil || len(out.Successful) != 9 || len(out.Failed) != 0 {
		t.Fatalf("SendMessageBatch: %v %+v", err, out)
	}
	after := time.Now().UnixMilli()

	got := map[string]bool{}
	for len(got) < 10 {
		msgs := receive(t, c, allAttrs(url, 1))
		if len(msgs) == 0 {
			t.Fatalf("received %d of 10 messages", len(got))
		}
		for _, m := range msgs {
			got[aws.ToString(m.Body)] = true
			a := m.MessageAttributes
			if aws.ToString(a["runId"].StringValue) != "run-1" || aws.ToString(a["attempt"].StringValue) != "3" ||
				aws.ToString(a["attempt"].DataType) != "Number" || string(a["blob"].BinaryValue) != "\x00\x01\x02\xff" {
				t.Errorf("message attributes = %+v", a)
			}
			if n := m.Attributes["ApproximateReceiveCount"]; n != "1" {
				t.Errorf("ApproximateReceiveCount = %q, want 1", n)
			}
			sent, err := strconv.ParseInt(m.Attributes["SentTimestamp"], 10, 64)
			if err != nil || sent < before || sent > after {
				t.Errorf("SentTimestamp = %q, want epoch ms in [%d, %d]", m.Attributes["SentTimestamp"], before, after)
			}
		}
	}
	for i := range 10 {
		if !got[fmt.Sprintf(`{"n":%d}`, i)] {
			t.Errorf("message %d not received: %v", i, got)
		}
	}

	// Only what is asked for: one system attribute, no message attributes.
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("x"), MessageAttributes: attrs}); err != nil {
		t.Fatal(err)
	}
	msgs := receive(t, c, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), WaitTimeSeconds: 1,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount}})
	if len(msgs) != 1 || len(msgs[0].Attributes) != 1 || msgs[0].Attributes["ApproximateReceiveCount"] != "1" || len(msgs[0].MessageAttributes) != 0 {
		t.Errorf("receive asking for ApproximateReceiveCount only = %+v", msgs)
	}
}

// ChangeMessageVisibility to 0 makes an in-flight message visible at once,
// received again with a new receipt handle and ApproximateReceiveCount 2;
// and a visibility timeout that runs out does the same.
func TestSQSVisibility(t *testing.T) {
	ctx := context.Background()
	c := testenv.SQSClient(t)
	url, _ := testenv.NewQueue(t, testenv.QueueOptions{VisibilityTimeout: 60})
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("m")}); err != nil {
		t.Fatal(err)
	}
	first := receive(t, c, allAttrs(url, 1))
	if len(first) != 1 {
		t.Fatalf("first receive: %+v", first)
	}
	// In flight for 60 s: not received again.
	if again := receive(t, c, allAttrs(url, 0)); len(again) != 0 {
		t.Fatalf("an in-flight message was received again: %+v", again)
	}
	if _, err := c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(url), ReceiptHandle: first[0].ReceiptHandle, VisibilityTimeout: 0}); err != nil {
		t.Fatal(err)
	}
	second := receive(t, c, allAttrs(url, 5))
	if len(second) != 1 || aws.ToString(second[0].MessageId) != aws.ToString(first[0].MessageId) ||
		aws.ToString(second[0].ReceiptHandle) == aws.ToString(first[0].ReceiptHandle) || second[0].Attributes["ApproximateReceiveCount"] != "2" {
		t.Fatalf("after ChangeMessageVisibility 0: %+v, want the same message, a new handle, count 2", second)
	}
	if second[0].Attributes["ApproximateFirstReceiveTimestamp"] != first[0].Attributes["ApproximateFirstReceiveTimestamp"] {
		t.Errorf("ApproximateFirstReceiveTimestamp changed on redelivery: %s then %s",
			first[0].Attributes["ApproximateFirstReceiveTimestamp"], second[0].Attributes["ApproximateFirstReceiveTimestamp"])
	}
	// A visibility timeout that runs out makes it visible too: the long
	// poll gets it back.
	if _, err := c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(url), ReceiptHandle: second[0].ReceiptHandle, VisibilityTimeout: 1}); err != nil {
		t.Fatal(err)
	}
	third := receive(t, c, allAttrs(url, 10))
	if len(third) != 1 || third[0].Attributes["ApproximateReceiveCount"] != "3" {
		t.Fatalf("after the visibility timeout ran out: %+v, want the message with count 3", third)
	}
}

// DeleteMessageBatch deletes what it can and reports a bad handle as a
// Failed entry with SenderFault; PurgeQueue empties the queue.
func TestSQSDeleteMessageBatch(t *testing.T) {
	ctx := context.Background()
	c := testenv.SQSClient(t)
	url, _ := testenv.NewQueue(t, testenv.QueueOptions{})
	for i := range 3 {
		if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	var msgs []types.Message
	for len(msgs) < 3 {
		got := receive(t, c, allAttrs(url, 1))
		if len(got) == 0 {
			t.Fatalf("received %d of 3", len(msgs))
		}
		msgs = append(msgs, got...)
	}
	out, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: []types.DeleteMessageBatchRequestEntry{
		{Id: aws.String("a"), ReceiptHandle: msgs[0].ReceiptHandle},
		{Id: aws.String("b"), ReceiptHandle: msgs[1].ReceiptHandle},
		{Id: aws.String("bad"), ReceiptHandle: aws.String("not-a-receipt-handle")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Successful) != 2 || len(out.Failed) != 1 || aws.ToString(out.Failed[0].Id) != "bad" ||
		aws.ToString(out.Failed[0].Code) != "ReceiptHandleIsInvalid" || !out.Failed[0].SenderFault {
		t.Fatalf("DeleteMessageBatch = %+v", out)
	}
	if n := testenv.QueueCount(t, url); n != 1 {
		t.Errorf("QueueCount = %d after deleting 2 of 3, want 1 (in flight)", n)
	}
	// PurgeQueue empties it, in-flight messages too.
	if _, err := c.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: aws.String(url)}); err != nil || testenv.QueueCount(t, url) != 0 {
		t.Errorf("PurgeQueue: %v, %d left", err, testenv.QueueCount(t, url))
	}
}

// A message received maxReceiveCount times moves to the dead-letter queue
// on the next receive, with its body and id.
func TestSQSRedriveToDLQ(t *testing.T) {
	ctx := context.Background()
	c := testenv.SQSClient(t)
	url, dlq := testenv.NewQueue(t, testenv.QueueOptions{VisibilityTimeout: 60, DLQ: true, MaxReceiveCount: 2})
	policy := queueAttr(t, c, url, types.QueueAttributeNameRedrivePolicy)
	var rp struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
		MaxReceiveCount     int    `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(policy), &rp); err != nil || rp.DeadLetterTargetArn != testenv.QueueARN(t, dlq) || rp.MaxReceiveCount != 2 {
		t.Fatalf("RedrivePolicy = %s (%v)", policy, err)
	}
	sent, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("poison")})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		m := receive(t, c, allAttrs(url, 5))
		if len(m) != 1 || m[0].Attributes["ApproximateReceiveCount"] != strconv.Itoa(i) {
			t.Fatalf("receive %d: %+v", i, m)
		}
		// Fail it at once rather than waiting out the visibility timeout.
		if _, err := c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(url), ReceiptHandle: m[0].ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
	}
	if m := receive(t, c, allAttrs(url, 1)); len(m) != 0 {
		t.Fatalf("third receive from the source queue: %+v, want nothing (moved to the DLQ)", m)
	}
	if n := testenv.QueueCount(t, url); n != 0 {
		t.Errorf("source queue holds %d", n)
	}
	got := testenv.Drain(t, dlq)
	if len(got) != 1 || aws.ToString(got[0].Body) != "poison" || aws.ToString(got[0].MessageId) != aws.ToString(sent.MessageId) {
		t.Fatalf("DLQ holds %+v, want the poison message", got)
	}
	t.Logf("in the DLQ: ApproximateReceiveCount %s", got[0].Attributes["ApproximateReceiveCount"])
}

func queueAttr(t *testing.T, c *sqs.Client, url string, name types.QueueAttributeName) string {
	t.Helper()
	out, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{name}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Attributes[string(name)]
}

// Queue URLs and ARNs name moto's account and region.
func TestSQSQueueIdentity(t *testing.T) {
	url, _ := testenv.NewQueue(t, testenv.QueueOptions{VisibilityTimeout: 5})
	name := url[strings.LastIndexByte(url, '/')+1:]
	if want := testenv.MotoEndpoint(t) + "/" + testenv.AccountID + "/" + name; url != want {
		t.Errorf("queue URL %s, want %s", url, want)
	}
	if arn := testenv.QueueARN(t, url); arn != "arn:aws:sqs:"+testenv.Region+":"+testenv.AccountID+":"+name {
		t.Errorf("queue ARN %s", arn)
	}
	if vt := queueAttr(t, testenv.SQSClient(t), url, types.QueueAttributeNameVisibilityTimeout); vt != "5" {
		t.Errorf("VisibilityTimeout = %s", vt)
	}
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// moto answers SQS errors as the SDK's typed errors.
func TestSQSTypedErrors(t *testing.T) {
	ctx := context.Background()
	c := testenv.SQSClient(t, testenv.WithMaxAttempts(1))
	url, _ := testenv.NewQueue(t, testenv.QueueOptions{})
	entries := func(n int) []types.SendMessageBatchRequestEntry {
		e := make([]types.SendMessageBatchRequestEntry, n)
		for i := range e {
			e[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String("x")}
		}
		return e
	}
	dup := entries(2)
	dup[1].Id = aws.String("0")
	for _, tc := range []struct {
		name string
		call func() error
		want any
	}{
		{"receive from a missing queue", func() error {
			_, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url + "-missing")})
			return err
		}, new(*types.QueueDoesNotExist)},
		{"send to a missing queue", func() error {
			_, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url + "-missing"), MessageBody: aws.String("x")})
			return err
		}, new(*types.QueueDoesNotExist)},
		{"delete with a bad receipt handle", func() error {
			_, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: aws.String("nope")})
			return err
		}, new(*types.ReceiptHandleIsInvalid)},
		{"11 entries", func() error {
			_, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries(11)})
			return err
		}, new(*types.TooManyEntriesInBatchRequest)},
		{"duplicate entry ids", func() error {
			_, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: dup})
			return err
		}, new(*types.BatchEntryIdsNotDistinct)},
		{"no entries", func() error {
			_, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: []types.DeleteMessageBatchRequestEntry{}})
			return err
		}, new(*types.EmptyBatchRequest)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.As(err, tc.want) {
				t.Errorf("err = %v (code %q), want %T", err, apiCode(err), tc.want)
			}
		})
	}
}

// moto fails a SendMessageBatch entry only for a DelaySeconds over 900, and
// then writes its SenderFault as the string "true", which the SDK cannot
// parse: the call returns a deserialization error although the other
// entries were sent. moto has no transient entry failures either, and it
// refuses a whole batch for a body over the queue's maximum size. So tests
// of retrying Failed entries inject them at the code's own port (see the
// package doc), never through moto.
func TestSQSBatchFailedEntries(t *testing.T) {
	ctx := context.Background()
	c := testenv.SQSClient(t, testenv.WithMaxAttempts(1))
	url, _ := testenv.NewQueue(t, testenv.QueueOptions{})
	_, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("ok1"), MessageBody: aws.String("a")},
		{Id: aws.String("late"), MessageBody: aws.String("b"), DelaySeconds: 901},
		{Id: aws.String("ok2"), MessageBody: aws.String("c")},
	}})
	var de *smithy.DeserializationError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), `expected bool, got "true"`) {
		t.Fatalf("batch with a Failed entry: %v; moto used to answer SenderFault as a string: if it parses now, update the package doc", err)
	}
	if n := testenv.QueueCount(t, url); n != 2 {
		t.Errorf("queue holds %d, want the 2 valid entries", n)
	}

	// moto's queues take 1 MiB bodies by default. A body over the queue's
	// MaximumMessageSize fails the whole call: nothing is sent.
	if max := queueAttr(t, c, url, types.QueueAttributeNameMaximumMessageSize); max != "1048576" {
		t.Errorf("default MaximumMessageSize = %s", max)
	}
	if _, err := c.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(url), Attributes: map[string]string{"MaximumMessageSize": "1024"}}); err != nil {
		t.Fatal(err)
	}
	_, err = c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("ok"), MessageBody: aws.String("a")}, {Id: aws.String("big"), MessageBody: aws.String(strings.Repeat("x", 1025))},
	}})
	if err == nil || apiCode(err) != "InvalidParameterValue" {
		t.Errorf("batch with a body over MaximumMessageSize: %v (code %q), want the call refused with InvalidParameterValue", err, apiCode(err))
	}
	// moto measures a body in characters, AWS in bytes: 1,200 bytes pass.
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(strings.Repeat("é", 600))}); err != nil {
		t.Errorf("600 two-byte characters on a 1,024-byte queue: %v; moto used to count characters: update the package doc", err)
	}
	// Characters AWS refuses (U+0000, U+FFFE): moto accepts them.
	out, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("nul"), MessageBody: aws.String("a\x00b")}, {Id: aws.String("fffe"), MessageBody: aws.String("a\uFFFEb")},
	}})
	if err != nil || len(out.Successful) != 2 {
		t.Errorf("batch with characters AWS refuses: %v %+v (moto used to accept them: update the package doc)", err, out)
	}
	if n := testenv.QueueCount(t, url); n != 5 {
		t.Errorf("queue holds %d, want 5", n)
	}
}

// A long poll waits for a message without holding up other requests, and
// answers it as soon as it is sent; on an empty queue it answers empty.
func TestSQSLongPolling(t *testing.T) {
	ctx := context.Background()
	c := testenv.SQSClient(t)
	waiting, _ := testenv.NewQueue(t, testenv.QueueOptions{})
	other, _ := testenv.NewQueue(t, testenv.QueueOptions{})
	got := make(chan []types.Message, 1)
	go func() {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(waiting), WaitTimeSeconds: 20})
		if err != nil {
			t.Error(err)
		}
		got <- out.Messages
	}()
	// While it waits, another queue's send and receive go through.
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(other), MessageBody: aws.String("o")}); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, c, allAttrs(other, 5)); len(m) != 1 {
		t.Fatalf("other queue: %+v", m)
	}
	select {
	case m := <-got:
		t.Fatalf("the 20 s long poll of an empty queue answered early: %+v", m)
	default:
	}
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(waiting), MessageBody: aws.String("w")}); err != nil {
		t.Fatal(err)
	}
	if m := <-got; len(m) != 1 || aws.ToString(m[0].Body) != "w" {
		t.Fatalf("long poll got %+v, want the message sent while it waited", m)
	}
	if m := receive(t, c, &sqs.ReceiveMessageInput{QueueUrl: aws.String(waiting), WaitTimeSeconds: 1}); len(m) != 0 {
		t.Errorf("empty long poll: %+v", m)
	}
}
