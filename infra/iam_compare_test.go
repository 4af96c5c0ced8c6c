package infra

// The comparison of the IAM-vs-code test: the roles of the translated
// template (what AWS creates: SAM's generated roles with their inline
// policies and the managed policies SAM attaches) against what the code did
// and what Lambda and EventBridge Scheduler do with those roles.

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// checkedServices are the services whose actions must equal what the
// function needs, both ways.
var checkedServices = []string{"dynamodb", "secretsmanager", "sqs", "events"}

// webhookSecretPurpose is the encryption context every direct KMS call
// carries (internal/kmsseal): the webhooks and deliver functions' KMS
// grants hold only for it.
const webhookSecretPurpose = "merchantsync-webhook-secret"

// eventSourceActions are what Lambda's SQS poller calls with the role of the
// function an event source mapping feeds; the code never does.
var eventSourceActions = []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"}

// streamSourceActions are what Lambda's DynamoDB Streams poller calls with
// the role of the function a stream's event source mapping feeds (the
// execution-role permissions DynamoDB's guide lists for a trigger, scoped
// to the stream as its example policy is).
var streamSourceActions = []string{"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"}

// managedPolicies are the AWS managed policies SAM may attach to a
// function's role, and why each is needed.
var managedPolicies = map[string]string{
	"arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": "Lambda writes the function's logs with it",
	"arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess":                   "Tracing: Active sends X-Ray segments with it",
}

// grant is one action on one resource pattern of a role's policy, with the
// kms:ViaService value its condition requires ("" for none).
type grant struct{ action, resource, viaService string }

func (g grant) String() string {
	s := g.action + " on " + g.resource
	if g.viaService != "" {
		s += " via " + g.viaService
	}
	return s
}

