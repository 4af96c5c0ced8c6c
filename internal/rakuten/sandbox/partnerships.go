package sandbox

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Partnership statuses as the sandbox spells them (Rakuten's exact spelling
// is unconfirmed; clients must compare loosely).
const (
	StatusActive           = "active"
	StatusExtended         = "extended"
	StatusPending          = "pending"
	StatusTempDecline      = "temp-decline"
	StatusPermanentDecline = "permanent-decline"
	StatusTempRemove       = "temp-remove"
	StatusPermanentRemove  = "permanent-remove"
	StatusSelfRemoved      = "self-removed"
)

// PartnershipStatuses returns the eight partnership statuses.
func PartnershipStatuses() []string {
	return []string{StatusActive, StatusExtended, StatusPending, StatusTempDecline,
		StatusPermanentDecline, StatusTempRemove, StatusPermanentRemove, StatusSelfRemoved}
}

// LinkLocatorStatus maps a partnership status to the Link Locator
// applicationStatus that lists it ("" if none).
func LinkLocatorStatus(partnership string) string {
	switch partnership {
	case StatusActive:
		return "approved"
	case StatusExtended:
		return "approval extended"
	case StatusPending:
		return "wait"
	case StatusTempDecline:
		return "temp rejected"
	case StatusPermanentDecline:
		return "perm rejected"
	case StatusTempRemove:
		return "temp removed"
	case StatusPermanentRemove:
		return "perm removed"
	case StatusSelfRemoved:
		return "self removed"
	}
	return ""
}

const (
	defaultLimit = 50 // undocumented by Rakuten; clients always send limit
	maxLimit     = 200
	maxPage      = 1000
)

type apiError struct {
	Message string `json:"message"`
	Error   string `json:"error"`
}

type pMetadata struct {
	APINameVersion string            `json:"api_name_version"`
	Page           int               `json:"page"`
	Limit          int               `json:"limit"`
	Total          int               `json:"total"`
	Links          map[string]string `json:"_links"`
}

type pAdvertiser struct {
	ID         int64             `json:"id"`
	Network    int               `json:"network"`
	Name       string            `json:"name"`
	Status     string            `json:"status"`
	Categories []string          `json:"categories"`
	Details    map[string]string `json:"details"`
}

type pPartnership struct {
	Advertiser           pAdvertiser `json:"advertiser"`
	Status               string      `json:"status"`
	StatusUpdateDatetime string      `json:"status_update_datetime,omitempty"`
	ApproveDatetime      string      `json:"approve_datetime,omitempty"`
	ApplyDatetime        string      `json:"apply_datetime,omitempty"`
}

// apiGET checks a JSON API request's method and bearer token and returns
// its site, or answers the request itself.
func (s *Server) apiGET(w http.ResponseWriter, r *http.Request) (string, bool) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeJSON(w, http.StatusMethodNotAllowed, apiError{"method not allowed", "METHOD_NOT_ALLOWED"})
		return "", false
	}
	return s.bearer(w, r, false)
}

func (s *Server) servePartnerships(w http.ResponseWriter, r *http.Request) {
	site, ok := s.apiGET(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	limit, ok := intParam(q, "limit", defaultLimit, 1, maxLimit)
	if !ok {
		writeJSON(w, http.StatusBadRequest, apiError{"limit must be between 1 and 200", "REQUEST_PARAM_INVALID"})
		return
	}
	if s.maxPageSize > 0 {
		limit = min(limit, s.maxPageSize)
	}
	page, ok := intParam(q, "page", 1, 1, maxPage)
	if !ok {
		writeJSON(w, http.StatusBadRequest, apiError{"page must be between 1 and 1000", "REQUEST_PARAM_INVALID"})
		return
	}
	network := 0
	if v := q.Get("network"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{"network must be a number", "REQUEST_PARAM_INVALID"})
			return
		}
		network = n
	}
	statuses := splitList(q.Get("partner_status"))
	if len(statuses) == 0 && s.activeOnlyUF {
		statuses = map[string]bool{StatusActive: true}
	}
	advStatus := strings.ToLower(q.Get("advertiser_status"))
	since, ok := s.recency(q.Get("status_update_range"))
	if !ok {
		writeJSON(w, http.StatusBadRequest, apiError{"status_update_range must be 1d, 7d or 30d", "REQUEST_PARAM_INVALID"})
		return
	}

	// Count every match but copy only this page's window.
	from := (page - 1) * limit
	s.mu.Lock()
	now := s.now()
	// Sorted by recency, every match is needed before the window; in MID
	// order (the store's) only the window is copied.
	sorted := q.Get("sort_by") == "status_update_datetime"
	total := 0
	var window []Merchant
	for _, m := range s.merchants[site] {
		if !m.OnHold && (network == 0 || m.Network == network) &&
			(len(statuses) == 0 || statuses[strings.ToLower(m.Status)]) &&
			(advStatus == "" || strings.EqualFold(m.AdvertiserStatus, advStatus)) &&
			(since == 0 || (!m.StatusUpdatedAt.Before(now.Add(-since)) && !m.StatusUpdatedAt.After(now))) {
			if sorted || (total >= from && total < from+limit) {
				window = append(window, m)
			}
			total++
		}
	}
	s.mu.Unlock()
	if sorted {
		// Newest first; the stable sort keeps MID order among equals, so
		// pages never overlap.
		slices.SortStableFunc(window, func(a, b Merchant) int { return b.StatusUpdatedAt.Compare(a.StatusUpdatedAt) })
		window = window[min(from, total):min(from+limit, total)]
	}

	items := make([]pPartnership, 0, len(window))
	for _, m := range window {
		items = append(items, toJSON(m))
	}
	links := map[string]string{"self": s.pageLink(q, page, limit)}
	if page*limit < total {
		links["next"] = s.pageLink(q, page+1, limit)
	}
	if page > 1 {
		links["prev"] = s.pageLink(q, page-1, limit)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"_metadata":    pMetadata{APINameVersion: "partnerships_v1", Page: page, Limit: limit, Total: total, Links: links},
		"partnerships": items,
	})
}

