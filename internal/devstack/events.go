package devstack

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/merchantsync/merchantsync/internal/app"
	"github.com/merchantsync/merchantsync/internal/webhook"
)

// localEvents are the local stack's parts for webhooks and events, on moto.
type localEvents struct {
	deliveries, deliveriesDLQ string // the deliveries queue and its DLQ
	bus                       string // the event bus
	key                       string // the KMS key webhook secrets are sealed with
}

// ensureEvents creates, unless they exist, what the template's webhook
// side is: the deliveries queue (maxReceiveCount = webhook.Attempts), the
// event bus with its archive, and a KMS key (SECRET_KMS_KEY_ID, when set,
// is used instead).
func ensureEvents(ctx context.Context, cfg app.Config, sqsClient *sqs.Client) (localEvents, error) {
	var ev localEvents
	var err error
	ev.deliveries, ev.deliveriesDLQ, err = ensureQueue(ctx, sqsClient, "merchantsync-local-deliveries", 180, webhook.Attempts)
	if err != nil {
		return ev, err
	}
	eb := eventbridge.NewFromConfig(cfg.AWS)
	ev.bus = "merchantsync-local"
	bus, err := eb.DescribeEventBus(ctx, &eventbridge.DescribeEventBusInput{Name: aws.String(ev.bus)})
	if err != nil {
		created, err := eb.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(ev.bus)})
		if err != nil {
			return ev, fmt.Errorf("create event bus: %w", err)
		}
		if _, err := eb.CreateArchive(ctx, &eventbridge.CreateArchiveInput{ArchiveName: aws.String(ev.bus + "-events"),
			EventSourceArn: created.EventBusArn, RetentionDays: aws.Int32(90), EventPattern: aws.String(`{"source":["merchantsync"]}`)}); err != nil {
			return ev, fmt.Errorf("create event archive: %w", err)
		}
	} else {
		_ = bus
	}
	ev.key = cfg.SecretKMSKeyID
	if ev.key == "" {
		k, err := kms.NewFromConfig(cfg.AWS).CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("merchantsync local: webhook secrets")})
		if err != nil {
			return ev, fmt.Errorf("create KMS key: %w", err)
		}
		ev.key = aws.ToString(k.KeyMetadata.KeyId)
		os.Setenv("SECRET_KMS_KEY_ID", ev.key)
	}
	return ev, nil
}

func webhooksBanner(addr string, ev localEvents) string {
	return fmt.Sprintf(`Webhooks (README "Webhooks"):
  curl -s -X POST http://%[1]s/v1/webhooks -H 'X-Tenant-Id: demo' -H 'Content-Type: application/json' -d '{"url":"http://127.0.0.1:9000/hooks"}'
  go run ./infra/dev/receiver -addr 127.0.0.1:9000 -secret <the secret it answered>
  SQS deliveries     %[2]s
  EventBridge bus    %[3]s

`, addr, ev.deliveries, ev.bus)
}

// startNotifier runs the notifier on the table's stream, as Lambda's
// DynamoDB Streams event source does (see streams.go). The local poller has
// no filters: dynamo.StreamEvent skips what the template's FilterCriteria
// would. A table created just now is read from the start of its stream
// (TRIM_HORIZON), so no write of this run is missed whenever the poller's
// first read happens; an existing table's from its end (LATEST), so a
// restart does not send old events again.
func startNotifier(ctx context.Context, cfg app.Config, logger *slog.Logger, fresh bool) error {
	t, err := dynamodb.NewFromConfig(cfg.AWS).DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(cfg.TableName)})
	if err != nil {
		return fmt.Errorf("describe table: %w", err)
	}
	arn := aws.ToString(t.Table.LatestStreamArn)
	if arn == "" {
		return fmt.Errorf("table %s has no stream: the notifier cannot run", cfg.TableName)
	}
	n := cfg.Notifier()
	n.Logger = logger
	p := &StreamPoller{Client: dynamodbstreams.NewFromConfig(cfg.AWS), StreamARN: arn, Handler: n.Handle, Logger: logger, TrimHorizon: fresh}
	go func() {
		if err := p.Run(ctx); err != nil {
			logger.Error("stream poller", "err", err.Error())
		}
	}()
	return nil
}
