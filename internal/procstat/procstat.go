// Package procstat reads the CPU time of processes and of the whole
// machine from Linux's /proc, for benchmarks that split a run's CPU
// between the processes that share the machine (a server, its store, the
// benchmark's own clients, everyone else).
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// Tick is the unit of /proc's CPU times (USER_HZ, which the kernel keeps
// at 100 for user space on every architecture Go builds for on Linux).
const Tick = 10 * time.Millisecond

// ParseStat is the CPU time (utime + stime, in ticks) of the process whose
// /proc/<pid>/stat is data. The command name (field 2) is in parentheses
// and may itself hold spaces and parentheses, so fields are counted from
// the last ')'.
func ParseStat(data []byte) (int64, error) {
	end := bytes.LastIndexByte(data, ')')
	if end < 0 {
		return 0, errors.New("procstat: no command name in the stat line")
	}
	// After ") ": field 3 (state) onwards; utime and stime are fields 14
	// and 15, the 12th and 13th here.
	f := bytes.Fields(data[end+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("procstat: %d fields after the command name, want at least 13", len(f))
	}
	var total int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("procstat: CPU time %q", v)
		}
		total += n
	}
	return total, nil
}

// Process is the CPU time process pid has had, all its threads, user and
// system, to the tick.
func Process(pid int) (time.Duration, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	ticks, err := ParseStat(data)
	return time.Duration(ticks) * Tick, err
}

// ParseMachine reads the first line of /proc/stat ("cpu  user nice system
// idle iowait irq softirq steal guest guest_nice", in ticks, summed over
// every CPU): busy is user, nice, system, irq, softirq and steal (guest
// time is already inside user and nice), idle is idle and iowait.
func ParseMachine(data []byte) (busy, idle int64, err error) {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0, 0, fmt.Errorf("procstat: /proc/stat starts %q, want the cpu line with 8 times", line)
	}
	var v [8]int64
	for i := range v {
		if v[i], err = strconv.ParseInt(string(f[i+1]), 10, 64); err != nil || v[i] < 0 {
			return 0, 0, fmt.Errorf("procstat: /proc/stat time %q", f[i+1])
		}
	}
	return v[0] + v[1] + v[2] + v[5] + v[6] + v[7], v[3] + v[4], nil
}

// Machine is the CPU time every CPU of the machine has spent busy and idle
// since boot.
func Machine() (busy, idle time.Duration, err error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	b, i, err := ParseMachine(data)
	return time.Duration(b) * Tick, time.Duration(i) * Tick, err
}
