package sandbox

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// The token endpoint and the gateway's bearer check.

// ExpireAccessTokens makes every access token issued so far answer 401
// ams:fault 900903, as after an hour on the real API.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.access {
		t.expired = true
	}
}

// RevokeRefreshTokens invalidates every refresh token of a site: the
// refresh grant then answers 400 invalid_grant.
func (s *Server) RevokeRefreshTokens(siteID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, t := range s.refresh {
		if t.siteID == siteID {
			delete(s.refresh, k)
		}
	}
}

// SetTokenKeyEnabled sets whether the token-key grant (client credentials
// and scope, no password) works. Default true.
func (s *Server) SetTokenKeyEnabled(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenKeyOff = !on
}

// SetAcceptedScheme sets which Authorization scheme /token accepts:
// "Basic", "Bearer" or "" for both. The other answers 401 invalid_client.
func (s *Server) SetAcceptedScheme(scheme string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scheme = scheme
}

type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, oauthError{"invalid_request", "use POST"})
		return
	}
	if err := r.ParseForm(); err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		writeJSON(w, http.StatusBadRequest, oauthError{"invalid_request", "the body must be application/x-www-form-urlencoded"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	clientID, scheme, ok := s.authenticate(r.Header.Get("Authorization"))
	if !ok {
		writeJSON(w, http.StatusUnauthorized, oauthError{"invalid_client", "Client Authentication failed."})
		return
	}
	c := s.clients[clientID]
	scope := r.PostForm.Get("scope")
	grant := r.PostForm.Get("grant_type")
	user, pass := r.PostForm.Get("username"), r.PostForm.Get("password")
	switch {
	case user != "" || pass != "" || r.PostForm.Get("refresh_token") != "":
	case strings.EqualFold(scheme, "Bearer"), grant == "", grant == "client_credentials", grant == "password":
		// The token-key flow: the published one is Bearer and scope=<SID>,
		// whatever grant_type a client adds; older clients send Basic with
		// client_credentials, or password without a user.
		grant = grantTokenKey
	}
	switch grant {
	case "password":
		if s.passwordOff {
			writeJSON(w, http.StatusBadRequest, oauthError{"unsupported_grant_type", "The password grant is not offered to this client."})
			return
		}
		a, ok := c.sites[scope]
		if !ok {
			writeJSON(w, http.StatusBadRequest, oauthError{"invalid_scope", "The requested scope is invalid, unknown, or malformed."})
			return
		}
		if user != a.Username || pass != a.Password {
			writeJSON(w, http.StatusBadRequest, oauthError{"invalid_grant", "Authentication failed for the given username and password."})
			return
		}
		s.issue(w, a)
	case "refresh_token":
		rt, ok := s.refresh[r.PostForm.Get("refresh_token")]
		if !ok || rt.clientID != clientID {
			writeJSON(w, http.StatusBadRequest, oauthError{"invalid_grant", "Persisted access token data not found"})
			return
		}
		if scope != "" && scope != "PRODUCTION" && scope != rt.siteID {
			writeJSON(w, http.StatusBadRequest, oauthError{"invalid_scope", "The requested scope does not match the refresh token."})
			return
		}
		a, ok := c.sites[rt.siteID]
		if !ok {
			writeJSON(w, http.StatusBadRequest, oauthError{"invalid_grant", "Persisted access token data not found"})
			return
		}
		// One-time use: the old refresh token dies with this request.
		delete(s.refresh, r.PostForm.Get("refresh_token"))
		s.issue(w, a)
	case grantTokenKey:
		if s.tokenKeyOff {
			writeJSON(w, http.StatusBadRequest, oauthError{"unauthorized_client", "The authenticated client is not authorized to use this authorization grant type."})
			return
		}
		a, ok := c.sites[scope]
		if !ok {
			writeJSON(w, http.StatusBadRequest, oauthError{"invalid_scope", "The requested scope is invalid, unknown, or malformed."})
			return
		}
		s.issue(w, a)
	default:
		writeJSON(w, http.StatusBadRequest, oauthError{"unsupported_grant_type", "Unsupported grant_type value"})
	}
}

// grantTokenKey names the token-key grant inside serveToken: it has no
// grant_type of its own.
const grantTokenKey = "token key"

// authenticate checks "<Basic|Bearer> base64(id:secret)" and returns the
// client id and the scheme word; s.mu is held.
func (s *Server) authenticate(h string) (string, string, bool) {
	scheme, val, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok {
		return "", "", false
	}
	switch {
	case strings.EqualFold(scheme, "Basic"), strings.EqualFold(scheme, "Bearer"):
	default:
		return "", "", false
	}
	if s.scheme != "" && !strings.EqualFold(scheme, s.scheme) {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(val))
	if err != nil {
		return "", "", false
	}
	id, secret, ok := strings.Cut(string(raw), ":")
	c, known := s.clients[id]
	if !ok || !known || c.secret != secret {
		return "", "", false
	}
	return id, scheme, true
}

// issue writes a new token pair for a; s.mu is held.
func (s *Server) issue(w http.ResponseWriter, a Account) {
	at, rt := newToken(), newToken()
	s.access[at] = &accessToken{clientID: a.ClientID, siteID: a.SiteID, expiry: s.now().Add(s.ttl)}
	s.refresh[rt] = refreshToken{clientID: a.ClientID, siteID: a.SiteID}
	secs := int64(s.ttl / time.Second)
	var exp any = secs
	if ExpiresInAsString(a) {
		exp = fmt.Sprint(secs)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":    "bearer",
		"expires_in":    exp,
		"refresh_token": rt,
		"access_token":  at,
	})
}

func newToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// bearer resolves the request's access token to a site, or writes the
// gateway's 401 fault. s.mu must not be held.
func (s *Server) bearer(w http.ResponseWriter, r *http.Request, allowQuery bool) (string, bool) {
	tok := ""
	if scheme, v, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		tok = strings.TrimSpace(v)
	} else if allowQuery {
		tok = r.URL.Query().Get("token")
	}
	s.mu.Lock()
	t, ok := s.access[tok]
	expired := ok && (t.expired || !s.now().Before(t.expiry))
	s.mu.Unlock()
	switch {
	case tok == "" || !ok:
		writeFault(w, http.StatusUnauthorized, "900901", "Invalid Credentials",
			"Invalid Credentials. Make sure you have given the correct access token")
		return "", false
	case expired:
		writeFault(w, http.StatusUnauthorized, "900903", "Access Token Expired",
			"Access Token Expired. Renew the access token and try again")
		return "", false
	}
	return t.siteID, true
}
