package contract

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// domainErrorCodes reads the error codes declared in
// internal/merchantsync/errors.go (the E* string constants), in order.
func domainErrorCodes() []string {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join("..", "merchantsync", "errors.go"), nil, 0)
	if err != nil {
		panic(err)
	}
	var codes []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "E") || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					v, _ := strconv.Unquote(lit.Value)
					codes = append(codes, v)
				}
			}
		}
	}
	return codes
}

// errorCodesOf returns the error codes a response schema allows in
// error.code, and whether the schema is an Error envelope at all (an object
// requiring "error", possibly narrowed by allOf siblings, possibly one
// branch of a oneOf). Within an allOf the narrowest const/enum wins.
func errorCodesOf(s *openapi3.Schema) (codes []string, isError bool) {
	isEnvelope := func(s *openapi3.Schema) bool {
		return s != nil && slices.Contains(s.Required, "error") && s.Properties["error"] != nil
	}
	codeEnum := func(s *openapi3.Schema) []string {
		if e := s.Properties["error"]; e != nil && e.Value != nil {
			if c := e.Value.Properties["code"]; c != nil && c.Value != nil {
				return enumOf(c.Value)
			}
		}
		return nil
	}
	var walk func(s *openapi3.Schema) []string
	walk = func(s *openapi3.Schema) []string {
		if s == nil {
			return nil
		}
		var out []string
		envelope := isEnvelope(s)
		for _, sub := range s.AllOf {
			envelope = envelope || isEnvelope(sub.Value)
		}
		if envelope {
			isError = true
			out = codeEnum(s)
			for _, sub := range s.AllOf {
				if narrower := codeEnum(sub.Value); narrower != nil && (out == nil || len(narrower) < len(out)) {
					out = narrower
				}
			}
		}
		for _, sub := range s.OneOf {
			out = append(out, walk(sub.Value)...)
		}
		return out
	}
	codes = walk(s)
	slices.Sort(codes)
	return slices.Compact(codes), isError
}

func enumOf(s *openapi3.Schema) []string {
	if s.Const != nil {
		return []string{s.Const.(string)}
	}
	var out []string
	for _, v := range s.Enum {
		out = append(out, v.(string))
	}
	return out
}

// Every error response of the document allows exactly codes that
// merchantsync.HTTPStatus maps to that response's status, so a front end
// switching on (status, code) never meets a combination the document hides.
func TestErrorResponsesMatchHTTPStatus(t *testing.T) {
	doc := loadDoc(t)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status, ref := range op.Responses.Map() {
				n, err := strconv.Atoi(status)
				if err != nil {
					t.Errorf("%s %s: response %q is not a status code (no default responses: every status is listed)", method, path, status)
					continue
				}
				mt := ref.Value.Content.Get("application/json")
				if mt == nil {
					t.Errorf("%s %s %s: no application/json content", method, path, status)
					continue
				}
				codes, isError := errorCodesOf(mt.Schema.Value)
				if n < 400 {
					if isError {
						t.Errorf("%s %s %s: a success response with an error schema", method, path, status)
					}
					continue
				}
				if n == 429 {
					continue // API Gateway's own throttling: GatewayError only
				}
				if !isError || len(codes) == 0 {
					t.Errorf("%s %s %s: error response without an Error schema narrowing error.code", method, path, status)
					continue
				}
				for _, c := range codes {
					if got := merchantsync.HTTPStatus(c); got != n {
						t.Errorf("%s %s %s allows code %s, which merchantsync answers with %d", method, path, status, c, got)
					}
				}
			}
		}
	}
}
