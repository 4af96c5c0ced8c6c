package merchantsync

import (
	"net/url"
	"regexp"
	"strings"
)

var (
	affiliateIDPattern = regexp.MustCompile(`^[A-Za-z0-9*/]{11}$`)
	siteIDPattern      = regexp.MustCompile(`^[0-9]{1,12}$`)
	// A Site ID as Rakuten's dashboard shows it: 7 digits, maybe "SID" first.
	looksLikeSiteID = regexp.MustCompile(`(?i)^(sid)?\s*[0-9]{5,9}$`)
)

const affiliateIDHelp = "Your Affiliate ID is the 11-character id= value of any Rakuten link you have created " +
	"(for example lMh2Xiq9xN0 in https://click.linksynergy.com/link?id=lMh2Xiq9xN0&offerid=…). " +
	"You can paste the whole link and we will take the id from it."

// ParseAffiliateID validates a Rakuten Affiliate ID ("encrypted ID"). It
// accepts the bare 11-character value, its URL-encoded form, or a whole
// pasted Rakuten link, from which it takes the id= parameter.
func ParseAffiliateID(in string) (string, error) {
	s := strings.TrimSpace(in)
	if s == "" {
		return "", FieldError(EInvalid, "affiliateId", "Affiliate ID is required. "+affiliateIDHelp)
	}
	if len(s) > 2048 {
		return "", FieldError(EInvalid, "affiliateId", "Affiliate ID is too long. "+affiliateIDHelp)
	}
	if looksLikeSiteID.MatchString(s) {
		return "", FieldError(ELooksLikeSiteID, "affiliateId",
			"This looks like your Site ID (SID), a number of about 7 digits. The Affiliate ID is different: "+affiliateIDHelp)
	}
	if strings.Contains(s, "id=") {
		id, err := affiliateIDFromLink(s)
		if err != nil {
			return "", err
		}
		s = id
	} else if strings.Contains(s, "%") {
		dec, err := url.QueryUnescape(s)
		if err != nil {
			return "", FieldError(EInvalid, "affiliateId", "Affiliate ID has a broken %-escape. "+affiliateIDHelp)
		}
		s = dec
		// Escapes can hide a Site ID ("sid1234567%38"): check the decoded
		// value too, or the result would not parse again.
		if looksLikeSiteID.MatchString(s) {
			return "", FieldError(ELooksLikeSiteID, "affiliateId",
				"This looks like your Site ID (SID), a number of about 7 digits. The Affiliate ID is different: "+affiliateIDHelp)
		}
	}
	if !affiliateIDPattern.MatchString(s) {
		return "", FieldError(EInvalid, "affiliateId",
			"Affiliate ID must be 11 characters of letters, digits, * or /. "+affiliateIDHelp)
	}
	return s, nil
}

// affiliateIDFromLink extracts id= from a pasted Rakuten link or query string.
func affiliateIDFromLink(s string) (string, error) {
	raw := s
	if i := strings.IndexByte(s, '?'); i >= 0 {
		raw = s[i+1:]
	}
	if i := strings.IndexByte(raw, '#'); i >= 0 {
		raw = raw[:i]
	}
	q, err := url.ParseQuery(raw)
	id := q.Get("id")
	if err != nil && id == "" {
		return "", FieldError(EInvalid, "affiliateId", "We could not read the id= value of that link. "+affiliateIDHelp)
	}
	if id == "" {
		return "", FieldError(EInvalid, "affiliateId", "That link has no id= value. "+affiliateIDHelp)
	}
	if looksLikeSiteID.MatchString(id) {
		return "", FieldError(ELooksLikeSiteID, "affiliateId",
			"The id= in that link looks like a Site ID. "+affiliateIDHelp)
	}
	return id, nil
}

// ParseSiteID validates a Rakuten Site ID (SID): digits only; a leading
// "SID" as the dashboard shows it is accepted and dropped.
func ParseSiteID(in string) (string, error) {
	s := strings.TrimSpace(in)
	if len(s) >= 3 && strings.EqualFold(s[:3], "sid") {
		s = strings.TrimSpace(s[3:])
	}
	if !siteIDPattern.MatchString(s) {
		return "", FieldError(EInvalid, "siteId",
			"Site ID must be the digits of your Rakuten Site ID (the number after SID on your dashboard, e.g. 4022211).")
	}
	return s, nil
}
