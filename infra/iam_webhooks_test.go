package infra

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/merchantsync/merchantsync/internal/queue"
	"github.com/merchantsync/merchantsync/internal/webhook"
)

// driveWebhooks takes the webhooks, notify and deliver functions through
// their paths: every webhook route (a refused URL too); the notifier on
// stream records of the items the drive's syncs wrote (changes, a finished
// run, an account that became reauth_required), publishing on the bus and
// queueing deliveries; the deliverer on those deliveries: a failed attempt
// (the receiver cannot be reached from here) given back with a delay, and
// a last attempt that marks the webhook failing.
func (e *iamEnv) driveWebhooks() {
	t := e.t
	const (
		create     = "POST /v1/webhooks"
		list       = "GET /v1/webhooks"
		get        = "GET /v1/webhooks/{webhookId}"
		del        = "DELETE /v1/webhooks/{webhookId}"
		test       = "POST /v1/webhooks/{webhookId}/test"
		deliveries = "GET /v1/webhooks/{webhookId}/deliveries"
	)
	e.call(e.hooks, "t1", create, nil, nil, `{"url":"https://10.0.0.5/hook"}`, 400)
	hook := e.call(e.hooks, "t1", create, nil, nil, `{"url":"https://hooks.example.com/merchantsync"}`, 201)
	id := hook["id"].(string)
	gone := e.call(e.hooks, "t1", create, nil, nil, `{"url":"https://hooks.example.com/old"}`, 201)["id"].(string)
	e.call(e.hooks, "t1", list, nil, nil, "", 200)
	e.call(e.hooks, "t1", get, map[string]string{"webhookId": id}, nil, "", 200)
	e.call(e.hooks, "t1", del, map[string]string{"webhookId": gone}, nil, "", 200)
	e.call(e.hooks, "t1", test, map[string]string{"webhookId": id}, nil, "", 202)

	// The notifier on the records the stream holds for t1's items.
	var recs []events.DynamoDBEventRecord
	out, err := e.ddb.Query(e.ctx, &dynamodb.QueryInput{TableName: aws.String(e.res.table),
		KeyConditionExpression:    aws.String("PK = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: "TENANT#t1"}}})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, it := range out.Items {
		kind := it["kind"].(*types.AttributeValueMemberS).Value
		rec := events.DynamoDBEventRecord{EventName: "INSERT", EventSource: "aws:dynamodb", EventVersion: "1.1", AWSRegion: iamRegion,
			Change: events.DynamoDBStreamRecord{NewImage: streamImage(it), SequenceNumber: strconv.Itoa(len(recs) + 1), StreamViewType: "NEW_AND_OLD_IMAGES"}}
		switch kind {
		case "change", "run":
		case "account":
			rec.EventName = "MODIFY" // it became reauth_required at the end of the drive
		default:
			continue
		}
		kinds[kind]++
		recs = append(recs, rec)
	}
	if kinds["change"] == 0 || kinds["run"] == 0 || kinds["account"] != 1 {
		t.Fatalf("stream records by kind: %v", kinds)
	}
	payload, _ := json.Marshal(events.DynamoDBEvent{Records: recs})
	res, err := lambda.NewHandler(e.notifier.Handle).Invoke(e.ctx, payload)
	var sresp events.DynamoDBEventResponse
	if err == nil {
		err = json.Unmarshal(res, &sresp)
	}
	if err != nil || len(sresp.BatchItemFailures) != 0 {
		t.Fatalf("notifier: %v %s", err, res)
	}

	// The deliverer: the test event and the notifier's deliveries, first
	// attempts (failing: no receiver is reachable here), then one on its
	// last attempt.
	msgs, err := e.sqs.ReceiveMessage(e.ctx, receiveAll(e.res.deliveriesURL))
	if err != nil || len(msgs.Messages) == 0 {
		t.Fatalf("no deliveries queued: %v", err)
	}
	var sqsEvent events.SQSEvent
	for i, m := range msgs.Messages {
		d, err := queue.DecodeDelivery(aws.ToString(m.Body))
		if err != nil || d.WebhookID != id {
			t.Fatalf("delivery %d: %+v %v", i, d, err)
		}
		receives := "1"
		if i == 0 {
			receives = fmt.Sprint(webhook.Attempts)
		}
		sqsEvent.Records = append(sqsEvent.Records, events.SQSMessage{MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle),
			Body: aws.ToString(m.Body), Attributes: map[string]string{"ApproximateReceiveCount": receives},
			EventSource: "aws:sqs", EventSourceARN: queueARN(e.res.deliveriesURL), AWSRegion: iamRegion})
	}
	payload, _ = json.Marshal(sqsEvent)
	res, err = lambda.NewHandler(e.deliverer.Handle).Invoke(e.ctx, payload)
	var qresp events.SQSEventResponse
	if err == nil {
		err = json.Unmarshal(res, &qresp)
	}
	if err != nil || len(qresp.BatchItemFailures) != len(sqsEvent.Records) {
		t.Fatalf("deliverer: %v %s (want every attempt failed and given back)", err, res)
	}
	e.call(e.hooks, "t1", deliveries, map[string]string{"webhookId": id}, nil, "", 200)
	if h := e.call(e.hooks, "t1", get, map[string]string{"webhookId": id}, nil, "", 200); h["state"] != "failing" {
		t.Fatalf("webhook after its last attempt: %v", h)
	}
	e.call(e.hooks, "t1", del, map[string]string{"webhookId": id}, nil, "", 200)
}

func receiveAll(url string) *sqs.ReceiveMessageInput {
	return &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1}
}

// streamImage converts an item as the SDK reads it into a stream image as
// Lambda delivers it.
func streamImage(item map[string]types.AttributeValue) map[string]events.DynamoDBAttributeValue {
	out := map[string]events.DynamoDBAttributeValue{}
	for k, v := range item {
		out[k] = streamValue(v)
	}
	return out
}

func streamValue(v types.AttributeValue) events.DynamoDBAttributeValue {
	switch x := v.(type) {
	case *types.AttributeValueMemberS:
		return events.NewStringAttribute(x.Value)
	case *types.AttributeValueMemberN:
		return events.NewNumberAttribute(x.Value)
	case *types.AttributeValueMemberB:
		return events.NewBinaryAttribute(x.Value)
	case *types.AttributeValueMemberBOOL:
		return events.NewBooleanAttribute(x.Value)
	case *types.AttributeValueMemberSS:
		return events.NewStringSetAttribute(x.Value)
	case *types.AttributeValueMemberNS:
		return events.NewNumberSetAttribute(x.Value)
	case *types.AttributeValueMemberL:
		l := make([]events.DynamoDBAttributeValue, len(x.Value))
		for i := range x.Value {
			l[i] = streamValue(x.Value[i])
		}
		return events.NewListAttribute(l)
	case *types.AttributeValueMemberM:
		return events.NewMapAttribute(streamImage(x.Value))
	}
	return events.NewNullAttribute()
}
