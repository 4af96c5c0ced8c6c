package webhook

import (
	"net/netip"
)

// Policy decides which receivers a webhook may be sent to. Its zero value is
// the deployed policy: https only, public addresses only.
type Policy struct {
	// AllowLoopbackHTTP lets the local development stack deliver to a
	// receiver on the same machine: http or https URLs whose host is a
	// loopback address or localhost, and connections to loopback addresses
	// (whatever name resolved to them). Every other refusal stays, NAT64
	// forms of loopback included. Deployed configuration never sets it.
	AllowLoopbackHTTP bool
}

// rangeRule is one address range a webhook may not connect to, and how an
// error names it.
type rangeRule struct {
	prefix netip.Prefix
	what   string
}

func rules(what string, prefixes ...string) []rangeRule {
	out := make([]rangeRule, len(prefixes))
	for i, p := range prefixes {
		out[i] = rangeRule{netip.MustParsePrefix(p), what}
	}
	return out
}

// blockedV4 is every IPv4 range that is not the ordinary public internet:
// the whole IANA IPv4 Special-Purpose Address Registry (even its few
// globally reachable entries, like 192.0.0.9, are no webhook receiver's
// address), multicast and the reserved 240.0.0.0/4. The first match names
// the range in the error.
var blockedV4 = concat(
	rules("the unspecified address", "0.0.0.0/32"),
	rules("a loopback address", "127.0.0.0/8"),
	rules("a private address (RFC 1918)", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"),
	rules("a link-local address (this includes the cloud metadata service)", "169.254.0.0/16"),
	rules("a shared carrier-grade NAT address (100.64.0.0/10)", "100.64.0.0/10"),
	rules("the broadcast address", "255.255.255.255/32"),
	rules("an address of 0.0.0.0/8 (this network)", "0.0.0.0/8"),
	rules("a multicast address", "224.0.0.0/4"),
	rules("a reserved address (240.0.0.0/4)", "240.0.0.0/4"),
	rules("a benchmarking address (198.18.0.0/15)", "198.18.0.0/15"),
	rules("a documentation address (TEST-NET)", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"),
	rules("an IETF protocol assignment (192.0.0.0/24)", "192.0.0.0/24"),
	rules("a 6to4 relay anycast address (deprecated)", "192.88.99.0/24"),
	rules("an anycast infrastructure address (AS112, AMT)", "192.31.196.0/24", "192.52.193.0/24", "192.175.48.0/24"),
)

// nat64 is the well-known NAT64 prefix (RFC 6052): an address in it stands
// for the IPv4 address in its last four bytes, which is what gets checked.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// globalUnicast6 holds every public IPv6 address; anything outside it is
// refused even when no rule below names it.
var globalUnicast6 = netip.MustParsePrefix("2000::/3")

// blockedV6 is every IPv6 range a webhook may not reach. IPv4-mapped
// addresses (::ffff:a.b.c.d) are unmapped and checked as IPv4 before these.
var blockedV6 = concat(
	rules("the unspecified address", "::/128"),
	rules("a loopback address", "::1/128"),
	rules("an IPv4-compatible IPv6 address (deprecated)", "::/96"),
	rules("a local-use NAT64 address", "64:ff9b:1::/48"),
	rules("a discard-only address", "100::/64"),
	rules("a unique local address (fc00::/7, this includes the cloud metadata service)", "fc00::/7"),
	rules("a link-local address", "fe80::/10"),
	rules("a site-local address (deprecated)", "fec0::/10"),
	rules("a multicast address", "ff00::/8"),
	rules("an IETF protocol assignment (2001::/23, this includes Teredo)", "2001::/23"),
	rules("a documentation address", "2001:db8::/32", "3fff::/20"),
	rules("a 6to4 address (deprecated; it can stand for any IPv4 address)", "2002::/16"),
	rules("an anycast infrastructure address (AS112)", "2620:4f:8000::/48"),
)

func concat(lists ...[]rangeRule) []rangeRule {
	var out []rangeRule
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// CheckAddr returns a *URLError with CodeURLPrivate when p forbids
// connecting to a, and nil when a is a public address (or a loopback one
// that p allows). The delivery client runs it on every address it is about
// to connect to, after DNS resolution.
func CheckAddr(a netip.Addr, p Policy) error {
	if why := addrProblem(a, p); why != "" {
		return &URLError{Code: CodeURLPrivate, Message: a.String() + " is " + why + "; webhooks go only to public internet addresses"}
	}
	return nil
}

// addrProblem says why a is refused, or returns "" when it is allowed.
func addrProblem(a netip.Addr, p Policy) string {
	switch {
	case !a.IsValid():
		return "not an IP address"
	case a.Zone() != "":
		return "an address with an interface zone"
	case a.Is4In6():
		a = a.Unmap()
	case nat64.Contains(a):
		b := a.As16()
		v4 := netip.AddrFrom4([4]byte(b[12:]))
		// The IPv4 address is reached through a translator, never on this
		// machine: loopback is refused here even for local development.
		if why := addrProblem(v4, Policy{}); why != "" {
			return "a NAT64 address standing for " + v4.String() + ", " + why
		}
		return ""
	}
	if p.AllowLoopbackHTTP && a.IsLoopback() {
		return ""
	}
	list := blockedV6
	if a.Is4() {
		list = blockedV4
	}
	for _, r := range list {
		if r.prefix.Contains(a) {
			return r.what
		}
	}
	if a.Is6() && !globalUnicast6.Contains(a) {
		return "not a global unicast IPv6 address"
	}
	return ""
}
