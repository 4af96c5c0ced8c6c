package devstack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/merchantsync/merchantsync/internal/dynamo/dynamotest"
	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
	"github.com/merchantsync/merchantsync/internal/testenv"
	"github.com/merchantsync/merchantsync/internal/webhook"
)

// The README's webhook walk-through on the stack `make dev` runs (Run, on
// the shared DynamoDB Local and moto): a receiver on 127.0.0.1 registered,
// 10 merchants churned, a sync: the receiver gets 10 relationship.changed
// and a sync.completed, each verified with the secret.
func TestDevStackWebhookWalkthrough(t *testing.T) {
	for k, v := range map[string]string{
		"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
		"AWS_ENDPOINT_URL_DYNAMODB": dynamotest.Endpoint(t), "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": dynamotest.Endpoint(t),
		"AWS_ENDPOINT_URL_SQS": testenv.MotoEndpoint(t), "AWS_ENDPOINT_URL_SECRETS_MANAGER": testenv.MotoEndpoint(t),
		"AWS_ENDPOINT_URL_KMS": testenv.MotoEndpoint(t), "AWS_ENDPOINT_URL_EVENTBRIDGE": testenv.MotoEndpoint(t),
		"TABLE_NAME": testenv.UniqueName(t, 60), "SECRET_PREFIX": testenv.SecretPrefix(t),
		"SECRET_KMS_KEY_ID": "", "SYNC_QUEUE_URL": "", "RAKUTEN_BASE_URL": "",
		"WEBHOOK_ALLOW_LOOPBACK": "", "WEBHOOK_RETRY_SCALE": "", "SYNC_FRESH_FOR": "",
	} {
		t.Setenv(k, v)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out testenv.Buffer
	go func() { done <- Run(ctx, Options{ListenAddr: addr, RepoRoot: root, Log: io.Discard, Out: &out}) }()
	t.Cleanup(func() { cancel(); <-done })

	api := "http://" + addr
	call := func(method, path, body string, want int) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, api+path, strings.NewReader(body))
		req.Header.Set("X-Tenant-Id", "walkthrough")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		if resp.StatusCode != want {
			t.Fatalf("%s %s = %d %v, want %d", method, path, resp.StatusCode, m, want)
		}
		return m
	}
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "Webhooks") {
		if time.Now().After(deadline) {
			t.Fatal("the stack did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}

	call("PUT", "/v1/networks/rakuten/ids", `{"affiliateId":"lMh2Xiq9xN0","siteId":"`+sandbox.DemoSiteID+`"}`, 200)
	call("PUT", "/v1/networks/rakuten/credentials", fmt.Sprintf(`{"clientId":%q,"clientSecret":%q,"siteId":%q,"username":%q,"password":%q}`,
		sandbox.DemoClientID, sandbox.DemoClientSecret, sandbox.DemoSiteID, sandbox.DemoUsername, sandbox.DemoPassword), 200)
	call("POST", "/v1/networks/rakuten/sync?wait=20", "", 200)

	var lines testenv.Buffer
	rcv := &Receiver{Out: &lines}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	created := call("POST", "/v1/webhooks", `{"url":"`+srv.URL+`/hooks","events":["relationship.changed","sync.completed"]}`, 201)
	secret, err := webhook.SecretFromString(created["secret"].(string))
	if err != nil {
		t.Fatal(err)
	}
	rcv.Secret = secret
	call("POST", "/v1/webhooks", `{"url":"https://10.0.0.5/hook"}`, 400)

	call("POST", "/_dev/sandbox/churn?n=10", "", 200)
	run := call("POST", "/v1/networks/rakuten/sync?wait=20", "", 200)
	if run["changes"] != float64(10) {
		t.Fatalf("run = %v, want 10 changes", run)
	}
	count := map[string]int{}
	for deadline := time.Now().Add(60 * time.Second); count["relationship.changed"] < 10 || count["sync.completed"] < 1; {
		if time.Now().After(deadline) {
			t.Fatalf("receiver got %v:\n%s", count, lines.String())
		}
		time.Sleep(100 * time.Millisecond)
		count = map[string]int{}
		for _, l := range strings.Split(strings.TrimSpace(lines.String()), "\n") {
			var r ReceivedLine
			if json.Unmarshal([]byte(l), &r) != nil {
				continue
			}
			if !r.Verified {
				t.Fatalf("a request did not verify: %s", l)
			}
			count[r.Type]++
		}
	}
	if count["relationship.changed"] != 10 {
		t.Errorf("receiver got %v, want 10 relationship.changed", count)
	}
}
