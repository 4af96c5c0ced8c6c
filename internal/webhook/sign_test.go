package webhook

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks reference libraries' shared signing test vector
// (the same in each language's test suite): secret, message id, timestamp
// and payload below must sign to exactly this value.
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specMsgID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specPayload   = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignKnownAnswer(t *testing.T) {
	key, err := ParseSecret(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	got := Sign(key, specMsgID, time.Unix(specTimestamp, 0), []byte(specPayload))
	if got != specSignature {
		t.Fatalf("Sign = %s, want %s", got, specSignature)
	}
	// Only the whole seconds of the attempt's time are signed.
	if again := Sign(key, specMsgID, time.Unix(specTimestamp, 999_999_999), []byte(specPayload)); again != specSignature {
		t.Fatalf("Sign with a sub-second part = %s", again)
	}
}

func signedHeader(key []byte, id string, ts int64, body string) http.Header {
	h := http.Header{}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderSignature, Sign(key, id, time.Unix(ts, 0), []byte(body)))
	return h
}

func TestVerify(t *testing.T) {
	key, _ := ParseSecret(specSecret)
	other := NewSecret().Key()
	const body = `{"type":"webhook.test","timestamp":"2026-01-02T03:04:05.000Z","data":{}}`
	now := time.Unix(1_800_000_000, 0)
	ts := now.Unix()
	good := Sign(key, "msg_1", now, []byte(body))
	bad := "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="

	cases := []struct {
		name string
		h    func(h http.Header)
		key  []byte
		body string
		want error
	}{
		{name: "valid"},
		{name: "header names in any case", h: func(h http.Header) {
			// A receiver may see them lower-cased (HTTP/2) or canonical.
			v := h.Get(HeaderSignature)
			h.Del(HeaderSignature)
			h["webhook-signature"] = []string{v}
			h.Set("WEBHOOK-SIGNATURE", v)
		}},
		{name: "rotation: several signatures, one good", h: func(h http.Header) {
			h.Set(HeaderSignature, bad+" v1a,"+strings.Repeat("A", 86)+"== v2,"+good[3:]+" "+good)
		}},
		{name: "only bad signatures", h: func(h http.Header) { h.Set(HeaderSignature, bad+" "+bad) }, want: ErrNoMatch},
		{name: "right signature under another version", h: func(h http.Header) { h.Set(HeaderSignature, "v2,"+good[3:]) }, want: ErrNoMatch},
		{name: "truncated signature", h: func(h http.Header) { h.Set(HeaderSignature, good[:len(good)-2]) }, want: ErrNoMatch},
		{name: "empty signature", h: func(h http.Header) { h.Set(HeaderSignature, "v1,") }, want: ErrNoMatch},
		{name: "no comma", h: func(h http.Header) { h.Set(HeaderSignature, "v1"+good[3:]) }, want: ErrNoMatch},
		{name: "wrong key", key: other, want: ErrNoMatch},
		{name: "body changed", body: body + " ", want: ErrNoMatch},
		{name: "id changed", h: func(h http.Header) { h.Set(HeaderID, "msg_2") }, want: ErrNoMatch},
		{name: "timestamp changed by a second", h: func(h http.Header) { h.Set(HeaderTimestamp, strconv.FormatInt(ts+1, 10)) }, want: ErrNoMatch},
		{name: "missing id", h: func(h http.Header) { h.Del(HeaderID) }, want: ErrMissingHeaders},
		{name: "missing timestamp", h: func(h http.Header) { h.Del(HeaderTimestamp) }, want: ErrMissingHeaders},
		{name: "missing signature", h: func(h http.Header) { h.Del(HeaderSignature) }, want: ErrMissingHeaders},
		{name: "timestamp not a number", h: func(h http.Header) { h.Set(HeaderTimestamp, "2026-01-02T03:04:05Z") }, want: ErrBadTimestamp},
		{name: "timestamp in milliseconds", h: func(h http.Header) { h.Set(HeaderTimestamp, strconv.FormatInt(ts*1000, 10)) }, want: ErrTooNew},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := signedHeader(key, "msg_1", ts, body)
			if c.h != nil {
				c.h(h)
			}
			k, b := key, body
			if c.key != nil {
				k = c.key
			}
			if c.body != "" {
				b = c.body
			}
			if err := Verify(k, h, []byte(b), now); !errors.Is(err, c.want) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
		})
	}
}

// TestVerifyTolerance checks the replay window's edges to the second.
func TestVerifyTolerance(t *testing.T) {
	key := NewSecret().Key()
	now := time.Unix(1_800_000_000, 0)
	tol := int64(Tolerance / time.Second)
	for _, c := range []struct {
		offset int64 // timestamp minus now, seconds
		want   error
	}{
		{0, nil}, {-tol, nil}, {tol, nil},
		{-tol - 1, ErrTooOld}, {tol + 1, ErrTooNew},
		{-86400, ErrTooOld}, {86400, ErrTooNew},
	} {
		h := signedHeader(key, "msg_x", now.Unix()+c.offset, "{}")
		if err := Verify(key, h, []byte("{}"), now); !errors.Is(err, c.want) {
			t.Errorf("offset %+ds: Verify = %v, want %v", c.offset, err, c.want)
		}
		// A receiver's clock runs on within the second: same verdict.
		if err := Verify(key, h, []byte("{}"), now.Add(999*time.Millisecond)); !errors.Is(err, c.want) {
			t.Errorf("offset %+ds, now+0.999s: Verify = %v, want %v", c.offset, err, c.want)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	key := NewSecret().Key()
	now := time.Now()
	for _, size := range []int{256, 4 << 10, 64 << 10} {
		head, tail := `{"type":"relationship.changed","timestamp":"2026-01-02T03:04:05.000Z","data":{"x":"`, `"}}`
		body := []byte(head + strings.Repeat("a", size-len(head)-len(tail)) + tail)
		b.Run("body="+strconv.Itoa(len(body)), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				_ = Sign(key, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now, body)
			}
		})
	}
}
