// Package kanneltest starts a real Kannel for tests: bearerbox with a fake
// SMSC, Kannel's fakesmsc connected to it as the "phone network", and smsbox
// with its sendsms HTTP interface, all on free loopback ports, configured in
// a temporary directory, stopped when the test ends.
//
// Without Kannel installed (Debian's kannel and kannel-extras) the test is
// skipped, except under CI=true, where a missing component is a failure.
package kanneltest

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf16"
)

// Where Debian installs the programs when they are not on PATH: the boxes
// in /usr/sbin (not on a normal user's PATH), fakesmsc with the tests.
var fallbacks = map[string]string{
	"bearerbox": "/usr/sbin/bearerbox",
	"smsbox":    "/usr/sbin/smsbox",
	"fakesmsc":  "/usr/lib/kannel/test/fakesmsc",
}

// Programs are the paths of the Kannel programs a test runs.
type Programs struct {
	Bearerbox, Smsbox, Fakesmsc string
}

// Require finds bearerbox, smsbox and fakesmsc, and skips the test (fails
// it under CI=true) when one is missing.
func Require(t testing.TB) Programs {
	t.Helper()
	find := func(name string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		p := fallbacks[name]
		if info, err := os.Stat(p); err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0 {
			return p
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found (on PATH or at %s): CI must install kannel and kannel-extras (scripts/deps)", name, p)
		}
		t.Skipf("%s not found (on PATH or at %s); run `make deps` to install kannel and kannel-extras", name, p)
		return ""
	}
	return Programs{Bearerbox: find("bearerbox"), Smsbox: find("smsbox"), Fakesmsc: find("fakesmsc")}
}

// Kannel is a running bearerbox, fakesmsc and smsbox.
type Kannel struct {
	// SendSMSURL is smsbox's sendsms address.
	SendSMSURL string
	// Username and Password are the sendsms-user's.
	Username string
	Password string
	// Dir holds kannel.conf and the logs.
	Dir string

	t                           testing.TB
	bearerbox, fakesmsc, smsbox *process
	stopOnce                    sync.Once
}

// Start runs Kannel for the test and stops it at cleanup.
func Start(t testing.TB) *Kannel {
	t.Helper()
	progs := Require(t)
	k := &Kannel{Username: "stepup", Password: randomHex(t), Dir: t.TempDir(), t: t}
	t.Cleanup(k.Stop)
	// A port found free can be taken before Kannel binds it, by a test
	// running at the same time: then start again on other ports.
	for attempt := 1; ; attempt++ {
		err := k.start(t, progs)
		if err == nil {
			return k
		}
		out := k.Output()
		k.Stop()
		if !strings.Contains(out, "Address already in use") || attempt == 3 {
			t.Fatalf("kannel: %v\n%s", err, out)
		}
		t.Logf("kannel: a port was taken meanwhile, starting again (%v)", err)
		k.bearerbox, k.fakesmsc, k.smsbox, k.stopOnce = nil, nil, nil, sync.Once{}
	}
}

// start runs bearerbox, then fakesmsc, then smsbox, each once the one
// before is ready.
func (k *Kannel) start(t testing.TB, progs Programs) error {
	ports := freePorts(t, 4)
	adminPort, boxPort, smscPort, sendPort := ports[0], ports[1], ports[2], ports[3]
	k.SendSMSURL = fmt.Sprintf("http://127.0.0.1:%d/cgi-bin/sendsms", sendPort)
	conf := filepath.Join(k.Dir, "kannel.conf")
	if err := os.WriteFile(conf, []byte(k.config(adminPort, boxPort, smscPort, sendPort, randomHex(t))), 0o600); err != nil {
		return err
	}

	var err error
	// bearerbox opens the fake SMSC's listening socket before it logs
	// that start-up is done, so fakesmsc can connect from then on.
	if k.bearerbox, err = startProcess(k.Dir, "bearerbox", progs.Bearerbox, "-v", "1", conf); err != nil {
		return err
	}
	if _, err := k.bearerbox.waitFor("MAIN: Start-up done", 0, 20*time.Second, nil); err != nil {
		return err
	}
	// Without its SMSC port bearerbox still starts.
	if strings.Contains(k.bearerbox.output(), "Address already in use") {
		return errors.New("bearerbox could not open a port")
	}
	mark := k.bearerbox.lineCount()
	// fakesmsc sends one message per "msg" argument; -m 0 sends none, and
	// it prints "Got message N: <from to type text>" for each SMS that
	// bearerbox delivers to it.
	if k.fakesmsc, err = startProcess(k.Dir, "fakesmsc", progs.Fakesmsc, "-H", "127.0.0.1", "-r", fmt.Sprint(smscPort), "-m", "0", "0 0 text unused"); err != nil {
		return err
	}
	if _, err := k.bearerbox.waitFor("Fakesmsc client connected", mark, 10*time.Second, k.fakesmsc); err != nil {
		return err
	}
	// smsbox serves sendsms before it has its bearerbox connection, and a
	// send in that gap crashes it (it writes to a null connection). It
	// logs "Connected to bearerbox" just before it keeps the connection,
	// so that line comes too early: wait for the heartbeat thread it starts
	// next, which only its debug output (-v 0) shows.
	mark = k.bearerbox.lineCount()
	if k.smsbox, err = startProcess(k.Dir, "smsbox", progs.Smsbox, "-v", "0", conf); err != nil {
		return err
	}
	if _, err := k.smsbox.waitFor("gw/heartbeat.c:heartbeat_thread", 0, 20*time.Second, nil); err != nil {
		return err
	}
	// bearerbox, for its part, must have taken the box in: one SIGTERMed
	// while it does so can wait forever for it.
	_, err = k.bearerbox.waitFor("Client connected from <127.0.0.1>", mark, 10*time.Second, k.smsbox)
	return err
}

