// Package secrets is merchantsync's CredentialStore on AWS Secrets Manager:
// one secret per connection of a tenant's network account, named under a
// stack prefix (merchantsync/<stage>/<network>/<tenant>/<connection>),
// holding a JSON document.
//
// Nothing here ever puts a secret value into an error or a log line:
// errors name the secret, never its contents.
package secrets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// Auth schemes a token request can use; Credentials.AuthScheme records the
// one that worked.
const (
	AuthBasic  = "Basic"
	AuthBearer = "Bearer"
)

// document is the JSON a secret holds: merchantsync.Credentials with
// stable field names (they are read back by every later version).
type document struct {
	ClientID     string    `json:"clientId"`
	ClientSecret string    `json:"clientSecret"`
	SiteID       string    `json:"siteId,omitempty"`
	RefreshToken string    `json:"refreshToken,omitempty"`
	AccessToken  string    `json:"accessToken,omitempty"`
	AccessExpiry time.Time `json:"accessExpiry,omitzero"`
	AuthScheme   string    `json:"authScheme,omitempty"` // AuthBasic or AuthBearer
	UpdatedAt    time.Time `json:"updatedAt,omitzero"`
}

// maxSecretSize is Secrets Manager's limit on SecretString (bytes).
const maxSecretSize = 65536

// MaxNameLength is Secrets Manager's limit on a secret name.
const MaxNameLength = 512

var (
	// rawTenant is a tenant id usable as is inside a secret name.
	rawTenant = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,128}$`)
	// validName is what Secrets Manager accepts as a secret name.
	validName = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]+$`)
	// validNetwork keeps network ids to simple path segments.
	validNetwork = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
	// validConn is a connection id (merchantsync.NewConnectionID).
	validConn = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// maxHexTenant is the longest tenant id (bytes) encoded as hex; longer ones
// are hashed so that names stay well inside MaxNameLength.
const maxHexTenant = 128

// Store reads and writes tenants' secrets.
type Store struct {
	client   *secretsmanager.Client
	prefix   string
	kmsKeyID string

	// Now is the clock for UpdatedAt; nil means time.Now.
	Now func() time.Time
}

// New returns a Store that names secrets prefix/<network>/<tenant>
// (prefix like "merchantsync/dev", without a trailing slash) and encrypts
// new secrets with kmsKeyID (empty: the account's default aws/secretsmanager
// key).
func New(client *secretsmanager.Client, prefix, kmsKeyID string) *Store {
	return &Store{client: client, prefix: strings.TrimSuffix(prefix, "/"), kmsKeyID: kmsKeyID}
}

// Name returns the secret name of one connection of tenant × network:
// prefix + "/" + network + "/" + tenantPart + "/" + conn.
//
// Every connect creates a secret under a new connection id and every
// disconnect deletes it, so a write for a connection that has ended (a sync
// saving a rotated token after the publisher reconnected) can only reach
// that connection's own, deleted secret and fails: Secrets Manager has no
// conditional writes, and this is how a sync's secret writes are fenced.
//
// tenantPart is the tenant id itself when it is 1–128 characters of
// [A-Za-z0-9_.@-] and does not start with "x-" (any case); otherwise it is
// "x-" + hex(tenant), or for ids longer than 128 bytes
// "x-sha256-" + hex(sha256(tenant)). The three forms cannot collide: a raw
// id never starts with "x-", a hex form never contains a second '-' nor an
// 's'. So two different tenants never share a secret; the tenant part never
// contains '/', so one tenant's names never extend another's.
func (s *Store) Name(tenant, network, conn string) string {
	return s.prefix + "/" + network + "/" + tenantPart(tenant) + "/" + conn
}

func tenantPart(tenant string) string {
	if rawTenant.MatchString(tenant) && !strings.HasPrefix(strings.ToLower(tenant), "x-") {
		return tenant
	}
	if len(tenant) <= maxHexTenant {
		return "x-" + hex.EncodeToString([]byte(tenant))
	}
	return "x-sha256-" + sha256Hex(tenant)
}

// name validates the inputs and returns the secret name.
func (s *Store) name(tenant, network, conn string) (string, error) {
	if tenant == "" {
		return "", errors.New("secrets: empty tenant id")
	}
	if !validNetwork.MatchString(network) {
		return "", fmt.Errorf("secrets: invalid network id %q", network)
	}
	if !validConn.MatchString(conn) {
		return "", fmt.Errorf("secrets: invalid connection id %q", conn)
	}
	n := s.Name(tenant, network, conn)
	if len(n) > MaxNameLength || !validName.MatchString(n) {
		return "", fmt.Errorf("secrets: prefix %q makes an invalid secret name", s.prefix)
	}
	return n, nil
}

// CreateCredentials stores sec as the secret of a new connection k of tenant ×
// network. UpdatedAt is set to now when zero. Each connect has a new
// connection id, so the name is always free: a secret that already exists
// under it is merchantsync.EConflict and is left as it is.
func (s *Store) CreateCredentials(ctx context.Context, k merchantsync.ConnectionKey, sec merchantsync.Credentials) error {
	name, err := s.name(k.TenantID, k.Network, k.ID)
	if err != nil {
		return err
	}
	body, err := s.encode(sec)
	if err != nil {
		return fmt.Errorf("secrets: create %s: %w", name, err)
	}
	_, err = s.client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name:         aws.String(name),
		SecretString: aws.String(body),
		KmsKeyId:     optional(s.kmsKeyID),
		Description:  aws.String("merchantsync network credentials"),
		// No tenant tags: tags are readable by far more principals than
		// the value, and the name already identifies the secret.
		Tags: []types.Tag{{Key: aws.String("app"), Value: aws.String("merchantsync")}},
	})
	var exists *types.ResourceExistsException
	if errors.As(err, &exists) {
		return fmt.Errorf("secrets: create %s: %w", name,
			merchantsync.Errorf(merchantsync.EConflict, "These credentials are already stored; please retry."))
	}
	if err != nil {
		return fmt.Errorf("secrets: create %s: %w", name, err)
	}
	return nil
}

