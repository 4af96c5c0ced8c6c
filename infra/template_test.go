package infra

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/merchantsync/merchantsync/internal/dynamo"
)

// checkTemplate returns every broken invariant of the template.
func checkTemplate(tpl map[string]any, root string) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if tpl["Transform"] != "AWS::Serverless-2016-10-31" {
		bad("Transform must be AWS::Serverless-2016-10-31")
	}
	fns := resourcesOfType(tpl, "AWS::Serverless::Function")
	if len(fns) == 0 {
		bad("no functions")
	}
	makefile, _ := os.ReadFile(filepath.Join(root, "Makefile"))
	logGroups := resourcesOfType(tpl, "AWS::Logs::LogGroup")
	for id, fn := range fns {
		if rt := functionProp(tpl, fn, "Runtime"); rt != "provided.al2023" {
			bad("%s: runtime %v, want provided.al2023", id, rt)
		}
		if a := list(functionProp(tpl, fn, "Architectures")); len(a) != 1 || a[0] != "arm64" {
			bad("%s: architectures %v, want [arm64]", id, a)
		}
		if h := functionProp(tpl, fn, "Handler"); h != "bootstrap" {
			bad("%s: handler %v, want bootstrap", id, h)
		}
		if m(fn["Metadata"])["BuildMethod"] != "makefile" {
			bad("%s: Metadata.BuildMethod must be makefile", id)
		}
		if !strings.Contains(string(makefile), "build-"+id+":") {
			bad("%s: Makefile has no build-%s target for sam build", id, id)
		}
		dir := functionDir(id)
		if _, err := os.Stat(filepath.Join(root, dir, "main.go")); err != nil {
			bad("%s: code path %s/main.go does not exist", id, dir)
		}
		lc := m(functionProp(tpl, fn, "LoggingConfig"))
		if m(m(m(tpl["Globals"])["Function"])["LoggingConfig"])["LogFormat"] != "JSON" && lc["LogFormat"] != "JSON" {
			bad("%s: LogFormat must be JSON", id)
		}
		ref := fmt.Sprint(m(m(fn["Properties"])["LoggingConfig"])["LogGroup"])
		groupID := strings.TrimSuffix(strings.TrimPrefix(ref, "map[Ref:"), "]")
		if lg, ok := logGroups[groupID]; !ok {
			bad("%s: LoggingConfig.LogGroup must !Ref a log group of this template", id)
		} else if m(lg["Properties"])["RetentionInDays"] == nil {
			bad("%s: log group %s has no RetentionInDays", id, groupID)
		}
		for _, s := range policyStatements(fn) {
			for _, r := range list(s["Resource"]) {
				if r == "*" {
					bad("%s: IAM statement %v has Resource \"*\"", id, actions(s))
				}
			}
			for _, a := range actions(s) {
				if strings.Contains(a, "*") {
					bad("%s: IAM action %s is a wildcard", id, a)
				}
			}
		}
		problems = append(problems, checkGCTuning(tpl, id, fn)...)
		for _, ev := range m(m(fn["Properties"])["Events"]) {
			if t := m(ev)["Type"]; t == "SQS" {
				bad("%s: SQS event: SAM adds a managed policy with Resource \"*\"; use an EventSourceMapping", id)
			}
		}
	}
	problems = append(problems, checkSecretsAccess(fns)...)
	problems = append(problems, checkQueue(tpl, fns)...)
	problems = append(problems, checkTable(tpl)...)
	problems = append(problems, checkAPI(tpl)...)
	problems = append(problems, checkAlarms(tpl)...)
	problems = append(problems, checkSchedules(tpl)...)
	problems = append(problems, checkKeyPolicy(tpl)...)
	sort.Strings(problems)
	return problems
}

