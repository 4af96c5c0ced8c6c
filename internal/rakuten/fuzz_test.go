package rakuten

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Fuzz tests of what the client reads from Rakuten (or from whatever sits in
// front of it): token JSON, partnerships pages, WSO2 ams/amt XML faults,
// HTML error pages and Link Locator XML. They call the internal decoders
// directly, the way the client does, including its scrubbing.
//
// Bodies may hold placeholders that the fuzz function replaces with the
// secret in the spelling a server echoing our request would use:
// {{raw}}, {{json}} (JSON string escapes), {{xml}} (XML escapes),
// {{form}} (form encoding), {{path}} (path escapes), {{html}} (HTML
// escapes), and only its first or last minFragment+2 characters: {{head}},
// {{tail}}. The secret always starts with fuzzSecretPrefix,
// so finding it in an error is a leak, never a coincidence with our own text.

const fuzzSecretPrefix = "S3cr3t"

func fuzzSecret(suffix string) string { return fuzzSecretPrefix + suffix }

func withSecret(body, secret string) []byte {
	js, _ := json.Marshal(secret)
	var xb bytes.Buffer
	_ = xml.EscapeText(&xb, []byte(secret))
	return []byte(strings.NewReplacer(
		"{{raw}}", secret,
		"{{json}}", strings.Trim(string(js), `"`),
		"{{xml}}", xb.String(),
		"{{form}}", url.QueryEscape(secret),
		"{{path}}", url.PathEscape(secret),
		"{{html}}", html.EscapeString(secret),
		"{{head}}", secret[:min(len(secret), minFragment+2)],
		"{{tail}}", secret[max(0, len(secret)-minFragment-2):],
	).Replace(body))
}

// checkNoSecret fails when err, however printed, holds a secret.
func checkNoSecret(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	var re *Error
	errors.As(err, &re)
	for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", re)} {
		for _, sec := range secrets {
			if sec != "" && strings.Contains(s, sec) {
				t.Fatalf("error leaks secret %q: %s", sec, s)
			}
		}
	}
	// Scrubbed text (what a person sees) shows no run of minFragment
	// characters of a secret, however it was escaped. Only runs that start
	// inside fuzzSecretPrefix are looked for: a run wholly inside the
	// fuzzer's suffix could be our own words ("malformed token").
	if re != nil {
		for _, s := range []string{re.Message, re.Code} {
			for _, sec := range secrets {
				if !strings.HasPrefix(sec, fuzzSecretPrefix) {
					continue
				}
				for i := 0; i < len(fuzzSecretPrefix)-1 && i+minFragment <= len(sec); i++ {
					if strings.Contains(s, sec[i:i+minFragment]) {
						t.Fatalf("error shows %q of a secret: %q", sec[i:i+minFragment], s)
					}
				}
			}
		}
	}
}

var knownKinds = map[Kind]bool{
	KindInvalidCredentials: true, KindExpired: true, KindReauthRequired: true, KindThrottled: true,
	KindUnavailable: true, KindEntitlement: true, KindBadResponse: true, KindInvalidRequest: true, KindRedirect: true,
}

func amsFault(code, msg, desc string) string {
	return `<ams:fault xmlns:ams="http://wso2.org/apimanager/security"><ams:code>` + code + `</ams:code><ams:message>` +
		msg + `</ams:message><ams:description>` + desc + `</ams:description></ams:fault>`
}

const amtFault = `<amt:fault xmlns:amt="http://wso2.org/apimanager/throttling"><amt:code>900800</amt:code>` +
	`<amt:message>Message Throttled Out</amt:message><amt:description>You have exceeded your quota</amt:description></amt:fault>`

