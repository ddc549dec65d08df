#!/usr/bin/env bash
# PostgreSQL cluster of the local stack, run with Debian's binaries under
# /usr/lib/postgresql/VERSION/bin (the newest installed version).
# Usage: postgres.sh {install|up|down|status|missing-packages}
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "$0")/lib.sh"

POSTGRES_PORT=${POSTGRES_PORT:-5432}
POSTGRES_USER=${POSTGRES_USER:-cie}
POSTGRES_PASSWORD=${POSTGRES_PASSWORD:-cie}
POSTGRES_DB=${POSTGRES_DB:-cie}

home=$CIE_DATA_DIR/postgres
pgdata=$home/data
socket_dir=$home/run
logfile=$home/postgres.log

# Print the bin folder of the newest PostgreSQL version that Debian's packages installed.
find_bindir() {
    local initdb_paths=(/usr/lib/postgresql/*/bin/initdb)
    [[ -x ${initdb_paths[0]} ]] || return 1
    printf '%s\n' "${initdb_paths[@]%/initdb}" | sort -V | tail -n1
}

# Run a command as the cluster's owner. PostgreSQL exits when started as root, so root runs it
# as the postgres system user, from / because that user may not reach the caller's folder.
as_owner() {
    if (( EUID == 0 )); then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

cmd_missing_packages() {
    find_bindir > /dev/null || echo postgresql
    have psql || echo postgresql-client
}

cmd_install() {
    # shellcheck disable=SC2046 # one package name per word
    apt_install $(cmd_missing_packages)
}

# Create the cluster's folder, owned by postgres when run as root, and check that user can reach it.
prepare_home() {
    mkdir -p "$home"
    (( EUID == 0 )) || return 0
    id postgres > /dev/null 2>&1 \
        || die "system user postgres not found; install Debian's postgresql package (make install-system)"
    [[ $(stat -c %U "$home") == postgres ]] || chown -R postgres:postgres "$home"
    runuser -u postgres -- test -w "$home" \
        || die "system user postgres cannot reach $home because a parent folder denies it access." \
               "Set CIE_DATA_DIR to a folder that user postgres can traverse (such as /var/tmp/cie-data)," \
               "or allow others to traverse the parent folders (chmod o+x)."
}

init_cluster() {
    [[ -f $pgdata/PG_VERSION ]] && return
    say postgres "creating a cluster in $pgdata"
    as_owner "$bindir/initdb" -D "$pgdata" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 > "$home/initdb.log"
    echo "include 'cie.conf'" >> "$pgdata/postgresql.conf"
}

# Create the application role and database when missing, and set the role's password from
# POSTGRES_PASSWORD. The password goes through the environment, so process listings do not show it.
ensure_database() {
    CIE_ROLE_PASSWORD=$POSTGRES_PASSWORD as_owner "$bindir/psql" -h "$socket_dir" -p "$POSTGRES_PORT" \
        -U postgres -d postgres -X -q -v ON_ERROR_STOP=1 \
        -v user="$POSTGRES_USER" -v db="$POSTGRES_DB" <<'SQL'
\getenv password CIE_ROLE_PASSWORD
SELECT format('CREATE ROLE %I LOGIN', :'user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'user', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
}

cmd_up() {
    cmd_install
    bindir=$(find_bindir)
    prepare_home
    local pid
    if pid=$(live_pid "$pgdata/postmaster.pid" "$pgdata"); then
        say postgres "already running (pid $pid) on 127.0.0.1:$POSTGRES_PORT"
    else
        require_free_port "$POSTGRES_PORT" POSTGRES_PORT
        init_cluster
        as_owner mkdir -p "$socket_dir"
        as_owner tee "$pgdata/cie.conf" < "$INFRA_DIR/postgres/postgresql.conf" > /dev/null
        say postgres "starting $("$bindir/postgres" --version) on 127.0.0.1:$POSTGRES_PORT, log $logfile"
        as_owner "$bindir/pg_ctl" -D "$pgdata" -l "$logfile" -w -t "$CIE_STACK_TIMEOUT" \
            -o "-p $POSTGRES_PORT -k '$socket_dir' -c listen_addresses=127.0.0.1" start \
            || die "PostgreSQL did not start; see $logfile"
    fi
    ensure_database
}

cmd_down() {
    local pid
    if pid=$(live_pid "$pgdata/postmaster.pid" "$pgdata"); then
        say postgres "stopping pid $pid"
        as_owner "$(find_bindir)/pg_ctl" -D "$pgdata" -m fast -w -t "$CIE_STACK_TIMEOUT" stop
    else
        say postgres "not running"
    fi
}

cmd_status() {
    print_status postgres "$(live_pid "$pgdata/postmaster.pid" "$pgdata" || true)" \
        "127.0.0.1:$POSTGRES_PORT database $POSTGRES_DB, user $POSTGRES_USER"
}

dispatch "$@"
