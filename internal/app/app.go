// Package app wires merchantsync's parts together from configuration. Each
// Lambda's main and the local stack call the same constructors, so what runs
// locally is what runs in AWS.
package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/merchantsync/merchantsync/internal/bus"
	"github.com/merchantsync/merchantsync/internal/dynamo"
	"github.com/merchantsync/merchantsync/internal/httpapi"
	"github.com/merchantsync/merchantsync/internal/kmsseal"
	"github.com/merchantsync/merchantsync/internal/notify"
	"github.com/merchantsync/merchantsync/internal/queue"
	"github.com/merchantsync/merchantsync/internal/rakuten"
	"github.com/merchantsync/merchantsync/internal/secrets"
	"github.com/merchantsync/merchantsync/internal/syncer"
	"github.com/merchantsync/merchantsync/internal/webhook"
)

// Config is merchantsync's configuration, read from the environment.
type Config struct {
	TableName        string           // TABLE_NAME
	QueueURL         string           // SYNC_QUEUE_URL
	SecretPrefix     string           // SECRET_PREFIX, e.g. merchantsync/dev
	SecretKMSKeyID   string           // SECRET_KMS_KEY_ID (optional)
	RakutenBaseURL   string           // RAKUTEN_BASE_URL
	RakutenPerMinute float64          // RAKUTEN_REQUESTS_PER_MINUTE
	RakutenPullMode  rakuten.PullMode // RAKUTEN_PULL_MODE (or the older RAKUTEN_PULL_BY_STATUS=true)
	SyncHourUTC      int              // SYNC_HOUR_UTC: the daily schedule's hour, for nextSyncAt
	HourlyMinute     int              // HOURLY_SYNC_MINUTE: the hourly schedule's minute, for nextSyncAt
	FreshFor         time.Duration    // SYNC_FRESH_FOR: an hourly run this soon after a full one is skipped (default 1h)
	TenantClaim      string           // TENANT_CLAIM: the JWT claim holding the tenant id (default tenant_id)
	SyncMaxReceives  int              // SYNC_MAX_RECEIVES: the sync queue's maxReceiveCount (0: unknown)
	Stage            string           // STAGE: the metrics' Stage dimension ("local" when unset)
	DeliveryQueueURL string           // DELIVERY_QUEUE_URL: the webhook deliveries queue
	EventBusName     string           // EVENT_BUS_NAME: the events bus (empty: events go to webhooks only)
	// WebhookLoopback (WEBHOOK_ALLOW_LOOPBACK=true, the local stack only)
	// lets webhooks go to http://127.0.0.1 receivers.
	WebhookLoopback bool
	// WebhookRetryScale (WEBHOOK_RETRY_SCALE) multiplies the retry delays
	// of deliveries: the local stack's is small so retries can be watched.
	WebhookRetryScale float64
	LogLevel          slog.Level // LOG_LEVEL
	AWS               aws.Config
	Logger            *slog.Logger
	// Out is where the logger and the EMF metrics write (Lambda: stdout,
	// which CloudWatch Logs reads both from).
	Out io.Writer
}

