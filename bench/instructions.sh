#!/usr/bin/env bash
# Instructions Gatehouse executes per request, counted by valgrind's callgrind: unlike req/s and
# CPU time, the count does not drift with what else the machine is doing, so two builds can be
# compared run against run. It counts user-space instructions only (no kernel work, no cache
# misses): use it to compare changes to Gatehouse's own code, and bench/run.sh for throughput.
#
#   bench/instructions.sh                  # both modes, 2,000 requests each
#   BENCH_MODES=stream BENCH_REQUESTS=500 bench/instructions.sh
#
# Needs valgrind, oha and the release binaries (as bench/run.sh builds them; BENCH_SKIP_BUILD=1
# uses what is there). Gatehouse runs on the embedded defaults in front of the bench mock, with
# the ledger on; the counters are zeroed after a warm-up of 300 requests, so startup, migrations
# and the first tokenizer load are not counted. Profiles stay in bench/out/callgrind.MODE for
# `callgrind_annotate`.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BENCH_MODES=${BENCH_MODES:-nonstream stream}
BENCH_REQUESTS=${BENCH_REQUESTS:-2000}
BENCH_SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
MOCK_ADDR=${BENCH_MOCK_ADDR:-127.0.0.1:9001}
GATEHOUSE_ADDR=${BENCH_GATEHOUSE_ADDR:-127.0.0.1:8080}
OUT=bench/out
BIN_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/release
PIDS=()

die() {
    echo "instructions: error: $*" >&2
    exit 1
}
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

command -v valgrind >/dev/null || die "valgrind is needed (apt-get install valgrind)"
command -v callgrind_control >/dev/null || die "callgrind_control (from valgrind) is needed"
command -v oha >/dev/null || die "oha is needed (cargo install oha --locked)"
if [[ "$BENCH_SKIP_BUILD" != 1 ]]; then
    cargo build --release -p gatehouse-test-support --bin mock-upstream
    cargo build --release -p gatehouse --bin gatehouse
fi
mkdir -p "$OUT"

wait_http() { # wait_http URL SECONDS
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        if curl -s -o /dev/null "$1"; then
            return 0
        fi
        sleep 0.1
    done
    die "nothing answered at $1"
}

body() { # body MODE: a request body like bench/run.sh's
    local stream=""
    if [[ "$1" == stream ]]; then
        stream=',"stream":true,"stream_options":{"include_usage":true}'
    fi
    printf '{"model":"bench-model","messages":[{"role":"user","content":"Say hello to the benchmark."}],"max_tokens":32%s}' "$stream"
}

"$BIN_DIR/mock-upstream" --listen "$MOCK_ADDR" --threads 1 >"$OUT/instructions-mock.log" 2>&1 &
PIDS+=($!)
wait_http "http://$MOCK_ADDR/v1/models" 10

for mode in $BENCH_MODES; do
    [[ "$mode" == stream || "$mode" == nonstream ]] || die "unknown mode $mode"
    cat >"$OUT/instructions.toml" <<EOF
[server]
listen = "$GATEHOUSE_ADDR"

[database]
url = "sqlite://$OUT/instructions.db"

[providers.up]
kind = "openai"
base_url = "http://$MOCK_ADDR/v1"
api_key_env = "BENCH_UPSTREAM_KEY"

[[models]]
alias = "bench-model"
provider = "up"
upstream_model = "bench-model"
input_usd_per_mtok = "1.00"
output_usd_per_mtok = "2.00"
EOF
    rm -f "$OUT"/instructions.db* "$OUT"/callgrind.raw.*
    body "$mode" >"$OUT/instructions-body.json"
    BENCH_UPSTREAM_KEY=bench-upstream-key RUST_LOG=warn valgrind --tool=callgrind \
        --callgrind-out-file="$OUT/callgrind.raw.%p" \
        "$BIN_DIR/gatehouse" serve --config "$OUT/instructions.toml" >"$OUT/instructions-gatehouse.log" 2>&1 &
    gh=$!
    PIDS+=("$gh")
    wait_http "http://$GATEHOUSE_ADDR/health" 120
    load() {
        oha -n "$1" -c 4 -m POST -H 'content-type: application/json' -D "$OUT/instructions-body.json" \
            --no-tui --output-format json "http://$GATEHOUSE_ADDR/v1/chat/completions" >"$OUT/instructions-oha.json"
        python3 -c "import json,sys; d=json.load(open('$OUT/instructions-oha.json')); sys.exit(0 if d['summary']['successRate']==1 else 1)" ||
            die "some $mode requests failed (see $OUT/instructions-oha.json)"
    }
    load 300
    sleep 1
    callgrind_control -z "$gh" >/dev/null 2>&1
    load "$BENCH_REQUESTS"
    sleep 1
    callgrind_control -d "$gh" >/dev/null 2>&1
    sleep 1
    kill -INT "$gh"
    wait "$gh" 2>/dev/null || true
    dump=$(ls "$OUT"/callgrind.raw.*.1 2>/dev/null | head -1)
    [[ -n "$dump" ]] || die "callgrind wrote no dump"
    mv "$dump" "$OUT/callgrind.$mode"
    rm -f "$OUT"/callgrind.raw.*
    total=$(awk '/^summary:/ {print $2; exit}' "$OUT/callgrind.$mode")
    echo "$mode: $((total / BENCH_REQUESTS)) instructions per request ($BENCH_REQUESTS requests, 4 connections)"
done
