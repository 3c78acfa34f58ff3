#!/usr/bin/env bash
# Gatehouse overhead benchmark: the same load sent straight to the mock upstream ("direct") and
# through Gatehouse ("gatehouse"), closed loop and at fixed rates, streaming and not. Prints a
# markdown table of medians over BENCH_RUNS runs and writes it to bench/out/results.md.
# BENCH_FAULTS=1 instead compares Gatehouse in front of a clean mock ("clean") with Gatehouse in
# front of a mock answering BENCH_FAULT_RATE of requests with 500, retries on ("faults").
# BENCH_SUITE=cache runs the response-cache suite instead (50% repeated prompts; cache off,
# in-process and Redis).
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
BENCH_FAULTS=${BENCH_FAULTS:-0}
BENCH_SUITE=${BENCH_SUITE:-overhead}
BENCH_CACHE_BACKENDS=${BENCH_CACHE_BACKENDS:-off memory redis}
BENCH_CACHE_RATE=${BENCH_CACHE_RATE:-500}
BENCH_REDIS_URL=${BENCH_REDIS_URL:-}
# off: no keys (open mode); inprocess: a key + rate limits + a budget on every request;
# redis: the same with the limits and budget in a throwaway redis-server.
BENCH_ACCESS=${BENCH_ACCESS:-off}
BENCH_FAULT_RATE=${BENCH_FAULT_RATE:-0.1}
BENCH_FAULT_MOCK_ADDR=${BENCH_FAULT_MOCK_ADDR:-127.0.0.1:9002}
BENCH_FAULT_GATEHOUSE_ADDR=${BENCH_FAULT_GATEHOUSE_ADDR:-127.0.0.1:8081}
BENCH_FAULTS_RETRY=${BENCH_FAULTS_RETRY:-1}
# The retry configuration of the faults target (issue 4's resilience work).
BENCH_FAULTS_RESILIENCE=${BENCH_FAULTS_RESILIENCE:-max_attempts = 3}

OUT=bench/out
RAW=$OUT/raw
BIN_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/release
CLK_TCK=$(getconf CLK_TCK)
PIDS=()        # every process started, stopped on exit
STARTED_PID="" # the one start_mock / start_gatehouse just started
TARGETS=()     # NAME|URL|PID|MOCK_ADDR per measured target

