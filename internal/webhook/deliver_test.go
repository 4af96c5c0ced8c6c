package webhook

import (
	"bytes"
	"context"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDeliverSuccess: the receiver gets the exact body, the three headers
// and a signature its own verification (ours, here; svix's in
// TestSignaturesVerifyWithSvix) accepts; every 2xx is a success.
func TestDeliverSuccess(t *testing.T) {
	secret := NewSecret()
	msg := testMessage(t)
	at := time.Now().Truncate(time.Second)
	for _, status := range []int{200, 201, 202, 204, 299} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			var verr error
			var got http.Header
			var body []byte
			r := newReceiver(t, func(w http.ResponseWriter, req *http.Request) {
				got = req.Header.Clone()
				body, _ = io.ReadAll(req.Body)
				verr = Verify(secret.Key(), req.Header, body, time.Now())
				w.WriteHeader(status)
			})
			a := Deliver(context.Background(), devClient(r, ClientOptions{}), r.URL+"/hook", secret.Key(), msg, at)
			if !a.Success || a.StatusCode != status || a.Err != nil || a.Retryable() {
				t.Fatalf("attempt %+v, want a success with %d", a, status)
			}
			if verr != nil {
				t.Fatalf("the receiver's verification: %v", verr)
			}
			if !bytes.Equal(body, msg.Body) {
				t.Fatalf("body %q, want %q", body, msg.Body)
			}
			if got.Get("webhook-id") != msg.ID || got.Get("webhook-timestamp") != strconv.FormatInt(at.Unix(), 10) ||
				got.Get("Content-Type") != "application/json" || got.Get("webhook-signature") != Sign(secret.Key(), msg.ID, at, msg.Body) {
				t.Fatalf("headers %v", got)
			}
		})
	}
}

// TestDeliverFailures: statuses other than 2xx fail with their kind,
// 410 is final, Retry-After is kept.
func TestDeliverFailures(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		status     int
		retryAfter string
		kind       ErrorKind
		retryable  bool
		wait       time.Duration
	}{
		{400, "", KindStatus, true, 0},
		{401, "", KindStatus, true, 0},
		{404, "", KindStatus, true, 0},
		{410, "", KindStatus, false, 0},
		{429, "120", KindStatus, true, 2 * time.Minute},
		{429, "999999999", KindStatus, true, MaxDelay},
		{429, "-5", KindStatus, true, 0},
		{429, "soon", KindStatus, true, 0},
		{500, "", KindStatus, true, 0},
		{502, "", KindStatus, true, 0},
		{503, at.Add(time.Hour).Format(http.TimeFormat), KindStatus, true, time.Hour},
		{503, at.Add(-time.Hour).Format(http.TimeFormat), KindStatus, true, 0},
		{504, "", KindStatus, true, 0},
	}
	for _, c := range cases {
		t.Run(strconv.Itoa(c.status)+"/"+c.retryAfter, func(t *testing.T) {
			r := newReceiver(t, func(w http.ResponseWriter, req *http.Request) {
				if c.retryAfter != "" {
					w.Header().Set("Retry-After", c.retryAfter)
				}
				w.WriteHeader(c.status)
			})
			a := Deliver(context.Background(), devClient(r, ClientOptions{}), r.URL, NewSecret().Key(), testMessage(t), at)
			if a.Success || a.StatusCode != c.status || a.Err == nil || a.Err.Kind != c.kind || a.Retryable() != c.retryable || a.RetryAfter != c.wait {
				t.Fatalf("attempt %+v (err %v), want kind %s, retryable %v, retry after %s", a, a.Err, c.kind, c.retryable, c.wait)
			}
		})
	}
}

// TestDeliverDoesNotFollowRedirects: a 3xx pointing at a second server is
// the attempt's result; the second server receives nothing.
func TestDeliverDoesNotFollowRedirects(t *testing.T) {
	target := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {})
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			r := newReceiver(t, func(w http.ResponseWriter, req *http.Request) {
				http.Redirect(w, req, target.URL+"/elsewhere", status)
			})
			// Both servers share httptest's certificate: one client trusts both.
			a := Deliver(context.Background(), devClient(r, ClientOptions{}), r.URL, NewSecret().Key(), testMessage(t), time.Now())
			if a.Success || a.StatusCode != status || a.Err == nil || a.Err.Kind != KindRedirect || !a.Retryable() {
				t.Fatalf("attempt %+v (err %v), want a %d redirect failure", a, a.Err, status)
			}
			if r.hits.Load() != 1 || target.hits.Load() != 0 {
				t.Fatalf("first server %d requests, redirect target %d: want 1 and 0", r.hits.Load(), target.hits.Load())
			}
		})
	}
	// Even a client set to follow redirects does not (the guard refuses the
	// redirect's request).
	r := newReceiver(t, func(w http.ResponseWriter, req *http.Request) {
		http.Redirect(w, req, target.URL, http.StatusTemporaryRedirect)
	})
	c := devClient(r, ClientOptions{})
	c.CheckRedirect = nil
	if resp, err := c.Post(r.URL, "application/json", strings.NewReader("{}")); err == nil {
		resp.Body.Close()
		t.Fatalf("a client set to follow redirects got %s", resp.Status)
	}
	if target.hits.Load() != 0 {
		t.Fatalf("the redirect target got %d requests", target.hits.Load())
	}
}

