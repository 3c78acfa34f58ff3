#!/usr/bin/env bash
# Real SDK clients against a running Gatehouse: the official `openai` and `anthropic` Python
# packages (pinned in requirements.txt, installed into a venv from PyPI) call a `gatehouse`
# debug binary serving the built-in mock provider. Needs python3 with venv and pip, and cargo.
#
#   bash tests/sdk/run.sh [pytest args…]
#
# The venv lives in the cargo target directory (CARGO_TARGET_DIR or ./target) and is reused
# while requirements.txt is unchanged; the server runs in a temporary directory and is stopped
# on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
VENV="$TARGET_DIR/sdk-venv"
REQS="$ROOT/tests/sdk/requirements.txt"

cargo build --quiet -p gatehouse --bin gatehouse
BIN="$TARGET_DIR/debug/gatehouse"

# A venv when python3 can make one; otherwise (no ensurepip, e.g. Debian without python3-venv)
# the packages go to a directory of their own on PYTHONPATH, never into the system's Python.
PYTHON="$VENV/bin/python"
if ! cmp -s "$REQS" "$VENV/requirements.txt" 2>/dev/null; then
    rm -rf "$VENV"
    if python3 -m venv "$VENV" 2>/dev/null; then
        "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQS"
    else
        echo "python3 -m venv is unavailable; installing into $VENV/site instead"
        rm -rf "$VENV"
        PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check \
            --target "$VENV/site" -r "$REQS"
    fi
    cp "$REQS" "$VENV/requirements.txt"
fi
if [[ ! -x "$PYTHON" ]]; then
    PYTHON=python3
    export PYTHONPATH="$VENV/site${PYTHONPATH:+:$PYTHONPATH}"
fi

WORK="$(mktemp -d)"
LOG="$WORK/gatehouse.log"
ADMIN_KEY="sdk-admin-$RANDOM$RANDOM"
PID=""
cleanup() {
    local status=$?
    if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    if [[ $status -ne 0 && -f "$LOG" ]]; then
        echo "--- gatehouse log (last 40 lines)" >&2
        tail -n 40 "$LOG" >&2
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT

# A clean environment: no real provider keys or external database reach the server.
(
    cd "$WORK"
    exec env -u OPENAI_API_KEY -u ANTHROPIC_API_KEY -u GEMINI_API_KEY -u GOOGLE_API_KEY \
        -u DATABASE_URL -u LLM_PROVIDER -u LLM_DEFAULT_MODEL \
        GATEHOUSE_CONFIG="$ROOT/tests/sdk/gatehouse.toml" GATEHOUSE_ADMIN_KEY="$ADMIN_KEY" \
        RUST_LOG=info "$BIN" serve >"$LOG" 2>&1
) &
PID=$!

ADDR=""
for _ in $(seq 1 300); do
    ADDR="$(grep -o '"addr":"[^"]*"' "$LOG" 2>/dev/null | head -n 1 | cut -d'"' -f4 || true)"
    [[ -n "$ADDR" ]] && break
    if ! kill -0 "$PID" 2>/dev/null; then
        echo "gatehouse exited before listening" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ -z "$ADDR" ]]; then
    echo "gatehouse did not start listening within 30s" >&2
    exit 1
fi
echo "gatehouse listening on $ADDR"

GATEHOUSE_URL="http://$ADDR" GATEHOUSE_ADMIN_KEY="$ADMIN_KEY" \
    "$PYTHON" -m pytest -q -rs -p no:cacheprovider "$ROOT/tests/sdk/test_sdks.py" "$@"
