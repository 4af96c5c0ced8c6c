package contract

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/merchantsync/merchantsync/internal/httpapi"
)

var (
	docPath      = filepath.Join("..", "..", "docs", "openapi.yaml")
	templatePath = filepath.Join("..", "..", "template.yaml")
)

func TestDocumentLoadsAndValidates(t *testing.T) {
	doc, err := Load(context.Background(), docPath)
	if err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" || !doc.IsOpenAPI31OrLater() {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	if doc.Info.Version != "1.0.0" {
		t.Errorf("info.version = %q, want 1.0.0", doc.Info.Version)
	}
	var urls []string
	for _, s := range doc.Servers {
		urls = append(urls, s.URL)
	}
	if len(urls) != 2 || !strings.Contains(urls[0], "execute-api") || urls[1] != "http://127.0.0.1:8080" ||
		!strings.Contains(doc.Servers[1].Description, "X-Tenant-Id") {
		t.Errorf("servers = %v: want the API Gateway placeholder and the local stack (with X-Tenant-Id described)", urls)
	}
	if len(doc.Security) != 1 || doc.Security[0]["bearerAuth"] == nil {
		t.Errorf("global security = %v, want bearerAuth", doc.Security)
	}
	if s := doc.Components.SecuritySchemes["bearerAuth"]; s == nil || s.Value.Scheme != "bearer" || s.Value.BearerFormat != "JWT" {
		t.Errorf("bearerAuth is not a JWT bearer scheme")
	}
}

// The document's error codes are exactly merchantsync's (internal/merchantsync/errors.go).
func TestErrorCodeEnumMatchesDomain(t *testing.T) {
	doc := loadDoc(t)
	var got []string
	for _, v := range doc.Components.Schemas["ErrorCode"].Value.Enum {
		got = append(got, v.(string))
	}
	want := domainErrorCodes()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("ErrorCode enum = %v\nwant (merchantsync) %v", got, want)
	}
}

func templateRoutes(t *testing.T) Routes {
	t.Helper()
	r, err := TemplateRoutes(templatePath)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// codeRoutes constructs the four API functions' routers with zero-value
// dependencies: Keys does not call them.
func codeRoutes() Routes {
	return RouterRoutes(
		httpapi.NewAPIRouter(&httpapi.API{}, nil),
		httpapi.NewCredentialsRouter(&httpapi.Credentials{}, nil),
		httpapi.NewSyncNowRouter(&httpapi.SyncNow{}, nil),
		httpapi.NewWebhooksRouter(&httpapi.Webhooks{}, nil),
	)
}

// The document, template.yaml and the routers name the same routes.
func TestRouteParity(t *testing.T) {
	doc, tmpl, code := DocumentRoutes(loadDoc(t)), templateRoutes(t), codeRoutes()
	if err := Compare(map[string]Routes{"docs/openapi.yaml": doc, "template.yaml": tmpl, "routers": code}); err != nil {
		t.Fatal(err)
	}
	if len(doc) != 19 {
		t.Errorf("%d routes, want the 19 of the design: %v", len(doc), doc.Sorted())
	}
	// No two functions serve the same route (API Gateway would refuse the stack).
	seen := map[string]int{}
	for _, r := range []*httpapi.Router{
		httpapi.NewAPIRouter(&httpapi.API{}, nil),
		httpapi.NewCredentialsRouter(&httpapi.Credentials{}, nil),
		httpapi.NewSyncNowRouter(&httpapi.SyncNow{}, nil),
		httpapi.NewWebhooksRouter(&httpapi.Webhooks{}, nil),
	} {
		for _, k := range r.Keys() {
			seen[k]++
		}
	}
	for k, n := range seen {
		if n > 1 {
			t.Errorf("%s is served by %d functions", k, n)
		}
	}
}

// Breaking the contract fails a test: a route added on one side only is
// reported, naming the route and the side it is missing from.
func TestRouteParityDetectsDrift(t *testing.T) {
	doc, tmpl, code := DocumentRoutes(loadDoc(t)), templateRoutes(t), codeRoutes()
	const fake = "PATCH /v1/networks/{network}/ids"

	tmplPlus := Routes{fake: true}
	for k := range tmpl {
		tmplPlus[k] = true
	}
	err := Compare(map[string]Routes{"docs/openapi.yaml": doc, "template.yaml": tmplPlus, "routers": code})
	if err == nil || !strings.Contains(err.Error(), fake+": in template.yaml, missing from docs/openapi.yaml, routers") {
		t.Fatalf("a route only in the template was not reported: %v", err)
	}

	docMinus := Routes{}
	for k := range doc {
		if k != "POST /v1/networks/{network}/sync" {
			docMinus[k] = true
		}
	}
	err = Compare(map[string]Routes{"docs/openapi.yaml": docMinus, "template.yaml": tmpl, "routers": code})
	if err == nil || !strings.Contains(err.Error(), "POST /v1/networks/{network}/sync: in routers, template.yaml, missing from docs/openapi.yaml") {
		t.Fatalf("a route missing from the document was not reported: %v", err)
	}

	onlyA, onlyB := Diff(tmplPlus, doc)
	if len(onlyA) != 1 || onlyA[0] != fake || len(onlyB) != 0 {
		t.Errorf("Diff = %v, %v", onlyA, onlyB)
	}
}

// A renamed path parameter is drift too: {runID} is not {runId}.
func TestRouteParityIsExactAboutParameters(t *testing.T) {
	code := codeRoutes()
	renamed := Routes{}
	for k := range code {
		renamed[strings.ReplaceAll(k, "{runId}", "{runID}")] = true
	}
	if Compare(map[string]Routes{"a": code, "b": renamed}) == nil {
		t.Fatal("a renamed path parameter was not reported")
	}
}

func loadDoc(t testing.TB) *openapi3.T {
	t.Helper()
	doc, err := Load(context.Background(), docPath)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}
