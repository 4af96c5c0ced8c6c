package merchantsync

import (
	"fmt"
	"log/slog"
	"time"
)

// ConnectionKey names one connection of a tenant's network account: the
// secret its credentials live in.
type ConnectionKey struct {
	TenantID string
	Network  string
	ID       string // Account.ConnectionID
}

// Credentials are what merchantsync keeps about one connection to a
// network, in the CredentialStore only (never in the table, a log or a
// response). The password the publisher typed is never part of them.
type Credentials struct {
	ClientID     string
	ClientSecret string
	SiteID       string // the network's scope for the tokens (Rakuten's SID)
	RefreshToken string
	AccessToken  string
	AccessExpiry time.Time
	AuthScheme   string // the Authorization scheme the token endpoint accepted
	UpdatedAt    time.Time
}

// String hides every credential so that Credentials printed by mistake with
// %v, %+v or %s leak nothing.
func (c Credentials) String() string {
	return fmt.Sprintf("merchantsync.Credentials{ClientID:%s ClientSecret:%s SiteID:%q RefreshToken:%s AccessToken:%s AccessExpiry:%s AuthScheme:%q UpdatedAt:%s}",
		redact(c.ClientID), redact(c.ClientSecret), c.SiteID, redact(c.RefreshToken), redact(c.AccessToken),
		c.AccessExpiry.Format(time.RFC3339), c.AuthScheme, c.UpdatedAt.Format(time.RFC3339))
}

// GoString hides credentials from %#v as well.
func (c Credentials) GoString() string { return c.String() }

// LogValue hides credentials from log/slog.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("clientId", redact(c.ClientID)),
		slog.String("clientSecret", redact(c.ClientSecret)),
		slog.String("siteId", c.SiteID),
		slog.String("refreshToken", redact(c.RefreshToken)),
		slog.String("accessToken", redact(c.AccessToken)),
		slog.Time("accessExpiry", c.AccessExpiry),
		slog.String("authScheme", c.AuthScheme),
		slog.Time("updatedAt", c.UpdatedAt),
	)
}

// Login is what the publisher types to connect: the password is used for
// one token exchange and then dropped.
type Login struct {
	ClientID     string
	ClientSecret string
	SiteID       string
	Username     string
	Password     string
}

// String hides the secret and the password.
func (l Login) String() string {
	return fmt.Sprintf("merchantsync.Login{ClientID:%q ClientSecret:%s SiteID:%q Username:%q Password:%s}",
		l.ClientID, redact(l.ClientSecret), l.SiteID, l.Username, redact(l.Password))
}

// GoString hides them from %#v as well.
func (l Login) GoString() string { return l.String() }

// LogValue hides them from log/slog.
func (l Login) LogValue() slog.Value {
	return slog.GroupValue(slog.String("clientId", l.ClientID), slog.String("clientSecret", redact(l.ClientSecret)),
		slog.String("siteId", l.SiteID), slog.String("username", l.Username), slog.String("password", redact(l.Password)))
}

func redact(v string) string {
	if v == "" {
		return `""`
	}
	return "[REDACTED]"
}