// errorBodies are the failure bodies of docs/rakuten.md and of the proxies in
// front of Rakuten, some echoing a secret.
var errorBodies = []string{
	"",
	amsFault("900901", "Invalid Credentials", "Access failure for API: /v1, version: 1.0. Make sure your have given the correct access token"),
	amsFault("900903", "Access Token Expired", "Access Token Expired"),
	amsFault("900904", "Access Token Inactive", "Access Token Inactive"),
	amsFault("900908", "Resource forbidden", "You cannot consume this service"),
	amsFault("900901", "Invalid Credentials", "token {{xml}} refused"),
	amtFault,
	`<?xml version="1.0" encoding="UTF-8"?>` + amtFault,
	`<ams:fault xmlns:ams="x"><ams:code>{{xml}}</ams:code></ams:fault>`,
	`<fault><code>9008{{xml}}</code><message>m</message></fault>`,
	`{"error":"invalid_grant","error_description":"Provided Authorization Grant is invalid"}`,
	`{"error":"invalid_client","error_description":"Client Authentication failed."}`,
	`{"error":"invalid_grant","error_description":"password={{json}}"}`,
	`{"error":"{{json}}"}`,
	`{"code":"{{json}}","message":"x"}`,
	`{"code":900901,"description":"Invalid Credentials"}`,
	`{"message":"limit must be between 1 and 200","error":"REQUEST_PARAM_INVALID"}`,
	`{"message":"boom {{json}}","error":"UNEXPECTED_ERROR"}`,
	`{"message":"The number of requests allowed per minute has been exceeded"}`,
	"The number of requests allowed per minute has been exceeded",
	"grant_type=password&password={{form}}&client_secret={{form}}",
	"echo /token/{{path}}?pw={{form}}",
	"<html><title>&lt;{{html}}&gt;</title></html>",
	`{"error":"invalid_grant","error_description":"refresh token {{head}}… unknown; key …{{tail}}"}`,
	"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
	"<html><title>{{xml}}</title></html>",
	"<HTML><TITLE>Access Denied</TITLE>",
	"\ufeff  <ams:fault",
	"<a><b></a>",
	"{",
	`{"error":`,
	strings.Repeat("é", 400),
	"token " + strings.Repeat("a1", 20),
}

// FuzzClassify: a non-2xx answer always becomes a typed, scrubbed *Error.
func FuzzClassify(f *testing.F) {
	for i, b := range errorBodies {
		for _, st := range []int{400, 401, 403, 404, 429, 500, 503} {
			if (i+st)%3 == 0 || st == 401 || st == 403 {
				f.Add(st, "", b, "pa ss\"<&>/w*rd")
			}
		}
	}
	f.Add(429, "120", "", "x")
	f.Add(503, "Wed, 21 Oct 2015 07:28:00 GMT", amtFault, "x")
	f.Add(503, "-1", amtFault, "x")
	f.Add(302, "99999999999999999999", "<a", "x")
	f.Fuzz(func(t *testing.T, status int, retryAfter, rawBody, suffix string) {
		if status < 300 || status > 599 {
			status = 300 + int(uint(status)%300)
		}
		secret := fuzzSecret(suffix)
		body := withSecret(rawBody, secret)
		h := http.Header{}
		if retryAfter != "" {
			h.Set("Retry-After", retryAfter)
		}
		// What tokenOnce and get do with a non-2xx response.
		e := classify(status, h, body)
		e.Message = scrub(e.Message, []string{secret})
		e.Code = scrub(e.Code, []string{secret})
		if !knownKinds[e.Kind] || e.HTTPStatus != status || e.Message == "" {
			t.Fatalf("classify(%d, %q) = %#v", status, body, e)
		}
		switch {
		case status == 401 && e.Kind != KindInvalidCredentials && e.Kind != KindExpired,
			status == 429 && e.Kind != KindThrottled,
			status >= 500 && e.Kind != KindUnavailable,
			status < 400 && e.Kind != KindRedirect,
			status == 403 && e.Kind != KindThrottled && e.Kind != KindEntitlement:
			t.Fatalf("classify(%d, %q): kind %s", status, body, e.Kind)
		}
		if e.retryAfter < 0 {
			t.Fatalf("retryAfter %v", e.retryAfter)
		}
		if len(e.Message) > maxMessage+len("…") {
			t.Fatalf("message of %d bytes", len(e.Message))
		}
		checkNoSecret(t, e, secret)
	})
}

// fuzzTransport answers every request with one canned response.
type fuzzTransport struct {
	status int
	ct     string
	body   []byte
}

func (ft *fuzzTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	h := http.Header{}
	if ft.ct != "" {
		h.Set("Content-Type", ft.ct)
	}
	return &http.Response{StatusCode: ft.status, Header: h, Body: io.NopCloser(bytes.NewReader(ft.body)), Request: req}, nil
}

