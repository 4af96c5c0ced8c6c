package webhook

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

var deployed = Policy{}
var localDev = Policy{AllowLoopbackHTTP: true}

// TestCheckAddr covers every address class: public ones pass, every
// special-purpose range is refused, also in IPv4-mapped and NAT64 form.
func TestCheckAddr(t *testing.T) {
	cases := []struct {
		addr    string
		allowed bool   // under the deployed policy
		dev     bool   // under AllowLoopbackHTTP
		why     string // part of the message when refused
	}{
		// public
		{"8.8.8.8", true, true, ""},
		{"1.1.1.1", true, true, ""},
		{"93.184.215.14", true, true, ""},
		{"100.63.255.255", true, true, ""}, // just below CGNAT
		{"100.128.0.0", true, true, ""},    // just above CGNAT
		{"172.15.255.255", true, true, ""}, // just below 172.16/12
		{"172.32.0.0", true, true, ""},     // just above
		{"2606:4700:4700::1111", true, true, ""},
		{"2a00:1450:4001:80b::200e", true, true, ""},
		{"::ffff:8.8.8.8", true, true, ""},   // IPv4-mapped public
		{"64:ff9b::808:808", true, true, ""}, // NAT64 of 8.8.8.8
		// IPv4 special purpose
		{"0.0.0.0", false, false, "unspecified"},
		{"0.1.2.3", false, false, "0.0.0.0/8"},
		{"10.0.0.1", false, false, "private"},
		{"10.255.255.255", false, false, "private"},
		{"172.16.0.1", false, false, "private"},
		{"172.31.255.255", false, false, "private"},
		{"192.168.1.1", false, false, "private"},
		{"100.64.0.1", false, false, "carrier-grade NAT"},
		{"100.127.255.255", false, false, "carrier-grade NAT"},
		{"127.0.0.1", false, true, "loopback"},
		{"127.255.255.254", false, true, "loopback"},
		{"169.254.169.254", false, false, "metadata"},
		{"169.254.0.1", false, false, "link-local"},
		{"224.0.0.1", false, false, "multicast"},
		{"239.255.255.250", false, false, "multicast"},
		{"255.255.255.255", false, false, "broadcast"},
		{"240.0.0.1", false, false, "reserved"},
		{"198.18.0.1", false, false, "benchmarking"},
		{"198.19.255.255", false, false, "benchmarking"},
		{"192.0.2.1", false, false, "documentation"},
		{"198.51.100.1", false, false, "documentation"},
		{"203.0.113.1", false, false, "documentation"},
		{"192.0.0.9", false, false, "IETF"},
		{"192.88.99.1", false, false, "6to4"},
		{"192.175.48.1", false, false, "anycast"},
		// IPv6 special purpose
		{"::", false, false, "unspecified"},
		{"::1", false, true, "loopback"},
		{"fe80::1", false, false, "link-local"},
		{"fd00:ec2::254", false, false, "metadata"},
		{"fc00::1", false, false, "unique local"},
		{"fdff:ffff::1", false, false, "unique local"},
		{"fec0::1", false, false, "site-local"},
		{"ff02::1", false, false, "multicast"},
		{"2001:db8::1", false, false, "documentation"},
		{"3fff::1", false, false, "documentation"},
		{"2001:0:4136:e378::1", false, false, "Teredo"},
		{"2002:7f00:1::1", false, false, "6to4"},
		{"100::1", false, false, "discard"},
		{"64:ff9b:1::1", false, false, "local-use NAT64"},
		{"4000::1", false, false, "global unicast"},
		{"5f00::1", false, false, "global unicast"},
		// IPv4-mapped, IPv4-compatible and NAT64 forms of refused addresses
		{"::ffff:127.0.0.1", false, true, "loopback"},
		{"::ffff:10.0.0.1", false, false, "private"},
		{"::ffff:169.254.169.254", false, false, "metadata"},
		{"::ffff:0.0.0.0", false, false, "unspecified"},
		{"::ffff:7f00:1", false, true, "loopback"},
		{"::127.0.0.1", false, false, "IPv4-compatible"},
		{"::10.0.0.1", false, false, "IPv4-compatible"},
		{"::8.8.8.8", false, false, "IPv4-compatible"},
		{"64:ff9b::7f00:1", false, false, "NAT64 address standing for 127.0.0.1"},
		{"64:ff9b::a00:1", false, false, "private"},
		{"64:ff9b::a9fe:a9fe", false, false, "metadata"},
		{"64:ff9b::c0a8:101", false, false, "192.168.1.1"},
		{"::ffff:0:7f00:1", false, false, "global unicast"}, // IPv4-translated (SIIT) form
		// zones
		{"fe80::1%eth0", false, false, "zone"},
		{"2606:4700::1%eth0", false, false, "zone"},
	}
	for _, c := range cases {
		a := netip.MustParseAddr(c.addr)
		for _, pc := range []struct {
			p    Policy
			want bool
		}{{deployed, c.allowed}, {localDev, c.dev}} {
			err := CheckAddr(a, pc.p)
			if (err == nil) != pc.want {
				t.Errorf("CheckAddr(%s, %+v) = %v, want allowed=%v", c.addr, pc.p, err, pc.want)
				continue
			}
			if err == nil {
				continue
			}
			var ue *URLError
			if !errors.As(err, &ue) || ue.Code != CodeURLPrivate || !strings.Contains(ue.Message, c.why) {
				t.Errorf("CheckAddr(%s) = %v, want code %s mentioning %q", c.addr, err, CodeURLPrivate, c.why)
			}
		}
	}
	if CheckAddr(netip.Addr{}, localDev) == nil {
		t.Error("the zero Addr is allowed")
	}
}

