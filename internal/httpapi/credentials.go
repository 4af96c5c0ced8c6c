package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
	"github.com/merchantsync/merchantsync/internal/rakuten"
	"github.com/merchantsync/merchantsync/internal/secrets"
)

// CredentialStore is what the credentials function needs of the store.
type CredentialStore interface {
	GetSettings(ctx context.Context, tenant string) (merchantsync.Settings, error)
	GetAccount(ctx context.Context, tenant, network string) (*merchantsync.Account, error)
	MarkConnected(ctx context.Context, tenant, network, siteID, username string, now time.Time) error
	MarkDisconnected(ctx context.Context, tenant, network string, now time.Time) error
	DeleteAccount(ctx context.Context, tenant, network string) error
}

// SecretWriter stores and deletes a tenant's network credentials.
type SecretWriter interface {
	Put(ctx context.Context, tenant, network string, sec secrets.Secret) error
	Delete(ctx context.Context, tenant, network string) error
}

// TokenExchanger trades a publisher's password for tokens, once.
type TokenExchanger interface {
	PasswordGrant(ctx context.Context, cr rakuten.Credentials, username, password string) (*rakuten.Token, error)
}

// Credentials serves the credentials function: the only function that may
// write secrets or send a password to Rakuten. It also serves DELETE ids,
// because removing the IDs disconnects, which deletes the secret.
type Credentials struct {
	Store    CredentialStore
	Secrets  SecretWriter
	Rakuten  TokenExchanger
	Schedule Schedule
	Now      func() time.Time
	Logger   *slog.Logger
}

// Routes lists the route keys the credentials function serves.
func (c *Credentials) Routes() []Route {
	return []Route{
		{"PUT /v1/networks/{network}/credentials", c.putCredentials},
		{"DELETE /v1/networks/{network}/credentials", c.deleteCredentials},
		{"DELETE /v1/networks/{network}/ids", c.deleteIDs},
	}
}

