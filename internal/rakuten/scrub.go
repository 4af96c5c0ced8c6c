package rakuten

import (
	"html"
	"strings"
	"unicode/utf8"
)

// minFragment is the shortest run of a secret's characters scrub redacts
// on its own: an echo cut short (a truncated body, a split header) still
// carries most of a secret, and 8 characters of one are too many to show.
const minFragment = 8

// maxScrubInput bounds the text scrub examines: fragment search is
// quadratic, and everything past maxMessage is cut anyway.
const maxScrubInput = 4 * maxMessage

// scrub removes every secret the call knew, and anything else shaped like
// a token, from s and bounds its length. Rakuten's reasons are shown to
// people; a gateway that echoes a request must not turn into a leak.
//
// It reads the message as a person would: %-escapes and HTML entities
// decoded (repeatedly, for double encoding), whitespace collapsed. Then it
// redacts each secret whole, and every run of minFragment or more
// characters that also occurs in a secret (spaces read as the '+' of form
// encoding too). Decoding first means one comparison covers every escaped
// spelling, and collapsing first means collapsing cannot rebuild a secret
// from a near-copy ("ab  cd" for "ab cd").
func scrub(s string, secrets []string) string {
	if len(s) > maxScrubInput {
		s = cutAt(s, maxScrubInput)
	}
	for range 3 {
		d := html.UnescapeString(percentDecode(s))
		if d == s {
			break
		}
		s = d
	}
	s = strings.Join(strings.Fields(s), " ")
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		collapsed := strings.Join(strings.Fields(sec), " ")
		for _, form := range [...]string{sec, collapsed, strings.ReplaceAll(collapsed, " ", "+")} {
			if form != "" {
				s = strings.ReplaceAll(s, form, "[redacted]")
				s = redactFragments(s, form)
			}
		}
	}
	s = redactTokenLike(s)
	if len(s) > maxMessage {
		s = cutAt(s, maxMessage) + "…"
	}
	return s
}

// cutAt cuts s to at most n bytes on a rune boundary.
func cutAt(s string, n int) string {
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// percentDecode decodes every valid %XX escape of s and leaves anything else
// (a lone '%', '+') as it is: unlike url.QueryUnescape it never fails, so a
// message with one stray '%' is still decoded around it.
func percentDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// redactFragments replaces every longest run of at least minFragment bytes
// of s that also occurs in secret.
func redactFragments(s, secret string) string {
	if len(secret) < minFragment || len(s) < minFragment {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		n := 0
		if i+minFragment <= len(s) && strings.Contains(secret, s[i:i+minFragment]) {
			n = minFragment
			for i+n < len(s) && strings.Contains(secret, s[i:i+n+1]) {
				n++
			}
		}
		if n == 0 {
			b.WriteByte(s[i])
			i++
			continue
		}
		b.WriteString("[redacted]")
		i += n
	}
	return b.String()
}

// redactTokenLike replaces long runs of token characters that mix letters
// and digits: a gateway may echo a token this call never knew (an old one,
// another header), and no human-readable reason looks like that.
func redactTokenLike(s string) string {
	const minLen = 24
	isTok := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("-_.~+/=", c) >= 0
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if !isTok(s[i]) {
			b.WriteByte(s[i])
			i++
			continue
		}
		j, letter, digit := i, false, false
		for ; j < len(s) && isTok(s[j]); j++ {
			c := s[j]
			letter = letter || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
			digit = digit || c >= '0' && c <= '9'
		}
		if j-i >= minLen && letter && digit {
			b.WriteString("[redacted]")
		} else {
			b.WriteString(s[i:j])
		}
		i = j
	}
	return b.String()
}
