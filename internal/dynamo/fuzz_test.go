package dynamo

import (
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// The opaque cursor is the one store input a caller controls byte for byte
// (the API passes ?cursor= through). These fuzz tests need no DynamoDB.

// fuzzPrefixes are the prefixes the list methods decode cursors with.
var fuzzPrefixes = []string{relPrefix("rakuten"), runPrefix("rakuten"), changePrefix("rakuten")}

func fuzzSKs() []string {
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	return []string{
		relKey("rakuten", 1, 2149), relKey("rakuten", 41, 9223372036854775807),
		runSK("rakuten", merchantsync.NewRunID(at)), changeSK("rakuten", at, 3, 38605),
	}
}

// FuzzDecodeCursor: whatever the cursor, decodeCursor never panics, and a
// cursor it accepts names a sort key under the list's prefix (so a query
// can never start outside it) and after the lower bound.
func FuzzDecodeCursor(f *testing.F) {
	for _, sk := range fuzzSKs() {
		f.Add(encodeCursor(sk), uint8(0), "")
		f.Add(encodeCursor(sk)+"==", uint8(1), "")
		f.Add(encodeCursor(sk), uint8(2), sk)
	}
	for _, c := range []string{
		"", "=", "e30", "eyJrIjoiIn0", "eyJrIjoiUkVMI3Jha3V0ZW4jIn0", "eyJrIjpudWxsfQ", "bnVsbA",
		"eyJrIjoiUkVMI3Jha3V0ZW4jMSJ9", "eyJrIjoiUkVMI3Jha3V0ZW4jMSIsImsiOiJSVU4jIn0", // duplicate key
		"eyJLIjoiUkVMI3Jha3V0ZW4jMSJ9", // "K": encoding/json matches keys case-insensitively
		"eyJrIjoiUkVMI3Jha3V0ZW4jMSJ9IA", "eyJrIjoiUkVMI3Jha3V0ZW4jMSJ9fQ", "eyJrIjoiUkVMI3Jha3V0ZW4jMSJ9+/",
		"%%%", strings.Repeat("A", 2049), "eyJrIjoiVEVOQU5UI290aGVyIn0",
	} {
		f.Add(c, uint8(0), "")
	}
	f.Fuzz(func(t *testing.T, c string, which uint8, after string) {
		prefix := fuzzPrefixes[int(which)%len(fuzzPrefixes)]
		// The bounds of a changes?since= query: after since, up to prefix~.
		before := ""
		if after != "" {
			before = prefix + "~"
		}
		sk, err := decodeCursor(c, prefix, after, before)
		if err != nil {
			if sk != "" || merchantsync.ErrorCode(err) != merchantsync.EInvalid || merchantsync.ErrorField(err) != "cursor" {
				t.Fatalf("decodeCursor(%q) = %q, %v", c, sk, err)
			}
			return
		}
		if c == "" {
			if sk != "" {
				t.Fatalf("empty cursor decoded to %q", sk)
			}
			return
		}
		if !strings.HasPrefix(sk, prefix) || len(sk) == len(prefix) {
			t.Fatalf("decodeCursor(%q, %q) = %q: outside the prefix", c, prefix, sk)
		}
		if after != "" && sk <= after {
			t.Fatalf("decodeCursor(%q, after %q) = %q: not after the bound", c, after, sk)
		}
		if before != "" && sk > before {
			t.Fatalf("decodeCursor(%q, before %q) = %q: past the bound", c, before, sk)
		}
	})
}

// realisticSK is the character set of every sort key the store writes.
var realisticSK = regexp.MustCompile(`^[A-Za-z0-9#.:_-]{0,200}$`)

// FuzzCursorRoundTrip: a cursor the store hands out decodes to the sort key
// it was made from, and one made from a real sort key fits the API's
// 1,024-character limit on ?cursor=.
func FuzzCursorRoundTrip(f *testing.F) {
	for _, sk := range fuzzSKs() {
		f.Add(strings.TrimPrefix(sk, "REL#rakuten#"), uint8(0))
	}
	for _, s := range []string{"x", "\x00", "<>&\u2028", "é", "\"\\", strings.Repeat("9", 180), strings.Repeat("<", 300)} {
		f.Add(s, uint8(1))
	}
	f.Fuzz(func(t *testing.T, rest string, which uint8) {
		prefix := fuzzPrefixes[int(which)%len(fuzzPrefixes)]
		if rest == "" || !utf8.ValidString(rest) {
			return // DynamoDB strings are UTF-8, and a key is never the bare prefix
		}
		sk := prefix + rest
		c := encodeCursor(sk)
		if realisticSK.MatchString(rest) && len(c) > 1024 {
			t.Fatalf("cursor of sort key %q is %d characters, more than the API accepts", sk, len(c))
		}
		if len(c) > 2048 {
			return // longer than decodeCursor reads; only absurd keys get here
		}
		got, err := decodeCursor(c, prefix, "", "")
		if err != nil || got != sk {
			t.Fatalf("decodeCursor(encodeCursor(%q)) = %q, %v", sk, got, err)
		}
		if again, err := decodeCursor(c, prefix, prefix, ""); err != nil || again != sk {
			t.Fatalf("decodeCursor(%q, after the prefix) = %q, %v", c, again, err)
		}
	})
}
