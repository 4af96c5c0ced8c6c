package testenv_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/merchantsync/merchantsync/internal/testenv"
)

func createSecret(t *testing.T, c *secretsmanager.Client, name, value string) *secretsmanager.CreateSecretOutput {
	t.Helper()
	out, err := c.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(value)})
	if err != nil {
		t.Fatalf("CreateSecret %s: %v", name, err)
	}
	return out
}

func getSecret(c *secretsmanager.Client, id string) (string, error) {
	out, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.SecretString), nil
}

func putSecret(c *secretsmanager.Client, id, value string) error {
	_, err := c.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(id), SecretString: aws.String(value)})
	return err
}

// CreateSecret keeps KmsKeyId, description and tags; a second create of the
// name is ResourceExistsException and changes nothing; Get and Put read and
// write versions, by name or ARN.
func TestSecretsCreateGetPut(t *testing.T) {
	ctx := context.Background()
	c := testenv.SecretsManagerClient(t, testenv.WithMaxAttempts(1))
	key := testenv.NewKey(t)
	name := testenv.SecretPrefix(t) + "/rakuten/tenant/conn"
	out, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String(name), SecretString: aws.String(`{"v":1}`), KmsKeyId: aws.String(key),
		Description: aws.String("merchantsync network credentials"),
		Tags:        []types.Tag{{Key: aws.String("app"), Value: aws.String("merchantsync")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(out.ARN)
	if want := "arn:aws:secretsmanager:" + testenv.Region + ":" + testenv.AccountID + ":secret:" + name + "-"; !strings.HasPrefix(arn, want) || len(arn) != len(want)+6 {
		t.Errorf("ARN %s, want %s + 6 random characters", arn, want)
	}
	d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(d.KmsKeyId) != key || aws.ToString(d.Description) != "merchantsync network credentials" ||
		len(d.Tags) != 1 || aws.ToString(d.Tags[0].Key) != "app" || aws.ToString(d.Tags[0].Value) != "merchantsync" {
		t.Errorf("DescribeSecret = KmsKeyId %q, description %q, tags %+v", aws.ToString(d.KmsKeyId), aws.ToString(d.Description), d.Tags)
	}

	_, err = c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(`{"v":2}`)})
	var exists *types.ResourceExistsException
	if !errors.As(err, &exists) {
		t.Fatalf("second CreateSecret: %v, want ResourceExistsException", err)
	}
	t.Logf("ResourceExistsException: %s", exists.ErrorMessage())
	if v, err := getSecret(c, name); err != nil || v != `{"v":1}` {
		t.Fatalf("after the refused create: %q, %v", v, err)
	}

	if err := putSecret(c, name, `{"v":3}`); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{name, arn} {
		if v, err := getSecret(c, id); err != nil || v != `{"v":3}` {
			t.Errorf("GetSecretValue(%s) = %q, %v; want the put value", id, v, err)
		}
	}
	prev, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionStage: aws.String("AWSPREVIOUS")})
	if err != nil || aws.ToString(prev.SecretString) != `{"v":1}` {
		t.Errorf("AWSPREVIOUS = %v, %v; want the first value", prev, err)
	}
	if got := testenv.SecretValues(t, testenv.SecretPrefix(t)); len(got) != 0 {
		t.Errorf("another prefix sees %v", got)
	}
}

// Concurrent creates of one name: exactly one succeeds, the others are
// ResourceExistsException (moto does not lock CreateSecret, but its check
// and insert have not been seen to interleave: 0 double creates in 150
// rounds of 16 while this was written).
func TestSecretsConcurrentCreate(t *testing.T) {
	c := testenv.SecretsManagerClient(t, testenv.WithMaxAttempts(1))
	name := testenv.SecretPrefix(t) + "/same"
	const n = 16
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := c.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(strconv.Itoa(i))})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	created := 0
	for err := range errs {
		var exists *types.ResourceExistsException
		switch {
		case err == nil:
			created++
		case !errors.As(err, &exists):
			t.Errorf("concurrent create: %v", err)
		}
	}
	if created != 1 {
		t.Errorf("%d of %d concurrent creates succeeded, want 1", created, n)
	}
}

