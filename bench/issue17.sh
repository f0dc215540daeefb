# bench/issue17.sh: issue 17's measurements ("under attack and at scale"),
# sourced by bench/run, which calls, in order:
#
#   i17_redis          before Caddy starts: a private redis-server on a free
#                      port for bench/Caddyfile's Redis site (5)
#   i17_live           with Caddy running, after the wrk runs:
#                      the hot path under a flood (BENCH_FLOOD=0 skips) and
#                      a cold token cache (BENCH_COLD=0 skips)
#   i17_go             after the servers stop: the refused send in process,
#                      this tree's Redis send against the tree before the
#                      one-script send (BENCH_OLDTREE=0 skips) and the memory
#                      store at a million (BENCH_MILLION=0 skips)
#   i17_report         the "Targets (issue 17)" section of the report
#
# It uses bench/run's functions and variables (WORK, PIDS, log, freeport,
# cpuns, parse_wrk, gotest, median, ratio, verdict, ...).

I17_FLOOD=${BENCH_FLOOD:-1}
I17_COLD=${BENCH_COLD:-1}
I17_OLD=${BENCH_OLDTREE:-1}
I17_MILLION=${BENCH_MILLION:-1}
I17_RATE=${BENCH_FLOOD_RATE:-2000}
I17_TOKENS=${BENCH_COLD_TOKENS:-100000}
I17_OLD_REV=${BENCH_OLD_REV:-ae914b6^1}
# Each issue-17 wrk run lasts at most 5 s: the defaults stay near 10 minutes.
I17_SECS=$(( DURATION < 5 ? DURATION : 5 ))
I17_ROUNDS=$(( ROUNDS < 2 ? ROUNDS : 2 ))
I17_FLOOD_TSV="$WORK/i17-flood.tsv"
I17_COLD_TSV="$WORK/i17-cold.tsv"
I17_RSS="$WORK/i17-rss.txt"
: >"$I17_FLOOD_TSV"
: >"$I17_COLD_TSV"
: >"$I17_RSS"

i17_redis() {
	local port
	port=$(freeport)
	# On the load's core, with everything else that is not Caddy: a
	# deployment's Redis is another machine's work, and unpinned it took
	# Caddy's core from it whenever the scheduler put it there.
	taskset -c "$LOAD_CPU" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >"$WORK/redis.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		sleep 0.1
	done
	export BENCH_REDIS_ADDR="127.0.0.1:$port"
}

# i17_wrk LABEL ROUND URL [wrk args...]: one wrk run of the real users,
# recorded in $I17_TSV as label, round, req/s, p99 ms, requests, Caddy CPU ns,
# non-2xx/3xx.
i17_wrk() {
	local label=$1 round=$2 url=$3; shift 3
	local out="$WORK/i17-wrk-$label-$round.txt" n0 n1 f
	n0=$(cpuns "$CADDY_PID")
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${I17_SECS}s" --timeout 10s --latency "$url" "$@" >"$out" 2>&1
	n1=$(cpuns "$CADDY_PID")
	grep -q 'Requests/sec' "$out" || { cat "$out"; log "  wrk failed on $label"; return 1; }
	f=$(parse_wrk "$out")
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$round" "$(echo "$f" | cut -f1)" "$(echo "$f" | cut -f3)" \
		"$(echo "$f" | cut -f4)" $((n1 - n0)) "$(echo "$f" | cut -f5)" >>"$I17_TSV"
	log "$(printf '  %-16s round %s %7s req/s  p99 %7.2f ms  non-2xx/3xx %s' "$label" "$round" "$(echo "$f" | cut -f1)" "$(echo "$f" | cut -f3)" "$(echo "$f" | cut -f5)")"
}

# i17_rss_sampler FILE LABEL: Caddy's VmRSS (kB) every half second into FILE
# until killed.
i17_rss_sampler() {
	while kill -0 "$CADDY_PID" 2>/dev/null; do
		printf '%s\t%s\n' "$2" "$(awk '/^VmRSS/ { print $2 }' "/proc/$CADDY_PID/status")" >>"$1"
		sleep 0.5
	done
}

