// Package kmsseal keeps webhook signing secrets encrypted with the stack's
// KMS key (the one that already encrypts the connection secrets).
//
// Why KMS and not a secret per webhook in Secrets Manager: a secret costs
// $0.40 a month, so 10 webhooks for each of 1,000 tenants would cost
// $4,000 a month before a single call; a KMS ciphertext stored on the
// webhook's own item costs nothing at rest and $0.03 per 10,000 Encrypt or
// Decrypt calls (docs/capacity.md has the figures).
//
// Each ciphertext is bound to its webhook by the encryption context
// (tenant and webhook id), which KMS checks on Decrypt: a sealed secret
// copied onto another tenant's or another webhook's item does not open,
// and CloudTrail records which webhook each Decrypt was for.
package kmsseal

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/webhook"
)

// API is the part of the KMS client the sealer uses.
type API interface {
	Encrypt(ctx context.Context, in *kms.EncryptInput, opts ...func(*kms.Options)) (*kms.EncryptOutput, error)
	Decrypt(ctx context.Context, in *kms.DecryptInput, opts ...func(*kms.Options)) (*kms.DecryptOutput, error)
}

// Sealer implements merchantsync.SecretSealer with one KMS key.
type Sealer struct {
	client API
	keyID  string
}

var _ merchantsync.SecretSealer = (*Sealer)(nil)

// New returns a sealer encrypting with keyID (an id, ARN or alias).
func New(client API, keyID string) *Sealer { return &Sealer{client: client, keyID: keyID} }

// ErrWrongWebhook is the error of Open when the ciphertext is not the named
// webhook's (or was changed).
var ErrWrongWebhook = errors.New("kmsseal: the sealed secret does not belong to this webhook")

func encryptionContext(tenant, webhookID string) map[string]string {
	return map[string]string{"purpose": "merchantsync-webhook-secret", "tenant": tenant, "webhook": webhookID}
}

// Seal encrypts s for the webhook.
func (s *Sealer) Seal(ctx context.Context, tenant, webhookID string, secret webhook.Secret) ([]byte, error) {
	if s.keyID == "" {
		return nil, errors.New("kmsseal: no KMS key configured (SECRET_KMS_KEY_ID)")
	}
	out, err := s.client.Encrypt(ctx, &kms.EncryptInput{
		KeyId:             aws.String(s.keyID),
		Plaintext:         []byte(secret.Reveal()),
		EncryptionContext: encryptionContext(tenant, webhookID),
	})
	if err != nil {
		return nil, fmt.Errorf("kmsseal: encrypt: %w", err)
	}
	return out.CiphertextBlob, nil
}

// Open decrypts the webhook's sealed secret. The key is named too, so a
// ciphertext made with another key is refused rather than decrypted with it.
func (s *Sealer) Open(ctx context.Context, tenant, webhookID string, sealed []byte) (webhook.Secret, error) {
	out, err := s.client.Decrypt(ctx, &kms.DecryptInput{
		KeyId:             aws.String(s.keyID),
		CiphertextBlob:    sealed,
		EncryptionContext: encryptionContext(tenant, webhookID),
	})
	var ice *types.InvalidCiphertextException
	if errors.As(err, &ice) {
		return webhook.Secret{}, ErrWrongWebhook
	}
	if err != nil {
		return webhook.Secret{}, fmt.Errorf("kmsseal: decrypt: %w", err)
	}
	sec, err := webhook.SecretFromString(string(out.Plaintext))
	if err != nil {
		return webhook.Secret{}, ErrWrongWebhook
	}
	return sec, nil
}
