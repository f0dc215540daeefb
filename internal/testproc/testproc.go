// Package testproc runs the external programs tests depend on (servers,
// gateways, Caddy itself) and waits for the line that says each is ready,
// rather than sleeping and hoping.
package testproc

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Process is a started command whose output is kept.
type Process struct {
	Cmd *exec.Cmd

	mu     sync.Mutex
	output []string
	// more is closed and replaced whenever a line arrives.
	more  chan struct{}
	lines chan string
	done  chan struct{}
}

// Start starts cmd and returns once a line of its combined output contains
// ready (or fails after timeout, or when the command exits first).
func Start(cmd *exec.Cmd, ready string, timeout time.Duration) (*Process, error) {
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p := &Process{Cmd: cmd, lines: make(chan string, 1), done: make(chan struct{}), more: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		pw.Close()
	}()
	go p.read(pr, ready)
	select {
	case <-p.lines:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before %q:\n%s", cmd.Path, ready, p.Output())
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("%s: no %q within %s:\n%s", cmd.Path, ready, timeout, p.Output())
	}
}

func (p *Process) read(r io.Reader, ready string) {
	defer close(p.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	signalled := false
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		p.output = append(p.output, line)
		close(p.more)
		p.more = make(chan struct{})
		p.mu.Unlock()
		if !signalled && strings.Contains(line, ready) {
			signalled = true
			p.lines <- line
		}
	}
}

// WaitFor waits until a line printed after the first `from` lines contains
// s, and returns the number of lines printed by then (pass it as `from` to
// wait for the next occurrence).
func (p *Process) WaitFor(s string, from int, timeout time.Duration) (int, error) {
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		for i := from; i < len(p.output); i++ {
			if strings.Contains(p.output[i], s) {
				p.mu.Unlock()
				return i + 1, nil
			}
		}
		from = len(p.output)
		more := p.more
		p.mu.Unlock()
		select {
		case <-more:
		case <-p.done:
			return from, fmt.Errorf("%s exited before printing %q", p.Cmd.Path, s)
		case <-deadline:
			return from, fmt.Errorf("%s printed no %q within %s", p.Cmd.Path, s, timeout)
		}
	}
}

// Lines is how many lines the process printed so far.
func (p *Process) Lines() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.output)
}

// Output is everything the process printed so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.output, "\n")
}

// Stop kills the process and waits for its output to end.
func (p *Process) Stop() {
	if p.Cmd.Process != nil {
		_ = p.Cmd.Process.Kill()
	}
	<-p.done
}