i17_live() {
	local round store url fpid
	if [ "$I17_FLOOD" != 0 ]; then
		log "issue 17: real users under a flood of $I17_RATE bot requests/s, $I17_ROUNDS round(s) x $I17_SECS s per store"
		I17_TSV=$I17_FLOOD_TSV
		# The Redis site is its own realm: the same user, a cookie minted for it.
		local rtok hdrs
		rtok=$("$WORK/bin/flood" -mint 1 -user "$USER_ID" -key "$SIGNING_KEY" -realm bench-redis | cut -d' ' -f2)
		local REDIS_HEADERS=("${ID_HEADERS[@]}" -H "Cookie: stepup=$rtok")
		[ "$(curl -s -o /dev/null -w '%{http_code}' "${REDIS_HEADERS[@]}" "$STEPUP_REDIS/settings")" = 200 ] ||
			die "sanity: the Redis site did not pass the minted cookie"
		for round in $(seq 1 "$I17_ROUNDS"); do
			for store in memory redis floor; do
				url="$STEPUP/settings" hdrs=("${COOKIE_HEADERS[@]}")
				[ "$store" = redis ] && url="$STEPUP_REDIS/settings" hdrs=("${REDIS_HEADERS[@]}")
				[ "$store" = floor ] && url="$FLOOR/settings" hdrs=("${ID_HEADERS[@]}")
				i17_wrk "$store-alone" "$round" "$url" "${hdrs[@]}"
				taskset -c "$LOAD_CPU" "$WORK/bin/flood" -url "${url%/settings}" -rate "$I17_RATE" \
					-duration "$((I17_SECS + 1))s" -bots 500 >"$WORK/i17-flood-$store-$round.txt" 2>&1 &
				fpid=$!
				PIDS+=("$fpid")
				# BENCH_FLOOD_PROFILE=<file>: Caddy's CPU profile while flooded
				# (<file>.<store>, the first round), for go tool pprof.
				if [ -n "${BENCH_FLOOD_PROFILE:-}" ] && [ "$round" = 1 ]; then
					curl -s -o "$BENCH_FLOOD_PROFILE.$store" "http://127.0.0.1:$BENCH_ADMIN_PORT/debug/pprof/profile?seconds=$((I17_SECS > 2 ? I17_SECS - 1 : 1))" &
				fi
				i17_wrk "$store-flooded" "$round" "$url" "${hdrs[@]}"
				wait "$fpid"
				log "  $(head -1 "$WORK/i17-flood-$store-$round.txt")"
			done
		done
	fi
	if [ "$I17_COLD" != 0 ]; then
		log "issue 17: a cold token cache, $I17_TOKENS users with a fresh token each"
		"$WORK/bin/flood" -mint "$I17_TOKENS" -key "$SIGNING_KEY" -realm bench >"$WORK/cold-tokens.txt" || { log "  minting failed"; return; }
		I17_TSV=$I17_COLD_TSV
		i17_rss_sampler "$I17_RSS" cold &
		local spid=$!
		PIDS+=("$spid")
		for round in $(seq 1 "$I17_ROUNDS"); do
			i17_wrk bare "$round" "$BARE/settings" -s bench/cold.lua -- "$WORK/cold-tokens.txt" valid
			i17_wrk cold "$round" "$STEPUP/settings" -s bench/cold.lua -- "$WORK/cold-tokens.txt" valid
		done
		i17_wrk mixed 1 "$STEPUP/settings" -s bench/cold.lua -- "$WORK/cold-tokens.txt" mixed
		kill "$spid" 2>/dev/null
	fi
}

