package caddymodule_test

import (
	"net/http"
	"testing"
	"time"
)

func TestParseCommandStats(t *testing.T) {
	info := "# Commandstats\r\n" +
		"cmdstat_evalsha:calls=3000,usec=9000,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_hmget:calls=12,usec=5,usec_per_call=0.42,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_client|setinfo:calls=2,usec=1,usec_per_call=0.50,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_odd:usec=1\r\n" +
		"not_a_stat:calls=9\r\n"
	got := cbParseCommandStats(info)
	want := map[string]int64{"evalsha": 3000, "hmget": 12, "client|setinfo": 2}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %d, want %d", k, got[k], v)
		}
	}
}

func TestCycleClientFindsTokenAndCode(t *testing.T) {
	page := `<form method="post" action="/_stepup/send"><input type="hidden" name="r" value="/private">` +
		`<input type="hidden" name="csrf" value="abc.DEF-12_x"><button>Send</button></form>`
	if got, ok := cbCSRFOf(page); !ok || got != "abc.DEF-12_x" {
		t.Errorf("csrf %q %v", got, ok)
	}
	for _, bad := range []string{"<form></form>", `name="csrf" value=""`} {
		if got, ok := cbCSRFOf(bad); ok {
			t.Errorf("csrf of %q: %q", bad, got)
		}
	}
	if got, ok := cbCodeOf("Example Corp code: 429018\nIt expires in 5 min."); !ok || got != "429018" {
		t.Errorf("code %q %v", got, ok)
	}
	for _, bad := range []string{"no code here", "code: 12345\n", "code: 12345a\n", "code: 1234567 x"} {
		if got, ok := cbCodeOf(bad); ok {
			t.Errorf("code of %q: %q", bad, got)
		}
	}
}

func TestCycleJarKeepsAndDropsByName(t *testing.T) {
	var j cbJar
	j.SetCookies(nil, []*http.Cookie{{Name: "a", Value: "1"}, {Name: "b", Value: "2"}})
	j.SetCookies(nil, []*http.Cookie{{Name: "a", Value: "3"}, {Name: "b", MaxAge: -1},
		{Name: "c", Value: "4", Expires: time.Unix(1, 0)}})
	got := map[string]string{}
	for _, c := range j.Cookies(nil) {
		got[c.Name] = c.Value
	}
	if len(got) != 1 || got["a"] != "3" {
		t.Fatalf("jar holds %v, want only a=3", got)
	}
}
