package secretstest_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/merchantsync/merchantsync/internal/secrets/secretstest"
)

// The wire format: JSON 1.1, errors as {"__type","message"} with 400.
func TestWireFormat(t *testing.T) {
	f := secretstest.New()
	srv := httptest.NewServer(f)
	defer srv.Close()
	post := func(target, body string, signed bool) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/", strings.NewReader(body))
		req.Header.Set("X-Amz-Target", target)
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		if signed {
			req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=x")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
			t.Errorf("Content-Type = %q", ct)
		}
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if code, out := post("secretsmanager.GetSecretValue", `{"SecretId":"nope"}`, true); code != 400 || out["__type"] != "ResourceNotFoundException" || out["message"] == "" {
		t.Errorf("not found: %d %v", code, out)
	}
	if code, out := post("secretsmanager.GetSecretValue", `{"SecretId":"nope"}`, false); code != 400 || out["__type"] != "MissingAuthenticationTokenException" {
		t.Errorf("unsigned: %d %v", code, out)
	}
	if code, out := post("secretsmanager.RotateSecret", `{}`, true); code != 400 || out["__type"] != "UnknownOperationException" {
		t.Errorf("unknown op: %d %v", code, out)
	}
	code, out := post("secretsmanager.CreateSecret", `{"Name":"a/b","SecretString":"{}"}`, true)
	if code != 200 || !strings.HasPrefix(out["ARN"].(string), "arn:aws:secretsmanager:us-east-1:123456789012:secret:a/b-") || out["VersionId"] == "" {
		t.Errorf("create: %d %v", code, out)
	}
	arn := out["ARN"].(string)
	if code, out := post("secretsmanager.GetSecretValue", `{"SecretId":"`+arn+`"}`, true); code != 200 || out["SecretString"] != "{}" {
		t.Errorf("get by ARN: %d %v", code, out)
	}
	f.InjectError("GetSecretValue", "InternalServiceError", 1)
	if code, out := post("secretsmanager.GetSecretValue", `{"SecretId":"a/b"}`, true); code != 500 || out["__type"] != "InternalServiceError" {
		t.Errorf("injected: %d %v", code, out)
	}
	if f.Calls("GetSecretValue") != 3 || f.Calls("CreateSecret") != 1 {
		t.Errorf("calls: get %d create %d", f.Calls("GetSecretValue"), f.Calls("CreateSecret"))
	}
}
