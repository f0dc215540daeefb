// Package tomcattest starts a real Apache Tomcat 10.1 for tests: Debian's
// embedded Tomcat running Upstream.java, a legacy Java application with
// servlets on /admin/* and /settings/* and a default servlet for every other
// path, on a free loopback port, stopped when the test ends. It stands for
// the upstreams that read a path differently from Caddy: on its defaults
// Tomcat drops ;parameters from each segment before it resolves . and ..
//
// Upstream.java is compiled once per version of its source and of the jars,
// into a cache directory, so a second run starts at once.
//
// Without java, javac or the Tomcat jars (Debian's default-jdk-headless,
// libtomcat10-embed-java and libtomcat10-java) the test is skipped, except
// under CI=true, where a missing component is a failure.
package tomcattest

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/testproc"
)

//go:embed Upstream.java
var source []byte

// The jars Upstream.java needs: the embedded Tomcat, and the jakarta
// annotations Tomcat.addContext loads (they are not in the embed jar).
var jars = []string{
	"/usr/share/java/tomcat10-embed-core.jar",
	"/usr/share/java/tomcat10-annotations-api.jar",
}

// Options are the Tomcat settings a test may change from the defaults.
type Options struct {
	// AllowBackslash sets the connector's allowBackslash attribute: Tomcat
	// then reads "\" (and %5C) in a path as "/".
	AllowBackslash bool
}

// Tomcat is a running Tomcat.
type Tomcat struct {
	// Addr is host:port on loopback; URL is http://Addr.
	Addr, URL string
}

// Require skips the test (fails it under CI=true) when java, javac or a
// Tomcat jar is missing.
func Require(t testing.TB) {
	t.Helper()
	missing := func(what, pkg string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found: CI must install %s (scripts/deps)", what, pkg)
		}
		t.Skipf("%s not found; run `make deps` to install %s", what, pkg)
	}
	for _, c := range []string{"java", "javac"} {
		if _, err := exec.LookPath(c); err != nil {
			missing(c, "default-jdk-headless")
		}
	}
	for _, j := range jars {
		if _, err := os.Stat(j); err != nil {
			missing(j, "libtomcat10-embed-java and libtomcat10-java")
		}
	}
}

// Start compiles Upstream.java (or takes it from the cache), runs it on a
// free loopback port, and returns once Tomcat answers HTTP. It is stopped
// at the test's cleanup.
func Start(t testing.TB, opts Options) *Tomcat {
	t.Helper()
	Require(t)
	classes, err := compiled()
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command("java", "-XX:TieredStopAtLevel=1", // starts faster; the tests are no load
		"-cp", classes+string(os.PathListSeparator)+strings.Join(jars, string(os.PathListSeparator)),
		"Upstream", strconv.Itoa(port), t.TempDir(), strconv.FormatBool(opts.AllowBackslash))
	proc, err := testproc.Start(cmd, "tomcattest: listening on", 60*time.Second)
	if err != nil {
		t.Fatalf("tomcat on %s: %v", addr, err)
	}
	t.Cleanup(proc.Stop)
	tc := &Tomcat{Addr: addr, URL: "http://" + addr}
	if err := tc.awaitAnswer(30 * time.Second); err != nil {
		t.Fatalf("%v\n%s", err, proc.Output())
	}
	return tc
}

// awaitAnswer polls until Tomcat answers a request: "listening" is printed
// once the connector is bound, which is not yet a served request.
func (tc *Tomcat) awaitAnswer(within time.Duration) error {
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(within)
	for {
		resp, err := client.Get(tc.URL + "/")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("tomcat on %s did not answer within %s: %w", tc.Addr, within, err)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// compiled returns the directory of the compiled Upstream.java, compiling
// it when the cache has no build of this source against these jars.
func compiled() (string, error) {
	h := sha256.New()
	h.Write(source)
	for _, j := range jars {
		// The versioned file behind the symlink, so a Tomcat upgrade
		// recompiles.
		real, err := filepath.EvalSymlinks(j)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "\x00%s", real)
	}
	root, err := os.UserCacheDir()
	if err != nil {
		root = os.TempDir()
	}
	root = filepath.Join(root, "caddy-sms-stepup", "tomcattest")
	dir := filepath.Join(root, hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(filepath.Join(dir, "Upstream.class")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	// Compile into a directory of our own and rename it into place, so a
	// parallel test binary never sees half a build.
	tmp, err := os.MkdirTemp(root, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "Upstream.java")
	if err := os.WriteFile(src, source, 0o644); err != nil {
		return "", err
	}
	out := filepath.Join(tmp, "classes")
	cmd := exec.Command("javac", "-d", out, "-cp", strings.Join(jars, string(os.PathListSeparator)), src)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("javac Upstream.java: %v\n%s", err, msg)
	}
	if err := os.Rename(out, dir); err != nil {
		// Another binary may have put the same build there first.
		if _, statErr := os.Stat(filepath.Join(dir, "Upstream.class")); statErr != nil {
			return "", err
		}
	}
	return dir, nil
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
