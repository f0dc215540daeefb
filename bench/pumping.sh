#!/bin/sh
# The SMS pumping simulation of issue 15 (docs/BENCHMARKS.md, "Pumping
# simulation"): builds Caddy from cmd/caddy, then runs bench/pumping with
# the fraud guard on (the default) and with fraud_guard off, one JSON line
# each.
set -eu
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/caddy
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/caddy
for guard in on off; do
	go run ./bench/pumping -caddy "$bin" -guard "$guard"
done
# The known weakness: 12 real users of one range asking for a code before
# any of them types it.
for guard in on off; do
	go run ./bench/pumping -caddy "$bin" -guard "$guard" -burst 12
done
