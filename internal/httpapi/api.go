package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// Schedule tells when the daily sync runs next.
type Schedule interface {
	Next(after time.Time) time.Time
}

// DailyAt is a Schedule firing once a day at a fixed UTC time.
type DailyAt struct{ Hour, Minute int }

// Next returns the first firing strictly after t.
func (d DailyAt) Next(t time.Time) time.Time {
	t = t.UTC()
	n := time.Date(t.Year(), t.Month(), t.Day(), d.Hour, d.Minute, 0, 0, time.UTC)
	if !n.After(t) {
		n = n.AddDate(0, 0, 1)
	}
	return n
}

// HourlyAt is a Schedule firing every hour at a fixed minute.
type HourlyAt struct{ Minute int }

// Next returns the first firing strictly after t.
func (h HourlyAt) Next(t time.Time) time.Time {
	t = t.UTC()
	n := t.Truncate(time.Hour).Add(time.Duration(h.Minute) * time.Minute)
	if !n.After(t) {
		n = n.Add(time.Hour)
	}
	return n
}

// API serves the routes of the "api" function: reads, IDs and settings.
// It never touches Secrets Manager or Rakuten.
type API struct {
	Store    merchantsync.Store
	Schedule Schedule // the daily sync
	// Hourly is the hourly sync of tenants whose syncEvery is "1h"
	// (default: HourlyAt{Minute: 30}).
	Hourly Schedule
	Now    func() time.Time
}

// APIRoutes lists the route keys the api function serves.
func (a *API) Routes() []Route {
	return []Route{
		{"GET /v1/networks", a.listNetworks},
		{"GET /v1/networks/{network}", a.getNetwork},
		{"PUT /v1/networks/{network}/ids", a.putIDs},
		{"GET /v1/merchantsync/settings", a.getSettings},
		{"PUT /v1/merchantsync/settings", a.putSettings},
		{"GET /v1/networks/{network}/sync-runs", a.listRuns},
		{"GET /v1/networks/{network}/sync-runs/{runId}", a.getRun},
		{"GET /v1/networks/{network}/relationships", a.listRelationships},
		{"GET /v1/networks/{network}/changes", a.listChanges},
	}
}

// NewAPIRouter returns the router of the api function.
func NewAPIRouter(a *API, logger *slog.Logger) *Router {
	if a.Now == nil {
		a.Now = time.Now
	}
	if a.Schedule == nil {
		a.Schedule = DailyAt{Hour: 3}
	}
	if a.Hourly == nil {
		a.Hourly = HourlyAt{Minute: 30}
	}
	return NewRouter(logger, a.Routes()...)
}

func (a *API) networkView(ctx context.Context, tenant string, info merchantsync.NetworkInfo, st merchantsync.Settings) (*networkJSON, error) {
	acct, err := a.Store.GetAccount(ctx, tenant, info.ID)
	if err != nil {
		return nil, err
	}
	return buildNetworkView(info, acct, st, a.Schedule, a.Hourly, a.Now()), nil
}

func buildNetworkView(info merchantsync.NetworkInfo, acct *merchantsync.Account, st merchantsync.Settings, sched, hourly Schedule, now time.Time) *networkJSON {
	v := &networkJSON{
		Network: info.ID, Name: info.Name, State: string(acct.EffectiveState(st)),
		SyncEnabled: st.Enabled, SyncEvery: string(st.SyncEvery.Or()), Counts: countsJSON(nil),
	}
	if acct == nil {
		return v
	}
	v.AffiliateID, v.SiteID, v.Username = acct.AffiliateID, acct.SiteID, acct.Username
	v.ConnectedAt, v.LastSyncAt = ts(acct.ConnectedAt), ts(acct.LastSyncAt)
	v.LastRun = toRunJSON(acct.LastRun)
	v.ActiveRunID = acct.ActiveRunID
	v.Counts = countsJSON(acct.Counts)
	if acct.Connected {
		v.Auth, v.PullMode, v.PullModeCheckedAt = string(acct.Auth), string(acct.PullMode), ts(acct.PullModeCheckedAt)
	}
	if acct.Connected && st.SyncEvery == merchantsync.SyncHourly {
		v.IncrementalOff = acct.IncrementalOff
	}
	if acct.Due(st) && sched != nil {
		next := sched.Next(now)
		if acct.DueHourly(st) && hourly != nil {
			if h := hourly.Next(now); h.Before(next) {
				next = h
			}
		}
		v.NextSyncAt = ts(next)
	}
	return v
}

