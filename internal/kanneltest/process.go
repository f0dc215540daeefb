package kanneltest

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The programs a Kannel is made of, started and watched, and the ports
// and passwords they are given.

// process is a started program whose output lines are kept, so a test can
// wait for a line printed at any time, not only the first ready line.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}

	mu     sync.Mutex
	out    []string
	notify chan struct{} // closed and replaced at each new line
}

func startProcess(dir, name, path string, args ...string) (*process, error) {
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{}), notify: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		pw.Close()
	}()
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.out = append(p.out, sc.Text())
			close(p.notify)
			p.notify = make(chan struct{})
			p.mu.Unlock()
		}
		// Drain so the program never blocks on a full pipe.
		_, _ = io.Copy(io.Discard, pr)
	}()
	return p, nil
}

func (p *process) lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.out...)
}

func (p *process) lineCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.out)
}

// changed is closed when the next line arrives.
func (p *process) changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.notify
}

func (p *process) output() string {
	return strings.Join(p.lines(), "\n")
}

// waitFor returns the index of the first line from index from on that
// contains s. It gives up when p exits, or other (if not nil) does: the
// program whose action p would log. The caller shows the output.
func (p *process) waitFor(s string, from int, timeout time.Duration, other *process) (int, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var otherDone <-chan struct{}
	if other != nil {
		otherDone = other.done
	}
	for {
		changed := p.changed()
		lines := p.lines()
		for i := from; i < len(lines); i++ {
			if strings.Contains(lines[i], s) {
				return i, nil
			}
		}
		select {
		case <-changed:
		case <-p.done:
			return 0, fmt.Errorf("%s exited before %q", p.name, s)
		case <-otherDone:
			return 0, fmt.Errorf("%s exited before %s logged %q", other.name, p.name, s)
		case <-deadline.C:
			return 0, fmt.Errorf("%s: no %q within %s", p.name, s, timeout)
		}
	}
}

// terminate sends SIGTERM and waits up to grace for the exit, then kills;
// it reports whether the process stopped by itself.
func (p *process) terminate(grace time.Duration) bool {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return true
	case <-time.After(grace):
		p.kill()
		return false
	}
}

func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// freePorts returns n distinct loopback ports nobody listens on right now,
// taken below Linux's ephemeral range (32768-60999) so that no listener on
// port 0 nor outgoing connection gets one before Kannel binds it.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			t.Fatal("kannel: no free loopback ports between 20000 and 32000")
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+mathrand.IntN(12000)))
		if err != nil {
			continue
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func randomHex(t testing.TB) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
