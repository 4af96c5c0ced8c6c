package secrets_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/secrets"
	"github.com/merchantsync/merchantsync/internal/testenv"
)

const prefix = "merchantsync/test"

func TestMain(m *testing.M) { testenv.Main(m) }

// conn is the connection id of every secret these tests store.
const conn = "20260101T000000.000Z-0123456789"

// smEnv is Secrets Manager on moto for one test: a prefix of its own, and
// the store's requests counted and failable on the wire.
type smEnv struct {
	t      *testing.T
	prefix string
	calls  *testenv.Counter
	fail   *testenv.FailRequests
	plain  *secretsmanager.Client
}

// newStore returns a store on moto (one attempt per call, so injected
// failures show), the test's Secrets Manager and a plain client.
func newStore(t *testing.T) (*secrets.Store, *smEnv, *secretsmanager.Client) {
	t.Helper()
	e := &smEnv{t: t, prefix: testenv.SecretPrefix(t), calls: &testenv.Counter{}, fail: &testenv.FailRequests{}}
	client := testenv.SecretsManagerClient(t, testenv.WithMaxAttempts(1), testenv.WithTransport(func(next http.RoundTripper) http.RoundTripper {
		return e.calls.Wrap(e.fail.Wrap(next))
	}))
	e.plain = testenv.SecretsManagerClient(t)
	return secrets.New(client, e.prefix, "alias/merchantsync-test"), e, e.plain
}

// All returns every secret of the test, by name.
func (e *smEnv) All() map[string]string { return testenv.SecretValues(e.t, e.prefix+"/") }

// Calls counts the store's requests of op.
func (e *smEnv) Calls(op string) int { return e.calls.Calls(op) }

// InjectError answers the store's next n requests of op with the AWS error code.
func (e *smEnv) InjectError(op, code string, n int) { e.fail.Fail(op, code, n) }

