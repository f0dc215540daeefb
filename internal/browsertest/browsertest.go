// Package browsertest starts a real headless Chromium for tests, driven by
// chromedp: Debian's chromium, in a fresh profile, with no network of its
// own. Tests get tabs sized like a phone unless told otherwise, each as
// separate as its own browser, closed when the test ends, and can save
// screenshots as artifacts.
//
// Without chromium on PATH the test is skipped, except under CI=true, where
// a missing browser is a failure.
package browsertest

import (
	"context"
	"fmt"
	"iter"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Command is the browser this package runs: Debian's chromium package.
const Command = "chromium"

// Require skips (or, under CI=true, fails) the test when chromium is not
// installed.
func Require(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath(Command); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found on PATH: CI must install it (scripts/deps)", Command)
		}
		t.Skipf("%s not found on PATH; run `make deps` to install it", Command)
	}
}

type config struct {
	width, height int64
	mobile        bool
	lang          string
	timeout       time.Duration
}

// Option changes the browser New starts.
type Option func(*config)

// Desktop makes the viewport a 1280x800 desktop screen instead of a phone.
func Desktop() Option {
	return func(c *config) { c.width, c.height, c.mobile = 1280, 800, false }
}

// AcceptLanguage makes every request carry this Accept-Language header, as
// a browser set to that language does.
func AcceptLanguage(lang string) Option {
	return func(c *config) { c.lang = lang }
}

// Timeout bounds everything done in the tab (default 30 s): when it runs
// out, every action fails.
func Timeout(d time.Duration) Option {
	return func(c *config) { c.timeout = d }
}

// Browser is one headless chromium process. Its tabs are as separate as
// different browsers: each has its own cookies, cache and storage.
type Browser struct {
	ctx context.Context
}

// Start starts a headless chromium for t, stopped when t ends.
func Start(t testing.TB) *Browser {
	t.Helper()
	Require(t)
	path, err := exec.LookPath(Command)
	if err != nil {
		t.Fatal(err)
	}
	// The profile directory is made before the browser's cleanup is
	// registered, so it is removed after the browser has exited.
	profile := t.TempDir()
	allocOpts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(412, 915),
		chromedp.NoSandbox, // tests run as root in containers
		chromedp.DisableGPU,
		// Nothing but the pages under test goes over the network.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), allocOpts...)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		// Close the browser gracefully, but not for ever.
		closeCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = chromedp.Cancel(closeCtx)
		cancelBrowser()
		cancelAlloc()
	})
	// The first Run starts the browser and ties it to the context it is
	// given, so that one must not have a deadline.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", Command, err)
	}
	return &Browser{ctx: ctx}
}

// New starts a browser for t and returns the context of a tab in it; see
// Browser.Tab.
func New(t testing.TB, opts ...Option) context.Context {
	t.Helper()
	return Start(t).Tab(t, opts...)
}

// Tab opens a tab for t, closed when t ends, and returns its context; pass
// it to chromedp.Run. The viewport is a 412x915 phone unless Desktop is
// given. JavaScript exceptions and errors the browser logs (a script or
// style blocked by the Content-Security-Policy, a request that failed to
// connect) fail the test; error statuses do not. Tabs of one browser may be
// used by parallel tests.
func (b *Browser) Tab(t testing.TB, opts ...Option) context.Context {
	t.Helper()
	cfg := config{width: 412, height: 915, mobile: true, timeout: 30 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	tab, cancelTab := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	rec := &recorder{}
	t.Cleanup(func() {
		closeCtx, cancel := context.WithTimeout(tab, 5*time.Second)
		defer cancel()
		_ = chromedp.Cancel(closeCtx)
		cancelTab()
		for _, p := range rec.list() {
			t.Errorf("browser: %s", p)
		}
	})
	// The tab lives until cleanup; only the test's work is bounded.
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	ctx, cancel := context.WithTimeout(tab, cfg.timeout)
	t.Cleanup(cancel)
	// Subscribe before any page loads; read in the background.
	go rec.exceptions(chromedp.Events(tab, runtime.ExceptionThrown))
	go rec.logEntries(chromedp.Events(tab, cdplog.EntryAdded))
	setup := []chromedp.Action[chromedp.Void]{
		// A person's browser window has focus; a headless one may not,
		// and autofocus only works in a focused page.
		chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
			_, err := cdp.Call(ctx, target, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true})
			return err
		}),
	}
	// The window's size includes what a headful browser would draw around
	// the page; set the viewport itself so pages and screenshots get
	// exactly width x height.
	if cfg.mobile {
		setup = append(setup, chromedp.EmulateViewport(cfg.width, cfg.height, chromedp.EmulateMobile, chromedp.EmulateTouch))
	} else {
		setup = append(setup, chromedp.EmulateViewport(cfg.width, cfg.height))
	}
	if cfg.lang != "" {
		setup = append(setup, chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
			_, err := cdp.Call(ctx, target, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
				Headers: network.Headers{"Accept-Language": cfg.lang},
			})
			return err
		}))
	}
	if err := chromedp.Do(ctx, setup...); err != nil {
		t.Fatalf("set up the tab: %v", err)
	}
	return context.WithValue(ctx, artifactsKey{}, artifactsDir(t))
}

// recorder keeps the problems the page reports while the test runs.
type recorder struct {
	mu       sync.Mutex
	problems []string
}

func (r *recorder) add(p string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, p)
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.problems...)
}

func (r *recorder) exceptions(events iter.Seq2[runtime.EventExceptionThrown, error]) {
	for ev, err := range events {
		if err != nil {
			return
		}
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		r.add(fmt.Sprintf("JavaScript exception at %s:%d: %s", d.URL, d.LineNumber+1, text))
	}
}

func (r *recorder) logEntries(events iter.Seq2[cdplog.EventEntryAdded, error]) {
	for ev, err := range events {
		if err != nil {
			return
		}
		e := ev.Entry
		// A page answered with an error status is the test's business:
		// it checks the status it expects.
		if e.Level != cdplog.EntryLevelError || (e.Source == cdplog.EntrySourceNetwork && strings.Contains(e.Text, "the server responded with a status of")) {
			continue
		}
		r.add(fmt.Sprintf("%s error on %s: %s", e.Source, e.URL, e.Text))
	}
}

type artifactsKey struct{}

// artifactsDir is $STEPUP_ARTIFACTS (made if missing), else a directory
// removed after the test.
func artifactsDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("STEPUP_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts directory: %v", err)
	}
	return dir
}

// Screenshot saves what the viewport shows as name (e.g. en-1-send.png) in
// the artifacts directory: $STEPUP_ARTIFACTS when set, else a temporary
// directory. It logs the file's path.
func Screenshot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	dir, _ := ctx.Value(artifactsKey{}).(string)
	if dir == "" {
		dir = artifactsDir(t)
	}
	if !strings.HasSuffix(name, ".png") {
		name += ".png"
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	t.Logf("screenshot: %s", path)
}
