package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestNewSecret(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		s := NewSecret()
		v := s.Reveal()
		if !strings.HasPrefix(v, SecretPrefix) {
			t.Fatalf("secret %q lacks the %s prefix", v, SecretPrefix)
		}
		key, err := ParseSecret(v)
		if err != nil {
			t.Fatalf("ParseSecret(NewSecret()): %v", err)
		}
		if len(key) != 32 {
			t.Fatalf("key is %d bytes, want 32", len(key))
		}
		if !bytes.Equal(s.Key(), key) {
			t.Fatal("Secret.Key differs from ParseSecret of its value")
		}
		if seen[v] {
			t.Fatalf("NewSecret repeated %q", v)
		}
		seen[v] = true
	}
}

func TestParseSecret(t *testing.T) {
	key24 := strings.Repeat("A", 32)          // 24 zero bytes
	key64 := strings.Repeat("A", 84) + "AA==" // 63 + 1 zero bytes
	cases := []struct {
		name string
		in   string
		want error
		n    int
	}{
		{"the specification's test secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", nil, 24},
		{"24 bytes", SecretPrefix + key24, nil, 24},
		{"64 bytes", SecretPrefix + key64, nil, 64},
		{"no prefix", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", ErrSecretPrefix, 0},
		{"other prefix", "whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", ErrSecretPrefix, 0},
		{"prefix only", SecretPrefix, ErrSecretLength, 0},
		{"too short", SecretPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAA", ErrSecretLength, 0},
		{"too long", SecretPrefix + strings.Repeat("A", 88), ErrSecretLength, 0},
		{"url-safe alphabet", SecretPrefix + strings.Repeat("_", 32), ErrSecretBase64, 0},
		{"missing padding", SecretPrefix + strings.Repeat("A", 34), ErrSecretBase64, 0},
		{"non-canonical trailing bits", SecretPrefix + key24 + "AB==", ErrSecretBase64, 0},
		{"whitespace", SecretPrefix + " " + key24, ErrSecretBase64, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key, err := ParseSecret(c.in)
			if !errors.Is(err, c.want) {
				t.Fatalf("ParseSecret: err %v, want %v", err, c.want)
			}
			if err == nil && len(key) != c.n {
				t.Fatalf("key is %d bytes, want %d", len(key), c.n)
			}
			if err != nil {
				if rest := strings.TrimPrefix(c.in, SecretPrefix); len(rest) > 4 && strings.Contains(err.Error(), rest) {
					t.Fatalf("error %q repeats the secret", err)
				}
				if _, err2 := SecretFromString(c.in); !errors.Is(err2, c.want) {
					t.Fatalf("SecretFromString: err %v, want %v", err2, c.want)
				}
			}
		})
	}
}

// TestSecretRedacted prints a Secret every way the code base might by
// mistake and requires that none shows any part of the key.
func TestSecretRedacted(t *testing.T) {
	s := NewSecret()
	body := strings.TrimPrefix(s.Reveal(), SecretPrefix)
	type holder struct {
		Name   string
		Secret Secret
	}
	h := holder{"x", s}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%20s", "%T"} {
		outs = append(outs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, h), fmt.Sprintf(verb, &h))
	}
	outs = append(outs, fmt.Sprint(s), fmt.Sprintln(s, h))
	j, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j))
	var logged bytes.Buffer
	for _, hd := range []slog.Handler{slog.NewTextHandler(&logged, nil), slog.NewJSONHandler(&logged, nil)} {
		l := slog.New(hd)
		l.Info("m", "secret", s, "holder", h)
		l.Info("m", slog.Any("secret", s))
	}
	outs = append(outs, logged.String())
	for _, o := range outs {
		if strings.Contains(o, body) || strings.Contains(o, fmt.Sprintf("%x", body)) || strings.Contains(o, fmt.Sprintf("%X", body)) {
			t.Fatalf("the secret shows in %q", o)
		}
	}
	if got := fmt.Sprint(s); got != "whsec_[REDACTED]" {
		t.Fatalf("String() = %q", got)
	}
	if got := fmt.Sprint(Secret{}); got != `""` {
		t.Fatalf("zero Secret prints %q", got)
	}
	if !(Secret{}).IsZero() || s.IsZero() || (Secret{}).Key() != nil {
		t.Fatal("IsZero/Key of the zero Secret")
	}
}