func TestValidateURL(t *testing.T) {
	cases := []struct {
		url  string
		code string // "" = valid; deployed policy
		dev  string // under AllowLoopbackHTTP
	}{
		{"https://hooks.example.com/merchantsync", "", ""},
		{"https://hooks.example.com", "", ""},
		{"https://HOOKS.Example.COM./x?token=abc", "", ""},
		{"HTTPS://hooks.example.com/", "", ""},
		{"https://hooks.example.com:8443/x", "", ""},
		{"https://8.8.8.8/x", "", ""},
		{"https://[2606:4700:4700::1111]:443/x", "", ""},
		{"https://xn--bcher-kva.example/", "", ""},
		{"https://a-b.c0.example.com/", "", ""},

		{"", CodeURLInvalid, CodeURLInvalid},
		{"hooks.example.com/x", CodeURLInvalid, CodeURLInvalid},
		{"//hooks.example.com/x", CodeURLInvalid, CodeURLInvalid},
		{"https:hooks.example.com", CodeURLInvalid, CodeURLInvalid},
		{"https:///x", CodeURLInvalid, CodeURLInvalid},
		{"https://hooks.example.com/a b", CodeURLInvalid, CodeURLInvalid},
		{"https://hooks.example.com/\x00", CodeURLInvalid, CodeURLInvalid},
		{"https://bücher.example/", CodeURLInvalid, CodeURLInvalid},
		{"https://hooks.example.com/#frag", CodeURLInvalid, CodeURLInvalid},
		{"https://hooks.example.com:0/", CodeURLInvalid, CodeURLInvalid},
		{"https://hooks.example.com:65536/", CodeURLInvalid, CodeURLInvalid},
		{"https://hooks.example.com:/", CodeURLInvalid, CodeURLInvalid},
		{"https://hooks.example.com:x/", CodeURLInvalid, CodeURLInvalid},
		{"https://hooks_x.example.com/", CodeURLInvalid, CodeURLInvalid},
		{"https://-hooks.example.com/", CodeURLInvalid, CodeURLInvalid},
		{"https://hooks..example.com/", CodeURLInvalid, CodeURLInvalid},
		{"https://" + strings.Repeat("a", 64) + ".example.com/", CodeURLInvalid, CodeURLInvalid},
		{"https://hooks.example.com/" + strings.Repeat("a", MaxURLLength), CodeURLInvalid, CodeURLInvalid},
		// IPv4 addresses in the forms some resolvers accept
		{"https://2130706433/", CodeURLInvalid, CodeURLInvalid},
		{"https://127.1/", CodeURLInvalid, CodeURLInvalid},
		{"https://0x7f.0.0.1/", CodeURLInvalid, CodeURLInvalid},
		{"https://0x7f000001/", CodeURLInvalid, CodeURLInvalid},
		{"https://017700000001/", CodeURLInvalid, CodeURLInvalid},
		{"https://[fe80::1%25eth0]/", CodeURLInvalid, CodeURLInvalid},

		{"http://hooks.example.com/", CodeURLNotHTTPS, CodeURLNotHTTPS},
		{"ftp://hooks.example.com/", CodeURLNotHTTPS, CodeURLNotHTTPS},
		{"file:///etc/passwd", CodeURLInvalid, CodeURLInvalid},
		{"gopher://hooks.example.com/", CodeURLNotHTTPS, CodeURLNotHTTPS},
		{"http://8.8.8.8/", CodeURLNotHTTPS, CodeURLNotHTTPS},

		{"https://user:pass@hooks.example.com/", CodeURLCredentials, CodeURLCredentials},
		{"https://user@hooks.example.com/", CodeURLCredentials, CodeURLCredentials},
		{"https://:@hooks.example.com/", CodeURLCredentials, CodeURLCredentials},
		{"https://hooks.example.com\\@127.0.0.1/", CodeURLInvalid, CodeURLInvalid}, // net/url refuses the backslash in its userinfo

		{"https://127.0.0.1/", CodeURLPrivate, ""},
		{"http://127.0.0.1:8081/hook", CodeURLNotHTTPS + "|" + CodeURLPrivate, ""},
		{"http://[::1]:8081/hook", CodeURLNotHTTPS + "|" + CodeURLPrivate, ""},
		{"http://[::ffff:127.0.0.1]:8081/hook", CodeURLNotHTTPS + "|" + CodeURLPrivate, ""},
		{"http://localhost:8081/hook", CodeURLNotHTTPS + "|" + CodeURLPrivate, ""},
		{"https://%31%32%37.0.0.1/", CodeURLInvalid, CodeURLInvalid}, // net/url refuses such escapes in a host
		{"https://10.0.0.1/", CodeURLPrivate, CodeURLPrivate},
		{"http://10.0.0.1/", CodeURLNotHTTPS + "|" + CodeURLPrivate, CodeURLPrivate},
		{"https://169.254.169.254/latest/meta-data/", CodeURLPrivate, CodeURLPrivate},
		{"https://[fd00:ec2::254]/", CodeURLPrivate, CodeURLPrivate},
		{"https://[::ffff:169.254.169.254]/", CodeURLPrivate, CodeURLPrivate},
		{"https://[::ffff:a9fe:a9fe]/", CodeURLPrivate, CodeURLPrivate},
		{"https://[64:ff9b::a9fe:a9fe]/", CodeURLPrivate, CodeURLPrivate},
		{"https://0.0.0.0/", CodeURLPrivate, CodeURLPrivate},
		{"https://[::]/", CodeURLPrivate, CodeURLPrivate},
		{"https://100.64.1.1/", CodeURLPrivate, CodeURLPrivate},
		{"https://localhost/", CodeURLPrivate, ""},
		{"https://api.localhost/", CodeURLPrivate, ""},
		{"https://printer.local/", CodeURLPrivate, CodeURLPrivate},
		{"https://ip-10-0-0-1.ec2.internal/", CodeURLPrivate, CodeURLPrivate},
		{"https://router.home.arpa/", CodeURLPrivate, CodeURLPrivate},
		{"https://metadata/", CodeURLPrivate, CodeURLPrivate},
		{"https://instance-data/", CodeURLPrivate, CodeURLPrivate},
		{"http://hooks.example.com/", CodeURLNotHTTPS, CodeURLNotHTTPS},
	}
	for _, c := range cases {
		for _, pc := range []struct {
			p    Policy
			want string
		}{{deployed, c.code}, {localDev, c.dev}} {
			err := ValidateURL(c.url, pc.p)
			var ue *URLError
			switch {
			case pc.want == "" && err != nil:
				t.Errorf("ValidateURL(%q, %+v) = %v, want nil", c.url, pc.p, err)
			case pc.want == "":
			case !errors.As(err, &ue):
				t.Errorf("ValidateURL(%q, %+v) = %v, want a *URLError %s", c.url, pc.p, err, pc.want)
			case !strings.Contains("|"+pc.want+"|", "|"+ue.Code+"|"):
				t.Errorf("ValidateURL(%q, %+v) code %s, want %s (%s)", c.url, pc.p, ue.Code, pc.want, ue.Message)
			case ue.Message == "":
				t.Errorf("ValidateURL(%q): no message", c.url)
			}
		}
	}
}

// TestValidateURLNeverEchoesSecrets: a refused URL's error repeats neither
// its password nor its query (which may hold a token).
func TestValidateURLNeverEchoesSecrets(t *testing.T) {
	for _, u := range []string{
		"https://user:hunter2-secret@hooks.example.com/x?token=tok-secret",
		"http://hooks.example.com/x?token=tok-secret",
		"https://10.0.0.1/x?token=tok-secret",
		"https://hooks.example.com/x?token=tok-secret#hunter2-secret",
		"https://hooks.example.com/x?token=tok-secret hunter2-secret",
	} {
		err := ValidateURL(u, deployed)
		if err == nil {
			t.Fatalf("ValidateURL(%q) accepted", u)
		}
		if s := err.Error(); strings.Contains(s, "secret") || strings.Contains(s, "token=") {
			t.Errorf("ValidateURL(%q) = %q repeats part of the URL", u, s)
		}
	}
}
