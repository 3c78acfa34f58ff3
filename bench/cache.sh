#!/usr/bin/env bash
# Gatehouse overhead benchmark: the same load sent straight to the mock upstream ("direct") and
# through Gatehouse ("gatehouse"), closed loop and at fixed rates, streaming and not. Prints a
# markdown table of medians over BENCH_RUNS runs and writes it to bench/out/results.md.
# See bench/README.md for how to read it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_ONLY_DIRECT=${BENCH_ONLY_DIRECT:-0}
BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-50}
BENCH_RATES=${BENCH_RATES:-200 2000}
BENCH_MODES=${BENCH_MODES:-nonstream stream}
BENCH_MOCK_ADDR=${BENCH_MOCK_ADDR:-127.0.0.1:9001}
BENCH_MOCK_THREADS=${BENCH_MOCK_THREADS:-1}
BENCH_GATEHOUSE_ADDR=${BENCH_GATEHOUSE_ADDR:-127.0.0.1:8080}
BENCH_GATEHOUSE_CONFIG=${BENCH_GATEHOUSE_CONFIG:-}
BENCH_GATEHOUSE_KEY=${BENCH_GATEHOUSE_KEY:-}
BENCH_LOADGEN=${BENCH_LOADGEN:-oha}
BENCH_SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
BENCH_SUITE=${BENCH_SUITE:-cache}
BENCH_CACHE_BACKENDS=${BENCH_CACHE_BACKENDS:-off memory redis}
BENCH_CACHE_RATE=${BENCH_CACHE_RATE:-500}
BENCH_REDIS_URL=${BENCH_REDIS_URL:-}

OUT=bench/out
RAW=$OUT/raw
BIN_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/release
CLK_TCK=$(getconf CLK_TCK)
MOCK_PID=""
GATEHOUSE_PID=""
REDIS_PIDFILE=""

