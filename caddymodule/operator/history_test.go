package operator

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/internal/redistest"
	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// TestOperatorHistoryOnRedis sends codes through one handler on a real
// Redis and reads the history with the command line, as another instance
// would: by identity, by prefix, with --since and --json; refusals name
// their reason, and the number is masked.
func TestOperatorHistoryOnRedis(t *testing.T) {
	r := redistest.Start(t)
	e := newOpEnv(t, "redis redis://"+r.Addr+"/0", opSigningKey)
	h := e.server(t)
	ctx := t.Context()
	p := phone(t, h, "+819011113333")
	res, err := h.Service().Send(ctx, otp.SendRequest{Subject: "ivan", Phone: p, Locale: "en"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Service().Send(ctx, otp.SendRequest{Subject: "ivan", Phone: p, Locale: "en", ResendID: res.Challenge.ID}); err == nil {
		t.Fatal("a resend within the cooldown passed")
	}
	if _, err := h.Service().Verify(ctx, otp.VerifyInput{Subject: "ivan", ChallengeID: res.Challenge.ID, Code: "000000"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Service().Send(ctx, otp.SendRequest{Subject: "judy", Phone: phone(t, h, "+819011119999"), Locale: "en"}); err != nil {
		t.Fatal(err)
	}

	out := e.mustRun(t, "history", "ivan")
	for _, want := range []string{"history of ivan since ", "3 entries", "verify  wrong_code", "send    refused (cooldown)",
		"send    sent", "+81 90-****-3333", "challenge " + res.Challenge.ID[:8], "via console"} {
		if !strings.Contains(out, want) {
			t.Errorf("history ivan lacks %q:\n%s", want, out)
		}
	}
	prefixOut := e.mustRun(t, "history", "--prefix", "+81901111")
	if !strings.Contains(prefixOut, "4 entries") || !strings.Contains(prefixOut, "identity judy") || !strings.Contains(prefixOut, "+81 90-****-9999") {
		t.Errorf("history --prefix:\n%s", prefixOut)
	}
	if strings.Contains(out+prefixOut, "9011113333") || strings.Contains(out+prefixOut, "9011119999") {
		t.Errorf("a full number in the history:\n%s%s", out, prefixOut)
	}
	var got historyResult
	if err := json.Unmarshal([]byte(e.mustRun(t, "history", "ivan", "--since", "1h", "--json")), &got); err != nil {
		t.Fatal(err)
	}
	if got.Identity != "ivan" || len(got.Entries) != 3 || got.Entries[1].Reason != "cooldown" || got.Retention != (7*24*time.Hour).String() ||
		time.Since(got.Since) > time.Hour+time.Minute {
		t.Fatalf("history --json: %+v", got)
	}
	if _, _, err := e.run(t, "history", "ivan", "--since", "soon"); err == nil || !strings.Contains(err.Error(), "a duration such as 1h") {
		t.Errorf("--since soon: %v", err)
	}
}
