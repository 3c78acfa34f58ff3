#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 cluster for the tests that need one, from Debian's server
# binaries, in a fresh temp dir on a free loopback port, with trust auth on loopback only.
#
#   eval "$(.ci/start-postgres.sh)"    start; stdout carries only `export …` lines:
#                                      GATEHOUSE_TEST_POSTGRES_URL and GATEHOUSE_TEST_POSTGRES_PGDATA
#   .ci/start-postgres.sh stop         stop the cluster at $GATEHOUSE_TEST_POSTGRES_PGDATA, delete it
#
# Run as root (as CI does), the server runs as the `postgres` user, or a created
# `gatehouse-pg` system user if there is none: initdb and pg_ctl refuse to run as root.
# Durability is off (fsync, full-page writes): the data lives only as long as one test run.
set -Eeuo pipefail

PG_BIN=${GATEHOUSE_PG_BIN:-/usr/lib/postgresql/15/bin}
DB_NAME=gatehouse_test
ROOT_PREFIX=gatehouse-pg.

log() { echo "start-postgres: $*" >&2; }

# Runs a PostgreSQL binary as `$1`, or directly when we are not root.
as_user() {
    local user=$1
    shift
    if [[ $(id -u) == 0 ]]; then
        # From a directory the server user can read: initdb and pg_ctl chdir back to it.
        (cd / && runuser -u "$user" -- "$@")
    else
        "$@"
    fi
}

server_user() {
    if [[ $(id -u) != 0 ]]; then
        id -un
    elif id postgres >/dev/null 2>&1; then
        echo postgres
    else
        if ! id gatehouse-pg >/dev/null 2>&1; then
            useradd --system --no-create-home --shell /usr/sbin/nologin gatehouse-pg
        fi
        echo gatehouse-pg
    fi
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

stop_cluster() {
    local data=${GATEHOUSE_TEST_POSTGRES_PGDATA:?GATEHOUSE_TEST_POSTGRES_PGDATA is not set}
    local root
    root=$(dirname "$data")
    if [[ -f "$data/postmaster.pid" ]]; then
        as_user "$(stat -c %U "$data")" "$PG_BIN/pg_ctl" -D "$data" -m fast -w stop >&2
    fi
    # Only ever delete a directory this script created.
    if [[ $(basename "$root") == "$ROOT_PREFIX"* ]]; then
        rm -rf -- "$root"
    fi
    log "stopped and removed $root"
}

start_cluster() {
    if [[ ! -x "$PG_BIN/initdb" ]]; then
        log "$PG_BIN/initdb not found; install Debian's postgresql (15) package"
        exit 1
    fi
    local user root data port=""
    user=$(server_user)
    root=$(mktemp -d "/tmp/${ROOT_PREFIX}XXXXXX")
    data=$root/data
    chmod 755 "$root"
    [[ $(id -u) == 0 ]] && chown "$user" "$root"
    # From here on a failure removes what was made, running server included.
    trap 'GATEHOUSE_TEST_POSTGRES_PGDATA=$data stop_cluster || true' ERR

    as_user "$user" "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C --no-sync >"$root/initdb.log" 2>&1 ||
        { cat "$root/initdb.log" >&2; false; }
    # Loopback only, no passwords: the server listens on 127.0.0.1 and its socket directory.
    cat >"$data/pg_hba.conf" <<'HBA'
local all all              trust
host  all all 127.0.0.1/32 trust
HBA

    local attempt candidate
    for attempt in 1 2 3 4 5; do
        candidate=$((20000 + RANDOM % 40000))
        port_in_use "$candidate" && continue
        if as_user "$user" "$PG_BIN/pg_ctl" -D "$data" -l "$root/postgres.log" -w -t 60 \
            -o "-p $candidate -c listen_addresses=127.0.0.1 -c unix_socket_directories=$root -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200" \
            start </dev/null >&2; then
            port=$candidate
            break
        fi
        log "attempt $attempt on port $candidate failed"
    done
    if [[ -z "$port" ]]; then
        tail -n 20 "$root/postgres.log" >&2 || true
        false
    fi

    as_user "$user" "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres "$DB_NAME" >&2
    trap - ERR
    log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, data in $data"
    echo "export GATEHOUSE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$port/$DB_NAME"
    echo "export GATEHOUSE_TEST_POSTGRES_PGDATA=$data"
}

case "${1:-start}" in
start) start_cluster ;;
stop) stop_cluster ;;
*)
    echo "usage: $0 [start|stop]" >&2
    exit 2
    ;;
esac
