package infra

import (
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// samconfigJSON is samconfig.toml as JSON (parsed by Python's tomllib: Go
// has no TOML parser among this module's dependencies).
func samconfigJSON(t testing.TB) []byte {
	t.Helper()
	root := repoRoot(t)
	cmd := exec.Command(samPython(root), "-c",
		"import json, sys, tomllib; json.dump(tomllib.load(open(sys.argv[1], 'rb')), sys.stdout)",
		filepath.Join(root, "samconfig.toml"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("parse samconfig.toml: %v", err)
	}
	return out
}

// samParams are the parameters SAM CLI gives command in env: the env's
// global ones, overridden by the command's own.
func samParams(cfg map[string]any, env, command string) map[string]any {
	out := maps.Clone(m(m(m(cfg[env])["global"])["parameters"]))
	if out == nil {
		out = map[string]any{}
	}
	maps.Copy(out, m(m(m(cfg[env])[command])["parameters"]))
	return out
}

var overrideRe = regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S+)`)

// parseOverrides reads parameter_overrides: Key="value" Key2=value2.
func parseOverrides(s string) map[string]string {
	out := map[string]string{}
	for _, mt := range overrideRe.FindAllStringSubmatch(s, -1) {
		out[mt[1]] = strings.Trim(mt[2], `"`)
	}
	return out
}

// checkSamconfig: sam build builds in the source tree; every stage's deploy
// names its own stack with Stage set to the stage and every parameter the
// template requires (and none it lacks); dev's sync deploys the same stack
// with the same parameters, and prod has no sync.
func checkSamconfig(cfg map[string]any, tplParams map[string]any) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if samParams(cfg, "default", "build")["build_in_source"] != true {
		bad("default build: build_in_source must be true (the makefile builder would copy .cache once per function)")
	}
	for _, env := range []string{"dev", "prod"} {
		deploy := samParams(cfg, env, "deploy")
		if deploy["stack_name"] != "merchantsync-"+env || deploy["region"] == nil || deploy["s3_prefix"] == nil ||
			!strings.Contains(fmt.Sprint(deploy["capabilities"]), "CAPABILITY_IAM") {
			bad("%s deploy: want stack merchantsync-%s, a region, an s3_prefix and CAPABILITY_IAM, got %v", env, env, deploy)
		}
		overrides := parseOverrides(fmt.Sprint(deploy["parameter_overrides"]))
		if overrides["Stage"] != env {
			bad("%s deploy: Stage=%q", env, overrides["Stage"])
		}
		for name, p := range tplParams {
			if _, ok := m(p)["Default"]; !ok && overrides[name] == "" {
				bad("%s deploy: no value for the required parameter %s", env, name)
			}
		}
		for name := range overrides {
			if _, ok := tplParams[name]; !ok {
				bad("%s deploy: %s is not a parameter of the template", env, name)
			}
		}
	}
	devDeploy, devSync := samParams(cfg, "dev", "deploy"), samParams(cfg, "dev", "sync")
	for _, k := range []string{"stack_name", "region", "s3_prefix", "capabilities", "parameter_overrides"} {
		if devSync[k] == nil || fmt.Sprint(devSync[k]) != fmt.Sprint(devDeploy[k]) {
			bad("dev sync: %s is %v, dev deploy's is %v", k, devSync[k], devDeploy[k])
		}
	}
	if devSync["build_in_source"] != true {
		bad("dev sync: build_in_source must be true")
	}
	if m(m(cfg["prod"])["sync"]) != nil {
		bad("prod: sam sync is for development stacks only")
	}
	slices.Sort(problems)
	return problems
}

// TestSamconfig holds samconfig.toml to checkSamconfig, then breaks it to
// prove the check can fail.
func TestSamconfig(t *testing.T) {
	tplParams := m(loadTemplate(t, filepath.Join(repoRoot(t), "template.yaml"))["Parameters"])
	params := func(cfg map[string]any, env, cmd string) map[string]any {
		return m(m(m(cfg[env])[cmd])["parameters"])
	}
	tests := []struct {
		name   string
		break_ func(map[string]any)
		want   string
	}{
		{"samconfig.toml", func(map[string]any) {}, ""},
		{"build copies the tree", func(c map[string]any) { delete(params(c, "default", "build"), "build_in_source") }, "default build: build_in_source"},
		{"sync without the stack's parameters", func(c map[string]any) {
			params(c, "dev", "sync")["parameter_overrides"] = `Stage="dev"`
		}, "dev sync: parameter_overrides"},
		{"prod deployed as dev", func(c map[string]any) {
			p := params(c, "prod", "deploy")
			p["parameter_overrides"] = strings.Replace(fmt.Sprint(p["parameter_overrides"]), `Stage="prod"`, `Stage="dev"`, 1)
		}, `prod deploy: Stage="dev"`},
		{"no issuer", func(c map[string]any) {
			p := m(m(m(c["dev"])["global"])["parameters"])
			p["parameter_overrides"] = regexp.MustCompile(`JwtIssuer="[^"]*" `).ReplaceAllString(fmt.Sprint(p["parameter_overrides"]), "")
		}, "dev deploy: no value for the required parameter JwtIssuer"},
		{"a misspelt parameter", func(c map[string]any) {
			p := params(c, "prod", "deploy")
			p["parameter_overrides"] = fmt.Sprint(p["parameter_overrides"]) + ` LogLevl="INFO"`
		}, "prod deploy: LogLevl is not a parameter"},
	}
	raw := samconfigJSON(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg map[string]any
			if err := json.Unmarshal(raw, &cfg); err != nil {
				t.Fatal(err)
			}
			tt.break_(cfg)
			wantProblem(t, tt.name, tt.want, checkSamconfig(cfg, tplParams))
		})
	}
}
