package devstack

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/merchantsync/merchantsync/internal/app"
	"github.com/merchantsync/merchantsync/internal/dynamo"
	"github.com/merchantsync/merchantsync/internal/httpapi"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/queue"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
	"github.com/merchantsync/merchantsync/internal/syncer"
)

// deliveryPollers is how many batches of deliveries the local stack
// delivers at once.
const deliveryPollers = 4

// Options configure the local stack.
type Options struct {
	ListenAddr   string // the API; default 127.0.0.1:8080
	RepoRoot     string // where infra/scripts lives
	DynamoPort   int    // DynamoDB Local's port when the stack starts it; default 8776
	MotoPort     int    // moto's port when the stack starts it; default 8777
	SandboxAddr  string // the Rakuten sandbox; default 127.0.0.1:0
	Log          io.Writer
	Out          io.Writer // the usage banner
	SyncHourUTC  int
	WorkerBudget time.Duration // the sync handler's deadline per batch, like the function's timeout
}

// Run starts every part, serves until ctx is done, then stops them all.
func Run(ctx context.Context, o Options) error {
	if o.ListenAddr == "" {
		o.ListenAddr = "127.0.0.1:8080"
	}
	// Ports of their own, so `make dev` and `make test` (8765, 8766) can
	// run side by side.
	if o.DynamoPort == 0 {
		o.DynamoPort = 8776
	}
	if o.MotoPort == 0 {
		o.MotoPort = 8777
	}
	if o.SandboxAddr == "" {
		o.SandboxAddr = "127.0.0.1:0"
	}
	if o.WorkerBudget == 0 {
		o.WorkerBudget = 5 * time.Minute
	}
	logger := app.NewLogger(o.Log, slog.LevelInfo)
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()

	// Static credentials: local services accept any signature.
	setenvDefault("AWS_REGION", "us-east-1")
	setenvDefault("AWS_ACCESS_KEY_ID", "local")
	setenvDefault("AWS_SECRET_ACCESS_KEY", "local")
	setenvDefault("TABLE_NAME", "merchantsync-local")
	setenvDefault("SECRET_PREFIX", "merchantsync/local")
	// An hourly run right after Sync now is not skipped, so that the
	// walk-through can show one.
	setenvDefault("SYNC_FRESH_FOR", "-1s")
	// Webhooks may go to receivers on this machine, and retries come
	// within seconds (5 s, 5 min, 30 min… scaled to 1 s, 1 s, 4 s…) so
	// that they can be watched.
	setenvDefault("WEBHOOK_ALLOW_LOOPBACK", "true")
	setenvDefault("WEBHOOK_RETRY_SCALE", "0.002")

	// DynamoDB Local (AWS's own jar) and moto (SQS, Secrets Manager),
	// unless endpoints are given.
	if os.Getenv("AWS_ENDPOINT_URL_DYNAMODB") == "" {
		ep, stop, err := startServer(ctx, o.RepoRoot, "dynamodb-local.sh", o.DynamoPort)
		if err != nil {
			return fmt.Errorf("start DynamoDB Local: %w", err)
		}
		cleanups = append(cleanups, stop)
		os.Setenv("AWS_ENDPOINT_URL_DYNAMODB", ep)
	}
	if os.Getenv("AWS_ENDPOINT_URL_SQS") == "" || os.Getenv("AWS_ENDPOINT_URL_SECRETS_MANAGER") == "" ||
		os.Getenv("AWS_ENDPOINT_URL_KMS") == "" || os.Getenv("AWS_ENDPOINT_URL_EVENTBRIDGE") == "" {
		ep, stop, err := startServer(ctx, o.RepoRoot, "moto.sh", o.MotoPort)
		if err != nil {
			return fmt.Errorf("start moto: %w", err)
		}
		cleanups = append(cleanups, stop)
		setenvDefault("AWS_ENDPOINT_URL_SQS", ep)
		setenvDefault("AWS_ENDPOINT_URL_SECRETS_MANAGER", ep)
		setenvDefault("AWS_ENDPOINT_URL_KMS", ep)
		setenvDefault("AWS_ENDPOINT_URL_EVENTBRIDGE", ep)
	}

	// DynamoDB Local serves the table's stream on the same endpoint.
	setenvDefault("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", os.Getenv("AWS_ENDPOINT_URL_DYNAMODB"))

	// The Rakuten sandbox, seeded with a demo account.
	sb := sandbox.New(sandbox.Options{Logger: logger})
	demo := sb.DemoAccount()
	sbURL, stopSB, err := serve(o.SandboxAddr, sb)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, stopSB)
	setenvDefault("RAKUTEN_BASE_URL", sbURL)

	cfg, err := app.Load(ctx, os.Getenv, o.Log)
	if err != nil {
		return err
	}
	created, err := ensureTable(ctx, dynamodb.NewFromConfig(cfg.AWS), cfg.TableName)
	if err != nil {
		return err
	}
	sqsClient := sqs.NewFromConfig(cfg.AWS)
	queueURL, dlqURL, err := ensureQueue(ctx, sqsClient, "merchantsync-local-sync", int(6*o.WorkerBudget/time.Second), 4)
	if err != nil {
		return err
	}
	cfg.QueueURL = queueURL
	os.Setenv("SYNC_QUEUE_URL", queueURL)
	if cfg.SyncMaxReceives == 0 {
		cfg.SyncMaxReceives = 4
	}
	ev, err := ensureEvents(ctx, cfg, sqsClient)
	if err != nil {
		return err
	}
	cfg.DeliveryQueueURL, cfg.EventBusName, cfg.SecretKMSKeyID = ev.deliveries, ev.bus, ev.key

	worker := cfg.SyncWorker()
	scheduler := cfg.Scheduler()
	poller := &queue.Poller{
		Client: sqsClient, QueueURL: queueURL, BatchSize: 5, WaitSeconds: 1,
		Timeout: o.WorkerBudget, Handler: worker.Handle, Logger: logger,
	}
	go func() {
		if err := poller.Run(ctx); err != nil {
			logger.Error("poller", "err", err.Error())
		}
	}()
	// Several delivery pollers, as Lambda's event source runs several
	// batches at once (the template allows 20): one slow or failing
	// receiver does not hold up the others' events.
	deliverer := cfg.Deliverer()
	deliverer.Logger = logger
	for range deliveryPollers {
		p := &queue.Poller{
			Client: sqsClient, QueueURL: cfg.DeliveryQueueURL, BatchSize: 10, WaitSeconds: 1,
			Timeout: 30 * time.Second, Handler: deliverer.Handle, Logger: logger,
		}
		go func() {
			if err := p.Run(ctx); err != nil {
				logger.Error("delivery poller", "err", err.Error())
			}
		}()
	}
	if err := startNotifier(ctx, cfg, logger, created); err != nil {
		return err
	}
	go runDaily(ctx, cfg.SyncHourUTC, scheduler, logger)
	go runHourly(ctx, cfg.HourlyMinute, scheduler, logger)

	gw := &Gateway{
		Functions: []Function{
			{Name: "api", Router: cfg.APIHandler()},
			{Name: "credentials", Router: cfg.CredentialsHandler()},
			{Name: "syncnow", Router: cfg.SyncNowHandler()},
			{Name: "webhooks", Router: cfg.WebhooksHandler()},
		},
		Extra: map[string]http.Handler{
			"/_dev/schedule":      scheduleNow(scheduler),
			"/_dev/sandbox/churn": churn(sb, demo.SiteID),
			"/":                   usage(o.ListenAddr),
		},
		Logger: logger,
	}
	for path, h := range docs(o.RepoRoot) {
		gw.Extra[path] = h
	}
	ln, err := net.Listen("tcp", o.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", o.ListenAddr, err)
	}
	srv := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer shutdown(srv)

	fmt.Fprint(o.Out, banner(o.ListenAddr, sbURL, queueURL, dlqURL, demo))
	fmt.Fprint(o.Out, webhooksBanner(o.ListenAddr, ev))
	<-ctx.Done()
	return nil
}

