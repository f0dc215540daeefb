package caddymodule_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/procstat"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
)

// -cycle.callgrind runs Caddy and redis-server under callgrind and counts
// their instructions over the measured cycles (give it a small
// -test.benchtime and -cycle.warmup: a cycle takes about a hundred times
// as long). GODEBUG as bench/run sets it for Caddy under callgrind:
// valgrind trips on Go's preemption signals and cannot decode RDTSCP.
var cbCallgrind = flag.String("cycle.callgrind", "", "BenchmarkSendVerifyCycle: run Caddy and redis-server under callgrind, with their output files in this directory, and report their instructions per cycle")

func cbCallgrindWrap(name string) []string {
	if *cbCallgrind == "" {
		return nil
	}
	return []string{"valgrind", "--tool=callgrind", "--callgrind-out-file=" + filepath.Join(*cbCallgrind, name+".out")}
}

// cbSplit is where the CPU of a run of cycles went: Caddy (schedstat, to
// the nanosecond, as caddy-cpu-µs/cycle has always been), redis-server and
// the benchmark's own process (its clients and the outbox reader), both
// from /proc/<pid>/stat, and the machine's busy and idle time from
// /proc/stat; the machine's busy time less those three is everyone else
// (on a shared machine, the other engineers' builds). It also counts the
// commands redis-server ran (INFO commandstats, those run inside scripts
// included).
type cbSplit struct {
	caddyPid         int
	redis            *redistest.Server
	rdb              *goredis.Client
	caddy, srv, self time.Duration
	busy, idle       time.Duration
	cmds             map[string]int64
}

func cbSplitStart(b *testing.B, caddyPid int, redis *redistest.Server) *cbSplit {
	s := &cbSplit{caddyPid: caddyPid, redis: redis}
	if redis != nil {
		s.rdb = goredis.NewClient(&goredis.Options{Addr: redis.Addr})
		b.Cleanup(func() { s.rdb.Close() })
		s.cmds = cbCommandStats(b, s.rdb)
	}
	if *cbCallgrind != "" {
		cbCallgrindZero(b, caddyPid)
		if redis != nil {
			cbCallgrindZero(b, redis.Pid())
		}
	}
	s.caddy, s.srv, s.self, s.busy, s.idle = s.read(b)
	return s
}

func (s *cbSplit) read(b *testing.B) (caddy, srv, self, busy, idle time.Duration) {
	caddy = cbCPUTime(s.caddyPid)
	if s.redis != nil {
		var err error
		if srv, err = procstat.Process(s.redis.Pid()); err != nil {
			b.Fatal(err)
		}
	}
	self, err := procstat.Process(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	if busy, idle, err = procstat.Machine(); err != nil {
		b.Fatal(err)
	}
	return caddy, srv, self, busy, idle
}

// report adds the split per cycle to the benchmark's metrics.
func (s *cbSplit) report(b *testing.B, cycles int) {
	caddy, srv, self, busy, idle := s.read(b)
	if cycles == 0 {
		return
	}
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 / float64(cycles) }
	caddy, srv, self, busy, idle = caddy-s.caddy, srv-s.srv, self-s.self, busy-s.busy, idle-s.idle
	b.ReportMetric(per(caddy), "caddy-cpu-µs/cycle")
	if s.redis != nil {
		b.ReportMetric(per(srv), "redis-cpu-µs/cycle")
		b.ReportMetric(per(caddy+srv), "server-cpu-µs/cycle")
	}
	b.ReportMetric(per(self), "client-cpu-µs/cycle")
	b.ReportMetric(per(busy-caddy-srv-self), "other-cpu-µs/cycle")
	b.ReportMetric(per(idle), "idle-µs/cycle")
	if s.redis != nil {
		s.reportCommands(b, cycles)
	}
	if *cbCallgrind != "" {
		b.ReportMetric(float64(cbCallgrindDump(b, s.caddyPid, "caddy"))/float64(cycles), "caddy-Ir/cycle")
		if s.redis != nil {
			b.ReportMetric(float64(cbCallgrindDump(b, s.redis.Pid(), "redis"))/float64(cycles), "redis-Ir/cycle")
		}
	}
}

// reportCommands reports redis-server's commands per cycle (those inside
// scripts included, the INFO that counts them not) and logs them by name.
func (s *cbSplit) reportCommands(b *testing.B, cycles int) {
	after := cbCommandStats(b, s.rdb)
	type cmd struct {
		name string
		n    int64
	}
	var all []cmd
	var total int64
	for name, n := range after {
		if d := n - s.cmds[name]; d > 0 && name != "info" {
			all = append(all, cmd{name, d})
			total += d
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n || all[i].n == all[j].n && all[i].name < all[j].name })
	var line []string
	for _, c := range all {
		line = append(line, fmt.Sprintf("%s %.2f", c.name, float64(c.n)/float64(cycles)))
	}
	b.ReportMetric(float64(total)/float64(cycles), "redis-cmds/cycle")
	b.Logf("redis-server's commands per cycle (scripts' included): %s", strings.Join(line, ", "))
}

// cbCommandStats is INFO commandstats: calls per command name.
func cbCommandStats(b *testing.B, rdb *goredis.Client) map[string]int64 {
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	return cbParseCommandStats(info)
}

// cbParseCommandStats reads "cmdstat_<name>:calls=<n>,..." lines.
func cbParseCommandStats(info string) map[string]int64 {
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		if n, err := strconv.ParseInt(calls, 10, 64); err == nil && strings.HasPrefix(rest, "calls=") {
			out[strings.TrimPrefix(name, "cmdstat_")] = n
		}
	}
	return out
}

func cbCallgrindZero(b *testing.B, pid int) {
	if out, err := exec.Command("callgrind_control", "-z", strconv.Itoa(pid)).CombinedOutput(); err != nil {
		b.Fatalf("callgrind_control -z %d: %v\n%s", pid, err, out)
	}
}

// cbCallgrindDump dumps the counts of the process pid (valgrind's
// --callgrind-out-file name.out: the dump is name.out.1) and returns their
// total instructions.
func cbCallgrindDump(b *testing.B, pid int, name string) int64 {
	// A run before this one (the benchmark's b.N = 1 round, another Caddy
	// process) left its dump under the same name: remove it, so that the
	// wait below is for this dump.
	file := filepath.Join(*cbCallgrind, name+".out.1")
	if err := os.Remove(file); err != nil && !os.IsNotExist(err) {
		b.Fatal(err)
	}
	if out, err := exec.Command("callgrind_control", "-d", strconv.Itoa(pid)).CombinedOutput(); err != nil {
		b.Fatalf("callgrind_control -d %d: %v\n%s", pid, err, out)
	}
	// The file is written after callgrind_control returns: look until it
	// ends with its totals, within a deadline.
	var data []byte
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(string(data), "\ntotals:"); {
		if time.Now().After(deadline) {
			b.Fatalf("%s: no totals line within 30 s", file)
		}
		time.Sleep(100 * time.Millisecond)
		data, _ = os.ReadFile(file)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "summary: "); ok {
			n, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatalf("%s has no summary line", file)
	return 0
}

// cbCPUTime is the CPU time all threads of process pid have had, from
// /proc/<pid>/task/*/schedstat (nanoseconds on a CPU first), or -1 where
// there is no such file.
func cbCPUTime(pid int) time.Duration {
	stats, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if len(stats) == 0 {
		return -1
	}
	var total time.Duration
	for _, f := range stats {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // a thread that ended
		}
		var ns int64
		if _, err := fmt.Sscan(string(data), &ns); err == nil {
			total += time.Duration(ns)
		}
	}
	return total
}
