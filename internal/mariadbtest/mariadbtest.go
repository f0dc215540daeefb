// Package mariadbtest starts a real MariaDB server for tests (Debian's
// mariadb-server): a data directory made by mariadb-install-db, on a free
// loopback port, stopped and removed when the test ends. As root, mariadbd
// runs as the mysql user.
//
// Without MariaDB installed the test is skipped, except under CI=true,
// where a missing component is a failure.
package mariadbtest

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/testproc"
)

// Where Debian installs the programs: mariadbd is in /usr/sbin, which is
// not on a normal user's PATH.
var fallbacks = map[string]string{
	"mariadb-install-db": "/usr/bin/mariadb-install-db",
	"mariadbd":           "/usr/sbin/mariadbd",
}

// Server is one mariadbd process and its data directory.
type Server struct {
	// DSN reaches the test database as root, who needs no password from
	// loopback (go-sql-driver/mysql's form).
	DSN  string
	Addr string

	port     int
	dir      string
	mariadbd string
	runner   *user.User

	mu   sync.Mutex
	proc *testproc.Process
}

func find(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if _, err := os.Stat(fallbacks[name]); err == nil {
		return fallbacks[name]
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found (on PATH or at %s): CI must install mariadb-server (scripts/deps)", name, fallbacks[name])
	}
	t.Skipf("%s not found (on PATH or at %s); run `make deps` to install mariadb-server", name, fallbacks[name])
	return ""
}

// fast are server options that trade durability, which a test's data does
// not need, for a start-up of a second or two.
var fast = []string{
	"--innodb-flush-method=nosync", "--innodb-doublewrite=0", "--innodb-buffer-pool-size=16M",
	"--innodb-log-file-size=4M", "--skip-log-bin", "--skip-name-resolve",
}

// Start makes a data directory and runs mariadbd on it until the test
// ends.
func Start(t testing.TB) *Server {
	t.Helper()
	install := find(t, "mariadb-install-db")
	s := &Server{mariadbd: find(t, "mariadbd"), runner: testproc.Unprivileged(t, "mysql")}
	s.dir = testproc.OwnedDir(t, "mariadbtest-", s.runner)
	args := append([]string{"--no-defaults", "--datadir=" + s.data(), "--auth-root-authentication-method=normal"}, fast...)
	if s.runner != nil {
		args = append(args, "--user="+s.runner.Username)
	}
	if out, err := exec.Command(install, args...).CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	t.Cleanup(s.Stop)
	// A port found free can be taken before mariadbd binds it, by a test
	// running at the same time: then try another.
	for attempt := 1; ; attempt++ {
		s.port = redistest.FreePort(t)
		s.Addr = "127.0.0.1:" + strconv.Itoa(s.port)
		s.DSN = "root@tcp(" + s.Addr + ")/test"
		err := s.Start()
		if err == nil {
			return s
		}
		if !strings.Contains(err.Error(), "already in use") || attempt == 3 {
			t.Fatal(err)
		}
	}
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// Start (re)starts mariadbd on the same port and data, and returns once it
// says it is ready for connections.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return nil
	}
	args := append([]string{"--no-defaults", "--datadir=" + s.data(), "--port=" + strconv.Itoa(s.port),
		"--bind-address=127.0.0.1", "--socket=" + filepath.Join(s.dir, "s"), "--pid-file=" + filepath.Join(s.dir, "pid")}, fast...)
	if s.runner != nil {
		// mariadbd drops root itself, and refuses to run as root otherwise.
		args = append(args, "--user="+s.runner.Username)
	}
	proc, err := testproc.Start(exec.Command(s.mariadbd, args...), "ready for connections", 60*time.Second)
	if err != nil {
		return fmt.Errorf("mariadbd on %s: %w", s.Addr, err)
	}
	s.proc = proc
	return nil
}

// Stop shuts mariadbd down (SIGTERM) and waits for it; a lookup then finds
// the port closed, as when the database is down.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	s.proc.Terminate(syscall.SIGTERM, 20*time.Second)
	s.proc = nil
}
