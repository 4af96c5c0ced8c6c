package infra

// The recording transport of the IAM-vs-code test: every AWS request a
// function's real clients send is recorded as the IAM permissions ("action
// resource") AWS checks for it, then forwarded to the local stand-in.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// recorder is the HTTP transport of one function's AWS clients. It records
// the IAM permission every request needs ("dynamodb:GetItem <arn>") from
// its X-Amz-Target and body, and forwards it to the local stand-in of the
// service.
type recorder struct {
	endpoints map[string]string // service → base URL
	// rewrite replaces, in request bodies before they are forwarded, a
	// resource id of the template with the local stand-in's (the KMS key:
	// moto makes its own key ids).
	rewrite map[string]string

	mu       sync.Mutex
	used     map[string]int // "action resource" → requests
	failNext map[string]int // X-Amz-Target → requests to refuse
}

func newRecorder(endpoints map[string]string) *recorder {
	return &recorder{endpoints: endpoints, used: map[string]int{}, failNext: map[string]int{}}
}

var targetService = map[string]string{
	"DynamoDB_20120810": "dynamodb",
	"secretsmanager":    "secretsmanager",
	"AmazonSQS":         "sqs",
	"TrentService":      "kms",
	"AWSEvents":         "events",
}

// sqsAction maps SQS batch operations to the action IAM checks for them.
var sqsAction = map[string]string{
	"SendMessageBatch":             "SendMessage",
	"DeleteMessageBatch":           "DeleteMessage",
	"ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}

func (rc *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	target := req.Header.Get("X-Amz-Target")
	prefix, op, _ := strings.Cut(target, ".")
	service := targetService[prefix]
	if service == "" || op == "" {
		return nil, fmt.Errorf("recorder: unknown AWS request %q to %s", target, req.URL)
	}
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body.Close()
	}
	perms, err := rc.permissions(service, op, body)
	if err != nil {
		return nil, err
	}
	rc.mu.Lock()
	for _, p := range perms {
		rc.used[p]++
	}
	fail := rc.failNext[target] > 0
	if fail {
		rc.failNext[target]--
	}
	rc.mu.Unlock()
	if fail {
		return refusal(req, service), nil
	}
	ep, _ := url.Parse(rc.endpoints[service])
	for from, to := range rc.rewrite {
		body = bytes.ReplaceAll(body, []byte(from), []byte(to))
	}
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host, out.Host = ep.Scheme, ep.Host, ep.Host
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	return http.DefaultTransport.RoundTrip(out)
}

// refusal is a non-retryable error answer of the service.
func refusal(req *http.Request, service string) *http.Response {
	h := http.Header{"Content-Type": {"application/x-amz-json-1.0"}}
	body := `{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."}`
	if service == "sqs" {
		h.Set("x-amzn-query-error", "AWS.SimpleQueueService.NonExistentQueue;Sender")
	} else {
		body = `{"__type":"ValidationException","message":"refused by the test"}`
	}
	return &http.Response{StatusCode: 400, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: req}
}

// permissions returns the "action resource" pairs IAM authorizes a request on.
func (rc *recorder) permissions(service, op string, body []byte) ([]string, error) {
	var in struct {
		TableName, IndexName string
		RequestItems         map[string]json.RawMessage
		TransactItems        []map[string]struct{ TableName string }
		SecretId, Name       string
		Tags                 []json.RawMessage
		QueueUrl             string
		KeyId                string
		EncryptionContext    map[string]string
		Entries              []struct{ EventBusName string }
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, fmt.Errorf("recorder: %s.%s body: %v", service, op, err)
	}
	action := service + ":" + op
	if service == "dynamodb" && len(in.TransactItems) > 0 {
		return rc.transactionPermissions(in.TransactItems)
	}
	var arns []string
	switch service {
	case "dynamodb":
		tables := map[string]bool{}
		if in.TableName != "" {
			tables[in.TableName] = true
		}
		for t := range in.RequestItems {
			tables[t] = true
		}
		for t := range tables {
			arn := tableARN(t)
			if in.IndexName != "" {
				arn += "/index/" + in.IndexName
			}
			arns = append(arns, arn)
		}
	case "secretsmanager":
		arns = []string{secretARN(in.SecretId + in.Name)}
	case "sqs":
		if a, ok := sqsAction[op]; ok {
			action = "sqs:" + a
		}
		arns = []string{queueARN(in.QueueUrl)}
	case "kms":
		// The encryption context's purpose is part of what is authorised
		// (a grant's kms:EncryptionContext:purpose condition): recorded
		// with the resource, as roleGrants writes such a grant.
		arn := in.KeyId
		if !strings.HasPrefix(arn, "arn:") {
			arn = keyARNOf(in.KeyId)
		}
		if p := in.EncryptionContext["purpose"]; p != "" {
			arn += " purpose=" + p
		}
		arns = []string{arn}
	case "events":
		for _, e := range in.Entries {
			arn := e.EventBusName
			if !strings.HasPrefix(arn, "arn:") {
				arn = eventBusARN(arn)
			}
			if !slices.Contains(arns, arn) {
				arns = append(arns, arn)
			}
		}
	}
	if len(arns) == 0 {
		return nil, fmt.Errorf("recorder: %s names no resource", action)
	}
	var out []string
	for _, arn := range arns {
		out = append(out, action+" "+arn)
		// Tags on CreateSecret are authorized as secretsmanager:TagResource.
		if action == "secretsmanager:CreateSecret" && len(in.Tags) > 0 {
			out = append(out, "secretsmanager:TagResource "+arn)
		}
	}
	return out, nil
}

// transactItemAction is the IAM action of each kind of TransactItems entry:
// IAM authorises a transaction item by item, as the single-item operation
// it performs, and never as dynamodb:TransactWriteItems.
var transactItemAction = map[string]string{
	"Put":            "dynamodb:PutItem",
	"Update":         "dynamodb:UpdateItem",
	"Delete":         "dynamodb:DeleteItem",
	"ConditionCheck": "dynamodb:ConditionCheckItem",
	"Get":            "dynamodb:GetItem",
}

// transactionPermissions returns one permission per TransactItems entry,
// by its kind, on its table.
func (rc *recorder) transactionPermissions(items []map[string]struct{ TableName string }) ([]string, error) {
	var out []string
	for i, it := range items {
		if len(it) != 1 {
			return nil, fmt.Errorf("recorder: TransactItems[%d] has %d operations, want 1", i, len(it))
		}
		for kind, x := range it {
			action, ok := transactItemAction[kind]
			if !ok || x.TableName == "" {
				return nil, fmt.Errorf("recorder: TransactItems[%d]: unknown %q or no table", i, kind)
			}
			out = append(out, action+" "+tableARN(x.TableName))
		}
	}
	return out, nil
}

func (rc *recorder) refuseNext(target string) {
	rc.mu.Lock()
	rc.failNext[target]++
	rc.mu.Unlock()
}

func (rc *recorder) permissionsUsed() map[string]bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := map[string]bool{}
	for p := range rc.used {
		out[p] = true
	}
	return out
}