// checkGCTuning: a function that raises GOGC must also set a GOMEMLIMIT
// below its MemorySize, or a large sync could grow the heap past it.
func checkGCTuning(tpl map[string]any, id string, fn map[string]any) []string {
	vars := m(m(functionProp(tpl, fn, "Environment"))["Variables"])
	gogc, limit := fmt.Sprint(vars["GOGC"]), fmt.Sprint(vars["GOMEMLIMIT"])
	if vars["GOGC"] == nil || gogc == "100" {
		return nil
	}
	mib, ok := strings.CutSuffix(limit, "MiB")
	n, err := strconv.Atoi(mib)
	mem, _ := strconv.Atoi(fmt.Sprint(functionProp(tpl, fn, "MemorySize")))
	switch {
	case vars["GOMEMLIMIT"] == nil || !ok || err != nil:
		return []string{fmt.Sprintf("%s: GOGC %s needs GOMEMLIMIT in MiB, got %q", id, gogc, limit)}
	case mem == 0 || n >= mem*9/10:
		return []string{fmt.Sprintf("%s: GOMEMLIMIT %s must stay below 90%% of MemorySize %d", id, limit, mem)}
	}
	return nil
}

func checkQueue(tpl map[string]any, fns map[string]map[string]any) []string {
	var problems []string
	res := m(tpl["Resources"])
	q := m(m(res["SyncQueue"])["Properties"])
	syncFn := fns["SyncFunction"]
	if q == nil || syncFn == nil {
		return nil // nothing to check until the queue and worker exist
	}
	timeout, _ := functionProp(tpl, syncFn, "Timeout").(int)
	if vt, _ := q["VisibilityTimeout"].(int); vt < 6*timeout {
		problems = append(problems, fmt.Sprintf("SyncQueue: VisibilityTimeout %d < 6 x SyncFunction timeout %d", vt, timeout))
	}
	mrc := m(q["RedrivePolicy"])["maxReceiveCount"]
	if mrc == nil {
		problems = append(problems, "SyncQueue: no dead-letter queue")
	}
	// The worker fails a run on its last delivery; it must know which one
	// that is, and shorten retries through the same queue.
	env := m(m(m(syncFn["Properties"])["Environment"])["Variables"])
	if fmt.Sprint(env["SYNC_MAX_RECEIVES"]) != fmt.Sprint(mrc) {
		problems = append(problems, fmt.Sprintf("SyncFunction: SYNC_MAX_RECEIVES %v must equal SyncQueue's maxReceiveCount %v", env["SYNC_MAX_RECEIVES"], mrc))
	}
	if m(env["SYNC_QUEUE_URL"])["Ref"] != "SyncQueue" {
		problems = append(problems, "SyncFunction: SYNC_QUEUE_URL must be SyncQueue (retries are shortened through it)")
	}
	var found bool
	for id, esm := range resourcesOfType(tpl, "AWS::Lambda::EventSourceMapping") {
		p := m(esm["Properties"])
		if !slices.Contains(list(p["FunctionResponseTypes"]), any("ReportBatchItemFailures")) {
			problems = append(problems, id+": the event source must report batch item failures")
		}
		if m(p["FunctionName"])["Ref"] != "SyncFunction" {
			continue
		}
		found = true
		if m(m(p["ScalingConfig"])["MaximumConcurrency"])["Ref"] != "SyncMaxConcurrency" {
			problems = append(problems, "sync event source MaximumConcurrency must be the SyncMaxConcurrency parameter")
		}
	}
	if !found {
		problems = append(problems, "no event source mapping feeds the sync queue to SyncFunction")
	}
	return problems
}

func checkTable(tpl map[string]any) []string {
	var problems []string
	p := m(m(m(tpl["Resources"])["Table"])["Properties"])
	if p["BillingMode"] != "PAY_PER_REQUEST" {
		problems = append(problems, "Table: must be on-demand")
	}
	if m(p["PointInTimeRecoverySpecification"])["PointInTimeRecoveryEnabled"] != true {
		problems = append(problems, "Table: PITR must be on")
	}
	if m(p["TimeToLiveSpecification"])["Enabled"] != true {
		problems = append(problems, "Table: TTL must be on")
	}
	return append(problems, checkTableSchema(p)...)
}

