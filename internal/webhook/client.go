package webhook

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// Timeout is how long one delivery attempt may take in all: connecting,
// TLS, sending, the response headers and the part of the body we read.
const Timeout = 10 * time.Second

// MaxResponseBytes is how much of a response (body, and headers) is read.
// The body is then dropped: only the status code is kept.
const MaxResponseBytes = 64 << 10

// ClientOptions configure NewClient. The zero value is the deployed client.
type ClientOptions struct {
	Policy Policy
	// Timeout replaces the package's Timeout when positive (tests shorten it).
	Timeout time.Duration
	// Resolver looks up receivers' names; nil is the system's. Whatever it
	// answers, the address connected to is checked against Policy.
	Resolver *net.Resolver
	// RootCAs replaces the system's roots when set (tests; a local receiver
	// with its own certificate).
	RootCAs *x509.CertPool
}

// NewClient returns the only kind of client Deliver sends through: every
// request's URL is checked with ValidateURL, every connection's address
// with CheckAddr as the socket is about to connect (after DNS, so a name
// that resolves to a private address, or starts to, is refused), redirects
// are returned rather than followed, no proxy is taken from the
// environment, TLS is 1.2 or newer and the whole exchange is bounded by
// the timeout.
func NewClient(o ClientOptions) *http.Client {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = Timeout
	}
	dialer := &net.Dialer{
		Timeout:   timeout,
		KeepAlive: 30 * time.Second,
		Resolver:  o.Resolver,
		Control:   dialControl(o.Policy),
	}
	transport := &http.Transport{
		Proxy:       nil, // never HTTPS_PROXY & co: the proxy would connect, not us
		DialContext: dialer.DialContext,
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    o.RootCAs,
		},
		TLSHandshakeTimeout: timeout,
		ForceAttemptHTTP2:   true, // a custom DialContext turns HTTP/2 off otherwise
		// Compressed responses would make MaxResponseBytes count inflated
		// bytes; we read no body worth compressing anyway.
		DisableCompression:     true,
		MaxResponseHeaderBytes: MaxResponseBytes,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        30 * time.Second,
	}
	return &http.Client{
		Transport: &guard{policy: o.Policy, next: transport},
		// The specification counts a 3xx as a failed attempt: following it
		// would also let a receiver point us at an address it chose.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       timeout,
	}
}

// guard checks each request's URL before the transport sees it, and refuses
// a redirect's request should the client ever be set to follow one.
type guard struct {
	policy Policy
	next   http.RoundTripper
}

var errRedirectRequest = &URLError{Code: CodeURLInvalid, Message: "redirects are not followed: update the webhook URL to the final address"}

func (g *guard) RoundTrip(r *http.Request) (*http.Response, error) {
	var err error
	if r.Response != nil {
		err = errRedirectRequest
	} else {
		err = ValidateURL(r.URL.String(), g.policy)
	}
	if err != nil {
		if r.Body != nil {
			_ = r.Body.Close() // as a RoundTripper must, even on error
		}
		return nil, err
	}
	return g.next.RoundTrip(r)
}

// dialControl returns a net.Dialer Control function that refuses to connect
// a socket to an address p forbids. It runs for every address tried, after
// name resolution and before connect(2): what is checked is what is
// connected to.
func dialControl(p Policy) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		if network != "tcp4" && network != "tcp6" {
			return &URLError{Code: CodeURLInvalid, Message: "only TCP connections are made"}
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return &URLError{Code: CodeURLInvalid, Message: "the address to connect to is not an IP address and port"}
		}
		return CheckAddr(ap.Addr(), p)
	}
}

// policyOf returns the policy of a client made by NewClient.
func policyOf(c *http.Client) (Policy, error) {
	if c != nil {
		if g, ok := c.Transport.(*guard); ok {
			return g.policy, nil
		}
	}
	return Policy{}, errors.New("webhooks are sent only through a client from webhook.NewClient")
}
