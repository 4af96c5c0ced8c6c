package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Clock is an injectable clock tests move by hand.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Buffer is a goroutine-safe io.Writer for logs and metrics.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Gate holds requests whose path contains a string while closed, so a test
// can keep a sync inside its pull deterministically, and reports when one
// arrives.
type Gate struct {
	Path string // e.g. "partnerships"

	mu      sync.Mutex
	closed  chan struct{} // nil: open
	arrived chan struct{}
}

// Wrap holds next's matching requests while the gate is closed.
func (g *Gate) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, g.Path) {
			g.mu.Lock()
			closed, arrived := g.closed, g.arrived
			g.mu.Unlock()
			if closed != nil {
				select {
				case arrived <- struct{}{}:
				default:
				}
				select {
				case <-closed:
				case <-r.Context().Done():
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Close makes the gate hold requests until Open.
func (g *Gate) Close() {
	g.mu.Lock()
	g.closed, g.arrived = make(chan struct{}), make(chan struct{}, 1)
	g.mu.Unlock()
}

// Arrived yields once a request is held (after Close).
func (g *Gate) Arrived() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.arrived
}

// Open lets held and later requests through.
func (g *Gate) Open() {
	g.mu.Lock()
	if g.closed != nil {
		close(g.closed)
	}
	g.closed = nil
	g.mu.Unlock()
}

// AttrText renders a DynamoDB attribute value as plain text, for scans
// that look for a value anywhere in an item.
func AttrText(v types.AttributeValue) string {
	switch x := v.(type) {
	case *types.AttributeValueMemberS:
		return x.Value
	case *types.AttributeValueMemberN:
		return x.Value
	case *types.AttributeValueMemberBOOL:
		return fmt.Sprint(x.Value)
	case *types.AttributeValueMemberM:
		var b strings.Builder
		for k, vv := range x.Value {
			fmt.Fprintf(&b, "%s=%s;", k, AttrText(vv))
		}
		return b.String()
	case *types.AttributeValueMemberL:
		var b strings.Builder
		for _, vv := range x.Value {
			b.WriteString(AttrText(vv) + ";")
		}
		return b.String()
	case *types.AttributeValueMemberSS:
		return strings.Join(x.Value, ";")
	case *types.AttributeValueMemberB:
		return string(x.Value)
	}
	return fmt.Sprintf("%v", v)
}

// jsonField returns the string field name of the JSON object doc, or "".
func jsonField(doc, name string) string {
	var m map[string]any
	if json.Unmarshal([]byte(doc), &m) != nil {
		return ""
	}
	s, _ := m[name].(string)
	return s
}
