package infra

// Reading template.yaml as written (SAM shorthand, short-form intrinsics)
// and the accessors the template checks share.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// loadTemplate parses a CloudFormation YAML template into plain Go values,
// turning short-form intrinsics (!Ref X) into their long form ({"Ref": X}).
func loadTemplate(t testing.TB, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	v, err := nodeValue(doc.Content[0])
	if err != nil {
		t.Fatal(err)
	}
	return v.(map[string]any)
}

func nodeValue(n *yaml.Node) (any, error) {
	var v any
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i < len(n.Content); i += 2 {
			val, err := nodeValue(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = val
		}
		v = m
	case yaml.SequenceNode:
		s := []any{}
		for _, c := range n.Content {
			val, err := nodeValue(c)
			if err != nil {
				return nil, err
			}
			s = append(s, val)
		}
		v = s
	case yaml.ScalarNode:
		if err := n.Decode(&v); err != nil {
			// Custom tags (!Ref) decode as plain strings.
			v = n.Value
		}
		if isIntrinsic(n.Tag) {
			v = n.Value
		}
	case yaml.AliasNode:
		return nodeValue(n.Alias)
	}
	if isIntrinsic(n.Tag) {
		name := strings.TrimPrefix(n.Tag, "!")
		if name != "Ref" && name != "Condition" {
			name = "Fn::" + name
		}
		if name == "Fn::GetAtt" {
			if s, ok := v.(string); ok {
				v = strings.SplitN(s, ".", 2)
			}
		}
		v = map[string]any{name: v}
	}
	return v, nil
}

// isIntrinsic reports a CloudFormation short-form tag (!Ref), not a YAML core tag (!!str).
func isIntrinsic(tag string) bool {
	return strings.HasPrefix(tag, "!") && !strings.HasPrefix(tag, "!!")
}

func repoRoot(t testing.TB) string {
	t.Helper()
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}

func m(v any) map[string]any { r, _ := v.(map[string]any); return r }

func list(v any) []any {
	switch x := v.(type) {
	case []any:
		return x
	case nil:
		return nil
	default:
		return []any{x}
	}
}

// functionDir maps a function's logical id to its package: ApiFunction → functions/api.
func functionDir(logicalID string) string {
	return "functions/" + strings.ToLower(strings.TrimSuffix(logicalID, "Function"))
}

func resourcesOfType(tpl map[string]any, typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range m(tpl["Resources"]) {
		if m(r)["Type"] == typ {
			out[id] = m(r)
		}
	}
	return out
}

// functionProp reads a function property, falling back to Globals.
func functionProp(tpl map[string]any, fn map[string]any, name string) any {
	if v, ok := m(fn["Properties"])[name]; ok {
		return v
	}
	return m(m(tpl["Globals"])["Function"])[name]
}

// policyStatements returns every inline IAM statement of a function.
func policyStatements(fn map[string]any) []map[string]any {
	var out []map[string]any
	for _, p := range list(m(fn["Properties"])["Policies"]) {
		for _, s := range list(m(p)["Statement"]) {
			out = append(out, m(s))
		}
	}
	return out
}

func actions(s map[string]any) []string {
	var out []string
	for _, a := range list(s["Action"]) {
		out = append(out, fmt.Sprint(a))
	}
	return out
}

// refersTo reports whether v is a Ref, GetAtt or Sub of the resource id.
func refersTo(v any, id string) bool {
	x := m(v)
	if x["Ref"] == id {
		return true
	}
	switch ga := x["Fn::GetAtt"].(type) {
	case []string:
		return len(ga) > 0 && ga[0] == id
	case []any:
		return len(ga) > 0 && ga[0] == id
	}
	sub, _ := x["Fn::Sub"].(string)
	return strings.Contains(sub, "${"+id+".") || strings.Contains(sub, "${"+id+"}")
}

// dimension returns the value of the named dimension of a metric.
func dimension(metric map[string]any, name string) any {
	for _, d := range list(metric["Dimensions"]) {
		if m(d)["Name"] == name {
			return m(d)["Value"]
		}
	}
	return nil
}

// wantProblem checks what a check reported for a break case: nothing when
// want is "" (the unbroken template), else a problem containing want.
func wantProblem(t *testing.T, name, want string, got []string) {
	t.Helper()
	switch {
	case want == "":
		for _, p := range got {
			t.Error(p)
		}
	case !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, want) }):
		t.Errorf("breaking %q: want a problem containing %q, got %q", name, want, got)
	}
}
