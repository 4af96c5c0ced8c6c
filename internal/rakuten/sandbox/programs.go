package sandbox

import (
	"net/http"
	"strconv"
	"strings"
)

// What Rakuten's published documents say beyond the lists: a single
// partnership (GET /v1/partnerships/{mid}, 404 when there is none),
// programs on hold (gone from the publisher's lists), and a token endpoint
// that may no longer offer the password grant.

const partnershipPrefix = "/v1/partnerships/"

// SetOnHold puts a merchant's program on hold or takes it off: on hold, it
// vanishes from every partnerships list, and its single partnership shows
// the program inactive.
func (s *Server) SetOnHold(siteID string, mid int64, on bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.merchants[siteID]
	i, ok := findMID(ms, mid)
	if ok {
		ms[i].OnHold = on
	}
	return ok
}

// SetPasswordGrantEnabled sets whether /token offers the password grant
// (default true); refused, it answers 400 unsupported_grant_type.
func (s *Server) SetPasswordGrantEnabled(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.passwordOff = !on
}

// servePartnership answers GET /v1/partnerships/{mid}: the one partnership
// in the list envelope, or 404.
func (s *Server) servePartnership(w http.ResponseWriter, r *http.Request) {
	site, ok := s.apiGET(w, r)
	if !ok {
		return
	}
	mid, err := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, partnershipPrefix), 10, 64)
	if err != nil || mid <= 0 {
		writeJSON(w, http.StatusBadRequest, apiError{"mid must be a number", "REQUEST_PARAM_INVALID"})
		return
	}
	s.mu.Lock()
	i, found := findMID(s.merchants[site], mid)
	var m Merchant
	if found {
		m = s.merchants[site][i]
	}
	s.mu.Unlock()
	if !found {
		writeJSON(w, http.StatusNotFound, apiError{"No partnership found for this advertiser", "NOT_FOUND"})
		return
	}
	if m.OnHold {
		m.AdvertiserStatus = "inactive"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"_metadata":    pMetadata{APINameVersion: "partnerships_v1", Page: 1, Limit: 1, Total: 1, Links: map[string]string{"self": r.URL.Path}},
		"partnerships": []pPartnership{toJSON(m)},
	})
}
