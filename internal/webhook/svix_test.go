package webhook

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/merchantsync/merchantsync/internal/webhook/svixtest"
)

// svixCase is one request for svix to verify (svixtest.Case), with what a
// correct verifier answers.
type svixCase struct {
	Secret, ID, Timestamp, Signature string

	name   string // for failure messages
	body   []byte
	accept bool // what a correct verifier answers
}

// TestSignaturesVerifyWithSvix signs messages with Sign and has svix (the
// Svix library for Node.js, an independent implementation of the Standard
// Webhooks verification) check them: it must accept every genuine one and
// refuse every tampered one. Our Verify must give the same verdicts.
func TestSignaturesVerifyWithSvix(t *testing.T) {
	cases := svixCases(t, time.Now())
	in := make([]svixtest.Case, len(cases))
	for i, c := range cases {
		in[i] = svixtest.Case{Secret: c.Secret, ID: c.ID, Timestamp: c.Timestamp, Signature: c.Signature, Body: c.body}
	}
	version, verdicts := svixtest.Verify(t, in)
	t.Logf("%s: %d cases", version, len(cases))

	now := time.Now()
	accepted, refused := 0, 0
	for i, c := range cases {
		got := verdicts[i]
		switch {
		case c.accept && got != "verified":
			t.Errorf("%s: svix says %q, want verified", c.name, got)
		case !c.accept && !strings.HasPrefix(got, "failed "):
			t.Errorf("%s: svix says %q, want a refusal", c.name, got)
		case c.accept:
			accepted++
		default:
			refused++
		}
		h := http.Header{}
		h.Set(HeaderID, c.ID)
		h.Set(HeaderTimestamp, c.Timestamp)
		h.Set(HeaderSignature, c.Signature)
		key, _ := ParseSecret(c.Secret)
		if ours := Verify(key, h, c.body, now); (ours == nil) != c.accept {
			t.Errorf("%s: our Verify says %v, svix %q", c.name, ours, got)
		}
	}
	t.Logf("svix accepted %d genuine signatures and refused %d tampered ones", accepted, refused)
}

// svixCases returns 40 messages (every event type; bodies with random
// Unicode, empty data, large ones; four secrets), each genuine, genuine
// among other signatures (a key rotation), and tampered four ways: body,
// secret, id, and one of timestamp, replay window and signature version.
func svixCases(t *testing.T, now time.Time) []svixCase {
	rng := rand.New(rand.NewPCG(2026, 12))
	secrets := []string{specSecret, NewSecret().Reveal(), NewSecret().Reveal(), NewSecret().Reveal()}
	var cases []svixCase
	add := func(name, secret, id string, ts time.Time, sig string, body []byte, accept bool) {
		cases = append(cases, svixCase{
			Secret: secret, ID: id, Timestamp: strconv.FormatInt(ts.Unix(), 10), Signature: sig,
			name: name, body: body, accept: accept,
		})
	}
	for i := range 40 {
		typ := EventTypes()[i%len(EventTypes())]
		var data any
		switch {
		case i%10 == 0: // empty data
		case i%10 == 1: // large: 9000 characters, up to 54 KB once escaped
			data = map[string]string{"blob": randomText(rng, 9000)}
		default:
			data = map[string]any{"merchantId": strconv.Itoa(rng.IntN(1e6)), "name": randomText(rng, 1+rng.IntN(80)), "n": rng.Float64()}
		}
		body, err := EncodeBody(typ, now.Add(-time.Duration(rng.IntN(3600))*time.Second), data)
		if err != nil {
			t.Fatal(err)
		}
		secret := secrets[i%len(secrets)]
		key, _ := ParseSecret(secret)
		id := NewMessageID()
		sig := Sign(key, id, now, body)
		name := fmt.Sprintf("message %d (%s, %d bytes)", i, typ, len(body))

		add(name, secret, id, now, sig, body, true)
		add(name+" under rotation", secret, id, now, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= "+sig, body, true)
		add(name+", body changed", secret, id, now, sig, tamper(body, rng), false)
		add(name+", another secret", secrets[(i+1)%len(secrets)], id, now, sig, body, false)
		add(name+", another id", secret, NewMessageID(), now, sig, body, false)
		switch i % 4 {
		case 0:
			add(name+", timestamp a second later", secret, id, now.Add(time.Second), sig, body, false)
		case 1:
			old := now.Add(-10 * time.Minute)
			add(name+", replayed after 10 minutes", secret, id, old, Sign(key, id, old, body), body, false)
		case 2:
			late := now.Add(10 * time.Minute)
			add(name+", 10 minutes ahead", secret, id, late, Sign(key, id, late, body), body, false)
		case 3:
			add(name+", signature under version v2", secret, id, now, "v2,"+strings.TrimPrefix(sig, "v1,"), body, false)
		}
	}
	return cases
}

// tamper changes one letter or digit of body to the next one: the same
// length, one byte apart.
func tamper(body []byte, rng *rand.Rand) []byte {
	out := bytes.Clone(body)
	for {
		i := rng.IntN(len(out))
		if c := out[i]; 'a' <= c && c <= 'y' || '0' <= c && c <= '8' {
			out[i]++
			return out
		}
	}
}

// randomText mixes ASCII, JSON's special characters, Latin, CJK, emoji,
// right-to-left and combining characters, and the line separators that
// JavaScript once treated specially.
func randomText(rng *rand.Rand, n int) string {
	pools := [][]rune{
		[]rune("abcXYZ019 "),
		[]rune("\"\\/<>&'\t\n\x00\x1f"),
		[]rune("éøßñÆ"),
		[]rune("東京大阪한국어"),
		[]rune("🎉👍🏽👩‍💻🇩🇪"),
		[]rune("שלוםمرحبا"),
		[]rune("e\u0301\u0308"),
		[]rune("\u2028\u2029\ufeff\ufffd"),
	}
	var b strings.Builder
	for range n {
		p := pools[rng.IntN(len(pools))]
		b.WriteRune(p[rng.IntN(len(p))])
	}
	return b.String()
}