// FuzzTokenResponse drives tokenOnce (send, classify, JSON decode, scrub)
// with one made-up answer of the token endpoint.
func FuzzTokenResponse(f *testing.F) {
	for _, b := range []string{
		`{"token_type":"bearer","expires_in":3600,"refresh_token":"rt-1","access_token":"at-1"}`,
		`{"token_type":"bearer","expires_in":"3600","refresh_token":"rt-1","access_token":"at-1"}`,
		`{"expires_in":" 3600 ","access_token":"at-1"}`,
		`{"expires_in":3600.0,"access_token":"at-1"}`,
		`{"expires_in":3.6e3,"access_token":"at-1"}`,
		`{"expires_in":null,"access_token":"at-1"}`,
		`{"expires_in":"","access_token":"at-1"}`,
		`{"expires_in":"soon","access_token":"{{json}}"}`,
		`{"expires_in":true,"access_token":"at-1"}`,
		`{"expires_in":-5,"access_token":"at-1"}`,
		`{"eXpires_in":1,"ACCess_token":"0"}`,
		`{"expires_in":1e10,"access_token":"at-1"}`,
		`{"expires_in":9223372036854775807,"access_token":"at-1"}`,
		`{"expires_in":"NaN","access_token":"at-1"}`,
		`{"expires_in":"Inf","access_token":"at-1"}`,
		`{"expires_in":1e400,"access_token":"at-1"}`,
		`{"access_token":""}`,
		`{"access_token":"at-1"} trailing`,
		`{"access_token":"at-1",}`,
		`{}`, `null`, `[]`, `"at-1"`,
		"\ufeff" + `{"access_token":"at-1"}`,
	} {
		f.Add(200, "application/json", b, "")
	}
	for _, b := range errorBodies {
		f.Add(200, "text/html", b, "p@ss word")
		f.Add(401, "application/xml", b, "p@ss word")
	}
	f.Add(400, "application/json", `{"error":"invalid_grant","error_description":"password {{raw}} and secret {{form}}"}`, "hunter2")
	f.Add(204, "", "", "")
	f.Fuzz(func(t *testing.T, status int, ct, rawBody, suffix string) {
		if status < 200 || status > 599 {
			status = 200 + int(uint(status)%400)
		}
		secret := fuzzSecret(suffix)
		body := withSecret(rawBody, secret)
		now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
		c := New(Config{BaseURL: "https://api.example", Now: func() time.Time { return now },
			HTTPClient: &http.Client{Transport: &fuzzTransport{status: status, ct: ct, body: body}}})
		cr := Credentials{ClientID: "cid", ClientSecret: secret, SiteID: "4022211"}
		req, _ := http.NewRequest(http.MethodPost, "https://api.example/token", strings.NewReader("grant_type=password"))
		secrets := []string{secret, cr.tokenKey()}

		tok, e := c.tokenOnce(context.Background(), req, secrets)
		if e != nil {
			if tok != nil {
				t.Fatalf("token %+v with error %v", tok, e)
			}
			if !knownKinds[e.Kind] || e.HTTPStatus != status || e.Message == "" {
				t.Fatalf("error %#v for %d %q", e, status, body)
			}
			if status/100 == 2 && e.Kind != KindBadResponse {
				t.Fatalf("2xx %q gave kind %s, want %s", body, e.Kind, KindBadResponse)
			}
			checkNoSecret(t, e, secrets...)
			return
		}
		if status/100 != 2 {
			t.Fatalf("status %d accepted as a token", status)
		}
		// A token is only ever what the body says, never garbage.
		var want struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		}
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatalf("accepted %q, which is not JSON: %v", body, err)
		}
		if tok.AccessToken == "" || tok.AccessToken != want.AccessToken || tok.RefreshToken != want.RefreshToken {
			t.Fatalf("token %+v from %q", tok, body)
		}
		if !tok.Expiry.After(now) || !tok.valid(now) {
			t.Fatalf("a new token from %q expires at %v, before now (%v)", body, tok.Expiry, now)
		}
	})
}