func (a *API) listNetworks(ctx context.Context, r *Request) (int, any, error) {
	st, err := a.Store.GetSettings(ctx, r.Tenant)
	if err != nil {
		return 0, nil, err
	}
	out := listJSON[*networkJSON]{Items: []*networkJSON{}}
	for _, n := range merchantsync.Networks {
		v, err := a.networkView(ctx, r.Tenant, n, st)
		if err != nil {
			return 0, nil, err
		}
		out.Items = append(out.Items, v)
	}
	return http.StatusOK, out, nil
}

func (a *API) getNetwork(ctx context.Context, r *Request) (int, any, error) {
	info, _ := merchantsync.LookupNetwork(r.PathParams["network"])
	st, err := a.Store.GetSettings(ctx, r.Tenant)
	if err != nil {
		return 0, nil, err
	}
	v, err := a.networkView(ctx, r.Tenant, info, st)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, v, nil
}

type idsRequest struct {
	AffiliateID *string `json:"affiliateId"`
	SiteID      *string `json:"siteId"`
}

func (a *API) putIDs(ctx context.Context, r *Request) (int, any, error) {
	var body idsRequest
	if err := decodeJSON(r, &body); err != nil {
		return 0, nil, err
	}
	if body.AffiliateID == nil {
		return 0, nil, merchantsync.FieldError(merchantsync.EInvalid, "affiliateId", "affiliateId is required.")
	}
	aff, err := merchantsync.ParseAffiliateID(*body.AffiliateID)
	if err != nil {
		return 0, nil, err
	}
	var site string
	if body.SiteID != nil && *body.SiteID != "" {
		if site, err = merchantsync.ParseSiteID(*body.SiteID); err != nil {
			return 0, nil, err
		}
	}
	network := r.PathParams["network"]
	if _, err := a.Store.SaveIDs(ctx, r.Tenant, network, aff, site, a.Now()); err != nil {
		return 0, nil, err
	}
	return a.getNetwork(ctx, r)
}

func (a *API) getSettings(ctx context.Context, r *Request) (int, any, error) {
	st, err := a.Store.GetSettings(ctx, r.Tenant)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, toSettingsJSON(st), nil
}

type settingsRequest struct {
	Enabled   *bool   `json:"enabled"`
	SyncEvery *string `json:"syncEvery"`
}

func (a *API) putSettings(ctx context.Context, r *Request) (int, any, error) {
	var body settingsRequest
	if err := decodeJSON(r, &body); err != nil {
		return 0, nil, err
	}
	if body.Enabled == nil {
		return 0, nil, merchantsync.FieldError(merchantsync.EInvalid, "enabled", "enabled (true or false) is required.")
	}
	st := merchantsync.Settings{TenantID: r.Tenant, Enabled: *body.Enabled, UpdatedAt: a.Now().UTC()}
	if body.SyncEvery != nil {
		st.SyncEvery = merchantsync.SyncEvery(*body.SyncEvery)
		if !st.SyncEvery.Valid() {
			return 0, nil, merchantsync.FieldError(merchantsync.EInvalid, "syncEvery",
				`syncEvery must be "24h" (a full sync a day) or "1h" (hourly syncs of recent changes, and the daily full sync).`)
		}
	} else {
		// Left out, it stays as it was: clients that only toggle enabled
		// do not reset it.
		cur, err := a.Store.GetSettings(ctx, r.Tenant)
		if err != nil {
			return 0, nil, err
		}
		st.SyncEvery = cur.SyncEvery
	}
	st.SyncEvery = st.SyncEvery.Or()
	if err := a.Store.PutSettings(ctx, st); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, toSettingsJSON(st), nil
}

// Paging limits of every list route.
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

