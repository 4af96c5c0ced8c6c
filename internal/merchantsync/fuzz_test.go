package merchantsync

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// Fuzz tests of the parsers that take what a person typed or what Rakuten
// sent. Seeds are the examples of docs/rakuten.md plus the usual mistakes;
// crashers and interesting inputs live in testdata/fuzz/<FuzzName>/.

var (
	fuzzAffiliateID = regexp.MustCompile(`^[A-Za-z0-9*/]{11}$`)
	fuzzSiteID      = regexp.MustCompile(`^[0-9]{1,12}$`)
)

// checkFieldError asserts err is a *Error naming field with one of codes.
func checkFieldError(t *testing.T, fn, in string, err error, field string, codes ...string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%s(%q): error %v (%T) is not a *merchantsync.Error", fn, in, err, err)
	}
	ok := false
	for _, c := range codes {
		ok = ok || e.Code == c
	}
	if !ok || e.Field != field || e.Message == "" {
		t.Fatalf("%s(%q): error code=%q field=%q message=%q; want code in %v, field %q and a message",
			fn, in, e.Code, e.Field, e.Message, codes, field)
	}
}

func FuzzParseAffiliateID(f *testing.F) {
	for _, s := range []string{
		"lMh2Xiq9xN0", "GSFNlAS0O*w", "w9s/SuZO5*M", "  GSFNlAS0O*w\t",
		"GSFNlAS0O%2Aw", "w9s%2FSuZO5%2AM", "GSFNlAS0O%2aw", "%zz", "%", "lMh2Xiq9x%4e0",
		"https://click.linksynergy.com/link?id=lMh2Xiq9xN0&offerid=1234.5&type=3",
		"https://click.linksynergy.com/deeplink?id=GSFNlAS0O%2Aw&mid=2149&murl=https%3A%2F%2Fx.com",
		"https://click.linksynergy.com/link?offerid=1&id=w9s%2FSuZO5%2AM#frag",
		"https://click.linksynergy.com/link?id=4022211", "https://click.linksynergy.com/link?offerid=1",
		"id=lMh2Xiq9xN0", "?id=&id=lMh2Xiq9xN0", "id=%zz&id=lMh2Xiq9xN0", "id=lMh2Xiq9xN0;x=1",
		"4022211", "SID4022211", "sid 4022211", "SID40222118", "sid1234567%38",
		"", " ", "short", "lMh2Xiq9xN0x", "lMh2Xiq9x-0", "lMh2Xiq9xN\u00e9",
		strings.Repeat("a", 2048), strings.Repeat("a", 2049), "id=" + strings.Repeat("%41", 700),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParseAffiliateID(in)
		if err != nil {
			if got != "" {
				t.Fatalf("ParseAffiliateID(%q) = %q with error %v", in, got, err)
			}
			checkFieldError(t, "ParseAffiliateID", in, err, "affiliateId", EInvalid, ELooksLikeSiteID)
			return
		}
		if !fuzzAffiliateID.MatchString(got) {
			t.Fatalf("ParseAffiliateID(%q) = %q: not 11 characters of [A-Za-z0-9*/]", in, got)
		}
		again, err := ParseAffiliateID(got)
		if err != nil || again != got {
			t.Fatalf("ParseAffiliateID(%q) = %q, but parsing that again gives %q, %v", in, got, again, err)
		}
	})
}

func FuzzParseSiteID(f *testing.F) {
	for _, s := range []string{
		"4022211", "SID4022211", "sid 4022211", " Sid\t4022211 ", "SID", "sid", "SIDSID4022211",
		"", " ", "402 2211", "4022211x", "-4022211", "+4022211", "123456789012", "1234567890123",
		"٤٠٢٢٢١١", "0", "lMh2Xiq9xN0", "S\u0130D4022211",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParseSiteID(in)
		if err != nil {
			if got != "" {
				t.Fatalf("ParseSiteID(%q) = %q with error %v", in, got, err)
			}
			checkFieldError(t, "ParseSiteID", in, err, "siteId", EInvalid)
			return
		}
		if !fuzzSiteID.MatchString(got) {
			t.Fatalf("ParseSiteID(%q) = %q: not 1-12 digits", in, got)
		}
		if again, err := ParseSiteID(got); err != nil || again != got {
			t.Fatalf("ParseSiteID(%q) = %q, but parsing that again gives %q, %v", in, got, again, err)
		}
	})
}

// joinedSpellings are the raw statuses (after the documented normalization:
// trimmed, ASCII case-insensitive, '_' and ' ' read as '-') that mean joined.
var joinedSpellings = map[string]bool{"active": true, "approved": true, "extended": true, "approval-extended": true}

// refNormalize is the documented normalization, written independently of
// NormalizeRakuten: Rakuten's spellings are ASCII, so only ASCII letters
// fold; a look-alike from another script is "anything else".
func refNormalize(raw string) string {
	b := []byte(strings.TrimSpace(raw))
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case c == '_' || c == ' ':
			b[i] = '-'
		}
	}
	return string(b)
}

func FuzzNormalizeRakuten(f *testing.F) {
	for _, s := range []string{
		"active", "Active", "ACTIVE", " approved ", "extended", "approval extended", "Approval_Extended",
		"pending", "wait", "temp-decline", "temp rejected", "permanent-decline", "perm rejected",
		"temp-remove", "temp removed", "permanent-remove", "perm removed", "self-removed", "self removed",
		"", "inactive", "activ", "active!", "approved\x00", "act\u0130ve", "ACT\u0130VE", "\u00a0active\u2003",
		"approval--extended", "approval\textended",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		n := NormalizeRakuten(raw)
		if n.Raw != raw {
			t.Fatalf("NormalizeRakuten(%q).Raw = %q", raw, n.Raw)
		}
		if _, ok := ParseStatus(string(n.Status)); !ok {
			t.Fatalf("NormalizeRakuten(%q) = status %q, not a known status", raw, n.Status)
		}
		if n.Status == StatusJoined && !joinedSpellings[refNormalize(raw)] {
			t.Fatalf("NormalizeRakuten(%q) = joined, but %q is not a joined spelling", raw, refNormalize(raw))
		}
		if n.Status != StatusJoined && joinedSpellings[refNormalize(raw)] {
			t.Fatalf("NormalizeRakuten(%q) = %q, want joined", raw, n.Status)
		}
		if n.Extended && n.Status != StatusJoined {
			t.Fatalf("NormalizeRakuten(%q): extended but %q", raw, n.Status)
		}
		if n.Permanent && n.Status != StatusDeclined && n.Status != StatusRemoved {
			t.Fatalf("NormalizeRakuten(%q): permanent but %q", raw, n.Status)
		}
	})
}