// NewCredentialsRouter returns the router of the credentials function.
func NewCredentialsRouter(c *Credentials, logger *slog.Logger) *Router {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Schedule == nil {
		c.Schedule = DailyAt{Hour: 3}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return NewRouter(logger, c.Routes()...)
}

type credentialsRequest struct {
	ClientID     *string `json:"clientId"`
	ClientSecret *string `json:"clientSecret"`
	SiteID       *string `json:"siteId"`
	Username     *string `json:"username"`
	Password     *string `json:"password"`
}

func required(field string, v *string, max int) (string, error) {
	if v == nil || strings.TrimSpace(*v) == "" {
		return "", merchantsync.FieldError(merchantsync.EInvalid, field, field+" is required.")
	}
	if len(*v) > max {
		return "", merchantsync.FieldError(merchantsync.EInvalid, field, field+" is too long.")
	}
	return *v, nil
}

func (c *Credentials) putCredentials(ctx context.Context, r *Request) (int, any, error) {
	var body credentialsRequest
	if err := decodeJSON(r, &body); err != nil {
		return 0, nil, err
	}
	var (
		cr   rakuten.Credentials
		user string
		pass string
		err  error
	)
	if cr.ClientID, err = required("clientId", body.ClientID, 256); err != nil {
		return 0, nil, err
	}
	if cr.ClientSecret, err = required("clientSecret", body.ClientSecret, 512); err != nil {
		return 0, nil, err
	}
	if _, err = required("siteId", body.SiteID, 32); err != nil {
		return 0, nil, err
	}
	if cr.SiteID, err = merchantsync.ParseSiteID(*body.SiteID); err != nil {
		return 0, nil, err
	}
	if user, err = required("username", body.Username, 256); err != nil {
		return 0, nil, err
	}
	if pass, err = required("password", body.Password, 1024); err != nil {
		return 0, nil, err
	}
	cr.ClientID, user = strings.TrimSpace(cr.ClientID), strings.TrimSpace(user)

	network := r.PathParams["network"]
	acct, err := c.Store.GetAccount(ctx, r.Tenant, network)
	if err != nil {
		return 0, nil, err
	}
	if acct == nil || acct.AffiliateID == "" {
		return 0, nil, merchantsync.Errorf(merchantsync.ENetworkIDRequired,
			"Save your Rakuten Affiliate ID first (PUT /v1/networks/%s/ids), then connect your API credentials.", network)
	}

	// The password is used for this one exchange and then dropped: it is
	// never stored, logged or returned.
	tok, err := c.Rakuten.PasswordGrant(ctx, cr, user, pass)
	if err != nil {
		return 0, nil, tokenError(err)
	}
	sec := secrets.Secret{
		ClientID: cr.ClientID, ClientSecret: cr.ClientSecret, SiteID: cr.SiteID,
		RefreshToken: tok.RefreshToken, AccessToken: tok.AccessToken, AccessExpiry: tok.Expiry,
		AuthScheme: tok.Scheme, UpdatedAt: c.Now().UTC(),
	}
	if err := c.Secrets.Put(ctx, r.Tenant, network, sec); err != nil {
		return 0, nil, err
	}
	if err := c.Store.MarkConnected(ctx, r.Tenant, network, cr.SiteID, user, c.Now()); err != nil {
		// The IDs vanished between the checks (a concurrent DELETE ids):
		// do not leave a secret behind that nothing points at.
		if derr := c.Secrets.Delete(ctx, r.Tenant, network); derr != nil {
			c.Logger.ErrorContext(ctx, "delete orphaned secret", "tenant_id", r.Tenant, "network", network, "err", derr.Error())
		}
		return 0, nil, err
	}
	c.Logger.InfoContext(ctx, "network connected", "tenant_id", r.Tenant, "network", network)
	return c.view(ctx, r.Tenant, network)
}

// tokenError maps a refused or failed token exchange to the API's errors.
func tokenError(err error) error {
	switch rakuten.KindOf(err) {
	case rakuten.KindInvalidCredentials, rakuten.KindExpired, rakuten.KindReauthRequired, rakuten.KindInvalidRequest, rakuten.KindEntitlement:
		msg := "Rakuten refused these credentials. Check the client ID, client secret, Site ID, username and password."
		if reason := rakutenReason(err); reason != "" {
			msg += " Rakuten said: " + reason
		}
		return merchantsync.Errorf(merchantsync.ENetworkAuthFailed, "%s", msg)
	case rakuten.KindThrottled, rakuten.KindUnavailable, rakuten.KindBadResponse:
		return merchantsync.Errorf(merchantsync.ENetworkUnavailable,
			"Rakuten did not answer properly; nothing was saved. Try again in a few minutes.")
	}
	return merchantsync.Errorf(merchantsync.ENetworkUnavailable,
		"Rakuten could not be reached; nothing was saved. Try again in a few minutes.")
}

func rakutenReason(err error) string {
	var re *rakuten.Error
	if errors.As(err, &re) {
		return truncate(re.Message, 300)
	}
	return ""
}

func (c *Credentials) view(ctx context.Context, tenant, network string) (int, any, error) {
	info, _ := merchantsync.LookupNetwork(network)
	st, err := c.Store.GetSettings(ctx, tenant)
	if err != nil {
		return 0, nil, err
	}
	acct, err := c.Store.GetAccount(ctx, tenant, network)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, buildNetworkView(info, acct, st, c.Schedule, c.Now()), nil
}

func (c *Credentials) deleteCredentials(ctx context.Context, r *Request) (int, any, error) {
	network := r.PathParams["network"]
	acct, err := c.Store.GetAccount(ctx, r.Tenant, network)
	if err != nil {
		return 0, nil, err
	}
	// Delete the secret first: if the store update then fails, a retry
	// finishes the job, and no secret outlives its connection.
	if err := c.Secrets.Delete(ctx, r.Tenant, network); err != nil {
		return 0, nil, err
	}
	if acct != nil {
		if err := c.Store.MarkDisconnected(ctx, r.Tenant, network, c.Now()); err != nil {
			return 0, nil, err
		}
	}
	c.Logger.InfoContext(ctx, "network disconnected", "tenant_id", r.Tenant, "network", network)
	return c.view(ctx, r.Tenant, network)
}

func (c *Credentials) deleteIDs(ctx context.Context, r *Request) (int, any, error) {
	network := r.PathParams["network"]
	if err := c.Secrets.Delete(ctx, r.Tenant, network); err != nil {
		return 0, nil, err
	}
	if err := c.Store.DeleteAccount(ctx, r.Tenant, network); err != nil {
		return 0, nil, err
	}
	c.Logger.InfoContext(ctx, "network ids removed", "tenant_id", r.Tenant, "network", network)
	return c.view(ctx, r.Tenant, network)
}
