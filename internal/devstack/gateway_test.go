package devstack

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/merchantsync/merchantsync/internal/httpapi"
)

// TestGatewayCORSOnlyForLocalPages: the local stack lets X-Tenant-Id pick
// any tenant, so only pages served from this machine may call it from a
// browser. Before, any Origin was reflected with X-Tenant-Id allowed: a web
// page a developer visited could drive every local tenant.
func TestGatewayCORSOnlyForLocalPages(t *testing.T) {
	var calls atomic.Int32
	r := httpapi.NewRouter(nil, httpapi.Route{Key: "GET /v1/networks", Handler: func(context.Context, *httpapi.Request) (int, any, error) {
		calls.Add(1)
		return http.StatusOK, map[string]string{}, nil
	}})
	srv := httptest.NewServer(&Gateway{Functions: []Function{{Name: "api", Router: r}}})
	defer srv.Close()
	do := func(method, origin string) *http.Response {
		req, _ := http.NewRequest(method, srv.URL+"/v1/networks", nil)
		req.Header.Set("X-Tenant-Id", "victim")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if method == http.MethodOptions {
			req.Header.Set("Access-Control-Request-Method", "GET")
			req.Header.Set("Access-Control-Request-Headers", "x-tenant-id")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, origin := range []string{"https://evil.example", "http://localhost.evil.example", "http://127.0.0.1.nip.io:5173", "null", "file://"} {
		for _, method := range []string{http.MethodOptions, http.MethodGet} {
			resp := do(method, origin)
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("%s from %s: %d, allow-origin %q", method, origin, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
			}
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("pages from other origins reached the handler %d times", n)
	}
	for _, origin := range []string{"http://localhost:5173", "http://127.0.0.1:3000", "http://[::1]:8081", "https://localhost"} {
		if resp := do(http.MethodOptions, origin); resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != origin {
			t.Errorf("preflight from %s: %d %q", origin, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
		if resp := do(http.MethodGet, origin); resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != origin {
			t.Errorf("GET from %s: %d %q", origin, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	}
	// curl and other non-browser clients send no Origin: unchanged.
	if resp := do(http.MethodGet, ""); resp.StatusCode != http.StatusOK {
		t.Errorf("GET without Origin: %d", resp.StatusCode)
	}
}
