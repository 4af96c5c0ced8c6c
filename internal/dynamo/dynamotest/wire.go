package dynamotest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// operation names the DynamoDB operation of a request: the X-Amz-Target
// header without its "DynamoDB_20120810." prefix (e.g. "BatchWriteItem").
func operation(req *http.Request) string {
	t := req.Header.Get("X-Amz-Target")
	if i := strings.LastIndexByte(t, '.'); i >= 0 {
		return t[i+1:]
	}
	return t
}

// readBody reads and restores the request body.
func readBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	b, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	setBody(req, b)
	return b, nil
}

func setBody(req *http.Request, b []byte) {
	req.Body = io.NopCloser(bytes.NewReader(b))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	req.ContentLength = int64(len(b))
	req.Header.Set("Content-Length", strconv.Itoa(len(b)))
}

// transactBody is a TransactWriteItems request: one action per entry.
type transactBody struct {
	TransactItems []map[string]json.RawMessage `json:"TransactItems"`
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Counter counts a client's requests on the wire, per operation, every
// attempt included (so SDK retries show), and the items transactions put.
// Safe for concurrent use.
type Counter struct {
	mu         sync.Mutex
	ops        map[string]int
	writeItems int
}

// NewCounter returns an empty counter; pass it to Client with WithCounter.
func NewCounter() *Counter { return &Counter{ops: map[string]int{}} }

func (c *Counter) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		op := operation(req)
		items := 0
		if op == "TransactWriteItems" {
			b, err := readBody(req)
			if err != nil {
				return nil, err
			}
			var body transactBody
			if json.Unmarshal(b, &body) == nil {
				for _, it := range body.TransactItems {
					if _, ok := it["Put"]; ok {
						items++
					}
				}
			}
		}
		c.mu.Lock()
		c.ops[op]++
		c.writeItems += items
		c.mu.Unlock()
		return next.RoundTrip(req)
	})
}

// Ops returns a copy of the request count per operation.
func (c *Counter) Ops() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.ops)
}

// Op returns the request count of one operation.
func (c *Counter) Op(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ops[op]
}

// WriteItems returns the puts sent in TransactWriteItems calls.
func (c *Counter) WriteItems() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writeItems
}

// Reset zeroes the counter.
func (c *Counter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ops = map[string]int{}
	c.writeItems = 0
}

// Faults injects failures as DynamoDB itself produces them, at the HTTP
// level, below the SDK (so the SDK's retryer and error parsing run as in
// production). Safe for concurrent use.
type Faults struct {
	mu        sync.Mutex
	throttle  map[string]int
	conflicts int
	injected  map[string]int
}

// NewFaults returns a Faults that injects nothing until told to.
func NewFaults() *Faults { return &Faults{throttle: map[string]int{}, injected: map[string]int{}} }

// Throttle answers the next n requests of op (e.g. "TransactWriteItems")
// with HTTP 400 ProvisionedThroughputExceededException, without reaching
// the server.
func (f *Faults) Throttle(op string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.throttle[op] += n
}

// Conflict cancels the next n TransactWriteItems requests the way DynamoDB
// does when another transaction holds one of the items: a
// TransactionCanceledException whose first reason is TransactionConflict
// (the others None), without reaching the server.
func (f *Faults) Conflict(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conflicts += n
}

// Clear cancels every pending fault.
func (f *Faults) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.throttle = map[string]int{}
	f.conflicts = 0
}

// Injected returns how many faults were injected, by kind
// ("throttle:<op>", "conflict").
func (f *Faults) Injected() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.injected)
}

func (f *Faults) take(op string) (throttle, conflict bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.throttle[op] > 0 {
		f.throttle[op]--
		f.injected["throttle:"+op]++
		return true, false
	}
	if op == "TransactWriteItems" && f.conflicts > 0 {
		f.conflicts--
		f.injected["conflict"]++
		return false, true
	}
	return false, false
}

func (f *Faults) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		op := operation(req)
		throttle, conflict := f.take(op)
		switch {
		case throttle:
			if req.Body != nil {
				_, _ = io.Copy(io.Discard, req.Body)
				req.Body.Close()
			}
			return jsonResponse(req, http.StatusBadRequest, []byte(`{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",`+
				`"message":"The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API."}`)), nil
		case conflict:
			return cancelled(req)
		}
		return next.RoundTrip(req)
	})
}

// cancelled answers a TransactWriteItems request with DynamoDB's
// cancellation for a conflicting transaction.
func cancelled(req *http.Request) (*http.Response, error) {
	raw, err := readBody(req)
	if err != nil {
		return nil, err
	}
	var body transactBody
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, fmt.Errorf("dynamotest: TransactWriteItems body: %w", err)
	}
	type reason struct {
		Code    string
		Message string `json:",omitempty"`
	}
	reasons := make([]reason, len(body.TransactItems))
	codes := make([]string, len(reasons))
	for i := range reasons {
		reasons[i], codes[i] = reason{Code: "None"}, "None"
	}
	if len(reasons) > 0 {
		reasons[0] = reason{Code: "TransactionConflict", Message: "Transaction is ongoing for the item"}
		codes[0] = "TransactionConflict"
	}
	out, _ := json.Marshal(map[string]any{
		"__type":              "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
		"Message":             "Transaction cancelled, please refer cancellation reasons for specific reasons [" + strings.Join(codes, ", ") + "]",
		"CancellationReasons": reasons,
	})
	return jsonResponse(req, http.StatusBadRequest, out), nil
}

func jsonResponse(req *http.Request, status int, body []byte) *http.Response {
	h := http.Header{}
	h.Set("Content-Type", "application/x-amz-json-1.0")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Amzn-Requestid", "dynamotest-injected")
	h.Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10))
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", status, http.StatusText(status)),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}
