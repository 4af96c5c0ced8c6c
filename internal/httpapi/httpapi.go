// Package httpapi translates API Gateway HTTP API (payload v2) events to
// domain calls and back. It holds no business state: every function's
// handler is a Router over the routes that function serves.
package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// MaxBodyBytes is the largest request body accepted. Every request body of
// this API is a handful of short strings; anything larger is a mistake or an attack.
const MaxBodyBytes = 64 << 10

// tenantPattern bounds tenant ids taken from JWT claims: they become part of
// DynamoDB keys and secret names, so '#' and control characters are refused.
var tenantPattern = regexp.MustCompile(`^[A-Za-z0-9_.@:|+=/-]{1,128}$`)

// Request is what a route handler sees of an API call.
type Request struct {
	Tenant     string
	RequestID  string
	PathParams map[string]string
	Query      map[string]string
	Header     map[string]string
	Body       []byte
}

// HandlerFunc serves one route. It returns the HTTP status and a value
// marshalled as the JSON response body, or an error mapped by its code.
type HandlerFunc func(ctx context.Context, r *Request) (int, any, error)

// Route binds a route key as API Gateway names it ("PUT /v1/networks/{network}/ids")
// to its handler.
type Route struct {
	Key     string
	Handler HandlerFunc
}

// Router is one Lambda function's API: the routes it serves.
type Router struct {
	routes []compiledRoute
	logger *slog.Logger
	now    func() time.Time
	// TenantClaim names the JWT claim that holds the tenant id
	// (TENANT_CLAIM, the stack's TenantClaim parameter); empty means
	// DefaultTenantClaim.
	TenantClaim string
}

// DefaultTenantClaim is the JWT claim holding the tenant id unless the
// stack names another.
const DefaultTenantClaim = "tenant_id"

type compiledRoute struct {
	method   string
	segments []string
	Route
}

// NewRouter returns a Router serving routes.
func NewRouter(logger *slog.Logger, routes ...Route) *Router {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Router{logger: logger, now: time.Now}
	for _, rt := range routes {
		method, path, ok := strings.Cut(rt.Key, " ")
		if !ok {
			panic("httpapi: bad route key " + rt.Key)
		}
		r.routes = append(r.routes, compiledRoute{method: method, segments: split(path), Route: rt})
	}
	return r
}

// Keys lists the route keys the router serves (the template test compares them).
func (rt *Router) Keys() []string {
	keys := make([]string, len(rt.routes))
	for i, r := range rt.routes {
		keys[i] = r.Key
	}
	return keys
}

func split(path string) []string { return strings.Split(strings.Trim(path, "/"), "/") }

