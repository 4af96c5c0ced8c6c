package testenv

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/merchantsync/merchantsync/internal/queue"
)

// APIEvent is the API Gateway HTTP API (payload 2.0) event of a request as
// tenant, as the JWT authorizer passes it (tenant in the tenant_id claim,
// a user in sub; no tenant: no authorizer context).
func APIEvent(method, path, tenant, body string, query map[string]string) events.APIGatewayV2HTTPRequest {
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RawPath: path, Body: body, QueryStringParameters: query,
		Headers: map[string]string{"content-type": "application/json"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID: "test-request",
			HTTP:      events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: path},
		},
	}
	if tenant != "" {
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{
				Claims: map[string]string{"tenant_id": tenant, "sub": "user-" + tenant}},
		}
	}
	return ev
}

// Invoke calls handler with ev through lambda.NewHandler(…).Invoke, the
// JSON path the Lambda runtime takes, and returns the response.
func Invoke(t testing.TB, handler any, ev events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
	t.Helper()
	payload, _ := json.Marshal(ev)
	out, err := lambda.NewHandler(handler).Invoke(context.Background(), payload)
	if err != nil {
		t.Fatalf("invoke %s %s: %v", ev.RequestContext.HTTP.Method, ev.RawPath, err)
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("invoke %s %s: response %s: %v", ev.RequestContext.HTTP.Method, ev.RawPath, out, err)
	}
	return resp
}

// SQSHandler is a sync worker's Lambda handler.
type SQSHandler func(context.Context, events.SQSEvent) (events.SQSEventResponse, error)

// Deliver plays the event source mapping on the World's queue: it hands
// the queued messages to handler through lambda.NewHandler, batches of up
// to 10, until want messages were handled, and returns the responses.
func (w *World) Deliver(handler SQSHandler, want int) []events.SQSEventResponse {
	w.T.Helper()
	var resps []events.SQSEventResponse
	p := &queue.Poller{
		Client: w.SQS, QueueURL: w.QueueURL, WaitSeconds: 1, BatchSize: 10, Timeout: time.Minute, Logger: w.Logger,
		Handler: func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			payload, _ := json.Marshal(ev)
			out, err := lambda.NewHandler(handler).Invoke(ctx, payload)
			var resp events.SQSEventResponse
			if err == nil {
				err = json.Unmarshal(out, &resp)
			}
			resps = append(resps, resp)
			return resp, err
		},
	}
	arn := QueueARN(w.T, w.QueueURL)
	deadline := time.Now().Add(time.Minute)
	for got := 0; got < want; {
		if time.Now().After(deadline) {
			w.T.Fatalf("the worker handled %d of %d messages", got, want)
		}
		n, err := p.PollOnce(w.Ctx, arn)
		if err != nil {
			w.T.Fatalf("poll: %v", err)
		}
		got += n
	}
	return resps
}
