package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names, as the Standard Webhooks specification spells them.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// signatureVersion marks an HMAC-SHA256 signature in the signature header
// ("v1a" would be the specification's asymmetric scheme, which we do not use).
const signatureVersion = "v1"

// Tolerance is how far a webhook-timestamp may be from the receiver's clock
// before Verify refuses the message as a possible replay.
const Tolerance = 5 * time.Minute

// Errors Verify returns.
var (
	ErrMissingHeaders = errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature header")
	ErrBadTimestamp   = errors.New("webhook: webhook-timestamp is not an integer number of seconds")
	ErrTooOld         = errors.New("webhook: message timestamp too old")
	ErrTooNew         = errors.New("webhook: message timestamp too new")
	ErrNoMatch        = errors.New("webhook: no matching signature")
)

// Sign returns the webhook-signature value for one attempt: "v1," and the
// base64 HMAC-SHA256, under key, of "<msgID>.<unix seconds of ts>.<body>".
// body must be the exact bytes sent: the signature covers them byte for byte.
func Sign(key []byte, msgID string, ts time.Time, body []byte) string {
	var sum [sha256.Size]byte
	mac(key, msgID, ts.Unix(), body, sum[:0])
	// "v1," + 44 base64 characters.
	out := make([]byte, 0, len(signatureVersion)+1+b64.EncodedLen(sha256.Size))
	out = append(out, signatureVersion...)
	out = append(out, ',')
	out = b64.AppendEncode(out, sum[:])
	return string(out)
}

// mac appends HMAC-SHA256(key, "<msgID>.<unix>.<body>") to dst. The body is
// written on its own rather than joined to the rest, so it is not copied.
func mac(key []byte, msgID string, unix int64, body, dst []byte) []byte {
	prefix := make([]byte, 0, len(msgID)+22) // '.', up to 20 digits, '.'
	prefix = append(prefix, msgID...)
	prefix = append(prefix, '.')
	prefix = strconv.AppendInt(prefix, unix, 10)
	prefix = append(prefix, '.')
	h := hmac.New(sha256.New, key)
	h.Write(prefix)
	h.Write(body)
	return h.Sum(dst)
}

// Verify checks a received webhook as a receiver should: the three headers
// present, the timestamp within Tolerance of now, and at least one "v1"
// signature in the space-separated webhook-signature list matching the body
// under key (compared in constant time). Signatures of other versions are
// skipped, so a sender may add them during a key or scheme rotation.
func Verify(key []byte, h http.Header, body []byte, now time.Time) error {
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return ErrMissingHeaders
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return ErrBadTimestamp
	}
	tol := int64(Tolerance / time.Second)
	switch n := now.Unix(); {
	case n-ts > tol:
		return ErrTooOld
	case ts-n > tol:
		return ErrTooNew
	}
	var want [sha256.Size]byte
	mac(key, id, ts, body, want[:0])
	for _, s := range strings.Split(sigs, " ") {
		version, enc, ok := strings.Cut(s, ",")
		if !ok || version != signatureVersion {
			continue
		}
		got, err := b64.DecodeString(enc)
		if err != nil {
			continue
		}
		if hmac.Equal(got, want[:]) {
			return nil
		}
	}
	return ErrNoMatch
}