// describe returns the secret's KMS key id and tags as Secrets Manager keeps them.
func (e *smEnv) describe(name string) (string, map[string]string) {
	e.t.Helper()
	out, err := e.plain.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil {
		e.t.Fatalf("DescribeSecret %s: %v", name, err)
	}
	tags := map[string]string{}
	for _, tg := range out.Tags {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	return aws.ToString(out.KmsKeyId), tags
}

func sample(n int) merchantsync.Credentials {
	return merchantsync.Credentials{
		ClientID:     fmt.Sprintf("client-id-%d", n),
		ClientSecret: fmt.Sprintf("CLIENT-SECRET-VALUE-%d", n),
		SiteID:       "3456789",
		RefreshToken: fmt.Sprintf("REFRESH-TOKEN-VALUE-%d", n),
		AccessToken:  fmt.Sprintf("ACCESS-TOKEN-VALUE-%d", n),
		AccessExpiry: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
		AuthScheme:   secrets.AuthBasic,
		UpdatedAt:    time.Date(2029, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

func TestPutGetDeleteRoundTrip(t *testing.T) {
	ctx := context.Background()
	st, fake, _ := newStore(t)
	tenant, net := "auth0|abc123", merchantsync.NetworkRakuten

	want := sample(1)
	if err := st.CreateCredentials(ctx, merchantsync.ConnectionKey{TenantID: tenant, Network: net, ID: conn}, want); err != nil {
		t.Fatalf("Put: %v", err)
	}
	got, err := st.GetCredentials(ctx, merchantsync.ConnectionKey{TenantID: tenant, Network: net, ID: conn})
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if *got != want {
		t.Fatalf("Get = %#v, want %#v", *got, want) // redacted by GoString, still shows which differ
	}
	name := st.Name(tenant, net, conn)
	if _, ok := fake.All()[name]; !ok {
		t.Fatalf("fake has no secret %q: %v", name, keys(fake.All()))
	}
	k, tags := fake.describe(name)
	if k != "alias/merchantsync-test" {
		t.Errorf("KmsKeyId = %q", k)
	}
	if len(tags) != 1 || tags["app"] != "merchantsync" {
		t.Errorf("tags = %v, want only app=merchantsync (no tenant tags)", tags)
	}

	// Creating the same connection again is refused and changes nothing.
	err = st.CreateCredentials(ctx, merchantsync.ConnectionKey{TenantID: tenant, Network: net, ID: conn}, sample(2))
	if merchantsync.ErrorCode(err) != merchantsync.EConflict {
		t.Fatalf("second Create of one connection: %v, want %s", err, merchantsync.EConflict)
	}
	if got, err = st.GetCredentials(ctx, merchantsync.ConnectionKey{TenantID: tenant, Network: net, ID: conn}); err != nil || *got != want {
		t.Fatalf("Get after a refused Create = %v, %v", got, err)
	}
	if c, p := fake.Calls("CreateSecret"), fake.Calls("PutSecretValue"); c != 2 || p != 0 {
		t.Errorf("CreateSecret=%d PutSecretValue=%d, want 2 and 0", c, p)
	}

	// Update writes without creating.
	want3 := sample(3)
	if err := st.UpdateCredentials(ctx, merchantsync.ConnectionKey{TenantID: tenant, Network: net, ID: conn}, want3); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if got, _ = st.GetCredentials(ctx, merchantsync.ConnectionKey{TenantID: tenant, Network: net, ID: conn}); got == nil || *got != want3 {
		t.Fatalf("Get after Update = %v", got)
	}

	if err := st.DeleteCredentials(ctx, merchantsync.ConnectionKey{TenantID: tenant, Network: net, ID: conn}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if len(fake.All()) != 0 {
		t.Fatalf("secret still stored after Delete: %v", keys(fake.All()))
	}
	_, err = st.GetCredentials(ctx, merchantsync.ConnectionKey{TenantID: tenant, Network: net, ID: conn})
	if merchantsync.ErrorCode(err) != merchantsync.ENotConnected {
		t.Fatalf("Get after Delete: %v, want %s", err, merchantsync.ENotConnected)
	}
	// Deleting again is fine.
	if err := st.DeleteCredentials(ctx, merchantsync.ConnectionKey{TenantID: tenant, Network: net, ID: conn}); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
}

func TestUpdatedAtDefaultsToNow(t *testing.T) {
	ctx := context.Background()
	st, _, _ := newStore(t)
	now := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	st.Now = func() time.Time { return now }
	sec := sample(1)
	sec.UpdatedAt = time.Time{}
	if err := st.CreateCredentials(ctx, merchantsync.ConnectionKey{TenantID: "t1", Network: "rakuten", ID: conn}, sec); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetCredentials(ctx, merchantsync.ConnectionKey{TenantID: "t1", Network: "rakuten", ID: conn})
	if err != nil || !got.UpdatedAt.Equal(now) {
		t.Fatalf("UpdatedAt = %v, %v; want %v", got, err, now)
	}
}

func TestDeleteThenPutAgainAtOnce(t *testing.T) {
	ctx := context.Background()
	st, fake, client := newStore(t)
	if err := st.CreateCredentials(ctx, merchantsync.ConnectionKey{TenantID: "tenant-1", Network: "rakuten", ID: conn}, sample(1)); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteCredentials(ctx, merchantsync.ConnectionKey{TenantID: "tenant-1", Network: "rakuten", ID: conn}); err != nil {
		t.Fatal(err)
	}
	// Not merely scheduled for deletion: gone.
	_, err := client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(st.Name("tenant-1", "rakuten", conn))})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("DescribeSecret after Delete: %v, want ResourceNotFoundException", err)
	}
	before := fake.Calls("CreateSecret")
	if err := st.CreateCredentials(ctx, merchantsync.ConnectionKey{TenantID: "tenant-1", Network: "rakuten", ID: conn}, sample(2)); err != nil {
		t.Fatalf("Put right after Delete: %v", err)
	}
	if n := fake.Calls("CreateSecret") - before; n != 1 {
		t.Errorf("reconnect took %d CreateSecret calls, want 1", n)
	}
	got, err := st.GetCredentials(ctx, merchantsync.ConnectionKey{TenantID: "tenant-1", Network: "rakuten", ID: conn})
	if err != nil || *got != sample(2) {
		t.Fatalf("Get = %v, %v", got, err)
	}
}

// A secret scheduled for deletion (as a force delete is, briefly, in AWS)
// is not connected to Get, and an ended connection to Update.
func TestScheduledForDeletion(t *testing.T) {
	ctx := context.Background()
	st, fake, client := newStore(t)
	name := st.Name("t2", "rakuten", conn)
	if err := st.CreateCredentials(ctx, merchantsync.ConnectionKey{TenantID: "t2", Network: "rakuten", ID: conn}, sample(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name), RecoveryWindowInDays: aws.Int64(7)}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetCredentials(ctx, merchantsync.ConnectionKey{TenantID: "t2", Network: "rakuten", ID: conn}); merchantsync.ErrorCode(err) != merchantsync.ENotConnected {
		t.Fatalf("Get of a scheduled secret: %v", err)
	}
	// moto writes a version into a secret scheduled for deletion; AWS
	// refuses with this answer, which is what the store must understand.
	fake.fail.FailWithMessage("PutSecretValue", "InvalidRequestException",
		"You can't perform this operation on the secret because it was marked for deletion.", 1)
	if err := st.UpdateCredentials(ctx, merchantsync.ConnectionKey{TenantID: "t2", Network: "rakuten", ID: conn}, sample(2)); merchantsync.ErrorCode(err) != merchantsync.EConnectionChanged {
		t.Fatalf("Update of a scheduled secret: %v", err)
	}
}

// Concurrent connects create one secret each; the same connection id twice
// at once is created exactly once.
func TestConcurrentCreates(t *testing.T) {
	ctx := context.Background()
	st, fake, _ := newStore(t)
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Go(func() {
			errs <- st.CreateCredentials(ctx, merchantsync.ConnectionKey{TenantID: "racer", Network: "rakuten", ID: fmt.Sprintf("conn-%02d", i)}, sample(i))
		})
		wg.Go(func() {
			errs <- st.CreateCredentials(ctx, merchantsync.ConnectionKey{TenantID: "same", Network: "rakuten", ID: conn}, sample(i))
		})
	}
	wg.Wait()
	close(errs)
	conflicts := 0
	for err := range errs {
		switch merchantsync.ErrorCode(err) {
		case "":
		case merchantsync.EConflict:
			conflicts++
		default:
			t.Fatalf("concurrent Create: %v", err)
		}
	}
	if conflicts != n-1 || len(fake.All()) != n+1 {
		t.Fatalf("%d conflicts, %d secrets; want %d and %d", conflicts, len(fake.All()), n-1, n+1)
	}
}

func TestUpdateNeverCreates(t *testing.T) {
	ctx := context.Background()
	st, fake, _ := newStore(t)
	err := st.UpdateCredentials(ctx, merchantsync.ConnectionKey{TenantID: "gone", Network: "rakuten", ID: conn}, sample(1))
	if merchantsync.ErrorCode(err) != merchantsync.EConnectionChanged {
		t.Fatalf("Update of a missing secret: %v, want %s", err, merchantsync.EConnectionChanged)
	}
	if fake.Calls("CreateSecret") != 0 || len(fake.All()) != 0 {
		t.Fatalf("Update created a secret")
	}
}

func TestGetMissingIsNotConnected(t *testing.T) {
	st, _, _ := newStore(t)
	_, err := st.GetCredentials(context.Background(), merchantsync.ConnectionKey{TenantID: "nobody", Network: "rakuten", ID: conn})
	if merchantsync.ErrorCode(err) != merchantsync.ENotConnected {
		t.Fatalf("Get: %v, want %s", err, merchantsync.ENotConnected)
	}
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		t.Errorf("the AWS error should be translated, got %v", err)
	}
}