// TestDeliverReadsAtMost64KiB: a receiver that answers 200 and streams 10 MB
// (and would then hold the response open) costs one attempt that reads
// 64 KiB and hangs up.
func TestDeliverReadsAtMost64KiB(t *testing.T) {
	const total = 10 << 20
	sent := make(chan int, 1)
	r := newReceiver(t, func(w http.ResponseWriter, req *http.Request) {
		// With the body read, net/http notices the client hanging up.
		_, _ = io.Copy(io.Discard, req.Body)
		w.WriteHeader(http.StatusOK)
		chunk := bytes.Repeat([]byte("x"), 32<<10)
		n := 0
		for n < total {
			k, err := w.Write(chunk)
			n += k
			if err != nil {
				break
			}
			w.(http.Flusher).Flush()
		}
		sent <- n
		<-req.Context().Done() // a client that reads to the end waits here until its timeout
	})
	// The timeout only ends a broken client's wait: a correct one returns first.
	a := Deliver(context.Background(), devClient(r, ClientOptions{Timeout: 20 * time.Second}), r.URL, NewSecret().Key(), testMessage(t), time.Now())
	if !a.Success || a.StatusCode != 200 || a.ResponseBytes != MaxResponseBytes {
		t.Fatalf("attempt %+v (err %v), want a success having read %d bytes", a, a.Err, MaxResponseBytes)
	}
	if n := <-sent; n >= total {
		t.Fatalf("the receiver could write all %d bytes: the client kept reading", n)
	}
}

// TestDeliverTimeout: a receiver that never answers costs an attempt that
// ends with the (here shortened) timeout.
func TestDeliverTimeout(t *testing.T) {
	release := make(chan struct{})
	r := newReceiver(t, func(w http.ResponseWriter, req *http.Request) {
		select {
		case <-req.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	// The context only ends a broken client's wait (it would then report
	// canceled, not timeout).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := Deliver(ctx, devClient(r, ClientOptions{Timeout: 200 * time.Millisecond}), r.URL, NewSecret().Key(), testMessage(t), time.Now())
	if a.Success || a.StatusCode != 0 || a.Err == nil || a.Err.Kind != KindTimeout || !a.Retryable() {
		t.Fatalf("attempt %+v (err %v), want a timeout", a, a.Err)
	}
}

// TestDeliverCanceled: our own context ending is not the receiver's fault
// and says so.
func TestDeliverCanceled(t *testing.T) {
	r := newReceiver(t, func(w http.ResponseWriter, req *http.Request) {})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a := Deliver(ctx, devClient(r, ClientOptions{}), r.URL, NewSecret().Key(), testMessage(t), time.Now())
	if a.Success || a.Err == nil || a.Err.Kind != KindCanceled || r.hits.Load() != 0 {
		t.Fatalf("attempt %+v (err %v), %d requests; want canceled, none sent", a, a.Err, r.hits.Load())
	}
}

// TestDeliverRefusesBadInput: nothing is sent with an unfit key, id, body,
// URL or client.
func TestDeliverRefusesBadInput(t *testing.T) {
	r := newReceiver(t, func(w http.ResponseWriter, req *http.Request) {})
	c := devClient(r, ClientOptions{})
	key := NewSecret().Key()
	msg := testMessage(t)
	badID, bigBody := msg, msg
	badID.ID = "msg.1"
	bigBody.Body = bytes.Repeat([]byte("x"), MaxBodyBytes+1)
	cases := []struct {
		name string
		c    *http.Client
		url  string
		key  []byte
		msg  Message
		kind ErrorKind
	}{
		{"default client", http.DefaultClient, r.URL, key, msg, KindRequest},
		{"nil client", nil, r.URL, key, msg, KindRequest},
		{"short key", c, r.URL, key[:16], msg, KindRequest},
		{"no key", c, r.URL, nil, msg, KindRequest},
		{"id with a dot", c, r.URL, key, badID, KindRequest},
		{"body too long", c, r.URL, key, bigBody, KindRequest},
		{"private address", c, "https://10.0.0.1/", key, msg, KindURL},
		{"credentials", c, strings.Replace(r.URL, "https://", "https://u:p@", 1), key, msg, KindURL},
		{"plain http elsewhere", c, "http://hooks.example.com/", key, msg, KindURL},
	}
	for _, tc := range cases {
		a := Deliver(context.Background(), tc.c, tc.url, tc.key, tc.msg, time.Now())
		if a.Success || a.Err == nil || a.Err.Kind != tc.kind || a.Retryable() {
			t.Errorf("%s: attempt %+v (err %v), want final %s", tc.name, a, a.Err, tc.kind)
		}
	}
	if n := r.hits.Load(); n != 0 {
		t.Fatalf("%d requests reached the receiver", n)
	}
}

// BenchmarkDeliver is one attempt against an in-process https receiver
// over a kept-alive connection; "plain" is the same POST through a bare
// http.Client, so the difference is what Deliver adds (checks, signing,
// headers, the capped read).
func BenchmarkDeliver(b *testing.B) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	msg := testMessage(b)
	key := NewSecret().Key()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())

	b.Run("Deliver", func(b *testing.B) {
		c := NewClient(ClientOptions{Policy: localDev, RootCAs: pool})
		b.ReportAllocs()
		for b.Loop() {
			if a := Deliver(context.Background(), c, srv.URL, key, msg, time.Now()); !a.Success {
				b.Fatal(a.Err)
			}
		}
	})
	b.Run("plain", func(b *testing.B) {
		c := srv.Client()
		b.ReportAllocs()
		for b.Loop() {
			resp, err := c.Post(srv.URL, "application/json", bytes.NewReader(msg.Body))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
