package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// Credentials serves the credentials function: the only function that may
// write secrets or send a password to the network. It also serves DELETE
// ids, because removing the IDs disconnects, which deletes the secret.
type Credentials struct {
	Store    merchantsync.Store
	Secrets  merchantsync.CredentialStore
	Network  merchantsync.Network
	Schedule Schedule
	Hourly   Schedule // default HourlyAt{Minute: 30}
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
	if c.Hourly == nil {
		c.Hourly = HourlyAt{Minute: 30}
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
		l   merchantsync.Login
		err error
	)
	if l.ClientID, err = required("clientId", body.ClientID, 256); err != nil {
		return 0, nil, err
	}
	if l.ClientSecret, err = required("clientSecret", body.ClientSecret, 512); err != nil {
		return 0, nil, err
	}
	if _, err = required("siteId", body.SiteID, 32); err != nil {
		return 0, nil, err
	}
	if l.SiteID, err = merchantsync.ParseSiteID(*body.SiteID); err != nil {
		return 0, nil, err
	}
	if l.Username, err = required("username", body.Username, 256); err != nil {
		return 0, nil, err
	}
	if l.Password, err = required("password", body.Password, 1024); err != nil {
		return 0, nil, err
	}
	l.ClientID, l.Username = strings.TrimSpace(l.ClientID), strings.TrimSpace(l.Username)

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
	got, err := c.Network.Connect(ctx, l)
	if err != nil {
		return 0, nil, err
	}
	// A new connection: its own secret, then the account points at it. The
	// connection it replaces is fenced out (a sync still running for it can
	// write nothing more), and its secret is deleted last.
	now := c.Now()
	conn := merchantsync.Connection{ID: merchantsync.NewConnectionID(now), SiteID: l.SiteID, Username: l.Username,
		Auth: got.Auth, PullMode: got.Mode, PullModeCheckedAt: got.CheckedAt}
	if err := c.Secrets.CreateCredentials(ctx, merchantsync.ConnectionKey{TenantID: r.Tenant, Network: network, ID: conn.ID}, got.Credentials); err != nil {
		return 0, nil, err
	}
	prev, err := c.Store.MarkConnected(ctx, r.Tenant, network, conn, now)
	if err != nil {
		// The IDs vanished meanwhile (a concurrent DELETE ids), or the
		// store failed: leave no secret behind that nothing points at.
		c.deleteSecret(ctx, r.Tenant, network, conn.ID)
		return 0, nil, err
	}
	if prev != "" {
		c.deleteSecret(ctx, r.Tenant, network, prev)
	}
	c.Logger.InfoContext(ctx, "network connected", "tenant_id", r.Tenant, "network", network, "connection_id", conn.ID,
		"auth", string(got.Auth), "pull_mode", string(got.Mode))
	status, v, err := c.view(ctx, r.Tenant, network)
	if nv, ok := v.(*networkJSON); ok && got.Notice != nil {
		nv.Notice = &errorDetail{Code: got.Notice.Code, Message: got.Notice.Message}
	}
	return status, v, err
}

// deleteSecret deletes the secret of a connection nothing points at any
// more. A failure is logged with the connection id, never fatal: the
// publisher's request has succeeded, and that secret can no longer be used.
func (c *Credentials) deleteSecret(ctx context.Context, tenant, network, conn string) {
	if err := c.Secrets.DeleteCredentials(ctx, merchantsync.ConnectionKey{TenantID: tenant, Network: network, ID: conn}); err != nil {
		c.Logger.ErrorContext(ctx, "delete the secret of an ended connection", "tenant_id", tenant, "network", network,
			"connection_id", conn, "err", err.Error())
	}
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
	return http.StatusOK, buildNetworkView(info, acct, st, c.Schedule, c.Hourly, c.Now()), nil
}

func (c *Credentials) deleteCredentials(ctx context.Context, r *Request) (int, any, error) {
	network := r.PathParams["network"]
	err := c.endConnection(ctx, r.Tenant, network, func(conn string) error {
		return c.Store.MarkDisconnected(ctx, r.Tenant, network, conn, c.Now())
	})
	if err != nil {
		return 0, nil, err
	}
	c.Logger.InfoContext(ctx, "network disconnected", "tenant_id", r.Tenant, "network", network)
	return c.view(ctx, r.Tenant, network)
}

func (c *Credentials) deleteIDs(ctx context.Context, r *Request) (int, any, error) {
	network := r.PathParams["network"]
	err := c.endConnection(ctx, r.Tenant, network, func(conn string) error {
		return c.Store.DeleteAccount(ctx, r.Tenant, network, conn)
	})
	if err != nil {
		return 0, nil, err
	}
	c.Logger.InfoContext(ctx, "network ids removed", "tenant_id", r.Tenant, "network", network)
	return c.view(ctx, r.Tenant, network)
}

// endConnection deletes the current connection's secret, then updates the
// account with end, which is conditional on that connection still being
// current. The secret goes first: if the update then fails, a retry finishes
// the job, and no secret outlives its connection. A connect that lands in
// between makes end fail with EConnectionChanged: the newer connection is
// ended too, since the publisher's last word is to disconnect.
func (c *Credentials) endConnection(ctx context.Context, tenant, network string, end func(conn string) error) error {
	for range maxEndRaces {
		acct, err := c.Store.GetAccount(ctx, tenant, network)
		if err != nil {
			return err
		}
		conn := ""
		if acct != nil {
			conn = acct.ConnectionID
		}
		if conn != "" {
			if err := c.Secrets.DeleteCredentials(ctx, merchantsync.ConnectionKey{TenantID: tenant, Network: network, ID: conn}); err != nil {
				return err
			}
		}
		err = end(conn)
		if merchantsync.ErrorCode(err) != merchantsync.EConnectionChanged {
			return err
		}
	}
	return merchantsync.Errorf(merchantsync.EConflict, "The connection kept changing while it was being removed; please retry.")
}

// maxEndRaces bounds endConnection's retries against concurrent connects.
const maxEndRaces = 5