func parseLimit(r *Request) (int, error) {
	s, ok := r.Query["limit"]
	if !ok || s == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, merchantsync.FieldError(merchantsync.EInvalid, "limit", fmt.Sprintf("limit must be a whole number from 1 to %d.", MaxLimit))
	}
	return n, nil
}

// parsePage reads the limit and cursor every list route takes.
func parsePage(r *Request) (limit int, cursor string, err error) {
	if limit, err = parseLimit(r); err != nil {
		return 0, "", err
	}
	cursor, err = parseCursor(r)
	return limit, cursor, err
}

func parseCursor(r *Request) (string, error) {
	c := r.Query["cursor"]
	if len(c) > 1024 {
		return "", merchantsync.FieldError(merchantsync.EInvalid, "cursor", "cursor is not valid: pass the nextCursor of the previous page unchanged.")
	}
	return c, nil
}

func (a *API) listRuns(ctx context.Context, r *Request) (int, any, error) {
	limit, cursor, err := parsePage(r)
	if err != nil {
		return 0, nil, err
	}
	runs, next, err := a.Store.ListRuns(ctx, r.Tenant, r.PathParams["network"], limit, cursor)
	if err != nil {
		return 0, nil, err
	}
	out := listJSON[*runJSON]{Items: make([]*runJSON, 0, len(runs)), NextCursor: next}
	for i := range runs {
		out.Items = append(out.Items, toRunJSON(&runs[i]))
	}
	return http.StatusOK, out, nil
}

func (a *API) getRun(ctx context.Context, r *Request) (int, any, error) {
	id := r.PathParams["runId"]
	if len(id) > 64 {
		return 0, nil, merchantsync.Errorf(merchantsync.ENotFound, "No sync run %q.", truncate(id, 64))
	}
	run, err := a.Store.GetRun(ctx, r.Tenant, r.PathParams["network"], id)
	if err != nil {
		return 0, nil, err
	}
	if run == nil {
		return 0, nil, merchantsync.Errorf(merchantsync.ENotFound, "No sync run %q.", id)
	}
	return http.StatusOK, toRunJSON(run), nil
}

func (a *API) listRelationships(ctx context.Context, r *Request) (int, any, error) {
	limit, cursor, err := parsePage(r)
	if err != nil {
		return 0, nil, err
	}
	var status merchantsync.Status
	if s := r.Query["status"]; s != "" {
		var ok bool
		if status, ok = merchantsync.ParseStatus(s); !ok {
			return 0, nil, merchantsync.FieldError(merchantsync.EInvalid, "status",
				"status must be one of joined, pending, declined, removed, left, unknown.")
		}
	}
	network := r.PathParams["network"]
	acct, err := a.Store.GetAccount(ctx, r.Tenant, network)
	if err != nil {
		return 0, nil, err
	}
	var lastSync time.Time
	if acct != nil {
		lastSync = acct.LastSyncAt
	}
	rels, next, err := a.Store.ListRelationships(ctx, r.Tenant, network, status, limit, cursor)
	if err != nil {
		return 0, nil, err
	}
	out := listJSON[relationshipJSON]{Items: make([]relationshipJSON, 0, len(rels)), NextCursor: next}
	for _, rel := range rels {
		out.Items = append(out.Items, toRelationshipJSON(rel, lastSync))
	}
	return http.StatusOK, out, nil
}

func (a *API) listChanges(ctx context.Context, r *Request) (int, any, error) {
	limit, cursor, err := parsePage(r)
	if err != nil {
		return 0, nil, err
	}
	var since time.Time
	if s := r.Query["since"]; s != "" {
		if since, err = time.Parse(time.RFC3339, s); err != nil {
			return 0, nil, merchantsync.FieldError(merchantsync.EInvalid, "since", "since must be an RFC 3339 time, e.g. 2026-11-01T00:00:00Z.")
		}
	}
	changes, next, err := a.Store.ListChanges(ctx, r.Tenant, r.PathParams["network"], since, limit, cursor)
	if err != nil {
		return 0, nil, err
	}
	out := listJSON[changeJSON]{Items: make([]changeJSON, 0, len(changes)), NextCursor: next}
	for _, c := range changes {
		out.Items = append(out.Items, toChangeJSON(c))
	}
	return http.StatusOK, out, nil
}