// checkTableSchema: the deployed table is the one the store is tested on
// (dynamo.CreateTableInput, which DynamoDB Local and make dev create):
// attributes, keys, and each GSI's keys and projection.
func checkTableSchema(p map[string]any) []string {
	want := dynamo.CreateTableInput("t")
	keys := func(v any) string {
		var out []string
		for _, k := range list(v) {
			out = append(out, fmt.Sprint(m(k)["AttributeName"], ":", m(k)["KeyType"]))
		}
		return strings.Join(out, " ")
	}
	var problems []string
	var attrs, wantAttrs []string
	for _, a := range list(p["AttributeDefinitions"]) {
		attrs = append(attrs, fmt.Sprint(m(a)["AttributeName"], ":", m(a)["AttributeType"]))
	}
	for _, a := range want.AttributeDefinitions {
		wantAttrs = append(wantAttrs, *a.AttributeName+":"+string(a.AttributeType))
	}
	slices.Sort(attrs)
	slices.Sort(wantAttrs)
	if !slices.Equal(attrs, wantAttrs) {
		problems = append(problems, fmt.Sprintf("Table: attributes %v, the store's schema has %v", attrs, wantAttrs))
	}
	var wantKeys []string
	for _, k := range want.KeySchema {
		wantKeys = append(wantKeys, *k.AttributeName+":"+string(k.KeyType))
	}
	if got := keys(p["KeySchema"]); got != strings.Join(wantKeys, " ") {
		problems = append(problems, fmt.Sprintf("Table: key schema %s, the store's is %s", got, strings.Join(wantKeys, " ")))
	}
	gsis := map[string]string{}
	for _, g := range list(p["GlobalSecondaryIndexes"]) {
		gsis[fmt.Sprint(m(g)["IndexName"])] = keys(m(g)["KeySchema"]) + " " + fmt.Sprint(m(m(g)["Projection"])["ProjectionType"])
	}
	for _, g := range want.GlobalSecondaryIndexes {
		var ks []string
		for _, k := range g.KeySchema {
			ks = append(ks, *k.AttributeName+":"+string(k.KeyType))
		}
		w := strings.Join(ks, " ") + " " + string(g.Projection.ProjectionType)
		if got, ok := gsis[*g.IndexName]; !ok || got != w {
			problems = append(problems, fmt.Sprintf("Table: GSI %s is %q, the store's is %q", *g.IndexName, got, w))
		}
		delete(gsis, *g.IndexName)
	}
	for name := range gsis {
		problems = append(problems, fmt.Sprintf("Table: GSI %s is not in the store's schema", name))
	}
	return problems
}

func checkAPI(tpl map[string]any) []string {
	var problems []string
	apis := resourcesOfType(tpl, "AWS::Serverless::HttpApi")
	if len(apis) != 1 {
		return []string{"want exactly one HttpApi"}
	}
	for id, api := range apis {
		auth := m(m(api["Properties"])["Auth"])
		name, _ := auth["DefaultAuthorizer"].(string)
		jwt := m(m(m(auth["Authorizers"])[name])["JwtConfiguration"])
		if name == "" || m(jwt["issuer"])["Ref"] != "JwtIssuer" || m(jwt["audience"])["Ref"] != "JwtAudience" {
			problems = append(problems, id+": the default authorizer must be a JWT authorizer with the JwtIssuer and JwtAudience parameters")
		}
	}
	return problems
}

// templateRoutes maps each function to the HTTP API route keys it serves.
func templateRoutes(tpl map[string]any) map[string][]string {
	out := map[string][]string{}
	for id, fn := range resourcesOfType(tpl, "AWS::Serverless::Function") {
		for _, ev := range m(m(fn["Properties"])["Events"]) {
			if m(ev)["Type"] != "HttpApi" {
				continue
			}
			p := m(m(ev)["Properties"])
			out[id] = append(out[id], fmt.Sprintf("%v %v", p["Method"], p["Path"]))
		}
		sort.Strings(out[id])
	}
	return out
}

func TestTemplateInvariants(t *testing.T) {
	root := repoRoot(t)
	tpl := loadTemplate(t, filepath.Join(root, "template.yaml"))
	for _, p := range checkTemplate(tpl, root) {
		t.Error(p)
	}
}

