// Package sqstest runs the goaws SQS emulator (github.com/Admiral-Piett/goaws
// v0.5.4) in-process, for tests and for the local stack, behind the real
// SDK v2 SQS client (JSON 1.0 protocol).
//
// goaws keeps its queues in process-global state (models.SyncQueues), and
// its v0.5.4 JSON support has gaps that break the SDK v2 client. StartServer
// therefore wraps goaws's router in a thin wire-level shim that:
//
//   - renames SendMessageBatch's result keys to the JSON protocol's
//     Successful / Failed (goaws answers SendMessageBatchResultEntry /
//     BatchResultErrorEntry, which the SDK silently ignores);
//   - turns goaws's {"Type","Code","Message"} errors into the JSON
//     protocol's {"__type","message"} + x-amzn-query-error, so that the SDK
//     returns typed errors (*types.QueueDoesNotExist, …);
//   - reports ApproximateReceiveCount and SentTimestamp for real (goaws
//     always says 1 and "now"), and only the system attributes asked for;
//   - long-polls itself, so that a waiting ReceiveMessage never holds up
//     the rest, and serializes CreateQueue/DeleteQueue/SetQueueAttributes/
//     PurgeQueue against other requests (goaws reads its queue map without
//     a lock in several handlers: "concurrent map read and map write");
//   - gives queues a regional ARN (arn:aws:sqs:us-east-1:…).
//
// And StartServer runs gosqs.PeriodicTasks, without which visibility
// timeouts never expire and nothing is ever redelivered or dead-lettered.
package sqstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Admiral-Piett/goaws/app/gosqs"
	"github.com/Admiral-Piett/goaws/app/models"
	"github.com/Admiral-Piett/goaws/app/router"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/sirupsen/logrus"
)

// Region and AccountID appear in queue ARNs and URLs.
const (
	Region    = "us-east-1"
	AccountID = "100010001000"
)

// TickInterval is how often the emulator expires visibility timeouts and
// moves messages to dead-letter queues.
const TickInterval = 100 * time.Millisecond

var (
	setupOnce sync.Once
	envMu     sync.Mutex // models.CurrentEnvironment
)

func setup() {
	setupOnce.Do(func() {
		// goaws logs every message body at Info and every empty poll at
		// Warning; keep its errors only.
		logrus.SetLevel(logrus.ErrorLevel)
		envMu.Lock()
		defer envMu.Unlock()
		models.CurrentEnvironment.AccountID = AccountID
		// Region stays empty: goaws would put it in the queue URL's host
		// (http://us-east-1.127.0.0.1:port/…). The shim fixes the ARN.
		models.CurrentEnvironment.Region = ""
		// AWS's defaults. goaws's are zero, and a zero visibility timeout
		// makes every received message visible again at the next tick.
		models.CurrentEnvironment.QueueAttributeDefaults = models.EnvQueueAttributes{
			VisibilityTimeout:      30,
			MaximumMessageSize:     262144,
			MessageRetentionPeriod: 345600,
		}
	})
}

// StartServer starts goaws (with the shim and PeriodicTasks) on addr (e.g.
// "127.0.0.1:9324"; "127.0.0.1:0" for any free port) and returns its
// endpoint ("http://127.0.0.1:9324"). It runs until stop is called or ctx
// is done. Queues are global to the process (a goaws limitation): every
// server started in one process serves the same queues, and new queue URLs
// name the most recently started server.
func StartServer(ctx context.Context, addr string) (endpoint string, stop func(), err error) {
	setup()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("sqstest: listen %s: %w", addr, err)
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	envMu.Lock()
	models.CurrentEnvironment.Host = host
	models.CurrentEnvironment.Port = port
	envMu.Unlock()

	srv := &http.Server{Handler: newShim(router.New()), ReadHeaderTimeout: 10 * time.Second}
	quit := make(chan bool)
	go gosqs.PeriodicTasks(TickInterval, quit)
	go func() { _ = srv.Serve(ln) }()

	var once sync.Once
	stop = func() {
		once.Do(func() {
			close(quit)
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := srv.Shutdown(shutdownCtx); err != nil {
				_ = srv.Close()
			}
		})
	}
	if ctx != nil && ctx.Done() != nil {
		go func() {
			<-ctx.Done()
			stop()
		}()
	}
	return "http://" + ln.Addr().String(), stop, nil
}

// NewClient returns a real SQS SDK client for endpoint with static test
// credentials. optFns adjust it (see WithTransport).
func NewClient(endpoint string, optFns ...func(*sqs.Options)) *sqs.Client {
	opts := sqs.Options{
		Region:       Region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDFAKE", "fake-secret-key", ""),
	}
	for _, fn := range optFns {
		fn(&opts)
	}
	return sqs.New(opts)
}

