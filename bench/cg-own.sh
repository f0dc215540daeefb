#!/usr/bin/env bash
# bench/cg-own.sh DUMP: the handler's own work per request from a callgrind
# dump of a Caddy built WITH symbols (go build ./cmd/caddy, no -s -w): each
# callee of caddymodule.(*Handler).ServeHTTP (summed over the recursion
# levels callgrind splits it into), inclusive instructions per call, and
# their sum; the next handler (Caddy's route chain) is left out. Take the
# median of a few windows: a window's inclusive cost carries the GC assists
# and stack growth charged to it, and callgrind sometimes books a goroutine
# switch as a call (checkStepUp "calling" ServeHTTP), which inflates one
# line of one window by tens of thousands (bench/notes-17-hotpath2.md).
callgrind_annotate --inclusive=yes --tree=calling --threshold=100 "$1" 2>/dev/null | awk '
/^ *[0-9,]+ \([ 0-9.]+%\)  \*  / { inblock = ($0 ~ /caddymodule\.\(\*Handler\)\.ServeHTTP(\x27[0-9]+)? \[/); next }
/^$/ { inblock = 0; next }
inblock && /  >   / {
	if ($0 !~ /caddy-sms-stepup\/caddymodule\.|context\.\(\*valueCtx\)\.Value/) next
	cost = $1; gsub(",", "", cost)
	name = $0; sub(/.*:(github.com\/caddy-sms-stepup\/caddy-sms-stepup\/caddymodule\.|context\.)/, "", name); sub(/ \(.*/, "", name); sub(/\x27[0-9]+$/, "", name)
	calls = $0; sub(/.*\(/, "", calls); sub(/x\).*/, "", calls); gsub(",", "", calls)
	c[name] += cost; n[name] += calls
}
END {
	for (k in c) { per = c[k] / n[k]; tot += per; printf "%-40s %8.0f  (%d calls)\n", k, per, n[k] }
	printf "%-40s %8.0f\n", "ALL OWN (sum of per-call)", tot
}' | sort -k2 -n -r
