package caddymodule

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// pfEnv is a handler whose numbers come from a phone_file it rereads, with
// its log captured.
func pfEnv(t *testing.T, content string) (*htEnv, string, *observer.ObservedLogs) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "phones.csv")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	e := htNew(t, nil, func(h *Handler) { h.Phone, h.PhoneFile = "", path })
	core, logs := observer.New(zapcore.InfoLevel)
	e.h.logger = zap.New(core)
	return e, path, logs
}

// pfReplace puts new content in place the safe way: a new file renamed
// over the old.
func pfReplace(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// pfMasked is the masked number the JSON state gives user, or its error.
func pfMasked(t *testing.T, e *htEnv, user string) string {
	t.Helper()
	w, body := e.browser(user).get("/_stepup/api/state")
	var out map[string]any
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("state of %s: %d %q", user, w.Code, body)
	}
	if w.Code != http.StatusOK {
		s, _ := out["error"].(string)
		return "error " + s
	}
	s, _ := out["masked"].(string)
	return s
}

// pfEvents are the captured entries of one audit event (and result).
func pfEvents(logs *observer.ObservedLogs, event, result string) []observer.LoggedEntry {
	var out []observer.LoggedEntry
	for _, e := range logs.All() {
		m := e.ContextMap()
		if m["event"] == event && (result == "" || m["result"] == result) {
			out = append(out, e)
		}
	}
	return out
}