// WithTransport makes the client send its requests through rt (e.g. a
// *FailEntries).
func WithTransport(rt http.RoundTripper) func(*sqs.Options) {
	return func(o *sqs.Options) { o.HTTPClient = &http.Client{Transport: rt} }
}

// QueueOptions configure CreateQueue.
type QueueOptions struct {
	// VisibilityTimeout in seconds; 0 means 30 (AWS's default).
	VisibilityTimeout int
	// DLQName, when set, creates that queue too and redrives to it after
	// MaxReceiveCount receives (0 means 3).
	DLQName         string
	MaxReceiveCount int
}

// CreateQueue creates the queue name (and its dead-letter queue) and
// returns their URLs (dlqURL is empty without opt.DLQName).
func CreateQueue(ctx context.Context, client *sqs.Client, name string, opt QueueOptions) (queueURL, dlqURL string, err error) {
	attrs := map[string]string{}
	vt := opt.VisibilityTimeout
	if vt == 0 {
		vt = 30
	}
	attrs[string(types.QueueAttributeNameVisibilityTimeout)] = strconv.Itoa(vt)
	if opt.DLQName != "" {
		out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(opt.DLQName)})
		if err != nil {
			return "", "", fmt.Errorf("sqstest: create queue %s: %w", opt.DLQName, err)
		}
		dlqURL = aws.ToString(out.QueueUrl)
		a, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl:       out.QueueUrl,
			AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
		})
		if err != nil {
			return "", "", fmt.Errorf("sqstest: queue arn of %s: %w", opt.DLQName, err)
		}
		mrc := opt.MaxReceiveCount
		if mrc == 0 {
			mrc = 3
		}
		policy, _ := json.Marshal(map[string]string{
			"deadLetterTargetArn": a.Attributes[string(types.QueueAttributeNameQueueArn)],
			"maxReceiveCount":     strconv.Itoa(mrc),
		})
		attrs[string(types.QueueAttributeNameRedrivePolicy)] = string(policy)
	}
	out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		return "", "", fmt.Errorf("sqstest: create queue %s: %w", name, err)
	}
	return aws.ToString(out.QueueUrl), dlqURL, nil
}

var (
	sharedOnce     sync.Once
	sharedEndpoint string
	sharedErr      error
)

// Endpoint returns the endpoint of the emulator shared by the tests of
// this process, starting it on first use. It runs until the process exits.
func Endpoint(t testing.TB) string {
	t.Helper()
	sharedOnce.Do(func() {
		sharedEndpoint, _, sharedErr = StartServer(context.Background(), "127.0.0.1:0")
	})
	if sharedErr != nil {
		t.Fatalf("sqstest: %v", sharedErr)
	}
	return sharedEndpoint
}

// Env is one test's queue on the shared emulator.
type Env struct {
	Endpoint string
	Client   *sqs.Client
	QueueURL string
	DLQURL   string // empty without QueueOptions.DLQName
}

// Start creates a fresh queue (default options) on the shared emulator and
// returns a real SDK client and the queue's URL. The queue is deleted when
// the test ends.
func Start(t testing.TB) (client *sqs.Client, queueURL string) {
	t.Helper()
	env := StartWith(t, QueueOptions{})
	return env.Client, env.QueueURL
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// StartWith is Start with queue options and client options. A DLQName in
// opt is made unique too.
func StartWith(t testing.TB, opt QueueOptions, clientOpts ...func(*sqs.Options)) Env {
	t.Helper()
	ep := Endpoint(t)
	client := NewClient(ep, clientOpts...)
	base := unsafeName.ReplaceAllString(t.Name(), "-")
	if len(base) > 50 {
		base = base[:50]
	}
	name := base + "-" + randomHex(4)
	if opt.DLQName != "" {
		opt.DLQName = name + "-dlq"
	}
	ctx := context.Background()
	url, dlq, err := CreateQueue(ctx, client, name, opt)
	if err != nil {
		t.Fatalf("sqstest: %v", err)
	}
	t.Cleanup(func() {
		_, _ = client.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(url)})
		if dlq != "" {
			_, _ = client.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(dlq)})
		}
	})
	return Env{Endpoint: ep, Client: client, QueueURL: url, DLQURL: dlq}
}

// Count returns the messages in the queue, visible or in flight, as goaws
// counts them (its ApproximateNumberOfMessages includes in-flight ones,
// unlike AWS's).
func Count(ctx context.Context, client *sqs.Client, queueURL string) (int, error) {
	out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(queueURL),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages},
	})
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)])
}

