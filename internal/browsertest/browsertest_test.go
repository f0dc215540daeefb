package browsertest_test

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/browsertest"
)

func TestBrowser(t *testing.T) {
	languages := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case languages <- r.Header.Get("Accept-Language"):
		default:
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><meta name="viewport" content="width=device-width, initial-scale=1"><h1 id="t">Hello</h1>`)
	}))
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		name          string
		opts          []browsertest.Option
		width, height int
	}{
		{"a phone by default", nil, 412, 915},
		{"a desktop when asked", []browsertest.Option{browsertest.Desktop()}, 1280, 800},
	} {
		t.Run(tc.name+" with the screenshot in the artifacts directory", func(t *testing.T) {
			dir := t.TempDir()
			t.Setenv("STEPUP_ARTIFACTS", dir)
			ctx := browsertest.New(t, append(tc.opts, browsertest.AcceptLanguage("ja"))...)
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL), chromedp.WaitVisible(chromedp.ID("t"))); err != nil {
				t.Fatal(err)
			}
			if got := <-languages; got != "ja" {
				t.Errorf("Accept-Language %q, want ja", got)
			}
			width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`innerWidth`))
			if err != nil || width != tc.width {
				t.Errorf("viewport %d px wide (%v), want %d", width, err, tc.width)
			}
			browsertest.Screenshot(t, ctx, "page")
			data, err := os.ReadFile(filepath.Join(dir, "page.png"))
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.DecodeConfig(bytes.NewReader(data))
			if err != nil || img.Width != tc.width || img.Height != tc.height {
				t.Errorf("screenshot %dx%d (%v), want %dx%d", img.Width, img.Height, err, tc.width, tc.height)
			}
		})
	}
}