var awsName = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]{1,512}$`)

func TestNameTrickyTenants(t *testing.T) {
	ctx := context.Background()
	st, fake, _ := newStore(t)
	long := strings.Repeat("é|", 400) // 1,200 bytes
	tenants := []string{
		"auth0|abc", "auth0_abc", "auth0%7Cabc", "google-oauth2|1234567890",
		"a#b", "a/b", "a b", "a+b", "a=b", "ü", "日本語", "🙂",
		"x-", "x-61", "X-61", "x-7c", "a", "A", "ab.cd@ef-gh",
		"", // rejected
		strings.Repeat("a", 128), strings.Repeat("a", 129), strings.Repeat("b", 600),
		long, long + "x", "x-" + strings.Repeat("0", 126),
		"x-sha256-" + strings.Repeat("0", 64),
		"\x00", "\n", "..", "../../etc",
	}
	seen := map[string]string{}
	for _, tenant := range tenants {
		name := st.Name(tenant, "rakuten", conn)
		if tenant == "" {
			if err := st.CreateCredentials(ctx, merchantsync.ConnectionKey{TenantID: tenant, Network: "rakuten", ID: conn}, sample(0)); err == nil {
				t.Errorf("Put with empty tenant succeeded")
			}
			continue
		}
		if !awsName.MatchString(name) {
			t.Errorf("Name(%q) = %q is not a valid secret name", tenant, name)
		}
		if !strings.HasPrefix(name, fake.prefix+"/rakuten/") {
			t.Errorf("Name(%q) = %q lacks prefix", tenant, name)
		}
		if other, dup := seen[name]; dup {
			t.Errorf("Name collision: %q and %q → %q", other, tenant, name)
		}
		seen[name] = tenant
		// And through the real SDK client and the validating fake.
		sec := sample(len(seen))
		if err := st.CreateCredentials(ctx, merchantsync.ConnectionKey{TenantID: tenant, Network: "rakuten", ID: conn}, sec); err != nil {
			t.Errorf("Put(%q): %v", tenant, err)
			continue
		}
		if got, err := st.GetCredentials(ctx, merchantsync.ConnectionKey{TenantID: tenant, Network: "rakuten", ID: conn}); err != nil || *got != sec {
			t.Errorf("Get(%q) = %v, %v", tenant, got, err)
		}
	}
	if len(fake.All()) != len(seen) {
		t.Errorf("fake holds %d secrets, want %d", len(fake.All()), len(seen))
	}
	// Plain ids stay readable.
	named := secrets.New(nil, prefix, "")
	if got := named.Name("auth0_abc", "rakuten", conn); got != prefix+"/rakuten/auth0_abc/"+conn {
		t.Errorf("Name(auth0_abc) = %q", got)
	}
	if got := named.Name("auth0|abc", "rakuten", conn); got != prefix+"/rakuten/x-"+fmt.Sprintf("%x", "auth0|abc")+"/"+conn {
		t.Errorf("Name(auth0|abc) = %q", got)
	}
	// A bad network id is refused before any call.
	if err := st.CreateCredentials(ctx, merchantsync.ConnectionKey{TenantID: "t", Network: "Rakuten/../x", ID: conn}, sample(0)); err == nil {
		t.Errorf("Put with a bad network id succeeded")
	}
}

// FuzzName checks, on pairs of tenant ids the fuzzer makes up, that every
// name is a valid AWS secret name ([A-Za-z0-9/_+=.@-], at most 512) under
// prefix/rakuten/, and that different tenants never share a name.
func FuzzName(f *testing.F) {
	st := secrets.New(nil, prefix, "")
	long := strings.Repeat("a", 129)
	f.Add("auth0|abc", "x-6175746830")
	f.Add("x-61", "a")
	f.Add("ab", "x-6162")
	f.Add("X-61", "a")
	f.Add("demo-tenant", "google-oauth2|1234567890")
	f.Add("a@b.c", "a/b")
	f.Add("x-sha256-00", "ü")
	f.Add(strings.Repeat("a", 128), long)
	f.Add(long, long+"b")
	f.Add(strings.Repeat("\xff", 200), strings.Repeat("é", 64))
	f.Add("..", ".")
	f.Add("a\x00", "a")
	f.Fuzz(func(t *testing.T, a, b string) {
		if a == "" || b == "" {
			return
		}
		na, nb := st.Name(a, "rakuten", conn), st.Name(b, "rakuten", conn)
		for _, n := range []struct{ tenant, name string }{{a, na}, {b, nb}} {
			if !awsName.MatchString(n.name) || len(n.name) > secrets.MaxNameLength {
				t.Fatalf("Name(%q) = %q invalid", n.tenant, n.name)
			}
			part, ok := strings.CutPrefix(n.name, prefix+"/rakuten/")
			part, ok2 := strings.CutSuffix(part, "/"+conn)
			if !ok || !ok2 || part == "" || strings.Contains(part, "/") {
				t.Fatalf("Name(%q) = %q: not one name under %s/rakuten/", n.tenant, n.name, prefix)
			}
		}
		if a != b && na == nb {
			t.Fatalf("collision: %q and %q → %q", a, b, na)
		}
	})
}

// TestInvalidNamesNeverSent: a name Secrets Manager would refuse is refused
// by the store before any request (moto validates no name, so the store's
// own checks are what keeps one from going out).
func TestInvalidNamesNeverSent(t *testing.T) {
	ctx := context.Background()
	_, e, _ := newStore(t)
	client := testenv.SecretsManagerClient(t, testenv.WithTransport(e.calls.Wrap))
	for _, prefix := range []string{"merchant sync", "a|b", strings.Repeat("p", 513)} {
		bad := secrets.New(client, prefix, "")
		if err := bad.CreateCredentials(ctx, merchantsync.ConnectionKey{TenantID: "t", Network: "rakuten", ID: conn}, sample(0)); err == nil {
			t.Errorf("Create with the prefix %q succeeded", prefix)
		}
	}
	st := secrets.New(client, e.prefix, "")
	big := sample(0)
	big.AccessToken = strings.Repeat("a", 65537)
	if err := st.CreateCredentials(ctx, merchantsync.ConnectionKey{TenantID: "t", Network: "rakuten", ID: conn}, big); err == nil {
		t.Errorf("Create of a value over 65,536 bytes succeeded")
	}
	if n := e.Calls("CreateSecret"); n != 0 {
		t.Fatalf("%d requests went out", n)
	}
}

// Errors never contain the secret's values, whatever fails.
func TestErrorsNeverContainSecretValues(t *testing.T) {
	ctx := context.Background()
	st, fake, client := newStore(t)
	sec := sample(7)
	values := []string{sec.ClientSecret, sec.RefreshToken, sec.AccessToken, sec.ClientID}
	var errs []error
	check := func(err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("expected an error")
		}
		errs = append(errs, err)
	}

	fake.InjectError("CreateSecret", "InternalServiceError", 1)
	check(st.CreateCredentials(ctx, merchantsync.ConnectionKey{TenantID: "leak", Network: "rakuten", ID: conn}, sec))
	if err := st.CreateCredentials(ctx, merchantsync.ConnectionKey{TenantID: "leak", Network: "rakuten", ID: conn}, sec); err != nil {
		t.Fatal(err)
	}
	fake.InjectError("CreateSecret", "LimitExceededException", 1)
	check(st.CreateCredentials(ctx, merchantsync.ConnectionKey{TenantID: "leak", Network: "rakuten", ID: "other"}, sec))
	check(st.CreateCredentials(ctx, merchantsync.ConnectionKey{TenantID: "leak", Network: "rakuten", ID: conn}, sec)) // exists
	fake.InjectError("PutSecretValue", "EncryptionFailure", 1)
	check(st.UpdateCredentials(ctx, merchantsync.ConnectionKey{TenantID: "leak", Network: "rakuten", ID: conn}, sec))
	fake.InjectError("GetSecretValue", "DecryptionFailure", 1)
	_, err := st.GetCredentials(ctx, merchantsync.ConnectionKey{TenantID: "leak", Network: "rakuten", ID: conn})
	check(err)
	bad := sec
	bad.AuthScheme = "Digest " + sec.ClientSecret
	check(st.CreateCredentials(ctx, merchantsync.ConnectionKey{TenantID: "leak", Network: "rakuten", ID: conn}, bad))
	huge := sec
	huge.AccessToken = strings.Repeat(sec.AccessToken, 5000)
	check(st.CreateCredentials(ctx, merchantsync.ConnectionKey{TenantID: "leak", Network: "rakuten", ID: conn}, huge))

	// A corrupted secret: the decoder's error would quote it.
	for _, raw := range []string{
		`{"clientSecret": "` + sec.ClientSecret + `", "accessExpiry": "` + sec.RefreshToken + `"}`,
		sec.ClientSecret + `{`,
		`{"clientSecret": ` + sec.ClientSecret + `}`,
	} {
		if _, err := client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(st.Name("leak", "rakuten", conn)), SecretString: aws.String(raw)}); err != nil {
			t.Fatal(err)
		}
		_, err := st.GetCredentials(ctx, merchantsync.ConnectionKey{TenantID: "leak", Network: "rakuten", ID: conn})
		if !errors.Is(err, secrets.ErrMalformed) {
			t.Fatalf("Get of corrupted secret: %v, want ErrMalformed", err)
		}
		check(err)
	}

	for _, err := range errs {
		for _, v := range values {
			if strings.Contains(err.Error(), v) || strings.Contains(fmt.Sprintf("%+v", err), v) {
				t.Errorf("error %q contains a secret value", err)
			}
		}
	}

	// Printing or logging a Secret leaks nothing either.
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "secret", sec)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "secret", sec, "ptr", &sec)
	out := fmt.Sprintf("%v %+v %#v %s %v", sec, sec, sec, sec, &sec) + buf.String()
	for _, v := range values {
		if strings.Contains(out, v) {
			t.Errorf("formatted secret leaks %q: %s", v, out)
		}
	}
	if !strings.Contains(out, "[REDACTED]") {
		t.Errorf("formatted secret shows no redaction: %s", out)
	}
}

func TestSDKRetriesInjectedServerErrors(t *testing.T) {
	calls, fail := &testenv.Counter{}, &testenv.FailRequests{}
	client := testenv.SecretsManagerClient(t, testenv.WithTransport(func(next http.RoundTripper) http.RoundTripper {
		return calls.Wrap(fail.Wrap(next))
	}))
	st := secrets.New(client, testenv.SecretPrefix(t), "")
	ctx := context.Background()
	if err := st.CreateCredentials(ctx, merchantsync.ConnectionKey{TenantID: "t", Network: "rakuten", ID: conn}, sample(1)); err != nil {
		t.Fatal(err)
	}
	fail.Fail("GetSecretValue", "InternalServiceError", 2)
	if _, err := st.GetCredentials(ctx, merchantsync.ConnectionKey{TenantID: "t", Network: "rakuten", ID: conn}); err != nil {
		t.Fatalf("Get with 2 transient failures: %v", err)
	}
	if n := calls.Calls("GetSecretValue"); n != 3 {
		t.Errorf("GetSecretValue calls = %d, want 3", n)
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestConnectionsAreFenced: each connection has a secret of its own, so a
// write for a connection that ended (a sync saving a rotated token after the
// publisher reconnected) can neither overwrite the new connection's
// credentials nor bring the old ones back.
func TestConnectionsAreFenced(t *testing.T) {
	ctx := context.Background()
	st, fake, _ := newStore(t)
	const old, cur = "20260101T000000.000Z-000000000a", "20260102T000000.000Z-000000000b"
	if st.Name("t1", "rakuten", old) == st.Name("t1", "rakuten", cur) {
		t.Fatal("two connections share a secret name")
	}
	if err := st.CreateCredentials(ctx, merchantsync.ConnectionKey{TenantID: "t1", Network: "rakuten", ID: old}, sample(1)); err != nil {
		t.Fatal(err)
	}
	// Reconnect: the new connection's secret, then the old one deleted.
	if err := st.CreateCredentials(ctx, merchantsync.ConnectionKey{TenantID: "t1", Network: "rakuten", ID: cur}, sample(2)); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteCredentials(ctx, merchantsync.ConnectionKey{TenantID: "t1", Network: "rakuten", ID: old}); err != nil {
		t.Fatal(err)
	}
	// A sync of the old connection saves its rotated token: refused.
	err := st.UpdateCredentials(ctx, merchantsync.ConnectionKey{TenantID: "t1", Network: "rakuten", ID: old}, sample(3))
	if merchantsync.ErrorCode(err) != merchantsync.EConnectionChanged {
		t.Fatalf("Update of an ended connection: %v, want %s", err, merchantsync.EConnectionChanged)
	}
	if got, err := st.GetCredentials(ctx, merchantsync.ConnectionKey{TenantID: "t1", Network: "rakuten", ID: cur}); err != nil || *got != sample(2) {
		t.Fatalf("the current connection's secret after a stale Update: %v, %v", got, err)
	}
	if _, err := st.GetCredentials(ctx, merchantsync.ConnectionKey{TenantID: "t1", Network: "rakuten", ID: old}); merchantsync.ErrorCode(err) != merchantsync.ENotConnected {
		t.Fatalf("the ended connection's secret came back: %v", err)
	}
	if n := len(fake.All()); n != 1 {
		t.Fatalf("fake holds %d secrets, want only the current connection's", n)
	}
	// A connection id that is not a simple name segment is refused before any call.
	for _, bad := range []string{"", "a/b", "../x", strings.Repeat("a", 65)} {
		if err := st.CreateCredentials(ctx, merchantsync.ConnectionKey{TenantID: "t1", Network: "rakuten", ID: bad}, sample(0)); err == nil {
			t.Errorf("Put with connection id %q succeeded", bad)
		}
	}
}