// Load reads the configuration from the environment and builds the AWS SDK
// configuration once (cold start). The SDK honours AWS_ENDPOINT_URL_DYNAMODB,
// _SQS and _SECRETS_MANAGER by itself, which is how the local stack points
// the real clients at local services.
func Load(ctx context.Context, getenv func(string) string, logOut io.Writer) (Config, error) {
	// The logger comes first: a caller reports Load's error with it.
	level, levelErr := parseLevel(getenv("LOG_LEVEL"))
	c := Config{
		LogLevel:       level,
		Logger:         NewLogger(logOut, level),
		Out:            logOut,
		TableName:      getenv("TABLE_NAME"),
		QueueURL:       getenv("SYNC_QUEUE_URL"),
		SecretPrefix:   getenv("SECRET_PREFIX"),
		SecretKMSKeyID: getenv("SECRET_KMS_KEY_ID"),
		RakutenBaseURL: getenv("RAKUTEN_BASE_URL"),
		SyncHourUTC:    3,
		TenantClaim:    getenv("TENANT_CLAIM"),
		Stage:          getenv("STAGE"),

		DeliveryQueueURL: getenv("DELIVERY_QUEUE_URL"),
		EventBusName:     getenv("EVENT_BUS_NAME"),
	}
	if c.TenantClaim == "" {
		c.TenantClaim = httpapi.DefaultTenantClaim
	}
	if c.Stage == "" {
		c.Stage = "local"
	}
	if levelErr != nil {
		return c, levelErr
	}
	if c.RakutenBaseURL == "" {
		c.RakutenBaseURL = "https://api.linksynergy.com"
	}
	if v := getenv("RAKUTEN_REQUESTS_PER_MINUTE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return c, fmt.Errorf("RAKUTEN_REQUESTS_PER_MINUTE=%q: want a positive number", v)
		}
		c.RakutenPerMinute = f
	}
	mode, err := rakuten.ParsePullMode(getenv("RAKUTEN_PULL_MODE"))
	if err != nil {
		return c, fmt.Errorf("RAKUTEN_PULL_MODE: %w", err)
	}
	c.RakutenPullMode = mode
	if v := getenv("RAKUTEN_PULL_BY_STATUS"); v != "" {
		// The older switch, still read: true forces by_status where
		// RAKUTEN_PULL_MODE is not set; false changes nothing.
		b, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("RAKUTEN_PULL_BY_STATUS=%q: want true or false", v)
		}
		if b && getenv("RAKUTEN_PULL_MODE") == "" {
			c.RakutenPullMode = rakuten.ModeByStatus
		}
	}
	if v := getenv("SYNC_MAX_RECEIVES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return c, fmt.Errorf("SYNC_MAX_RECEIVES=%q: want 1..1000, the queue's maxReceiveCount", v)
		}
		c.SyncMaxReceives = n
	}
	if v := getenv("SYNC_HOUR_UTC"); v != "" {
		h, err := strconv.Atoi(v)
		if err != nil || h < 0 || h > 23 {
			return c, fmt.Errorf("SYNC_HOUR_UTC=%q: want 0..23", v)
		}
		c.SyncHourUTC = h
	}
	if v := getenv("SYNC_FRESH_FOR"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return c, fmt.Errorf("SYNC_FRESH_FOR=%q: want a duration such as 1h (negative: never skip)", v)
		}
		c.FreshFor = d
	}
	c.HourlyMinute = 30
	if v := getenv("HOURLY_SYNC_MINUTE"); v != "" {
		m, err := strconv.Atoi(v)
		if err != nil || m < 0 || m > 59 {
			return c, fmt.Errorf("HOURLY_SYNC_MINUTE=%q: want 0..59", v)
		}
		c.HourlyMinute = m
	}
	if v := getenv("WEBHOOK_ALLOW_LOOPBACK"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("WEBHOOK_ALLOW_LOOPBACK=%q: want true or false", v)
		}
		c.WebhookLoopback = b
	}
	if v := getenv("WEBHOOK_RETRY_SCALE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f > 1 {
			return c, fmt.Errorf("WEBHOOK_RETRY_SCALE=%q: want a number in (0, 1]", v)
		}
		c.WebhookRetryScale = f
	}
	if c.TableName == "" {
		return c, fmt.Errorf("TABLE_NAME is not set")
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return c, fmt.Errorf("load AWS config: %w", err)
	}
	c.AWS = awsCfg
	return c, nil
}

// MustLoad is Load for a Lambda's main: a function that cannot read its
// configuration should fail its cold start loudly.
func MustLoad() Config {
	c, err := Load(context.Background(), os.Getenv, os.Stdout)
	if err != nil {
		c.Logger.Error("configuration", "err", err.Error())
		os.Exit(1)
	}
	return c
}

// NewLogger returns the JSON logger every function uses, filtering by
// level itself. Lambda is told not to filter (ApplicationLogLevel TRACE):
// its filter counts a line without "level", such as an EMF metrics line, as
// INFO and would drop the metrics at WARN. Each line still carries what
// that filter reads: "level" (DEBUG, INFO, WARN, ERROR) and an RFC 3339
// "timestamp".
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				a.Key = "timestamp"
			}
			return a
		},
	}))
}

// parseLevel reads LOG_LEVEL (the template's LogLevel): empty is INFO. It
// ignores AWS_LAMBDA_LOG_LEVEL, which Lambda sets from ApplicationLogLevel
// (TRACE, so that Lambda keeps every line).
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToUpper(s) {
	case "DEBUG":
		return slog.LevelDebug, nil
	case "INFO", "":
		return slog.LevelInfo, nil
	case "WARN":
		return slog.LevelWarn, nil
	case "ERROR":
		return slog.LevelError, nil
	}
	return slog.LevelInfo, fmt.Errorf("LOG_LEVEL=%q: want DEBUG, INFO, WARN or ERROR", s)
}

// Store returns the DynamoDB store.
func (c Config) Store() *dynamo.Store {
	return dynamo.New(dynamodb.NewFromConfig(c.AWS), c.TableName)
}

// Secrets returns the Secrets Manager store.
func (c Config) Secrets() *secrets.Store {
	return secrets.New(secretsmanager.NewFromConfig(c.AWS), c.SecretPrefix, c.SecretKMSKeyID)
}

// Queue returns the sync queue.
func (c Config) Queue() *queue.Queue {
	return queue.New(sqs.NewFromConfig(c.AWS), c.QueueURL)
}

// Rakuten returns the Rakuten API client.
func (c Config) Rakuten() *rakuten.Client {
	return rakuten.New(rakuten.Config{BaseURL: c.RakutenBaseURL, RequestsPerMinute: c.RakutenPerMinute,
		PullMode: c.RakutenPullMode})
}

