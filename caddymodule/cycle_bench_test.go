package caddymodule_test

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/testproc"
)

// BenchmarkSendVerifyCycle runs whole step-ups over HTTP against a real
// Caddy process built from cmd/caddy, with the console gateway writing to an
// outbox: open the page, send a code, read it from the outbox, verify it.
// Each cycle is a new identity and number, so no cooldown or limit is hit.
// It reports cycles per second, the 99th percentile cycle time and where
// the CPU went per cycle (cbSplit): Caddy (all its threads, from /proc),
// redis-server, the two together (server-cpu), the benchmark's clients,
// everyone else on the machine, and the machine's idle time; on Redis also
// the commands redis-server ran per cycle, those inside scripts included.
// On a shared machine the CPU figures move far less with other processes'
// load than the rate and p99 do. -cycle.callgrind counts instructions
// instead.
//
//	go test -run XXX -bench SendVerifyCycle -benchtime 2000x ./caddymodule/
//
// -cpuprofile profiles the clients; what Caddy does is in the profile that
// -cycle.cpuprofile=<file> takes from Caddy's admin endpoint while the
// cycles run (<file>.memory_store, <file>.redis_store; give the run at
// least -cycle.seconds, e.g. -benchtime 8s); -cycle.allocprofile=<file>
// likewise takes what Caddy allocated.
func BenchmarkSendVerifyCycle(b *testing.B) {
	redistest.Require(b, "redis-server", "go")
	bin := cbBuild(b)
	b.Run("memory store", func(b *testing.B) { cbRun(b, bin, "store memory", nil) })
	b.Run("redis store", func(b *testing.B) {
		srv := redistest.Start(b)
		if wrap := cbCallgrindWrap("redis"); wrap != nil {
			srv = redistest.StartUnder(b, wrap)
		}
		cbRun(b, bin, "store redis redis://"+srv.Addr, srv)
	})
}

var (
	cbProfile        = flag.String("cycle.cpuprofile", "", "BenchmarkSendVerifyCycle: write Caddy's CPU profile to this file, suffixed with the store")
	cbProfileSeconds = flag.Int("cycle.seconds", 5, "BenchmarkSendVerifyCycle: how long -cycle.cpuprofile and -cycle.allocprofile profile Caddy")
	cbAllocProfile   = flag.String("cycle.allocprofile", "", "BenchmarkSendVerifyCycle: write what Caddy allocated during -cycle.seconds (a delta allocs profile) to this file, suffixed with the store")
	cbWarm           = flag.Int("cycle.warmup", 500, "BenchmarkSendVerifyCycle: cycles run on each fresh Caddy before the timer starts")
)

func cbBuild(b *testing.B) string {
	if *cbCaddyBin != "" {
		return *cbCaddyBin // another tree's build, to compare (bench/run)
	}
	root, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), "caddy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(root)))
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build caddy: %v\n%s", err, out)
	}
	return bin
}

const cbCaddyfile = `{
	admin localhost:{{admin}}
	persist_config off
	http_port {{http}}
	https_port {{https}}
	skip_install_trust
	default_bind 127.0.0.1
	# The test client stands for a proxy in front of Caddy that sets X-User
	# (headers_set_by trusted_proxy).
	servers {
		trusted_proxies static 127.0.0.1/32
	}
	storage file_system {{dir}}/storage
	log {
		exclude http.handlers.sms_stepup
	}
}

http://localhost:{{http}} {
	sms_stepup /private* {
		identity {http.request.header.X-User}
		headers_set_by trusted_proxy # newer-option
		phone {http.request.header.X-Phone}
		signing_key "benchmark-signing-key-0123456789abcdefghij"
		{{store}}
		# Every cycle comes from one address and one number range: keep the
		# limits counted (their cost is part of a send) but out of reach.
		limits {
			phone 100000000
			identity 100000000
			ip 100000000
			prefix 100000000
			country 100000000
			daily_budget 100000000
		}
		# (Lines marked newer-option are left out for an older tree.)
		# The fraud guard counts every send too, but the benchmark's
		# clients ask for codes in a burst before the first is typed:
		# judge a range only after far more sends than any run makes.
		fraud_guard { # newer-option
			min_sends 100000 # newer-option
		} # newer-option
		gateway console {
			outbox {{dir}}/outbox.jsonl
		}
	}
	respond "ok" 200
}
`

// cbCaddy is a Caddy process of cbCaddyfile, started by cbStart.
type cbCaddy struct {
	base, admin string
	pid         int
	box         *cbOutbox
}