func (k *Kannel) config(adminPort, boxPort, smscPort, sendPort int, adminPassword string) string {
	return fmt.Sprintf(`group = core
admin-port = %d
admin-interface = 127.0.0.1
admin-password = %s
admin-allow-ip = 127.0.0.1
admin-deny-ip = "*.*.*.*"
smsbox-port = %d
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
box-deny-ip = "*.*.*.*"
dlr-storage = internal
log-file = %q
log-level = 1

# The fake SMSC listens on all interfaces unless told our-host.
group = smsc
smsc = fake
smsc-id = fake
our-host = 127.0.0.1
port = %d
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = %d
sendsms-port = %d
sendsms-interface = 127.0.0.1
log-file = %q
log-level = 1

# Long messages go in concatenated parts, as an operator would set it up.
group = sendsms-user
username = %s
password = %s
user-allow-ip = 127.0.0.1
concatenation = true
max-messages = 10

group = sms-service
keyword = default
text = "No service here."
`, adminPort, adminPassword, boxPort, filepath.Join(k.Dir, "bearerbox.log"),
		smscPort, boxPort, sendPort, filepath.Join(k.Dir, "smsbox.log"),
		k.Username, k.Password)
}

// SMS is one message as fakesmsc received it.
type SMS struct {
	From, To string
	// Coding is fakesmsc's word for it: "text" (7-bit, printed as is),
	// "ucs-2" or "data" (8-bit; both URL-encoded), or "udh" for one part of
	// a concatenated message.
	Coding string
	// Text is the message, decoded: UCS-2 is turned back into UTF-8. For a
	// "udh" part it is the part's bytes, whose coding fakesmsc does not say.
	Text string
	// UDH is a part's user data header (for a concatenated message: 05 00
	// 03, reference, total parts, part number).
	UDH []byte
	// Raw is what fakesmsc printed between < and >.
	Raw string
}

var codings = map[string]bool{"text": true, "data": true, "ucs-2": true, "udh": true}

// Messages are the SMS fakesmsc received so far, in order.
//
// fakesmsc reads its connection line by line, so a 7-bit text with a line
// break arrives as several "Got message" lines; a line that does not start
// with "<from> <to> <coding>" is taken as the rest of the previous text.
func (k *Kannel) Messages() []SMS {
	var out []SMS
	for _, line := range k.fakesmsc.lines() {
		_, rest, ok := strings.Cut(line, "Got message ")
		if !ok {
			continue
		}
		_, raw, ok := strings.Cut(rest, ": <")
		if !ok {
			continue
		}
		raw = strings.TrimSuffix(raw, ">")
		fields := strings.SplitN(raw, " ", 4)
		if len(fields) < 3 || !codings[fields[2]] {
			if n := len(out); n > 0 && out[n-1].Coding == "text" {
				out[n-1].Text += "\n" + raw
				out[n-1].Raw += "\n" + raw
			}
			continue
		}
		m := SMS{From: fields[0], To: fields[1], Coding: fields[2], Raw: raw}
		var data string
		if len(fields) == 4 {
			data = fields[3]
		}
		if m.Coding == "udh" {
			// "<udh> data <part>", both URL-encoded.
			udh, part, _ := strings.Cut(data, " data ")
			if b, err := url.QueryUnescape(udh); err == nil {
				m.UDH = []byte(b)
			}
			m.Text = decode("data", part)
		} else {
			m.Text = decode(m.Coding, data)
		}
		out = append(out, m)
	}
	return out
}

