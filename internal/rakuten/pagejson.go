package rakuten

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// The Partnerships API's JSON, read leniently.

// partnershipsPage is the Partnerships API's JSON. Every field may be
// missing; numbers may arrive as strings.
type partnershipsPage struct {
	Metadata struct {
		APINameVersion string  `json:"api_name_version"`
		Page           flexInt `json:"page"`
		Limit          flexInt `json:"limit"`
		Total          flexInt `json:"total"`
		Links          struct {
			Self string `json:"self"`
			Next string `json:"next"`
			Prev string `json:"prev"`
		} `json:"_links"`
	} `json:"_metadata"`
	Partnerships []partnershipRow `json:"partnerships"`
}

// partnershipRow is one partnership of the Partnerships API's JSON.
type partnershipRow struct {
	Advertiser struct {
		ID      flexInt `json:"id"`
		Network flexInt `json:"network"`
		Name    string  `json:"name"`
		Status  string  `json:"status"`
	} `json:"advertiser"`
	Status          string   `json:"status"`
	StatusUpdatedAt flexTime `json:"status_update_datetime"`
	ApprovedAt      flexTime `json:"approve_datetime"`
	AppliedAt       flexTime `json:"apply_datetime"`
}

func (p *partnershipsPage) partnerships(st *PullStats) []Partnership {
	out := make([]Partnership, 0, len(p.Partnerships))
	for i := range p.Partnerships {
		r, ok := p.Partnerships[i].partnership()
		if !ok {
			st.Skipped++
			continue
		}
		out = append(out, r)
	}
	return out
}

// partnership reads a row; ok=false for a row without a MID, which cannot
// be keyed.
func (r *partnershipRow) partnership() (Partnership, bool) {
	if r.Advertiser.ID <= 0 {
		return Partnership{}, false
	}
	// Bounded here, where Rakuten's data enters: whatever it sends, a
	// relationship stays far below DynamoDB's item limit.
	return Partnership{
		AdvertiserID:     int64(r.Advertiser.ID),
		Network:          int(r.Advertiser.Network),
		Name:             merchantsync.Clip(strings.TrimSpace(r.Advertiser.Name), merchantsync.MaxNameBytes),
		AdvertiserStatus: merchantsync.Clip(r.Advertiser.Status, merchantsync.MaxStatusBytes),
		Status:           merchantsync.Clip(r.Status, merchantsync.MaxStatusBytes),
		StatusUpdatedAt:  time.Time(r.StatusUpdatedAt),
		ApprovedAt:       time.Time(r.ApprovedAt),
		AppliedAt:        time.Time(r.AppliedAt),
	}, true
}

// decodePartnerships reads a 2xx page. A 2xx that is not JSON (an XML fault
// or an HTML page from a proxy) or is malformed JSON is an error, never an
// empty page: an empty pull would look like every merchant left.
func decodePartnerships(resp *response) (*partnershipsPage, error) {
	var p partnershipsPage
	if err := decodeInto(resp, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// decodeInto decodes a 2xx JSON body into v; every error is an *Error that
// quotes nothing of the body.
func decodeInto(resp *response, v any) error {
	if err := expectJSON(resp); err != nil {
		return err
	}
	if err := jsonv2.Unmarshal(resp.body, v, pageDecoding); err != nil {
		// Not wrapped: the decoder's error may quote the body (flexInt quotes
		// the value), which can echo a token. Keep only where it failed.
		msg := "malformed partnerships JSON"
		var se *jsontext.SyntacticError
		var me *jsonv2.SemanticError
		switch {
		case errors.As(err, &se):
			msg += fmt.Sprintf(" (at byte %d)", se.ByteOffset)
		case errors.As(err, &me):
			msg += fmt.Sprintf(" (at byte %d)", me.ByteOffset)
		}
		return &Error{Kind: KindBadResponse, HTTPStatus: resp.status, Message: msg}
	}
	return nil
}

// pageDecoding decodes partnership pages with encoding/json/v2 (through
// its mirror module, which aliases the standard library from Go 1.27) set
// to read what encoding/json reads: names in any case (but, unlike v2's
// default folding, with their underscores and dashes), duplicate names (the
// last wins, merged into the first as encoding/json merges: a repeated
// "partnerships" array decodes into the elements of the first) and invalid
// UTF-8 (replaced). A sync decodes every merchant
// on every run, and v2 halved the time of decoding a page of 200
// (BenchmarkDecodePartnershipsPage). FuzzPartnershipsPage checks that both
// read every page alike.
var pageDecoding = jsonv2.JoinOptions(
	jsonv2.MatchCaseInsensitiveNames(true),
	jsonv1.MatchCaseSensitiveDelimiter(true),
	jsontext.AllowDuplicateNames(true),
	jsonv1.MergeWithLegacySemantics(true),
	jsontext.AllowInvalidUTF8(true),
)

// expectJSON checks a 2xx body is a JSON object, classifying anything else.
func expectJSON(resp *response) error {
	switch sniff(resp.body) {
	case '{':
		return nil
	case '<':
		return unexpectedMarkup(resp)
	}
	ct := resp.header.Get("Content-Type")
	return &Error{Kind: KindBadResponse, HTTPStatus: resp.status, Message: "expected JSON, got " + orUnknown(ct)}
}

// unexpectedMarkup types a 2xx XML or HTML body: a gateway fault keeps its
// meaning (an expired token is still an expired token), anything else is a
// bad response.
func unexpectedMarkup(resp *response) error {
	b := parseBody(resp.body)
	if b.fault != "" {
		status := http.StatusForbidden
		switch {
		case b.fault == "amt":
			status = http.StatusTooManyRequests
		case b.code >= "900901" && b.code <= "900904":
			status = http.StatusUnauthorized
		}
		e := classify(status, resp.header, resp.body)
		e.HTTPStatus = resp.status
		return e
	}
	return &Error{Kind: KindBadResponse, HTTPStatus: resp.status, Code: b.code,
		Message: "unexpected " + b.format + " response: " + truncate(b.message)}
}

func truncate(s string) string { return scrub(s, nil) }

func orUnknown(s string) string {
	if s == "" {
		return "no content type"
	}
	return s
}