i17_go() {
	gotest refused caddymodule -test.run XXX -test.bench 'RefusedSend$' -test.benchtime 2000x -test.benchmem
	if [ "$I17_OLD" != 0 ] && [ -x "$WORK/bin/caddymodule.test" ]; then
		log "issue 17: the tree before the one-script send ($I17_OLD_REV): building its Caddy"
		mkdir -p "$WORK/oldtree"
		if git archive "$I17_OLD_REV" | tar -x -C "$WORK/oldtree" &&
			(cd "$WORK/oldtree" && go build -ldflags '-s -w' -o "$WORK/bin/caddy-old" ./cmd/caddy) >"$WORK/build-old.log" 2>&1; then
			local round
			for round in 1 2; do
				# alternating: this tree, then the old one, twice
				gotest "cyc-new-$round" caddymodule -test.run XXX -test.bench 'SendVerifyCycle/redis' -test.benchtime "${CYCLES}x" \
					-cycle.caddy "$WORK/bin/caddy"
				# the old tree has no headers_set_by (it believed the header)
				gotest "cyc-old-$round" caddymodule -test.run XXX -test.bench 'SendVerifyCycle/redis' -test.benchtime "${CYCLES}x" \
					-cycle.caddy "$WORK/bin/caddy-old" -cycle.omit newer-option
			done
			gotest sendcmds-new caddymodule -test.run XXX -test.bench 'SendRedisCommands' -test.benchtime 200x -cycle.caddy "$WORK/bin/caddy"
			gotest sendcmds-old caddymodule -test.run XXX -test.bench 'SendRedisCommands' -test.benchtime 200x \
				-cycle.caddy "$WORK/bin/caddy-old" -cycle.omit newer-option
		else
			log "  could not build $I17_OLD_REV's Caddy (see build-old.log)"
		fi
	fi
	if [ "$I17_MILLION" != 0 ]; then
		log "issue 17: memory store at a million live challenges, and requests while the sweeper sweeps them"
		"$WORK/bin/memstore" -n 1000000 -sweep >"$WORK/million.txt" 2>&1 || log "  memstore -n 1000000 failed"
	fi
}

# i17_med FILE LABEL COLUMN: the median of COLUMN over LABEL's rounds.
i17_med() { awk -F'\t' -v l="$2" -v c="$3" '$1 == l { print $c }' "$1" | median; }
i17_fmt() { awk -v v="$1" -v f="$2" 'BEGIN { if (v == "" || v == "nan") print "nan"; else printf f, v }'; }
i17_mkv() { sed -n "s/.*[ \t]\([0-9.]*\) $2.*/\1/p" "$1" 2>/dev/null | head -1; } # the value before a benchmark unit

