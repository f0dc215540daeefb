// Package redistest starts real redis-server processes for tests: a single
// server or a three-master Redis Cluster, on free loopback ports, in a
// temporary directory, stopped when the test ends. Nothing here uses a Redis
// that happens to run on the machine.
//
// Without redis-server on PATH the test is skipped, except under CI=true,
// where a missing component is a failure.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/testproc"
)

// Require skips (or, under CI=true, fails) the test when a command is
// missing.
func Require(t testing.TB, commands ...string) {
	t.Helper()
	for _, c := range commands {
		if _, err := exec.LookPath(c); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found on PATH: CI must install it (scripts/deps)", c)
			}
			t.Skipf("%s not found on PATH; run `make deps` to install it", c)
		}
	}
}

// FreePort returns a loopback port nobody listens on right now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Server is one redis-server process.
type Server struct {
	Addr string
	port int
	dir  string
	args []string
	wrap []string

	mu   sync.Mutex
	proc *testproc.Process
}

// Start runs a redis-server for the test and stops it at cleanup.
func Start(t testing.TB, extraArgs ...string) *Server {
	t.Helper()
	Require(t, "redis-server")
	port := FreePort(t)
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), port: port, dir: t.TempDir(), args: extraArgs}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartUnder is Start with redis-server run by a wrapper command (wrap,
// e.g. valgrind and its options, to count its instructions), waiting up
// to a minute for it to accept connections.
func StartUnder(t testing.TB, wrap []string, extraArgs ...string) *Server {
	t.Helper()
	Require(t, "redis-server", wrap[0])
	port := FreePort(t)
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), port: port, dir: t.TempDir(), args: extraArgs, wrap: wrap}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Pid is the process id of the running redis-server (of its wrapper, under
// StartUnder: valgrind runs the server in its own process), or 0 when it
// is stopped.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.Cmd.Process == nil {
		return 0
	}
	return s.proc.Cmd.Process.Pid
}

// Start (re)starts the process on the same port and waits until it says it
// accepts connections.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return nil
	}
	args := append([]string{
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--daemonize", "no", "--loglevel", "notice",
	}, s.args...)
	argv, wait := append([]string{"redis-server"}, args...), 20*time.Second
	if len(s.wrap) > 0 {
		argv, wait = append(append([]string{}, s.wrap...), argv...), time.Minute
	}
	proc, err := testproc.Start(exec.Command(argv[0], argv[1:]...), "Ready to accept connections", wait)
	if err != nil {
		return fmt.Errorf("redis-server on %s: %w", s.Addr, err)
	}
	s.proc = proc
	return nil
}

// Stop kills the process (as a crash would) and waits for it to exit.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	s.proc.Stop()
	s.proc = nil
}

// Pause freezes the server (SIGSTOP): connections stay open but nothing
// answers, as with a server that is overloaded or cut off. Resume undoes it.
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume continues a paused server.
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return fmt.Errorf("redis-server on %s is not running", s.Addr)
	}
	return s.proc.Cmd.Process.Signal(sig)
}

// Cluster is a three-master Redis Cluster.
type Cluster struct {
	Addrs   []string
	Servers []*Server
}

// StartCluster runs three cluster-enabled servers, joins them with
// redis-cli --cluster create, and waits until every node reports the
// cluster ok.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	Require(t, "redis-server", "redis-cli")
	c := &Cluster{}
	for i := 0; i < 3; i++ {
		// The cluster bus port is chosen too: by default it is the port
		// plus 10000, which nothing checked was free.
		bus := FreePort(t)
		s := Start(t, "--cluster-enabled", "yes",
			"--cluster-port", strconv.Itoa(bus),
			"--cluster-config-file", filepath.Join(t.TempDir(), "nodes-"+strconv.Itoa(bus)+".conf"),
			"--cluster-node-timeout", "5000")
		c.Servers = append(c.Servers, s)
		c.Addrs = append(c.Addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	// The nodes learn of each other by gossip, which has no event to wait
	// on: ask each node until it says ok, within a deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, addr := range c.Addrs {
		cl := goredis.NewClient(&goredis.Options{Addr: addr})
		for {
			info, err := cl.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			select {
			case <-ctx.Done():
				cl.Close()
				t.Fatalf("cluster node %s not ok: %v %s", addr, err, info)
			case <-time.After(50 * time.Millisecond):
			}
		}
		cl.Close()
	}
	return c
}
