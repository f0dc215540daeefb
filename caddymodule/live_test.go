package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// The registry through which the admin API finds the running handler
// (live.go). Each test uses path prefixes of its own: other tests of the
// package provision handlers too, and the registry is process-wide.

var regSeq atomic.Int64

// regConfig is a handler's JSON at prefix with a memory store of its own.
func regConfig(prefix string) string {
	return fmt.Sprintf(`{"identity":"{http.auth.user.id}","enroll":true,"signing_key":%q,"path_prefix":%q,"store":{"type":"memory","name":"reg-%d-%d"}}`,
		htKey, prefix, os.Getpid(), regSeq.Add(1))
}

// regLoad provisions the handler of raw in ctx and returns it with the
// fingerprint of raw.
func regLoad(t *testing.T, ctx caddy.Context, raw string) (*Handler, string) {
	t.Helper()
	var given Handler
	if err := json.Unmarshal([]byte(raw), &given); err != nil {
		t.Fatal(err)
	}
	mod, err := ctx.LoadModuleByID("http.handlers.sms_stepup", json.RawMessage(raw))
	if err != nil {
		t.Fatal(err)
	}
	return mod.(*Handler), ConfigFingerprint(&given)
}

// regSiteConfig is regConfig for a handler of site.
func regSiteConfig(prefix, site string) string {
	return strings.Replace(regConfig(prefix), "{", `{"sites":[`+strconv.Quote(site)+`],`, 1)
}

// regHandler provisions a handler at prefix with a store of its own.
func regHandler(t *testing.T, ctx caddy.Context, prefix string) (*Handler, string) {
	t.Helper()
	return regLoad(t, ctx, regConfig(prefix))
}

func regContext(t *testing.T) (caddy.Context, context.CancelFunc) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return ctx, cancel
}

func regPrefix() string { return fmt.Sprintf("/_reg-%d", regSeq.Add(1)) }

// regFind is live.find, released at once.
func regFind(t *testing.T, prefix, config string) (*Handler, bool, error) {
	t.Helper()
	e, matches, err := live.find(prefix, config)
	if err != nil {
		return nil, false, err
	}
	e.Release()
	return e.h, matches, nil
}

func regStatus(err error) int {
	var apiErr caddy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.HTTPStatus
	}
	return 0
}

func TestLiveRegistry(t *testing.T) {
	t.Run("the newest provisioned handler wins, and an unloaded one is never handed out", func(t *testing.T) {
		prefix := regPrefix()
		raw := regConfig(prefix)
		ctx1, cancel1 := regContext(t)
		old, fp := regLoad(t, ctx1, raw)
		ctx2, cancel2 := regContext(t)
		// The same config loaded again, as a reload does, with its keys
		// in another order.
		var m map[string]any
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			t.Fatal(err)
		}
		again, _ := json.MarshalIndent(m, "", "\t")
		reloaded, fp2 := regLoad(t, ctx2, string(again))
		if fp != fp2 || fp == "" {
			t.Fatalf("the same config gave fingerprints %q and %q", fp, fp2)
		}
		if h, matches, err := regFind(t, prefix, fp); err != nil || h != reloaded || !matches {
			t.Fatalf("find: %p, %v, %v; want the newer handler %p, matching", h, matches, err, reloaded)
		}
		// The reload fails: its context is cancelled, and the old handler
		// is the running one again, at once.
		cancel2()
		if h, _, err := regFind(t, prefix, fp); err != nil || h != old {
			t.Fatalf("find after the newer config's unload: %p, %v; want the old handler %p", h, err, old)
		}
		cancel1()
		if _, _, err := regFind(t, prefix, fp); regStatus(err) != http.StatusNotFound {
			t.Fatalf("find after both unloads: %v, want 404", err)
		}
	})

	t.Run("handlers of one config with the same path_prefix are told apart by fingerprint", func(t *testing.T) {
		prefix := regPrefix()
		ctx, _ := regContext(t)
		// On two sites: without sites they would share a scope, which
		// refuses the config.
		first, fp1 := regLoad(t, ctx, regSiteConfig(prefix, "a.example.com"))
		second, fp2 := regLoad(t, ctx, regSiteConfig(prefix, "b.example.com"))
		if fp1 == fp2 {
			t.Fatal("two configs with different stores have one fingerprint")
		}
		for _, tc := range []struct {
			fp   string
			want *Handler
		}{{fp1, first}, {fp2, second}} {
			if h, matches, err := regFind(t, prefix, tc.fp); err != nil || h != tc.want || !matches {
				t.Errorf("find by fingerprint: %p, %v, %v; want %p", h, matches, err, tc.want)
			}
		}
		if _, _, err := regFind(t, prefix, ""); regStatus(err) != http.StatusConflict || !strings.Contains(err.Error(), "2 running sms_stepup handlers have path_prefix "+prefix) {
			t.Errorf("find without a fingerprint: %v, want 409", err)
		}
		if _, _, err := regFind(t, prefix, "0123456789abcdef0123456789abcdef"); regStatus(err) != http.StatusConflict || !strings.Contains(err.Error(), "none was loaded from the config given") {
			t.Errorf("find with another config's fingerprint: %v, want 409", err)
		}
	})

	t.Run("a handler whose config differs from the one given still acts, and says so", func(t *testing.T) {
		prefix := regPrefix()
		ctx, _ := regContext(t)
		h, _ := regHandler(t, ctx, prefix)
		if got, matches, err := regFind(t, prefix, "0123456789abcdef0123456789abcdef"); err != nil || got != h || matches {
			t.Fatalf("find: %p, %v, %v; want %p, not matching", got, matches, err, h)
		}
	})

	t.Run("a handler whose Provision failed never joins", func(t *testing.T) {
		prefix := regPrefix()
		ctx, _ := regContext(t)
		raw := `{"identity":"{http.auth.user.id}","enroll":true,"signing_key":"` + htKey + `","path_prefix":"` + prefix + `","code_length":4}`
		if _, err := ctx.LoadModuleByID("http.handlers.sms_stepup", json.RawMessage(raw)); err == nil {
			t.Fatal("code_length 4 was accepted")
		}
		if _, _, err := regFind(t, prefix, ""); regStatus(err) != http.StatusNotFound {
			t.Fatalf("find: %v, want 404", err)
		}
	})

	t.Run("leaving waits for an operation in flight, then drops the handler", func(t *testing.T) {
		prefix := regPrefix()
		ctx, cancel := regContext(t)
		regHandler(t, ctx, prefix)
		e, _, err := live.find(prefix, "")
		if err != nil {
			t.Fatal(err)
		}
		left := make(chan struct{})
		go func() {
			live.leave(e)
			close(left)
		}()
		cancel()
		if _, _, err := regFind(t, prefix, ""); regStatus(err) != http.StatusNotFound {
			t.Fatalf("find during the unload: %v, want 404", err)
		}
		select {
		case <-left:
			t.Fatal("the handler left while an operation held it")
		default:
		}
		e.Release()
		<-left
		e.ops.RLock()
		gone := e.gone
		e.ops.RUnlock()
		if !gone {
			t.Fatal("the handler is not marked gone")
		}
		live.mu.Lock()
		defer live.mu.Unlock()
		for _, x := range live.entries {
			if x == e {
				t.Fatal("the handler is still in the registry")
			}
		}
	})
}