i17_report() {
	local rows="" st a f pa pf fr cpu
	echo "## Targets (issue 17): under attack and at scale"
	echo
	echo "Measured in the same run as the rest of this page (\`bench/issue17.sh\`, sourced by \`bench/run\`)."
	echo "Each issue-17 wrk run lasts $I17_SECS s, $I17_ROUNDS round(s)."
	[ "$NOISY" = 1 ] && echo "**The machine was busy** (load above 1): the wall-clock ratios below (throughput, p99, cycles/s) were measured on a shared machine; the CPU-per-request and instruction figures depend far less on that."
	echo
	echo "| target | measured | | reproduce |"
	echo "|---|---|---|---|"
	if [ "$I17_FLOOD" != 0 ] && [ -s "$I17_FLOOD_TSV" ]; then
		for st in memory redis; do
			a=$(i17_med "$I17_FLOOD_TSV" "$st-alone" 3); f=$(i17_med "$I17_FLOOD_TSV" "$st-flooded" 3)
			pa=$(i17_med "$I17_FLOOD_TSV" "$st-alone" 4); pf=$(i17_med "$I17_FLOOD_TSV" "$st-flooded" 4)
			fr=$(cat "$WORK"/i17-flood-"$st"-*.txt 2>/dev/null | sed -n 's/^FLOOD .* rps=\([0-9]*\).*/\1/p' | median)
			# Caddy CPU for the bots' requests: the flooded run's CPU minus the
			# real users' requests at the unflooded CPU per request.
			cpu=$(awk -F'\t' -v s="$st" -v fr="$fr" -v secs="$I17_SECS" '$1 == s "-alone" { ua += $6 / $5; na++ } $1 == s "-flooded" { fc += $6; fn += $5; nf++ }
				END { if (na && nf && fr > 0) printf "%.1f", (fc - fn * ua / na) / (fr * secs * nf) / 1000; else print "nan" }' "$I17_FLOOD_TSV")
			echo "| real users (valid cookie, wrk) keep >= 0.85x of their throughput under >= 2,000 bot requests/s to send and verify, $st store | $(ratio "$f" "$a")x ($f vs $a req/s; bots sent $fr/s) | $(verdict 'a >= 0.85 && b >= 2000' "$(ratio "$f" "$a")" "$fr") | \`BENCH_FLOOD_RATE=$I17_RATE bench/run\` |"
			echo "| the same, p99 latency at most 2x, $st store | $(ratio "$pf" "$pa")x ($(i17_fmt "$pf" '%.1f') vs $(i17_fmt "$pa" '%.1f') ms) | $(verdict 'a <= 2' "$(ratio "$pf" "$pa")") | same |"
			echo "| Caddy CPU per bot request (page, send refused or not, wrong code), $st store, from schedstat | $cpu µs | reported | same |"
		done
		a=$(i17_med "$I17_FLOOD_TSV" "floor-alone" 3); f=$(i17_med "$I17_FLOOD_TSV" "floor-flooded" 3)
		pa=$(i17_med "$I17_FLOOD_TSV" "floor-alone" 4); pf=$(i17_med "$I17_FLOOD_TSV" "floor-flooded" 4)
		fr=$(cat "$WORK"/i17-flood-floor-*.txt 2>/dev/null | sed -n 's/^FLOOD .* rps=\([0-9]*\).*/\1/p' | median)
		echo "| the floor: bare reverse_proxy for the real users, a fixed 4,000-byte 429 for the same bots (no handler at all), same core | $(ratio "$f" "$a")x ($f vs $a req/s; bots sent $fr/s), p99 $(ratio "$pf" "$pa")x | reported: the most any handler of the bots' requests could leave real users here | same |"
	else
		echo "| hot path under a flood | not measured (BENCH_FLOOD=0) | | \`bench/run\` |"
	fi
	local rn
	rn=$(benchfield "$WORK/refused.txt" '^BenchmarkRefusedSend(-[0-9]+)?$' ns/op)
	echo "| one refused send (a limit) costs <= 50 µs of CPU: BenchmarkRefusedSend, in process, one goroutine | $(i17_fmt "$rn" '%.0f') ns | $(verdict 'a <= 50000' "$rn") | \`go test -run XXX -bench RefusedSend -benchtime 2000x ./caddymodule/\` |"
	if [ "$I17_OLD" != 0 ] && [ -f "$WORK/cyc-old-1.txt" ]; then
		local cn co un uo sn so scn sco tn to
		cn=$(for r in 1 2; do benchfield "$WORK/cyc-new-$r.txt" '^BenchmarkSendVerifyCycle/redis_store' cycles/s; done | median)
		co=$(for r in 1 2; do benchfield "$WORK/cyc-old-$r.txt" '^BenchmarkSendVerifyCycle/redis_store' cycles/s; done | median)
		un=$(for r in 1 2; do benchfield "$WORK/cyc-new-$r.txt" '^BenchmarkSendVerifyCycle/redis_store' caddy-cpu-µs/cycle; done | median)
		uo=$(for r in 1 2; do benchfield "$WORK/cyc-old-$r.txt" '^BenchmarkSendVerifyCycle/redis_store' caddy-cpu-µs/cycle; done | median)
		sn=$(benchfield "$WORK/sendcmds-new.txt" '^BenchmarkSendRedisCommands' redis-trips/send)
		so=$(benchfield "$WORK/sendcmds-old.txt" '^BenchmarkSendRedisCommands' redis-trips/send)
		local rfn rfo vn vo
		rfn=$(benchfield "$WORK/sendcmds-new.txt" '^BenchmarkSendRedisCommands' redis-trips/refused-send)
		rfo=$(benchfield "$WORK/sendcmds-old.txt" '^BenchmarkSendRedisCommands' redis-trips/refused-send)
		vn=$(benchfield "$WORK/sendcmds-new.txt" '^BenchmarkSendRedisCommands' redis-trips/verify)
		vo=$(benchfield "$WORK/sendcmds-old.txt" '^BenchmarkSendRedisCommands' redis-trips/verify)
		scn=$(benchfield "$WORK/sendcmds-new.txt" '^BenchmarkSendRedisCommands' redis-scripts/send)
		sco=$(benchfield "$WORK/sendcmds-old.txt" '^BenchmarkSendRedisCommands' redis-scripts/send)
		tn=$(benchfield "$WORK/sendcmds-new.txt" '^BenchmarkSendRedisCommands' send-µs)
		to=$(benchfield "$WORK/sendcmds-old.txt" '^BenchmarkSendRedisCommands' send-µs)
		echo "| send+verify cycles on Redis 2x the tree before the one-script send ($I17_OLD_REV), same run, alternating | $(ratio "$cn" "$co")x ($cn vs $co cycles/s) | $(verdict 'a >= 2' "$(ratio "$cn" "$co")") | \`bench/run\` (\`BENCH_OLD_REV\` another tree) |"
		echo "| the same by Caddy's CPU per cycle (old / new) | $(ratio "$uo" "$un")x ($un vs $uo µs) | reported | same |"
		# the split of each cycle's CPU (cbSplit): the cores Caddy,
		# redis-server and the clients share on this machine
		local f17 srvn srvo cln clo rcn rco otn oto idn ido
		f17() { for r in 1 2; do benchfield "$WORK/cyc-$1-$r.txt" '^BenchmarkSendVerifyCycle/redis_store' "$2"; done | median; }
		srvn=$(f17 new server-cpu-µs/cycle); srvo=$(f17 old server-cpu-µs/cycle)
		rcn=$(f17 new redis-cpu-µs/cycle); rco=$(f17 old redis-cpu-µs/cycle)
		cln=$(f17 new client-cpu-µs/cycle); clo=$(f17 old client-cpu-µs/cycle)
		otn=$(f17 new other-cpu-µs/cycle); oto=$(f17 old other-cpu-µs/cycle)
		idn=$(f17 new idle-µs/cycle); ido=$(f17 old idle-µs/cycle)
		echo "| server CPU per cycle (Caddy + redis-server), old / new | $(ratio "$srvo" "$srvn")x ($(i17_fmt "$srvn" '%.0f') vs $(i17_fmt "$srvo" '%.0f') µs; redis-server alone $(i17_fmt "$rcn" '%.0f') vs $(i17_fmt "$rco" '%.0f') µs) | reported: the work a deployment pays per step-up, which the shared cores hide from cycles/s | same |"
		echo "| the benchmark's clients' CPU per cycle, and the rest of the machine's (other processes; idle), new vs old | clients $(i17_fmt "$cln" '%.0f') vs $(i17_fmt "$clo" '%.0f') µs; other $(i17_fmt "$otn" '%.0f') vs $(i17_fmt "$oto" '%.0f') µs; idle $(i17_fmt "$idn" '%.0f') vs $(i17_fmt "$ido" '%.0f') µs | reported: on 2 cores these share the CPU with Caddy and redis-server | same |"
		echo "| redis-server's commands per cycle, those inside scripts included (INFO commandstats), new vs old | $(f17 new redis-cmds/cycle) vs $(f17 old redis-cmds/cycle) | reported | same |"
		echo "| round trips to Redis (MONITOR) per send, scripts among them; per refused send; per verify (new vs the old tree) | send $sn ($scn scripts) vs $so ($sco scripts); refused send $rfn vs $rfo; verify $vn vs $vo | $(verdict 'a <= 1.1' "$sn") (one round trip per send on one server: the history entry is sealed ahead and kept by the send's script, and a second step corrects it only when the gateway fails or a failover lands elsewhere) | \`go test -run XXX -bench SendRedisCommands ./caddymodule/\` |"
		echo "| the send alone: its own time, one at a time (old / new) | $(ratio "$to" "$tn")x ($tn vs $to µs) | reported | same |"
	else
		echo "| send+verify cycles on Redis against $I17_OLD_REV | not measured (BENCH_OLDTREE=0, or no test binary) | | \`bench/run\` |"
	fi
	local hot
	hot=$(cpu_rounds diff)
	echo "| hot path: at most 3 µs of Caddy CPU per request over bare reverse_proxy (schedstat, median of the rounds above) | $(i17_fmt "$hot" '%+.1f') µs | $(verdict 'a <= 3' "$hot") | \`bench/run\` |"
	echo "| the same by instructions (callgrind, load independent) | ${HOT_IR_EXTRA_TEXT} per request (${IR[stepup]} vs ${IR[bare]}) | reported | \`BENCH_WRK=0 BENCH_GO=0 bench/run\` |"
	if [ "$I17_COLD" != 0 ] && [ -s "$I17_COLD_TSV" ]; then
		local cb cc r0 rp r1
		cb=$(i17_med "$I17_COLD_TSV" bare 3); cc=$(i17_med "$I17_COLD_TSV" cold 3)
		r0=$(awk -F'\t' 'NR == 1 { print int($2 / 1024) }' "$I17_RSS"); rp=$(awk -F'\t' '$2 > m { m = $2 } END { print int(m / 1024) }' "$I17_RSS")
		r1=$(awk -F'\t' 'END { print int($2 / 1024) }' "$I17_RSS")
		echo "| a cold token cache (a fresh valid token on every request, $I17_TOKENS users, cache 10,000): >= 0.80x bare | $(ratio "$cc" "$cb")x ($cc vs $cb req/s, both through bench/cold.lua) | $(verdict 'a >= 0.80' "$(ratio "$cc" "$cb")") | \`BENCH_COLD_TOKENS=$I17_TOKENS bench/run\` |"
		echo "| Caddy's RSS flat under distinct valid and invalid tokens: start, peak, end of the cold runs (sampled every 0.5 s) | $r0, $rp, $r1 MiB | $(verdict 'b - a <= 64' "$r0" "$rp") (peak within 64 MiB of start) | same |"
	else
		echo "| a cold token cache | not measured (BENCH_COLD=0) | | \`bench/run\` |"
	fi
	if [ "$I17_MILLION" != 0 ] && [ -s "$WORK/million.txt" ]; then
		local mb sw
		mb=$(sed -n 's/^RESULT .* mb=\([0-9.]*\).*/\1/p' "$WORK/million.txt")
		sw=$(grep '^SWEEP' "$WORK/million.txt")
		echo "| memory store: 1,000,000 identities with live challenges < 500 MB (HeapInuse growth) | ${mb:-?} MB | $(verdict 'a < 500' "$mb") | \`go run ./bench/memstore -n 1000000 -sweep\` |"
		echo "| the sweeper never stalls requests: p99 of in-process Verify/Issue calls (4 goroutines) while it sweeps the million, against without | $(echo "$sw" | sed -n 's/.*sweep_p99_us=\([0-9.]*\).*/\1/p') µs vs $(echo "$sw" | sed -n 's/.*quiet_p99_us=\([0-9.]*\).*/\1/p') µs (sweep $(echo "$sw" | sed -n 's/.*sweep_ms=\([0-9.]*\).*/\1/p') ms) | $(verdict 'a <= 1000' "$(echo "$sw" | sed -n 's/.*sweep_p99_us=\([0-9.]*\).*/\1/p')") (p99 <= 1 ms) | same |"
	else
		echo "| memory store at a million | not measured (BENCH_MILLION=0 or failed) | | \`go run ./bench/memstore -n 1000000 -sweep\` |"
	fi
	echo
	echo "Every issue-17 wrk run (real users; \"flooded\" while bench/flood ran; \"cold\" and \"mixed\" through bench/cold.lua):"
	echo
	echo "| run | round | req/s | p99 ms | requests | Caddy CPU µs/request | non-2xx/3xx |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	cat "$I17_FLOOD_TSV" "$I17_COLD_TSV" | awk -F'\t' '{ printf "| %s | %s | %s | %.2f | %s | %.1f | %s |\n", $1, $2, $3, $4, $5, ($5 > 0 ? $6 / $5 / 1000 : 0), $7 }'
	echo
	if ls "$WORK"/i17-flood-*.txt >/dev/null 2>&1; then
		echo "What the bots got (bench/flood; 500 bots, each its own identity, address and number):"
		echo
		echo '```'
		for f in "$WORK"/i17-flood-*.txt; do echo "$(basename "$f" .txt): $(head -1 "$f")"; done
		echo '```'
		echo
	fi
	if [ -s "$WORK/million.txt" ]; then
		echo "\`bench/memstore -n 1000000 -sweep\`:"
		echo
		grep -v '^RESULT\|^SWEEP' "$WORK/million.txt" | fence
		echo
	fi
	for f in refused cyc-new-1 cyc-old-1 cyc-new-2 cyc-old-2 sendcmds-new sendcmds-old; do
		[ -f "$WORK/$f.txt" ] || continue
		echo "\`$f\`:"
		echo
		gooutput "$f"
		echo
	done
	[ -f bench/notes-issue17.md ] && { cat bench/notes-issue17.md; echo; }
}
