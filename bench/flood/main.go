// Command flood is bench/run's attacker and its crowd of users (issue 17).
//
// Flood mode sends -rate requests per second, for -duration, to the step-up
// endpoints of the site at -url, as bots would: -bots identities (X-User,
// believed from the trusted proxy, as bench/run's wrk is believed), each
// from its own address (X-Forwarded-For, which Caddy honours from its
// trusted proxy) and with its own number in one range (X-Phone, +81 90-2...). Each bot
// opens the step-up page once (for its CSRF token), then alternates POST
// /send and POST /verify with a wrong code. Most sends are soon refused by
// the limits (per identity, address, prefix, budget); every verify fails.
//
//	flood -url http://127.0.0.1:PORT -rate 2000 -duration 10s
//
// It prints what it sent and the answers by status; the last line is
// machine-readable for bench/run.
//
// Mint mode writes -mint tokens for users cold-0, cold-1, ... signed as
// the plugin with signing_key -key signs them, in realm -realm: one line
// "user token" each, for wrk's cold-cache script (bench/cold.lua); with
// -user, one token for that user.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

func main() {
	base := flag.String("url", "", "the step-up site, e.g. http://127.0.0.1:8080")
	rate := flag.Int("rate", 2000, "requests per second, in all")
	duration := flag.Duration("duration", 10*time.Second, "how long to flood")
	bots := flag.Int("bots", 500, "bot identities, each with its own address and number")
	workers := flag.Int("workers", 128, "concurrent connections (open loop: enough for the rate at the latency Caddy gives)")
	mint := flag.Int("mint", 0, "mint mode: write this many tokens and stop")
	key := flag.String("key", "", "mint mode: the plugin's signing_key")
	realm := flag.String("realm", "bench", "mint mode: the sites' realm")
	user := flag.String("user", "", "mint mode: one token for this user only (with -mint 1)")
	flag.Parse()
	if *mint > 0 {
		if err := mintTokens(os.Stdout, *mint, *key, *realm, *user); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *base == "" || *rate <= 0 || *bots <= 0 || *workers <= 0 {
		log.Fatal("flood: expected -url, and -rate, -bots and -workers above 0")
	}
	flood(*base, *rate, *duration, *bots, *workers)
}

// mintTokens writes n tokens for cold-0... (or for user) as the plugin
// signs them.
func mintTokens(w io.Writer, n int, key, realm, only string) error {
	keys, err := otp.DeriveKeys([]byte(key))
	if err != nil {
		return fmt.Errorf("-key: %w", err)
	}
	tokens, err := otp.NewTokens(otp.TokenConfig{Issuer: "caddy-sms-stepup", Audience: "urn:caddy-sms-stepup:realm:" + realm,
		TTL: 12 * time.Hour, Keys: []*otp.Keys{keys}})
	if err != nil {
		return err
	}
	out := bufio.NewWriter(w)
	now := time.Now()
	for i := 0; i < n; i++ {
		user := fmt.Sprint("cold-", i)
		if only != "" {
			user = only
		}
		tok, err := tokens.Issue(user, "", now)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s %s\n", user, tok)
	}
	return out.Flush()
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// bot is one attacking identity.
type bot struct {
	user, ip, phone, csrf string
	client                *http.Client
	mu                    sync.Mutex // one request at a time per bot
	sends                 int
}

func flood(base string, rate int, duration time.Duration, nbots, workers int) {
	tr := &http.Transport{MaxIdleConns: workers, MaxIdleConnsPerHost: workers}
	bots := make([]*bot, nbots)
	for i := range bots {
		jar, _ := cookiejar.New(nil)
		bots[i] = &bot{user: fmt.Sprint("bot-", i), ip: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
			phone: fmt.Sprintf("+81902%07d", i%10000000), client: &http.Client{Transport: tr, Jar: jar, Timeout: 10 * time.Second,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	}
	var mu sync.Mutex
	statuses := map[string]int{}
	var sent, failed atomic.Int64
	// Open-loop pacing: request k is due at start + k/rate, whoever takes it.
	var next atomic.Int64
	start := time.Now()
	total := int64(float64(rate) * duration.Seconds())
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := next.Add(1) - 1
				if k >= total {
					return
				}
				if d := time.Until(start.Add(time.Duration(k) * time.Second / time.Duration(rate))); d > 0 {
					time.Sleep(d) // pacing the load, not synchronising
				}
				b := bots[k%int64(nbots)]
				what, status, err := b.step(base)
				sent.Add(1)
				if err != nil {
					failed.Add(1)
					continue
				}
				mu.Lock()
				statuses[fmt.Sprintf("%s %d", what, status)]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	keys := make([]string, 0, len(statuses))
	for k := range statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, statuses[k]))
	}
	fmt.Printf("flood: %d requests in %.1f s (%.0f/s) from %d bots, %d failed; answers: %s\n",
		sent.Load(), elapsed.Seconds(), float64(sent.Load())/elapsed.Seconds(), nbots, failed.Load(), strings.Join(parts, ", "))
	refused := statuses["send 429"]
	fmt.Printf("FLOOD requests=%d rps=%.0f failed=%d send_refused=%d send_ok=%d verify=%d page=%d\n", sent.Load(),
		float64(sent.Load())/elapsed.Seconds(), failed.Load(), refused, statuses["send 303"], countPrefix(statuses, "verify "), countPrefix(statuses, "page "))
}

func countPrefix(m map[string]int, prefix string) int {
	n := 0
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

// step is the bot's next request: the page first, then send and a wrong
// code in turn.
func (b *bot) step(base string) (string, int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.csrf == "" {
		status, body, err := b.do(base, "GET", "/_stepup/?r=%2Fsettings", nil)
		if m := csrfRE.FindStringSubmatch(body); m != nil {
			b.csrf = m[1]
		}
		return "page", status, err
	}
	b.sends++
	if b.sends%2 == 1 {
		status, _, err := b.do(base, "POST", "/_stepup/send", url.Values{"csrf": {b.csrf}, "r": {"/settings"}})
		return "send", status, err
	}
	status, _, err := b.do(base, "POST", "/_stepup/verify", url.Values{"csrf": {b.csrf}, "r": {"/settings"}, "code": {"000000"}})
	return "verify", status, err
}

func (b *bot) do(base, method, path string, form url.Values) (int, string, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		return 0, "", err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("X-User", b.user)
	req.Header.Set("X-Phone", b.phone)
	req.Header.Set("X-Forwarded-For", b.ip)
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data), err
}
