package webhook

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestDialRefusesResolvedPrivateAddresses: a public-looking name that
// resolves, at delivery time, to a refused address is not connected to —
// even when a server listens there. The same setup under the local
// development policy does reach the server, which shows the name really
// resolved to it.
func TestDialRefusesResolvedPrivateAddresses(t *testing.T) {
	r := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {})
	loop4, loop6 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")
	dns := fakeDNS(t, map[string][]netip.Addr{
		"loopback.example.com.":  {loop4},
		"mapped.example.com.":    {netip.MustParseAddr("::ffff:127.0.0.1")},
		"private.example.com.":   {netip.MustParseAddr("10.1.2.3")},
		"metadata.example.com.":  {netip.MustParseAddr("169.254.169.254"), netip.MustParseAddr("fd00:ec2::254")},
		"cgnat.example.com.":     {netip.MustParseAddr("100.64.0.1")},
		"nat64.example.com.":     {netip.MustParseAddr("64:ff9b::a9fe:a9fe")},
		"ula.example.com.":       {netip.MustParseAddr("fd12:3456::1")},
		"linklocal.example.com.": {netip.MustParseAddr("fe80::1")},
		"zero.example.com.":      {netip.MustParseAddr("0.0.0.0")},
		"both.example.com.":      {loop4, loop6},
	})
	deployedClient := NewClient(ClientOptions{Resolver: dns, RootCAs: roots(r)})
	for _, name := range []string{"loopback", "mapped", "private", "metadata", "cgnat", "nat64", "ula", "linklocal", "zero", "both"} {
		url := "https://" + name + ".example.com:" + r.port() + "/hook"
		if err := ValidateURL(url, deployed); err != nil {
			t.Fatalf("%s: ValidateURL refused it already (%v): the test would not reach the dial check", url, err)
		}
		a := Deliver(context.Background(), deployedClient, url, NewSecret().Key(), testMessage(t), time.Now())
		if a.Success || a.Err == nil || a.Err.Kind != KindURL || a.Retryable() {
			t.Errorf("%s: attempt %+v (err %v), want %s", name, a, a.Err, KindURL)
		}
	}
	if n := r.hits.Load(); n != 0 {
		t.Fatalf("the server on 127.0.0.1 got %d requests", n)
	}

	// The control: loopback allowed, the same names reach the server.
	devc := NewClient(ClientOptions{Policy: localDev, Resolver: dns, RootCAs: roots(r)})
	for _, name := range []string{"loopback", "mapped", "both"} {
		a := Deliver(context.Background(), devc, "https://"+name+".example.com:"+r.port()+"/hook", NewSecret().Key(), testMessage(t), time.Now())
		if !a.Success {
			t.Fatalf("%s under AllowLoopbackHTTP: attempt %+v (err %v), want a success", name, a, a.Err)
		}
	}
	// …and loopback is all it opens.
	a := Deliver(context.Background(), devc, "https://metadata.example.com:"+r.port()+"/", NewSecret().Key(), testMessage(t), time.Now())
	if a.Err == nil || a.Err.Kind != KindURL {
		t.Fatalf("metadata under AllowLoopbackHTTP: attempt %+v (err %v), want %s", a, a.Err, KindURL)
	}
}

// TestDialCheckBehindEveryRequest: the client refuses a loopback server
// whatever asks it to connect (no Deliver, a name from /etc/hosts).
func TestDialCheckBehindEveryRequest(t *testing.T) {
	r := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {})
	c := NewClient(ClientOptions{RootCAs: roots(r)})
	for _, url := range []string{r.URL, "https://localhost:" + r.port() + "/", "http://127.0.0.1:" + r.port() + "/"} {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			t.Errorf("GET %s: %s, want a refusal", url, resp.Status)
		}
	}
	// Past ValidateURL (which refuses localhost by name), the dial check
	// refuses what localhost resolves to.
	if err := dialControl(deployed)("tcp4", "127.0.0.1:443", nil); err == nil {
		t.Error("dialControl allows 127.0.0.1")
	}
	if err := dialControl(deployed)("tcp6", "[::1]:443", nil); err == nil {
		t.Error("dialControl allows ::1")
	}
	if err := dialControl(deployed)("udp4", "8.8.8.8:53", nil); err == nil {
		t.Error("dialControl allows UDP")
	}
	if err := dialControl(deployed)("tcp4", "8.8.8.8:443", nil); err != nil {
		t.Errorf("dialControl refuses 8.8.8.8: %v", err)
	}
	if n := r.hits.Load(); n != 0 {
		t.Fatalf("the server got %d requests", n)
	}
}

