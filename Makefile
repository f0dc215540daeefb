# `make run` serves the demo, `make test` runs every test. Both install
# what they need on a fresh machine and are quick when it is already there.

.PHONY: run test deps build

run:
	go run ./cmd/caddy run --config Caddyfile.example

test:
	bash scripts/test

deps:
	bash scripts/deps

build:
	go build -o caddy ./cmd/caddy

# `make bench` runs the benchmark harness and writes docs/BENCHMARKS.md
# (about 5 minutes; BENCH_DURATION=3 BENCH_ROUNDS=2 for a quick run).
.PHONY: bench
bench:
	bash bench/run
