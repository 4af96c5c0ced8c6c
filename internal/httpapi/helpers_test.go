package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/merchantsync/merchantsync/internal/dynamo"
	"github.com/merchantsync/merchantsync/internal/dynamo/dynamotest"
	"github.com/merchantsync/merchantsync/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// lockedBuffer collects log output from concurrent handlers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLogger(w *lockedBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type table struct {
	client *dynamodb.Client
	name   string
	store  *dynamo.Store
}

func newTable(t *testing.T) *table {
	t.Helper()
	c := dynamotest.Client(t)
	name := dynamotest.NewTable(t, c)
	return &table{client: c, name: name, store: dynamo.New(c, name)}
}

// snapshot returns every item of the table as canonical JSON lines, to prove
// a request changed nothing (or to scan for leaked secrets).
func (tb *table) snapshot(t *testing.T) []string {
	t.Helper()
	var out []string
	p := dynamodb.NewScanPaginator(tb.client, &dynamodb.ScanInput{TableName: aws.String(tb.name), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("scan: %v", err)
		}
		for _, it := range page.Items {
			b, _ := json.Marshal(it)
			out = append(out, string(b))
		}
	}
	sort.Strings(out)
	return out
}

type handler interface {
	Handle(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)
}

// invoke sends ev through lambda.NewHandler(h).Invoke: the JSON path the
// Lambda runtime takes, so event and response (un)marshalling is exercised.
func invoke(t *testing.T, h handler, ev events.APIGatewayV2HTTPRequest) (int, map[string]any) {
	t.Helper()
	payload, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	out, err := lambda.NewHandler(h.Handle).Invoke(context.Background(), payload)
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("response: %v", err)
	}
	var body map[string]any
	if resp.Body != "" {
		if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
			t.Fatalf("response body is not JSON: %q", resp.Body)
		}
	}
	if resp.Headers["Content-Type"] != "application/json" {
		t.Errorf("Content-Type = %q", resp.Headers["Content-Type"])
	}
	return resp.StatusCode, body
}

// req builds an API Gateway v2 event as the HTTP API with a JWT authorizer
// sends it. tenant "" means no claims.
var req = testenv.APIEvent

// loadEvent reads an infra/events file, the same one `sam local invoke -e` uses.
func loadEvent(t *testing.T, name string) events.APIGatewayV2HTTPRequest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "infra", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return ev
}

func errCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func errMessage(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	c, _ := e["message"].(string)
	return c
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func contains(haystack []string, needle string) bool {
	for _, h := range haystack {
		if strings.Contains(h, needle) {
			return true
		}
	}
	return false
}
