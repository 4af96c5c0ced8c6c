// Package svixtest has svix (the Svix library for Node.js, an
// implementation of the Standard Webhooks verification independent of
// ours) check webhook requests, through infra/scripts/svix-verify.cjs. It is
// for tests; it imports nothing of merchantsync, so internal/webhook's own
// tests can use it too.
package svixtest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Case is one request to verify: the headers' values and the raw body.
type Case struct {
	Secret    string // whsec_…
	ID        string // webhook-id
	Timestamp string // webhook-timestamp
	Signature string // webhook-signature
	Body      []byte
}

// Verify returns svix's version and its verdict on each case, in order:
// "verified", "failed <svix's reason>" or "error <message>". A missing
// node or svix fails the test: it is never skipped.
func Verify(t testing.TB, cases []Case) (version string, verdicts []string) {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not on PATH: install Node.js 20 or newer, then run infra/scripts/install-svix.sh (make deps does)")
	}
	if _, err := os.Stat(filepath.Join(root, ".cache", "npm-tools", "node_modules", "svix", "package.json")); err != nil {
		t.Fatal("svix is not installed: run infra/scripts/install-svix.sh (make deps does)")
	}
	type line struct {
		Secret     string `json:"secret"`
		ID         string `json:"id"`
		Timestamp  string `json:"timestamp"`
		Signature  string `json:"signature"`
		BodyBase64 string `json:"body_base64"`
	}
	in := make([]line, len(cases))
	for i, c := range cases {
		in[i] = line{c.Secret, c.ID, c.Timestamp, c.Signature, base64.StdEncoding.EncodeToString(c.Body)}
	}
	body, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(root, "infra", "scripts", "svix-verify.cjs"))
	cmd.Stdin = bytes.NewReader(body)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("svix-verify.cjs: %v\n%s", err, stderr.Bytes())
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(cases)+1 || !strings.HasPrefix(lines[0], "svix ") {
		t.Fatalf("svix-verify.cjs printed %d lines for %d cases:\n%s", len(lines), len(cases), out)
	}
	return lines[0], lines[1:]
}

// repoRoot is the directory holding go.mod, above the working directory.
// (dynamotest.RepoRoot does the same, but importing it would bring
// internal/webhook back into its own tests: an import cycle.)
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("svixtest: no go.mod above the working directory")
		}
		dir = parent
	}
}