func setenvDefault(k, v string) {
	if os.Getenv(k) == "" {
		os.Setenv(k, v)
	}
}

// serve runs h on addr and returns its base URL.
func serve(addr string, h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { shutdown(srv) }, nil
}

// ensureTable creates the table unless it exists. It lists tables rather
// than asking DescribeTable for a missing one: the SDK logs a spurious
// "failed to close HTTP response body" checksum warning on DynamoDB
// Local's error answers (aws/aws-sdk-go-v2#3545), which would greet every
// first `make dev`.
func ensureTable(ctx context.Context, c *dynamodb.Client, name string) (created bool, err error) {
	p := dynamodb.NewListTablesPaginator(c, &dynamodb.ListTablesInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return false, err
		}
		if slices.Contains(page.TableNames, name) {
			return false, nil
		}
	}
	return true, dynamo.CreateTable(ctx, c, name)
}

// runHourly fires the hourly (incremental) schedule at minute past every
// hour, as the template's Hourly schedule does.
func runHourly(ctx context.Context, minute int, s *syncer.Scheduler, logger *slog.Logger) {
	for {
		next := httpapi.HourlyAt{Minute: minute}.Next(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
		ev := syncer.ScheduleEvent{ScheduledTime: next.Format(time.RFC3339), Mode: string(merchantsync.ModeIncremental)}
		if _, err := s.Handle(ctx, ev); err != nil {
			logger.Error("hourly schedule", "err", err.Error())
		}
	}
}

// runDaily fires the scheduler at hour:00 UTC every day, as EventBridge
// Scheduler does in AWS.
func runDaily(ctx context.Context, hour int, s *syncer.Scheduler, logger *slog.Logger) {
	for {
		now := time.Now().UTC()
		next := time.Date(now.Year(), now.Month(), now.Day(), hour, 0, 0, 0, time.UTC)
		if !next.After(now) {
			next = next.AddDate(0, 0, 1)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
		ev := syncer.ScheduleEvent{RunID: "local-" + next.Format("20060102"), ScheduledTime: next.Format(time.RFC3339)}
		if _, err := s.Handle(ctx, ev); err != nil {
			logger.Error("daily schedule", "err", err.Error())
		}
	}
}

func scheduleNow(s *syncer.Scheduler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			writeJSON(w, http.StatusMethodNotAllowed, `{"error":{"code":"method_not_allowed","message":"POST to fire the daily schedule now (?mode=incremental: the hourly one)"}}`)
			return
		}
		now := time.Now().UTC()
		mode := r.URL.Query().Get("mode")
		res, err := s.Handle(r.Context(), syncer.ScheduleEvent{RunID: "local-" + mode + now.Format("20060102T150405.000"), ScheduledTime: now.Format(time.RFC3339), Mode: mode})
		if merchantsync.ErrorCode(err) == merchantsync.EInvalid {
			writeJSON(w, http.StatusBadRequest, `{"error":{"code":"invalid_request","field":"mode","message":"`+jsonEscape(merchantsync.ErrorMessage(err))+`"}}`)
			return
		}
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, `{"error":{"code":"internal","message":"`+jsonEscape(err.Error())+`"}}`)
			return
		}
		writeJSON(w, http.StatusOK, fmt.Sprintf(`{"scheduleRunId":%q,"mode":%q,"accounts":%d,"enqueued":%d,"batchCalls":%d}`,
			res.ScheduleRunID, res.Mode, res.Accounts, res.Enqueued, res.BatchCalls))
	})
}

