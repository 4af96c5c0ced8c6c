package webhook

import (
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Codes of the errors ValidateURL and CheckAddr return, for the REST API to
// pass on: programs switch on them, so they never change once released.
const (
	CodeURLInvalid     = "webhook_url_invalid"     // not an absolute http(s) URL we can call
	CodeURLNotHTTPS    = "webhook_url_not_https"   // http (or another scheme) where https is required
	CodeURLPrivate     = "webhook_url_private"     // a host or address that is not on the public internet
	CodeURLCredentials = "webhook_url_credentials" // user:password@ in the URL
)

// MaxURLLength bounds a receiver URL.
const MaxURLLength = 2048

// URLError is a refused receiver URL or address: Code for programs,
// Message for the person who typed the URL. Neither repeats the URL, which
// may carry a token in its query.
type URLError struct {
	Code    string
	Message string
}

func (e *URLError) Error() string { return e.Code + ": " + e.Message }

func urlErr(code, msg string) error { return &URLError{Code: code, Message: msg} }

// specialSuffixes are DNS names that never lead to the public internet
// (special-use names, and the suffixes of AWS's and home networks' internal
// names). A name under one is refused at once rather than at delivery.
var specialSuffixes = []string{"localhost", "local", "internal", "localdomain", "home.arpa", "test", "invalid", "onion", "alt"}

// ValidateURL checks a receiver URL when it is saved: an absolute https URL
// without credentials whose host is a public DNS name or a public IP
// address. It does not resolve the name: what a name resolves to can change
// at any moment, so the delivery client checks the address it actually
// connects to (CheckAddr) on every attempt.
func ValidateURL(raw string, p Policy) error {
	if raw == "" {
		return urlErr(CodeURLInvalid, "enter the https URL of your webhook receiver")
	}
	if len(raw) > MaxURLLength {
		return urlErr(CodeURLInvalid, "the URL is longer than "+strconv.Itoa(MaxURLLength)+" characters")
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c >= 0x7f {
			return urlErr(CodeURLInvalid, "the URL may contain only printable ASCII characters (no spaces; percent-encode the rest, and write an international domain name in its xn-- form)")
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Opaque != "" || u.Host == "" {
		return urlErr(CodeURLInvalid, "not a valid absolute URL such as https://hooks.example.com/merchantsync")
	}
	if u.User != nil {
		return urlErr(CodeURLCredentials, "the URL must not contain a user name or password: check our signature to know the webhook came from us")
	}
	if u.Fragment != "" || strings.HasSuffix(raw, "#") {
		return urlErr(CodeURLInvalid, "the URL must not contain a #fragment (it is never sent to the server)")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return urlErr(CodeURLNotHTTPS, "the URL must start with https://")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return urlErr(CodeURLInvalid, "the port must be a number from 1 to 65535")
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return urlErr(CodeURLInvalid, "a ':' after the host must be followed by a port number")
	}
	local, err := checkHost(u.Hostname(), p)
	if err != nil {
		return err
	}
	if u.Scheme != "https" && !(local && p.AllowLoopbackHTTP) {
		return urlErr(CodeURLNotHTTPS, "the URL must start with https://: webhooks carry your data and are sent only over TLS")
	}
	return nil
}

// checkHost checks a URL's host (without brackets or port) and reports
// whether it names this machine (allowed only under AllowLoopbackHTTP).
func checkHost(host string, p Policy) (local bool, err error) {
	if strings.Contains(host, "%") {
		return false, urlErr(CodeURLInvalid, "an IPv6 address with an interface zone cannot be a webhook receiver")
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().IsLoopback(), CheckAddr(a, p)
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if !validDNSName(name) {
		return false, urlErr(CodeURLInvalid, "the host is neither a valid DNS name nor an IP address")
	}
	labels := strings.Split(name, ".")
	if isNumeric(labels[len(labels)-1]) {
		// No top-level domain is numeric: this is an IPv4 address in a form
		// (127.1, 2130706433, 0x7f.1) that some resolvers turn into one.
		return false, urlErr(CodeURLInvalid, "write an IP address as four decimal numbers (a.b.c.d), or use a DNS name")
	}
	for _, s := range specialSuffixes {
		if name == s || strings.HasSuffix(name, "."+s) {
			if s == "localhost" && p.AllowLoopbackHTTP {
				return true, nil
			}
			return false, urlErr(CodeURLPrivate, "."+s+" names are not on the public internet; webhooks go only to public receivers")
		}
	}
	if len(labels) < 2 {
		return false, urlErr(CodeURLPrivate, "use the receiver's full public DNS name (such as hooks.example.com), not a local host name")
	}
	return false, nil
}

// validDNSName reports whether name (lower case, no trailing dot) is a
// host name: at most 253 characters, labels of 1 to 63 letters, digits and
// inner hyphens.
func validDNSName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for _, l := range strings.Split(name, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// isNumeric reports whether a label reads as a number: all decimal digits,
// or 0x followed by hex digits.
func isNumeric(label string) bool {
	digits := label
	hex := strings.HasPrefix(label, "0x")
	if hex {
		digits = label[2:]
	}
	if digits == "" && !hex {
		return false
	}
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if !('0' <= c && c <= '9' || hex && 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
