package testenv

import (
	"fmt"
	"net"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A localServer is an emulator that a test binary starts at most once, on a
// free loopback port, and stops when it exits (Main, or the parent-death
// signal). moto is one; nothing in it is moto's own, so DynamoDB Local can
// be another.
type localServer struct {
	name string
	// start returns the command serving on port and the check that it
	// answers at an endpoint.
	start func(port int) (*exec.Cmd, func(endpoint string) bool, error)

	once    sync.Once
	ep      string
	err     error
	startup atomic.Int64 // nanoseconds until it answered
}

var (
	stopMu sync.Mutex
	stops  []func()
)

// Stop kills every server this binary started. Main calls it; call it
// yourself from a TestMain that cannot use Main.
func Stop() {
	stopMu.Lock()
	defer stopMu.Unlock()
	for _, stop := range stops {
		stop()
	}
	stops = nil
}

func (s *localServer) endpoint() (string, error) {
	s.once.Do(func() { s.ep, s.err = s.run() })
	return s.ep, s.err
}

// startupTime is how long the server took to answer; zero when it was not
// started (or has not answered yet).
func (s *localServer) startupTime() time.Duration { return time.Duration(s.startup.Load()) }

func (s *localServer) run() (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	cmd, answers, err := s.start(port)
	if err != nil {
		return "", err
	}
	out := &tailBuffer{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	// Dies with the test binary even when Main is not used.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start %s: %w", s.name, err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	stop := func() {
		_ = cmd.Process.Kill()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
	}
	stopMu.Lock()
	stops = append(stops, stop)
	stopMu.Unlock()

	ep := fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		select {
		case <-done:
			return "", fmt.Errorf("%s exited (%v): %s", s.name, waitErr, out)
		default:
		}
		if answers(ep) {
			s.startup.Store(int64(time.Since(begin)))
			return ep, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return "", fmt.Errorf("%s did not answer on %s within 60s: %s", s.name, ep, out)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailBuffer keeps the last max bytes written: an emulator logs a line per
// request, and what explains a crash is at the end.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if over := len(w.b) - w.max; over > 0 {
		w.b = append(w.b[:0], w.b[over:]...)
	}
	return len(p), nil
}

func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}
