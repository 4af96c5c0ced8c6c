package infra

// Who may touch publishers' credentials: the secrets and the key that
// encrypts them.

import (
	"fmt"
	"slices"
	"strings"
)

// checkSecretsAccess: only the credentials function creates or deletes
// secrets; only the sync function reads them; all scoped to the prefix.
func checkSecretsAccess(fns map[string]map[string]any) []string {
	var problems []string
	allowed := map[string][]string{
		"CredentialsFunction": {"secretsmanager:CreateSecret", "secretsmanager:PutSecretValue", "secretsmanager:DeleteSecret", "secretsmanager:TagResource"},
		// PutSecretValue: the refresh token Rakuten rotates on every refresh must be saved.
		"SyncFunction": {"secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"},
	}
	for id, fn := range fns {
		for _, s := range policyStatements(fn) {
			for _, a := range actions(s) {
				if !strings.HasPrefix(a, "secretsmanager:") {
					continue
				}
				if !slices.Contains(allowed[id], a) {
					problems = append(problems, fmt.Sprintf("%s: may not use %s", id, a))
				}
				for _, r := range list(s["Resource"]) {
					if !strings.Contains(fmt.Sprint(r), ":secret:merchantsync/${Stage}/*") {
						problems = append(problems, fmt.Sprintf("%s: secrets access not scoped to the merchantsync/${Stage}/ prefix: %v", id, r))
					}
				}
			}
		}
	}
	return problems
}

// checkKeyPolicy: every key policy statement adds something. Once the
// account root has kms:* on the key (which lets IAM policies grant its
// use), another Allow for the root, conditions or not, grants nothing new:
// restricting how the key is used belongs in the IAM grants.
func checkKeyPolicy(tpl map[string]any) []string {
	var problems []string
	for id, key := range resourcesOfType(tpl, "AWS::KMS::Key") {
		stmts := list(m(m(key["Properties"])["KeyPolicy"])["Statement"])
		var root any // the principal that has kms:* on the key
		for _, st := range stmts {
			st := m(st)
			if st["Effect"] == "Allow" && slices.Contains(actions(st), "kms:*") && st["Resource"] == "*" && st["Condition"] == nil {
				root = m(st["Principal"])["AWS"]
			}
		}
		for _, st := range stmts {
			st := m(st)
			if root != nil && st["Effect"] == "Allow" && !slices.Contains(actions(st), "kms:*") &&
				fmt.Sprint(m(st["Principal"])["AWS"]) == fmt.Sprint(root) {
				problems = append(problems, fmt.Sprintf("%s: key policy statement %v adds nothing to the account's kms:*", id, st["Sid"]))
			}
		}
	}
	return problems
}
