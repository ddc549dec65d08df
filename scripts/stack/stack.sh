#!/usr/bin/env bash
# Local service stack on 127.0.0.1: Kafka, PostgreSQL, Redis and ClickHouse. See infra/README.md.
# Usage: stack.sh {install|up|down|status|env} [SERVICE...]
#   SERVICE is kafka, postgres, redis or clickhouse. Without SERVICE the command applies to all four.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "$0")/lib.sh"

all_services=(postgres redis clickhouse kafka)
services=()

select_services() {
    local name
    for name in "$@"; do
        [[ " ${all_services[*]} " == *" $name "* ]] \
            || die "unknown service '$name'; expected one of: ${all_services[*]}"
    done
    if (( $# )); then services=("$@"); else services=("${all_services[@]}"); fi
}

# Install every missing Debian package in one apt-get run, then each service's own files.
cmd_install() {
    select_services "$@"
    local service missing=()
    for service in "${services[@]}"; do
        mapfile -t -O "${#missing[@]}" missing < <("$STACK_DIR/$service.sh" missing-packages)
    done
    apt_install "${missing[@]}"
    for service in "${services[@]}"; do
        "$STACK_DIR/$service.sh" install
    done
}

cmd_up() {
    cmd_install "$@"
    local service
    for service in "${services[@]}"; do
        "$STACK_DIR/$service.sh" up
    done
    printf '\nConnection settings, with the password hidden:\n'
    cmd_env | sed -e 's/^export /  /' -e 's|^\(  POSTGRES_DSN=[^:]*://[^:]*:\)[^@]*@|\1***@|'
    # shellcheck disable=SC2016 # the $( ) is for the reader to run
    printf 'Export them into a shell with: eval "$(%s env)"\n' "${0#"$REPO_DIR"/}"
}

cmd_down() {
    select_services "$@"
    local i
    for (( i = ${#services[@]} - 1; i >= 0; i-- )); do
        "$STACK_DIR/${services[i]}.sh" down
    done
}

cmd_status() {
    select_services "$@"
    local service
    for service in "${services[@]}"; do
        "$STACK_DIR/$service.sh" status
    done
}

# Print the connection settings that the Python code reads, as shell export lines.
cmd_env() {
    printf 'export %s=%q\n' \
        CIE_DATA_DIR "$CIE_DATA_DIR" \
        KAFKA_BOOTSTRAP_SERVERS "127.0.0.1:${KAFKA_PORT:-9092}" \
        POSTGRES_DSN "$(stack_postgres_dsn)" \
        REDIS_URL "redis://127.0.0.1:${REDIS_PORT:-6379}/0" \
        CLICKHOUSE_HOST 127.0.0.1 \
        CLICKHOUSE_PORT "${CLICKHOUSE_PORT:-9000}" \
        CLICKHOUSE_HTTP_PORT "${CLICKHOUSE_HTTP_PORT:-8123}"
}

dispatch "$@"
