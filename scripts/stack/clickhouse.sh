#!/usr/bin/env bash
# ClickHouse server of the local stack (Debian's clickhouse-server 18.16), with settings from
# infra/clickhouse/config.xml and users.xml.
# Usage: clickhouse.sh {install|up|down|status|missing-packages}
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "$0")/lib.sh"

CLICKHOUSE_PORT=${CLICKHOUSE_PORT:-9000}
CLICKHOUSE_HTTP_PORT=${CLICKHOUSE_HTTP_PORT:-8123}

home=$CIE_DATA_DIR/clickhouse
config=$home/etc/config.xml
pidfile=$home/clickhouse.pid
logs=$home/logs

cmd_missing_packages() {
    have clickhouse-server || echo clickhouse-server
    have clickhouse-client || echo clickhouse-client
    have curl || echo curl
}

cmd_install() {
    # shellcheck disable=SC2046 # one package name per word
    apt_install $(cmd_missing_packages)
}

# Write config.xml with this run's ports and paths, and users.xml beside it. The server
# also writes preprocessed copies of both into the data folder.
write_config() {
    mkdir -p "$home/etc" "$home/data" "$logs"
    sed -e "s|@TCP_PORT@|$CLICKHOUSE_PORT|g" \
        -e "s|@HTTP_PORT@|$CLICKHOUSE_HTTP_PORT|g" \
        -e "s|@DATA_DIR@|$home/data|g" \
        -e "s|@LOG_DIR@|$logs|g" \
        "$INFRA_DIR/clickhouse/config.xml" > "$config"
    cp "$INFRA_DIR/clickhouse/users.xml" "$home/etc/users.xml"
}

clickhouse_ready() {
    [[ $(curl -fsS --max-time 2 "http://127.0.0.1:$CLICKHOUSE_HTTP_PORT/?query=SELECT%201") == 1 ]]
}

cmd_up() {
    cmd_install
    local pid
    if pid=$(live_pid "$pidfile" "$config"); then
        say clickhouse "already running (pid $pid) on 127.0.0.1:$CLICKHOUSE_PORT"
        return
    fi
    require_free_port "$CLICKHOUSE_PORT" CLICKHOUSE_PORT
    require_free_port "$CLICKHOUSE_HTTP_PORT" CLICKHOUSE_HTTP_PORT
    write_config
    rm -f "$pidfile"

    say clickhouse "starting on 127.0.0.1:$CLICKHOUSE_PORT (HTTP $CLICKHOUSE_HTTP_PORT), log $logs/clickhouse-server.log"
    # --daemon forks and returns at once, and the daemon writes the pid file when it starts.
    (cd "$home" && clickhouse-server --config-file="$config" --pid-file="$pidfile" --daemon)
    pid=$(wait_for_pidfile clickhouse "$pidfile" "$config" "$logs/clickhouse-server.err.log")
    wait_ready clickhouse "$pid" "$logs/clickhouse-server.err.log" -- clickhouse_ready
}

cmd_down() {
    local pid
    if pid=$(live_pid "$pidfile" "$config"); then
        stop_process clickhouse "$pid"
    else
        say clickhouse "not running"
    fi
}

cmd_status() {
    print_status clickhouse "$(live_pid "$pidfile" "$config" || true)" \
        "127.0.0.1:$CLICKHOUSE_PORT (HTTP $CLICKHOUSE_HTTP_PORT)"
}

dispatch "$@"
