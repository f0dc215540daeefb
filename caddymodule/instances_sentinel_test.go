package caddymodule_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
)

// TestInstancesSentinelFailover runs two Caddy processes on a Redis
// Sentinel set (a master, a replica, three sentinels) and has the sentinels
// fail the master over (forced, and after a crash) while three users step up again and again across
// the two instances. Throughout, a code never verifies twice and no
// request without a cookie reaches the upstream; some requests may fail
// closed (503) during the switch, and the flow works again on both
// instances after it with nobody's help.
func TestInstancesSentinelFailover(t *testing.T) {
	redistest.Require(t, "redis-server", "go")
	caddyBin := miBuildCaddy(t)
	t.Run("forced by SENTINEL FAILOVER", func(t *testing.T) {
		sfFailover(t, caddyBin, (*redistest.Sentinel).Failover, func(set *redistest.Sentinel, old string) (string, error) {
			return set.AwaitFailover(60*time.Second, old)
		})
	})
	t.Run("after the master is killed with SIGKILL and comes back empty", func(t *testing.T) {
		sfFailover(t, caddyBin, (*redistest.Sentinel).KillMaster, func(set *redistest.Sentinel, old string) (string, error) {
			if _, err := set.AwaitNewMaster(60*time.Second, old); err != nil {
				return "", err
			}
			if err := set.Restart(old); err != nil {
				return "", err
			}
			return set.AwaitFailover(60*time.Second, old)
		})
	})
}

// sfFailover starts the set and the two instances, runs the users, starts
// a failover with trigger, and keeps the traffic running until await says
// the set is whole again.
func sfFailover(t *testing.T, caddyBin string,
	trigger func(*redistest.Sentinel, context.Context) (string, error),
	await func(set *redistest.Sentinel, old string) (string, error)) {
	set := redistest.StartSentinel(t)
	line := "addresses " + strings.Join(set.Addrs, " ") + "\n\t\t\tmaster_name " + redistest.SentinelMaster
	// Every user steps up many times a second: no cooldown or send limit
	// should be what refuses them.
	// The fraud guard is off too: codes sent while the master fails over
	// go unverified, and the test is about the store, not about pumping.
	opts := "\t\tresend_cooldown 1ms\n\t\tfailure_budget 100\n\t\tlimits {\n\t\t\tphone 0\n\t\t\tidentity 0\n\t\t\tip 0\n\t\t\tprefix 0\n\t\t\tcountry 0\n\t\t}\n\t\tfraud_guard off"
	a, b := miStartWith(t, caddyBin, "A", line, opts), miStartWith(t, caddyBin, "B", line, opts)

	users := map[string]string{"alice": "+819012345678", "bob": "+818012345678", "carol": "+819011112222"}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	progress := make(chan sfRound, 64)
	for user, phone := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &sfWorker{t: t, user: user, phone: phone}
			for i := 0; ctx.Err() == nil; i++ {
				from, to := a, b
				if i%2 == 1 {
					from, to = b, a
				}
				select {
				case progress <- w.round(from, to):
				case <-ctx.Done():
				}
			}
		}()
	}
	defer func() {
		stop()
		wg.Wait()
	}()

	// awaitSteps waits for n successful step-ups of every user.
	awaitSteps := func(what string, n int, timeout time.Duration) {
		t.Helper()
		done := map[string]int{}
		deadline := time.After(timeout)
		for {
			ok := true
			for user := range users {
				ok = ok && done[user] >= n
			}
			if ok {
				return
			}
			select {
			case r := <-progress:
				if r.steppedUp {
					done[r.user]++
				}
			case <-deadline:
				t.Fatalf("%s: step-ups per user %v within %s, want %d each", what, done, timeout, n)
			}
		}
	}
	awaitSteps("before the failover", 3, 90*time.Second)

	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	old, err := trigger(set, fctx)
	if err != nil {
		t.Fatalf("starting the failover: %v", err)
	}
	// Traffic runs on while the set changes: drain it, so no worker waits.
	failedOver := make(chan error, 1)
	var newMaster string
	go func() {
		var err error
		newMaster, err = await(set, old)
		failedOver <- err
	}()
	var during []sfRound
	for waiting := true; waiting; {
		select {
		case err := <-failedOver:
			if err != nil {
				t.Fatalf("the failover never finished: %v", err)
			}
			waiting = false
		case r := <-progress:
			during = append(during, r)
		}
	}
	stepped := 0
	for _, r := range during {
		if r.steppedUp {
			stepped++
		}
	}
	t.Logf("failover from %s to %s; %d rounds ran during it: %d stepped up, %d failed closed", old, newMaster, len(during), stepped, sfFailedClosed(during))
	awaitSteps("after the failover", 3, 90*time.Second)

	// A code used on the old master just before the switch must not come
	// back to life on the new one (a write the replica never got): try
	// every code used during the failover again, now that it is over.
	for _, r := range during {
		if r.replay == nil {
			continue
		}
		w := &sfWorker{t: t, user: r.user}
		for _, inst := range []*miInstance{a, b} {
			w.checkReplay(inst, r.replay(inst))
		}
	}
}

