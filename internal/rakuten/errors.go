package rakuten

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Kind classifies a failure by what the caller can do about it.
type Kind string

const (
	// KindInvalidCredentials: Rakuten refused the client id/secret, the
	// password, a refresh token or an access token (ams 900901).
	KindInvalidCredentials Kind = "invalid_credentials"
	// KindExpired: the access token expired or is inactive (ams 900903/900904).
	KindExpired Kind = "expired"
	// KindReauthRequired: both the refresh token and the token-key grant were
	// refused; only the publisher re-entering credentials can fix it.
	KindReauthRequired Kind = "reauth_required"
	// KindThrottled: Rakuten's rate limit (403 "requests allowed per minute",
	// 429), or our own limiter would pass the deadline.
	KindThrottled Kind = "throttled"
	// KindUnavailable: 5xx (503 amt:fault "Message Throttled Out" included),
	// network errors, timeouts.
	KindUnavailable Kind = "unavailable"
	// KindEntitlement: 403 "You cannot consume this service". Retrying cannot help.
	KindEntitlement Kind = "entitlement"
	// KindBadResponse: a success status with a body we cannot read.
	KindBadResponse Kind = "bad_response"
	// KindInvalidRequest: Rakuten rejected our request's parameters (a bug on our side).
	KindInvalidRequest Kind = "invalid_request"
	// KindRedirect: Rakuten (or something in front of it) answered with a
	// redirect. It is never followed: a token request would carry the
	// password or the token key to another host, and a partnerships page
	// from elsewhere is not Rakuten's data.
	KindRedirect Kind = "redirect"
	// KindRecencyUnsupported: an incremental pull's recency filter
	// (status_update_range) was refused with a 400, or ignored (a row older
	// than the range came back). The account falls back to full pulls.
	KindRecencyUnsupported Kind = "recency_unsupported"
)

