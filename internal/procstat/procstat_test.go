package procstat

import (
	"os"
	"syscall"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       int64
		bad        bool
	}{
		{name: "plain", line: "1234 (redis-server) S 1 1234 1234 0 -1 4194560 500 0 0 0 71 29 0 0 20 0 5 0 100 0 0", want: 100},
		// a command name with spaces and a ')' of its own: counting
		// fields from the first ')' would read the wrong columns
		{name: "odd name", line: "7 (a b) c) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 5 0 0", want: 7},
		{name: "zero", line: "9 (caddy) S 1 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0", want: 0},
		{name: "short", line: "9 (caddy) S 1 9 9 0 -1 0 0 0 0 0 3", bad: true},
		{name: "no name", line: "9 caddy S 1 9 9 0 -1 0 0 0 0 0 3 4 0 0", bad: true},
		{name: "not a number", line: "9 (caddy) S 1 9 9 0 -1 0 0 0 0 0 x 4 0 0 20", bad: true},
		{name: "negative", line: "9 (caddy) S 1 9 9 0 -1 0 0 0 0 0 -3 4 0 0 20", bad: true},
	} {
		got, err := ParseStat([]byte(tc.line + "\n"))
		if tc.bad {
			if err == nil {
				t.Errorf("%s: %d, want an error", tc.name, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %d, %v; want %d", tc.name, got, err, tc.want)
		}
	}
}

func TestParseMachine(t *testing.T) {
	data := "cpu  100 2 30 4000 50 6 7 8 90 1\ncpu0 50 1 15 2000 25 3 3 4 45 0\nintr 1\n"
	busy, idle, err := ParseMachine([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	// user+nice+system+irq+softirq+steal; guest (90) is inside user already
	if busy != 100+2+30+6+7+8 || idle != 4000+50 {
		t.Fatalf("busy %d idle %d, want 153 and 4050", busy, idle)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8\n", "cpu 1 2 3\n", "cpu 1 2 3 x 5 6 7 8\n"} {
		if _, _, err := ParseMachine([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestProcessCountsOwnCPU: this process's CPU time read from /proc grows
// by what getrusage says it spent meanwhile (to two ticks: /proc rounds to
// the tick). It spins until getrusage has counted 100 ms of CPU, however
// long that takes on a busy machine.
func TestProcessCountsOwnCPU(t *testing.T) {
	before, err := Process(os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	r0 := rusageCPU(t)
	for rusageCPU(t)-r0 < 100*time.Millisecond {
	}
	spent := rusageCPU(t) - r0
	after, err := Process(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if grew := after - before; grew < spent-2*Tick {
		t.Fatalf("/proc says %s of CPU, getrusage %s", grew, spent)
	}
	if _, _, err := Machine(); err != nil {
		t.Fatal(err)
	}
}

func rusageCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
