package sandbox

import (
	"net/http"
	"strings"
	"time"
)

// Fault is an injected failure. The next matching request (after skipping
// AfterCalls of them) waits Delay and, if Status is set, gets Status with
// Body instead of the real answer; with Status 0 it is only delayed.
type Fault struct {
	Endpoint    string // "token", "partnerships", "linklocator"; "" matches all
	Times       int    // how many requests it hits: 0 means 1, negative means forever
	Status      int
	Body        string
	ContentType string      // default: guessed from Body's first byte
	Header      http.Header // extra headers, e.g. Retry-After
	Delay       time.Duration
	AfterCalls  int // skip the first N matching requests after Inject
}

type fault struct {
	Fault
	startAt   int // the endpoint's seen-count after which it applies
	remaining int // < 0: forever
}

// Inject queues a fault. Faults apply in the order injected; a request
// takes at most one.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := &fault{Fault: f, startAt: s.seenFor(f.Endpoint) + f.AfterCalls, remaining: f.Times}
	if in.remaining == 0 {
		in.remaining = 1
	}
	s.faults = append(s.faults, in)
}

// ClearFaults drops every pending fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

func (s *Server) seenFor(ep string) int {
	if ep != "" {
		return s.seen[ep]
	}
	n := 0
	for _, v := range s.seen {
		n += v
	}
	return n
}

// takeFault returns the fault for this request, if any; s.mu is held and
// the request has already been counted.
func (s *Server) takeFault(ep string) *Fault {
	for i, f := range s.faults {
		if f.Endpoint != "" && f.Endpoint != ep {
			continue
		}
		if s.seenFor(f.Endpoint) <= f.startAt {
			continue
		}
		out := f.Fault
		if f.remaining > 0 {
			f.remaining--
			if f.remaining == 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return &out
	}
	return nil
}

func (f *Fault) write(w http.ResponseWriter) {
	for k, vs := range f.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	ct := f.ContentType
	if ct == "" {
		switch t := strings.TrimSpace(f.Body); {
		case strings.HasPrefix(t, "{"):
			ct = "application/json; charset=utf-8"
		case strings.HasPrefix(strings.ToLower(t), "<!doctype html"), strings.HasPrefix(strings.ToLower(t), "<html"):
			ct = "text/html; charset=utf-8"
		case strings.HasPrefix(t, "<"):
			ct = "application/xml; charset=UTF-8"
		default:
			ct = "text/plain; charset=utf-8"
		}
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(f.Status)
	w.Write([]byte(f.Body))
}

// Canned faults, each hitting the partnerships endpoint once; change
// Endpoint, Times or AfterCalls as needed.

// ThrottleFault403 is Rakuten's documented rate-limit answer.
func ThrottleFault403() Fault {
	return Fault{Endpoint: EndpointPartnerships, Times: 1, Status: http.StatusForbidden,
		Body: `{"message":"The number of requests allowed per minute has been exceeded"}`}
}

// Throttle429 is generic gateway throttling with a Retry-After of 1 second.
func Throttle429() Fault {
	return Fault{Endpoint: EndpointPartnerships, Times: 1, Status: http.StatusTooManyRequests,
		Header: http.Header{"Retry-After": {"1"}},
		Body: `<amt:fault xmlns:amt="http://wso2.org/apimanager/throttling"><amt:code>900800</amt:code>` +
			`<amt:message>Message Throttled Out</amt:message><amt:description>You have exceeded your quota</amt:description></amt:fault>`}
}

// Unavailable503XML is the gateway shedding load (amt:fault 900800).
func Unavailable503XML() Fault {
	return Fault{Endpoint: EndpointPartnerships, Times: 1, Status: http.StatusServiceUnavailable,
		Body: `<amt:fault xmlns:amt="http://wso2.org/apimanager/throttling"><amt:code>900800</amt:code>` +
			`<amt:message>Message Throttled Out</amt:message><amt:description>You have exceeded your quota</amt:description></amt:fault>`}
}

// ServerError500JSON is the Partnerships API's documented 500.
func ServerError500JSON() Fault {
	return Fault{Endpoint: EndpointPartnerships, Times: 1, Status: http.StatusInternalServerError,
		Body: `{"message":"An unexpected error occurred","error":"UNEXPECTED_ERROR"}`}
}

// MalformedJSON is a 200 whose JSON is cut short.
func MalformedJSON() Fault {
	return Fault{Endpoint: EndpointPartnerships, Times: 1, Status: http.StatusOK,
		ContentType: "application/json", Body: `{"_metadata":{"page":1,"limit":200,"total":`}
}

// HTMLErrorPage is a maintenance page served with 200 by something in
// front of the API: it must not be read as an empty page.
func HTMLErrorPage() Fault {
	return Fault{Endpoint: EndpointPartnerships, Times: 1, Status: http.StatusOK,
		Body: `<!DOCTYPE html><html><head><title>Scheduled Maintenance</title></head><body><h1>We'll be back soon</h1></body></html>`}
}

// ExpiredTokenFault is the gateway's 401 for an expired access token.
func ExpiredTokenFault() Fault {
	return Fault{Endpoint: EndpointPartnerships, Times: 1, Status: http.StatusUnauthorized,
		Body: amsFault("900903", "Access Token Expired", "Access Token Expired. Renew the access token and try again")}
}

// EntitlementFault403 is "You cannot consume this service": the
// application is not subscribed to the API. Not a throttle.
func EntitlementFault403() Fault {
	return Fault{Endpoint: EndpointPartnerships, Times: 1, Status: http.StatusForbidden,
		Body: amsFault("900908", "Resource forbidden", "You cannot consume this service")}
}