// Peek returns the bodies of every message in the queue, visible or in
// flight, without receiving them: an in-process look at goaws's state for
// tests that check what was enqueued.
func Peek(queueURL string) []string {
	models.SyncQueues.RLock()
	defer models.SyncQueues.RUnlock()
	q := models.SyncQueues.Queues[queueName(queueURL)]
	if q == nil {
		return nil
	}
	out := make([]string, len(q.Messages))
	for i, m := range q.Messages {
		out[i] = m.MessageBody
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ---- the shim ----

type shim struct {
	next http.Handler
	gate sync.RWMutex // exclusive for requests that change goaws's queue map
}

func newShim(next http.Handler) *shim { return &shim{next: next} }

const jsonContentType = "application/x-amz-json-1.0"

func (s *shim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op, isJSON := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.")
	if !isJSON || r.Header.Get("Content-Type") != jsonContentType {
		// Query protocol, /health and the like: goaws as is.
		s.gate.RLock()
		defer s.gate.RUnlock()
		s.next.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "InvalidParameterValue", "AWS.SimpleQueueService.InvalidParameterValue", "cannot read request body")
		return
	}
	var rec *httptest.ResponseRecorder
	switch op {
	case "ReceiveMessage":
		rec = s.receive(r, body)
	case "CreateQueue", "DeleteQueue", "SetQueueAttributes", "PurgeQueue":
		s.gate.Lock()
		rec = s.call(r.Context(), r, body)
		if op == "CreateQueue" && rec.Code == http.StatusOK {
			fixARN(body)
		}
		s.gate.Unlock()
	default:
		s.gate.RLock()
		rec = s.call(r.Context(), r, body)
		s.gate.RUnlock()
	}
	out := rec.Body.Bytes()
	if rec.Code >= 300 {
		s.writeError(w, op, rec)
		return
	}
	switch op {
	case "SendMessageBatch":
		out = renameKeys(out, map[string]string{"SendMessageBatchResultEntry": "Successful", "BatchResultErrorEntry": "Failed"})
	case "ReceiveMessage":
		out = fixReceived(body, out)
	}
	for k, v := range rec.Header() {
		if k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	w.Header().Set("Content-Type", jsonContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(rec.Code)
	_, _ = w.Write(out)
}

// call runs goaws on body with ctx.
func (s *shim) call(ctx context.Context, r *http.Request, body []byte) *httptest.ResponseRecorder {
	req := r.Clone(ctx)
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	rec := httptest.NewRecorder()
	s.next.ServeHTTP(rec, req)
	return rec
}

var canceled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// receive long-polls in the shim: goaws is asked with a canceled context,
// which makes it look once and answer at once instead of waiting (and
// holding the gate) for up to 20 s.
func (s *shim) receive(r *http.Request, body []byte) *httptest.ResponseRecorder {
	var in struct {
		QueueUrl        string
		WaitTimeSeconds *int
	}
	_ = json.Unmarshal(body, &in)
	wait := 0
	if in.WaitTimeSeconds != nil {
		wait = *in.WaitTimeSeconds
	} else {
		name := queueName(in.QueueUrl)
		models.SyncQueues.RLock()
		if q := models.SyncQueues.Queues[name]; q != nil {
			wait = q.ReceiveMessageWaitTimeSeconds
		}
		models.SyncQueues.RUnlock()
	}
	deadline := time.Now().Add(time.Duration(wait) * time.Second)
	for {
		s.gate.RLock()
		rec := s.call(canceled, r, body)
		s.gate.RUnlock()
		if rec.Code != http.StatusOK || hasMessages(rec.Body.Bytes()) || !time.Now().Before(deadline) {
			return rec
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-r.Context().Done():
			t.Stop()
			return rec
		case <-t.C:
		}
	}
}

func hasMessages(b []byte) bool {
	var out struct{ Messages []json.RawMessage }
	return json.Unmarshal(b, &out) == nil && len(out.Messages) > 0
}

func queueName(url string) string {
	return url[strings.LastIndexByte(url, '/')+1:]
}

// fixARN gives a just-created queue a regional ARN.
func fixARN(body []byte) {
	var in struct{ QueueName string }
	if json.Unmarshal(body, &in) != nil || in.QueueName == "" {
		return
	}
	models.SyncQueues.Lock()
	defer models.SyncQueues.Unlock()
	if q := models.SyncQueues.Queues[in.QueueName]; q != nil {
		q.Arn = "arn:aws:sqs:" + Region + ":" + AccountID + ":" + q.Name
	}
}

func renameKeys(b []byte, names map[string]string) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return b
	}
	for from, to := range names {
		if v, ok := m[from]; ok {
			delete(m, from)
			if string(v) != "null" {
				m[to] = v
			}
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		return b
	}
	return out
}

// fixReceived sets ApproximateReceiveCount and SentTimestamp from goaws's
// bookkeeping and keeps only the system attributes the request asked for.
func fixReceived(reqBody, b []byte) []byte {
	var in struct {
		QueueUrl                    string
		AttributeNames              []string
		MessageSystemAttributeNames []string
	}
	_ = json.Unmarshal(reqBody, &in)
	want := map[string]bool{}
	for _, n := range append(in.AttributeNames, in.MessageSystemAttributeNames...) {
		want[n] = true
	}
	var out struct {
		Messages []map[string]any `json:"Messages"`
	}
	if json.Unmarshal(b, &out) != nil {
		return b
	}
	byID := map[string]*models.SqsMessage{}
	for _, msg := range out.Messages {
		if id, ok := msg["MessageId"].(string); ok {
			byID[id] = nil
		}
	}
	models.SyncQueues.RLock()
	if q := models.SyncQueues.Queues[queueName(in.QueueUrl)]; q != nil {
		for i := range q.Messages {
			if _, ok := byID[q.Messages[i].Uuid]; ok {
				m := q.Messages[i]
				byID[m.Uuid] = &m
			}
		}
	}
	models.SyncQueues.RUnlock()
	for _, msg := range out.Messages {
		attrs, _ := msg["Attributes"].(map[string]any)
		if attrs == nil {
			attrs = map[string]any{}
		}
		id, _ := msg["MessageId"].(string)
		if m := byID[id]; m != nil {
			// Retry counts the receives that ended without a delete
			// (expired or released), so this receive is number Retry+1.
			attrs["ApproximateReceiveCount"] = strconv.Itoa(m.Retry + 1)
			attrs["SentTimestamp"] = strconv.FormatInt(m.SentTime.UnixMilli(), 10)
		}
		if !want["All"] {
			for k := range attrs {
				if !want[k] {
					delete(attrs, k)
				}
			}
		}
		if len(attrs) == 0 {
			delete(msg, "Attributes")
		} else {
			msg["Attributes"] = attrs
		}
	}
	res, err := json.Marshal(out)
	if err != nil {
		return b
	}
	return res
}

// goawsErrors maps goaws's error codes to SQS's JSON error types and query
// codes.
var goawsErrors = map[string][2]string{
	"AWS.SimpleQueueService.NonExistentQueue":             {"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"},
	"AWS.SimpleQueueService.QueueExists":                  {"QueueNameExists", "QueueAlreadyExists"},
	"AWS.SimpleQueueService.TooManyEntriesInBatchRequest": {"TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"},
	"AWS.SimpleQueueService.BatchEntryIdsNotDistinct":     {"BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"},
	"AWS.SimpleQueueService.EmptyBatchRequest":            {"EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest"},
	"AWS.SimpleQueueService.MessageNotInFlight":           {"MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight"},
	"AWS.SimpleQueueService.InvalidAttributeValue":        {"InvalidAttributeValue", "InvalidAttributeValue"},
	"AWS.SimpleQueueService.InvalidParameterValue":        {"InvalidParameterValueException", "InvalidParameterValue"},
	"AWS.SimpleQueueService.ValidationError":              {"InvalidParameterValueException", "InvalidParameterValue"},
	"InvalidParameterValue":                               {"InvalidMessageContents", "InvalidMessageContents"},
}

func (s *shim) writeError(w http.ResponseWriter, op string, rec *httptest.ResponseRecorder) {
	var e struct{ Type, Code, Message string }
	if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Code == "" {
		writeJSONError(w, http.StatusBadRequest, "UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation",
			fmt.Sprintf("goaws cannot serve %s: %s", op, strings.TrimSpace(rec.Body.String())))
		return
	}
	status := rec.Code
	if op == "DeleteMessage" && status == http.StatusNotFound {
		// goaws: 404 "QueueExists"; AWS: 400 ReceiptHandleIsInvalid.
		writeJSONError(w, http.StatusBadRequest, "ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid", e.Message)
		return
	}
	typ, code := strings.ReplaceAll(e.Type, " ", ""), e.Code
	if m, ok := goawsErrors[e.Code]; ok {
		typ, code = m[0], m[1]
	}
	writeJSONError(w, status, typ, code, e.Message)
}

func writeJSONError(w http.ResponseWriter, status int, typ, queryCode, msg string) {
	w.Header().Set("Content-Type", jsonContentType)
	w.Header().Set("x-amzn-query-error", queryCode+";Sender")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.sqs#" + typ, "message": msg})
}
