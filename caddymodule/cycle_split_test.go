package caddymodule_test

import "testing"

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