// churn changes n random demo merchants' statuses in the sandbox, so the
// next sync has something to report.
func churn(sb *sandbox.Server, siteID string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			writeJSON(w, http.StatusMethodNotAllowed, `{"error":{"code":"method_not_allowed","message":"POST ?n=10 to change n merchants"}}`)
			return
		}
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 1 || n > 1000 {
			n = 10
		}
		statuses := sandbox.PartnershipStatuses()
		ms := sb.Merchants(siteID)
		changed := 0
		for _, i := range rand.Perm(len(ms)) {
			if changed == n {
				break
			}
			next := statuses[rand.IntN(len(statuses))]
			if next == ms[i].Status {
				continue
			}
			if sb.SetStatus(siteID, ms[i].MID, next) == nil {
				changed++
			}
		}
		writeJSON(w, http.StatusOK, fmt.Sprintf(`{"changed":%d}`, changed))
	})
}

func usage(addr string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			writeJSON(w, http.StatusNotFound, `{"error":{"code":"not_found","message":"No route."}}`)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "merchantsync local stack. See README.md for the curl walk-through; the API lives under http://%s/v1/\n", addr)
	})
}

func banner(addr, sandboxURL, queueURL, dlqURL string, demo sandbox.Account) string {
	return fmt.Sprintf(`
merchantsync is running locally (Ctrl-C stops everything)

  API                http://%[1]s/v1/   (tenant from the X-Tenant-Id header)
  Rakuten sandbox    %[2]s   (%[7]d demo merchants)
  SQS sync queue     %[3]s
  SQS dead letters   %[4]s

Demo Rakuten credentials (sandbox only):
  clientId=%[5]s clientSecret=%[6]s siteId=%[8]s username=%[9]s password=%[10]s

Try:
  curl -s -X PUT http://%[1]s/v1/networks/rakuten/ids -H 'X-Tenant-Id: demo' -H 'Content-Type: application/json' -d '{"affiliateId":"lMh2Xiq9xN0","siteId":"%[8]s"}'
  curl -s -X PUT http://%[1]s/v1/networks/rakuten/credentials -H 'X-Tenant-Id: demo' -H 'Content-Type: application/json' -d '{"clientId":"%[5]s","clientSecret":"%[6]s","siteId":"%[8]s","username":"%[9]s","password":"%[10]s"}'
  curl -s -X POST 'http://%[1]s/v1/networks/rakuten/sync?wait=20' -H 'X-Tenant-Id: demo'
  curl -s 'http://%[1]s/v1/networks/rakuten/relationships?limit=5' -H 'X-Tenant-Id: demo'
  curl -s -X POST http://%[1]s/_dev/sandbox/churn?n=10     # change 10 merchants in the sandbox
  curl -s -X POST http://%[1]s/_dev/schedule               # fire the daily schedule now
  curl -s -X PUT http://%[1]s/v1/merchantsync/settings -H 'X-Tenant-Id: demo' -H 'Content-Type: application/json' -d '{"enabled":true,"syncEvery":"1h"}'
  curl -s -X POST 'http://%[1]s/_dev/schedule?mode=incremental'   # fire the hourly schedule now

`, addr, sandboxURL, queueURL, dlqURL, demo.ClientID, demo.ClientSecret, sandbox.DemoMerchantCount, demo.SiteID, demo.Username, demo.Password)
}