// match finds the route for method and path, filling path parameters. It
// returns methodMismatch when the path exists under another method.
func (rt *Router) match(method, path string) (r *compiledRoute, params map[string]string, methodMismatch bool) {
	segs := split(path)
	for i := range rt.routes {
		c := &rt.routes[i]
		if len(c.segments) != len(segs) {
			continue
		}
		p := map[string]string{}
		ok := true
		for j, s := range c.segments {
			if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
				p[s[1:len(s)-1]] = segs[j]
			} else if s != segs[j] {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		if c.method != method {
			methodMismatch = true
			continue
		}
		return c, p, false
	}
	return nil, nil, methodMismatch
}

// Handle serves one API Gateway HTTP API event. It never returns an error:
// every failure becomes a JSON error response, so API Gateway never answers
// with its own opaque 500.
func (rt *Router) Handle(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	start := rt.now()
	method := ev.RequestContext.HTTP.Method
	path := ev.RawPath
	if path == "" {
		path = ev.RequestContext.HTTP.Path
	}
	req := &Request{
		RequestID: ev.RequestContext.RequestID,
		Query:     ev.QueryStringParameters,
		Header:    lowerKeys(ev.Headers),
	}
	log := rt.logger.With("request_id", req.RequestID, "method", method, "path", path)

	status, body, err := rt.serve(ctx, ev, method, path, req)
	if err != nil {
		status = merchantsync.HTTPStatus(merchantsync.ErrorCode(err))
		body = errorBody(err)
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		log.Log(ctx, level, "request failed", "tenant_id", req.Tenant, "status", status,
			"code", merchantsync.ErrorCode(err), "err", err.Error())
	}
	resp := respond(status, body)
	log.Info("request", "tenant_id", req.Tenant, "status", status, "duration_ms", rt.now().Sub(start).Milliseconds())
	return resp, nil
}

func (rt *Router) serve(ctx context.Context, ev events.APIGatewayV2HTTPRequest, method, path string, req *Request) (status int, body any, err error) {
	defer func() {
		// A handler bug must not take the Lambda down or leak a stack trace.
		if p := recover(); p != nil {
			rt.logger.ErrorContext(ctx, "handler panic", "panic", fmt.Sprint(p))
			status, body, err = 0, nil, fmt.Errorf("panic: %v", p)
		}
	}()
	route, params, mismatch := rt.match(method, path)
	if route == nil {
		if mismatch {
			return 0, nil, merchantsync.Errorf(merchantsync.EMethodNotAllowed, "%s is not supported on %s.", method, path)
		}
		return 0, nil, merchantsync.Errorf(merchantsync.ENotFound, "No route %s %s.", method, path)
	}
	if len(ev.PathParameters) > 0 {
		params = ev.PathParameters
	}
	req.PathParams = params
	if n, ok := params["network"]; ok {
		if _, known := merchantsync.LookupNetwork(n); !known {
			return 0, nil, merchantsync.FieldError(merchantsync.ENotFound, "network",
				fmt.Sprintf("Unknown network %q. Supported networks: rakuten.", truncate(n, 40)))
		}
	}
	claim := rt.TenantClaim
	if claim == "" {
		claim = DefaultTenantClaim
	}
	tenant, err := tenantFrom(ev, claim)
	if err != nil {
		return 0, nil, err
	}
	req.Tenant = tenant
	if req.Body, err = readBody(ev); err != nil {
		return 0, nil, err
	}
	return route.Handler(ctx, req)
}

// tenantFrom takes the tenant from the JWT authorizer's claim named claim,
// and nowhere else: not the path, query or body, and not another claim. A
// silent fallback (to sub, say) would let a token without the claim act as
// a tenant named after its user.
func tenantFrom(ev events.APIGatewayV2HTTPRequest, claim string) (string, error) {
	var claims map[string]string
	if a := ev.RequestContext.Authorizer; a != nil && a.JWT != nil {
		claims = a.JWT.Claims
	}
	t := claims[claim]
	if t == "" {
		return "", merchantsync.Errorf(merchantsync.EUnauthorized, "The token carries no %s claim: sign in again.", claim)
	}
	if !tenantPattern.MatchString(t) {
		return "", merchantsync.Errorf(merchantsync.EUnauthorized, "The token's tenant id is not valid.")
	}
	return t, nil
}

func readBody(ev events.APIGatewayV2HTTPRequest) ([]byte, error) {
	if ev.Body == "" {
		return nil, nil
	}
	// A base64 body is 4/3 the size of its content; refuse before decoding.
	if len(ev.Body) > MaxBodyBytes*4/3+4 {
		return nil, tooLarge()
	}
	b := []byte(ev.Body)
	if ev.IsBase64Encoded {
		var err error
		if b, err = base64.StdEncoding.DecodeString(ev.Body); err != nil {
			return nil, merchantsync.Errorf(merchantsync.EInvalidJSON, "The request body is not valid base64.")
		}
	}
	if len(b) > MaxBodyBytes {
		return nil, tooLarge()
	}
	return b, nil
}

func tooLarge() error {
	return merchantsync.Errorf(merchantsync.ETooLarge, "The request body is larger than %d KiB.", MaxBodyBytes>>10)
}

// decodeJSON decodes a JSON object body into dst strictly: one object,
// known fields only, nothing after it.
func decodeJSON(r *Request, dst any) error {
	if ct := r.Header["content-type"]; ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return merchantsync.Errorf(merchantsync.EUnsupportedMedia, "Send the body as application/json.")
		}
	}
	if len(bytes.TrimSpace(r.Body)) == 0 {
		return merchantsync.Errorf(merchantsync.EInvalidJSON, "The request body is empty; send a JSON object.")
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return merchantsync.Errorf(merchantsync.EInvalidJSON, "The request body must hold exactly one JSON object.")
	}
	return nil
}

func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return merchantsync.Errorf(merchantsync.EInvalidJSON, "The request body must be a JSON object.")
		}
		return merchantsync.FieldError(merchantsync.EInvalidJSON, typeErr.Field,
			fmt.Sprintf("Field %q must be a %s, not a %s.", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value))
	case errors.As(err, &syntaxErr):
		return merchantsync.Errorf(merchantsync.EInvalidJSON, "The request body is not valid JSON (at byte %d).", syntaxErr.Offset)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return merchantsync.FieldError(merchantsync.EInvalidJSON, field, fmt.Sprintf("Unknown field %q.", truncate(field, 64)))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return merchantsync.Errorf(merchantsync.EInvalidJSON, "The request body is truncated JSON.")
	}
	return merchantsync.Errorf(merchantsync.EInvalidJSON, "The request body is not valid JSON.")
}

func jsonKind(k string) string {
	switch k {
	case "bool":
		return "boolean"
	case "ptr", "struct", "map":
		return "object"
	case "int", "int64", "float64":
		return "number"
	}
	return k
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func lowerKeys(h map[string]string) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		out[strings.ToLower(k)] = v
	}
	return out
}

type errorJSON struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func errorBody(err error) errorJSON {
	return errorJSON{Error: errorDetail{
		Code:    merchantsync.ErrorCode(err),
		Message: merchantsync.ErrorMessage(err),
		Field:   merchantsync.ErrorField(err),
	}}
}

func respond(status int, body any) events.APIGatewayV2HTTPResponse {
	resp := events.APIGatewayV2HTTPResponse{
		StatusCode: status,
		Headers: map[string]string{
			"Content-Type":           "application/json",
			"Cache-Control":          "no-store",
			"X-Content-Type-Options": "nosniff",
		},
	}
	if status == http.StatusNoContent || body == nil {
		return resp
	}
	b, err := json.Marshal(body)
	if err != nil {
		resp.StatusCode = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody(err))
	}
	resp.Body = string(b)
	return resp
}

// Serves reports whether the router has a route for path (under any method),
// so a local gateway can pick the function that owns a path.
func (rt *Router) Serves(method, path string) bool {
	r, _, mismatch := rt.match(method, path)
	return r != nil || mismatch
}
