package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/merchantsync/merchantsync/internal/rakuten"
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
			return c.RakutenBaseURL == "https://api.linksynergy.com" && c.RakutenPullMode == rakuten.ModeAuto && c.SyncHourUTC == 3
		}},
		{"pull by status", map[string]string{"RAKUTEN_PULL_BY_STATUS": "true"}, "", func(c Config) bool { return c.RakutenPullMode == rakuten.ModeByStatus }},
		{"pull by status off", map[string]string{"RAKUTEN_PULL_BY_STATUS": "false"}, "", func(c Config) bool { return c.RakutenPullMode == rakuten.ModeAuto }},
		{"pull mode", map[string]string{"RAKUTEN_PULL_MODE": "unfiltered"}, "", func(c Config) bool { return c.RakutenPullMode == rakuten.ModeUnfiltered }},
		{"pull mode wins", map[string]string{"RAKUTEN_PULL_MODE": "auto", "RAKUTEN_PULL_BY_STATUS": "true"}, "", func(c Config) bool { return c.RakutenPullMode == rakuten.ModeAuto }},
		{"pull mode typo", map[string]string{"RAKUTEN_PULL_MODE": "bystatus"}, "RAKUTEN_PULL_MODE", nil},
		{"pull by status typo", map[string]string{"RAKUTEN_PULL_BY_STATUS": "yes please"}, "RAKUTEN_PULL_BY_STATUS", nil},
		{"rate", map[string]string{"RAKUTEN_REQUESTS_PER_MINUTE": "5"}, "", func(c Config) bool { return c.RakutenPerMinute == 5 }},
		{"bad rate", map[string]string{"RAKUTEN_REQUESTS_PER_MINUTE": "-1"}, "RAKUTEN_REQUESTS_PER_MINUTE", nil},
		{"bad hour", map[string]string{"SYNC_HOUR_UTC": "24"}, "SYNC_HOUR_UTC", nil},
		{"no table", map[string]string{"TABLE_NAME": ""}, "TABLE_NAME", nil},
		// Lambda sets AWS_LAMBDA_LOG_LEVEL from ApplicationLogLevel, which the
		// template leaves at TRACE: the level is LOG_LEVEL's.
		{"log level", map[string]string{"LOG_LEVEL": "WARN", "AWS_LAMBDA_LOG_LEVEL": "TRACE"}, "", func(c Config) bool { return c.LogLevel == slog.LevelWarn }},
		{"default log level", map[string]string{"AWS_LAMBDA_LOG_LEVEL": "TRACE"}, "", func(c Config) bool { return c.LogLevel == slog.LevelInfo }},
		{"bad log level", map[string]string{"LOG_LEVEL": "LOUD"}, "LOG_LEVEL", nil},
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
				if c.Logger == nil {
					t.Fatal("Load failed without a logger to report it with (MustLoad would panic)")
				}
				return
			}
			if err != nil || !tt.check(c) {
				t.Fatalf("Load: %v; got table %q, rate %v, pull mode %v, hour %d, log level %v",
					err, c.TableName, c.RakutenPerMinute, c.RakutenPullMode, c.SyncHourUTC, c.LogLevel)
			}
		})
	}
}

// TestLoggerLinesCarryWhatLambdaReads: Lambda's log-level filter reads a
// JSON line's "level" (TRACE, DEBUG, INFO, WARN, ERROR, FATAL) and an RFC
// 3339 "timestamp"; a line without a valid pair counts as INFO. Every line
// of the functions' logger has both, and the logger drops what is below its
// level.
func TestLoggerLinesCarryWhatLambdaReads(t *testing.T) {
	var buf bytes.Buffer
	log := NewLogger(&buf, slog.LevelDebug)
	for _, l := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
		log.Log(context.Background(), l, "probe", "want", l.String())
	}
	NewLogger(&buf, slog.LevelWarn).Info("below the level")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want the 4 probes:\n%s", len(lines), buf.String())
	}
	for _, line := range lines {
		var v struct{ Level, Timestamp, Want string }
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if v.Level != v.Want {
			t.Errorf("level %q, want %q: %s", v.Level, v.Want, line)
		}
		if _, err := time.Parse(time.RFC3339Nano, v.Timestamp); err != nil {
			t.Errorf("no RFC 3339 timestamp (%v): %s", err, line)
		}
	}
}