// startServer starts a local server with its script in infra/scripts
// (dynamodb-local.sh, moto.sh) on port, and returns its endpoint and how to
// stop it.
func startServer(ctx context.Context, root, script string, port int) (string, func(), error) {
	path := filepath.Join(root, "infra", "scripts", script)
	p := strconv.Itoa(port)
	out, err := exec.CommandContext(ctx, path, "start", p).Output()
	if err != nil {
		return "", nil, err
	}
	return strings.TrimSpace(string(out)), func() { _ = exec.Command(path, "stop", p).Run() }, nil
}

// ensureQueue creates the sync queue and its dead-letter queue (after
// maxReceives receives) unless they exist, and returns their URLs.
func ensureQueue(ctx context.Context, c *sqs.Client, name string, visibility, maxReceives int) (string, string, error) {
	dlq, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + "-dlq")})
	if err != nil {
		return "", "", fmt.Errorf("create queue %s-dlq: %w", name, err)
	}
	attrs, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: dlq.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return "", "", fmt.Errorf("queue arn of %s-dlq: %w", name, err)
	}
	redrive := fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"%d"}`, attrs.Attributes["QueueArn"], maxReceives)
	q, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: map[string]string{
		"VisibilityTimeout": strconv.Itoa(visibility), "RedrivePolicy": redrive}})
	if err != nil {
		return "", "", fmt.Errorf("create queue %s: %w", name, err)
	}
	return aws.ToString(q.QueueUrl), aws.ToString(dlq.QueueUrl), nil
}
