// Package devstack runs merchantsync on one machine without an AWS account
// or Docker: the same Lambda handlers behind a local HTTP gateway, DynamoDB
// Local, moto for SQS and Secrets Manager, and the Rakuten sandbox.
package devstack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/merchantsync/merchantsync/internal/httpapi"
)

// Function is one API Lambda as the gateway sees it.
type Function struct {
	Name   string
	Router *httpapi.Router
}

// Gateway is a local stand-in for API Gateway's HTTP API: it turns a
// net/http request into the payload v2 event, takes the tenant from the
// X-Tenant-Id header in place of the JWT authorizer's claim (only here), and
// invokes the owning function through lambda.NewHandler(...).Invoke, the same
// JSON path the Lambda runtime uses.
type Gateway struct {
	Functions []Function
	Extra     map[string]http.Handler // exact paths served directly (e.g. /openapi.yaml)
	Logger    *slog.Logger
}

func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// CORS for a front end served from another local origin (e.g. a Vite
	// dev server), and only those: X-Tenant-Id picks any tenant here, so a
	// page from anywhere else the developer visits must not drive the API.
	if origin := r.Header.Get("Origin"); origin != "" {
		w.Header().Set("Vary", "Origin")
		if !localOrigin(origin) {
			writeJSON(w, http.StatusForbidden, `{"error":{"code":"unauthorized","message":"The local stack only answers pages served from localhost."}}`)
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", origin)
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Methods", "GET, PUT, POST, DELETE")
			w.Header().Set("Access-Control-Allow-Headers", "authorization, content-type, x-tenant-id")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	if h, ok := g.Extra[r.URL.Path]; ok {
		h.ServeHTTP(w, r)
		return
	}
	fn := g.owner(r.Method, r.URL.Path)
	if fn == nil {
		writeJSON(w, http.StatusNotFound, `{"error":{"code":"not_found","message":"No route `+r.Method+` `+jsonEscape(r.URL.Path)+`."}}`)
		return
	}
	// API Gateway caps payloads at 10 MB; the handler enforces its own 64 KiB.
	body, err := io.ReadAll(io.LimitReader(r.Body, 10<<20))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, `{"error":{"code":"invalid_request","message":"could not read body"}}`)
		return
	}
	claim := fn.Router.TenantClaim
	if claim == "" {
		claim = httpapi.DefaultTenantClaim
	}
	ev := toEvent(r, body, claim)
	payload, _ := json.Marshal(ev)
	out, err := lambda.NewHandler(fn.Router.Handle).Invoke(r.Context(), payload)
	if err != nil {
		g.Logger.Error("invoke", "function", fn.Name, "err", err.Error())
		writeJSON(w, http.StatusInternalServerError, `{"error":{"code":"internal","message":"Internal Server Error"}}`)
		return
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		writeJSON(w, http.StatusInternalServerError, `{"error":{"code":"internal","message":"bad function response"}}`)
		return
	}
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.WriteString(w, resp.Body)
}

func (g *Gateway) owner(method, path string) *Function {
	for i := range g.Functions {
		if g.Functions[i].Router.Serves(method, path) {
			return &g.Functions[i]
		}
	}
	return nil
}

// localOrigin reports whether a browser Origin is a page on this machine:
// http(s)://localhost, 127.0.0.1 or [::1], any port.
func localOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Path != "" || u.User != nil {
		return false
	}
	switch u.Hostname() {
	case "localhost", "127.0.0.1", "::1":
		return true
	}
	return false
}

// toEvent builds the payload v2 event API Gateway would send, with the
// X-Tenant-Id header as the tenant claim.
func toEvent(r *http.Request, body []byte, claim string) events.APIGatewayV2HTTPRequest {
	headers := map[string]string{}
	for k, v := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(v, ",")
	}
	query := map[string]string{}
	for k, v := range r.URL.Query() {
		query[k] = strings.Join(v, ",")
	}
	ev := events.APIGatewayV2HTTPRequest{
		Version:               "2.0",
		RouteKey:              "$default",
		RawPath:               r.URL.Path,
		RawQueryString:        r.URL.RawQuery,
		Headers:               headers,
		QueryStringParameters: query,
		Body:                  string(body),
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID: fmt.Sprintf("local-%d", time.Now().UnixNano()),
			Stage:     "$default",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method: r.Method, Path: r.URL.Path, Protocol: r.Proto, SourceIP: r.RemoteAddr, UserAgent: r.UserAgent(),
			},
		},
	}
	// Only the local stack does this: in AWS the JWT authorizer sets the claims.
	if t := r.Header.Get("X-Tenant-Id"); t != "" {
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{claim: t}},
		}
	}
	return ev
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// shutdown gives servers a moment to finish in-flight requests.
func shutdown(srv *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}
