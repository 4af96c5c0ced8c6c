package testenv

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/merchantsync/merchantsync/internal/dynamo/dynamotest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// EnvMotoEndpoint names the environment variable of an already running moto
// server (infra/scripts/test.sh starts one for the whole run).
const EnvMotoEndpoint = "MERCHANTSYNC_MOTO_ENDPOINT"

// Region is the region of every client; AccountID is moto's default
// account, which appears in every ARN and queue URL moto hands out.
const (
	Region    = "us-east-1"
	AccountID = "123456789012"
)

// MotoVersion is the moto release the harness is written and proved against
// (infra/scripts/moto-requirements.txt pins it).
const MotoVersion = "5.2.1"

const motoInstallHint = "run infra/scripts/install-moto.sh (make deps), or set " + EnvMotoEndpoint

var moto = &localServer{name: "moto_server", start: startMoto}

// Main runs the tests, then stops every server the binary started (moto,
// and DynamoDB Local through dynamotest):
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	dynamotest.Stop()
	os.Exit(code)
}

// MotoEndpoint returns the moto endpoint ("http://127.0.0.1:port"): the one
// in $MERCHANTSYNC_MOTO_ENDPOINT, or else a moto_server this test binary
// starts once, on a free loopback port. A missing moto fails the test: a
// skipped integration test would pass for the wrong reason.
func MotoEndpoint(t testing.TB) string {
	t.Helper()
	if ep := os.Getenv(EnvMotoEndpoint); ep != "" {
		return strings.TrimSuffix(ep, "/")
	}
	ep, err := moto.endpoint()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return ep
}

// MotoStartupTime is how long the moto_server this binary started took to
// answer: zero when it started none ($MERCHANTSYNC_MOTO_ENDPOINT).
func MotoStartupTime() time.Duration { return moto.startupTime() }

// motoCommand finds moto_server: the virtualenv install-moto.sh makes where
// the machine lacks moto, else the one on PATH.
func motoCommand() (string, error) {
	if root, err := dynamotest.RepoRoot(); err == nil {
		venv := filepath.Join(root, ".cache", "moto", "bin", "moto_server")
		if _, err := os.Stat(venv); err == nil {
			return venv, nil
		}
	}
	if p, err := exec.LookPath("moto_server"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("moto_server is not installed: %s", motoInstallHint)
}

// checkMotoVersion refuses a moto other than MotoVersion: the tests prove
// that release's behaviour, differences from AWS included. It asks the
// Python beside moto_server (a virtualenv's or pyenv's bin directory has
// one); where there is none, it cannot tell and lets it be.
func checkMotoVersion(bin string) error {
	py := filepath.Join(filepath.Dir(bin), "python3")
	if _, err := os.Stat(py); err != nil {
		return nil
	}
	out, err := exec.Command(py, "-c", "import importlib.metadata as m; print(m.version('moto'))").Output()
	if err != nil {
		return fmt.Errorf("cannot read the version of the moto beside %s (%v): %s", bin, err, motoInstallHint)
	}
	if v := strings.TrimSpace(string(out)); v != MotoVersion {
		return fmt.Errorf("%s is moto %s, want %s: %s", bin, v, MotoVersion, motoInstallHint)
	}
	return nil
}

func startMoto(port int) (*exec.Cmd, func(endpoint string) bool, error) {
	bin, err := motoCommand()
	if err != nil {
		return nil, nil, err
	}
	if err := checkMotoVersion(bin); err != nil {
		return nil, nil, err
	}
	// Loopback only: moto accepts any credentials.
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Env = motoEnv(os.Environ(), port)
	return cmd, motoAnswers, nil
}

// motoEnv pins moto's behaviour whatever the caller's environment says: no
// MOTO_* settings (MOTO_ACCOUNT_ID would move every resource to another
// account, MOTO_ENABLE_RECORDING would log every request), no IAM
// enforcement (INITIAL_NO_AUTH_ACTION_COUNT), and MOTO_PORT matching the
// port, as moto_server would set it itself.
func motoEnv(env []string, port int) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "MOTO_") || k == "INITIAL_NO_AUTH_ACTION_COUNT" || k == "TEST_SERVER_MODE" || k == "TEST_PROXY_MODE" {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "MOTO_PORT="+strconv.Itoa(port))
}

