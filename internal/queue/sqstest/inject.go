package sqstest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// FailEntries is an http.RoundTripper for the SQS client that makes
// SendMessageBatch entries fail at the wire level: it takes the chosen
// entries out of the request (so they are really not enqueued) and adds
// them to the response's Failed list, which the real SDK client then
// parses. Arm it with Fail.
type FailEntries struct {
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// PerCall is the most entries failed in one call; 0 means 3.
	PerCall int
	// TimesPerEntry is how often the same message may fail; 0 means once,
	// so that a retried entry goes through.
	TimesPerEntry int

	mu             sync.Mutex
	transient      int // entries still to fail with SenderFault=false
	sender         int // entries still to fail with SenderFault=true
	injected       int
	injectedSender int
	failedBodies   []string       // message bodies of failed entries, in order
	failCount      map[string]int // by message body
}

// failOrder is the order in which positions of a call are picked to fail:
// the middle of the batch first.
var failOrder = []int{1, 4, 7, 0, 2, 3, 5, 6, 8, 9}

// Fail arms the next n entries (over as many calls as PerCall needs) to
// fail, with SenderFault senderFault.
func (f *FailEntries) Fail(n int, senderFault bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if senderFault {
		f.sender += n
	} else {
		f.transient += n
	}
}

// Injected returns how many entries were failed so far, without and with
// SenderFault.
func (f *FailEntries) Injected() (transient, senderFault int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.injected, f.injectedSender
}

// FailedBodies returns the message bodies of the entries failed so far.
func (f *FailEntries) FailedBodies() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.failedBodies...)
}

type failure struct {
	Id          string
	Code        string
	Message     string
	SenderFault bool
}

// RoundTrip implements http.RoundTripper.
func (f *FailEntries) RoundTrip(req *http.Request) (*http.Response, error) {
	base := f.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if req.Header.Get("X-Amz-Target") != "AmazonSQS.SendMessageBatch" || req.Body == nil {
		return base.RoundTrip(req)
	}
	f.mu.Lock()
	armed := f.transient+f.sender > 0
	f.mu.Unlock()
	if !armed {
		return base.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	_ = req.Body.Close()
	if err != nil {
		return nil, err
	}
	var in map[string]json.RawMessage
	var entries []map[string]any
	if json.Unmarshal(body, &in) != nil || json.Unmarshal(in["Entries"], &entries) != nil {
		return base.RoundTrip(withBody(req, body))
	}

	perCall := f.PerCall
	if perCall <= 0 {
		perCall = 3
	}
	times := f.TimesPerEntry
	if times <= 0 {
		times = 1
	}
	var keep []map[string]any
	var failed []failure
	f.mu.Lock()
	if f.failCount == nil {
		f.failCount = map[string]int{}
	}
	pick := map[int]bool{}
	for _, i := range failOrder {
		if i >= len(entries) || len(pick) >= perCall || len(pick) >= f.transient+f.sender {
			continue
		}
		if b, _ := entries[i]["MessageBody"].(string); f.failCount[b] < times {
			pick[i] = true
		}
	}
	for i, e := range entries {
		if pick[i] {
			id, _ := e["Id"].(string)
			fl := failure{Id: id, Code: "InternalError", Message: "injected failure"}
			if f.sender > 0 {
				f.sender--
				f.injectedSender++
				fl.Code, fl.Message, fl.SenderFault = "InvalidMessageContents", "injected sender fault", true
			} else {
				f.transient--
				f.injected++
			}
			b, _ := e["MessageBody"].(string)
			f.failCount[b]++
			f.failedBodies = append(f.failedBodies, b)
			failed = append(failed, fl)
			continue
		}
		keep = append(keep, e)
	}
	f.mu.Unlock()
	if len(failed) == 0 {
		return base.RoundTrip(withBody(req, body))
	}

	result := map[string]json.RawMessage{}
	var resp *http.Response
	if len(keep) > 0 {
		in["Entries"], _ = json.Marshal(keep)
		nb, _ := json.Marshal(in)
		resp, err = base.RoundTrip(withBody(req, nb))
		if err != nil {
			return nil, err
		}
		rb, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(rb, &result) != nil {
			resp.Body = io.NopCloser(bytes.NewReader(rb))
			return resp, nil // a whole-call error stays one
		}
	} else {
		resp = &http.Response{
			Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/x-amz-json-1.0"}}, Request: req,
		}
	}
	var prior []failure
	if raw, ok := result["Failed"]; ok {
		_ = json.Unmarshal(raw, &prior)
	}
	result["Failed"], _ = json.Marshal(append(prior, failed...))
	if _, ok := result["Successful"]; !ok {
		result["Successful"] = json.RawMessage("[]")
	}
	out, _ := json.Marshal(result)
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	resp.Header.Del("Content-Encoding")
	return resp, nil
}

func withBody(req *http.Request, body []byte) *http.Request {
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.ContentLength = int64(len(body))
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	if strings.EqualFold(r.Header.Get("Transfer-Encoding"), "chunked") {
		r.Header.Del("Transfer-Encoding")
	}
	return r
}