// fuzzTokenSource is a TokenSource whose secrets are secret (as the client
// secret, and so inside the token key) and two tokens.
func fuzzTokenSource(secret string) (*TokenSource, []string) {
	c := New(Config{BaseURL: "https://api.example"})
	cr := Credentials{ClientID: "cid", ClientSecret: secret, SiteID: "4022211"}
	tok := &Token{AccessToken: "AT-" + secret, RefreshToken: "RT-" + secret}
	return c.TokenSource(context.Background(), cr, tok, nil), []string{secret, cr.tokenKey(), tok.AccessToken, tok.RefreshToken}
}

// FuzzPartnershipsPage: a 2xx page either decodes to exactly what it says,
// or fails with an *Error: KindBadResponse, or for a gateway fault the kind
// the fault means. Never an empty page from a body that is not JSON.
func FuzzPartnershipsPage(f *testing.F) {
	page := `{"_metadata":{"api_name_version":"v1","page":1,"limit":200,"total":2,` +
		`"_links":{"self":"/v1/partnerships?page=1&limit=200","next":"/v1/partnerships?page=2&limit=200"}},` +
		`"partnerships":[{"advertiser":{"id":2149,"network":1,"name":" Example Store ","status":"active",` +
		`"categories":["Apparel"],"details":{"url":"https://x"}},"status":"active",` +
		`"status_update_datetime":"2024-05-06T07:08:09Z","approve_datetime":"2024-05-06 07:08:09","apply_datetime":"2024-05-06"},` +
		`{"advertiser":{"id":"38605","network":"3","name":"UK"},"status":"temp-remove"}]}`
	for _, b := range []string{
		page,
		`{"_metadata":{"page":"2","limit":"200","total":"201","_links":{"next":"https://evil.example/v1/partnerships"}},"partnerships":[]}`,
		`{"_metadata":{"_links":{"next":"//evil.example/x"}},"partnerships":[{"advertiser":{"id":0}}]}`,
		`{"_metadata":{"_links":{"next":"http://api.example/v1/partnerships?page=2"}},"partnerships":[{"advertiser":{"id":-1}},{"advertiser":{}}]}`,
		`{"partnerships":[{"advertiser":{"id":"{{json}}"}}]}`,
		`{"partnerships":[{"advertiser":{"id":1e30}}]}`,
		`{"partnerships":[{"advertiser":{"id":"Infinity"}}]}`,
		`{"partnerships":[{"advertiser":{"id":1.5,"name":"{{json}}"},"status":"{{json}}"}]}`,
		`{"partnerships":null}`, `{"partnerships":{}}`, `{}`, `{} {}`, `{"partnerships":[` + "\n",
		`[]`, `null`, `""`, "",
		// Where encoding/json/v2 differs from encoding/json by default.
		`{"Partnerships":[{"ADVERTISER":{"Id":7,"NAME":"Case"},"Status":"active","STATUS_UPDATE_DATETIME":"2024-05-06T07:08:09Z"}]}`,
		`{"partnerships":[{"advertiser":{"id":1},"advertiser":{"name":"dup"},"status":"active","status":"declined"}]}`,
		`{"partnerships":[{"advertiser":{"id":1}}],"partnerships":[{"advertiser":{"id":2}}]}`,
		"{\"partnerships\":[{\"advertiser\":{\"id\":3,\"name\":\"bad \xff\xfe utf8\"},\"status\":\"act\xc3ive\"}]}",
		`{"partnerships":[{"advertiser":{"id":4,"name":"\ud800 lone \udc00 surrogates"}}]}`,
		`{"partnerships":[{"adv\u0065rtiser":{"\u0069d":5},"\u0073tatus":"active"}]}`,
		"{\"partnerships\":[{\"advertiser\":{\"id\":6},\"\u017ftatus\":\"long s\",\"status_update_datetime\":\"x\"}]}",
		"{\"partnerships\":[{\"advertiser\":{\"id\":6,\"name\":\"\u212a\"},\"status_update_date\u212aime\":1}]}",
		`{"partnerships":[{"advertiser":{"id":8},"status_update_datetime":"2024-02-30T00:00:00Z"}]}`,
		`{"partnerships":[{"advertiser":{"id":9},"status-update-datetime":"2024-05-06T07:08:09Z"}]}`,
		`{"partnerships":[{"advertiser":{"id":9},"statusUpdateDatetime":"2024-05-06T07:08:09Z"}]}`,
	} {
		f.Add(200, "application/json", b, "")
	}
	for _, b := range errorBodies {
		f.Add(200, "text/xml", b, "s/e+c=r%t")
	}
	f.Fuzz(func(t *testing.T, status int, ct, rawBody, suffix string) {
		status = 200 + int(uint(status)%100)
		secret := fuzzSecret(suffix)
		body := withSecret(rawBody, secret)
		ts, secrets := fuzzTokenSource(secret)
		h := http.Header{}
		if ct != "" {
			h.Set("Content-Type", ct)
		}
		// What Partnerships does with a 2xx page.
		p, err := decodePartnerships(&response{status: status, header: h, body: body})
		err = ts.scrub(err)
		if err != nil && sniff(body) == '{' {
			var v1 partnershipsPage
			if json.Unmarshal(body, &v1) == nil {
				t.Fatalf("%q: v2 refused what encoding/json reads (%+v): %v", body, v1, err)
			}
		}
		if err != nil {
			if p != nil {
				t.Fatalf("page %+v with error %v", p, err)
			}
			check2xxError(t, err, status, body, secrets)
			return
		}
		if sniff(body) != '{' || !json.Valid(body) {
			t.Fatalf("accepted %q as a page", body)
		}
		// Pages are decoded with encoding/json/v2 set to read what
		// encoding/json reads: check it does.
		var v1 partnershipsPage
		if err := json.Unmarshal(body, &v1); err != nil || !reflect.DeepEqual(&v1, p) {
			t.Fatalf("%q: v2 decoded %+v; encoding/json %+v, %v", body, p, v1, err)
		}
		var st PullStats
		items := p.partnerships(&st)
		if len(items)+st.Skipped != len(p.Partnerships) {
			t.Fatalf("%d items + %d skipped of %d", len(items), st.Skipped, len(p.Partnerships))
		}
		for _, it := range items {
			if it.AdvertiserID <= 0 {
				t.Fatalf("partnership without a MID: %+v", it)
			}
		}
		// The next link is only ever followed on the configured host.
		if next := strings.TrimSpace(p.Metadata.Links.Next); next != "" {
			if u, err := ts.c.endpoint(next); err == nil && (u.Scheme != "https" || u.Host != "api.example") {
				t.Fatalf("next link %q resolves to %s", next, u)
			}
		}
	})
}

