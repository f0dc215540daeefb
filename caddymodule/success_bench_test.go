package caddymodule

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// BenchmarkSuccessPath is the three requests of a step-up that works, in
// process, each measured on its own: the step-up page a new browser opens,
// the send from it and the verify of the right code (issue 17: the Caddy
// CPU per send+verify cycle). As in BenchmarkSendVerifyCycle, every step-up
// is a new identity with a fresh cookie jar, and the limits are counted
// but out of reach. Whatever a request needs first (the page's CSRF token,
// the sent code) is done while the timer is stopped.
//
//	go test -run XXX -bench SuccessPath -benchtime 2000x -count 5 ./caddymodule/
func BenchmarkSuccessPath(b *testing.B) {
	b.Run("page", func(b *testing.B) {
		e := sbNew(b)
		sbServe(b, e, http.StatusOK, func(n int) *http.Request {
			return e.browser(fmt.Sprint("page-", n)).request(http.MethodGet, "/_stepup/?r=%2Fsettings", nil)
		})
	})
	b.Run("send", func(b *testing.B) {
		e := sbNew(b)
		sbServe(b, e, http.StatusSeeOther, func(n int) *http.Request {
			br := e.browser(fmt.Sprint("send-", n))
			return br.request(http.MethodPost, "/_stepup/send", url.Values{"csrf": {br.csrf()}, "r": {"/settings"}})
		})
	})
	b.Run("verify", func(b *testing.B) {
		e := sbNew(b)
		box := sbOpenOutbox(b, e)
		sbServe(b, e, http.StatusSeeOther, func(n int) *http.Request {
			br := e.browser(fmt.Sprint("verify-", n))
			if w, body := br.postSend(); w.Code != http.StatusSeeOther {
				b.Fatalf("send: %d\n%s", w.Code, body)
			}
			return br.request(http.MethodPost, "/_stepup/verify", url.Values{"csrf": {br.csrf()}, "r": {"/settings"}, "code": {box.nextCode()}})
		})
	})
}

// sbNew is a handler as the cycle benchmark's Caddyfile configures it:
// every limit and the fraud guard count, none is ever reached.
func sbNew(b *testing.B) *htEnv {
	high := 100000000
	return htNew(b, nil, func(h *Handler) {
		h.Limits = &LimitsConfig{Phone: &high, Identity: &high, IP: &high, Prefix: &high, Country: &high, DailyBudget: &high}
		h.FraudGuard = &FraudGuardConfig{MinSends: maxFraudMinSends}
	})
}

// sbServe serves the requests fresh makes (n counts them) and fails on any
// answer but want. They are made in batches while the timer is stopped.
func sbServe(b *testing.B, e *htEnv, want int, fresh func(n int) *http.Request) {
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		b.Fatal("a step-up request reached the next handler")
		return nil
	})
	w := &sbStatus{h: http.Header{}}
	const batch = 128
	reqs := make([]*http.Request, batch)
	i, n := batch, 0
	b.ReportAllocs()
	for b.Loop() {
		if i == batch {
			b.StopTimer()
			for j := range reqs {
				reqs[j] = fresh(n)
				n++
			}
			i = 0
			b.StartTimer()
		}
		clear(w.h)
		w.status = 0
		if err := e.h.ServeHTTP(w, reqs[i], next); err != nil {
			b.Fatal(err)
		}
		if w.status != want {
			b.Fatalf("answered %d, want %d", w.status, want)
		}
		reqs[i] = nil
		i++
	}
}

// sbStatus is a ResponseWriter that keeps the status only.
type sbStatus struct {
	h      http.Header
	status int
}

func (d *sbStatus) Header() http.Header         { return d.h }
func (d *sbStatus) Write(p []byte) (int, error) { return len(p), nil }
func (d *sbStatus) WriteHeader(status int)      { d.status = status }

// sbOutbox reads the console gateway's outbox from where it last stopped,
// so that reading a code costs the same however many were sent.
type sbOutbox struct {
	b *testing.B
	r *bufio.Reader
}

func sbOpenOutbox(b *testing.B, e *htEnv) *sbOutbox {
	f, err := os.OpenFile(e.outbox, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return &sbOutbox{b: b, r: bufio.NewReader(f)}
}

// nextCode is the code of the next message in the outbox.
func (o *sbOutbox) nextCode() string {
	line, err := o.r.ReadBytes('\n')
	if err != nil {
		o.b.Fatalf("outbox: %v", err)
	}
	var m htMessage
	if err := json.Unmarshal(line, &m); err != nil {
		o.b.Fatal(err)
	}
	sub := htCodeRE.FindStringSubmatch(m.Body)
	if sub == nil {
		o.b.Fatalf("message %+v: no code", m)
	}
	return sub[1]
}
