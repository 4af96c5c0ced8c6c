package sqstest_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/merchantsync/merchantsync/internal/queue/sqstest"
)

// StartServer (the local stack's entry point) serves the real SDK client
// and stops on stop().
func TestStartServerAndStop(t *testing.T) {
	ctx := context.Background()
	ep, stop, err := sqstest.StartServer(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	client := sqstest.NewClient(ep, func(o *sqs.Options) { o.RetryMaxAttempts = 1 })
	url, dlq, err := sqstest.CreateQueue(ctx, client, "startserver-q", sqstest.QueueOptions{DLQName: "startserver-dlq", VisibilityTimeout: 5})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(url, ep+"/"+sqstest.AccountID+"/") || dlq == "" {
		t.Errorf("queue URL %q, DLQ %q (endpoint %s)", url, dlq, ep)
	}
	attrs, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{"All"}})
	if err != nil {
		t.Fatal(err)
	}
	if a := attrs.Attributes; a["VisibilityTimeout"] != "5" || !strings.Contains(a["RedrivePolicy"], "startserver-dlq") ||
		a["QueueArn"] != "arn:aws:sqs:us-east-1:"+sqstest.AccountID+":startserver-q" {
		t.Errorf("attributes = %v", a)
	}
	if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("hi")}); err != nil {
		t.Fatal(err)
	}
	if n, err := sqstest.Count(ctx, client, url); err != nil || n != 1 {
		t.Errorf("Count = %d, %v", n, err)
	}
	resp, err := http.Get(ep + "/health")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("health: %v %v", resp, err)
	}
	resp.Body.Close()
	for _, u := range []string{url, dlq} {
		if _, err := client.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(u)}); err != nil {
			t.Error(err)
		}
	}
	stop()
	stop() // idempotent
	if _, err := client.ListQueues(ctx, &sqs.ListQueuesInput{}); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("server still answers after stop: %v", err)
	}
}