log() { echo "bench: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
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

start_mock() { # start_mock NAME ADDR [MOCK ARGS...]: sets STARTED_PID
    local name=$1 addr=$2
    shift 2
    port_free "$addr" || die "$addr is already in use (set BENCH_MOCK_ADDR / BENCH_FAULT_MOCK_ADDR)"
    "$BIN_DIR/mock-upstream" --listen "$addr" --threads "$BENCH_MOCK_THREADS" "$@" >"$OUT/$name.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    wait_for_port "$addr" "$STARTED_PID" "$name" "$OUT/$name.log"
}

# write_gatehouse_config NAME LISTEN MOCK_ADDR [EXTRA_TOML]: writes $OUT/NAME.toml (SQLite at
# $OUT/NAME.db, removed first) and prints its path.
write_gatehouse_config() {
    local name=$1 listen=$2 mock=$3 extra=${4:-}
    cat >"$OUT/$name.toml" <<EOF
[server]
listen = "$listen"

[database]
url = "sqlite://$OUT/$name.db"

[providers.up]
kind = "openai"
base_url = "http://$mock/v1"
api_key_env = "BENCH_UPSTREAM_KEY"

[[models]]
alias = "bench-model"
provider = "up"
upstream_model = "bench-model"
input_usd_per_mtok = "1.00"
output_usd_per_mtok = "2.00"
EOF
    if [[ -n "$extra" ]]; then
        printf '\n%s\n' "$extra" >>"$OUT/$name.toml"
    fi
    rm -f "$OUT/$name.db" "$OUT/$name.db-wal" "$OUT/$name.db-shm"
    echo "$OUT/$name.toml"
}

gatehouse_env() { BENCH_UPSTREAM_KEY=${BENCH_UPSTREAM_KEY:-bench-upstream-key} "$@"; }

# Starts a throwaway redis-server on a free loopback port (stopped on exit): sets ACCESS_REDIS_URL.
start_access_redis() {
    command -v redis-server >/dev/null || die "Redis backends need redis-server (apt-get install redis-server)"
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >"$OUT/redis.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_for_port "127.0.0.1:$port" "$pid" redis-server "$OUT/redis.log"
    ACCESS_REDIS_URL="redis://127.0.0.1:$port"
}

# BENCH_ACCESS on: a key with limits far above the load (every request is checked, none
# refused) and a budget, created with the CLI in CONFIG's database before Gatehouse starts.
create_bench_key() { # create_bench_key CONFIG: sets BENCH_GATEHOUSE_KEY
    BENCH_GATEHOUSE_KEY=$(gatehouse_env "$BIN_DIR/gatehouse" keys create --config "$1" --name bench \
        --rpm 100000000 --tpm 100000000000 --daily-budget-usd 1000000 --monthly-budget-usd 10000000 \
        2>>"$OUT/gatehouse.log")
    [[ -n "$BENCH_GATEHOUSE_KEY" ]] || die "could not create the benchmark key; see $OUT/gatehouse.log"
    log "access on ($BENCH_ACCESS): key, rate limits and budget checked on every request"
}

start_gatehouse() { # start_gatehouse NAME LISTEN CONFIG: sets STARTED_PID
    local name=$1 listen=$2 config=$3
    port_free "$listen" || die "$listen is already in use (set BENCH_GATEHOUSE_ADDR / BENCH_FAULT_GATEHOUSE_ADDR)"
    # Not through gatehouse_env: a backgrounded function would make $! a subshell's pid.
    BENCH_UPSTREAM_KEY=${BENCH_UPSTREAM_KEY:-bench-upstream-key} \
        "$BIN_DIR/gatehouse" serve --config "$config" >"$OUT/$name.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    wait_for_port "$listen" "$STARTED_PID" "$name" "$OUT/$name.log"
}

# Chat requests the mock at ADDR has received so far, from its /mock/stats ("-" if unknown).
upstream_requests() { python3 bench/report.py upstream "http://$1/mock/stats"; }

# --- scenarios ------------------------------------------------------------------------------

write_bodies() {
    local messages='"messages":[{"role":"user","content":"Say hello to the benchmark."}]'
    echo "{\"model\":\"bench-model\",$messages,\"max_tokens\":32}" >"$OUT/body-nonstream.json"
    echo "{\"model\":\"bench-model\",$messages,\"max_tokens\":32,\"stream\":true,\"stream_options\":{\"include_usage\":true}}" \
        >"$OUT/body-stream.json"
}

# Sends a short burst and insists on clean 2xx answers before anything is measured (for the
# faults target, whose upstream fails on purpose, on at most half errors).
warm_up() { # warm_up NAME URL
    local mode
    for mode in $BENCH_MODES; do
        local fields requests errors allowed=0
        fields=$(load_run "$2" "$OUT/body-$mode.json" c"$BENCH_CONCURRENCY" "$RAW/warmup-$1-$mode.out" 2)
        read -r _ _ _ requests errors <<<"$fields"
        if [[ "$1" == faults ]]; then
            allowed=$((requests / 2))
        fi
        ((requests > 0 && errors <= allowed)) ||
            die "warm-up against $1 ($mode) got $errors errors in $requests requests; see $RAW/warmup-$1-$mode.out"
    done
}

measure() { # measure SCENARIO TARGET URL PID MOCK_ADDR BODY LOAD RUN
    local scenario=$1 target=$2 url=$3 pid=$4 mock=$5 body=$6 load=$7 run=$8
    local result=$RAW/${scenario//\//_}-$target-$run.out before after fields rps p50 p99 requests errors
    local upstream_before upstream_after
    upstream_before=$(upstream_requests "$mock")
    before=$(cpu_ticks "$pid")
    fields=$(load_run "$url" "$body" "$load" "$result")
    after=$(cpu_ticks "$pid")
    upstream_after=$(upstream_requests "$mock")
    read -r rps p50 p99 requests errors <<<"$fields"
    local cpu_us="-" upstream="-"
    if ((requests > 0)); then
        cpu_us=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
        if [[ "$upstream_before" != - && "$upstream_after" != - ]]; then
            upstream=$(awk -v u=$((upstream_after - upstream_before)) -v n="$requests" 'BEGIN { printf "%.3f", u / n }')
        fi
    fi
    local hwm
    hwm=$(peak_rss_kib "$pid")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$scenario" "$target" "$run" "$rps" "$p50" "$p99" "$requests" "$errors" "$cpu_us" "$hwm" "$upstream" >>"$OUT/runs.tsv"
    log "$(printf '%-16s %-9s run %s: %9s req/s  p50 %8s ms  p99 %8s ms  errors %s  cpu %s µs/req  upstream %s/req' \
        "$scenario" "$target" "$run" "$rps" "$p50" "$p99" "$errors" "$cpu_us" "$upstream")"
}

# BENCH_FAULTS=1: Gatehouse in front of a clean mock, and a second Gatehouse with retries on in
# front of a mock failing BENCH_FAULT_RATE of chat requests with 500. Fills TARGETS. Returns 1,
# after saying why, when this Gatehouse does not accept the retry configuration (yet).
start_fault_targets() {
    local resilience="" config check
    if [[ "$BENCH_FAULTS_RETRY" == 1 ]]; then
        resilience=$(printf '[resilience]\n%s' "$BENCH_FAULTS_RESILIENCE")
    fi
    config=$(write_gatehouse_config gatehouse-faults "$BENCH_FAULT_GATEHOUSE_ADDR" "$BENCH_FAULT_MOCK_ADDR" "$resilience")
    if ! check=$(gatehouse_env "$BIN_DIR/gatehouse" check-config --config "$config" 2>&1); then
        log "skipping the faults scenario: gatehouse check-config rejects the retry configuration"
        log "  config: $(tr '\n' ' ' <<<"$resilience")"
        log "  check-config: $(grep -m1 -i error <<<"$check" || tail -n1 <<<"$check")"
        log "  (retries come with issue 4's [resilience] section; BENCH_FAULTS_RETRY=0 measures the"
        log "  faulty upstream without it, BENCH_FAULTS_RESILIENCE='key = value' changes the keys)"
        return 1
    fi
    if [[ -n "$BENCH_GATEHOUSE_CONFIG" ]]; then
        log "BENCH_FAULTS=1 generates both configs: ignoring BENCH_GATEHOUSE_CONFIG"
    fi
    start_mock mock-upstream "$BENCH_MOCK_ADDR"
    start_mock mock-upstream-faults "$BENCH_FAULT_MOCK_ADDR" --error-rate "500=$BENCH_FAULT_RATE" --seed 1
    start_gatehouse gatehouse "$BENCH_GATEHOUSE_ADDR" \
        "$(write_gatehouse_config gatehouse "$BENCH_GATEHOUSE_ADDR" "$BENCH_MOCK_ADDR")"
    TARGETS=("clean|http://$BENCH_GATEHOUSE_ADDR/v1/chat/completions|$STARTED_PID|$BENCH_MOCK_ADDR")
    start_gatehouse gatehouse-faults "$BENCH_FAULT_GATEHOUSE_ADDR" "$config"
    TARGETS+=("faults|http://$BENCH_FAULT_GATEHOUSE_ADDR/v1/chat/completions|$STARTED_PID|$BENCH_FAULT_MOCK_ADDR")
}

# --- cache suite (BENCH_SUITE=cache) -------------------------------------------------------
# 50% repeated prompts through Gatehouse with the cache off, in-process and on Redis; hit rate,
# throughput and p50/p99 for hits and misses. See bench/README.md.

cache_config() { # cache_config BACKEND REDIS_URL: the [cache] section for BACKEND
    case "$1" in
    off) ;;
    memory) printf '[cache]\nenabled = true\nbackend = "memory"' ;;
    redis) printf '[cache]\nenabled = true\nbackend = "redis"\nredis_url = "%s"\nredis_key_prefix = "gatehouse-bench:%s"' \
        "$2" "$(date +%s%N)" ;;
    *) die "unknown cache backend $1 (off, memory, redis)" ;;
    esac
}

