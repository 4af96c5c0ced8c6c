package testenv_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/merchantsync/merchantsync/internal/testenv"
)

// Encrypt binds the ciphertext to its EncryptionContext: Decrypt with the
// same context (with or without naming the key) gives the plaintext back,
// with another context or none it fails with InvalidCiphertextException.
func TestKMSEncryptionContext(t *testing.T) {
	ctx := context.Background()
	c := testenv.KMSClient(t, testenv.WithMaxAttempts(1))
	key := testenv.NewKey(t)
	d, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	m := d.KeyMetadata
	if m.KeyState != types.KeyStateEnabled || m.KeySpec != types.KeySpecSymmetricDefault ||
		aws.ToString(m.Arn) != "arn:aws:kms:"+testenv.Region+":"+testenv.AccountID+":key/"+key {
		t.Errorf("key = %s %s %s", m.KeyState, m.KeySpec, aws.ToString(m.Arn))
	}
	plain := []byte(`{"clientSecret":"s3cr3t"}`)
	ec := map[string]string{"SecretARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:x", "SecretVersionId": "v1"}
	enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(key), Plaintext: plain, EncryptionContext: ec})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(enc.CiphertextBlob, plain) || aws.ToString(enc.KeyId) != aws.ToString(m.Arn) {
		t.Errorf("Encrypt = key %s, ciphertext %q", aws.ToString(enc.KeyId), enc.CiphertextBlob)
	}
	for _, keyID := range []*string{aws.String(key), nil} {
		dec, err := c.Decrypt(ctx, &kms.DecryptInput{KeyId: keyID, CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec})
		if err != nil || !bytes.Equal(dec.Plaintext, plain) || aws.ToString(dec.KeyId) != aws.ToString(m.Arn) {
			t.Errorf("Decrypt (KeyId %v) = %+v, %v", aws.ToString(keyID), dec, err)
		}
	}
	for name, wrong := range map[string]map[string]string{
		"another context": {"SecretARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:y", "SecretVersionId": "v1"},
		"a partial one":   {"SecretARN": ec["SecretARN"]},
		"none":            nil,
	} {
		_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: wrong})
		var ice *types.InvalidCiphertextException
		if !errors.As(err, &ice) {
			t.Errorf("Decrypt with %s: %v, want InvalidCiphertextException", name, err)
		}
	}
	// A ciphertext changed by one bit is refused too.
	bad := bytes.Clone(enc.CiphertextBlob)
	bad[len(bad)-1] ^= 1
	if _, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: bad, EncryptionContext: ec}); err == nil {
		t.Errorf("Decrypt of a changed ciphertext succeeded")
	}
}

// A key scheduled for deletion (what NewKey's cleanup does) is
// PendingDeletion. AWS then refuses to encrypt with it
// (KMSInvalidStateException); moto still encrypts.
func TestKMSKeyPendingDeletion(t *testing.T) {
	ctx := context.Background()
	c := testenv.KMSClient(t, testenv.WithMaxAttempts(1))
	key := testenv.NewKey(t)
	if _, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(key), PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	d, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(key)})
	if err != nil || d.KeyMetadata.KeyState != types.KeyStatePendingDeletion || d.KeyMetadata.DeletionDate == nil {
		t.Fatalf("key after ScheduleKeyDeletion: %+v, %v", d, err)
	}
	if _, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(key), Plaintext: []byte("x")}); err != nil {
		t.Errorf("Encrypt with a key pending deletion: %v; moto used to allow it: update the package doc", err)
	}
	if _, err := c.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
}