// A forced delete removes the secret at once: every call then answers
// ResourceNotFoundException, and the name can be created again at once.
func TestSecretsForceDelete(t *testing.T) {
	ctx := context.Background()
	c := testenv.SecretsManagerClient(t, testenv.WithMaxAttempts(1))
	name := testenv.SecretPrefix(t) + "/s"
	createSecret(t, c, name, "v1")
	if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name), ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	var nf *types.ResourceNotFoundException
	if _, err := getSecret(c, name); !errors.As(err, &nf) {
		t.Errorf("Get after a forced delete: %v, want ResourceNotFoundException", err)
	}
	if err := putSecret(c, name, "v2"); !errors.As(err, &nf) {
		t.Errorf("Put after a forced delete: %v, want ResourceNotFoundException", err)
	}
	if _, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)}); !errors.As(err, &nf) {
		t.Errorf("Describe after a forced delete: %v, want ResourceNotFoundException", err)
	}
	if got := testenv.SecretNames(t, name); len(got) != 0 {
		t.Errorf("listed after a forced delete: %v", got)
	}
	createSecret(t, c, name, "v3")
	if v, err := getSecret(c, name); err != nil || v != "v3" {
		t.Errorf("Get after re-creating: %q, %v", v, err)
	}
	// A forced delete of a secret that does not exist succeeds.
	if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name + "-never"), ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
		t.Errorf("forced delete of a missing secret: %v, want success", err)
	}
	// Without force, a missing secret is not found.
	if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name + "-never")}); !errors.As(err, &nf) {
		t.Errorf("delete of a missing secret: %v, want ResourceNotFoundException", err)
	}
}

// AWS's answers about a secret scheduled for deletion, as its
// InvalidRequestException messages say them.
const (
	awsMarkedForDeletion    = "You can't perform this operation on the secret because it was marked for deletion."
	awsScheduledForDeletion = "You can't create this secret because a secret with this name is already scheduled for deletion."
)

