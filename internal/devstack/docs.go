package devstack

import (
	"net/http"
	"os"
	"path/filepath"
)

// docs serves the OpenAPI document (and its rendered reference when built).
func docs(root string) map[string]http.Handler {
	out := map[string]http.Handler{}
	spec := filepath.Join(root, "docs", "openapi.yaml")
	if _, err := os.Stat(spec); err == nil {
		out["/openapi.yaml"] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/yaml")
			http.ServeFile(w, r, spec)
		})
	}
	return out
}
