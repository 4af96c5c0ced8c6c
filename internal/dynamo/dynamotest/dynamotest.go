// Package dynamotest gives tests a real DynamoDB: DynamoDB Local (AWS's jar,
// installed by infra/scripts/install-dynamodb-local.sh), a client for it, a
// fresh table per test with the production schema, and wire-level tools to
// count requests and inject throttling.
//
// The endpoint is $AWS_ENDPOINT_URL_DYNAMODB when set (the Makefile starts one
// DynamoDB Local for the whole run); otherwise the first Client call starts
// DynamoDB Local on a free loopback port for this test binary, and Main (or,
// failing that, the parent-death signal) stops it when the binary exits.
//
//	func TestMain(m *testing.M) { dynamotest.Main(m) }
package dynamotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/merchantsync/merchantsync/internal/dynamo"
)

// EnvEndpoint names the environment variable of an already running DynamoDB.
const EnvEndpoint = "AWS_ENDPOINT_URL_DYNAMODB"

// Region is the region of every test client.
const Region = "us-east-1"

const installHint = "run infra/scripts/install-dynamodb-local.sh"

var (
	startOnce sync.Once
	endpoint  string
	startErr  error
	stopFn    func()
	stopMu    sync.Mutex
)

// Main runs the tests and stops the DynamoDB Local this binary started.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop kills the DynamoDB Local started by this binary, if any.
func Stop() {
	stopMu.Lock()
	defer stopMu.Unlock()
	if stopFn != nil {
		stopFn()
		stopFn = nil
	}
}

// Endpoint returns the DynamoDB endpoint, starting DynamoDB Local once per
// test binary when $AWS_ENDPOINT_URL_DYNAMODB is not set. It fails the test
// (never skips) when DynamoDB Local is not installed.
func Endpoint(t testing.TB) string {
	t.Helper()
	if ep := os.Getenv(EnvEndpoint); ep != "" {
		return ep
	}
	startOnce.Do(func() { endpoint, startErr = start() })
	if startErr != nil {
		t.Fatalf("dynamotest: %v", startErr)
	}
	return endpoint
}

// RepoRoot walks up from the working directory to the directory of go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func start() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, ".cache", "dynamodb-local")
	jar := filepath.Join(dir, "DynamoDBLocal.jar")
	if _, err := os.Stat(jar); err != nil {
		return "", fmt.Errorf("DynamoDB Local is not installed (%s missing): %s", jar, installHint)
	}
	java, err := exec.LookPath("java")
	if err != nil {
		return "", fmt.Errorf("java is not installed: %s", installHint)
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(java, "-Djava.library.path="+filepath.Join(dir, "DynamoDBLocal_lib"),
		"-jar", jar, "-inMemory", "-sharedDb", "-port", fmt.Sprint(port))
	cmd.Dir = dir
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &syncWriter{w: &out}, &syncWriter{w: &out}
	// Dies with the test binary even when Main is not used.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start DynamoDB Local: %w", err)
	}
	exited := make(chan error, 1)
	done := make(chan struct{})
	go func() { exited <- cmd.Wait(); close(done) }()
	stopMu.Lock()
	stopFn = func() {
		_ = cmd.Process.Kill()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
	}
	stopMu.Unlock()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return "", fmt.Errorf("DynamoDB Local exited (%v): %s", err, out.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return "http://" + addr, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	Stop()
	return "", fmt.Errorf("DynamoDB Local did not listen on %s within 60s: %s", addr, out.String())
}

type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w.Len() < 64<<10 {
		s.w.Write(p)
	}
	return len(p), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Option configures a test client.
type Option func(*options)

type options struct {
	counter     *Counter
	faults      *Faults
	maxAttempts int
	wrap        func(http.RoundTripper) http.RoundTripper
}

// WithTransport wraps the client's transport (outermost), to observe or
// interleave its requests.
func WithTransport(wrap func(http.RoundTripper) http.RoundTripper) Option {
	return func(o *options) { o.wrap = wrap }
}

// WithCounter counts the client's requests on the wire (every attempt,
// retries included).
func WithCounter(c *Counter) Option { return func(o *options) { o.counter = c } }

// WithFaults routes the client's requests through f, which can answer them
// with throttling or leave batch items unprocessed.
func WithFaults(f *Faults) Option { return func(o *options) { o.faults = f } }

// WithMaxAttempts sets the SDK's attempts per operation (default 3, as in
// production).
func WithMaxAttempts(n int) Option { return func(o *options) { o.maxAttempts = n } }

var baseTransport = func() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 200
	t.MaxIdleConnsPerHost = 200
	return t
}()

// Client returns a DynamoDB client for the test endpoint with static fake
// credentials in us-east-1. The SDK's standard retryer is kept (so
// throttling is retried as in production) with short backoffs and no
// client-side retry quota.
func Client(t testing.TB, opts ...Option) *dynamodb.Client {
	t.Helper()
	ep := Endpoint(t)
	o := options{maxAttempts: 3}
	for _, fn := range opts {
		fn(&o)
	}
	var rt http.RoundTripper = baseTransport
	if o.faults != nil {
		rt = o.faults.wrap(rt)
	}
	if o.counter != nil {
		rt = o.counter.wrap(rt)
	}
	if o.wrap != nil {
		rt = o.wrap(rt)
	}
	return dynamodb.New(dynamodb.Options{
		Region:       Region,
		BaseEndpoint: aws.String(ep),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "dynamotest", SecretAccessKey: "dynamotest", Source: "dynamotest"}, nil
		}),
		HTTPClient: &http.Client{Transport: rt, Timeout: 30 * time.Second},
		Retryer: retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = o.maxAttempts
			so.RateLimiter = ratelimit.None
			so.Backoff = retry.BackoffDelayerFunc(func(attempt int, _ error) (time.Duration, error) {
				return time.Duration(attempt) * 5 * time.Millisecond, nil
			})
		}),
	})
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// TableOption adjusts a test table's schema.
type TableOption func(*dynamodb.CreateTableInput)

// WithStream keeps the production schema's stream. Without it a test table
// has none: DynamoDB Local keeps every record of every table's stream, and
// with streams on every table of `make test` the 10,000-account scheduler
// test alone went from seconds to over 12 minutes. Only tests that read the
// stream (the notifier's) ask for it.
func WithStream() TableOption {
	return func(in *dynamodb.CreateTableInput) {
		in.StreamSpecification = dynamo.CreateTableInput("").StreamSpecification
	}
}

// NewTable creates a fresh, uniquely named table with the production schema
// (dynamo.CreateTableInput; without its stream unless WithStream) and
// deletes it when the test ends.
func NewTable(t testing.TB, c *dynamodb.Client, opts ...TableOption) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := unsafeName.ReplaceAllString(t.Name(), "_")
	if len(name) > 200 {
		name = name[:200]
	}
	name = "t_" + name + "_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	in := dynamo.CreateTableInput(name)
	in.StreamSpecification = nil
	for _, o := range opts {
		o(in)
	}
	if err := dynamo.CreateTableFrom(ctx, c, in); err != nil {
		t.Fatalf("dynamotest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := c.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)}); err != nil {
			t.Logf("dynamotest: delete table %s: %v", name, err)
		}
	})
	return name
}
