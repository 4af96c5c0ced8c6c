package infra

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

var functions = []string{"api", "credentials", "syncnow", "scheduler", "sync"}

// buildFunction builds ./functions/<fn> as Lambda runs it (stripped, no cgo,
// lambda.norpc) for goos/goarch and returns the binary's path.
func buildFunction(tb testing.TB, fn, goarch string) string {
	tb.Helper()
	out := filepath.Join(tb.TempDir(), fn+"-"+goarch)
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w -buildid=", "-o", out, "./functions/"+fn)
	cmd.Dir = repoRoot(tb)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build %s: %v\n%s", fn, err, b)
	}
	return out
}

// BenchmarkBinarySize reports each function's stripped linux/arm64 binary
// (what the zip holds) in MiB. The timing of this benchmark means nothing.
func BenchmarkBinarySize(b *testing.B) {
	for _, fn := range functions {
		b.Run(fn, func(b *testing.B) {
			bin := buildFunction(b, fn, "arm64")
			st, err := os.Stat(bin)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
			}
			b.ReportMetric(float64(st.Size())/(1<<20), "MiB")
		})
	}
}

// BenchmarkColdStart measures a function's init: from exec to its first
// request to the Lambda Runtime API (GET /runtime/invocation/next), which
// the runtime client sends only after main has loaded the configuration and
// built its SDK clients. A small fake Runtime API stands in for Lambda's.
// Built for this machine's architecture (arm64 cannot run here).
func BenchmarkColdStart(b *testing.B) {
	for _, fn := range functions {
		b.Run(fn, func(b *testing.B) {
			bin := buildFunction(b, fn, goarchHost())
			ready := make(chan struct{}, 1)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case ready <- struct{}{}:
				default:
				}
				<-r.Context().Done() // hold the long poll: no invocation comes
			})}
			go func() { _ = srv.Serve(ln) }()
			defer srv.Close()
			env := append(os.Environ(),
				"AWS_LAMBDA_RUNTIME_API="+ln.Addr().String(),
				"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=x", "AWS_SECRET_ACCESS_KEY=x",
				"TABLE_NAME=merchantsync-bench", "SYNC_QUEUE_URL=http://127.0.0.1:1/q", "SECRET_PREFIX=merchantsync/bench",
				"AWS_LAMBDA_FUNCTION_NAME="+fn, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256", "AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
				"LOG_LEVEL=ERROR")
			for b.Loop() {
				cmd := exec.Command(bin)
				cmd.Env = env
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				select {
				case <-ready:
				case <-time.After(10 * time.Second):
					_ = cmd.Process.Kill()
					b.Fatalf("%s never asked for an invocation", fn)
				}
				b.StopTimer()
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				b.StartTimer()
			}
		})
	}
}
