package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ErrorKind says why an attempt failed, for metrics, for the retry decision
// and for the endpoint's delivery log.
type ErrorKind string

const (
	KindRequest  ErrorKind = "invalid_request" // our side: key, id, body or client unfit to send
	KindURL      ErrorKind = "url_refused"     // the URL, or the address its name resolved to, is not allowed
	KindDNS      ErrorKind = "dns"             // the receiver's name did not resolve
	KindConnect  ErrorKind = "connect"         // no connection (refused, unreachable)
	KindTLS      ErrorKind = "tls"             // handshake or certificate failure
	KindTimeout  ErrorKind = "timeout"         // no response within the timeout
	KindRedirect ErrorKind = "redirect"        // a 3xx: not followed, the URL needs updating
	KindStatus   ErrorKind = "http_status"     // any other non-2xx status
	KindCanceled ErrorKind = "canceled"        // our context ended (the Lambda's deadline)
	KindNetwork  ErrorKind = "network"         // any other transport failure
)

// AttemptError is a failed attempt's kind and a short text for people. The
// text never holds the URL, the secret, the signature or the response body.
type AttemptError struct {
	Kind ErrorKind
	Text string
}

func (e *AttemptError) Error() string { return string(e.Kind) + ": " + e.Text }

// Attempt is the outcome of one delivery attempt: all that is kept of it.
type Attempt struct {
	Success    bool
	StatusCode int           // 0 when no response arrived
	Err        *AttemptError // nil on success
	Duration   time.Duration
	// RetryAfter is the receiver's Retry-After on a failed attempt (0 when
	// absent), capped at MaxDelay; the retry waits at least this long.
	RetryAfter time.Duration
	// ResponseBytes is how much of the body was read (≤ MaxResponseBytes).
	ResponseBytes int64
}

// Retryable reports whether another attempt could succeed: not after a
// success, a request we cannot send or a refused URL, nor after 410 Gone,
// the specification's signal that the receiver wants no more webhooks (the
// endpoint should then be disabled).
func (a Attempt) Retryable() bool {
	if a.Success || a.StatusCode == http.StatusGone || a.Err == nil {
		return false
	}
	return a.Err.Kind != KindRequest && a.Err.Kind != KindURL
}

// Deliver makes one attempt to POST msg to url, signed with key at time at
// (the webhook-timestamp), through a client from NewClient. Any 2xx is a
// success, whatever happens to the body afterwards; the response body is
// read up to MaxResponseBytes, so that the connection can be reused, and
// dropped.
func Deliver(ctx context.Context, c *http.Client, url string, key []byte, msg Message, at time.Time) Attempt {
	start := time.Now()
	a := deliver(ctx, c, url, key, msg, at)
	a.Duration = time.Since(start)
	return a
}

func deliver(ctx context.Context, c *http.Client, url string, key []byte, msg Message, at time.Time) Attempt {
	policy, err := policyOf(c)
	switch {
	case err != nil:
		return failed(KindRequest, err.Error())
	case len(key) < MinKeyBytes || len(key) > MaxKeyBytes:
		return failed(KindRequest, "the signing key must be "+strconv.Itoa(MinKeyBytes)+" to "+strconv.Itoa(MaxKeyBytes)+" bytes")
	case !ValidMessageID(msg.ID):
		return failed(KindRequest, "the message id is not fit to send")
	case len(msg.Body) > MaxBodyBytes:
		return failed(KindRequest, "the body is longer than "+strconv.Itoa(MaxBodyBytes)+" bytes")
	}
	var urlErr *URLError
	if err := ValidateURL(url, policy); errors.As(err, &urlErr) {
		return failed(KindURL, urlErr.Message)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(msg.Body))
	if err != nil {
		return failed(KindRequest, "the request could not be built")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "merchantsync-webhooks/1")
	req.Header.Set(HeaderID, msg.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(key, msg.ID, at, msg.Body))

	resp, err := c.Do(req)
	if err != nil {
		return classify(ctx, c, err)
	}
	n, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseBytes))
	_ = resp.Body.Close()

	a := Attempt{StatusCode: resp.StatusCode, ResponseBytes: n}
	switch code := resp.StatusCode; {
	case code >= 200 && code <= 299:
		a.Success = true
		return a
	case code >= 300 && code <= 399:
		a.Err = &AttemptError{KindRedirect, "HTTP " + strconv.Itoa(code) + ": redirects are not followed; update the webhook URL to the final address"}
	default:
		a.Err = &AttemptError{KindStatus, "HTTP " + strconv.Itoa(code)}
	}
	a.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), at)
	return a
}

func failed(kind ErrorKind, text string) Attempt {
	return Attempt{Err: &AttemptError{Kind: kind, Text: text}}
}

// classify turns a client error into an attempt's error. The texts are
// built from the error's parts, never from the *url.Error around them,
// whose text holds the whole URL (query tokens included).
func classify(ctx context.Context, c *http.Client, err error) Attempt {
	var (
		urlErr  *URLError
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		hostErr x509.HostnameError
		opErr   *net.OpError
		netErr  net.Error
	)
	switch {
	case errors.As(err, &urlErr):
		return failed(KindURL, urlErr.Message)
	case ctx.Err() != nil:
		return failed(KindCanceled, "the delivery was stopped: "+ctx.Err().Error())
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return failed(KindDNS, "the host name does not resolve (no such host)")
		}
		return failed(KindDNS, "the host name could not be resolved: "+short(dnsErr.Err))
	case errors.As(err, &netErr) && netErr.Timeout():
		return failed(KindTimeout, "no response within "+c.Timeout.String())
	case errors.As(err, &certErr):
		return failed(KindTLS, "the server's certificate was not accepted: "+short(certErr.Err.Error()))
	case errors.As(err, &hostErr):
		return failed(KindTLS, "the server's certificate is for another host")
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return failed(KindConnect, "could not connect: "+short(opErr.Err.Error()))
	}
	if u := errors.Unwrap(err); u != nil {
		err = u // the *url.Error's cause, without the URL
	}
	if text := err.Error(); strings.Contains(text, "tls: ") {
		// A handshake failure: an alert from the server ("remote error:
		// tls: …") or a record that is not TLS.
		return failed(KindTLS, "the TLS handshake failed: "+short(text))
	}
	return failed(KindNetwork, short(err.Error()))
}

// short keeps an error text to one plain line of at most 200 bytes, cut
// before any quoted part: net/http and net/textproto quote what they
// received when a response is malformed, and no part of a response is
// kept.
func short(s string) string {
	if i := strings.IndexByte(s, '"'); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	b := []byte(s)
	for i, c := range b {
		if c < ' ' || c >= 0x7f {
			b[i] = ' '
		}
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

// retryAfter reads a Retry-After value (delay-seconds or an HTTP date,
// taken relative to the attempt's time) and caps it at MaxDelay.
func retryAfter(v string, at time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(MaxDelay/time.Second) {
			return MaxDelay
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(at.Truncate(time.Second))
	}
	return min(max(d, 0), MaxDelay)
}
