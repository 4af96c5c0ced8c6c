// Package contract checks the REST contract the front end codes against,
// docs/openapi.yaml, against the deployment template and the handlers: the
// same routes everywhere, every response of the real handlers valid under the
// document, and request schemas that refuse what the handlers refuse.
//
// This file holds the helpers the tests use: loading the document and
// reading the route set of the document, of template.yaml and of the
// routers. The tests are in the _test.go files.
package contract

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"gopkg.in/yaml.v3"

	"github.com/merchantsync/merchantsync/internal/httpapi"
)

// Routes is a set of route keys as API Gateway names them:
// "METHOD /path/{param}".
type Routes map[string]bool

// Sorted returns the keys in order.
func (r Routes) Sorted() []string {
	out := make([]string, 0, len(r))
	for k := range r {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Load reads and validates an OpenAPI document (no external references).
func Load(ctx context.Context, path string) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	loader.Context = ctx
	loader.IsExternalRefsAllowed = false
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("validate %s: %w", path, err)
	}
	return doc, nil
}

// DocumentRoutes lists the operations of doc.
func DocumentRoutes(doc *openapi3.T) Routes {
	out := Routes{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			out[strings.ToUpper(method)+" "+path] = true
		}
	}
	return out
}

// RouterRoutes lists the route keys the routers serve.
func RouterRoutes(routers ...*httpapi.Router) Routes {
	out := Routes{}
	for _, r := range routers {
		for _, k := range r.Keys() {
			out[k] = true
		}
	}
	return out
}

// TemplateRoutes lists the HttpApi events of the functions of a SAM
// template. Only Resources.*.Properties.Events.*.{Type,Properties.Method,
// Properties.Path} are read, so CloudFormation's short tags (!Ref, !Sub …)
// elsewhere do not matter.
func TemplateRoutes(path string) (Routes, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	out := Routes{}
	resources := get(root.Content[0], "Resources")
	for _, res := range values(resources) {
		for name, ev := range pairs(get(get(res, "Properties"), "Events")) {
			if scalar(get(ev, "Type")) != "HttpApi" {
				continue
			}
			props := get(ev, "Properties")
			method, p := scalar(get(props, "Method")), scalar(get(props, "Path"))
			if method == "" || p == "" {
				return nil, fmt.Errorf("%s: HttpApi event %s has no Method or Path (a catch-all route would bypass the contract)", path, name)
			}
			out[strings.ToUpper(method)+" "+p] = true
		}
	}
	return out, nil
}

// Diff returns the keys only in a and the keys only in b.
func Diff(a, b Routes) (onlyA, onlyB []string) {
	for k := range a {
		if !b[k] {
			onlyA = append(onlyA, k)
		}
	}
	for k := range b {
		if !a[k] {
			onlyB = append(onlyB, k)
		}
	}
	slices.Sort(onlyA)
	slices.Sort(onlyB)
	return onlyA, onlyB
}

// Compare reports every route that is not in all of the named sets, or nil
// when they are equal.
func Compare(sets map[string]Routes) error {
	names := make([]string, 0, len(sets))
	all := Routes{}
	for name, s := range sets {
		names = append(names, name)
		for k := range s {
			all[k] = true
		}
	}
	sort.Strings(names)
	var problems []string
	for _, k := range all.Sorted() {
		var in, missing []string
		for _, name := range names {
			if sets[name][k] {
				in = append(in, name)
			} else {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			problems = append(problems, fmt.Sprintf("%s: in %s, missing from %s", k, strings.Join(in, ", "), strings.Join(missing, ", ")))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("route sets differ:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

// get returns the value of key in a mapping node, or nil.
func get(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func values(n *yaml.Node) []*yaml.Node {
	var out []*yaml.Node
	for _, v := range pairs(n) {
		out = append(out, v)
	}
	return out
}

func pairs(n *yaml.Node) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if n == nil || n.Kind != yaml.MappingNode {
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		out[n.Content[i].Value] = n.Content[i+1]
	}
	return out
}

func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}