log() { echo "bench: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

cleanup() {
    local pid
    for pid in "$GATEHOUSE_PID" "$MOCK_PID"; do
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [[ -n "$REDIS_PIDFILE" && -f "$REDIS_PIDFILE" ]]; then
        kill "$(cat "$REDIS_PIDFILE")" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- load generator -------------------------------------------------------------------------

ensure_loadgen() {
    command -v python3 >/dev/null || die "python3 is needed to parse results"
    if [[ "$BENCH_LOADGEN" == oha ]]; then
        if command -v oha >/dev/null; then
            return
        fi
        log "oha not found; installing it with cargo install oha --locked (a few minutes)"
        if cargo install oha --locked; then
            return
        fi
        log "installing oha failed; falling back to wrk (closed loop only: wrk has no fixed rate)"
        BENCH_LOADGEN=wrk
    fi
    if [[ "$BENCH_LOADGEN" == wrk ]] && ! command -v wrk >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk >&2 ||
            die "could not install wrk either"
    fi
    [[ "$BENCH_LOADGEN" == oha || "$BENCH_LOADGEN" == wrk ]] || die "BENCH_LOADGEN must be oha or wrk"
}

loadgen_version() {
    if [[ "$BENCH_LOADGEN" == oha ]]; then oha --version; else wrk -v 2>&1 | head -1 || true; fi
}

# load_run URL BODY_FILE LOAD RESULT_FILE [SECONDS]; LOAD is "c50" (closed loop) or "q200" (fixed
# rate, req/s). Prints "rps p50_ms p99_ms requests errors".
load_run() {
    local url=$1 body=$2 load=$3 result=$4 seconds=${5:-$BENCH_SECONDS}
    local auth=()
    if [[ -n "$BENCH_GATEHOUSE_KEY" ]]; then
        auth=(-H "Authorization: Bearer $BENCH_GATEHOUSE_KEY")
    fi
    if [[ "$BENCH_LOADGEN" == oha ]]; then
        local rate=()
        if [[ "$load" == q* ]]; then
            rate=(-q "${load#q}" --latency-correction)
        fi
        oha -z "${seconds}s" -c "$BENCH_CONCURRENCY" "${rate[@]}" -w --no-tui --output-format json \
            -m POST -T application/json "${auth[@]}" -D "$body" "$url" >"$result"
        python3 bench/report.py oha "$result"
    else
        local script=$RAW/wrk-post.lua
        {
            echo 'wrk.method = "POST"'
            echo 'wrk.headers["Content-Type"] = "application/json"'
            if [[ -n "$BENCH_GATEHOUSE_KEY" ]]; then
                echo "wrk.headers[\"Authorization\"] = \"Bearer $BENCH_GATEHOUSE_KEY\""
            fi
            printf 'wrk.body = [==[%s]==]\n' "$(cat "$body")"
        } >"$script"
        wrk -d "${seconds}s" -c "$BENCH_CONCURRENCY" -t 2 --latency -s "$script" "$url" >"$result"
        python3 bench/report.py wrk "$result"
    fi
}

# --- processes ------------------------------------------------------------------------------

cpu_ticks() { # utime + stime of a pid, in clock ticks (fields 14 and 15 of /proc/PID/stat)
    local stat
    stat=$(<"/proc/$1/stat")
    # Drop "pid (comm) " first: comm may contain spaces. Field 3 (state) becomes $1.
    awk '{ print $12 + $13 }' <<<"${stat##*) }"
}

peak_rss_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

wait_for_port() { # wait_for_port ADDR PID NAME LOGFILE
    local host=${1%:*} port=${1##*:}
    for _ in $(seq 150); do
        kill -0 "$2" 2>/dev/null || die "$3 exited during startup; see $4: $(tail -5 "$4")"
        if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
            return
        fi
        sleep 0.1
    done
    die "$3 did not listen on $1 within 15 s; see $4"
}

port_free() {
    local host=${1%:*} port=${1##*:}
    ! (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

start_mock() {
    port_free "$BENCH_MOCK_ADDR" || die "$BENCH_MOCK_ADDR is already in use (set BENCH_MOCK_ADDR)"
    "$BIN_DIR/mock-upstream" --listen "$BENCH_MOCK_ADDR" --threads "$BENCH_MOCK_THREADS" >"$OUT/mock-upstream.log" 2>&1 &
    MOCK_PID=$!
    wait_for_port "$BENCH_MOCK_ADDR" "$MOCK_PID" mock-upstream "$OUT/mock-upstream.log"
}

write_gatehouse_config() {
    cat >"$OUT/gatehouse.toml" <<EOF
[server]
listen = "$BENCH_GATEHOUSE_ADDR"

[database]
url = "sqlite://$OUT/gatehouse.db"

[providers.up]
kind = "openai"
base_url = "http://$BENCH_MOCK_ADDR/v1"
api_key_env = "BENCH_UPSTREAM_KEY"

[[models]]
alias = "bench-model"
provider = "up"
upstream_model = "bench-model"
input_usd_per_mtok = "1.00"
output_usd_per_mtok = "2.00"
EOF
    echo "$OUT/gatehouse.toml"
}

start_gatehouse() {
    local config=$BENCH_GATEHOUSE_CONFIG
    if [[ -z "$config" ]]; then
        config=$(write_gatehouse_config)
        rm -f "$OUT"/gatehouse.db "$OUT"/gatehouse.db-wal "$OUT"/gatehouse.db-shm
    fi
    port_free "$BENCH_GATEHOUSE_ADDR" || die "$BENCH_GATEHOUSE_ADDR is already in use (set BENCH_GATEHOUSE_ADDR)"
    BENCH_UPSTREAM_KEY=${BENCH_UPSTREAM_KEY:-bench-upstream-key} \
        "$BIN_DIR/gatehouse" serve --config "$config" >"$OUT/gatehouse.log" 2>&1 &
    GATEHOUSE_PID=$!
    wait_for_port "$BENCH_GATEHOUSE_ADDR" "$GATEHOUSE_PID" gatehouse "$OUT/gatehouse.log"
}

# --- scenarios ------------------------------------------------------------------------------

write_bodies() {
    local messages='"messages":[{"role":"user","content":"Say hello to the benchmark."}]'
    echo "{\"model\":\"bench-model\",$messages,\"max_tokens\":32}" >"$OUT/body-nonstream.json"
    echo "{\"model\":\"bench-model\",$messages,\"max_tokens\":32,\"stream\":true,\"stream_options\":{\"include_usage\":true}}" \
        >"$OUT/body-stream.json"
}

# Sends a short burst and insists on clean 2xx answers before anything is measured.
warm_up() { # warm_up NAME URL
    local mode
    for mode in $BENCH_MODES; do
        local fields requests errors
        fields=$(load_run "$2" "$OUT/body-$mode.json" c"$BENCH_CONCURRENCY" "$RAW/warmup-$1-$mode.out" 2)
        read -r _ _ _ requests errors <<<"$fields"
        ((requests > 0 && errors == 0)) ||
            die "warm-up against $1 ($mode) got $errors errors in $requests requests; see $RAW/warmup-$1-$mode.out"
    done
}

measure() { # measure SCENARIO TARGET URL PID BODY LOAD RUN
    local scenario=$1 target=$2 url=$3 pid=$4 body=$5 load=$6 run=$7
    local result=$RAW/${scenario//\//_}-$target-$run.out before after fields rps p50 p99 requests errors
    before=$(cpu_ticks "$pid")
    fields=$(load_run "$url" "$body" "$load" "$result")
    after=$(cpu_ticks "$pid")
    read -r rps p50 p99 requests errors <<<"$fields"
    local cpu_us="-"
    if ((requests > 0)); then
        cpu_us=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
    fi
    local hwm
    hwm=$(peak_rss_kib "$pid")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$scenario" "$target" "$run" "$rps" "$p50" "$p99" "$requests" "$errors" "$cpu_us" "$hwm" >>"$OUT/runs.tsv"
    log "$(printf '%-16s %-9s run %s: %9s req/s  p50 %8s ms  p99 %8s ms  errors %s  cpu %s µs/req' \
        "$scenario" "$target" "$run" "$rps" "$p50" "$p99" "$errors" "$cpu_us")"
}

# --- cache suite ----------------------------------------------------------------------------
# BENCH_SUITE=cache: 50% repeated prompts through Gatehouse with the cache off, in-process and
# on Redis; hit rate, throughput and p50/p99 for hits and misses. See bench/README.md.

start_redis() {
    if [[ -n "$BENCH_REDIS_URL" ]]; then
        echo "$BENCH_REDIS_URL"
        return
    fi
    command -v redis-server >/dev/null ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server >&2 ||
        die "redis-server is needed for the redis backend (or set BENCH_REDIS_URL)"
    local port
    port=$((20000 + RANDOM % 40000))
    REDIS_PIDFILE=$OUT/redis.pid
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
        --pidfile "$ROOT/$REDIS_PIDFILE" --logfile "$ROOT/$OUT/redis.log" >&2
    for _ in $(seq 50); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    echo "redis://127.0.0.1:$port"
}

write_cache_config() { # write_cache_config BACKEND REDIS_URL
    write_gatehouse_config >/dev/null
    case "$1" in
    off) ;;
    memory) printf '\n[cache]\nenabled = true\nbackend = "memory"\n' >>"$OUT/gatehouse.toml" ;;
    redis)
        printf '\n[cache]\nenabled = true\nbackend = "redis"\nredis_url = "%s"\nredis_key_prefix = "gatehouse-bench:%s"\n' \
            "$2" "$(date +%s%N)" >>"$OUT/gatehouse.toml"
        ;;
    *) die "unknown cache backend $1 (off, memory, redis)" ;;
    esac
    echo "$OUT/gatehouse.toml"
}

cache_main() {
    mkdir -p "$OUT" "$RAW"
    if [[ "$BENCH_SKIP_BUILD" != 1 ]]; then
        log "building release binaries"
        cargo build --release -p gatehouse-test-support --bin mock-upstream --bin cache-load
        cargo build --release -p gatehouse --bin gatehouse
    fi
    start_mock
    local redis_url=""
    [[ " $BENCH_CACHE_BACKENDS " == *" redis "* ]] && redis_url=$(start_redis)
    printf 'backend\tmode\tload\trun\tresult\n' >"$OUT/cache-runs.tsv"
    local backend mode load run stream rate
    for backend in $BENCH_CACHE_BACKENDS; do
        BENCH_GATEHOUSE_CONFIG=$(write_cache_config "$backend" "$redis_url")
        rm -f "$OUT"/gatehouse.db "$OUT"/gatehouse.db-wal "$OUT"/gatehouse.db-shm
        start_gatehouse
        for mode in $BENCH_MODES; do
            stream=()
            [[ "$mode" == stream ]] && stream=(--stream)
            # Fill the pool of repeated questions before measuring.
            "$BIN_DIR/cache-load" --url "http://$BENCH_GATEHOUSE_ADDR/v1/chat/completions" \
                --seconds 2 --concurrency "$BENCH_CONCURRENCY" "${stream[@]}" --tag "warm-$backend-$mode" >/dev/null
            for load in "c$BENCH_CONCURRENCY" "q$BENCH_CACHE_RATE"; do
                rate=()
                [[ "$load" == q* ]] && rate=(--rate "${load#q}")
                for run in $(seq "$BENCH_RUNS"); do
                    local result
                    result=$("$BIN_DIR/cache-load" --url "http://$BENCH_GATEHOUSE_ADDR/v1/chat/completions" \
                        --seconds "$BENCH_SECONDS" --concurrency "$BENCH_CONCURRENCY" "${rate[@]}" "${stream[@]}" \
                        --tag "$backend-$mode-$load-$run")
                    printf '%s\t%s\t%s\t%s\t%s\n' "$backend" "$mode" "$load" "$run" "$result" >>"$OUT/cache-runs.tsv"
                    log "$backend $mode $load run $run: $result"
                done
            done
        done
        kill "$GATEHOUSE_PID" && wait "$GATEHOUSE_PID" 2>/dev/null || true
        GATEHOUSE_PID=""
    done
    {
        echo "# Gatehouse response-cache benchmark"
        echo
        echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); commit: $(git rev-parse --short HEAD 2>/dev/null || echo none)"
        echo "- machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
        echo "- workload: 50% of requests repeat one of 100 questions, 50% are new; temperature 0;" \
            "$BENCH_SECONDS s per run, median of $BENCH_RUNS runs; $BENCH_CONCURRENCY connections;" \
            "c$BENCH_CONCURRENCY = closed loop, q$BENCH_CACHE_RATE = fixed rate (latency from the scheduled time)"
        echo "- upstream: the instant bench mock, so a miss costs Gatehouse + one loopback upstream call"
    } >"$OUT/cache-meta.md"
    python3 bench/report.py cache "$OUT/cache-runs.tsv" "$OUT/cache-meta.md" | tee "$OUT/cache-results.md"
}

main() {
    if [[ "$BENCH_SUITE" == cache ]]; then
        cache_main
        return
    fi
    mkdir -p "$OUT" "$RAW"
    ensure_loadgen
    local loads=("c$BENCH_CONCURRENCY")
    if [[ "$BENCH_LOADGEN" == oha ]]; then
        local rate
        for rate in $BENCH_RATES; do loads+=("q$rate"); done
    else
        log "wrk cannot hold a fixed rate: skipping the fixed-rate scenarios ($BENCH_RATES req/s)"
    fi

    if [[ "$BENCH_SKIP_BUILD" != 1 ]]; then
        log "building release binaries"
        cargo build --release -p gatehouse-test-support --bin mock-upstream
        if [[ "$BENCH_ONLY_DIRECT" != 1 ]]; then
            cargo build --release -p gatehouse --bin gatehouse
        fi
    fi
    [[ -x "$BIN_DIR/mock-upstream" ]] || die "$BIN_DIR/mock-upstream not found"

    write_bodies
    start_mock
    local targets=("direct|http://$BENCH_MOCK_ADDR/v1/chat/completions|$MOCK_PID")
    if [[ "$BENCH_ONLY_DIRECT" == 1 ]]; then
        log "BENCH_ONLY_DIRECT=1: measuring the mock upstream alone"
    else
        [[ -x "$BIN_DIR/gatehouse" ]] || die "$BIN_DIR/gatehouse not found (or set BENCH_ONLY_DIRECT=1)"
        start_gatehouse
        targets+=("gatehouse|http://$BENCH_GATEHOUSE_ADDR/v1/chat/completions|$GATEHOUSE_PID")
    fi

    local entry
    for entry in "${targets[@]}"; do
        IFS='|' read -r name url _ <<<"$entry"
        warm_up "$name" "$url"
    done

    printf 'scenario\ttarget\trun\trps\tp50_ms\tp99_ms\trequests\terrors\tcpu_us_per_req\tpeak_rss_kib\n' >"$OUT/runs.tsv"
    local mode load run
    for mode in $BENCH_MODES; do
        for load in "${loads[@]}"; do
            for run in $(seq "$BENCH_RUNS"); do
                # Targets alternate within each run so slow drift on a shared machine hits both.
                for entry in "${targets[@]}"; do
                    IFS='|' read -r name url pid <<<"$entry"
                    measure "$mode/$load" "$name" "$url" "$pid" "$OUT/body-$mode.json" "$load" "$run"
                done
            done
        done
    done

    {
        echo "# Gatehouse overhead benchmark"
        echo
        echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); commit: $(git rev-parse --short HEAD 2>/dev/null || echo none)"
        echo "- machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
        echo "- load: $(loadgen_version); $BENCH_SECONDS s per run, median of $BENCH_RUNS runs;" \
            "$BENCH_CONCURRENCY connections; mock-upstream with $BENCH_MOCK_THREADS thread(s)"
        echo "- scenarios: c$BENCH_CONCURRENCY = closed loop; qN = fixed rate N req/s (latency-corrected);" \
            "stream = \"stream\": true with include_usage"
        echo "- CPU µs/req and peak RSS are the target process's own: the mock for direct, Gatehouse for gatehouse"
    } >"$OUT/meta.md"
    python3 bench/report.py table "$OUT/runs.tsv" "$OUT/meta.md" | tee "$OUT/results.md"
}

main "$@"
