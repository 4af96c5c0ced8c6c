package app

import (
	"context"
	"io"
	"strings"
	"testing"
)

func TestLoadValidatesEnvironment(t *testing.T) {
	base := map[string]string{"TABLE_NAME": "t", "AWS_REGION": "us-east-1"}
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
		check   func(Config) bool
	}{
		{"defaults", nil, "", func(c Config) bool {
			return c.RakutenBaseURL == "https://api.linksynergy.com" && !c.RakutenByStatus && c.SyncHourUTC == 3
		}},
		{"pull by status", map[string]string{"RAKUTEN_PULL_BY_STATUS": "true"}, "", func(c Config) bool { return c.RakutenByStatus }},
		{"pull by status off", map[string]string{"RAKUTEN_PULL_BY_STATUS": "false"}, "", func(c Config) bool { return !c.RakutenByStatus }},
		{"pull by status typo", map[string]string{"RAKUTEN_PULL_BY_STATUS": "yes please"}, "RAKUTEN_PULL_BY_STATUS", nil},
		{"rate", map[string]string{"RAKUTEN_REQUESTS_PER_MINUTE": "5"}, "", func(c Config) bool { return c.RakutenPerMinute == 5 }},
		{"bad rate", map[string]string{"RAKUTEN_REQUESTS_PER_MINUTE": "-1"}, "RAKUTEN_REQUESTS_PER_MINUTE", nil},
		{"bad hour", map[string]string{"SYNC_HOUR_UTC": "24"}, "SYNC_HOUR_UTC", nil},
		{"no table", map[string]string{"TABLE_NAME": ""}, "TABLE_NAME", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string {
				if v, ok := tt.env[k]; ok {
					return v
				}
				return base[k]
			}
			c, err := Load(context.Background(), getenv, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || !tt.check(c) {
				t.Fatalf("Load = %+v, %v", c, err)
			}
		})
	}
}