// TestDeliverDNSFailure: a name that does not resolve is a dns failure.
func TestDeliverDNSFailure(t *testing.T) {
	c := NewClient(ClientOptions{Resolver: fakeDNS(t, nil)})
	a := Deliver(context.Background(), c, "https://nowhere.example.com/", NewSecret().Key(), testMessage(t), time.Now())
	if a.Success || a.Err == nil || a.Err.Kind != KindDNS || !a.Retryable() {
		t.Fatalf("attempt %+v (err %v), want %s", a, a.Err, KindDNS)
	}
}

// TestDeliverConnectFailure: nothing listening is a connect failure.
func TestDeliverConnectFailure(t *testing.T) {
	r := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {})
	url := r.URL
	r.Close()
	a := Deliver(context.Background(), devClient(r, ClientOptions{}), url, NewSecret().Key(), testMessage(t), time.Now())
	if a.Success || a.Err == nil || a.Err.Kind != KindConnect || !a.Retryable() {
		t.Fatalf("attempt %+v (err %v), want %s", a, a.Err, KindConnect)
	}
}

// TestDeliverTLS: an untrusted certificate, a certificate for another name
// and a server offering only TLS 1.1 all fail as tls; nothing is sent.
func TestDeliverTLS(t *testing.T) {
	r := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {})
	old := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t.Error("the TLS 1.1 server got a request")
	}))
	old.TLS = &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	old.StartTLS()
	defer old.Close()
	other := fakeDNS(t, map[string][]netip.Addr{"hooks.example.org.": {netip.MustParseAddr("127.0.0.1")}})

	cases := []struct {
		name string
		c    *http.Client
		url  string
	}{
		{"untrusted certificate", NewClient(ClientOptions{Policy: localDev}), r.URL},
		{"certificate for another name", NewClient(ClientOptions{Policy: localDev, Resolver: other, RootCAs: roots(r)}), "https://hooks.example.org:" + r.port() + "/"},
		{"TLS 1.1 only", NewClient(ClientOptions{Policy: localDev, RootCAs: roots(r)}), old.URL},
	}
	for _, c := range cases {
		a := Deliver(context.Background(), c.c, c.url, NewSecret().Key(), testMessage(t), time.Now())
		if a.Success || a.Err == nil || a.Err.Kind != KindTLS {
			t.Errorf("%s: attempt %+v (err %v), want %s", c.name, a, a.Err, KindTLS)
		}
	}
	if n := r.hits.Load(); n != 0 {
		t.Fatalf("the server got %d requests", n)
	}
}

// TestClientIgnoresProxyEnvironment: with HTTPS_PROXY and HTTP_PROXY set,
// the client still connects to the receiver itself.
func TestClientIgnoresProxyEnvironment(t *testing.T) {
	var proxied atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		proxied.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer proxy.Close()
	t.Setenv("HTTPS_PROXY", proxy.URL)
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("NO_PROXY", "")
	r := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {})
	// A name, since net/http never proxies 127.0.0.1 or localhost anyway.
	dns := fakeDNS(t, map[string][]netip.Addr{"hooks.example.com.": {netip.MustParseAddr("127.0.0.1")}})
	c := NewClient(ClientOptions{Policy: localDev, Resolver: dns, RootCAs: roots(r)})
	a := Deliver(context.Background(), c, "https://hooks.example.com:"+r.port()+"/", NewSecret().Key(), testMessage(t), time.Now())
	if !a.Success || proxied.Load() != 0 || r.hits.Load() != 1 {
		t.Fatalf("attempt %+v (err %v); proxy got %d requests, receiver %d", a, a.Err, proxied.Load(), r.hits.Load())
	}
}

