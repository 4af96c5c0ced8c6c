package testenv_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/merchantsync/merchantsync/internal/testenv"
)

// The latency of one call from Go to moto, per operation the project uses:
//
//	go test -run '^$' -bench 'Moto|Goaws' -benchtime 100x -count 3 ./internal/testenv/
//
// (-benchtime 1x for the Fill ones, which take seconds on moto.)
func BenchmarkMoto(b *testing.B) {
	b.Run("SQS", func(b *testing.B) {
		url, _ := testenv.NewQueue(b, testenv.QueueOptions{})
		benchSQS(b, testenv.SQSClient(b), url)
	})
	b.Run("SecretsManager", benchSecrets)
	b.Run("EventBridge/PutEvents", benchPutEvents)
	b.Run("KMS/Encrypt", func(b *testing.B) {
		c := testenv.KMSClient(b)
		key := testenv.NewKey(b)
		for b.Loop() {
			if _, err := c.Encrypt(context.Background(), &kms.EncryptInput{KeyId: aws.String(key), Plaintext: []byte("x"),
				EncryptionContext: map[string]string{"k": "v"}}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchSQS times SQS calls on the queue at url. moto's SQS cost
// grows with the queue's depth (every send counts the queue's messages), so
// the per-call figures keep the queue under 100 messages, purging it
// untimed, and Fill shows the growth.
func benchSQS(b *testing.B, c *sqs.Client, url string) {
	ctx := context.Background()
	batch := func(prefix string) []types.SendMessageBatchRequestEntry {
		e := make([]types.SendMessageBatchRequestEntry, 10)
		for i := range e {
			e[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(prefix + strconv.Itoa(i))}
		}
		return e
	}
	sendBatch := func(b *testing.B) {
		out, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: batch("m")})
		if err != nil || len(out.Successful) != 10 {
			b.Fatal(err, out)
		}
	}
	// untimed runs fn with the timer stopped.
	untimed := func(b *testing.B, fn func()) {
		b.StopTimer()
		fn()
		b.StartTimer()
	}
	purge := func(b *testing.B) {
		if _, err := c.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: aws.String(url)}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("SendMessage", func(b *testing.B) {
		n := 0
		for b.Loop() {
			if n++; n%100 == 0 {
				untimed(b, func() { purge(b) })
			}
			if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(`{"tenantId":"t"}`)}); err != nil {
				b.Fatal(err)
			}
		}
		purge(b)
	})
	b.Run("SendMessageBatch10", func(b *testing.B) {
		n := 0
		for b.Loop() {
			if n++; n%10 == 0 {
				untimed(b, func() { purge(b) })
			}
			sendBatch(b)
		}
		purge(b)
	})
	b.Run("ReceiveMessage", func(b *testing.B) {
		// Received messages stay in flight: purge and refill every 100.
		left := 0
		for b.Loop() {
			if left == 0 {
				untimed(b, func() {
					purge(b)
					for range 10 {
						sendBatch(b)
					}
				})
				left = 100
			}
			out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), WaitTimeSeconds: 1})
			if err != nil || len(out.Messages) != 1 {
				b.Fatal(err, out)
			}
			left--
		}
		purge(b)
	})
	for _, n := range []int{500, 1000, 2000} {
		b.Run("Fill"+strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				for range n / 10 {
					sendBatch(b)
				}
				untimed(b, func() { purge(b) })
			}
		})
	}
}

func benchSecrets(b *testing.B) {
	ctx := context.Background()
	c := testenv.SecretsManagerClient(b)
	prefix := testenv.SecretPrefix(b) + "/"
	b.Run("CreateSecret", func(b *testing.B) {
		run, n := testenv.UniqueName(b, 40), 0 // -count runs this again
		for b.Loop() {
			n++
			if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(prefix + run + strconv.Itoa(n)), SecretString: aws.String(`{"clientId":"x"}`)}); err != nil {
				b.Fatal(err)
			}
		}
	})
	name := aws.String(prefix + "one")
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: name, SecretString: aws.String(`{"clientId":"x"}`)}); err != nil {
		b.Fatal(err)
	}
	b.Run("GetSecretValue", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: name}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("PutSecretValue", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: name, SecretString: aws.String(`{"clientId":"y"}`)}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchPutEvents puts one event a call on a bus whose rule delivers it to a
// queue, as moto does inside the call.
func benchPutEvents(b *testing.B) {
	c := testenv.EventBridgeClient(b)
	bus := testenv.NewEventBus(b)
	queue := testenv.RouteToQueue(b, bus, `{"source":["bench"]}`)
	entries := []ebtypes.PutEventsRequestEntry{{EventBusName: aws.String(bus), Source: aws.String("bench"), DetailType: aws.String("d"), Detail: aws.String(`{"n":1}`)}}
	for b.Loop() {
		out, err := c.PutEvents(context.Background(), &eventbridge.PutEventsInput{Entries: entries})
		if err != nil || out.FailedEntryCount != 0 {
			b.Fatal(err, out)
		}
	}
	b.StopTimer()
	if _, err := testenv.SQSClient(b).PurgeQueue(context.Background(), &sqs.PurgeQueueInput{QueueUrl: aws.String(queue)}); err != nil {
		b.Fatal(err)
	}
}
