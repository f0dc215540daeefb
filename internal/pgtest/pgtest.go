// Package pgtest starts a real PostgreSQL server for tests (Debian's
// postgresql): a new cluster made by initdb in its own directory, on a free
// loopback port, stopped and removed when the test ends. As root, initdb
// and postgres (which refuse root) run as the postgres user.
//
// Without PostgreSQL installed the test is skipped, except under CI=true,
// where a missing component is a failure.
package pgtest

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/testproc"
)

// Server is one postgres process and its cluster.
type Server struct {
	// DSN reaches the postgres database as the postgres superuser, who
	// needs no password from loopback.
	DSN  string
	Addr string

	port   int
	dir    string
	bin    string
	runner *user.User

	mu   sync.Mutex
	proc *testproc.Process
}

// binDir finds initdb and postgres: on PATH, or in Debian's
// /usr/lib/postgresql/<version>/bin (not on PATH), the newest version.
func binDir(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real)
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("initdb and postgres not found (on PATH or in /usr/lib/postgresql/*/bin): CI must install postgresql (scripts/deps)")
	}
	t.Skip("initdb and postgres not found (on PATH or in /usr/lib/postgresql/*/bin); run `make deps` to install postgresql")
	return ""
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start makes a cluster and runs postgres on it until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{bin: binDir(t), runner: testproc.Unprivileged(t, "postgres")}
	s.dir = testproc.OwnedDir(t, "pgtest-", s.runner)
	initdb := exec.Command(filepath.Join(s.bin, "initdb"), "-D", filepath.Join(s.dir, "data"),
		"-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	if err := testproc.RunAs(initdb, s.runner); err != nil {
		t.Fatal(err)
	}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	t.Cleanup(s.Stop)
	// A port found free can be taken before postgres binds it, by a test
	// running at the same time: then try another.
	for attempt := 1; ; attempt++ {
		s.port = redistest.FreePort(t)
		s.Addr = "127.0.0.1:" + strconv.Itoa(s.port)
		s.DSN = fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", s.Addr)
		err := s.Start()
		if err == nil {
			return s
		}
		if !strings.Contains(err.Error(), "already in use") || attempt == 3 {
			t.Fatal(err)
		}
	}
}

// Start (re)starts postgres on the same port and data, and returns once it
// says it accepts connections.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return nil
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", filepath.Join(s.dir, "data"),
		"-p", strconv.Itoa(s.port), "-k", s.dir, "-c", "listen_addresses=127.0.0.1",
		// A test's data is thrown away: no need to make it durable.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=30", "-c", "shared_buffers=16MB")
	if err := testproc.RunAs(cmd, s.runner); err != nil {
		return err
	}
	proc, err := testproc.Start(cmd, "database system is ready to accept connections", 30*time.Second)
	if err != nil {
		return fmt.Errorf("postgres on %s: %w", s.Addr, err)
	}
	s.proc = proc
	return nil
}

// Stop shuts postgres down (a fast shutdown: SIGINT) and waits for it; a
// lookup then finds the port closed, as when the database is down.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	s.proc.Terminate(syscall.SIGINT, 10*time.Second)
	s.proc = nil
}
