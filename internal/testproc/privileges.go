package testproc

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Unprivileged is who runs a server that refuses to run as root
// (PostgreSQL's initdb and postgres, MariaDB's mariadbd) when the tests
// run as root: the first of names that exists, or nobody. Not root, the
// tests' own user runs it, and Unprivileged returns nil.
func Unprivileged(t testing.TB, names ...string) *user.User {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	for _, name := range append(names, "nobody") {
		if u, err := user.Lookup(name); err == nil {
			return u
		}
	}
	t.Fatalf("running as root, and none of the users %v exists to run the server as", names)
	return nil
}

// RunAs makes cmd run as u (nil: as the tests' own user).
func RunAs(cmd *exec.Cmd, u *user.User) error {
	if u == nil {
		return nil
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return fmt.Errorf("user %s: uid %q: %w", u.Username, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return fmt.Errorf("user %s: gid %q: %w", u.Username, u.Gid, err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	return nil
}

// OwnedDir returns a new directory for a server's data that u may write
// (nil: the tests' own user), removed when the test ends. t.TempDir will
// not do as root: its parent is root's alone.
func OwnedDir(t testing.TB, prefix string, u *user.User) string {
	t.Helper()
	if u == nil {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Terminate asks the process to stop with sig (a clean shutdown, which
// frees what a kill would leave behind) and kills it if it has not exited
// within grace.
func (p *Process) Terminate(sig os.Signal, grace time.Duration) {
	if p.Cmd.Process != nil {
		_ = p.Cmd.Process.Signal(sig)
	}
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Stop()
	}
}
