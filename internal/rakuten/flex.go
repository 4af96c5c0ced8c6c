package rakuten

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Lenient readers for Rakuten's JSON: numbers that arrive as strings, dates
// in several layouts. A field Rakuten sends oddly must never fail a pull.

// smallDigits reads b when it is 1 to 18 ASCII digits, which always fit
// an int64.
func smallDigits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// flexInt decodes a JSON number, a numeric string ("3600") or null: Rakuten
// sends expires_in both ways and ids are safer read the same way.
type flexInt int64

func (n *flexInt) UnmarshalJSON(b []byte) error {
	if v, ok := smallDigits(b); ok {
		// The usual case (an id, a network, a lifetime): no allocation.
		*n = flexInt(v)
		return nil
	}
	s := strings.TrimSpace(string(b))
	if s == "null" || s == `""` {
		*n = 0
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		s = strings.TrimSpace(str)
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		*n = flexInt(v)
		return nil
	}
	// "3600.0" and 3.6e3 are still numbers.
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("not a number: %.20q", s)
	}
	// Converting a float outside int64's range is implementation-defined in
	// Go (amd64 and arm64 differ): read it as 0, which callers treat as
	// missing (a merchant without an id is skipped, an expiry defaults).
	if math.IsNaN(f) || f >= math.MaxInt64 || f <= math.MinInt64 {
		*n = 0
		return nil
	}
	*n = flexInt(f)
	return nil
}

// flexTime decodes RFC 3339 and a few near misses; anything unreadable is
// the zero time rather than a failed pull.
type flexTime time.Time

func (t *flexTime) UnmarshalJSON(b []byte) error {
	if v, ok := parseUTCSeconds(b); ok {
		*t = flexTime(v)
		return nil
	}
	s, ok := plainJSONString(b)
	if !ok {
		if err := json.Unmarshal(b, &s); err != nil {
			s = ""
		}
	}
	if s == "" {
		*t = flexTime{}
		return nil
	}
	for _, l := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04:05Z0700", "2006-01-02"} {
		if v, err := time.Parse(l, s); err == nil {
			*t = flexTime(v.UTC())
			return nil
		}
	}
	*t = flexTime{}
	return nil
}

// plainJSONString returns the contents of a JSON string that holds only
// printable ASCII and no escapes, which need no decoding. That is every
// date and number Rakuten sends, and a page has three dates per merchant:
// a nested json.Unmarshal for each was a quarter of decoding a page.
func plainJSONString(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return "", false
	}
	in := b[1 : len(b)-1]
	for _, c := range in {
		if c < 0x20 || c >= 0x7f || c == '\\' || c == '"' {
			return "", false
		}
	}
	return string(in), true
}

// parseUTCSeconds reads "2006-01-02T15:04:05Z", quotes included, without
// allocating: it is the form of every date Rakuten sends, three per
// merchant, and time.Parse with its string conversion was most of a
// page's allocations. Anything else, or a field out of range, is left to
// the general path (ok false), which agrees on every input it accepts
// (FuzzFlexTime).
func parseUTCSeconds(b []byte) (time.Time, bool) {
	if len(b) != 22 || b[0] != '"' || b[21] != '"' || b[5] != '-' || b[8] != '-' || b[11] != 'T' ||
		b[14] != ':' || b[17] != ':' || b[20] != 'Z' {
		return time.Time{}, false
	}
	num := func(i, n int) (int, bool) {
		v := 0
		for _, c := range b[i : i+n] {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok1 := num(1, 4)
	month, ok2 := num(6, 2)
	day, ok3 := num(9, 2)
	hour, ok4 := num(12, 2)
	minute, ok5 := num(15, 2)
	sec, ok6 := num(18, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	v := time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC)
	if v.Day() != day { // 31 April, 29 February of a common year
		return time.Time{}, false
	}
	return v, true
}
