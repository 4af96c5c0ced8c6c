package webhook

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// receiver is an https test server on 127.0.0.1 that counts its requests.
type receiver struct {
	*httptest.Server
	hits atomic.Int64
}

func newReceiver(t *testing.T, h http.HandlerFunc) *receiver {
	t.Helper()
	r := &receiver{}
	r.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.hits.Add(1)
		h(w, req)
	}))
	t.Cleanup(r.Close)
	return r
}

// port is the receiver's port, for URLs that name it by a DNS name.
func (r *receiver) port() string {
	return strconv.Itoa(r.Listener.Addr().(*net.TCPAddr).Port)
}

// roots trusts httptest's certificate (valid for 127.0.0.1, ::1, example.com
// and *.example.com).
func roots(r *receiver) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(r.Certificate())
	return p
}

// devClient is the local stack's client, trusting r's certificate.
func devClient(r *receiver, o ClientOptions) *http.Client {
	o.Policy.AllowLoopbackHTTP = true
	o.RootCAs = roots(r)
	return NewClient(o)
}

func testMessage(t testing.TB) Message {
	t.Helper()
	m, err := NewMessage(EventWebhookTest, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), map[string]string{"hello": "world"})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fakeDNS returns a resolver that answers from answers (name → addresses;
// a missing name is NXDOMAIN) through the Go resolver's Dial hook: a real
// DNS exchange over an in-memory stream, no server, no network.
func fakeDNS(t *testing.T, answers map[string][]netip.Addr) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			client, server := net.Pipe()
			go serveDNS(t, server, answers)
			return client, nil
		},
	}
}

// serveDNS answers DNS queries in TCP framing (a 2-byte length before each
// message) as the Go resolver sends them over a stream connection.
func serveDNS(t *testing.T, c net.Conn, answers map[string][]netip.Addr) {
	defer c.Close()
	for {
		var n uint16
		if err := binary.Read(c, binary.BigEndian, &n); err != nil {
			return
		}
		q := make([]byte, n)
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		resp := dnsAnswer(q, answers)
		if resp == nil {
			t.Errorf("fake DNS: cannot parse query % x", q)
			return
		}
		if _, err := c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(resp)))); err != nil {
			return
		}
		if _, err := c.Write(resp); err != nil {
			return
		}
	}
}

// dnsAnswer builds the response to one query (RFC 1035 4.1): the question
// echoed, then an A or AAAA record per matching address.
func dnsAnswer(q []byte, answers map[string][]netip.Addr) []byte {
	const typeA, typeAAAA = 1, 28
	if len(q) < 12 {
		return nil
	}
	// The question's name: length-prefixed labels up to a zero byte.
	i, name := 12, ""
	for i < len(q) && q[i] != 0 {
		l := int(q[i])
		if i+1+l > len(q) {
			return nil
		}
		name += string(q[i+1:i+1+l]) + "."
		i += 1 + l
	}
	if i+5 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i+1 : i+3])
	question := q[12 : i+5]
	addrs, known := answers[name]
	var rrs [][]byte
	for _, a := range addrs {
		if (qtype == typeA) != a.Is4() || qtype != typeA && qtype != typeAAAA {
			continue
		}
		rr := []byte{0xc0, 12} // the name: a pointer to the question's
		rr = binary.BigEndian.AppendUint16(rr, qtype)
		rr = binary.BigEndian.AppendUint16(rr, 1) // class IN
		rr = binary.BigEndian.AppendUint32(rr, 60)
		rr = binary.BigEndian.AppendUint16(rr, uint16(a.BitLen()/8))
		rrs = append(rrs, append(rr, a.AsSlice()...))
	}
	flags := uint16(0x8180) // a response, recursion desired and available
	if !known {
		flags |= 3 // NXDOMAIN
	}
	out := append([]byte{}, q[0:2]...) // the query's id
	out = binary.BigEndian.AppendUint16(out, flags)
	out = binary.BigEndian.AppendUint16(out, 1)
	out = binary.BigEndian.AppendUint16(out, uint16(len(rrs)))
	out = binary.BigEndian.AppendUint32(out, 0) // no authority, no additional
	out = append(out, question...)
	for _, rr := range rrs {
		out = append(out, rr...)
	}
	return out
}
