package merchantsync

import "testing"

func TestParseAffiliateID(t *testing.T) {
	tests := []struct {
		in, want, code string
	}{
		{in: "lMh2Xiq9xN0", want: "lMh2Xiq9xN0"},
		{in: "  GSFNlAS0O*w ", want: "GSFNlAS0O*w"},
		{in: "w9s/SuZO5*M", want: "w9s/SuZO5*M"},
		{in: "GSFNlAS0O%2Aw", want: "GSFNlAS0O*w"},
		{in: "https://click.linksynergy.com/link?id=lMh2Xiq9xN0&offerid=1234.5&type=3", want: "lMh2Xiq9xN0"},
		{in: "https://click.linksynergy.com/deeplink?id=GSFNlAS0O%2Aw&mid=2149&murl=https%3A%2F%2Fx.com", want: "GSFNlAS0O*w"},
		{in: "https://click.linksynergy.com/link?offerid=1&id=w9s%2FSuZO5%2AM", want: "w9s/SuZO5*M"},
		{in: "4022211", code: ELooksLikeSiteID},
		{in: "SID4022211", code: ELooksLikeSiteID},
		{in: "sid 4022211", code: ELooksLikeSiteID},
		{in: "https://click.linksynergy.com/link?id=4022211", code: ELooksLikeSiteID},
		{in: "", code: EInvalid},
		{in: "short", code: EInvalid},
		{in: "lMh2Xiq9xN0x", code: EInvalid},
		{in: "lMh2Xiq9x-0", code: EInvalid},
		{in: "https://click.linksynergy.com/link?offerid=1", code: EInvalid},
		{in: "%zz", code: EInvalid},
	}
	for _, tt := range tests {
		got, err := ParseAffiliateID(tt.in)
		if tt.code != "" {
			if ErrorCode(err) != tt.code {
				t.Errorf("ParseAffiliateID(%q) error code = %q (%v), want %q", tt.in, ErrorCode(err), err, tt.code)
			}
			if ErrorField(err) != "affiliateId" || ErrorMessage(err) == "" {
				t.Errorf("ParseAffiliateID(%q): want field affiliateId and a message, got %v", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseAffiliateID(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestParseSiteID(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"4022211", "4022211", true},
		{"SID4022211", "4022211", true},
		{" sid 4022211 ", "4022211", true},
		{"40222a1", "", false},
		{"", "", false},
		{"-1", "", false},
		{"1234567890123", "", false},
	}
	for _, tt := range tests {
		got, err := ParseSiteID(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSiteID(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestNormalizeRakuten(t *testing.T) {
	tests := []struct {
		raw       string
		want      Status
		permanent bool
	}{
		{"active", StatusJoined, false},
		{"Approved", StatusJoined, false},
		{"extended", StatusJoined, false},
		{"approval extended", StatusJoined, false},
		{"pending", StatusPending, false},
		{"wait", StatusPending, false},
		{"temp-decline", StatusDeclined, false},
		{"temp rejected", StatusDeclined, false},
		{"PERMANENT_DECLINE", StatusDeclined, true},
		{"perm rejected", StatusDeclined, true},
		{"temp-remove", StatusRemoved, false},
		{"temp removed", StatusRemoved, false},
		{"permanent-remove", StatusRemoved, true},
		{"perm removed", StatusRemoved, true},
		{"self-removed", StatusLeft, false},
		{"self removed", StatusLeft, false},
		{"activ", StatusUnknown, false},
		{"", StatusUnknown, false},
		{"joined", StatusUnknown, false},
	}
	for _, tt := range tests {
		n := NormalizeRakuten(tt.raw)
		if n.Status != tt.want || n.Permanent != tt.permanent || n.Raw != tt.raw {
			t.Errorf("NormalizeRakuten(%q) = %+v, want %s permanent=%v", tt.raw, n, tt.want, tt.permanent)
		}
	}
}
