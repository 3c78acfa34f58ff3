#!/usr/bin/env bash
# Browser tests of the web chat and admin console: installs the test dependencies (npm ci),
# builds the debug binary if needed, starts Gatehouse on a free port with a temporary config
# and data directory (the built-in mock, plus a slow mock for stopping replies mid-stream and
# a text-only model that cannot see images), runs every *.test.mjs with Debian's chromium, and
# stops the server. Screenshots go to target/ui-screenshots/ (or $SCREENSHOT_DIR).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"

export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM" ]]; then
    echo "chromium not found at $CHROMIUM (apt-get install -y chromium chromium-driver)" >&2
    exit 1
fi

cd "$here"
npm ci --no-audit --no-fund --loglevel=error

(cd "$root" && cargo build -p gatehouse --bin gatehouse)
bin="$target/debug/gatehouse"

work="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-ui.XXXXXX")"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/gatehouse.toml" <<TOML
[server]
listen = "127.0.0.1:0"
shutdown_grace_secs = 2

[database]
url = "sqlite://$work/data/gatehouse.db"

[ledger]
flush_interval_ms = 20

[log]
format = "json"

[routing]
default_model = "mock-1"

# Every test browser comes from one address: room for all of them.
[limits]
web_chat_rpm = 600
anonymous_rpm = 6000

[providers.slow]
kind = "mock"
chunk_delay_ms = 150

[[models]]
alias = "slow-1"
provider = "slow"
input_usd_per_mtok = "1.00"
output_usd_per_mtok = "2.00"

[[models]]
alias = "text-only"
provider = "mock"
capabilities = ["streaming"]
input_usd_per_mtok = "1.00"
output_usd_per_mtok = "2.00"
TOML

export GATEHOUSE_ADMIN_KEY="ui-test-admin-key-$(date +%s)-$$"
export SCREENSHOT_DIR="${SCREENSHOT_DIR:-$target/ui-screenshots}"
mkdir -p "$SCREENSHOT_DIR"
rm -f "$SCREENSHOT_DIR"/*.png

env -u OPENAI_API_KEY -u DATABASE_URL -u GATEHOUSE_CONFIG RUST_LOG=info \
    "$bin" serve --config "$work/gatehouse.toml" >"$work/server.log" 2>&1 &
server_pid=$!

addr=""
for _ in $(seq 1 300); do
    addr="$(grep -o '"message":"gatehouse listening"[^}]*' "$work/server.log" 2>/dev/null \
        | grep -o '"addr":"[^"]*"' | head -1 | cut -d'"' -f4 || true)"
    [[ -n "$addr" ]] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "gatehouse exited before listening:" >&2
        cat "$work/server.log" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ -z "$addr" ]]; then
    echo "gatehouse did not start listening; log:" >&2
    cat "$work/server.log" >&2
    exit 1
fi
export GATEHOUSE_URL="http://$addr"
echo "gatehouse on $GATEHOUSE_URL (log: $work/server.log), screenshots in $SCREENSHOT_DIR"

# One file at a time (they share the server); Node 18 and 20 both understand this.
status=0
for file in "$here"/*.test.mjs; do
    node --test --test-reporter=spec "$file" || status=1
done
if [[ $status -ne 0 ]]; then
    echo "--- last server log lines ---" >&2
    tail -n 40 "$work/server.log" >&2
fi
exit $status
