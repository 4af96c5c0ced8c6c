package webhook

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// SecretPrefix starts every signing secret, as the Standard Webhooks
// specification serialises symmetric keys, so that people and secret
// scanners can tell what the string is.
const SecretPrefix = "whsec_"

const (
	// secretKeyBytes is how many random bytes NewSecret draws: SHA-256's
	// output length, the key size RFC 2104 recommends for HMAC-SHA256.
	secretKeyBytes = 32
	// MinKeyBytes and MaxKeyBytes bound a key, as the specification does
	// (24 to 64 random bytes).
	MinKeyBytes = 24
	MaxKeyBytes = 64
)

// b64 is the encoding of both secrets and signatures: standard base64 with
// padding, which every reference verifier decodes. Strict refuses encodings
// with stray trailing bits, so one key has exactly one spelling.
var b64 = base64.StdEncoding.Strict()

// Errors ParseSecret returns (wrapped with detail that never includes the
// secret itself).
var (
	ErrSecretPrefix = errors.New("webhook secret: must start with " + SecretPrefix)
	ErrSecretBase64 = errors.New("webhook secret: the part after " + SecretPrefix + " is not standard base64")
	ErrSecretLength = errors.New("webhook secret: key length out of range")
)

// Secret is a tenant webhook's signing secret in its serialised form
// ("whsec_" + base64 of the key). Its String, GoString, Format and LogValue
// print a redacted placeholder, and the value sits in an unexported field so
// that fmt, log/slog and encoding/json cannot reach it by accident; Reveal
// is the one way out, for storing the secret and for showing it to its
// owner once.
type Secret struct{ v string }

// NewSecret returns a fresh secret of 32 random bytes from crypto/rand.
func NewSecret() Secret {
	key := make([]byte, secretKeyBytes)
	// crypto/rand.Read never returns an error: it aborts the program if the
	// system's random source fails.
	_, _ = rand.Read(key)
	return Secret{v: SecretPrefix + b64.EncodeToString(key)}
}

// SecretFromString checks s as ParseSecret does and wraps it, for a secret
// read back from storage.
func SecretFromString(s string) (Secret, error) {
	if _, err := ParseSecret(s); err != nil {
		return Secret{}, err
	}
	return Secret{v: s}, nil
}

// ParseSecret returns the HMAC key a serialised secret stands for: the
// base64-decoded bytes after the "whsec_" prefix, 24 to 64 of them. Its
// errors say what is wrong without repeating any of s.
func ParseSecret(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return nil, ErrSecretPrefix
	}
	key, err := b64.DecodeString(rest)
	if err != nil {
		var ce base64.CorruptInputError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("%w (bad input at character %d after the prefix)", ErrSecretBase64, int64(ce))
		}
		return nil, ErrSecretBase64
	}
	if len(key) < MinKeyBytes || len(key) > MaxKeyBytes {
		return nil, fmt.Errorf("%w: %d bytes, need %d to %d", ErrSecretLength, len(key), MinKeyBytes, MaxKeyBytes)
	}
	return key, nil
}

// Reveal returns the serialised secret. Call it only to store the secret or
// to hand it to its owner; never to log it.
func (s Secret) Reveal() string { return s.v }

// IsZero reports whether s is the zero Secret (no secret at all).
func (s Secret) IsZero() bool { return s.v == "" }

// Key returns the HMAC key. A Secret is valid by construction (NewSecret,
// SecretFromString); the zero Secret has no key and returns nil.
func (s Secret) Key() []byte {
	key, err := ParseSecret(s.v)
	if err != nil {
		return nil
	}
	return key
}

func (s Secret) redacted() string {
	if s.v == "" {
		return `""`
	}
	return SecretPrefix + "[REDACTED]"
}

// String hides the secret from %v and %s.
func (s Secret) String() string { return s.redacted() }

// GoString hides the secret from %#v.
func (s Secret) GoString() string { return "webhook.Secret(" + s.redacted() + ")" }

// Format hides the secret from every other verb too (%x, %q, %d…), which
// would otherwise print the unexported field of a struct.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, s.GoString())
		return
	}
	_, _ = io.WriteString(f, s.redacted())
}

// LogValue hides the secret from log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.redacted()) }
