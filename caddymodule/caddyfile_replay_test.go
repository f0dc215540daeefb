package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestUnmarshalCaddyfileReplay(t *testing.T) {
	t.Parallel()
	h, err := cfParse(cfWith(
		"replay off",
		"replay_max_body 128KiB",
		"app_triggered /app/* /api/transfer",
		"app_triggered {",
		"\tpath /pay/*",
		"\tmethod POST",
		"}",
	))
	if err != nil {
		t.Fatal(err)
	}
	sets, _ := json.Marshal(h.AppTriggeredRaw)
	if h.Replay != "off" || h.ReplayMaxBody != 128<<10 ||
		string(sets) != `[{"path":["/app/*","/api/transfer"]},{"method":["POST"],"path":["/pay/*"]}]` {
		t.Errorf("replay %q, replay_max_body %d, app_triggered %s", h.Replay, h.ReplayMaxBody, sets)
	}
	for in, want := range map[string]int64{"1": 1, "65536": 65536, "64KB": 64 << 10, "1MiB": 1 << 20, "512B": 512} {
		if h, err := cfParse(cfWith("replay_max_body " + in)); err != nil || h.ReplayMaxBody != want {
			t.Errorf("replay_max_body %s: %d, %v; want %d", in, h.ReplayMaxBody, err, want)
		}
	}
}

func TestUnmarshalCaddyfileReplayRefusesWithLine(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		lines []string
		at    string
		words string
	}{
		{[]string{"replay maybe"}, "Testfile:4", `replay "maybe": expected off (or on, the default)`},
		{[]string{"replay"}, "Testfile:4", "replay: expected one value"},
		{[]string{"replay_max_body 2MiB"}, "Testfile:4", `replay_max_body "2MiB": expected a size from 1 byte to 1MiB`},
		{[]string{"replay_max_body 0"}, "Testfile:4", "expected a size from 1 byte to 1MiB"},
		{[]string{"replay_max_body -1"}, "Testfile:4", "expected a size from 1 byte to 1MiB"},
		{[]string{"replay_max_body lots"}, "Testfile:4", "expected a size from 1 byte to 1MiB"},
		{[]string{"app_triggered"}, "Testfile:4", "app_triggered: expected path patterns or a block of matchers"},
		{[]string{"app_triggered app/*"}, "Testfile:4", `app_triggered "app/*": expected path patterns starting with /`},
		{[]string{"app_triggered {", "\tnosuchmatcher x", "}"}, "Testfile:6", "module not registered: http.matchers.nosuchmatcher"},
	} {
		_, err := cfParse(cfWith(tt.lines...))
		if err == nil || !strings.Contains(err.Error(), tt.words) || !strings.Contains(err.Error(), tt.at) {
			t.Errorf("%q: %v; want %q at %s", tt.lines, err, tt.words, tt.at)
		}
	}
	h := cfBase()
	h.ReplayMaxBody = 2 << 20
	if err := h.Validate(); err == nil || optionOf(err) != "replay_max_body" {
		t.Errorf("JSON replay_max_body of 2 MiB: %v (option %q)", err, optionOf(err))
	}
}