func TestPhoneFileIsReadAgainWhenItChanges(t *testing.T) {
	t.Parallel()
	e, path, logs := pfEnv(t, "pf-alice,090-1111-2222\npf-bob,080-3333-4444\n")
	if got := pfMasked(t, e, "pf-alice"); got != "+81 90-****-2222" {
		t.Fatalf("alice at start: %q", got)
	}

	t.Run("a new number is used once the interval is over, with no reload", func(t *testing.T) {
		pfReplace(t, path, "pf-alice,090-5555-6666\npf-bob,080-3333-4444\n")
		e.clock.Add(DefaultPhoneFileRefresh / 2)
		if got := pfMasked(t, e, "pf-alice"); got != "+81 90-****-2222" {
			t.Fatalf("alice within the interval: %q, want the number last read", got)
		}
		e.clock.Add(DefaultPhoneFileRefresh / 2)
		if got := pfMasked(t, e, "pf-alice"); got != "+81 90-****-6666" {
			t.Fatalf("alice after the interval: %q, want the new number", got)
		}
		if w, body := e.browser("pf-alice").postSend(); w.Code != http.StatusSeeOther {
			t.Fatalf("send: %d\n%s", w.Code, body)
		}
		if msgs := e.messages(); msgs[len(msgs)-1].To != "+819055556666" {
			t.Fatalf("the code went to %s, want the new number", msgs[len(msgs)-1].To)
		}
		ev := pfEvents(logs, "phone_file_reread", "replaced")
		if len(ev) != 1 || ev[0].ContextMap()["served"] != int64(2) || ev[0].ContextMap()["skipped"] != int64(0) {
			t.Fatalf("reread events %+v, want one with 2 served and 0 skipped", ev)
		}
	})
	t.Run("a write in place is seen too", func(t *testing.T) {
		if err := os.WriteFile(path, []byte("pf-alice,090-7777-8888\npf-bob,080-3333-4444\n# in place\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(DefaultPhoneFileRefresh)
		if got := pfMasked(t, e, "pf-alice"); got != "+81 90-****-8888" {
			t.Fatalf("alice after an in-place write: %q", got)
		}
	})
	t.Run("an identity removed from the file has no number from it any more", func(t *testing.T) {
		pfReplace(t, path, "pf-alice,090-7777-8888\n")
		e.clock.Add(DefaultPhoneFileRefresh)
		if got := pfMasked(t, e, "pf-bob"); got != "error no_phone" {
			t.Fatalf("bob after his row went: %q, want no_phone", got)
		}
	})
	t.Run("a bad row is skipped and logged with its line, the number masked, and the rest served", func(t *testing.T) {
		logs.TakeAll()
		pfReplace(t, path, "pf-alice,090-7777-8888\npf-bob,080-3333-4444\npf-carol,050-1234-5678\npf-dave 090-2468-1357\n")
		e.clock.Add(DefaultPhoneFileRefresh)
		if got := pfMasked(t, e, "pf-bob"); got != "+81 80-****-4444" {
			t.Fatalf("bob beside the bad rows: %q", got)
		}
		if got := pfMasked(t, e, "pf-carol"); got != "error no_phone" {
			t.Fatalf("carol, whose number the policy refuses: %q, want no_phone", got)
		}
		skipped := pfEvents(logs, "phone_file_row_skipped", "")
		if len(skipped) != 2 {
			t.Fatalf("skipped-row warnings %+v, want 2", skipped)
		}
		carol, dave := skipped[0].ContextMap(), skipped[1].ContextMap()
		if skipped[0].Level != zapcore.WarnLevel || carol["file"] != path || carol["line"] != int64(3) || carol["identity"] != "pf-carol" ||
			carol["phone"] != "+81 50-****-5678" || !strings.Contains(carol["reason"].(string), "voip") {
			t.Errorf("carol's row: %v %v", skipped[0].Level, carol)
		}
		if dave["line"] != int64(4) || dave["identity"] != nil {
			t.Errorf("a row without a comma: %v; want line 4 and no identity (the whole line holds the number)", dave)
		}
		ev := pfEvents(logs, "phone_file_reread", "replaced")
		if len(ev) != 1 || ev[0].ContextMap()["served"] != int64(2) || ev[0].ContextMap()["skipped"] != int64(2) {
			t.Fatalf("reread events %+v, want 2 served and 2 skipped", ev)
		}
		for _, entry := range logs.All() {
			text, _ := json.Marshal(entry.ContextMap())
			for _, digits := range []string{"12345678", "1234-5678", "24681357", "2468-1357", "33334444", "3333-4444"} {
				if strings.Contains(entry.Message+string(text), digits) {
					t.Errorf("log entry %q %s shows the number %s", entry.Message, text, digits)
				}
			}
		}
	})
	t.Run("an unreadable file keeps the last reading and warns once an interval", func(t *testing.T) {
		logs.TakeAll()
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(DefaultPhoneFileRefresh)
		for range 3 {
			if got := pfMasked(t, e, "pf-bob"); got != "+81 80-****-4444" {
				t.Fatalf("bob with the file gone: %q, want the last reading", got)
			}
		}
		if n := len(pfEvents(logs, "phone_file_reread", "kept_last")); n != 1 {
			t.Fatalf("%d warnings within one interval, want 1", n)
		}
		if err := os.Mkdir(path, 0o700); err != nil { // opens, but can't be read
			t.Fatal(err)
		}
		e.clock.Add(DefaultPhoneFileRefresh)
		if got := pfMasked(t, e, "pf-bob"); got != "+81 80-****-4444" {
			t.Fatalf("bob with a directory in the file's place: %q", got)
		}
		if n := len(pfEvents(logs, "phone_file_reread", "kept_last")); n != 2 {
			t.Fatalf("%d warnings after two intervals, want 2", n)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an empty file, as in the middle of a write, keeps the last reading", func(t *testing.T) {
		pfReplace(t, path, "")
		e.clock.Add(DefaultPhoneFileRefresh)
		if got := pfMasked(t, e, "pf-bob"); got != "+81 80-****-4444" {
			t.Fatalf("bob with an empty file: %q", got)
		}
	})
	t.Run("a file none of whose rows can be used keeps the last reading", func(t *testing.T) {
		pfReplace(t, path, "pf-alice,090-7777-88")
		e.clock.Add(DefaultPhoneFileRefresh)
		if got := pfMasked(t, e, "pf-bob"); got != "+81 80-****-4444" {
			t.Fatalf("bob with half a file: %q", got)
		}
	})
	t.Run("a file meant to be empty (a comment line) empties the table", func(t *testing.T) {
		pfReplace(t, path, "# nobody\n")
		e.clock.Add(DefaultPhoneFileRefresh)
		if got := pfMasked(t, e, "pf-bob"); got != "error no_phone" {
			t.Fatalf("bob with a file of comments: %q, want no_phone", got)
		}
	})
}

// At start a bad row is skipped as at a reread, so that a file a reread
// accepted never stops a restart; its identity can't enrol in its place.
func TestPhoneFileAtStartSkipsBadRowsAndHoldsTheirIdentities(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "phones.csv")
	if err := os.WriteFile(path, []byte("pf-erin,090-1111-2222\npf-frank,050-1234-5678\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := htNew(t, nil, func(h *Handler) { h.Phone, h.PhoneFile, h.Enroll = "", path, true })
	if got := pfMasked(t, e, "pf-erin"); got != "+81 90-****-2222" {
		t.Fatalf("erin: %q", got)
	}
	if got := pfMasked(t, e, "pf-frank"); got != "error no_phone" {
		t.Fatalf("frank, whose row was skipped: %q, want no_phone (not the enrolment form)", got)
	}
	// The page refuses frank, so his CSRF token is made as a page would.
	frank := e.browser("pf-frank")
	r := frank.request(http.MethodGet, "/_stepup/", nil)
	w := httptest.NewRecorder()
	frank.keepCSRF(e.h.csrfToken(e.h.newVisit(w, r, r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer), "pf-frank")))
	frank.jar.SetCookies(htBase, w.Result().Cookies())
	resp, body := enPost(frank, "/_stepup/enroll", url.Values{"phone": {"080-9999-0000"}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Contact your administrator") || frank.cookie("__Host-stepup_enroll") != "" {
		t.Fatalf("frank enrolling a number of his own: %d, want refused\n%s", resp.StatusCode, body)
	}
}

func TestPhoneFileThatCannotBeReadFailsProvisioning(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, path := range map[string]string{"a missing file": filepath.Join(dir, "nope.csv"), "a directory": dir} {
		t.Run(name+" fails the load, naming phone_file and the path", func(t *testing.T) {
			h := &Handler{IdentityOptions: IdentityOptions{Identity: "{http.auth.user.id}", PhoneFile: path},
				TokenOptions: TokenOptions{SigningKey: htKey}, clock: htNewClock()}
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := h.Provision(ctx)
			if err == nil || !strings.Contains(err.Error(), "phone_file") || !strings.Contains(err.Error(), path) {
				t.Fatalf("provision: %v, want an error naming phone_file and %s", err, path)
			}
		})
	}
}
