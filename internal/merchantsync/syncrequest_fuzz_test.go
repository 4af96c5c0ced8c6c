package merchantsync

import (
	"errors"
	"strings"
	"testing"
)

// FuzzDecodeSyncRequest: a message body never panics the decoder; a refused
// body gets a *Error (so the consumer drops it instead of
// retrying), and an accepted request survives encode → decode unchanged.
func FuzzDecodeSyncRequest(f *testing.F) {
	for _, s := range []string{
		`{"tenantId":"demo-tenant","network":"rakuten","runId":"20261126T100000.000Z-0a1b2c3d4e","trigger":"manual"}`,
		`{"tenantId":"t","network":"rakuten","runId":"r","trigger":"schedule","scheduleRunId":"sched-1"}`,
		`{"tenantId":"t","network":"rakuten","runId":"r","trigger":"schedule"}`,
		`{"tenantId":"auth0|abc","network":"rakuten","runId":"r","trigger":"manual","scheduleRunId":""}`,
		`{"tenantId":" ","network":"rakuten","runId":"r","trigger":"manual"}`,
		`{"tenantId":"t","network":"Rakuten","runId":"r","trigger":"manual"}`,
		`{"tenantId":"t","network":"rakuten","runId":"r","trigger":"cron"}`,
		`{"TenantID":"t","network":"rakuten","runId":"r","trigger":"manual"}`,
		`{"tenantId":"t","tenantId":"u","network":"rakuten","runId":"r","trigger":"manual"}`,
		`{"tenant\u0049d":"t","network":"rakuten","runId":"r","trigger":"manual"}`,
		`{"tenantId":"t","network":"rakuten","runId":"r","trigger":"manual","extra":1}`,
		`{"tenantId":"t","network":"rakuten","runId":"r","trigger":"manual"} {}`,
		`{"tenantId":"t","network":"rakuten","runId":"r","trigger":"manual"`,
		`{"tenantId":1,"network":"rakuten","runId":"r","trigger":"manual"}`,
		`{"tenantId":"t\u0000<>&\ud800","network":"rakuten","runId":"r","trigger":"manual"}`,
		"{\"tenantId\":\"\xff\",\"network\":\"rakuten\",\"runId\":\"r\",\"trigger\":\"manual\"}",
		`null`, `{}`, `[]`, `""`, ``, ` `, `{"tenantId":null}`,
		`{"tenantId":"` + strings.Repeat("<", 3000) + `","network":"rakuten","runId":"r","trigger":"manual"}`,
		`{"tenantId":"` + strings.Repeat("a", maxBody) + `"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req, err := DecodeSyncRequest(body)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || (e.Code != EInvalid && e.Code != EInvalidJSON) {
				t.Fatalf("DecodeSyncRequest(%q): error %v (%T), want a *Error invalid_request/invalid_json", body, err, err)
			}
			if req != (SyncRequest{}) {
				t.Fatalf("DecodeSyncRequest(%q) = %+v with error %v", body, req, err)
			}
			return
		}
		enc, err := EncodeSyncRequest(req)
		if err != nil && ErrorCode(err) == EInvalid && strings.Contains(err.Error(), "more than") {
			return // escaping grew it past maxBody: encode refuses rather than send what the consumer would drop
		}
		if err != nil {
			t.Fatalf("DecodeSyncRequest(%q) accepted %+v, which does not encode: %v", body, req, err)
		}
		again, err := DecodeSyncRequest(enc)
		if err != nil || again != req {
			t.Fatalf("DecodeSyncRequest(%q) = %+v; encoded %q decodes to %+v, %v", body, req, enc, again, err)
		}
	})
}
