package infra

// The IAM-vs-code test: every function's real handler, built by internal/app
// from the environment the translated template gives it, is driven through
// all its routes and paths against local services (DynamoDB Local, Secrets
// Manager and SQS on moto, the Rakuten sandbox) with AWS clients whose
// HTTP transport records the IAM permission each request needs. Those are
// then compared, both ways, with the roles SAM generates from template.yaml.

import (
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/merchantsync/merchantsync/internal/testenv"
)

func TestMain(tm *testing.M) { testenv.Main(tm) }

// iamServices are the services whose actions the roles may name.
var iamServices = []string{"dynamodb", "secretsmanager", "sqs", "kms", "lambda", "events"}

// TestIAMMatchesCode drives every function and compares its role with what
// it did; then breaks template.yaml, translates the broken copies, and
// proves the comparison reports each break.
func TestIAMMatchesCode(t *testing.T) {
	e := newIAMEnv(t)
	e.drive()
	used := e.codePermissions()
	_, iamActions := samTranslate(t, iamServices)
	for _, p := range compareIAM(e.cfn, e.stack, used, iamActions) {
		t.Error(p)
	}
	nActions, nPerms := 0, 0
	for id, perms := range used {
		var list []string
		acts := map[string]bool{}
		for p := range perms {
			list = append(list, p)
			a, _, _ := strings.Cut(p, " ")
			acts[a] = true
		}
		sort.Strings(list)
		nActions, nPerms = nActions+len(acts), nPerms+len(list)
		t.Logf("%s uses %d actions (%d action-resource pairs):\n  %s", id, len(acts), len(list), strings.Join(list, "\n  "))
	}
	t.Logf("compared %d actions (%d action-resource pairs) of %d functions with their roles", nActions, nPerms, len(used))

	// The drive made the sync function emit SyncsSucceeded and SyncsFailed:
	// the alarms must watch those metrics, with the same dimensions, or
	// they never fire. Resolved for another stage they must not match.
	t.Run("alarms watch the metrics the sync function emitted", func(t *testing.T) {
		out := e.stdout("SyncFunction")
		for _, p := range checkAlarmsOnEmittedMetrics(e.cfn, e.stack, out) {
			t.Error(p)
		}
		prod := maps.Clone(e.stack)
		prod["Stage"] = "prod"
		if got := checkAlarmsOnEmittedMetrics(e.cfn, prod, out); len(got) == 0 {
			t.Error("prod's alarms watch the metrics a dev stack emitted")
		}
	})

	root := repoRoot(t)
	stmts := func(tpl map[string]any, id string) []any {
		return list(m(list(m(m(m(tpl["Resources"])[id])["Properties"])["Policies"])[0])["Statement"])
	}
	// withAction finds the statement of id granting action.
	withAction := func(tpl map[string]any, id, action string) map[string]any {
		for _, s := range stmts(tpl, id) {
			if slices.Contains(actions(m(s)), action) {
				return m(s)
			}
		}
		t.Fatalf("%s grants no %s", id, action)
		return nil
	}
	remove := func(id string, drop ...string) func(map[string]any) {
		return func(tpl map[string]any) {
			for _, action := range drop {
				s := withAction(tpl, id, action)
				s["Action"] = slices.DeleteFunc(list(s["Action"]), func(a any) bool { return a == action })
			}
		}
	}
	add := func(id, existing, action string) func(map[string]any) {
		return func(tpl map[string]any) {
			s := withAction(tpl, id, existing)
			s["Action"] = append(list(s["Action"]), action)
		}
	}
	props := func(tpl map[string]any, id string) map[string]any { return m(m(m(tpl["Resources"])[id])["Properties"]) }
	tests := []struct {
		name   string
		break_ func(map[string]any)
		want   string
	}{
		{"nothing broken", func(map[string]any) {}, ""},
		{"credentials without DeleteItem", remove("CredentialsFunction", "dynamodb:DeleteItem"), "CredentialsFunction: code uses dynamodb:DeleteItem"},
		{"credentials without TagResource", remove("CredentialsFunction", "secretsmanager:TagResource"), "CredentialsFunction: code uses secretsmanager:TagResource"},
		{"syncnow without PutItem", remove("SyncNowFunction", "dynamodb:PutItem"), "SyncNowFunction: code uses dynamodb:PutItem"},
		{"scheduler without SendMessage", remove("SchedulerFunction", "sqs:SendMessage"), "SchedulerFunction: code uses sqs:SendMessage"},
		{"sync without PutSecretValue", remove("SyncFunction", "secretsmanager:PutSecretValue"), "SyncFunction: code uses secretsmanager:PutSecretValue"},
		{"sync without ReceiveMessage", remove("SyncFunction", "sqs:ReceiveMessage"), "needed by the SQS event source mapping"},
		{"api with Scan", add("ApiFunction", "dynamodb:GetItem", "dynamodb:Scan"), "ApiFunction: template grants dynamodb:Scan"},
		{"api with DeleteItem", add("ApiFunction", "dynamodb:GetItem", "dynamodb:DeleteItem"), "ApiFunction: template grants dynamodb:DeleteItem"},
		{"syncnow's transaction granted as TransactWriteItems only", func(tpl map[string]any) {
			remove("SyncNowFunction", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem")(tpl)
			add("SyncNowFunction", "dynamodb:GetItem", "dynamodb:TransactWriteItems")(tpl)
		}, "SyncNowFunction: code uses dynamodb:ConditionCheckItem"},
		{"api's transaction granted as TransactWriteItems only", func(tpl map[string]any) {
			remove("ApiFunction", "dynamodb:PutItem", "dynamodb:ConditionCheckItem")(tpl)
			add("ApiFunction", "dynamodb:GetItem", "dynamodb:TransactWriteItems")(tpl)
		}, "ApiFunction: dynamodb:TransactWriteItems is not an IAM action"},
		{"credentials with GetSecretValue", add("CredentialsFunction", "secretsmanager:CreateSecret", "secretsmanager:GetSecretValue"), "CredentialsFunction: template grants secretsmanager:GetSecretValue"},
		{"syncnow with SendMessageBatch's own name", add("SyncNowFunction", "sqs:SendMessage", "sqs:SendMessageBatch"), "SyncNowFunction: template grants sqs:SendMessageBatch"},
		{"api may invoke functions", add("ApiFunction", "dynamodb:GetItem", "lambda:InvokeFunction"), "ApiFunction: template grants lambda:InvokeFunction"},
		{"scheduler queries the table", func(tpl map[string]any) {
			withAction(tpl, "SchedulerFunction", "dynamodb:Query")["Resource"] = map[string]any{"Fn::GetAtt": []any{"Table", "Arn"}}
		}, "SchedulerFunction: dynamodb:Query must be granted on the due index only"},
		{"kms on every key", func(tpl map[string]any) {
			withAction(tpl, "SyncFunction", "kms:Decrypt")["Resource"] = map[string]any{"Fn::Sub": "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*"}
		}, "SyncFunction: kms:Decrypt on arn:aws:kms:us-east-1:123456789012:key/* via secretsmanager.us-east-1.amazonaws.com is not scoped"},
		{"kms without kms:ViaService", func(tpl map[string]any) {
			delete(withAction(tpl, "CredentialsFunction", "kms:GenerateDataKey"), "Condition")
		}, "CredentialsFunction: kms:GenerateDataKey on arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab is not scoped to the secrets key through Secrets Manager"},
		{"kms through another service", func(tpl map[string]any) {
			m(m(withAction(tpl, "SyncFunction", "kms:Decrypt")["Condition"])["StringEquals"])["kms:ViaService"] = "s3.us-east-1.amazonaws.com"
		}, "SyncFunction: kms:Decrypt on arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab via s3.us-east-1.amazonaws.com is not scoped"},
		{"webhooks without kms:Encrypt", remove("WebhooksFunction", "kms:Encrypt"), "WebhooksFunction: code uses kms:Encrypt"},
		{"deliver's Decrypt for any purpose", func(tpl map[string]any) {
			delete(withAction(tpl, "DeliverFunction", "kms:Decrypt"), "Condition")
		}, "DeliverFunction: code uses kms:Decrypt"},
		{"webhooks may Decrypt", add("WebhooksFunction", "kms:Encrypt", "kms:Decrypt"), "WebhooksFunction: template grants kms:Decrypt"},
		{"notify without PutEvents", remove("NotifyFunction", "events:PutEvents"), "NotifyFunction: code uses events:PutEvents"},
		{"notify without reading the stream", remove("NotifyFunction", "dynamodb:GetRecords"), "needed by the DynamoDB Streams event source mapping"},
		{"deliver may send deliveries", add("DeliverFunction", "sqs:ReceiveMessage", "sqs:SendMessage"), "DeliverFunction: template grants sqs:SendMessage"},
		{"a managed policy SAM attaches as asked", func(tpl map[string]any) {
			p := props(tpl, "ApiFunction")
			p["Policies"] = append(list(p["Policies"]), "arn:aws:iam::aws:policy/AmazonDynamoDBFullAccess")
		}, "ApiFunction: managed policy arn:aws:iam::aws:policy/AmazonDynamoDBFullAccess"},
		{"a role of its own", func(tpl map[string]any) {
			m(tpl["Resources"])["SpareRole"] = map[string]any{"Type": "AWS::IAM::Role", "Properties": map[string]any{
				"AssumeRolePolicyDocument": map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
					"Effect": "Allow", "Principal": map[string]any{"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}}},
			}}
		}, "SpareRole: a role of no function or schedule"},
	}
	var broken []translation
	for _, tt := range tests {
		tpl := loadTemplate(t, filepath.Join(root, "template.yaml"))
		tt.break_(tpl)
		broken = append(broken, translation{Template: tpl, Parameters: map[string]string{"Stage": iamStage}})
	}
	cfns, _ := samTranslate(t, nil, broken...)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantProblem(t, tt.name, tt.want, compareIAM(cfns[i], e.stack, used, iamActions))
		})
	}
}
