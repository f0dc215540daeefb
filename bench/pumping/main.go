// Command pumping is the SMS pumping simulation of issue 15. It starts a
// real Caddy (the binary built from cmd/caddy) with the memory store and the
// console gateway, then plays 300 fake accounts whose numbers are spread over
// 30 prefixes of one foreign mobile range (+44 7400 xx xxxx), from 60 client
// IPs, each asking for one code and never typing it, interleaved with 50 real
// users whose numbers are in the default region (JP), who ask for a code,
// read it from the console gateway's outbox and type it.
//
// The send limits are the defaults, which a realistic operator keeps (per
// phone 5, identity 10, IP 20, prefix 20 an hour, country 500 an hour, 10000
// a day): every fake stays under each of them. It prints the SMS that went to
// the pumped range and the real users who completed their step-up.
//
//	go build -o /tmp/caddy ./cmd/caddy
//	go run ./bench/pumping -caddy /tmp/caddy               # fraud guard on (the default)
//	go run ./bench/pumping -caddy /tmp/caddy -guard off    # fraud_guard off
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
	"time"
)

// sim is one run's setting.
type sim struct {
	caddy            string
	guard            string
	fakes, prefixes  int
	ips, users       int
	dir, outbox, url string
	admin            int
}

func main() {
	s := &sim{}
	flag.StringVar(&s.caddy, "caddy", "", "the Caddy binary built from cmd/caddy (required)")
	flag.StringVar(&s.guard, "guard", "on", "on: the default fraud guard; off: fraud_guard off")
	flag.IntVar(&s.fakes, "fakes", 300, "fake accounts, one unverified send each")
	flag.IntVar(&s.prefixes, "prefixes", 30, "prefixes of the pumped range the fakes' numbers spread over")
	flag.IntVar(&s.ips, "ips", 60, "client IPs the fakes come from")
	flag.IntVar(&s.users, "users", 50, "real users in JP, who verify")
	burst := flag.Int("burst", 0, "instead: this many real users of one range ask for a code before any types it")
	flag.Parse()
	if s.caddy == "" || (s.guard != "on" && s.guard != "off") {
		flag.Usage()
		os.Exit(2)
	}
	var res any
	var err error
	if *burst > 0 {
		res, err = s.runBurst(*burst)
	} else {
		res, err = s.run()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pumping:", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}

// result is what a run reports.
type result struct {
	Guard string `json:"fraud_guard"`
	// PumpedAsked and PumpedSent are the fakes' sends asked for and the
	// SMS that went to the pumped range; PumpedRefused were refused with
	// 429 (the fraud guard, or a limit).
	PumpedAsked   int `json:"pumped_asked"`
	PumpedSent    int `json:"pumped_sms_sent"`
	PumpedRefused int `json:"pumped_refused"`
	// Users and Completed are the real users and those who stepped up.
	Users     int `json:"real_users"`
	Completed int `json:"real_users_completed"`
}

// run starts Caddy and plays the accounts, interleaved: one real user
// after every fakes/users fakes.
func (s *sim) run() (result, error) {
	res := result{Guard: s.guard, Users: s.users}
	stop, err := s.start()
	if err != nil {
		return res, err
	}
	defer stop()
	every := max(1, s.fakes/s.users)
	user := 0
	for i := range s.fakes {
		if i%every == 0 && user < s.users {
			if s.realUser(user) == nil {
				res.Completed++
			}
			user++
		}
		res.PumpedAsked++
		if status, err := s.fake(i); err != nil {
			return res, err
		} else if status == 429 {
			res.PumpedRefused++
		}
	}
	for ; user < s.users; user++ {
		if s.realUser(user) == nil {
			res.Completed++
		}
	}
	msgs, err := s.messages()
	if err != nil {
		return res, err
	}
	for _, m := range msgs {
		if strings.HasPrefix(m.To, pumpedRange) {
			res.PumpedSent++
		}
	}
	return res, nil
}

// pumpedRange is the range the fakes' numbers are in: +44 7400, GB
// mobile. Prefix p is +447400<p as 2 digits>, then 4 digits.
const pumpedRange = "+447400"

func (s *sim) fakeNumber(i int) string {
	return fmt.Sprintf("%s%02d%04d", pumpedRange, i%s.prefixes, 1000+i)
}

// fakeIP is the client IP of fake i: 60 of them, in 3 /24s.
func (s *sim) fakeIP(i int) string {
	ip := i % s.ips
	return fmt.Sprintf("198.51.%d.%d", 100+ip/20, 10+ip%20)
}

// userNumber spreads the real users over Japanese mobile ranges.
func userNumber(u int) string {
	return fmt.Sprintf("+8190%02d%02d%04d", 10+u%80, (u*37)%100, 1000+u)
}

// fake asks for one code and never types it; it returns the send's status.
func (s *sim) fake(i int) (int, error) {
	c := s.client(fmt.Sprintf("fake-%d", i), s.fakeNumber(i), s.fakeIP(i))
	f, err := c.stepUpPage()
	if err != nil {
		return 0, err
	}
	status, _, err := c.post("/_stepup/send", f, "")
	return status, err
}

// realUser steps up: page, send, the code from the outbox, verify, and
// the protected page.
func (s *sim) realUser(u int) error {
	number := userNumber(u)
	c := s.client(fmt.Sprintf("user-%d", u), number, fmt.Sprintf("203.0.113.%d", 1+u))
	f, err := c.stepUpPage()
	if err != nil {
		return err
	}
	if status, _, err := c.post("/_stepup/send", f, ""); err != nil || status != 303 {
		return fmt.Errorf("send: %d %v", status, err)
	}
	code, err := s.codeFor(number)
	if err != nil {
		return err
	}
	if f, err = c.stepUpPage(); err != nil {
		return err
	}
	if status, loc, err := c.post("/_stepup/verify", f, code); err != nil || status != 303 || loc != "/settings" {
		return fmt.Errorf("verify: %d %q %v", status, loc, err)
	}
	if status, err := c.get("/settings"); err != nil || status != 200 {
		return fmt.Errorf("protected page after the step-up: %d %v", status, err)
	}
	return nil
}

type message struct {
	To   string `json:"to"`
	Body string `json:"body"`
}

func (s *sim) messages() ([]message, error) {
	f, err := os.Open(s.outbox)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []message
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

var codeRE = regexp.MustCompile(`\b(\d{6})\b`)

// codeFor reads the newest code sent to number from the outbox, as the
// user reads it on their phone.
func (s *sim) codeFor(number string) (string, error) {
	msgs, err := s.messages()
	if err != nil {
		return "", err
	}
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].To == number {
			if m := codeRE.FindStringSubmatch(msgs[i].Body); m != nil {
				return m[1], nil
			}
		}
	}
	return "", fmt.Errorf("no code for a real user in the outbox")
}

var caddyfile = template.Must(template.New("Caddyfile").Parse(`{
	admin 127.0.0.1:{{.Admin}}
	persist_config off
	auto_https off
	skip_install_trust
	storage file_system {{.Dir}}/storage
	log {
		output file {{.Dir}}/caddy.log
		format json
	}
	# The simulation stands for the proxy in front that sets X-User and
	# X-Phone (the account's number on file) and X-Forwarded-For.
	servers {
		trusted_proxies static 127.0.0.1/32
		client_ip_headers X-Forwarded-For
	}
}

http://127.0.0.1:{{.Port}} {
	sms_stepup /settings* {
		identity {http.request.header.X-User}
		phone {http.request.header.X-Phone}
		headers_set_by trusted_proxy
		signing_key pumping-simulation-signing-key-0123456789abcdef
		service_name "Pumping Sim"
		default_region JP
		allow_countries JP GB
		store memory
		gateway console {
			outbox {{.Dir}}/outbox.jsonl
		}
		# The default limits, written out: each fake stays under them all.
		limits {
			phone 5
			identity 10
			ip 20
			prefix 20
			country 500
			daily_budget 10000
			window 1h
		}
{{- if eq .Guard "off"}}
		fraud_guard off
{{- end}}
	}
	respond "ok" 200
}
`))

// start writes the Caddyfile, runs Caddy and waits until it answers; stop
// ends it.
func (s *sim) start() (stop func(), err error) {
	if s.dir, err = os.MkdirTemp("", "pumping-"); err != nil {
		return nil, err
	}
	s.outbox = filepath.Join(s.dir, "outbox.jsonl")
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	if s.admin, err = freePort(); err != nil {
		return nil, err
	}
	s.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	var b strings.Builder
	if err := caddyfile.Execute(&b, map[string]any{"Admin": s.admin, "Port": port, "Dir": s.dir, "Guard": s.guard}); err != nil {
		return nil, err
	}
	config := filepath.Join(s.dir, "Caddyfile")
	if err := os.WriteFile(config, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(s.caddy, "run", "--config", config, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+s.dir, "XDG_CONFIG_HOME="+s.dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop = func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = os.RemoveAll(s.dir)
	}
	if err := awaitPort(port, cmd); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// awaitPort waits for Caddy to listen: it polls the port until it accepts
// a connection, for as long as the process runs (at most a minute).
func awaitPort(port int, cmd *exec.Cmd) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return nil
		}
		if cmd.ProcessState != nil {
			return fmt.Errorf("caddy exited: %s", cmd.ProcessState)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("caddy did not listen on %d within a minute", port)
}
