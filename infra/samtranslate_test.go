package infra

// What AWS deploys: template.yaml translated by the SAM translator (the
// roles, schedules and event invoke configs SAM generates), and the values
// its intrinsics resolve to in one stack.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"testing"
)

// The account and region the template's pseudo parameters resolve to.
const (
	iamAccount = "123456789012"
	iamRegion  = "us-east-1"
)

// samPython is the Python that has the pinned SAM translator and cfn-lint:
// the virtualenv infra/scripts/install-cfn-lint.sh makes when the machine
// lacks them, else python3 on PATH.
func samPython(root string) string {
	if p := filepath.Join(root, ".cache", "cfn-lint", "bin", "python3"); fileExists(p) {
		return p
	}
	return "python3"
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// translation is one template to translate: the file template.yaml or a
// (broken) copy of it, with the stack's parameters.
type translation struct {
	Path       string            `json:"path,omitempty"`
	Template   map[string]any    `json:"template,omitempty"`
	Parameters map[string]string `json:"parameters,omitempty"`
}

// samTranslate translates every template in one run of the translator and
// returns them with the IAM actions AWS defines for services.
func samTranslate(t testing.TB, services []string, ts ...translation) ([]map[string]any, map[string][]string) {
	t.Helper()
	root := repoRoot(t)
	req, err := json.Marshal(map[string]any{"translate": ts, "iamServices": services})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(samPython(root), filepath.Join(root, "infra", "scripts", "sam-translate.py"))
	cmd.Dir = root
	cmd.Stdin = bytes.NewReader(req)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sam-translate.py: %v\n%s\n(install the translator with infra/scripts/install-cfn-lint.sh)", err, stderr.Bytes())
	}
	var res struct {
		Templates  []map[string]any
		IAMActions map[string][]string `json:"iamActions"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Templates) != len(ts) {
		t.Fatalf("sam-translate.py answered %d templates for %d: %v", len(res.Templates), len(ts), err)
	}
	return res.Templates, res.IAMActions
}

// translateTemplate is template.yaml as AWS deploys it for stage.
func translateTemplate(t testing.TB, stage string) map[string]any {
	t.Helper()
	tpls, _ := samTranslate(t, nil, translation{Path: "template.yaml", Parameters: map[string]string{"Stage": stage}})
	return tpls[0]
}

// resources are the concrete names of this test's stand-ins for the
// template's table and queue (empty: the names the template gives them).
type resources struct {
	table, queueURL string
	// deliveriesURL and bus, when set, stand for DeliveryQueue and
	// EventBus: the local ones the test created.
	deliveriesURL, bus string
}

func tableARN(name string) string {
	return fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s", iamRegion, iamAccount, name)
}

func queueARN(queueURL string) string {
	u, _ := url.Parse(queueURL)
	return fmt.Sprintf("arn:aws:sqs:%s:%s:%s", iamRegion, iamAccount, path.Base(u.Path))
}

func queueURLOf(name string) string {
	return fmt.Sprintf("https://sqs.%s.amazonaws.com/%s/%s", iamRegion, iamAccount, name)
}

// secretARN is the ARN Secrets Manager gives a secret: its name plus a
// random 6-character suffix.
func secretARN(name string) string {
	return fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-AbCdEf", iamRegion, iamAccount, name)
}

const keyID = "1234abcd-12ab-34cd-56ef-1234567890ab"

func keyARN() string { return keyARNOf(keyID) }

func keyARNOf(id string) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", iamRegion, iamAccount, id)
}

func eventBusARN(name string) string {
	return fmt.Sprintf("arn:aws:events:%s:%s:event-bus/%s", iamRegion, iamAccount, name)
}

func functionARN(name string) string {
	return fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", iamRegion, iamAccount, name)
}

// stack is what Ref, GetAtt ("Id.Attr") and ${} resolve to in one
// deployment of a translated template.
type stack map[string]string

// newStack resolves the parameters (params, else their defaults), the
// pseudo parameters and the names and ARNs of the template's resources.
func newStack(t testing.TB, cfn map[string]any, params map[string]string, res resources) stack {
	t.Helper()
	s := stack{"AWS::Partition": "aws", "AWS::Region": iamRegion, "AWS::AccountId": iamAccount, "AWS::URLSuffix": "amazonaws.com"}
	for name, p := range m(cfn["Parameters"]) {
		if v, ok := params[name]; ok {
			s[name] = v
		} else if d, ok := m(p)["Default"]; ok {
			s[name] = fmt.Sprint(d)
		}
	}
	name := func(id string, p map[string]any, prop string) string {
		if v, ok := p[prop]; ok {
			n, err := s.resolve(v)
			if err != nil {
				t.Fatalf("%s.%s: %v", id, prop, err)
			}
			return n
		}
		return id
	}
	for id, r := range m(cfn["Resources"]) {
		p := m(m(r)["Properties"])
		switch m(r)["Type"] {
		case "AWS::DynamoDB::Table":
			n := name(id, p, "TableName")
			if res.table != "" {
				n = res.table
			}
			s[id], s[id+".Arn"] = n, tableARN(n)
			s[id+".StreamArn"] = tableARN(n) + "/stream/2026-12-01T00:00:00.000"
		case "AWS::SQS::Queue":
			u := queueURLOf(name(id, p, "QueueName"))
			if id == "SyncQueue" && res.queueURL != "" {
				u = res.queueURL
			}
			if id == "DeliveryQueue" && res.deliveriesURL != "" {
				u = res.deliveriesURL
			}
			s[id], s[id+".Arn"], s[id+".QueueName"] = u, queueARN(u), path.Base(u)
		case "AWS::KMS::Key":
			s[id], s[id+".Arn"] = keyID, keyARN()
		case "AWS::Lambda::Function":
			s[id], s[id+".Arn"] = id, functionARN(id)
		case "AWS::Events::EventBus":
			n := name(id, p, "Name")
			if res.bus != "" {
				n = res.bus
			}
			s[id], s[id+".Arn"], s[id+".Name"] = n, eventBusARN(n), n
		case "AWS::SNS::Topic":
			s[id] = fmt.Sprintf("arn:aws:sns:%s:%s:%s", iamRegion, iamAccount, name(id, p, "TopicName"))
		}
	}
	return s
}

var subVar = regexp.MustCompile(`\$\{([^}]+)\}`)

// resolve turns a template value (a string or an intrinsic) into a string:
// Ref, GetAtt and Fn::Sub of what the stack knows.
func (s stack) resolve(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int, float64, bool:
		return fmt.Sprint(x), nil
	case map[string]any:
		if ref, ok := x["Ref"].(string); ok {
			if v, ok := s[ref]; ok {
				return v, nil
			}
		}
		var ga []string // loadTemplate splits !GetAtt A.B into []string; JSON has []any
		switch g := x["Fn::GetAtt"].(type) {
		case []string:
			ga = g
		case []any:
			for _, p := range g {
				ga = append(ga, fmt.Sprint(p))
			}
		}
		if len(ga) == 2 {
			if v, ok := s[ga[0]+"."+ga[1]]; ok {
				return v, nil
			}
		}
		if sub, ok := x["Fn::Sub"].(string); ok {
			var err error
			out := subVar.ReplaceAllStringFunc(sub, func(v string) string {
				name := v[2 : len(v)-1]
				if r, ok := s[name]; ok {
					return r
				}
				err = fmt.Errorf("unknown ${%s} in %q", name, sub)
				return v
			})
			return out, err
		}
	}
	return "", fmt.Errorf("cannot resolve %v", v)
}

// resolveOrNone resolves v, or returns a placeholder that matches nothing.
func (s stack) resolveOrNone(v any) string {
	r, err := s.resolve(v)
	if err != nil {
		return fmt.Sprintf("<unresolved %v>", v)
	}
	return r
}

// mustResolve is resolve for values the test cannot go on without.
func (s stack) mustResolve(t testing.TB, what string, v any) string {
	t.Helper()
	r, err := s.resolve(v)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return r
}

// functionEnvironment is a translated function's environment (Globals
// merged by SAM), resolved in s.
func functionEnvironment(t testing.TB, cfn map[string]any, s stack, id string) map[string]string {
	t.Helper()
	fn := m(m(cfn["Resources"])[id])
	if fn["Type"] != "AWS::Lambda::Function" {
		t.Fatalf("%s is not a function of the translated template", id)
	}
	vars := map[string]string{}
	for k, v := range m(m(m(fn["Properties"])["Environment"])["Variables"]) {
		vars[k] = s.mustResolve(t, id+" env "+k, v)
	}
	return vars
}
