package redistest

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestServerPid: Pid names the redis-server process while it runs, and 0
// once it is stopped.
func TestServerPid(t *testing.T) {
	s := Start(t)
	pid := s.Pid()
	if pid <= 0 {
		t.Fatalf("Pid() = %d while running", pid)
	}
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if !strings.HasPrefix(string(comm), "redis-server") {
		t.Fatalf("process %d is %q, want redis-server", pid, comm)
	}
	s.Stop()
	if got := s.Pid(); got != 0 {
		t.Fatalf("Pid() = %d after Stop, want 0", got)
	}
}