cache_main() {
    mkdir -p "$OUT" "$RAW"
    if [[ "$BENCH_SKIP_BUILD" != 1 ]]; then
        log "building release binaries"
        cargo build --release -p gatehouse-test-support --bin mock-upstream --bin cache-load
        cargo build --release -p gatehouse --bin gatehouse
    fi
    start_mock mock-upstream "$BENCH_MOCK_ADDR"
    local redis_url=$BENCH_REDIS_URL
    if [[ " $BENCH_CACHE_BACKENDS " == *" redis "* && -z "$redis_url" ]]; then
        start_access_redis
        redis_url=$ACCESS_REDIS_URL
    fi
    local url="http://$BENCH_GATEHOUSE_ADDR/v1/chat/completions"
    printf 'backend\tmode\tload\trun\tresult\n' >"$OUT/cache-runs.tsv"
    local backend mode load run stream rate config gatehouse_pid result
    for backend in $BENCH_CACHE_BACKENDS; do
        config=$(write_gatehouse_config gatehouse "$BENCH_GATEHOUSE_ADDR" "$BENCH_MOCK_ADDR" "$(cache_config "$backend" "$redis_url")")
        start_gatehouse gatehouse "$BENCH_GATEHOUSE_ADDR" "$config"
        gatehouse_pid=$STARTED_PID
        for mode in $BENCH_MODES; do
            stream=()
            [[ "$mode" == stream ]] && stream=(--stream)
            # Fill the pool of repeated questions before measuring.
            "$BIN_DIR/cache-load" --url "$url" --seconds 2 --concurrency "$BENCH_CONCURRENCY" "${stream[@]}" \
                --tag "warm-$backend-$mode" >/dev/null
            for load in "c$BENCH_CONCURRENCY" "q$BENCH_CACHE_RATE"; do
                rate=()
                [[ "$load" == q* ]] && rate=(--rate "${load#q}")
                for run in $(seq "$BENCH_RUNS"); do
                    result=$("$BIN_DIR/cache-load" --url "$url" --seconds "$BENCH_SECONDS" \
                        --concurrency "$BENCH_CONCURRENCY" "${rate[@]}" "${stream[@]}" --tag "$backend-$mode-$load-$run")
                    printf '%s\t%s\t%s\t%s\t%s\n' "$backend" "$mode" "$load" "$run" "$result" >>"$OUT/cache-runs.tsv"
                    log "$backend $mode $load run $run: $result"
                done
            done
        done
        kill "$gatehouse_pid" && wait "$gatehouse_pid" 2>/dev/null || true
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

    if [[ "$BENCH_FAULTS" == 1 && "$BENCH_ONLY_DIRECT" == 1 ]]; then
        die "BENCH_FAULTS=1 measures Gatehouse: unset BENCH_ONLY_DIRECT"
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
    local baseline=direct
    if [[ "$BENCH_FAULTS" == 1 ]]; then
        [[ -x "$BIN_DIR/gatehouse" ]] || die "$BIN_DIR/gatehouse not found"
        start_fault_targets || return 0
        baseline=clean
    else
        start_mock mock-upstream "$BENCH_MOCK_ADDR"
        TARGETS=("direct|http://$BENCH_MOCK_ADDR/v1/chat/completions|$STARTED_PID|$BENCH_MOCK_ADDR")
        if [[ "$BENCH_ONLY_DIRECT" == 1 ]]; then
            log "BENCH_ONLY_DIRECT=1: measuring the mock upstream alone"
        else
            [[ -x "$BIN_DIR/gatehouse" ]] || die "$BIN_DIR/gatehouse not found (or set BENCH_ONLY_DIRECT=1)"
            local config=$BENCH_GATEHOUSE_CONFIG
            if [[ -z "$config" ]]; then
                local extra=""
                if [[ "$BENCH_ACCESS" == redis ]]; then
                    start_access_redis
                    extra=$(printf '[redis]\nurl = "%s"' "$ACCESS_REDIS_URL")
                fi
                config=$(write_gatehouse_config gatehouse "$BENCH_GATEHOUSE_ADDR" "$BENCH_MOCK_ADDR" "$extra")
            fi
            if [[ "$BENCH_ACCESS" != off ]]; then
                create_bench_key "$config"
            fi
            start_gatehouse gatehouse "$BENCH_GATEHOUSE_ADDR" "$config"
            TARGETS+=("gatehouse|http://$BENCH_GATEHOUSE_ADDR/v1/chat/completions|$STARTED_PID|$BENCH_MOCK_ADDR")
        fi
    fi

    local entry name url pid mock
    for entry in "${TARGETS[@]}"; do
        IFS='|' read -r name url _ _ <<<"$entry"
        warm_up "$name" "$url"
    done

    printf 'scenario\ttarget\trun\trps\tp50_ms\tp99_ms\trequests\terrors\tcpu_us_per_req\tpeak_rss_kib\tupstream_per_req\n' >"$OUT/runs.tsv"
    local mode load run
    for mode in $BENCH_MODES; do
        for load in "${loads[@]}"; do
            for run in $(seq "$BENCH_RUNS"); do
                # Targets alternate within each run so slow drift on a shared machine hits both.
                for entry in "${TARGETS[@]}"; do
                    IFS='|' read -r name url pid mock <<<"$entry"
                    measure "$mode/$load" "$name" "$url" "$pid" "$mock" "$OUT/body-$mode.json" "$load" "$run"
                done
            done
        done
    done

    local retries="no [resilience] section (BENCH_FAULTS_RETRY=0)"
    if [[ "$BENCH_FAULTS_RETRY" == 1 ]]; then
        retries="retries on: [resilience] $BENCH_FAULTS_RESILIENCE"
    fi
    {
        if [[ "$BENCH_FAULTS" == 1 ]]; then
            echo "# Gatehouse under upstream faults"
            echo
            echo "- clean: Gatehouse in front of a clean mock; faults: Gatehouse in front of a mock answering" \
                "$BENCH_FAULT_RATE of chat requests with 500 (seed 1), $retries"
            echo "- ×clean: faults ÷ clean in the same scenario; upstream/req: chat requests the mock received per completed response"
        else
            echo "# Gatehouse overhead benchmark"
        fi
        echo
        echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); commit: $(git rev-parse --short HEAD 2>/dev/null || echo none)"
        echo "- machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
        echo "- load: $(loadgen_version); $BENCH_SECONDS s per run, median of $BENCH_RUNS runs;" \
            "$BENCH_CONCURRENCY connections; mock-upstream with $BENCH_MOCK_THREADS thread(s)"
        echo "- scenarios: c$BENCH_CONCURRENCY = closed loop; qN = fixed rate N req/s (latency-corrected);" \
            "stream = \"stream\": true with include_usage"
        if [[ "$BENCH_FAULTS" == 1 ]]; then
            echo "- CPU µs/req and peak RSS are each Gatehouse process's own (clean and faults run side by side)"
        else
            echo "- CPU µs/req and peak RSS are the target process's own: the mock for direct, Gatehouse for gatehouse"
            echo "- access: $BENCH_ACCESS (off = open mode; inprocess/redis = API key + rate limits + budget on every request)"
        fi
    } >"$OUT/meta.md"
    python3 bench/report.py table "$OUT/runs.tsv" "$OUT/meta.md" "$baseline" | tee "$OUT/results.md"
}

main "$@"
