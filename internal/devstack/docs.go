package devstack

import (
	"net/http"
	"os"
	"path/filepath"
)

// docs serves the OpenAPI document at /openapi.yaml and, when `make dev`
// could build it with Redocly, the rendered reference page at /docs.
func docs(root string) map[string]http.Handler {
	out := map[string]http.Handler{}
	spec := filepath.Join(root, "docs", "openapi.yaml")
	if _, err := os.Stat(spec); err == nil {
		out["/openapi.yaml"] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/yaml")
			http.ServeFile(w, r, spec)
		})
	}
	page := filepath.Join(root, ".cache", "docs", "index.html")
	if _, err := os.Stat(page); err == nil {
		out["/docs"] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.ServeFile(w, r, page)
		})
	}
	return out
}