// cbStart runs bin with cbCaddyfile and store until the benchmark ends.
func cbStart(b *testing.B, bin, store string) *cbCaddy {
	dir := b.TempDir()
	httpPort, adminPort := redistest.FreePort(b), redistest.FreePort(b)
	cf := strings.NewReplacer("{{admin}}", fmt.Sprint(adminPort), "{{http}}", fmt.Sprint(httpPort),
		"{{https}}", fmt.Sprint(redistest.FreePort(b)), "{{dir}}", dir, "{{store}}", store).Replace(cbCaddyfile)
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(cbOmitLines(cf)), 0o600); err != nil {
		b.Fatal(err)
	}
	argv, wait := []string{bin, "run", "--config", filepath.Join(dir, "Caddyfile")}, time.Minute
	env := append(os.Environ(), "XDG_DATA_HOME="+dir+"/data", "XDG_CONFIG_HOME="+dir+"/config")
	if wrap := cbCallgrindWrap("caddy"); wrap != nil {
		argv, wait = append(wrap, argv...), 5*time.Minute
		env = append(env, "GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	proc, err := testproc.Start(cmd, "serving initial configuration", wait)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(proc.Stop)
	box := cbTail(b, filepath.Join(dir, "outbox.jsonl"))
	b.Cleanup(box.stop)
	return &cbCaddy{base: fmt.Sprintf("http://localhost:%d", httpPort), admin: fmt.Sprintf("http://localhost:%d", adminPort),
		pid: cmd.Process.Pid, box: box}
}

// cbRun runs the cycles against a Caddy of store; redis is the store's
// server, for the CPU split (nil for the memory store).
func cbRun(b *testing.B, bin, store string, redis *redistest.Server) {
	c := cbStart(b, bin, store)
	base, box := c.base, c.box

	var seq atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(8)
	// The clients' own garbage collection is CPU the servers' cores lose:
	// collect less often in this process (memory is plentiful here).
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	if err := cbWarmUp(base, box, &seq, *cbWarm); err != nil {
		b.Fatal(err)
	}
	profiled := make(chan error, 1)
	b.ResetTimer()
	split := cbSplitStart(b, c.pid, redis)
	start := time.Now()
	suffix := "." + strings.ReplaceAll(b.Name()[strings.LastIndex(b.Name(), "/")+1:], " ", "_")
	if *cbProfile != "" {
		go func() { profiled <- cbCaddyProfile(c.admin, "profile", *cbProfile+suffix) }()
	}
	allocated := make(chan error, 1)
	if *cbAllocProfile != "" {
		go func() { allocated <- cbCaddyProfile(c.admin, "allocs", *cbAllocProfile+suffix) }()
	}
	b.RunParallel(func(pb *testing.PB) {
		tr := &http.Transport{MaxIdleConnsPerHost: 4}
		var local []time.Duration
		for pb.Next() {
			n := seq.Add(1)
			t0 := time.Now()
			if err := cbCycle(tr, base, box, n, nil); err != nil {
				b.Error(err)
				return
			}
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	split.report(b, len(lat))
	b.StopTimer()
	if *cbProfile != "" {
		if err := <-profiled; err != nil {
			b.Error(err)
		}
	}
	if *cbAllocProfile != "" {
		if err := <-allocated; err != nil {
			b.Error(err)
		}
	}
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "cycles/s")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}

// cbWarmUp runs n cycles from 8 clients before anything is measured: a
// fresh Caddy's first thousand or so cycles (its heap growing through
// many small collections, the store's scripts loaded, connections dialled)
// run at about two thirds of the rate it keeps afterwards, and a run of
// 2,000 cycles measured mostly that. The identities go on from seq.
func cbWarmUp(base string, box *cbOutbox, seq *atomic.Int64, n int) error {
	var left atomic.Int64
	left.Store(int64(n))
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			tr := &http.Transport{MaxIdleConnsPerHost: 4}
			defer tr.CloseIdleConnections()
			for left.Add(-1) >= 0 {
				if err := cbCycle(tr, base, box, seq.Add(1), nil); err != nil {
					errs <- fmt.Errorf("warm-up: %w", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// cbCaddyProfile takes a profile of the Caddy at admin over -cycle.seconds
// (kind "profile": CPU; "allocs": what was allocated meanwhile) and writes
// it to file.
func cbCaddyProfile(admin, kind, file string) error {
	resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/%s?seconds=%d", admin, kind, *cbProfileSeconds))
	if err != nil {
		return fmt.Errorf("Caddy's %s profile: %w", kind, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("Caddy's %s profile: %s", kind, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("Caddy's %s profile: %w", kind, err)
	}
	return f.Close()
}

// cbCycle is one person stepping up: a fresh identity and number. A
// non-nil aroundSend runs the send (to measure it alone).
func cbCycle(tr *http.Transport, base string, box *cbOutbox, n int64, aroundSend func(send func() error) error) error {
	c := &http.Client{Transport: tr, Jar: &cbJar{}, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	user, phone := fmt.Sprint("bench-", n), fmt.Sprintf("+81901%07d", n)
	do := func(method, path string, form url.Values) (int, string, error) {
		var req *http.Request
		if form != nil {
			req, _ = http.NewRequest(method, base+path, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			req, _ = http.NewRequest(method, base+path, nil)
		}
		req.Header.Set("X-User", user)
		req.Header.Set("X-Phone", phone)
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		var sb strings.Builder
		_, err = bufio.NewReader(resp.Body).WriteTo(&sb)
		return resp.StatusCode, sb.String(), err
	}
	status, page, err := do("GET", "/_stepup/?r=%2Fprivate", nil)
	csrf, ok := cbCSRFOf(page)
	if err != nil || status != 200 || !ok {
		return fmt.Errorf("page: %d %v", status, err)
	}
	wait := box.expect(phone)
	send := func() error {
		if status, _, err := do("POST", "/_stepup/send", url.Values{"csrf": {csrf}, "r": {"/private"}}); err != nil || status != 303 {
			return fmt.Errorf("send: %d %v", status, err)
		}
		return nil
	}
	if aroundSend == nil {
		err = send()
	} else {
		err = aroundSend(send)
	}
	if err != nil {
		return err
	}
	var code string
	select {
	case body := <-wait:
		if code, ok = cbCodeOf(body); !ok {
			return fmt.Errorf("no code in %q", body)
		}
	case <-time.After(10 * time.Second):
		return fmt.Errorf("no message for %s", phone)
	}
	if status, _, err := do("POST", "/_stepup/verify", url.Values{"csrf": {csrf}, "r": {"/private"}, "code": {code}}); err != nil || status != 303 {
		return fmt.Errorf("verify: %d %v", status, err)
	}
	return nil
}