// TestTemplateCheckCatchesBreakage proves the checks can fail: each case
// breaks one invariant of the real template and expects it to be reported.
func TestTemplateCheckCatchesBreakage(t *testing.T) {
	root := repoRoot(t)
	res := func(tpl map[string]any, id string) map[string]any { return m(m(m(tpl["Resources"])[id])["Properties"]) }
	tests := []struct {
		name   string
		break_ func(tpl map[string]any)
		want   string
	}{
		{"wrong runtime", func(tpl map[string]any) { res(tpl, "ApiFunction")["Runtime"] = "go1.x" }, "ApiFunction: runtime go1.x"},
		{"x86", func(tpl map[string]any) { m(m(tpl["Globals"])["Function"])["Architectures"] = []any{"x86_64"} }, "want [arm64]"},
		{"wildcard resource", func(tpl map[string]any) {
			p := list(res(tpl, "ApiFunction")["Policies"])
			st := list(m(p[0])["Statement"])
			m(st[0])["Resource"] = "*"
		}, `ApiFunction: IAM statement`},
		{"wildcard action", func(tpl map[string]any) {
			p := list(res(tpl, "ApiFunction")["Policies"])
			m(list(m(p[0])["Statement"])[0])["Action"] = []any{"dynamodb:*"}
		}, "is a wildcard"},
		{"missing code path", func(tpl map[string]any) {
			m(tpl["Resources"])["GhostFunction"] = m(tpl["Resources"])["ApiFunction"]
		}, "GhostFunction: code path functions/ghost/main.go does not exist"},
		{"api reads secrets", func(tpl map[string]any) {
			p := list(res(tpl, "ApiFunction")["Policies"])
			m(p[0])["Statement"] = append(list(m(p[0])["Statement"]), map[string]any{
				"Effect": "Allow", "Action": []any{"secretsmanager:GetSecretValue"},
				"Resource": map[string]any{"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:merchantsync/${Stage}/*"},
			})
		}, "ApiFunction: may not use secretsmanager:GetSecretValue"},
		{"no retention", func(tpl map[string]any) { delete(res(tpl, "ApiLogGroup"), "RetentionInDays") }, "has no RetentionInDays"},
		{"status index missing", func(tpl map[string]any) {
			t := res(tpl, "Table")
			t["GlobalSecondaryIndexes"] = list(t["GlobalSecondaryIndexes"])[:1]
		}, "Table: GSI status"},
		{"status index keys only", func(tpl map[string]any) {
			g := list(res(tpl, "Table")["GlobalSecondaryIndexes"])[1]
			m(m(g)["Projection"])["ProjectionType"] = "KEYS_ONLY"
		}, `Table: GSI status is "relStatus:HASH SK:RANGE KEYS_ONLY"`},
		{"no PITR", func(tpl map[string]any) { delete(res(tpl, "Table"), "PointInTimeRecoverySpecification") }, "PITR must be on"},
		{"no authorizer", func(tpl map[string]any) { delete(res(tpl, "HttpApi"), "Auth") }, "JWT authorizer"},
		{"DLQ alarm watches the sync queue", func(tpl map[string]any) {
			m(list(res(tpl, "SyncDlqDepthAlarm")["Dimensions"])[0])["Value"] = map[string]any{"Fn::GetAtt": []string{"SyncQueue", "QueueName"}}
		}, "no alarm on SyncDeadLetterQueue"},
		{"failure rate on a metric the code does not emit", func(tpl map[string]any) {
			q := m(list(res(tpl, "SyncFailureRateAlarm")["Metrics"])[0])
			m(m(q["MetricStat"])["Metric"])["MetricName"] = "SyncFailures"
		}, "no sync failure-rate alarm"},
		{"failure rate of every stage", func(tpl map[string]any) {
			for _, q := range list(res(tpl, "SyncFailureRateAlarm")["Metrics"]) {
				mt := m(m(m(q)["MetricStat"])["Metric"])
				if mt != nil {
					mt["Dimensions"] = list(mt["Dimensions"])[:1]
				}
			}
		}, "no sync failure-rate alarm"},
		{"scheduler alarm on another function", func(tpl map[string]any) {
			m(list(res(tpl, "SchedulerErrorsAlarm")["Dimensions"])[0])["Value"] = map[string]any{"Ref": "ApiFunction"}
		}, "no AWS/Lambda Errors > 0 alarm on SchedulerFunction"},
		{"GOGC raised without a memory limit", func(tpl map[string]any) {
			delete(m(res(tpl, "SyncFunction")["Environment"])["Variables"].(map[string]any), "GOMEMLIMIT")
		}, "SyncFunction: GOGC 400 needs GOMEMLIMIT"},
		{"memory limit above MemorySize", func(tpl map[string]any) {
			m(m(res(tpl, "SyncFunction")["Environment"])["Variables"])["GOMEMLIMIT"] = "600MiB"
		}, "must stay below 90% of MemorySize"},
		{"last delivery unknown to the worker", func(tpl map[string]any) {
			m(res(tpl, "SyncQueue")["RedrivePolicy"])["maxReceiveCount"] = 6
		}, "SYNC_MAX_RECEIVES 4 must equal SyncQueue's maxReceiveCount 6"},
		{"schedule without a dead-letter queue", func(tpl map[string]any) {
			delete(m(m(m(res(tpl, "SchedulerFunction")["Events"])["Daily"])["Properties"]), "DeadLetterConfig")
		}, "SchedulerFunction: schedule Daily has no DeadLetterConfig"},
		{"scheduler without an OnFailure destination", func(tpl map[string]any) {
			delete(res(tpl, "SchedulerFunction"), "EventInvokeConfig")
		}, "SchedulerFunction: invoked asynchronously by a schedule but has no OnFailure destination"},
		{"no alarm on the scheduler's dead-letter queue", func(tpl map[string]any) {
			delete(m(tpl["Resources"]), "SchedulerDlqDepthAlarm")
		}, "no alarm on SchedulerDeadLetterQueue"},
		{"a key policy statement that adds nothing", func(tpl map[string]any) {
			kp := m(res(tpl, "SecretsKey")["KeyPolicy"])
			root := m(list(kp["Statement"])[0])["Principal"]
			kp["Statement"] = append(list(kp["Statement"]), map[string]any{
				"Sid": "SecretsManagerUsesKey", "Effect": "Allow", "Principal": root, "Resource": "*",
				"Action":    []any{"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"},
				"Condition": map[string]any{"StringEquals": map[string]any{"kms:ViaService": map[string]any{"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}}},
			})
		}, "SecretsKey: key policy statement SecretsManagerUsesKey adds nothing"},
		{"unconditional email subscription", func(tpl map[string]any) {
			delete(m(m(tpl["Resources"])["AlarmEmailSubscription"]), "Condition")
		}, "needs a Condition on a non-empty AlarmEmail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl := loadTemplate(t, filepath.Join(root, "template.yaml"))
			tt.break_(tpl)
			got := checkTemplate(tpl, root)
			for _, p := range got {
				if strings.Contains(p, tt.want) {
					return
				}
			}
			t.Errorf("breaking %q: want a problem containing %q, got %q", tt.name, tt.want, got)
		})
	}
}

// TestFunctionsBuild builds every function as Lambda runs it (linux/arm64,
// no cgo, lambda.norpc): a function that does not compile fails here, not at deploy.
func TestFunctionsBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds five binaries")
	}
	root := repoRoot(t)
	tpl := loadTemplate(t, filepath.Join(root, "template.yaml"))
	var pkgs []string
	for id := range resourcesOfType(tpl, "AWS::Serverless::Function") {
		pkgs = append(pkgs, "./"+functionDir(id))
	}
	sort.Strings(pkgs)
	cmd := exec.Command("go", append([]string{"build", "-tags", "lambda.norpc", "-o", t.TempDir()}, pkgs...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", pkgs, err, out)
	}
}
