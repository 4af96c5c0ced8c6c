package merchantsync

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The queue message of a SyncRequest is its JSON. Both ends are here, next
// to the type, so the sender (internal/queue) and the worker
// (internal/syncer) cannot disagree on it.

// EncodeSyncRequest validates req and returns the JSON body of its
// queue message.
func EncodeSyncRequest(req SyncRequest) (string, error) {
	if err := req.Validate(); err != nil {
		return "", err
	}
	b, err := json.Marshal(req)
	if err != nil {
		return "", fmt.Errorf("sync request: encode: %w", err)
	}
	if len(b) > maxBody {
		// JSON escaping can grow a request past what DecodeSyncRequest
		// reads: never send a message the consumer would drop.
		return "", Errorf(EInvalid, "sync request encodes to %d bytes, more than %d", len(b), maxBody)
	}
	return string(b), nil
}

// maxBody bounds what DecodeSyncRequest reads; real requests are ~200 bytes.
const maxBody = 16 << 10

// DecodeSyncRequest decodes a message body strictly: one JSON object, no
// unknown fields, every required field present and valid. Its errors are
// *Error with code EInvalid (or EInvalidJSON): a message that
// fails to decode will never decode, so the consumer should drop it (or let
// it go to the DLQ) rather than retry.
func DecodeSyncRequest(body string) (SyncRequest, error) {
	var req SyncRequest
	if len(body) > maxBody {
		return req, Errorf(EInvalidJSON, "sync request is %d bytes, more than %d", len(body), maxBody)
	}
	if err := checkKeys(body); err != nil {
		return req, err
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return SyncRequest{}, Errorf(EInvalidJSON, "sync request is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return SyncRequest{}, Errorf(EInvalidJSON, "sync request has data after the JSON object")
	}
	if err := req.Validate(); err != nil {
		return SyncRequest{}, err
	}
	return req, nil
}

// syncRequestKeys are SyncRequest's JSON keys, exactly as spelled.
var syncRequestKeys = map[string]bool{"tenantId": true, "network": true, "runId": true, "trigger": true, "scheduleRunId": true, "mode": true}

// checkKeys makes decoding stricter than encoding/json: the body must be
// one object whose keys are SyncRequest's, spelled exactly (encoding/json
// would take "TenantID" for "tenantId") and each at most once.
func checkKeys(body string) error {
	bad := func(format string, args ...any) error {
		return Errorf(EInvalidJSON, "sync request "+format, args...)
	}
	dec := json.NewDecoder(strings.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		if string(bytes.TrimSpace([]byte(body))) == "null" {
			return nil // decodes to the zero request: "required" errors follow
		}
		return bad("is not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return bad("is not valid JSON: %v", err)
		}
		key, _ := tok.(string)
		if !syncRequestKeys[key] {
			return bad("has an unknown field %q", key)
		}
		if seen[key] {
			return bad("has the field %q twice", key)
		}
		seen[key] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return bad("is not valid JSON: %v", err)
		}
	}
	return nil
}

// Validate reports the first missing or unknown field of a sync request.
func (req SyncRequest) Validate() error {
	missing := func(field string) error {
		return FieldError(EInvalid, field, "sync request: "+field+" is required")
	}
	switch {
	case strings.TrimSpace(req.TenantID) == "":
		return missing("tenantId")
	case req.Network == "":
		return missing("network")
	case strings.TrimSpace(req.RunID) == "":
		return missing("runId")
	case req.Trigger == "":
		return missing("trigger")
	}
	if _, ok := LookupNetwork(req.Network); !ok {
		return FieldError(EInvalid, "network", fmt.Sprintf("sync request: unknown network %q", req.Network))
	}
	switch req.Trigger {
	case TriggerManual:
	case TriggerSchedule:
		if req.ScheduleRunID == "" {
			return missing("scheduleRunId")
		}
	default:
		return FieldError(EInvalid, "trigger", fmt.Sprintf("sync request: unknown trigger %q", req.Trigger))
	}
	switch req.Mode {
	case "", ModeFull:
	case ModeIncremental:
		if req.Trigger != TriggerSchedule {
			return FieldError(EInvalid, "mode", "sync request: only the schedule asks for incremental syncs")
		}
	default:
		return FieldError(EInvalid, "mode", fmt.Sprintf("sync request: unknown mode %q", req.Mode))
	}
	return nil
}