// A secret deleted with a recovery window is "scheduled for deletion". On
// moto, as on AWS, it is listed only with IncludePlannedDeletion, its
// DeletedDate is the end of the window, GetSecretValue answers
// InvalidRequestException and RestoreSecret brings it back. Unlike AWS,
// moto words that error otherwise, lets PutSecretValue write a new version,
// and answers CreateSecret of the name with ResourceExistsException. Tests
// of AWS's answers inject them (last part).
func TestSecretsScheduledForDeletion(t *testing.T) {
	ctx := context.Background()
	c := testenv.SecretsManagerClient(t, testenv.WithMaxAttempts(1))
	prefix := testenv.SecretPrefix(t)
	name := prefix + "/s"
	created := createSecret(t, c, name, "v1")
	del, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name), RecoveryWindowInDays: aws.Int64(7)})
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil || d.DeletedDate == nil || !d.DeletedDate.Equal(aws.ToTime(del.DeletionDate)) || d.CreatedDate == nil ||
		del.DeletionDate.Sub(*d.CreatedDate).Round(time.Hour) != 7*24*time.Hour {
		t.Errorf("Describe of a scheduled secret: DeletedDate %v, %v; DeletionDate %v, CreatedDate %v", d.DeletedDate, err, del.DeletionDate, d.CreatedDate)
	}
	listed, err := c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{Filters: []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{prefix + "/"}}}})
	if err != nil || len(listed.SecretList) != 0 {
		t.Errorf("ListSecrets without IncludePlannedDeletion: %+v, %v", listed, err)
	}
	if got := testenv.SecretNames(t, prefix+"/"); len(got) != 1 || got[0] != name {
		t.Errorf("SecretNames (IncludePlannedDeletion) = %v", got)
	}

	_, err = getSecret(c, name)
	var ir *types.InvalidRequestException
	const motoMarkedDeleted = "An error occurred (InvalidRequestException) when calling the GetSecretValue operation: You tried to " +
		"                perform the operation on a secret that's currently marked deleted."
	if !errors.As(err, &ir) || ir.ErrorMessage() != motoMarkedDeleted {
		t.Errorf("Get of a scheduled secret: %v, want InvalidRequestException %q", err, motoMarkedDeleted)
	}
	_, err = c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("v3")})
	var exists *types.ResourceExistsException
	if !errors.As(err, &exists) {
		t.Errorf("Create of a scheduled name: %v, want moto's ResourceExistsException", err)
	}
	if err := putSecret(c, name, "v2"); err != nil {
		t.Errorf("Put to a scheduled secret: %v; moto used to accept it: update the package doc", err)
	}
	if _, err := c.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
	d, err = c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if v, gerr := getSecret(c, name); gerr != nil || v != "v2" || err != nil || d.DeletedDate != nil || aws.ToString(d.ARN) != aws.ToString(created.ARN) {
		t.Errorf("after RestoreSecret: %q, %v; DeletedDate %v, %v; want the value Put wrote", v, gerr, d.DeletedDate, err)
	}

	// AWS's answers, injected on the wire, reach the code as AWS sends them.
	var fail testenv.FailRequests
	fc := testenv.SecretsManagerClient(t, testenv.WithMaxAttempts(1), testenv.WithTransport(fail.Wrap))
	fail.FailWithMessage("PutSecretValue", "InvalidRequestException", awsMarkedForDeletion, 1)
	fail.FailWithMessage("CreateSecret", "InvalidRequestException", awsScheduledForDeletion, 1)
	err = putSecret(fc, name, "v4")
	if !errors.As(err, &ir) || ir.ErrorMessage() != awsMarkedForDeletion {
		t.Errorf("injected Put refusal: %v", err)
	}
	_, err = fc.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name + "-new"), SecretString: aws.String("v")})
	if !errors.As(err, &ir) || ir.ErrorMessage() != awsScheduledForDeletion {
		t.Errorf("injected Create refusal: %v", err)
	}
	if v, err := getSecret(c, name); err != nil || v != "v2" || len(testenv.SecretNames(t, name+"-new")) != 0 {
		t.Errorf("injected failures changed moto: %q, %v", v, err)
	}
}

// moto validates no secret name (characters or length), no value size and
// no KmsKeyId: AWS refuses all of these. Tests of those limits belong to the
// code's own checks (secrets.Store validates names before calling), counted
// with a Counter to show that no request was sent.
func TestSecretsNoValidation(t *testing.T) {
	ctx := context.Background()
	c := testenv.SecretsManagerClient(t, testenv.WithMaxAttempts(1))
	prefix := testenv.SecretPrefix(t) + "/"
	for _, tc := range []struct{ what, name, value, kmsKey string }{
		{"a name with '|'", prefix + "a|b", "x", ""},
		{"a name with a space", prefix + "a b", "x", ""},
		{"a name with '#'", prefix + "a#b", "x", ""},
		{"a name with ','", prefix + "a,b", "x", ""},
		{"a non-ASCII name", prefix + "ü", "x", ""},
		{"a name with NUL", prefix + "a\x00", "x", ""},
		{"a 513-character name", prefix + strings.Repeat("a", 513-len(prefix)), "x", ""},
		{"a 65,537-byte value", prefix + "big", strings.Repeat("a", 65537), ""},
		{"a KMS alias that does not exist", prefix + "kms", "x", "alias/testenv-does-not-exist"},
	} {
		_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(tc.name), SecretString: aws.String(tc.value), KmsKeyId: optional(tc.kmsKey)})
		if err != nil {
			t.Errorf("%s: %v; moto used to accept it: update the package doc", tc.what, err)
		}
	}
	// It does check a ClientRequestToken's length.
	_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(prefix + "tok"), SecretString: aws.String("x"), ClientRequestToken: aws.String("short")})
	var ip *types.InvalidParameterException
	if !errors.As(err, &ip) {
		t.Errorf("a 5-character ClientRequestToken: %v, want InvalidParameterException", err)
	}
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