// Error is a failed Rakuten call. Message is Rakuten's reason (or ours when
// Rakuten gave none); it has been scrubbed of every secret the call knew, so
// it is safe to show to the publisher.
type Error struct {
	Kind       Kind
	HTTPStatus int    // 0 when no response was received
	Code       string // OAuth error ("invalid_grant") or gateway fault code ("900903")
	Message    string
	Err        error

	retryAfter time.Duration // from a Retry-After header, if any
	throttle   bool          // the body was a throttling answer (counted in PullStats.Throttles)
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("rakuten: ")
	b.WriteString(string(e.Kind))
	if e.HTTPStatus != 0 || e.Code != "" {
		b.WriteString(" (")
		if e.HTTPStatus != 0 {
			fmt.Fprintf(&b, "HTTP %d", e.HTTPStatus)
			if e.Code != "" {
				b.WriteByte(' ')
			}
		}
		b.WriteString(e.Code)
		b.WriteByte(')')
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of the first *Error in err's chain, or "" when err
// did not come from this package.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ""
}

// refused reports whether Rakuten said no to a grant (as opposed to being
// unreachable): only a refusal may send a TokenSource to its next fallback,
// otherwise an outage would turn into "re-enter your credentials".
func refused(err error) bool {
	switch KindOf(err) {
	case KindInvalidCredentials, KindExpired, KindInvalidRequest, KindEntitlement:
		return true
	}
	return false
}

// retryable reports whether waiting and trying again can help.
func retryable(err error) bool {
	k := KindOf(err)
	return k == KindThrottled || k == KindUnavailable
}

// maxMessage bounds how much of Rakuten's reason we carry: it ends up in
// run records and API responses.
const maxMessage = 300

// body is what we could make of a response body.
type body struct {
	format  string // "json", "xml", "html", "text", "empty"
	code    string // OAuth error, fault code or JSON "error"
	message string // the most specific human reason
	fault   string // "ams" or "amt" for gateway faults
	oauth   bool   // an OAuth-style {"error": …} object
}

// sniff looks at the first non-space byte rather than trusting
// Content-Type: Rakuten's gateway answers XML faults on JSON endpoints and
// proxies in front of it answer HTML.
func sniff(b []byte) byte {
	t := bytes.TrimLeft(bytes.TrimPrefix(b, []byte("\ufeff")), " \t\r\n")
	if len(t) == 0 {
		return 0
	}
	return t[0]
}

// fault is a WSO2 gateway fault: ams (security) or amt (throttling).
type fault struct {
	XMLName     xml.Name
	Code        string `xml:"code"`
	Message     string `xml:"message"`
	Description string `xml:"description"`
}

const (
	nsAMS = "http://wso2.org/apimanager/security"
	nsAMT = "http://wso2.org/apimanager/throttling"
)

func parseBody(b []byte) body {
	switch sniff(b) {
	case 0:
		return body{format: "empty"}
	case '{':
		var m struct {
			Error       json.RawMessage `json:"error"`
			Description string          `json:"error_description"`
			Message     string          `json:"message"`
			Code        json.RawMessage `json:"code"`
			Desc        string          `json:"description"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return body{format: "text", message: "malformed JSON"}
		}
		out := body{format: "json"}
		var s string
		if json.Unmarshal(m.Error, &s) == nil && s != "" {
			out.code = s
			out.oauth = m.Description != "" || m.Message == ""
		}
		if out.code == "" && len(m.Code) > 0 {
			out.code = strings.Trim(string(m.Code), `"`)
		}
		out.message = firstNonEmpty(m.Description, m.Message, m.Desc, out.code)
		return out
	case '<':
		t := bytes.ToLower(bytes.TrimSpace(b))
		if bytes.HasPrefix(t, []byte("<!doctype html")) || bytes.HasPrefix(t, []byte("<html")) {
			return body{format: "html", message: htmlTitle(b)}
		}
		var f fault
		if err := xml.Unmarshal(b, &f); err != nil {
			return body{format: "xml", message: "unreadable XML"}
		}
		out := body{format: "xml", code: strings.TrimSpace(f.Code),
			message: firstNonEmpty(strings.TrimSpace(f.Description), strings.TrimSpace(f.Message))}
		if f.XMLName.Local == "fault" {
			switch {
			case f.XMLName.Space == nsAMT || strings.HasPrefix(out.code, "9008"):
				out.fault = "amt"
			default:
				out.fault = "ams"
			}
		}
		if f.Description != "" && f.Message != "" && !strings.EqualFold(f.Description, f.Message) {
			out.message = strings.TrimSpace(f.Message) + ": " + strings.TrimSpace(f.Description)
		}
		return out
	default:
		return body{format: "text", message: strings.TrimSpace(string(b))}
	}
}

func htmlTitle(b []byte) string {
	// Lower ASCII only: bytes.ToLower can change the length (invalid UTF-8
	// becomes U+FFFD), and the indices below must hold in b too.
	lb := lowerASCII(b)
	i := bytes.Index(lb, []byte("<title>"))
	j := bytes.Index(lb, []byte("</title>"))
	if i >= 0 && j > i {
		return "HTML page: " + strings.TrimSpace(string(b[i+len("<title>"):j]))
	}
	return "HTML page"
}

// lowerASCII is b with A–Z lowered, the same length as b.
func lowerASCII(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// throttleText recognises Rakuten's documented throttle wording and the
// WSO2 throttling fault, whatever the status code.
func throttleText(b body) bool {
	m := strings.ToLower(b.message)
	return b.fault == "amt" ||
		strings.Contains(m, "requests allowed per minute") ||
		strings.Contains(m, "throttled") ||
		strings.Contains(m, "rate limit") ||
		strings.Contains(m, "quota")
}

// classify turns a non-2xx response into an *Error.
func classify(status int, h http.Header, raw []byte) *Error {
	b := parseBody(raw)
	e := &Error{HTTPStatus: status, Code: b.code, Message: b.message}
	e.throttle = status == http.StatusTooManyRequests || throttleText(b)
	switch {
	case status >= 300 && status < 400:
		e.Kind = KindRedirect
		e.Code, e.Message = "", "redirect"
		if u, err := url.Parse(h.Get("Location")); err == nil && u.Host != "" {
			// The host only: the rest of the address may carry anything.
			e.Message = "redirect to " + u.Host
		}
		e.Message += " (not followed)"
	case status == http.StatusUnauthorized:
		switch b.code {
		case "900903", "900904":
			e.Kind = KindExpired
		default:
			e.Kind = KindInvalidCredentials
		}
	case status == http.StatusForbidden:
		switch {
		case throttleText(b):
			e.Kind = KindThrottled
		default:
			// "You cannot consume this service" and any other refusal: a
			// 403 we do not recognise is not something retrying can fix.
			e.Kind = KindEntitlement
		}
	case status == http.StatusTooManyRequests:
		e.Kind = KindThrottled
	case status >= 500:
		// Including 503 amt:fault "Message Throttled Out": the gateway
		// shedding load is an outage to the caller; it is retried the same.
		e.Kind = KindUnavailable
	case status == http.StatusBadRequest && b.oauth && oauthRefusal(b.code):
		e.Kind = KindInvalidCredentials
	default:
		e.Kind = KindInvalidRequest
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	if e.Message == "" {
		// A status code without a standard text (e.g. 388).
		e.Message = fmt.Sprintf("HTTP status %d", status)
	}
	e.retryAfter = parseRetryAfter(h.Get("Retry-After"), time.Now())
	return e
}

// oauthRefusal lists the RFC 6749 errors that mean "these credentials or
// this grant will not work", as opposed to a malformed request.
func oauthRefusal(code string) bool {
	switch code {
	case "invalid_grant", "invalid_client", "unauthorized_client", "unsupported_grant_type", "invalid_scope", "access_denied":
		return true
	}
	return false
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var secs int64
	if _, err := fmt.Sscanf(v, "%d", &secs); err == nil && fmt.Sprint(secs) == v {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