// sfRound is what one round of a user's flow saw.
type sfRound struct {
	user      string
	steppedUp bool
	// failedClosed: a 503 somewhere (Redis switching masters).
	failedClosed bool
	// replay tries the used code again, as a second browser holding the
	// same challenge; it reports the status.
	replay func(inst *miInstance) int
}

func sfFailedClosed(rounds []sfRound) int {
	n := 0
	for _, r := range rounds {
		if r.failedClosed {
			n++
		}
	}
	return n
}

// sfWorker steps one user up again and again. It reports broken rules with
// t.Errorf, never t.Fatal: it runs on a goroutine of its own.
type sfWorker struct {
	t     *testing.T
	user  string
	phone string
}

// round: without a cookie the protected page must not pass; a code sent
// by from must verify on to; the same code must then fail for a second
// browser holding the same challenge; the new cookie must pass.
func (w *sfWorker) round(from, to *miInstance) sfRound {
	r := sfRound{user: w.user}
	br := miNewBrowser(w.t, w.user)
	unavailable := func(status int) bool {
		r.failedClosed = r.failedClosed || status == http.StatusServiceUnavailable
		return status == http.StatusServiceUnavailable
	}
	status, body := sfDo(br, "GET", from.base+"/private", nil)
	if status == http.StatusOK || strings.Contains(body, "upstream saw") {
		w.t.Errorf("%s without a cookie on %s reached the upstream: %d %q", w.user, from.name, status, body)
	}
	status, page := sfDo(br, "GET", from.base+"/_stepup/?r=%2Fprivate", nil)
	m := miCSRF.FindStringSubmatch(page)
	if unavailable(status) || status == 0 {
		return r
	}
	if status != http.StatusOK || m == nil {
		w.t.Errorf("%s: step-up page on %s: %d", w.user, from.name, status)
		return r
	}
	csrf := m[1]
	_, before := from.lastCode(w.t, w.phone)
	status, _ = sfDo(br, "POST", from.base+"/_stepup/send", url.Values{"csrf": {csrf}, "r": {"/private"}})
	if unavailable(status) || status == 0 {
		return r
	}
	code, after := from.lastCode(w.t, w.phone)
	if status != http.StatusSeeOther || after != before+1 {
		w.t.Errorf("%s: send on %s: %d, %d messages", w.user, from.name, status, after-before)
		return r
	}
	jarURL := &url.URL{Scheme: "http", Host: "localhost"}
	cookies := br.c.Jar.Cookies(jarURL)
	form := url.Values{"csrf": {csrf}, "r": {"/private"}, "code": {code}}
	status, _ = sfDo(br, "POST", to.base+"/_stepup/verify", form)
	if unavailable(status) || status != http.StatusSeeOther {
		// A 422 is allowed here: a challenge written to the old master
		// just before the switch may not have reached the replica.
		return r
	}
	r.steppedUp = true
	r.replay = func(inst *miInstance) int {
		replay := miNewBrowser(w.t, w.user)
		replay.c.Jar.SetCookies(jarURL, cookies)
		status, _ := sfDo(replay, "POST", inst.base+"/_stepup/verify", form)
		return status
	}
	for _, inst := range []*miInstance{to, from} {
		w.checkReplay(inst, r.replay(inst))
	}
	if status, body := sfDo(br, "GET", from.base+"/private", nil); status != http.StatusOK && !unavailable(status) {
		w.t.Errorf("%s: the new cookie on %s: %d %q", w.user, from.name, status, body)
	}
	return r
}