func toJSON(m Merchant) pPartnership {
	return pPartnership{
		Advertiser: pAdvertiser{
			ID: m.MID, Network: m.Network, Name: m.Name, Status: m.AdvertiserStatus,
			Categories: nonNil(m.Categories),
			Details:    map[string]string{"url": "https://www.example.com/m/" + strconv.FormatInt(m.MID, 10)},
		},
		Status:               m.Status,
		StatusUpdateDatetime: rfc3339(m.StatusUpdatedAt),
		ApproveDatetime:      rfc3339(m.ApprovedAt),
		ApplyDatetime:        rfc3339(m.AppliedAt),
	}
}

// pageLink is a relative link to another page: as in Rakuten's published
// spec, without the request's filters, unless Options.NextKeepsFilters.
func (s *Server) pageLink(q url.Values, page, limit int) string {
	v := url.Values{}
	for _, k := range []string{"partner_status", "network", "advertiser_status", "status_update_range", "sort_by", "order_by"} {
		if x := q.Get(k); x != "" && s.keepFilters {
			v.Set(k, x)
		}
	}
	v.Set("page", strconv.Itoa(page))
	v.Set("limit", strconv.Itoa(limit))
	return "/v1/partnerships?" + v.Encode()
}

// recency reads status_update_range: 0 without one, ok=false for a value
// Rakuten does not list. Options.RecencyIgnored ignores it, and
// Options.RecencyRefused answers it with a 400, as a Rakuten without the
// filter might.
func (s *Server) recency(v string) (time.Duration, bool) {
	if v == "" || s.recencyIgnored {
		return 0, true
	}
	if s.recencyRefused {
		return 0, false
	}
	switch v {
	case "1d":
		return 24 * time.Hour, true
	case "7d":
		return 7 * 24 * time.Hour, true
	case "30d":
		return 30 * 24 * time.Hour, true
	}
	return 0, false
}

func intParam(q url.Values, name string, def, lo, hi int) (int, bool) {
	v := q.Get(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, false
	}
	return n, true
}

func splitList(v string) map[string]bool {
	if v == "" {
		return nil
	}
	out := make(map[string]bool)
	for _, p := range strings.Split(v, ",") {
		if p = strings.ToLower(strings.TrimSpace(p)); p != "" {
			out[p] = true
		}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// ---- Link Locator ----

func (s *Server) serveLinkLocator(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	site, ok := s.bearer(w, r, true)
	if !ok {
		return
	}
	llStatus := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(r.URL.Path, linkLocatorPrefix)))
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>`)
	b.WriteString(`<ns1:getMerchByAppStatusResponse xmlns:ns1="http://endpoint.linkservice.linkshare.com/">`)
	s.mu.Lock()
	for _, m := range s.merchants[site] {
		if llStatus == "" || LinkLocatorStatus(m.Status) != llStatus {
			continue
		}
		mid := strconv.FormatInt(m.MID, 10)
		b.WriteString(`<ns1:return>`)
		el(&b, "applicationStatus", capitalize(llStatus))
		el(&b, "categories", strings.Join(categoryIDs(m.Categories), " "))
		el(&b, "mid", mid)
		el(&b, "name", m.Name)
		b.WriteString(`<ns1:offer>`)
		el(&b, "alsoName", m.Name)
		el(&b, "commissionTerms", "5.00% of sales")
		el(&b, "offerId", "1"+mid)
		el(&b, "offerName", "Default Offer")
		b.WriteString(`</ns1:offer></ns1:return>`)
	}
	s.mu.Unlock()
	b.WriteString(`</ns1:getMerchByAppStatusResponse>`)
	w.Header().Set("Content-Type", "application/xml; charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(b.String()))
}

func el(b *strings.Builder, name, text string) {
	b.WriteString("<ns1:" + name + ">")
	b.WriteString(xmlEscape(text))
	b.WriteString("</ns1:" + name + ">")
}

func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// categoryIDs turns category names into the numeric ids Link Locator shows.
func categoryIDs(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		for i, c := range categoryNames() {
			if c == n {
				out = append(out, strconv.Itoa(i+1))
			}
		}
	}
	return out
}
