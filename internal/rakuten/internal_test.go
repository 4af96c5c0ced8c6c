package rakuten

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestFlexInt(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{`3600`, 3600, true}, {`"3600"`, 3600, true}, {`" 3600 "`, 3600, true}, {`3600.0`, 3600, true},
		{`null`, 0, true}, {`""`, 0, true}, {`"soon"`, 0, false}, {`true`, 0, false},
		// Past the no-allocation path (18 digits): still read exactly.
		{`123456789012345678`, 123456789012345678, true}, {`1234567890123456789`, 1234567890123456789, true},
		{`"\u0033600"`, 3600, true}, {`0`, 0, true}, {`-7`, -7, true},
	}
	for _, tt := range tests {
		var v struct {
			N flexInt `json:"n"`
		}
		err := json.Unmarshal([]byte(`{"n":`+tt.in+`}`), &v)
		if (err == nil) != tt.ok || (tt.ok && int64(v.N) != tt.want) {
			t.Errorf("flexInt(%s) = %d, %v; want %d ok=%v", tt.in, v.N, err, tt.want, tt.ok)
		}
	}
}

func TestFlexTime(t *testing.T) {
	want := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, in := range []string{`"2024-05-06T07:08:09Z"`, `"2024-05-06T09:08:09+02:00"`, `"2024-05-06 07:08:09"`, `"2024-05-06T07:08:09"`,
		`"2024-05-06T07:08:09\u005a"`, `"2024-05-06T07:08:09\u002B00:00"`} { // escapes take the slow path
		var v flexTime
		if err := json.Unmarshal([]byte(in), &v); err != nil || !time.Time(v).Equal(want) {
			t.Errorf("flexTime(%s) = %v, %v", in, time.Time(v), err)
		}
	}
	for _, in := range []string{`null`, `""`, `"yesterday"`, `12`, `"2024-05-06T07:08:09Z\n"`, `"2024-05-06T07:08:09Ž"`} {
		var v flexTime
		if err := json.Unmarshal([]byte(in), &v); err != nil || !time.Time(v).IsZero() {
			t.Errorf("flexTime(%s) = %v, %v; want zero, nil", in, time.Time(v), err)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"5", 5 * time.Second}, {" 120 ", 2 * time.Minute}, {"-3", 0}, {"1.5", 0}, {"soon", 0},
		{now.Add(42 * time.Second).Format(http.TimeFormat), 42 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestClassify(t *testing.T) {
	ams := func(code string) string {
		return `<ams:fault xmlns:ams="http://wso2.org/apimanager/security"><ams:code>` + code + `</ams:code><ams:message>m</ams:message><ams:description>d</ams:description></ams:fault>`
	}
	tests := []struct {
		status   int
		body     string
		kind     Kind
		code     string
		throttle bool
	}{
		{401, ams("900901"), KindInvalidCredentials, "900901", false},
		{401, ams("900903"), KindExpired, "900903", false},
		{401, ams("900904"), KindExpired, "900904", false},
		{401, `{"error":"invalid_client","error_description":"Client Authentication failed."}`, KindInvalidCredentials, "invalid_client", false},
		{400, `{"error":"invalid_grant","error_description":"bad"}`, KindInvalidCredentials, "invalid_grant", false},
		{400, `{"error":"unauthorized_client"}`, KindInvalidCredentials, "unauthorized_client", false},
		{400, `{"message":"limit must be between 1 and 200","error":"REQUEST_PARAM_INVALID"}`, KindInvalidRequest, "REQUEST_PARAM_INVALID", false},
		{403, `{"message":"The number of requests allowed per minute has been exceeded"}`, KindThrottled, "", true},
		{403, "The number of requests allowed per minute has been exceeded", KindThrottled, "", true},
		{403, `<ams:fault xmlns:ams="x"><ams:code>900908</ams:code><ams:description>You cannot consume this service</ams:description></ams:fault>`, KindEntitlement, "900908", false},
		{429, ``, KindThrottled, "", true},
		{503, `<amt:fault xmlns:amt="http://wso2.org/apimanager/throttling"><amt:code>900800</amt:code><amt:message>Message Throttled Out</amt:message></amt:fault>`, KindUnavailable, "900800", true},
		{500, `{"message":"boom","error":"UNEXPECTED_ERROR"}`, KindUnavailable, "UNEXPECTED_ERROR", false},
		{502, `<html><head><title>502 Bad Gateway</title></head></html>`, KindUnavailable, "", false},
		{404, ``, KindInvalidRequest, "", false},
	}
	for _, tt := range tests {
		e := classify(tt.status, http.Header{}, []byte(tt.body))
		if e.Kind != tt.kind || e.Code != tt.code || e.throttle != tt.throttle || e.HTTPStatus != tt.status || e.Message == "" {
			t.Errorf("classify(%d, %.40q) = %+v; want kind %s code %q throttle %v", tt.status, tt.body, e, tt.kind, tt.code, tt.throttle)
		}
	}
}

func TestScrub(t *testing.T) {
	got := scrub("pw=hunter2&x=a%2Fb sk a/b tok 0123456789abcdef0123456789abcdef end", []string{"hunter2", "a/b"})
	if strings.Contains(got, "hunter2") || strings.Contains(got, "a/b") || strings.Contains(got, "a%2Fb") || strings.Contains(got, "0123456789abcdef") {
		t.Fatalf("scrub left a secret: %q", got)
	}
	if !strings.HasSuffix(got, " end") || !strings.HasPrefix(got, "pw=[redacted]") {
		t.Fatalf("scrub mangled the message: %q", got)
	}
	// Whitespace runs around or inside a secret: collapsing them must not
	// rebuild the secret, and a secret with a run of spaces is redacted in
	// its collapsed form too.
	for _, tc := range []struct{ in, secret string }{
		{"echo: pass  word!", "pass word"},
		{"echo: pass\t\n word", "pass word"},
		{"echo: pass word", "pass  word"},
		{"echo: pass+word", "pass  word"},
		{"echo:   pass   word  ", "pass word"},
	} {
		got := scrub(tc.in, []string{tc.secret})
		if strings.Contains(got, "pass word") || strings.Contains(got, tc.secret) || strings.Contains(got, url.QueryEscape(tc.secret)) {
			t.Errorf("scrub(%q, %q) = %q: the secret is readable", tc.in, tc.secret, got)
		}
	}
	// Escaped and cut-short echoes: %-escaped (path and form style, twice
	// escaped), HTML-escaped (named and numeric entities), and 8 or more
	// characters of a secret on their own.
	const sec = "Zq9/x+Y7&w<Tk=3Lp"
	for _, echo := range []string{
		url.PathEscape(sec), url.QueryEscape(sec), url.QueryEscape(url.QueryEscape(sec)),
		html.EscapeString(sec), "Zq9&#x2F;x&#43;Y7&amp;w&lt;Tk=3Lp",
		sec[:8], sec[5:], "prefix" + sec[:9] + "…",
		strings.ToUpper(url.PathEscape(sec)),
	} {
		got := scrub("Rakuten said: "+echo+" !", []string{sec})
		for i := 0; i+minFragment <= len(sec); i++ {
			if strings.Contains(got, sec[i:i+minFragment]) {
				t.Errorf("scrub of the echo %q = %q: shows %q", echo, got, sec[i:i+minFragment])
			}
		}
		if !strings.HasPrefix(got, "Rakuten said: ") || !strings.HasSuffix(got, " !") {
			t.Errorf("scrub of the echo %q mangled the message: %q", echo, got)
		}
	}
	// Shorter runs, and text around a secret, stay readable.
	if got := scrub("invalid Zq9/x+Y grant", []string{sec}); got != "invalid Zq9/x+Y grant" {
		t.Errorf("a 7-character run was redacted: %q", got)
	}
	if got := scrub("100% sure: a%zz, 5%2", nil); got != "100% sure: a%zz, 5%2" {
		t.Errorf("stray %% signs changed the message: %q", got)
	}
	if got := scrub("Client Authentication failed for the given username and password.", nil); got != "Client Authentication failed for the given username and password." {
		t.Fatalf("scrub changed a plain sentence: %q", got)
	}
	long := scrub(strings.Repeat("é", 400), nil)
	if len(long) > maxMessage+len("…") || !strings.HasSuffix(long, "…") {
		t.Fatalf("not truncated: %d bytes", len(long))
	}
}

func TestEndpoint(t *testing.T) {
	tests := []struct {
		base, ref, want string
		ok              bool
	}{
		{"https://api.linksynergy.com", "/v1/partnerships?page=2&limit=200", "https://api.linksynergy.com/v1/partnerships?page=2&limit=200", true},
		{"http://127.0.0.1:9000/rakuten/", "/v1/partnerships?page=2", "http://127.0.0.1:9000/rakuten/v1/partnerships?page=2", true},
		{"http://127.0.0.1:9000/rakuten", "/rakuten/v1/partnerships?page=2", "http://127.0.0.1:9000/rakuten/v1/partnerships?page=2", true},
		{"https://api.linksynergy.com", "v1/partnerships?page=3", "https://api.linksynergy.com/v1/partnerships?page=3", true},
		{"https://api.linksynergy.com", "https://api.linksynergy.com/v1/partnerships?page=3", "https://api.linksynergy.com/v1/partnerships?page=3", true},
		{"https://api.linksynergy.com", "https://evil.example/v1/partnerships", "", false},
		{"https://api.linksynergy.com", "//evil.example/v1/partnerships", "", false},
		{"not a url", "/token", "", false},
	}
	for _, tt := range tests {
		c := New(Config{BaseURL: tt.base})
		u, err := c.endpoint(tt.ref)
		if (err == nil) != tt.ok || (tt.ok && u.String() != tt.want) {
			t.Errorf("endpoint(%q, %q) = %v, %v; want %q ok=%v", tt.base, tt.ref, u, err, tt.want, tt.ok)
		}
	}
}

func TestBackoff(t *testing.T) {
	c := New(Config{MaxRetryWait: 10 * time.Second})
	for n := 1; n < 40; n++ {
		window := min(10*time.Second, 500*time.Millisecond<<min(n, 20))
		for range 20 {
			if d := c.backoff(n, 0); d < 0 || d > window {
				t.Fatalf("backoff(%d) = %v outside [0, %v]", n, d, window)
			}
		}
	}
	if d := c.backoff(1, 3*time.Second); d != 3*time.Second {
		t.Fatalf("Retry-After not honoured: %v", d)
	}
	if d := c.backoff(1, time.Hour); d != 10*time.Second {
		t.Fatalf("Retry-After not capped: %v", d)
	}
}

// BenchmarkDecodePartnershipsPage is the client's CPU per page of 200
// merchants, without HTTP: the part of a sync that grows with merchants.
func BenchmarkDecodePartnershipsPage(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"_metadata":{"api_name_version":"v1","page":1,"limit":200,"total":10000,` +
		`"_links":{"self":"/v1/partnerships?page=1&limit=200","next":"/v1/partnerships?page=2&limit=200"}},"partnerships":[`)
	for i := range 200 {
		if i > 0 {
			sb.WriteByte(',')
		}
		// The sandbox's shape (docs/rakuten.md).
		fmt.Fprintf(&sb, `{"advertiser":{"id":%d,"network":1,"name":"Merchant %d","status":"active",`+
			`"categories":["Apparel","Shoes"],"details":{"url":"https://www.example.com/m/%d"}},"status":"active",`+
			`"status_update_datetime":"2024-05-06T07:08:09Z","approve_datetime":"2024-05-06T07:08:09Z",`+
			`"apply_datetime":"2024-04-30T01:02:03Z"}`, 40000+i, i, 40000+i)
	}
	sb.WriteString(`]}`)
	resp := &response{status: 200, header: http.Header{"Content-Type": {"application/json"}}, body: []byte(sb.String())}
	b.SetBytes(int64(len(resp.body)))
	b.ReportAllocs()
	var st PullStats
	for b.Loop() {
		p, err := decodePartnerships(resp)
		if err != nil {
			b.Fatal(err)
		}
		if n := len(p.partnerships(&st)); n != 200 {
			b.Fatalf("%d partnerships", n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/200, "ns/merchant")
}
