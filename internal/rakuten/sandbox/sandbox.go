// Package sandbox simulates the Rakuten Advertising publisher API as
// merchantsync relies on it (docs/rakuten.md): the OAuth token endpoint
// (the token-key grant, Bearer and scope=<SID> only; the password grant;
// refresh-token rotation), the Partnerships API with the published spec's
// paging links (next drops the request's filters), single partnerships,
// programs on hold, the Link Locator fallback, WSO2 gateway faults, and
// injectable failures. Tests run it in-process with httptest; the local
// stack serves it on 127.0.0.1.
//
// Where Rakuten's behaviour is undocumented the sandbox picks the stricter
// or more awkward answer, so the client is exercised against it: expires_in
// is a string for some accounts, auth failures are XML on JSON endpoints,
// and a refused Authorization scheme answers 401.
package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Endpoint names, for Calls and Fault.Endpoint.
const (
	EndpointToken        = "token"
	EndpointPartnerships = "partnerships"
	EndpointPartnership  = "partnership" // GET /v1/partnerships/{mid}
	EndpointLinkLocator  = "linklocator"
)

// Options configure a Server.
type Options struct {
	AccessTokenTTL time.Duration    // default 1h
	Now            func() time.Time // default time.Now
	Logger         *slog.Logger     // request log (never tokens or secrets); default discards
	// UnfilteredActiveOnly makes a partnerships call without
	// partner_status return only active partnerships, as Rakuten might (an
	// open point): what the client's self-check and by-status pull guard
	// against.
	UnfilteredActiveOnly bool
	// NextKeepsFilters makes the paging links carry the request's filters.
	// By default they do not, as in Rakuten's published spec
	// (/v1/partnerships?page={x+1}&limit={y}).
	NextKeepsFilters bool
	// MaxPageSize, when set, caps the rows of a page below the limit asked
	// for, and the page's _metadata.limit says so.
	MaxPageSize int
	// RecencyIgnored makes the sandbox ignore status_update_range (every
	// matching partnership comes back); RecencyRefused answers it with a
	// 400. Rakuten's support of the filter is what incremental syncs
	// check for.
	RecencyIgnored, RecencyRefused bool
}

// Account is a publisher's Rakuten API application for one site.
type Account struct {
	ClientID, ClientSecret, SiteID, Username, Password string
}

// Merchant is one advertiser the site has a partnership with.
type Merchant struct {
	MID              int64
	Network          int
	Name             string
	Status           string // partnership status (active, extended, pending, …)
	AdvertiserStatus string // the advertiser's program status: active or inactive
	Categories       []string
	// OnHold: the program is on hold. It vanishes from every partnerships
	// list; GET /v1/partnerships/{mid} still shows it, program inactive.
	OnHold          bool
	AppliedAt       time.Time
	ApprovedAt      time.Time // zero when never approved
	StatusUpdatedAt time.Time
}

type client struct {
	secret string
	sites  map[string]Account // by SiteID
}

type accessToken struct {
	clientID, siteID string
	expiry           time.Time
	expired          bool
}

type refreshToken struct {
	clientID, siteID string
}

// Server is the simulator. It is safe for concurrent use.
type Server struct {
	ttl          time.Duration
	now          func() time.Time
	log          *slog.Logger
	activeOnlyUF bool // Options.UnfilteredActiveOnly
	keepFilters  bool // Options.NextKeepsFilters
	maxPageSize  int  // Options.MaxPageSize

	recencyIgnored, recencyRefused bool // Options.Recency…

	mu          sync.Mutex
	clients     map[string]*client
	merchants   map[string][]Merchant // by SiteID, sorted by MID
	access      map[string]*accessToken
	refresh     map[string]refreshToken
	calls       map[string]int // reset by ResetCalls
	seen        map[string]int // never reset: positions faults
	faults      []*fault
	tokenKeyOff bool
	passwordOff bool
	scheme      string
	latency     time.Duration
}