func (c Config) schedule() httpapi.Schedule { return httpapi.DailyAt{Hour: c.SyncHourUTC} }
func (c Config) hourly() httpapi.Schedule   { return httpapi.HourlyAt{Minute: c.HourlyMinute} }

// Network is the Rakuten network: the client, with the connections'
// credentials in Secrets Manager.
func (c Config) Network() *rakuten.Network {
	return &rakuten.Network{Client: c.Rakuten(), Credentials: c.Secrets(), Now: time.Now}
}

// APIHandler is the api function: reads, IDs and settings.
func (c Config) APIHandler() *httpapi.Router {
	return c.claims(httpapi.NewAPIRouter(&httpapi.API{Store: c.Store(), Schedule: c.schedule(), Hourly: c.hourly(), Now: time.Now}, c.Logger))
}

// CredentialsHandler is the credentials function.
func (c Config) CredentialsHandler() *httpapi.Router {
	return c.claims(httpapi.NewCredentialsRouter(&httpapi.Credentials{
		Store: c.Store(), Secrets: c.Secrets(), Network: c.Network(),
		Schedule: c.schedule(), Hourly: c.hourly(), Now: time.Now, Logger: c.Logger,
	}, c.Logger))
}

// SyncNowHandler is the sync-now function.
func (c Config) SyncNowHandler() *httpapi.Router {
	return c.claims(httpapi.NewSyncNowRouter(&httpapi.SyncNow{Store: c.Store(), Queue: c.Queue(), Now: time.Now, Logger: c.Logger}, c.Logger))
}

// claims makes r read the tenant from the configured claim.
func (c Config) claims(r *httpapi.Router) *httpapi.Router {
	r.TenantClaim = c.TenantClaim
	return r
}

// SyncWorker is the sync function: one SQS message = one tenant × network.
func (c Config) SyncWorker() *syncer.Worker {
	metrics := syncer.NewMetrics(c.Out, c.Stage)
	e := &syncer.Engine{
		Store: c.Store(), Network: c.Network(),
		Now: time.Now, Logger: c.Logger, Metrics: metrics, FreshFor: c.FreshFor,
	}
	w := syncer.NewWorker(e, c.Logger)
	w.MaxReceives = c.SyncMaxReceives
	if c.QueueURL != "" {
		w.Queue = c.Queue()
	}
	return w
}

// Scheduler is the scheduler function: the daily fan-out.
func (c Config) Scheduler() *syncer.Scheduler {
	return &syncer.Scheduler{Store: c.Store(), Queue: c.Queue(), Now: time.Now, Logger: c.Logger, Metrics: syncer.NewMetrics(c.Out, c.Stage)}
}

// webhookPolicy is which receivers webhooks may reach: public https only,
// unless the local stack allows loopback receivers.
func (c Config) webhookPolicy() webhook.Policy {
	return webhook.Policy{AllowLoopbackHTTP: c.WebhookLoopback}
}

// Sealer seals webhook secrets with the stack's KMS key.
func (c Config) Sealer() *kmsseal.Sealer {
	return kmsseal.New(kms.NewFromConfig(c.AWS), c.SecretKMSKeyID)
}

// Deliveries returns the webhook deliveries queue.
func (c Config) Deliveries() *queue.Queue {
	return queue.New(sqs.NewFromConfig(c.AWS), c.DeliveryQueueURL)
}

// WebhooksHandler is the webhooks function: a tenant's receivers.
func (c Config) WebhooksHandler() *httpapi.Router {
	return c.claims(httpapi.NewWebhooksRouter(&httpapi.Webhooks{
		Store: c.Store(), Sealer: c.Sealer(), Queue: c.Deliveries(), Policy: c.webhookPolicy(),
		Now: time.Now, Logger: c.Logger,
	}, c.Logger))
}

// Notifier is the notify function: the table's stream to the bus and the
// deliveries queue.
func (c Config) Notifier() *notify.Notifier {
	n := &notify.Notifier{Webhooks: c.Store(), Deliveries: c.Deliveries(), Decode: dynamo.StreamEvent, Logger: c.Logger}
	if c.EventBusName != "" {
		n.Bus = bus.New(eventbridge.NewFromConfig(c.AWS), c.EventBusName)
	}
	return n
}

// Deliverer is the deliver function: signed webhook attempts.
func (c Config) Deliverer() *notify.Deliverer {
	return &notify.Deliverer{
		Webhooks: c.Store(), Sealer: c.Sealer(), Queue: c.Deliveries(),
		Client: webhook.NewClient(webhook.ClientOptions{Policy: c.webhookPolicy()}),
		Decode: queue.DecodeDelivery, Now: time.Now, DelayScale: c.WebhookRetryScale, Logger: c.Logger,
	}
}
