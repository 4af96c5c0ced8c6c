package contract

import (
	"strings"
	"testing"
)

// agreement is how the document's request validation and the handler
// judge one request.
type agreement int

const (
	bothAccept agreement = iota // valid under the document; the handler answers 2xx
	bothReject                  // invalid under the document; the handler answers 4xx
	// handlerOnly: the document cannot express the rule (a semantic check);
	// the request is valid under the document and the handler answers 4xx.
	// The front end must handle the handler's error; why is in note.
	handlerOnly
	// documentOnly: the document is stricter than the handler (the handler
	// is lenient). Front ends must follow the document; why is in note.
	documentOnly
)

func (a agreement) String() string {
	return [...]string{"both accept", "both reject", "only the handler rejects", "only the document rejects"}[a]
}

// The request schemas and the handlers' validation agree: a table of good
// and bad bodies, queries and paths, each judged by openapi3filter's
// ValidateRequest and by the handler (whose response is validated too).
// Where they cannot agree by nature, the row says so and why.
func TestRequestSchemasAgreeWithHandlers(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.connect(tenantA)
	const (
		ids      = "/v1/networks/rakuten/ids"
		creds    = "/v1/networks/rakuten/credentials"
		settings = "/v1/merchantsync/settings"
		syncPath = "/v1/networks/rakuten/sync"
		runs     = "/v1/networks/rakuten/sync-runs"
		rels     = "/v1/networks/rakuten/relationships"
		changes  = "/v1/networks/rakuten/changes"
	)
	cred := func(field, value string) string {
		m := map[string]any{"clientId": "client-1", "clientSecret": "client-secret-1", "siteId": "4022211",
			"username": "publisher@example.com", "password": testPassword}
		switch value {
		case "<absent>":
			delete(m, field)
		case "<number>":
			m[field] = 12
		case "<null>":
			m[field] = nil
		default:
			m[field] = value
		}
		return jsonBody(m)
	}
	q := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	tests := []struct {
		name string
		c    call
		want agreement
		note string
	}{
		// PUT …/ids
		{"ids: bare id and site id", call{method: "PUT", path: ids, body: `{"affiliateId":"lMh2Xiq9xN0","siteId":"4022211"}`}, bothAccept, ""},
		{"ids: pasted link", call{method: "PUT", path: ids, body: `{"affiliateId":"https://click.linksynergy.com/link?id=lMh2Xiq9xN0&offerid=1.5"}`}, bothAccept, ""},
		{"ids: URL-encoded id", call{method: "PUT", path: ids, body: `{"affiliateId":"GSFNlAS0O%2Aw"}`}, bothAccept, ""},
		{"ids: SID-prefixed site id", call{method: "PUT", path: ids, body: `{"affiliateId":"lMh2Xiq9xN0","siteId":"SID 4022211"}`}, bothAccept, ""},
		{"ids: empty site id keeps the stored one", call{method: "PUT", path: ids, body: `{"affiliateId":"lMh2Xiq9xN0","siteId":""}`}, bothAccept, ""},
		{"ids: null site id keeps the stored one", call{method: "PUT", path: ids, body: `{"affiliateId":"lMh2Xiq9xN0","siteId":null}`}, bothAccept, ""},
		{"ids: content type with charset", call{method: "PUT", path: ids, body: `{"affiliateId":"lMh2Xiq9xN0"}`, contentType: "application/json; charset=utf-8"}, bothAccept, ""},
		{"ids: no affiliateId", call{method: "PUT", path: ids, body: `{"siteId":"4022211"}`}, bothReject, ""},
		{"ids: affiliateId null", call{method: "PUT", path: ids, body: `{"affiliateId":null}`}, bothReject, ""},
		{"ids: affiliateId a number", call{method: "PUT", path: ids, body: `{"affiliateId":12345678901}`}, bothReject, ""},
		{"ids: affiliateId empty", call{method: "PUT", path: ids, body: `{"affiliateId":""}`}, bothReject, ""},
		{"ids: affiliateId blank", call{method: "PUT", path: ids, body: `{"affiliateId":"   "}`}, bothReject, ""},
		{"ids: affiliateId too long", call{method: "PUT", path: ids, body: `{"affiliateId":"` + strings.Repeat("a", 2049) + `"}`}, bothReject, ""},
		{"ids: unknown field", call{method: "PUT", path: ids, body: `{"affiliateId":"lMh2Xiq9xN0","tenantId":"tenant-b"}`}, bothReject, ""},
		{"ids: site id not digits", call{method: "PUT", path: ids, body: `{"affiliateId":"lMh2Xiq9xN0","siteId":"abc"}`}, bothReject, ""},
		{"ids: site id a number", call{method: "PUT", path: ids, body: `{"affiliateId":"lMh2Xiq9xN0","siteId":4022211}`}, bothReject, ""},
		{"ids: site id too long", call{method: "PUT", path: ids, body: `{"affiliateId":"lMh2Xiq9xN0","siteId":"1234567890123"}`}, bothReject, ""},
		{"ids: array body", call{method: "PUT", path: ids, body: `["lMh2Xiq9xN0"]`}, bothReject, ""},
		{"ids: null body", call{method: "PUT", path: ids, body: `null`}, bothReject, ""},
		{"ids: malformed JSON", call{method: "PUT", path: ids, body: `{"affiliateId":`}, bothReject, ""},
		{"ids: no body", call{method: "PUT", path: ids}, bothReject, ""},
		{"ids: text/plain", call{method: "PUT", path: ids, body: `{"affiliateId":"lMh2Xiq9xN0"}`, contentType: "text/plain"}, bothReject, ""},
		{"ids: huge body", call{method: "PUT", path: ids, body: `{"affiliateId":"` + strings.Repeat("a", 70<<10) + `"}`}, bothReject, ""},
		{"ids: a site id as affiliate id", call{method: "PUT", path: ids, body: `{"affiliateId":"4022211"}`}, handlerOnly,
			"looks_like_site_id is semantic: affiliateId also accepts whole links and URL-encoded ids, so no schema pattern can tell a Site ID apart"},
		{"ids: affiliate id of the wrong length", call{method: "PUT", path: ids, body: `{"affiliateId":"abc"}`}, handlerOnly,
			"the 11-character rule applies after the id= of a pasted link is extracted; the schema only bounds the raw string"},
		{"ids: link without id=", call{method: "PUT", path: ids, body: `{"affiliateId":"https://click.linksynergy.com/link?offerid=1"}`}, handlerOnly,
			"id= extraction is semantic"},
		{"ids: trailing data after the object", call{method: "PUT", path: ids, body: `{"affiliateId":"lMh2Xiq9xN0"} {}`}, handlerOnly,
			"not JSON (RFC 8259) at all, so no schema can speak of it; kin-openapi's decoder stops after the first value, the handler refuses it"},
		{"ids: no content type", call{method: "PUT", path: ids, body: `{"affiliateId":"lMh2Xiq9xN0"}`, contentType: "-"}, documentOnly,
			"the handler accepts a JSON body without Content-Type (API Gateway clients sometimes drop it); the document requires application/json"},
		{"ids: +json media type", call{method: "PUT", path: ids, body: `{"affiliateId":"lMh2Xiq9xN0"}`, contentType: "application/merge-patch+json"}, documentOnly,
			"the handler accepts any */*+json media type; the document lists application/json only"},

		// PUT /v1/merchantsync/settings
		{"settings: off", call{method: "PUT", path: settings, body: `{"enabled":false}`}, bothAccept, ""},
		{"settings: on", call{method: "PUT", path: settings, body: `{"enabled":true}`}, bothAccept, ""},
		{"settings: empty object", call{method: "PUT", path: settings, body: `{}`}, bothReject, ""},
		{"settings: null", call{method: "PUT", path: settings, body: `{"enabled":null}`}, bothReject, ""},
		{"settings: string", call{method: "PUT", path: settings, body: `{"enabled":"true"}`}, bothReject, ""},
		{"settings: number", call{method: "PUT", path: settings, body: `{"enabled":1}`}, bothReject, ""},
		{"settings: extra field", call{method: "PUT", path: settings, body: `{"enabled":true,"updatedAt":"2026-11-26T10:00:00Z"}`}, bothReject, ""},

		// PUT …/credentials
		{"credentials: good", call{method: "PUT", path: creds, body: cred("siteId", "SID4022211")}, bothAccept, ""},
		{"credentials: missing password", call{method: "PUT", path: creds, body: cred("password", "<absent>")}, bothReject, ""},
		{"credentials: null password", call{method: "PUT", path: creds, body: cred("password", "<null>")}, bothReject, ""},
		{"credentials: number password", call{method: "PUT", path: creds, body: cred("password", "<number>")}, bothReject, ""},
		{"credentials: empty password", call{method: "PUT", path: creds, body: cred("password", "")}, bothReject, ""},
		{"credentials: blank username", call{method: "PUT", path: creds, body: cred("username", "  ")}, bothReject, ""},
		{"credentials: client id too long", call{method: "PUT", path: creds, body: cred("clientId", strings.Repeat("c", 257))}, bothReject, ""},
		{"credentials: client secret too long", call{method: "PUT", path: creds, body: cred("clientSecret", strings.Repeat("s", 513))}, bothReject, ""},
		{"credentials: password too long", call{method: "PUT", path: creds, body: cred("password", strings.Repeat("p", 1025))}, bothReject, ""},
		{"credentials: site id not digits", call{method: "PUT", path: creds, body: cred("siteId", "abc")}, bothReject, ""},
		{"credentials: site id missing", call{method: "PUT", path: creds, body: cred("siteId", "<absent>")}, bothReject, ""},
		{"credentials: unknown field", call{method: "PUT", path: creds, body: strings.Replace(cred("siteId", "4022211"), "{", `{"tenantId":"t",`, 1)}, bothReject, ""},
		{"credentials: username of 200 'é' (400 bytes)", call{method: "PUT", path: creds, body: cred("username", strings.Repeat("é", 200))}, handlerOnly,
			"the handler bounds lengths in bytes (credentials.go required), JSON Schema's maxLength counts characters: only multi-byte values near the limit differ"},
		{"credentials: wrong password", call{method: "PUT", path: creds, body: cred("password", "not-the-password")}, handlerOnly,
			"only Rakuten can judge credentials: 422 network_auth_failed"},

		// POST …/sync (connected, enabled; no worker, so a queued run stays queued)
		{"sync: no query", call{method: "POST", path: syncPath}, bothAccept, ""},
		{"sync: wait=0", call{method: "POST", path: syncPath, query: q("wait", "0")}, bothAccept, ""},
		{"sync: wait=1", call{method: "POST", path: syncPath, query: q("wait", "1")}, bothAccept, ""},
		{"sync: wait=26", call{method: "POST", path: syncPath, query: q("wait", "26")}, bothReject, ""},
		{"sync: wait=-1", call{method: "POST", path: syncPath, query: q("wait", "-1")}, bothReject, ""},
		{"sync: wait=1.5", call{method: "POST", path: syncPath, query: q("wait", "1.5")}, bothReject, ""},
		{"sync: wait=soon", call{method: "POST", path: syncPath, query: q("wait", "soon")}, bothReject, ""},
		{"sync: a body", call{method: "POST", path: syncPath, body: `{}`}, bothReject, ""},
		{"sync: unknown network", call{method: "POST", path: "/v1/networks/awin/sync"}, bothReject, ""},

		// Lists
		{"runs: limit=1", call{method: "GET", path: runs, query: q("limit", "1")}, bothAccept, ""},
		{"runs: limit=200", call{method: "GET", path: runs, query: q("limit", "200")}, bothAccept, ""},
		{"runs: limit=0", call{method: "GET", path: runs, query: q("limit", "0")}, bothReject, ""},
		{"runs: limit=201", call{method: "GET", path: runs, query: q("limit", "201")}, bothReject, ""},
		{"runs: limit=ten", call{method: "GET", path: runs, query: q("limit", "ten")}, bothReject, ""},
		{"runs: cursor too long", call{method: "GET", path: runs, query: q("cursor", strings.Repeat("c", 1025))}, bothReject, ""},
		{"runs: mangled cursor", call{method: "GET", path: runs, query: q("cursor", "bm90LWEtY3Vyc29y")}, handlerOnly,
			"the cursor is opaque: only the store can tell a forged or mangled one (400 invalid_request, field cursor)"},
		{"runs: unknown query parameter", call{method: "GET", path: runs, query: q("page", "2")}, bothAccept, "both ignore unknown query parameters"},
		{"relationships: status=joined", call{method: "GET", path: rels, query: q("status", "joined")}, bothAccept, ""},
		{"relationships: status=active", call{method: "GET", path: rels, query: q("status", "active")}, bothReject, ""},
		{"relationships: status=Joined", call{method: "GET", path: rels, query: q("status", "Joined")}, bothReject, ""},
		{"relationships: limit=-5", call{method: "GET", path: rels, query: q("limit", "-5")}, bothReject, ""},
		{"changes: since UTC", call{method: "GET", path: changes, query: q("since", "2026-11-01T00:00:00Z")}, bothAccept, ""},
		{"changes: since with offset", call{method: "GET", path: changes, query: q("since", "2026-11-01T00:00:00+02:00")}, bothAccept, ""},
		{"changes: since with fraction", call{method: "GET", path: changes, query: q("since", "2026-11-01T00:00:00.250Z")}, bothAccept, ""},
		{"changes: since a date", call{method: "GET", path: changes, query: q("since", "2026-11-01")}, bothReject, ""},
		{"changes: since yesterday", call{method: "GET", path: changes, query: q("since", "yesterday")}, bothReject, ""},
		{"changes: since epoch seconds", call{method: "GET", path: changes, query: q("since", "1764547200")}, bothReject, ""},

		// Paths
		{"network: unknown", call{method: "GET", path: "/v1/networks/cj"}, bothReject, ""},
		{"network: wrong case", call{method: "GET", path: "/v1/networks/Rakuten"}, bothReject, ""},
		{"run: id too long", call{method: "GET", path: runs + "/" + strings.Repeat("9", 65)}, bothReject, ""},
		{"run: unknown id", call{method: "GET", path: runs + "/20261126T100000.000Z-0000000000"}, handlerOnly,
			"whether a run exists is data, not shape: 404 not_found"},

		// Bodies on routes that take none
		{"DELETE credentials with a body", call{method: "DELETE", path: creds, body: `{"force":true}`}, documentOnly,
			"the DELETE handlers ignore a body; the document says send none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			defer func() { e.t = nil }()
			docErr := validateRequest(tc.c)
			res := e.do(tc.c)
			if res.invalid != nil {
				t.Errorf("the handler's %d response does not match the document: %v\nbody: %s", res.status, res.invalid, res.body)
			}
			handler4xx := res.status >= 400 && res.status < 500
			if !handler4xx && (res.status < 200 || res.status > 299) {
				t.Fatalf("handler answered %d %s: neither 2xx nor 4xx", res.status, res.body)
			}
			var got agreement
			switch {
			case docErr == nil && !handler4xx:
				got = bothAccept
			case docErr != nil && handler4xx:
				got = bothReject
			case docErr == nil && handler4xx:
				got = handlerOnly
			default:
				got = documentOnly
			}
			if got != tc.want {
				t.Errorf("%s, want %s\n  document: %v\n  handler:  %d %s", got, tc.want, docErr, res.status, truncate(res.body, 300))
			}
			if (tc.want == handlerOnly || tc.want == documentOnly) && tc.note == "" {
				t.Error("a disagreement needs a note saying why")
			}
		})
	}
	e.t = t
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
