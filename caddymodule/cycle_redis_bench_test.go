package caddymodule_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
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

// BenchmarkSendRedisCommands counts the Redis round trips of each step of a
// step-up: whole step-ups one after another while a MONITOR connection
// watches the server. Markers (ECHO from another connection, which the
// server runs after the step has answered) frame each step, so the commands
// between them are the step's. A command from Caddy is one round trip
// (nothing on this path pipelines on one server); those a script runs
// inside Redis are not counted. Each cycle opens the page, sends a code,
// asks again at once (a resend the cooldown refuses: a refused send) and
// verifies the code. It reports the round trips of each step, the scripts
// among the send's, and the send's own time.
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
	mark := func(m string) (cmds, scripts int) {
		if err := rdb.Echo(ctx, m).Err(); err != nil {
			b.Fatal(err)
		}
		mon.until(b, m)
		return mon.take()
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	var trips rtTrips
	n := int64(0)
	b.ResetTimer()
	for b.Loop() {
		n++
		mark(fmt.Sprint("cycle-", n))
		if err := rtCycle(tr, c.base, c.box, n, mark, &trips); err != nil {
			b.Fatal(err)
		}
	}
	f := float64(n)
	b.ReportMetric(float64(trips.page)/f, "redis-trips/page")
	b.ReportMetric(float64(trips.send)/f, "redis-trips/send")
	b.ReportMetric(float64(trips.sendScripts)/f, "redis-scripts/send")
	b.ReportMetric(float64(trips.refused)/f, "redis-trips/refused-send")
	b.ReportMetric(float64(trips.verify)/f, "redis-trips/verify")
	b.ReportMetric(float64(trips.sendTime.Microseconds())/f, "send-µs")
}

// rtTrips adds up the round trips of each step over the cycles.
type rtTrips struct {
	page, send, sendScripts, refused, verify int
	sendTime                                 time.Duration
}

// rtCycle is cbCycle with a marker after each step, and a refused resend
// between the send and the verification.
func rtCycle(tr *http.Transport, base string, box *cbOutbox, n int64, mark func(string) (int, int), t *rtTrips) error {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Transport: tr, Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	user, phone := fmt.Sprint("trips-", n), fmt.Sprintf("+81902%07d", n)
	do := func(method, path string, form url.Values) (int, string, error) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(form.Encode()))
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Header.Set("X-User", user)
		req.Header.Set("X-Phone", phone)
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
	status, page, err := do("GET", "/_stepup/?r=%2Fprivate", nil)
	csrf, ok := cbCSRFOf(page)
	if err != nil || status != 200 || !ok {
		return fmt.Errorf("page: %d %v", status, err)
	}
	cmds, _ := mark(fmt.Sprint("page-", n))
	t.page += cmds
	wait := box.expect(phone)
	form := url.Values{"csrf": {csrf}, "r": {"/private"}}
	t0 := time.Now()
	if status, _, err := do("POST", "/_stepup/send", form); err != nil || status != http.StatusSeeOther {
		return fmt.Errorf("send: %d %v", status, err)
	}
	t.sendTime += time.Since(t0)
	cmds, scripts := mark(fmt.Sprint("sent-", n))
	t.send += cmds
	t.sendScripts += scripts
	if status, _, err := do("POST", "/_stepup/send", form); err != nil || status != http.StatusTooManyRequests {
		return fmt.Errorf("a resend within the cooldown: %d %v; want 429", status, err)
	}
	cmds, _ = mark(fmt.Sprint("refused-", n))
	t.refused += cmds
	var code string
	select {
	case body := <-wait:
		if code, ok = cbCodeOf(body); !ok {
			return fmt.Errorf("no code in %q", body)
		}
	case <-time.After(10 * time.Second):
		return fmt.Errorf("no message for %s", phone)
	}
	form.Set("code", code)
	if status, _, err := do("POST", "/_stepup/verify", form); err != nil || status != http.StatusSeeOther {
		return fmt.Errorf("verify: %d %v", status, err)
	}
	cmds, _ = mark(fmt.Sprint("verified-", n))
	t.verify += cmds
	return nil
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
