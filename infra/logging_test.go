package infra

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/merchantsync/merchantsync/internal/app"
	"github.com/merchantsync/merchantsync/internal/dynamo/dynamotest"
	"github.com/merchantsync/merchantsync/internal/syncer"
	"github.com/merchantsync/merchantsync/internal/testenv"
)

// lambdaLevels are Lambda's log levels, least severe first.
var lambdaLevels = []string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}

// lambdaKeeps is Lambda's application log-level filter for one JSON line,
// as the Lambda Developer Guide ("Log-level filtering") describes it: the
// line's level is its "level" field, or INFO when that is missing or not a
// level, or when the line has no valid RFC 3339 "timestamp"; the line is
// kept when its level is at least the function's ApplicationLogLevel.
func lambdaKeeps(line map[string]any, applicationLogLevel string) bool {
	level := "INFO"
	l, _ := line["level"].(string)
	ts, _ := line["timestamp"].(string)
	if _, err := time.Parse(time.RFC3339Nano, ts); err == nil && slices.Contains(lambdaLevels, strings.ToUpper(l)) {
		level = strings.ToUpper(l)
	}
	return slices.Index(lambdaLevels, level) >= slices.Index(lambdaLevels, strings.ToUpper(applicationLogLevel))
}

// TestLambdaKeepsEveryMetricLine runs the scheduler function as each
// LogLevel of the template configures it (its environment, and the
// AWS_LAMBDA_LOG_LEVEL Lambda derives from ApplicationLogLevel), and passes
// what it writes through Lambda's filter. Every EMF line must survive (the
// failure-rate alarm is built on them), every log line the code writes must
// survive, and the code must write none below LogLevel.
func TestLambdaKeepsEveryMetricLine(t *testing.T) {
	cfn := translateTemplate(t, "prod")
	table := dynamotest.NewTable(t, dynamotest.Client(t))
	qURL, _ := testenv.NewQueue(t, testenv.QueueOptions{})
	t.Setenv("AWS_REGION", iamRegion)
	t.Setenv("AWS_ACCESS_KEY_ID", "local")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "local")
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamotest.Endpoint(t))
	t.Setenv("AWS_ENDPOINT_URL_SQS", testenv.MotoEndpoint(t))
	fn := m(m(m(cfn["Resources"])["SchedulerFunction"])["Properties"])
	levels := list(m(m(cfn["Parameters"])["LogLevel"])["AllowedValues"])
	if len(levels) == 0 {
		t.Fatal("the LogLevel parameter has no AllowedValues")
	}
	for _, level := range levels {
		level := fmt.Sprint(level)
		t.Run(level, func(t *testing.T) {
			s := newStack(t, cfn, map[string]string{"Stage": "prod", "LogLevel": level}, resources{table: table, queueURL: qURL})
			env := functionEnvironment(t, cfn, s, "SchedulerFunction")
			appLevel := s.mustResolve(t, "ApplicationLogLevel", m(fn["LoggingConfig"])["ApplicationLogLevel"])
			env["AWS_LAMBDA_LOG_LEVEL"] = appLevel
			out, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			ctx := context.Background()
			c, err := app.Load(ctx, func(k string) string { return env[k] }, out)
			if err != nil {
				t.Fatal(err)
			}
			probes := []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError}
			for _, l := range probes {
				c.Logger.Log(ctx, l, "probe", "probe", l.String())
			}
			if _, err := c.Scheduler().Handle(ctx, syncer.ScheduleEvent{ScheduledTime: "2026-11-27T03:00:00Z"}); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(out.Name())
			if err != nil {
				t.Fatal(err)
			}
			emf, kept := 0, map[string]bool{}
			for _, raw := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				var line map[string]any
				if err := json.Unmarshal([]byte(raw), &line); err != nil {
					t.Fatalf("not a JSON line: %s", raw)
				}
				keep := lambdaKeeps(line, appLevel)
				switch p, isProbe := line["probe"].(string); {
				case line["_aws"] != nil:
					emf++
					if !keep {
						t.Errorf("ApplicationLogLevel %s drops the EMF line, and the alarms on its metrics go silent: %s", appLevel, raw)
					}
				case isProbe:
					kept[p] = keep
					if !keep {
						t.Errorf("ApplicationLogLevel %s drops a line the code logged: %s", appLevel, raw)
					}
				}
			}
			if emf == 0 {
				t.Fatalf("the scheduler wrote no EMF line:\n%s", b)
			}
			for _, l := range probes {
				if _, wrote := kept[l.String()]; wrote != (l >= c.LogLevel) {
					t.Errorf("LogLevel %s: a %s line written: %v", level, l, wrote)
				}
			}
		})
	}
}
