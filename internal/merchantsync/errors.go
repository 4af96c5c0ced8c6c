package merchantsync

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes. Each is part of the REST contract: the front end switches on
// them, so they never change once released.
const (
	EInvalid            = "invalid_request"        // 400: a field is missing or malformed
	EInvalidJSON        = "invalid_json"           // 400: the body is not the JSON object we expect
	ELooksLikeSiteID    = "looks_like_site_id"     // 400: a Site ID typed where the Affiliate ID goes
	EUnauthorized       = "unauthorized"           // 401: no tenant claim
	ENotFound           = "not_found"              // 404
	EMethodNotAllowed   = "method_not_allowed"     // 405
	EConflict           = "conflict"               // 409: generic state conflict
	ENetworkIDRequired  = "network_id_required"    // 409: credentials before an Affiliate ID
	ENotConnected       = "not_connected"          // 409: sync without credentials
	ESyncDisabled       = "sync_disabled"          // 409: global toggle off
	EReauthRequired     = "reauth_required"        // 409: Rakuten refused stored credentials
	ETooLarge           = "body_too_large"         // 413
	EUnsupportedMedia   = "unsupported_media_type" // 415
	ENetworkAuthFailed  = "network_auth_failed"    // 422: Rakuten refused the credentials
	ENetworkUnavailable = "network_unavailable"    // 502: Rakuten is down or throttling us
	EThrottled          = "throttled"              // 503: our own dependencies throttle us; retry
	EInternal           = "internal"               // 500
	// EConnectionChanged is a run's reason for ending skipped: the
	// publisher reconnected or disconnected while it ran (409 if ever
	// answered).
	EConnectionChanged = "connection_changed"
	// EIncrementalUnsupported is why an account syncs with full pulls only
	// although its tenant chose hourly syncs: the network refused or
	// ignored the recency filter of an incremental pull.
	EIncrementalUnsupported = "incremental_unsupported"
	// ERecentlySynced is why an hourly run was skipped: a full sync
	// finished less than an hour before.
	ERecentlySynced = "recently_synced"
	// EWebhookLimit: the tenant already has MaxWebhooks webhooks (409).
	EWebhookLimit = "webhook_limit_reached"
	// The refusals of a webhook URL (400), as internal/webhook names them
	// (webhook.CodeURL…; TestWebhookURLCodes keeps them equal).
	EWebhookURLInvalid     = "webhook_url_invalid"     // not an absolute URL we can call
	EWebhookURLNotHTTPS    = "webhook_url_not_https"   // http where https is required
	EWebhookURLPrivate     = "webhook_url_private"     // not on the public internet
	EWebhookURLCredentials = "webhook_url_credentials" // user:password@ in the URL
)

// Error is an error a person can act on: Code is for programs, Message for
// people, Field names the request field at fault when there is one.
type Error struct {
	Code    string
	Message string
	Field   string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("merchantsync error: code=%s field=%s message=%s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("merchantsync error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns an *Error that names the offending request field.
func FieldError(code, field, message string) *Error {
	return &Error{Code: code, Field: field, Message: message}
}

// ErrorCode returns the code of the first *Error in err's chain, or
// EInternal for anything else (which the API never describes to callers).
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the human message of the first *Error in err's chain.
// Other errors get a generic message so internals never leak to callers.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "An internal error occurred."
}

// ErrorField returns the field named by the first *Error in err's chain.
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

// HTTPStatus maps an error code to the HTTP status the API answers with.
func HTTPStatus(code string) int {
	switch code {
	case EInvalid, EInvalidJSON, ELooksLikeSiteID,
		EWebhookURLInvalid, EWebhookURLNotHTTPS, EWebhookURLPrivate, EWebhookURLCredentials:
		return http.StatusBadRequest
	case EUnauthorized:
		return http.StatusUnauthorized
	case ENotFound:
		return http.StatusNotFound
	case EMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case EConflict, EWebhookLimit, ENetworkIDRequired, ENotConnected, ESyncDisabled, EReauthRequired, EConnectionChanged:
		return http.StatusConflict
	case ETooLarge:
		return http.StatusRequestEntityTooLarge
	case EUnsupportedMedia:
		return http.StatusUnsupportedMediaType
	case ENetworkAuthFailed:
		return http.StatusUnprocessableEntity
	case ENetworkUnavailable:
		return http.StatusBadGateway
	case EThrottled:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// ErrRejected is wrapped by errors of a dependency that refused the data for
// good (an item over DynamoDB's size limit, a request it calls invalid):
// retrying cannot help, so a sync that meets it fails instead of being
// redelivered. It is not a code: the API answers such a fault with a 500.
var ErrRejected = errors.New("refused for good by a dependency")
