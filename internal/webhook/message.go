package webhook

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// EventType names what happened; the body's "type" field carries it.
type EventType string

// The events merchantsync sends.
const (
	EventRelationshipChanged      EventType = "relationship.changed"
	EventSyncCompleted            EventType = "sync.completed"
	EventSyncFailed               EventType = "sync.failed"
	EventConnectionReauthRequired EventType = "connection.reauth_required"
	EventWebhookTest              EventType = "webhook.test"
)

// EventTypes lists every event type, for validating a subscription.
func EventTypes() []EventType {
	return []EventType{EventRelationshipChanged, EventSyncCompleted, EventSyncFailed, EventConnectionReauthRequired, EventWebhookTest}
}

// Valid reports whether t is one of EventTypes.
func (t EventType) Valid() bool {
	for _, v := range EventTypes() {
		if t == v {
			return true
		}
	}
	return false
}

// MaxBodyBytes bounds a message's body. The specification advises staying
// under about 20 KB; this leaves room above that and still fits an SQS
// message (256 KiB) when base64-encoded with its other fields.
const MaxBodyBytes = 64 << 10

// timestampLayout is RFC 3339 in UTC with a fixed three-digit fraction, so
// every timestamp has the same length and sorts as text.
const timestampLayout = "2006-01-02T15:04:05.000Z07:00"

// Envelope is the JSON body of every webhook.
type Envelope struct {
	Type      EventType       `json:"type"`
	Timestamp string          `json:"timestamp"` // when the event happened, RFC 3339 UTC
	Data      json.RawMessage `json:"data"`      // always a JSON object
}

// Message is one event to one endpoint, ready to send: ID is the
// webhook-id, the same for every attempt (receivers deduplicate on it), and
// Body the exact bytes every attempt sends and signs. Keep and queue Body
// as it is; re-encoding it could change bytes and so the signature.
type Message struct {
	ID   string
	Type EventType
	Body []byte
}

// Errors NewMessage returns.
var (
	ErrEventType   = errors.New("webhook: unknown event type")
	ErrDataShape   = errors.New("webhook: data must encode as a JSON object")
	ErrBodyTooLong = fmt.Errorf("webhook: body longer than %d bytes", MaxBodyBytes)
)

// NewMessage builds the message for one event that happened at occurred:
// a new ID and the body {"type", "timestamp", "data"}. data is marshalled
// with encoding/json and must be an object (a struct, a map, a
// json.RawMessage holding an object); nil, or anything encoding as null,
// stands for {}.
func NewMessage(typ EventType, occurred time.Time, data any) (Message, error) {
	body, err := EncodeBody(typ, occurred, data)
	if err != nil {
		return Message{}, err
	}
	return Message{ID: NewMessageID(), Type: typ, Body: body}, nil
}

// EncodeBody returns the body NewMessage sends, without assigning an ID.
func EncodeBody(typ EventType, occurred time.Time, data any) ([]byte, error) {
	if !typ.Valid() {
		return nil, fmt.Errorf("%w %q", ErrEventType, string(typ))
	}
	raw := json.RawMessage("{}")
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return nil, fmt.Errorf("webhook: encoding %s data: %w", typ, err)
		}
		switch {
		case string(b) == "null": // a nil map or pointer: no data
		case b[0] == '{':
			raw = b
		default:
			return nil, ErrDataShape
		}
	}
	body, err := json.Marshal(Envelope{Type: typ, Timestamp: occurred.UTC().Format(timestampLayout), Data: raw})
	if err != nil {
		return nil, fmt.Errorf("webhook: encoding %s envelope: %w", typ, err)
	}
	if len(body) > MaxBodyBytes {
		return nil, ErrBodyTooLong
	}
	return body, nil
}

// msgIDPrefix marks our message ids, as the specification's examples do.
const msgIDPrefix = "msg_"

// NewMessageID returns "msg_" and 26 random base32 characters (128 bits
// from crypto/rand), which never contain the '.' that separates the
// signed fields.
func NewMessageID() string { return msgIDPrefix + rand.Text() }

// ValidMessageID reports whether id is fit to sign and send: 1 to 64
// characters of [A-Za-z0-9_-]. The specification forbids '.' in ids (it
// separates the signed fields); the rest keeps headers and logs plain.
func ValidMessageID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
