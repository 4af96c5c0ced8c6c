package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// operation names the API operation of a request: every client here speaks
// an AWS JSON protocol, whose X-Amz-Target is "<service>.<Operation>".
func operation(r *http.Request) string {
	target := r.Header.Get("X-Amz-Target")
	if _, op, ok := strings.Cut(target, "."); ok {
		return op
	}
	return target
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Counter counts a client's requests on the wire by operation, every
// attempt (the SDK's retries included), for tests that check how often a
// service was called:
//
//	var c testenv.Counter
//	client := testenv.SecretsManagerClient(t, testenv.WithTransport(c.Wrap))
//	…
//	c.Calls("GetSecretValue")
type Counter struct {
	mu sync.Mutex
	n  map[string]int
}

// Wrap is the Counter's transport wrapper, for WithTransport.
func (c *Counter) Wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		c.mu.Lock()
		if c.n == nil {
			c.n = map[string]int{}
		}
		c.n[operation(r)]++
		c.mu.Unlock()
		return next.RoundTrip(r)
	})
}

// Calls returns how many requests of op (e.g. "CreateSecret") were sent.
func (c *Counter) Calls(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[op]
}

// Reset forgets every count.
func (c *Counter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.n)
}

// String lists the counts, for failure messages.
func (c *Counter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprint(c.n)
}

// FailRequests answers chosen requests with an AWS error instead of sending
// them to moto, so a failed request changes nothing: what a throttled or
// failing service does. It fails whole requests only; a batch call's
// per-entry failures belong at the code's own port (see the package doc).
type FailRequests struct {
	mu     sync.Mutex
	queued map[string][]apiError // by operation: errors still to answer
}

type apiError struct{ typ, message string }

// Fail makes the next times requests of op fail with errType, e.g.
// ("GetSecretValue", "InternalServiceError", 3): with the SDK's three
// attempts, one whole failed call. Error types named Internal… or
// ServiceUnavailable are answered with HTTP 500 (which the SDK retries),
// the others with 400.
func (f *FailRequests) Fail(op, errType string, times int) {
	f.FailWithMessage(op, errType, "injected "+errType, times)
}

// FailWithMessage is Fail with the error's message, for code that reads it
// (AWS reports a secret scheduled for deletion only in the message of an
// InvalidRequestException).
func (f *FailRequests) FailWithMessage(op, errType, message string, times int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.queued == nil {
		f.queued = map[string][]apiError{}
	}
	for range times {
		f.queued[op] = append(f.queued[op], apiError{errType, message})
	}
}

// Pending returns how many failures of op are still to be answered.
func (f *FailRequests) Pending(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.queued[op])
}

// Wrap is the FailRequests' transport wrapper, for WithTransport.
func (f *FailRequests) Wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		op := operation(r)
		f.mu.Lock()
		q := f.queued[op]
		if len(q) == 0 {
			f.mu.Unlock()
			return next.RoundTrip(r)
		}
		e := q[0]
		f.queued[op] = q[1:]
		f.mu.Unlock()
		if r.Body != nil {
			_, _ = io.Copy(io.Discard, r.Body)
			_ = r.Body.Close()
		}
		return errorResponse(r, e), nil
	})
}

// errorResponse is an AWS JSON protocol error, which the SDK parses into
// the service's typed error where the service models e.typ.
func errorResponse(r *http.Request, e apiError) *http.Response {
	status := http.StatusBadRequest
	if strings.HasPrefix(e.typ, "Internal") || e.typ == "ServiceUnavailable" {
		status = http.StatusInternalServerError
	}
	body, _ := json.Marshal(map[string]string{"__type": e.typ, "message": e.message})
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/x-amz-json-1.1"
	}
	return &http.Response{
		Status:     strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode: status,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{
			"Content-Type":     {ct},
			"Content-Length":   {strconv.Itoa(len(body))},
			"X-Amzn-Requestid": {"testenv-injected"},
		},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       r,
	}
}
