package syncer

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/merchantsync/merchantsync/internal/rakuten/sandbox"
)

// BenchmarkSync reports the sync's CPU per merchant from this process's
// rusage. With the Rakuten sandbox in the same process, its JSON encoding
// of every page would be counted too (a quarter of the figure, by pprof),
// although in production Rakuten pays for it. So the benchmark runs the
// sandbox in a second process: this test binary again, with
// sandboxProcessEnv set, serving the sandbox and a small control API.

const sandboxProcessEnv = "MERCHANTSYNC_SANDBOX_PROCESS"

// TestSandboxProcess is the second process's body, not a test: without
// sandboxProcessEnv it skips. It serves until its stdin closes (the
// benchmark finished, or died).
func TestSandboxProcess(t *testing.T) {
	if os.Getenv(sandboxProcessEnv) != "1" {
		t.Skip("the Rakuten sandbox in its own process, for BenchmarkSync")
	}
	sb := sandbox.New(sandbox.Options{})
	mux := http.NewServeMux()
	mux.Handle("/", sb)
	mux.HandleFunc("POST /_ctl/account", func(w http.ResponseWriter, r *http.Request) {
		var a sandbox.Account
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		sb.AddAccount(a)
	})
	mux.HandleFunc("POST /_ctl/seed", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		n, err1 := strconv.Atoi(q.Get("n"))
		seed, err2 := strconv.ParseInt(q.Get("seed"), 10, 64)
		if err1 != nil || err2 != nil {
			http.Error(w, "n and seed must be numbers", http.StatusBadRequest)
			return
		}
		sb.SeedMerchants(q.Get("site"), n, seed)
	})
	mux.HandleFunc("POST /_ctl/status", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		mid, err := strconv.ParseInt(q.Get("mid"), 10, 64)
		if err == nil {
			err = sb.SetStatus(q.Get("site"), mid, q.Get("status"))
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	})
	mux.HandleFunc("GET /_ctl/merchants", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(sb.Merchants(r.URL.Query().Get("site")))
	})
	mux.HandleFunc("GET /_ctl/calls", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, sb.Calls(r.URL.Query().Get("endpoint")))
	})
	mux.HandleFunc("POST /_ctl/reset-calls", func(http.ResponseWriter, *http.Request) { sb.ResetCalls() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	fmt.Printf("sandbox-url=http://%s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	srv.Close()
}

// sandboxProcess is the benchmark's handle on the sandbox process: the
// sandbox.Server methods the benchmark uses, over HTTP.
type sandboxProcess struct {
	tb  testing.TB
	URL string
}

func startSandboxProcess(tb testing.TB) *sandboxProcess {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSandboxProcess$", "-test.count=1", "-test.v=false")
	cmd.Env = append(os.Environ(), sandboxProcessEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "sandbox-url="); ok {
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
			return &sandboxProcess{tb: tb, URL: u}
		}
	}
	tb.Fatalf("the sandbox process exited without serving: %v", sc.Err())
	return nil
}

func (p *sandboxProcess) call(method, path string, q url.Values, body io.Reader, out any) {
	p.tb.Helper()
	req, err := http.NewRequest(method, p.URL+path+"?"+q.Encode(), body)
	if err != nil {
		p.tb.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		p.tb.Fatalf("sandbox %s %s: %s %s", method, path, resp.Status, b)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			p.tb.Fatal(err)
		}
	}
}

func (p *sandboxProcess) AddAccount(a sandbox.Account) {
	b, _ := json.Marshal(a)
	p.call(http.MethodPost, "/_ctl/account", nil, strings.NewReader(string(b)), nil)
}

func (p *sandboxProcess) SeedMerchants(site string, n int, seed int64) {
	p.call(http.MethodPost, "/_ctl/seed", url.Values{"site": {site}, "n": {strconv.Itoa(n)}, "seed": {strconv.FormatInt(seed, 10)}}, nil, nil)
}

func (p *sandboxProcess) SetStatus(site string, mid int64, status string) {
	p.call(http.MethodPost, "/_ctl/status", url.Values{"site": {site}, "mid": {strconv.FormatInt(mid, 10)}, "status": {status}}, nil, nil)
}

func (p *sandboxProcess) Merchants(site string) []sandbox.Merchant {
	var ms []sandbox.Merchant
	p.call(http.MethodGet, "/_ctl/merchants", url.Values{"site": {site}}, nil, &ms)
	return ms
}

func (p *sandboxProcess) Calls(endpoint string) int {
	var n int
	p.call(http.MethodGet, "/_ctl/calls", url.Values{"endpoint": {endpoint}}, nil, &n)
	return n
}

func (p *sandboxProcess) ResetCalls() { p.call(http.MethodPost, "/_ctl/reset-calls", nil, nil, nil) }