// motoAnswers reports whether a moto server answers at ep: its
// configuration endpoint answers 201 with a JSON document, which no other
// server on a reused port would.
func motoAnswers(ep string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(ep + "/moto-api/config")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode == http.StatusCreated && strings.HasPrefix(string(b), "{")
}

// Option configures a client.
type Option func(*clientOptions)

type clientOptions struct {
	wraps       []func(http.RoundTripper) http.RoundTripper
	maxAttempts int
}

// WithTransport wraps the client's HTTP transport, to count, delay or fail
// its requests on the wire (see Counter and FailRequests). Given several
// times, the first given is the outermost.
func WithTransport(wrap func(http.RoundTripper) http.RoundTripper) Option {
	return func(o *clientOptions) { o.wraps = append(o.wraps, wrap) }
}

// WithMaxAttempts sets the SDK's attempts per operation (default 3, the
// SDK's and production's default); 1 turns retries off.
func WithMaxAttempts(n int) Option { return func(o *clientOptions) { o.maxAttempts = n } }

var baseTransport = func() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 100
	t.MaxIdleConnsPerHost = 100
	return t
}()

// Config returns an aws.Config for moto: static test credentials, Region,
// moto's endpoint for every service, the standard retryer with short
// backoffs and no client-side retry quota (so injected failures are retried
// as in production without exhausting the quota across tests).
func Config(t testing.TB, opts ...Option) aws.Config {
	t.Helper()
	ep := MotoEndpoint(t)
	o := clientOptions{maxAttempts: 3}
	for _, fn := range opts {
		fn(&o)
	}
	var rt http.RoundTripper = baseTransport
	for i := len(o.wraps) - 1; i >= 0; i-- {
		rt = o.wraps[i](rt)
	}
	return aws.Config{
		Region:       Region,
		BaseEndpoint: aws.String(ep),
		Credentials:  credentials.NewStaticCredentialsProvider("testenv", "testenv", ""),
		// Longer than SQS's longest poll (20 s).
		HTTPClient: &http.Client{Transport: rt, Timeout: time.Minute},
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = o.maxAttempts
				so.RateLimiter = ratelimit.None
				so.Backoff = retry.BackoffDelayerFunc(func(attempt int, _ error) (time.Duration, error) {
					return time.Duration(attempt) * 5 * time.Millisecond, nil
				})
			})
		},
	}
}

// SQSClient returns a real SQS client bound to moto.
func SQSClient(t testing.TB, opts ...Option) *sqs.Client {
	t.Helper()
	return sqs.NewFromConfig(Config(t, opts...))
}

// SecretsManagerClient returns a real Secrets Manager client bound to moto.
func SecretsManagerClient(t testing.TB, opts ...Option) *secretsmanager.Client {
	t.Helper()
	return secretsmanager.NewFromConfig(Config(t, opts...))
}

// EventBridgeClient returns a real EventBridge client bound to moto.
func EventBridgeClient(t testing.TB, opts ...Option) *eventbridge.Client {
	t.Helper()
	return eventbridge.NewFromConfig(Config(t, opts...))
}

// KMSClient returns a real KMS client bound to moto.
func KMSClient(t testing.TB, opts ...Option) *kms.Client {
	t.Helper()
	return kms.NewFromConfig(Config(t, opts...))
}

// opCtx bounds a helper's own calls, so that a hung server fails the test
// rather than running into the whole run's timeout.
func opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Minute)
}

// MotoPython returns the Python that runs moto_server (the virtualenv's or
// pyenv's beside it, else python3 on PATH), for tests that use moto's code
// directly.
func MotoPython() (string, error) {
	bin, err := motoCommand()
	if err != nil {
		return "", err
	}
	if py := filepath.Join(filepath.Dir(bin), "python3"); fileExists(py) {
		return py, nil
	}
	return exec.LookPath("python3")
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
