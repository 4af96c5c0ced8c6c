package rakuten

import (
	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// SyncError says what a failed pull means to the publisher: the code and
// message of the run's error. EReauthRequired means only new credentials
// can help (the account stops syncing until then).
func (e *Error) SyncError() *merchantsync.Error {
	switch e.Kind {
	case KindReauthRequired, KindInvalidCredentials:
		return merchantsync.Errorf(merchantsync.EReauthRequired,
			"Rakuten refused the stored credentials. Enter your Rakuten API credentials again to resume syncing.%s", e.reason())
	case KindExpired:
		// Fresh tokens were refused again and again: an authorization
		// problem of these credentials, not Rakuten being down.
		return merchantsync.Errorf(merchantsync.ENetworkAuthFailed,
			"Rakuten kept refusing the access tokens it issued for these credentials, so the sync stopped; nothing was changed. "+
				"If this happens again, enter your Rakuten API credentials again.%s", e.reason())
	case KindEntitlement:
		return merchantsync.Errorf(merchantsync.ENetworkAuthFailed,
			"Rakuten refused access to the Partnerships API for these credentials; check that your Rakuten application may use it.%s", e.reason())
	case KindThrottled:
		return merchantsync.Errorf(merchantsync.ENetworkUnavailable,
			"Rakuten kept limiting our requests, so the sync gave up; nothing was changed. It will be tried again at the next sync.")
	case KindRedirect:
		return merchantsync.Errorf(merchantsync.ENetworkUnavailable,
			"Rakuten answered with a redirect, which merchantsync never follows; nothing was changed. It will be tried again at the next sync.%s", e.reason())
	case KindRecencyUnsupported:
		return merchantsync.Errorf(merchantsync.EIncrementalUnsupported,
			"Rakuten did not filter partnerships by recency for this account, so it syncs with full pulls only (once a day, and on Sync now).%s", e.reason())
	}
	// Unavailable, a bad response, a request Rakuten calls invalid.
	return merchantsync.Errorf(merchantsync.ENetworkUnavailable,
		"Rakuten did not answer properly; nothing was changed. It will be tried again at the next sync.%s", e.reason())
}

// ConnectError says what a refused or failed connect means to the
// publisher, who is waiting at the credentials form.
func (e *Error) ConnectError() *merchantsync.Error {
	switch e.Kind {
	case KindInvalidCredentials, KindExpired, KindReauthRequired, KindInvalidRequest, KindEntitlement:
		msg := "Rakuten refused these credentials. Check the client ID, client secret, Site ID, username and password."
		if e.Message != "" {
			msg += " Rakuten said: " + e.Message
		}
		return merchantsync.Errorf(merchantsync.ENetworkAuthFailed, "%s", msg)
	case KindThrottled, KindUnavailable, KindBadResponse, KindRedirect:
		return merchantsync.Errorf(merchantsync.ENetworkUnavailable,
			"Rakuten did not answer properly; nothing was saved. Try again in a few minutes.")
	}
	return merchantsync.Errorf(merchantsync.ENetworkUnavailable,
		"Rakuten could not be reached; nothing was saved. Try again in a few minutes.")
}

// reason is Rakuten's own reason, which the client has scrubbed of every
// secret and bounded: safe to show.
func (e *Error) reason() string {
	if e.Message == "" {
		return ""
	}
	return " (Rakuten: " + e.Message + ")"
}
