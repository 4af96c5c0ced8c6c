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

type batchWriteBody struct {
	RequestItems map[string][]json.RawMessage `json:"RequestItems"`
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Counter counts a client's requests on the wire, per operation, every
// attempt included (so SDK retries show). Safe for concurrent use.
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
		if op == "BatchWriteItem" {
			b, err := readBody(req)
			if err != nil {
				return nil, err
			}
			var body batchWriteBody
			if json.Unmarshal(b, &body) == nil {
				for _, reqs := range body.RequestItems {
					items += len(reqs)
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

// WriteItems returns the put and delete requests sent in BatchWriteItem calls.
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
	mu          sync.Mutex
	throttle    map[string]int
	unprocessed int
	injected    map[string]int
}

// NewFaults returns a Faults that injects nothing until told to.
func NewFaults() *Faults { return &Faults{throttle: map[string]int{}, injected: map[string]int{}} }

// Throttle answers the next n requests of op (e.g. "BatchWriteItem") with
// HTTP 400 ProvisionedThroughputExceededException, without reaching the
// server.
func (f *Faults) Throttle(op string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.throttle[op] += n
}

// Unprocess makes the next n BatchWriteItem requests partly processed, as
// DynamoDB does under load: only the first half (rounded down) of each
// table's write requests reaches the server, and the rest comes back in
// UnprocessedItems of an otherwise real response.
func (f *Faults) Unprocess(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unprocessed += n
}

// Clear cancels every pending fault.
func (f *Faults) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.throttle = map[string]int{}
	f.unprocessed = 0
}

// Injected returns how many faults were injected, by kind
// ("throttle:<op>", "unprocessed" for requests, "unprocessedItems" for items).
func (f *Faults) Injected() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.injected)
}

func (f *Faults) take(op string) (throttle, unprocess bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.throttle[op] > 0 {
		f.throttle[op]--
		f.injected["throttle:"+op]++
		return true, false
	}
	if op == "BatchWriteItem" && f.unprocessed > 0 {
		f.unprocessed--
		f.injected["unprocessed"]++
		return false, true
	}
	return false, false
}

func (f *Faults) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		op := operation(req)
		throttle, unprocess := f.take(op)
		switch {
		case throttle:
			if req.Body != nil {
				_, _ = io.Copy(io.Discard, req.Body)
				req.Body.Close()
			}
			return jsonResponse(req, http.StatusBadRequest, []byte(`{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",`+
				`"message":"The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API."}`)), nil
		case unprocess:
			return f.partial(next, req)
		}
		return next.RoundTrip(req)
	})
}

// partial forwards the first half of each table's write requests and adds
// the rest to the real response's UnprocessedItems.
func (f *Faults) partial(next http.RoundTripper, req *http.Request) (*http.Response, error) {
	raw, err := readBody(req)
	if err != nil {
		return nil, err
	}
	var body map[string]json.RawMessage
	var items batchWriteBody
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, fmt.Errorf("dynamotest: BatchWriteItem body: %w", err)
	}
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("dynamotest: BatchWriteItem body: %w", err)
	}
	send := map[string][]json.RawMessage{}
	left := map[string][]json.RawMessage{}
	nLeft := 0
	for table, reqs := range items.RequestItems {
		k := len(reqs) / 2
		if k > 0 {
			send[table] = reqs[:k]
		}
		left[table] = reqs[k:]
		nLeft += len(reqs) - k
	}
	f.mu.Lock()
	f.injected["unprocessedItems"] += nLeft
	f.mu.Unlock()
	var resp *http.Response
	result := map[string]json.RawMessage{}
	if len(send) > 0 {
		body["RequestItems"], _ = json.Marshal(send)
		nb, _ := json.Marshal(body)
		setBody(req, nb)
		resp, err = next.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			return resp, err
		}
		rb, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(rb, &result); err != nil {
			return nil, fmt.Errorf("dynamotest: BatchWriteItem response: %w", err)
		}
	} else if req.Body != nil {
		req.Body.Close()
	}
	// Merge with anything the server itself left unprocessed.
	var serverLeft map[string][]json.RawMessage
	if r, ok := result["UnprocessedItems"]; ok {
		_ = json.Unmarshal(r, &serverLeft)
	}
	for table, reqs := range serverLeft {
		left[table] = append(left[table], reqs...)
	}
	result["UnprocessedItems"], _ = json.Marshal(left)
	out, _ := json.Marshal(result)
	if resp == nil {
		return jsonResponse(req, http.StatusOK, out), nil
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	resp.Header.Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(out)), 10))
	resp.Header.Del("Content-Encoding")
	return resp, nil
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