// New returns an empty Server.
func New(opts Options) *Server {
	s := &Server{
		ttl:          opts.AccessTokenTTL,
		activeOnlyUF: opts.UnfilteredActiveOnly,
		keepFilters:  opts.NextKeepsFilters,
		maxPageSize:  opts.MaxPageSize,

		recencyIgnored: opts.RecencyIgnored,
		recencyRefused: opts.RecencyRefused,
		now:            opts.Now,
		log:            opts.Logger,
		clients:        make(map[string]*client),
		merchants:      make(map[string][]Merchant),
		access:         make(map[string]*accessToken),
		refresh:        make(map[string]refreshToken),
		calls:          make(map[string]int),
		seen:           make(map[string]int),
	}
	if s.ttl <= 0 {
		s.ttl = time.Hour
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// AddAccount registers an application (client id + secret) for a site,
// with the username and password the password grant accepts. Adding the
// same client id again replaces its secret.
func (s *Server) AddAccount(a Account) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[a.ClientID]
	if !ok {
		c = &client{sites: make(map[string]Account)}
		s.clients[a.ClientID] = c
	}
	c.secret = a.ClientSecret
	c.sites[a.SiteID] = a
	if _, ok := s.merchants[a.SiteID]; !ok {
		s.merchants[a.SiteID] = nil
	}
}

// ExpiresInAsString reports whether the token endpoint sends expires_in as
// a JSON string ("3600") rather than a number for this account: fixed per
// account, so a client meets both across accounts.
func ExpiresInAsString(a Account) bool {
	h := fnv.New32a()
	h.Write([]byte(a.ClientID + "\x00" + a.SiteID))
	return h.Sum32()%2 == 1
}

// SetStatus changes one merchant's partnership status (any non-empty raw
// value, so unknown statuses can be simulated).
func (s *Server) SetStatus(siteID string, mid int64, status string) error {
	if strings.TrimSpace(status) == "" {
		return fmt.Errorf("sandbox: empty status")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.merchants[siteID]
	i, ok := findMID(ms, mid)
	if !ok {
		return fmt.Errorf("sandbox: site %s has no merchant %d", siteID, mid)
	}
	ms[i].Status = status
	ms[i].StatusUpdatedAt = s.now().UTC().Truncate(time.Second)
	if (status == StatusActive || status == StatusExtended) && ms[i].ApprovedAt.IsZero() {
		ms[i].ApprovedAt = ms[i].StatusUpdatedAt
	}
	return nil
}

// RemoveMerchant drops a merchant from the site's partnerships entirely.
func (s *Server) RemoveMerchant(siteID string, mid int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.merchants[siteID]
	if i, ok := findMID(ms, mid); ok {
		s.merchants[siteID] = slices.Delete(ms, i, i+1)
	}
}

// AddMerchant adds or replaces one merchant.
func (s *Server) AddMerchant(siteID string, m Merchant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.merchants[siteID]
	if i, ok := findMID(ms, m.MID); ok {
		ms[i] = m
		return
	}
	s.merchants[siteID] = sortedInsert(ms, m)
}

func findMID(ms []Merchant, mid int64) (int, bool) {
	return slices.BinarySearchFunc(ms, mid, func(m Merchant, mid int64) int {
		switch {
		case m.MID < mid:
			return -1
		case m.MID > mid:
			return 1
		}
		return 0
	})
}

func sortedInsert(ms []Merchant, m Merchant) []Merchant {
	i, _ := findMID(ms, m.MID)
	return slices.Insert(ms, i, m)
}

// Merchants returns a copy of the site's merchants, sorted by MID.
func (s *Server) Merchants(siteID string) []Merchant {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Merchant, len(s.merchants[siteID]))
	for i, m := range s.merchants[siteID] {
		m.Categories = slices.Clone(m.Categories)
		out[i] = m
	}
	return out
}

// CountsByStatus counts the site's merchants by raw partnership status.
func (s *Server) CountsByStatus(siteID string) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int)
	for _, m := range s.merchants[siteID] {
		out[m.Status]++
	}
	return out
}

// Calls returns how many requests an endpoint ("token", "partnerships",
// "linklocator") received since the last ResetCalls, faulted ones included.
func (s *Server) Calls(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[endpoint]
}

// ResetCalls zeroes the call counters.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.calls)
}

// SetLatency delays every response by d (honouring the request's context).
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ep := endpointOf(r.URL.Path)
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		// Path and status only: tokens travel in headers and bodies, and
		// the Link Locator ?token= variant is deliberately not logged.
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "sandbox", slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.Int("status", rec.status))
	}()
	s.mu.Lock()
	if ep != "" {
		s.calls[ep]++
		s.seen[ep]++
	}
	latency := s.latency
	f := s.takeFault(ep)
	s.mu.Unlock()

	if !sleep(r.Context(), latency) {
		return
	}
	if f != nil {
		if !sleep(r.Context(), f.Delay) {
			return
		}
		if f.Status != 0 {
			f.write(rec)
			return
		}
	}
	switch ep {
	case EndpointToken:
		s.serveToken(rec, r)
	case EndpointPartnerships:
		s.servePartnerships(rec, r)
	case EndpointPartnership:
		s.servePartnership(rec, r)
	case EndpointLinkLocator:
		s.serveLinkLocator(rec, r)
	default:
		writeJSON(rec, http.StatusNotFound, map[string]string{"message": "No matching resource found", "error": "NOT_FOUND"})
	}
}

const linkLocatorPrefix = "/linklocator/1.0/getMerchByAppStatus/"

func endpointOf(path string) string {
	switch {
	case path == "/token":
		return EndpointToken
	case path == "/v1/partnerships":
		return EndpointPartnerships
	case strings.HasPrefix(path, partnershipPrefix) && len(path) > len(partnershipPrefix):
		return EndpointPartnership
	case strings.HasPrefix(path, linkLocatorPrefix):
		return EndpointLinkLocator
	}
	return ""
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// ---- /token ----

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeFault writes a WSO2 security fault, XML whatever the endpoint.
func writeFault(w http.ResponseWriter, status int, code, message, description string) {
	w.Header().Set("Content-Type", "application/xml; charset=UTF-8")
	w.WriteHeader(status)
	fmt.Fprint(w, amsFault(code, message, description))
}

func amsFault(code, message, description string) string {
	return `<ams:fault xmlns:ams="http://wso2.org/apimanager/security"><ams:code>` + code +
		`</ams:code><ams:message>` + xmlEscape(message) + `</ams:message><ams:description>` +
		xmlEscape(description) + `</ams:description></ams:fault>`
}
