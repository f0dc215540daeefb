// Package kanneltest starts a real Kannel for tests: bearerbox with a fake
// SMSC, Kannel's fakesmsc connected to it as the "phone network", and smsbox
// with its sendsms HTTP interface, all on free loopback ports, configured in
// a temporary directory, stopped when the test ends.
//
// Without Kannel installed (Debian's kannel and kannel-extras) the test is
// skipped, except under CI=true, where a missing component is a failure.
package kanneltest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
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
