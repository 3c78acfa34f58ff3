#!/usr/bin/env bash
# The cost of access control: bench/run.sh three times, with access off (open mode: no key),
# in-process (an API key, rate limits and a budget checked and settled on every request) and
# Redis (the same state in a throwaway redis-server). Each run's table is kept as
# bench/out/access-<mode>.md; all three are printed and joined in bench/out/access-results.md.
# Takes the same BENCH_* variables as run.sh (BENCH_ACCESS is set here).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
mkdir -p bench/out
: >bench/out/access-results.md
skip=${BENCH_SKIP_BUILD:-0}
for mode in off inprocess redis; do
    echo "bench/access.sh: access=$mode" >&2
    BENCH_ACCESS=$mode BENCH_SKIP_BUILD=$skip bash bench/run.sh >/dev/null
    skip=1
    cp bench/out/results.md "bench/out/access-$mode.md"
    {
        echo "## access: $mode"
        echo
        cat "bench/out/access-$mode.md"
        echo
    } >>bench/out/access-results.md
done
cat bench/out/access-results.md