// TestDeliverErrorsKeepSecretsOut: whatever fails, the attempt (printed in
// full) holds neither the secret, the key, the signature, the URL's query
// nor the response body, even from a receiver that echoes all of them.
func TestDeliverErrorsKeepSecretsOut(t *testing.T) {
	secret := NewSecret()
	msg := testMessage(t)
	at := time.Now()
	signature := Sign(secret.Key(), msg.ID, at, msg.Body)
	echo := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("X-Echo", secret.Reveal())
			w.WriteHeader(status)
			fmt.Fprintf(w, "BODY-MARKER %s %s %v", secret.Reveal(), req.URL.RawQuery, req.Header)
		}
	}
	r500, r307 := newReceiver(t, echo(500)), newReceiver(t, echo(307))
	hang := newReceiver(t, func(w http.ResponseWriter, req *http.Request) {
		// With the body read, net/http notices the client hanging up.
		_, _ = io.Copy(io.Discard, req.Body)
		<-req.Context().Done()
	})
	closed := newReceiver(t, echo(200))
	closedURL := closed.URL
	closed.Close()
	// Servers that answer with malformed HTTP holding the secret: in the
	// status line, and in a header line.
	garbage := func(format string) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(conn, format, secret.Reveal())
				conn.Close()
			}
		}()
		return "http://" + l.Addr().String() + "/"
	}
	dns := fakeDNS(t, map[string][]netip.Addr{"private.example.com.": {netip.MustParseAddr("10.0.0.1")}})
	q := "?token=QUERY-MARKER"
	cases := []struct {
		c   *http.Client
		url string
	}{
		{devClient(r500, ClientOptions{}), r500.URL + q},
		{devClient(r307, ClientOptions{}), r307.URL + q},
		{devClient(hang, ClientOptions{Timeout: 100 * time.Millisecond}), hang.URL + q},
		{devClient(r500, ClientOptions{}), closedURL + q},
		{NewClient(ClientOptions{Policy: localDev}), r500.URL + q}, // untrusted certificate
		{NewClient(ClientOptions{Policy: localDev}), garbage("HTTP/1.1 %s BODY-MARKER\r\n\r\n") + q},
		{NewClient(ClientOptions{Policy: localDev}), garbage("HTTP/1.1 200 OK\r\nBROKEN %s BODY-MARKER\r\n\r\n") + q},
		{NewClient(ClientOptions{Resolver: dns}), "https://private.example.com/" + q},
		{NewClient(ClientOptions{Resolver: fakeDNS(t, nil)}), "https://nowhere.example.com/" + q},
		{NewClient(ClientOptions{}), "https://u:PASSWORD-MARKER@hooks.example.com/" + q},
	}
	keyB64 := strings.TrimPrefix(secret.Reveal(), SecretPrefix)
	for _, c := range cases {
		a := Deliver(context.Background(), c.c, c.url, secret.Key(), msg, at)
		if a.Success || a.Err == nil {
			t.Fatalf("%s: attempt %+v, want a failure", c.url, a)
		}
		printed := fmt.Sprintf("%v %+v %s", a, a, a.Err.Error())
		for _, leak := range []string{keyB64, signature[3:], "MARKER", "token", string(secret.Key())} {
			if strings.Contains(printed, leak) {
				t.Errorf("%s: the attempt shows %q: %s", c.url, leak, printed)
			}
		}
		t.Logf("%-60s %s", c.url[:min(len(c.url), 60)], a.Err)
	}
}

// TestNewClientConfig pins what the behaviour tests cannot all show.
func TestNewClientConfig(t *testing.T) {
	c := NewClient(ClientOptions{})
	tr := c.Transport.(*guard).next.(*http.Transport)
	switch {
	case c.Timeout != Timeout || Timeout != 10*time.Second:
		t.Errorf("timeout %s", c.Timeout)
	case tr.Proxy != nil:
		t.Error("the transport takes a proxy")
	case tr.TLSClientConfig.MinVersion != tls.VersionTLS12 || tr.TLSClientConfig.InsecureSkipVerify:
		t.Errorf("TLS config %+v", tr.TLSClientConfig)
	case !tr.DisableCompression || tr.MaxResponseHeaderBytes != MaxResponseBytes:
		t.Error("compression on or header limit off")
	case c.CheckRedirect == nil || c.CheckRedirect(nil, nil) != http.ErrUseLastResponse:
		t.Error("redirects followed")
	}
	if c := NewClient(ClientOptions{Timeout: time.Second}); c.Timeout != time.Second {
		t.Errorf("injected timeout: %s", c.Timeout)
	}
}