// checkReplay: 422 is the used code refused; 503 is failing closed.
// Anything else (a 403 would mean the check tests nothing) is wrong.
func (w *sfWorker) checkReplay(inst *miInstance, status int) {
	switch status {
	case http.StatusUnprocessableEntity, http.StatusServiceUnavailable:
	case http.StatusSeeOther:
		w.t.Errorf("%s: a code already used verified again on %s", w.user, inst.name)
	default:
		w.t.Errorf("%s: a used code again on %s: %d, want 422", w.user, inst.name, status)
	}
}

// sfDo is miBrowser.do for a goroutine: a transport error is reported and
// gives status 0.
func sfDo(b *miBrowser, method, target string, form url.Values) (int, string) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		b.t.Errorf("%s %s: %v", method, target, err)
		return 0, ""
	}
	req.Header.Set("X-User", b.user)
	req.Header.Set("Accept", b.accept)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Errorf("%s %s: %v", method, target, err)
		return 0, ""
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// TestSentinelUsedCodeLostWithTheMaster: the master dies right after a
// code is used there, before its replica got the write (the replica is
// frozen and its link cut for those few milliseconds, as a slow or broken
// link would hold it back: a frozen replica alone would still find the
// write in its socket buffer).
// The replica is promoted with the challenge still live; the used code
// must not verify again on it.
func TestSentinelUsedCodeLostWithTheMaster(t *testing.T) {
	redistest.Require(t, "redis-server", "go")
	caddyBin := miBuildCaddy(t)
	set := redistest.StartSentinel(t)
	line := "addresses " + strings.Join(set.Addrs, " ") + "\n\t\t\tmaster_name " + redistest.SentinelMaster
	a := miStartWith(t, caddyBin, "A", line, "")
	master, replica := set.Servers[0], set.Servers[1]

	br := miNewBrowser(t, "alice")
	csrf := br.csrf(a)
	if status := br.send(a, csrf); status != http.StatusSeeOther {
		t.Fatalf("send: %d", status)
	}
	code, _ := a.lastCode(t, "+819012345678")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mc := goredis.NewClient(&goredis.Options{Addr: master.Addr})
	defer mc.Close()
	if n, err := mc.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("the replica never got the challenge: WAIT %d, %v", n, err)
	}
	jarURL := &url.URL{Scheme: "http", Host: "localhost"}
	cookies := br.c.Jar.Cookies(jarURL)
	form := url.Values{"csrf": {csrf}, "r": {"/private"}, "code": {code}}

	if err := replica.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := mc.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err(); err != nil {
		t.Fatal(err)
	}
	status, _ := sfDo(br, "POST", a.base+"/_stepup/verify", form)
	master.Stop()
	if err := replica.Resume(); err != nil {
		t.Fatal(err)
	}
	t.Logf("the code used on the master just before it died: %d", status)
	if _, err := set.AwaitNewMaster(60*time.Second, master.Addr); err != nil {
		t.Fatal(err)
	}
	// The new master has no replica until the old one is back: with
	// wait_replicas 1 (the default under Sentinel) verifications fail
	// closed until then.
	if err := set.Restart(master.Addr); err != nil {
		t.Fatal(err)
	}
	if _, err := set.AwaitFailover(60*time.Second, master.Addr); err != nil {
		t.Fatal(err)
	}

	// A fails closed until it has found the new master; then the code must
	// not give a second step-up.
	deadline := time.Now().Add(90 * time.Second)
	for {
		replay := miNewBrowser(t, "alice")
		replay.c.Jar.SetCookies(jarURL, cookies)
		got, body := sfDo(replay, "POST", a.base+"/_stepup/verify", form)
		if got == http.StatusSeeOther && status == http.StatusSeeOther {
			t.Fatal("a code used on the old master verified again on the new one: two step-ups from one code")
		}
		if got != http.StatusServiceUnavailable {
			if got != http.StatusUnprocessableEntity && got != http.StatusSeeOther {
				t.Fatalf("the code on the new master: %d\n%s", got, body)
			}
			t.Logf("the same code on the new master: %d", got)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("A never reached the new master")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