// FuzzLinkLocator: getMerchByAppStatus XML decodes to merchants with a MID
// and a status, or fails with a typed, scrubbed *Error.
func FuzzLinkLocator(f *testing.F) {
	ll := `<?xml version="1.0" encoding="UTF-8"?><ns1:getMerchByAppStatusResponse xmlns:ns1="http://endpoint.linkservice.linkshare.com/">` +
		`<ns1:return><ns1:applicationStatus>Approved</ns1:applicationStatus><ns1:categories>1 2 3</ns1:categories>` +
		`<ns1:mid>2149</ns1:mid><ns1:name>Example &amp; Co</ns1:name><ns1:offer><ns1:alsoName>x</ns1:alsoName>` +
		`<ns1:commissionTerms>5%</ns1:commissionTerms><ns1:offerId>1</ns1:offerId><ns1:offerName>o</ns1:offerName></ns1:offer></ns1:return>` +
		`<ns1:return><ns1:mid> 38605 </ns1:mid><ns1:name>No status</ns1:name></ns1:return>` +
		`<ns1:return><ns1:mid>x</ns1:mid></ns1:return><ns1:return><ns1:mid>-3</ns1:mid></ns1:return>` +
		`</ns1:getMerchByAppStatusResponse>`
	for _, b := range append([]string{
		ll, strings.Replace(ll, "ns1:", "ns2:", -1),
		`<getMerchByAppStatusResponse/>`,
		`<ns1:return><ns1:mid>1</ns1:mid></ns1:return>`,
		`<r><return><mid>99999999999999999999</mid></return></r>`,
		`<r><{{raw}}/></r>`, `<r></{{raw}}>`, `<r><return><mid>1</mid><name>{{xml}}</name></return></r>`,
		`<!DOCTYPE r [<!ENTITY e "x">]><r>&e;</r>`, `<r>&unknown;</r>`,
		`{"error":"{{json}}","message":"json"}`, "plain {{raw}}",
	}, errorBodies...) {
		f.Add(200, "application/xml", b, "approval extended", "")
	}
	f.Fuzz(func(t *testing.T, status int, ct, rawBody, appStatus, suffix string) {
		status = 200 + int(uint(status)%100)
		appStatus = strings.TrimSpace(appStatus)
		if appStatus == "" {
			appStatus = "approved"
		}
		secret := fuzzSecret(suffix)
		body := withSecret(rawBody, secret)
		ts, secrets := fuzzTokenSource(secret)
		h := http.Header{}
		if ct != "" {
			h.Set("Content-Type", ct)
		}
		// What MerchantsByAppStatus does with a 2xx answer.
		out, err := decodeLinkLocator(&response{status: status, header: h, body: body}, appStatus)
		err = ts.scrub(err)
		if err != nil {
			if out != nil {
				t.Fatalf("merchants %+v with error %v", out, err)
			}
			check2xxError(t, err, status, body, secrets)
			return
		}
		if sniff(body) != '<' {
			t.Fatalf("accepted %q as Link Locator XML", body)
		}
		for _, p := range out {
			if p.AdvertiserID <= 0 || p.Status == "" || p.Status != strings.TrimSpace(p.Status) || p.Name != strings.TrimSpace(p.Name) {
				t.Fatalf("merchant %+v from %q", p, body)
			}
			if strconv.FormatInt(p.AdvertiserID, 10) == "" {
				t.Fatal("unreachable")
			}
		}
	})
}