// decode turns fakesmsc's printed form back into text. UCS-2 comes URL-encoded
// byte by byte ("x%BA%8A%8D0%B3..." for "確認コ"), big-endian, '+' for the
// 0x20 byte.
func decode(coding, data string) string {
	switch coding {
	case "ucs-2":
		b, err := url.QueryUnescape(data)
		if err != nil || len(b)%2 != 0 {
			return data
		}
		units := make([]uint16, len(b)/2)
		for i := range units {
			units[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
		}
		return string(utf16.Decode(units))
	case "data":
		if b, err := url.QueryUnescape(data); err == nil {
			return b
		}
	}
	return data
}

// WaitMessage waits until fakesmsc has received an SMS that match accepts
// and returns it; it fails the test after timeout.
func (k *Kannel) WaitMessage(t testing.TB, timeout time.Duration, match func(SMS) bool) SMS {
	t.Helper()
	var found SMS
	k.wait(t, timeout, func(msgs []SMS) bool {
		for _, m := range msgs {
			if match(m) {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// WaitMessages waits until fakesmsc has received at least n SMS and returns
// the first n; it fails the test after timeout.
func (k *Kannel) WaitMessages(t testing.TB, n int, timeout time.Duration) []SMS {
	t.Helper()
	var got []SMS
	k.wait(t, timeout, func(msgs []SMS) bool {
		got = msgs
		return len(msgs) >= n
	})
	return got[:n]
}

// wait re-reads the messages at each line fakesmsc prints until done
// accepts them.
func (k *Kannel) wait(t testing.TB, timeout time.Duration, done func([]SMS) bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		changed := k.fakesmsc.changed()
		if done(k.Messages()) {
			return
		}
		select {
		case <-changed:
		case <-k.fakesmsc.done:
			t.Fatalf("fakesmsc exited:\n%s", k.fakesmsc.output())
		case <-deadline.C:
			t.Fatalf("fakesmsc did not get the SMS within %s; it printed:\n%s", timeout, k.fakesmsc.output())
		}
	}
}

// Stop stops Kannel: a kill for smsbox and fakesmsc, which hold nothing
// worth a clean exit, then SIGTERM to bearerbox, which shuts down at once
// with no box left to wait for.
func (k *Kannel) Stop() {
	k.stopOnce.Do(func() {
		for _, p := range []*process{k.smsbox, k.fakesmsc} {
			if p != nil {
				p.kill()
			}
		}
		if k.bearerbox != nil && !k.bearerbox.terminate(10*time.Second) {
			k.t.Logf("kannel: bearerbox did not stop within 10s of SIGTERM, killed it:\n%s", k.Output())
		}
	})
}

// Output is what each program printed, for a failing test's message.
func (k *Kannel) Output() string {
	var b strings.Builder
	for _, p := range []*process{k.bearerbox, k.fakesmsc, k.smsbox} {
		if p != nil {
			fmt.Fprintf(&b, "--- %s\n%s\n", p.name, p.output())
		}
	}
	return b.String()
}

// process is a started program whose output lines are kept, so a test can
// wait for a line printed at any time, not only the first ready line.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}

	mu     sync.Mutex
	out    []string
	notify chan struct{} // closed and replaced at each new line
}

func startProcess(dir, name, path string, args ...string) (*process, error) {
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{}), notify: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		pw.Close()
	}()
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.out = append(p.out, sc.Text())
			close(p.notify)
			p.notify = make(chan struct{})
			p.mu.Unlock()
		}
		// Drain so the program never blocks on a full pipe.
		_, _ = io.Copy(io.Discard, pr)
	}()
	return p, nil
}

func (p *process) lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.out...)
}

func (p *process) lineCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.out)
}

// changed is closed when the next line arrives.
func (p *process) changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.notify
}

func (p *process) output() string {
	return strings.Join(p.lines(), "\n")
}

// waitFor returns the index of the first line from index from on that
// contains s. It gives up when p exits, or other (if not nil) does: the
// program whose action p would log. The caller shows the output.
func (p *process) waitFor(s string, from int, timeout time.Duration, other *process) (int, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var otherDone <-chan struct{}
	if other != nil {
		otherDone = other.done
	}
	for {
		changed := p.changed()
		lines := p.lines()
		for i := from; i < len(lines); i++ {
			if strings.Contains(lines[i], s) {
				return i, nil
			}
		}
		select {
		case <-changed:
		case <-p.done:
			return 0, fmt.Errorf("%s exited before %q", p.name, s)
		case <-otherDone:
			return 0, fmt.Errorf("%s exited before %s logged %q", other.name, p.name, s)
		case <-deadline.C:
			return 0, fmt.Errorf("%s: no %q within %s", p.name, s, timeout)
		}
	}
}

// terminate sends SIGTERM and waits up to grace for the exit, then kills;
// it reports whether the process stopped by itself.
func (p *process) terminate(grace time.Duration) bool {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return true
	case <-time.After(grace):
		p.kill()
		return false
	}
}

func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// freePorts returns n distinct loopback ports nobody listens on right now,
// taken below Linux's ephemeral range (32768-60999) so that no listener on
// port 0 nor outgoing connection gets one before Kannel binds it.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			t.Fatal("kannel: no free loopback ports between 20000 and 32000")
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+mathrand.IntN(12000)))
		if err != nil {
			continue
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func randomHex(t testing.TB) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
