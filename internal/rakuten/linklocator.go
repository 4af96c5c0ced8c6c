package rakuten

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// LinkLocatorStatuses returns every Link Locator application status
// (getMerchByAppStatus takes one per call).
func LinkLocatorStatuses() []string {
	return []string{
		"approved", "approval extended", "wait", "temp removed",
		"temp rejected", "perm removed", "perm rejected", "self removed",
	}
}

// linkLocatorResponse is getMerchByAppStatus's XML. Tags without a
// namespace match Rakuten's ns1 elements whatever prefix they use.
type linkLocatorResponse struct {
	Returns []struct {
		ApplicationStatus string `xml:"applicationStatus"`
		MID               string `xml:"mid"`
		Name              string `xml:"name"`
	} `xml:"return"`
}

// MerchantsByAppStatus is the Link Locator fallback: GET
// /linklocator/1.0/getMerchByAppStatus/{status}, one unpaged XML call per
// status. Status is the Link Locator applicationStatus; Network is 0
// because Link Locator does not say. The token goes in the Authorization
// header (one client passes ?token=; a header never lands in access logs).
func (c *Client) MerchantsByAppStatus(ctx context.Context, ts *TokenSource, status string) ([]Partnership, error) {
	status = strings.TrimSpace(status)
	if status == "" {
		return nil, &Error{Kind: KindInvalidRequest, Message: "status is required"}
	}
	var st PullStats
	resp, err := c.get(ctx, ts, "/linklocator/1.0/getMerchByAppStatus/"+url.PathEscape(status), "application/xml", &st)
	if err != nil {
		return nil, err
	}
	out, err := decodeLinkLocator(resp, status)
	return out, ts.scrub(err)
}

func decodeLinkLocator(resp *response, status string) ([]Partnership, error) {
	switch sniff(resp.body) {
	case '<':
	case '{':
		b := parseBody(resp.body)
		return nil, &Error{Kind: KindBadResponse, HTTPStatus: resp.status, Code: b.code, Message: "expected XML, got JSON: " + truncate(b.message)}
	default:
		return nil, &Error{Kind: KindBadResponse, HTTPStatus: resp.status, Message: "expected XML, got " + orUnknown(resp.header.Get("Content-Type"))}
	}
	if b := parseBody(resp.body); b.fault != "" || b.format == "html" {
		return nil, unexpectedMarkup(resp)
	}
	var r linkLocatorResponse
	if err := xml.Unmarshal(resp.body, &r); err != nil {
		// Not wrapped: the decoder's error quotes element names from the
		// body, which can echo a token. Keep only where it failed.
		msg := "malformed Link Locator XML"
		var se *xml.SyntaxError
		if errors.As(err, &se) {
			msg += fmt.Sprintf(" (line %d)", se.Line)
		}
		return nil, &Error{Kind: KindBadResponse, HTTPStatus: resp.status, Message: msg}
	}
	out := make([]Partnership, 0, len(r.Returns))
	for _, m := range r.Returns {
		mid, err := strconv.ParseInt(strings.TrimSpace(m.MID), 10, 64)
		if err != nil || mid <= 0 {
			continue
		}
		p := Partnership{AdvertiserID: mid, Name: strings.TrimSpace(m.Name), Status: strings.TrimSpace(m.ApplicationStatus)}
		if p.Status == "" {
			p.Status = status
		}
		out = append(out, p)
	}
	return out, nil
}