// TestFlexIntOutOfRange: numbers outside int64 read as 0 on every
// architecture (a float→int conversion out of range differs between amd64
// and arm64, which Lambda runs).
func TestFlexIntOutOfRange(t *testing.T) {
	for _, in := range []string{`1e30`, `-1e30`, `"1e19"`, `9.3e18`, `"Infinity"`, `"NaN"`} {
		var n flexInt
		if err := n.UnmarshalJSON([]byte(in)); err != nil {
			t.Errorf("%s: %v", in, err)
		} else if n != 0 {
			t.Errorf("%s = %d, want 0", in, n)
		}
	}
	var n flexInt
	if err := n.UnmarshalJSON([]byte(`"3600"`)); err != nil || n != 3600 {
		t.Errorf(`"3600" = %d, %v`, n, err)
	}
}

// FuzzFlexTime: the no-allocation path for "2006-01-02T15:04:05Z" reads
// exactly what the general path (JSON string, then time.Parse over the
// accepted layouts) reads, whenever it accepts an input.
func FuzzFlexTime(f *testing.F) {
	for _, s := range []string{"2024-05-06T07:08:09Z", "2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z",
		"2024-04-31T23:59:59Z", "2024-13-01T00:00:00Z", "2024-00-10T24:00:00Z", "2024-05-06T07:08:60Z",
		"0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2024-05-06T07:08:09z", "+024-05-06T07:08:09Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := []byte(`"` + s + `"`)
		fast, ok := parseUTCSeconds(b)
		if !ok {
			return
		}
		var slow flexTime
		if str, plain := plainJSONString(b); !plain {
			t.Fatalf("fast path accepted %q, which is not a plain JSON string", s)
		} else if v, err := time.Parse(time.RFC3339Nano, str); err != nil || !v.UTC().Equal(fast) || v.UTC() != fast {
			t.Fatalf("%q: fast %v, time.Parse %v (%v)", s, fast, v, err)
		}
		if err := slow.UnmarshalJSON(b); err != nil || time.Time(slow) != fast {
			t.Fatalf("%q: UnmarshalJSON %v, %v; want %v", s, time.Time(slow), err, fast)
		}
	})
}

// check2xxError: a 2xx body that does not decode fails with a scrubbed
// *Error of a known kind: KindBadResponse, or for a gateway fault the kind
// the fault means.
func check2xxError(t *testing.T, err error, status int, body []byte, secrets []string) {
	t.Helper()
	var re *Error
	if !errors.As(err, &re) || !knownKinds[re.Kind] || re.HTTPStatus != status || re.Message == "" {
		t.Fatalf("error %#v for %q", err, body)
	}
	if b := parseBody(body); b.fault == "" && re.Kind != KindBadResponse {
		t.Fatalf("2xx %q gave kind %s, want %s", body, re.Kind, KindBadResponse)
	}
	checkNoSecret(t, err, secrets...)
}