// UpdateCredentials writes a new version of an existing connection's secret (a
// rotated refresh token, a fresh access token) and never creates one: a sync
// that races a disconnect or reconnect must not bring the old credentials
// back. A missing secret, or one being deleted, is
// merchantsync.EConnectionChanged: that connection has ended. Update needs
// only secretsmanager:PutSecretValue, so the sync function needs no
// CreateSecret.
func (s *Store) UpdateCredentials(ctx context.Context, k merchantsync.ConnectionKey, sec merchantsync.Credentials) error {
	name, err := s.name(k.TenantID, k.Network, k.ID)
	if err != nil {
		return err
	}
	body, err := s.encode(sec)
	if err != nil {
		return fmt.Errorf("secrets: update %s: %w", name, err)
	}
	if err := s.putValue(ctx, name, body); err != nil {
		if notFound(err) || scheduledForDeletion(err) {
			return fmt.Errorf("secrets: update %s: %w", name,
				merchantsync.Errorf(merchantsync.EConnectionChanged, "These %s credentials were disconnected or replaced.", k.Network))
		}
		return fmt.Errorf("secrets: update %s: %w", name, err)
	}
	return nil
}

func (s *Store) putValue(ctx context.Context, name, body string) error {
	_, err := s.client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId:     aws.String(name),
		SecretString: aws.String(body),
	})
	return err
}

func (s *Store) encode(sec merchantsync.Credentials) (string, error) {
	if sec.AuthScheme != "" && sec.AuthScheme != AuthBasic && sec.AuthScheme != AuthBearer {
		return "", errors.New("invalid auth scheme: want Basic or Bearer") // never quote the input
	}
	if sec.UpdatedAt.IsZero() {
		now := time.Now
		if s.Now != nil {
			now = s.Now
		}
		sec.UpdatedAt = now().UTC()
	}
	b, err := json.Marshal(document(sec))
	if err != nil {
		// json.Marshal of this struct cannot fail; do not wrap in case a
		// future field's error would quote a value.
		return "", errors.New("cannot encode secret")
	}
	if len(b) > maxSecretSize {
		return "", fmt.Errorf("secret is %d bytes, more than Secrets Manager's %d", len(b), maxSecretSize)
	}
	return string(b), nil
}

// ErrMalformed is wrapped by Get when the stored secret is not the JSON
// document Put writes. The JSON decoder's own error is dropped on purpose:
// it can quote bytes of the secret.
var ErrMalformed = errors.New("secret value is not a merchantsync credentials document")

// GetCredentials reads the secret of connection k. A secret
// that does not exist (never connected, or disconnected or replaced since)
// is merchantsync.ENotConnected.
func (s *Store) GetCredentials(ctx context.Context, k merchantsync.ConnectionKey) (*merchantsync.Credentials, error) {
	name, err := s.name(k.TenantID, k.Network, k.ID)
	if err != nil {
		return nil, err
	}
	out, err := s.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	if err != nil {
		if notFound(err) || scheduledForDeletion(err) {
			return nil, fmt.Errorf("secrets: get %s: %w", name,
				merchantsync.Errorf(merchantsync.ENotConnected, "No credentials are connected for %s.", k.Network))
		}
		return nil, fmt.Errorf("secrets: get %s: %w", name, err)
	}
	if out.SecretString == nil {
		return nil, fmt.Errorf("secrets: get %s: %w", name, ErrMalformed)
	}
	var doc document
	dec := json.NewDecoder(strings.NewReader(*out.SecretString))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("secrets: get %s: %w", name, ErrMalformed)
	}
	c := merchantsync.Credentials(doc)
	return &c, nil
}

// DeleteCredentials removes the secret of connection k at once.
// A secret that does not exist is not an error (disconnecting twice is fine).
//
// ForceDeleteWithoutRecovery: the credentials of an ended connection must
// stop existing at once (a recovery window would keep them for 7–30 days),
// and the publisher can always enter them again, so there is nothing worth
// recovering.
func (s *Store) DeleteCredentials(ctx context.Context, k merchantsync.ConnectionKey) error {
	name, err := s.name(k.TenantID, k.Network, k.ID)
	if err != nil {
		return err
	}
	_, err = s.client.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{
		SecretId:                   aws.String(name),
		ForceDeleteWithoutRecovery: aws.Bool(true),
	})
	if err != nil && !notFound(err) && !scheduledForDeletion(err) {
		return fmt.Errorf("secrets: delete %s: %w", name, err)
	}
	return nil
}

func notFound(err error) bool {
	var nf *types.ResourceNotFoundException
	return errors.As(err, &nf)
}

// scheduledForDeletion reports Secrets Manager's refusal to act on a secret
// that is marked for deletion.
func scheduledForDeletion(err error) bool {
	var ir *types.InvalidRequestException
	if errors.As(err, &ir) {
		return strings.Contains(strings.ToLower(ir.ErrorMessage()), "deletion") ||
			strings.Contains(strings.ToLower(ir.ErrorMessage()), "deleted")
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "InvalidRequestException" {
		return strings.Contains(strings.ToLower(ae.ErrorMessage()), "delet")
	}
	return false
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

var _ merchantsync.CredentialStore = (*Store)(nil)
