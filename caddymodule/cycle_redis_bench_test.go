package caddymodule_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
)

// cbCaddyBin lets bench/run measure the cycles of another tree's Caddy (the
// tree before the one-script send) with this tree's clients, in the same
// run: the Caddyfile is the same, so only the plugin differs.
var (
	cbCaddyBin = flag.String("cycle.caddy", "", "BenchmarkSendVerifyCycle, BenchmarkSendRedisCommands: run this Caddy binary instead of building cmd/caddy")
	cbOmit     = flag.String("cycle.omit", "", "leave the Caddyfile's lines that hold this text out (an option an older tree does not know)")
)

// cbOmitLines is the Caddyfile without the lines -cycle.omit names.
func cbOmitLines(cf string) string {
	if *cbOmit == "" {
		return cf
	}
	var keep []string
	for _, line := range strings.Split(cf, "\n") {
		if !strings.Contains(line, *cbOmit) {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// BenchmarkSendRedisCommands is the send alone on Redis: whole step-ups one
// after another while a MONITOR connection watches the server. Markers
// (ECHO from another connection, which the server runs after the send has
// answered) frame each send, so the commands between them are the send's.
// It reports the round trips a send makes (commands from Caddy, each a
// round trip unless pipelined; those a script runs inside Redis are not
// counted), the scripts among them, those of the rest of the cycle (page
// and verify), and the send's own time.
//
//	go test -run XXX -bench SendRedisCommands -benchtime 200x ./caddymodule/
func BenchmarkSendRedisCommands(b *testing.B) {
	redistest.Require(b, "redis-server", "go")
	bin := cbBuild(b)
	srv := redistest.Start(b)
	c := cbStart(b, bin, "store redis redis://"+srv.Addr)
	rdb := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer rdb.Close()
	mon := startMonitor(b, srv.Addr)
	ctx := context.Background()
	mark := func(m string) {
		if err := rdb.Echo(ctx, m).Err(); err != nil {
			b.Fatal(err)
		}
		mon.until(b, m)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	var sendCmds, sendScripts, restCmds int
	var sendTime time.Duration
	n := int64(0)
	b.ResetTimer()
	for b.Loop() {
		n++
		mark(fmt.Sprint("cycle-", n))
		err := cbCycle(tr, c.base, c.box, n, func(send func() error) error {
			before, _ := mark2(mark, mon, fmt.Sprint("send-", n))
			restCmds += before
			t0 := time.Now()
			err := send()
			sendTime += time.Since(t0)
			cmds, scripts := mark2(mark, mon, fmt.Sprint("sent-", n))
			sendCmds += cmds
			sendScripts += scripts
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		after, _ := mark2(mark, mon, fmt.Sprint("cycled-", n))
		restCmds += after
	}
	b.ReportMetric(float64(sendCmds)/float64(n), "redis-cmds/send")
	b.ReportMetric(float64(sendScripts)/float64(n), "redis-scripts/send")
	b.ReportMetric(float64(restCmds)/float64(n), "redis-cmds/page+verify")
	b.ReportMetric(float64(sendTime.Microseconds())/float64(n), "send-µs")
}

// mark2 sets marker m and returns the commands from Caddy (and the scripts
// among them) the monitor saw since the last marker.
func mark2(mark func(string), mon *monitor, m string) (cmds, scripts int) {
	mark(m)
	return mon.take()
}

// monitor follows a MONITOR connection (read by hand: one line a command).
type monitor struct {
	lines chan string
	// counted since the last marker
	cmds, scripts int
}

func startMonitor(b *testing.B, addr string) *monitor {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, "MONITOR\r\n"); err != nil {
		b.Fatal(err)
	}
	m := &monitor{lines: make(chan string, 1024)}
	go func() {
		defer close(m.lines)
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			m.lines <- line
		}
	}()
	return m
}

// until counts the lines up to the ECHO of marker.
func (m *monitor) until(b *testing.B, marker string) {
	for {
		select {
		case line, ok := <-m.lines:
			if !ok {
				b.Fatal("the MONITOR connection ended")
			}
			switch {
			case strings.Contains(line, `"echo" "`):
				if strings.Contains(line, `"`+marker+`"`) {
					return
				}
			case strings.Contains(line, " lua]"), !strings.HasPrefix(line, "+") || strings.HasPrefix(line, "+OK"):
				// run by a script inside Redis, or not a command
			default:
				m.cmds++
				if strings.Contains(line, `"evalsha"`) || strings.Contains(line, `"eval"`) || strings.Contains(line, `"fcall"`) {
					m.scripts++
				}
			}
		case <-time.After(10 * time.Second):
			b.Fatalf("MONITOR never showed marker %s", marker)
		}
	}
}

func (m *monitor) take() (cmds, scripts int) {
	cmds, scripts, m.cmds, m.scripts = m.cmds, m.scripts, 0, 0
	return cmds, scripts
}
