package webhook

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEncodeBody(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	at := time.Date(2026, 1, 2, 4, 4, 5, 678_900_000, berlin) // 03:04:05.6789 UTC
	type change struct {
		MerchantID string `json:"merchantId"`
		Status     string `json:"status"`
	}
	const head = `{"type":"relationship.changed","timestamp":"2026-01-02T03:04:05.678Z","data":`
	cases := []struct {
		name string
		typ  EventType
		data any
		want string
		err  error
	}{
		{name: "struct", typ: EventRelationshipChanged, data: change{"123", "joined"}, want: head + `{"merchantId":"123","status":"joined"}}`},
		{name: "nil data", typ: EventRelationshipChanged, want: head + `{}}`},
		{name: "nil map", typ: EventRelationshipChanged, data: map[string]any(nil), want: head + `{}}`},
		{name: "nil pointer", typ: EventRelationshipChanged, data: (*change)(nil), want: head + `{}}`},
		{name: "raw object is compacted", typ: EventRelationshipChanged, data: json.RawMessage("{ \"a\" : [1, 2] }"), want: head + `{"a":[1,2]}}`},
		{name: "unicode kept as UTF-8", typ: EventRelationshipChanged, data: map[string]string{"name": "Café 東京 🎉"}, want: head + `{"name":"Café 東京 🎉"}}`},
		{name: "array", typ: EventRelationshipChanged, data: []int{1}, err: ErrDataShape},
		{name: "string", typ: EventRelationshipChanged, data: "x", err: ErrDataShape},
		{name: "raw non-object", typ: EventRelationshipChanged, data: json.RawMessage(`"x"`), err: ErrDataShape},
		{name: "unknown type", typ: "relationship.deleted", err: ErrEventType},
		{name: "empty type", typ: "", err: ErrEventType},
		{name: "too long", typ: EventRelationshipChanged, data: map[string]string{"x": strings.Repeat("a", MaxBodyBytes)}, err: ErrBodyTooLong},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := EncodeBody(c.typ, at, c.data)
			if !errors.Is(err, c.err) {
				t.Fatalf("err %v, want %v", err, c.err)
			}
			if string(got) != c.want {
				t.Fatalf("body\n%s\nwant\n%s", got, c.want)
			}
		})
	}
	if _, err := EncodeBody(EventSyncFailed, at, map[string]any{"c": make(chan int)}); err == nil {
		t.Fatal("data json cannot encode: no error")
	}
}

func TestNewMessage(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ids := map[string]bool{}
	for _, typ := range EventTypes() {
		m, err := NewMessage(typ, at, map[string]int{"n": 1})
		if err != nil {
			t.Fatal(err)
		}
		if !ValidMessageID(m.ID) || !strings.HasPrefix(m.ID, "msg_") || len(m.ID) != 30 || ids[m.ID] {
			t.Fatalf("message id %q: invalid, wrong form or repeated", m.ID)
		}
		ids[m.ID] = true
		var env struct {
			Type      string         `json:"type"`
			Timestamp time.Time      `json:"timestamp"`
			Data      map[string]int `json:"data"`
		}
		if err := json.Unmarshal(m.Body, &env); err != nil {
			t.Fatal(err)
		}
		if m.Type != typ || env.Type != string(typ) || !env.Timestamp.Equal(at) || env.Data["n"] != 1 {
			t.Fatalf("message %+v decodes to %+v", m, env)
		}
	}
	if len(ids) != 5 {
		t.Fatalf("%d event types, want 5", len(ids))
	}
	if _, err := NewMessage("nope", at, nil); !errors.Is(err, ErrEventType) {
		t.Fatalf("NewMessage with an unknown type: %v", err)
	}
}

func TestValidMessageID(t *testing.T) {
	for id, want := range map[string]bool{
		"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W": true,
		"a":                               true,
		"a-b_C9":                          true,
		strings.Repeat("a", 64):           true,
		strings.Repeat("a", 65):           false,
		"":                                false,
		"msg.1":                           false, // '.' separates the signed fields
		"msg 1":                           false,
		"msg\n1":                          false,
		"msg_é":                           false,
		"msg/1":                           false,
	} {
		if got := ValidMessageID(id); got != want {
			t.Errorf("ValidMessageID(%q) = %v, want %v", id, got, want)
		}
	}
}
