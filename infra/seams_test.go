package infra

import (
	"os/exec"
	"strings"
	"testing"
)

// The domain's logic depends on no adapter: the sync engine, the HTTP
// handlers and the notifier see the world only through the ports of
// internal/merchantsync (and the protocol core internal/webhook), so no
// AWS service client nor any package implementing a port is among their
// dependencies. internal/app wires them.
func TestLogicImportsNoAdapter(t *testing.T) {
	forbidden := []string{
		"github.com/merchantsync/merchantsync/internal/dynamo",
		"github.com/merchantsync/merchantsync/internal/secrets",
		"github.com/merchantsync/merchantsync/internal/queue",
		"github.com/merchantsync/merchantsync/internal/rakuten",
		"github.com/merchantsync/merchantsync/internal/bus",
		"github.com/merchantsync/merchantsync/internal/kmsseal",
		"github.com/aws/aws-sdk-go-v2/service/",
	}
	for _, pkg := range []string{"./internal/syncer", "./internal/httpapi", "./internal/notify"} {
		cmd := exec.Command("go", "list", "-deps", pkg)
		cmd.Dir = repoRoot(t)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if strings.HasPrefix(dep, f) {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}
