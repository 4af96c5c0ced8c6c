package testenv_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/merchantsync/merchantsync/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// helperEnv, when set, makes TestHelperProcess start moto and report its
// endpoint; the value says how the helper then exits.
const helperEnv = "TESTENV_HELPER_EXIT"

// TestHelperProcess is not a test: TestMotoDiesWithTheBinary runs the test
// binary again with helperEnv set to see what becomes of the moto_server a
// binary starts.
func TestHelperProcess(t *testing.T) {
	how := os.Getenv(helperEnv)
	if how == "" {
		t.Skip("helper for TestMotoDiesWithTheBinary")
	}
	ep := testenv.MotoEndpoint(t)
	os.Stdout.WriteString("ENDPOINT=" + ep + "\n")
	if how == "abrupt" {
		os.Exit(0) // no Main, no StopMoto: only the parent-death signal is left
	}
}

// A binary without $MERCHANTSYNC_MOTO_ENDPOINT starts its own moto_server on
// loopback and takes it down when it exits, through Main or, when the
// binary dies without it, through the parent-death signal.
func TestMotoDiesWithTheBinary(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		t.Skip("inside the helper")
	}
	for _, how := range []string{"main", "abrupt"} {
		t.Run(how, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), helperEnv+"="+how, testenv.EnvMotoEndpoint+"=")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("helper: %v\n%s", err, out)
			}
			_, rest, ok := strings.Cut(string(out), "ENDPOINT=")
			ep, _, _ := strings.Cut(rest, "\n")
			if !ok || !strings.HasPrefix(ep, "http://127.0.0.1:") {
				t.Fatalf("helper printed no loopback endpoint:\n%s", out)
			}
			// The kill is asynchronous: wait for the port to close.
			deadline := time.Now().Add(15 * time.Second)
			for answers(ep) {
				if time.Now().After(deadline) {
					t.Fatalf("moto at %s still answers after its binary exited", ep)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

func answers(ep string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(ep + "/moto-api/config")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

func TestMotoEndpointIsLoopback(t *testing.T) {
	ep := testenv.MotoEndpoint(t)
	if !strings.HasPrefix(ep, "http://127.0.0.1:") {
		t.Fatalf("endpoint %q is not on 127.0.0.1", ep)
	}
	if d := testenv.MotoStartupTime(); d > 0 {
		t.Logf("moto_server answered %v after it was started", d)
	} else {
		t.Logf("moto at %s from $%s", ep, testenv.EnvMotoEndpoint)
	}
}

// Counter sees every attempt on the wire; FailRequests fails whole
// requests before moto sees them, and the SDK retries the 5xx ones.
func TestCounterAndFailRequests(t *testing.T) {
	ctx := context.Background()
	var count testenv.Counter
	var fail testenv.FailRequests
	c := testenv.SecretsManagerClient(t, testenv.WithTransport(count.Wrap), testenv.WithTransport(fail.Wrap))
	name := testenv.SecretPrefix(t) + "/s"
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("v1")}); err != nil {
		t.Fatal(err)
	}

	fail.Fail("GetSecretValue", "InternalServiceError", 2)
	out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	if err != nil || aws.ToString(out.SecretString) != "v1" {
		t.Fatalf("Get after 2 transient failures: %v, %v", out, err)
	}
	if n := count.Calls("GetSecretValue"); n != 3 {
		t.Errorf("GetSecretValue sent %d times, want 3 (2 failed + 1)", n)
	}

	fail.Fail("GetSecretValue", "InternalServiceError", 3)
	_, err = c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	var ise *smtypes.InternalServiceError
	if !errors.As(err, &ise) || fail.Pending("GetSecretValue") != 0 {
		t.Errorf("3 failures for 3 attempts: %v (pending %d), want InternalServiceError", err, fail.Pending("GetSecretValue"))
	}

	// A 4xx is not retried, and parses into the service's own error type.
	fail.Fail("PutSecretValue", "EncryptionFailure", 1)
	_, err = c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String("v2")})
	var ef *smtypes.EncryptionFailure
	if !errors.As(err, &ef) || count.Calls("PutSecretValue") != 1 {
		t.Errorf("PutSecretValue: %v after %d calls, want EncryptionFailure after 1", err, count.Calls("PutSecretValue"))
	}
	// The failed write never reached moto.
	if out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)}); err != nil || aws.ToString(out.SecretString) != "v1" {
		t.Errorf("value after a failed Put: %v, %v; want v1", out, err)
	}
}

// Each helper's resources are the test's own and are gone when it ends.
func TestHelpersCleanUp(t *testing.T) {
	ctx := context.Background()
	var url, dlq, prefix, bus string
	t.Run("inner", func(t *testing.T) {
		url, dlq = testenv.NewQueue(t, testenv.QueueOptions{DLQ: true})
		url2, _ := testenv.NewQueue(t, testenv.QueueOptions{})
		if url == url2 {
			t.Fatalf("two queues of one test share the URL %s", url)
		}
		prefix = testenv.SecretPrefix(t)
		sm := testenv.SecretsManagerClient(t)
		for _, n := range []string{"/live", "/scheduled"} {
			if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(prefix + n), SecretString: aws.String("x")}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(prefix + "/scheduled"), RecoveryWindowInDays: aws.Int64(7)}); err != nil {
			t.Fatal(err)
		}
		if got := testenv.SecretNames(t, prefix+"/"); len(got) != 2 {
			t.Fatalf("SecretNames = %v, want the live and the scheduled secret", got)
		}
		if got := testenv.SecretValues(t, prefix+"/"); len(got) != 1 || got[prefix+"/live"] != "x" {
			t.Fatalf("SecretValues = %v, want only the live secret", got)
		}
		bus = testenv.NewEventBus(t)
		testenv.RouteToQueue(t, bus, `{"source":["x"]}`)
	})
	sq := testenv.SQSClient(t)
	for _, u := range []string{url, dlq} {
		_, err := sq.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(u)})
		var qdne *sqstypes.QueueDoesNotExist
		if !errors.As(err, &qdne) {
			t.Errorf("queue %s after its test: %v, want QueueDoesNotExist", u, err)
		}
	}
	if got := testenv.SecretNames(t, prefix+"/"); len(got) != 0 {
		t.Errorf("secrets left after the test: %v", got)
	}
	_, err := testenv.EventBridgeClient(t).DescribeEventBus(ctx, &eventbridge.DescribeEventBusInput{Name: aws.String(bus)})
	var rnf *ebtypes.ResourceNotFoundException
	if !errors.As(err, &rnf) {
		t.Errorf("event bus %s after its test: %v, want ResourceNotFoundException", bus, err)
	}
}