// arnMatch is IAM's resource matching: * any run of characters, ? one.
func arnMatch(pattern, arn string) bool {
	var re strings.Builder
	re.WriteString("^")
	for _, r := range pattern {
		switch r {
		case '*':
			re.WriteString(".*")
		case '?':
			re.WriteString(".")
		default:
			re.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	re.WriteString("$")
	return regexp.MustCompile(re.String()).MatchString(arn)
}

func serviceOf(action string) string { s, _, _ := strings.Cut(action, ":"); return s }

// covers reports whether g allows action on arn (IAM actions ignore case).
func (g grant) covers(action, arn string) bool {
	return strings.EqualFold(g.action, action) && arnMatch(g.resource, arn)
}

// roleGrants returns the Allow statements of a translated AWS::IAM::Role,
// resolved in s, and its managed policy ARNs. A condition other than
// kms:ViaService or kms:EncryptionContext:purpose, or a Deny, is a problem:
// the comparison does not model it. A purpose condition is written into the
// grant's resource ("<arn> purpose=<value>"), as the recorder writes the
// calls that carry it, so such a grant covers only calls with that purpose.
func roleGrants(s stack, id string, role map[string]any, bad func(string, ...any)) ([]grant, []string) {
	p := m(role["Properties"])
	var grants []grant
	for _, pol := range list(p["Policies"]) {
		for _, st := range list(m(m(pol)["PolicyDocument"])["Statement"]) {
			st := m(st)
			if st["Effect"] != "Allow" {
				bad("%s: a %v statement the test does not model", id, st["Effect"])
				continue
			}
			via, purpose := "", ""
			if c := m(st["Condition"]); c != nil {
				eq := m(c["StringEquals"])
				var v string
				var err error
				if p, ok := eq["kms:EncryptionContext:purpose"]; ok {
					purpose, err = s.resolve(p)
				} else {
					v, err = s.resolve(eq["kms:ViaService"])
				}
				if len(c) != 1 || len(eq) != 1 || err != nil {
					bad("%s: condition %v the test does not model", id, c)
				}
				via = v
			}
			for _, a := range list(st["Action"]) {
				for _, r := range list(st["Resource"]) {
					arn, err := s.resolve(r)
					if err != nil {
						bad("%s: %v: %v", id, a, err)
						continue
					}
					if purpose != "" {
						arn += " purpose=" + purpose
					}
					grants = append(grants, grant{fmt.Sprint(a), arn, via})
				}
			}
		}
	}
	var managed []string
	for _, a := range list(p["ManagedPolicyArns"]) {
		arn, err := s.resolve(a)
		if err != nil {
			bad("%s: managed policy %v: %v", id, a, err)
		}
		managed = append(managed, arn)
	}
	return grants, managed
}

// getAttOf returns the resource id of a GetAtt (or Ref) value.
func getAttOf(v any) string {
	x := m(v)
	if r, ok := x["Ref"].(string); ok {
		return r
	}
	if ga := list(x["Fn::GetAtt"]); len(ga) > 0 {
		return fmt.Sprint(ga[0])
	}
	return ""
}

// platformPermissions are what AWS does with a function's role on its
// behalf, each with why: Lambda's poller reads the SQS event source, and
// Lambda sends a failed asynchronous event to the OnFailure destination.
func platformPermissions(cfn map[string]any, s stack) map[string]map[string]string {
	out := map[string]map[string]string{}
	add := func(fn, perm, why string) {
		if out[fn] == nil {
			out[fn] = map[string]string{}
		}
		out[fn][perm] = why
	}
	for _, esm := range resourcesOfType(cfn, "AWS::Lambda::EventSourceMapping") {
		p := m(esm["Properties"])
		fn := getAttOf(p["FunctionName"])
		arn, err := s.resolve(p["EventSourceArn"])
		switch {
		case err != nil:
		case strings.HasPrefix(arn, "arn:aws:sqs:"):
			for _, a := range eventSourceActions {
				add(fn, a+" "+arn, "needed by the SQS event source mapping")
			}
		case strings.Contains(arn, ":table/") && strings.Contains(arn, "/stream/"):
			for _, a := range streamSourceActions {
				add(fn, a+" "+arn, "needed by the DynamoDB Streams event source mapping")
			}
		}
		if dest, err := s.resolve(m(m(p["DestinationConfig"])["OnFailure"])["Destination"]); err == nil && strings.HasPrefix(dest, "arn:aws:sqs:") {
			add(fn, "sqs:SendMessage "+dest, "needed by Lambda for the event source's on-failure destination")
		}
	}
	for _, eic := range resourcesOfType(cfn, "AWS::Lambda::EventInvokeConfig") {
		p := m(eic["Properties"])
		for _, on := range []string{"OnFailure", "OnSuccess"} {
			arn, err := s.resolve(m(m(p["DestinationConfig"])[on])["Destination"])
			if err == nil && strings.HasPrefix(arn, "arn:aws:sqs:") {
				add(getAttOf(p["FunctionName"]), "sqs:SendMessage "+arn, "needed by Lambda for the "+on+" destination")
			}
		}
	}
	return out
}

// compareIAM returns every difference between the roles of the translated
// template and what each function needs (used: the permissions its code
// needed): a permission needed but not granted, a grant of dynamodb,
// secretsmanager or sqs nothing needs, a grant of any other service but KMS,
// a KMS grant not scoped to the secrets key through Secrets Manager, an
// action IAM does not define, a managed policy not in managedPolicies, a
// schedule role granting more or less than invoking its target and sending
// to its dead-letter queue, and a role nothing uses.
func compareIAM(cfn map[string]any, s stack, used map[string]map[string]bool, iamActions map[string][]string) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	roles := resourcesOfType(cfn, "AWS::IAM::Role")
	claimed := map[string]bool{}
	checkRole := func(owner, roleID string) []grant {
		role, ok := roles[roleID]
		if !ok {
			bad("%s: its role %q is not a role of the template", owner, roleID)
			return nil
		}
		claimed[roleID] = true
		grants, managed := roleGrants(s, owner, role, bad)
		for _, g := range grants {
			if !slices.Contains(iamActions[serviceOf(g.action)], strings.ToLower(strings.TrimPrefix(g.action, serviceOf(g.action)+":"))) {
				bad("%s: %s is not an IAM action (Service Authorization Reference)", owner, g.action)
			}
		}
		for _, arn := range managed {
			if _, ok := managedPolicies[arn]; !ok {
				bad("%s: managed policy %s is not one the functions need", owner, arn)
			}
		}
		return grants
	}
	platform := platformPermissions(cfn, s)
	for id, fn := range resourcesOfType(cfn, "AWS::Lambda::Function") {
		grants := checkRole(id, getAttOf(m(fn["Properties"])["Role"]))
		need := map[string]string{} // permission → why ("" for the code)
		for p := range used[id] {
			need[p] = ""
		}
		for p, why := range platform[id] {
			need[p] = why
		}
		var perms []string
		for p := range need {
			perms = append(perms, p)
		}
		sort.Strings(perms)
		for _, p := range perms {
			action, arn, _ := strings.Cut(p, " ")
			if !slices.ContainsFunc(grants, func(g grant) bool { return g.covers(action, arn) }) {
				who := "code uses"
				if need[p] != "" {
					who = "AWS uses (" + need[p] + ")"
				}
				bad("%s: %s %s on %s, which the template does not grant", id, who, action, arn)
			}
		}
		for _, g := range grants {
			switch svc := serviceOf(g.action); {
			case slices.Contains(checkedServices, svc):
				if !slices.ContainsFunc(perms, func(p string) bool { a, arn, _ := strings.Cut(p, " "); return g.covers(a, arn) }) {
					bad("%s: template grants %s, which the code never uses", id, g)
				}
				if g.viaService != "" {
					bad("%s: %s has a kms:ViaService condition", id, g)
				}
			case svc == "kms" && strings.Contains(g.resource, " purpose="):
				// A direct call (kmsseal): the secrets key, only for webhook
				// secrets, and only what the code uses.
				if g.resource != keyARN()+" purpose="+webhookSecretPurpose || g.viaService != "" {
					bad("%s: %s is not scoped to the secrets key for webhook secrets (kms:EncryptionContext:purpose %s)", id, g, webhookSecretPurpose)
				}
				if !slices.ContainsFunc(perms, func(p string) bool { a, arn, _ := strings.Cut(p, " "); return g.covers(a, arn) }) {
					bad("%s: template grants %s, which the code never uses", id, g)
				}
			case svc == "kms":
				// Secrets Manager calls KMS for the function: the grant must
				// name the secrets key and hold only through Secrets Manager.
				if want := "secretsmanager." + iamRegion + ".amazonaws.com"; g.resource != keyARN() || g.viaService != want {
					bad("%s: %s is not scoped to the secrets key through Secrets Manager (kms:ViaService %s)", id, g, want)
				}
			default:
				bad("%s: template grants %s, which no function needs", id, g)
			}
		}
		if id == "SchedulerFunction" {
			problems = append(problems, checkDueIndexOnly(id, grants, perms, s)...)
		}
	}
	for sid, sch := range resourcesOfType(cfn, "AWS::Scheduler::Schedule") {
		target := m(m(sch["Properties"])["Target"])
		want := []grant{{"lambda:InvokeFunction", s.resolveOrNone(target["Arn"]), ""}}
		if dlq := m(target["DeadLetterConfig"])["Arn"]; dlq != nil {
			want = append(want, grant{"sqs:SendMessage", s.resolveOrNone(dlq), ""})
		}
		got := checkRole(sid, getAttOf(target["RoleArn"]))
		for _, g := range got {
			if !slices.Contains(want, g) {
				bad("%s: its role grants %s, more than invoking its target and sending to its dead-letter queue", sid, g)
			}
		}
		for _, w := range want {
			if !slices.Contains(got, w) {
				bad("%s: its role does not grant %s", sid, w)
			}
		}
	}
	for id := range roles {
		if !claimed[id] {
			bad("%s: a role of no function or schedule", id)
		}
	}
	sort.Strings(problems)
	return problems
}

// checkDueIndexOnly: the scheduler queries the due index, never the table.
func checkDueIndexOnly(id string, grants []grant, perms []string, s stack) []string {
	var problems []string
	due := s["Table.Arn"] + "/index/due"
	for _, g := range grants {
		if g.action == "dynamodb:Query" && g.resource != due {
			problems = append(problems, fmt.Sprintf("%s: dynamodb:Query must be granted on the due index only, not on %s", id, g.resource))
		}
	}
	for _, p := range perms {
		if action, arn, _ := strings.Cut(p, " "); action == "dynamodb:Query" && arn != due {
			problems = append(problems, fmt.Sprintf("%s: the code queries %s, not only the due index", id, arn))
		}
	}
	return problems
}
