#!/usr/bin/env bash
# Redis server of the local stack (Debian's redis-server), with settings from infra/redis/redis.conf.
# Usage: redis.sh {install|up|down|status|missing-packages}
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "$0")/lib.sh"

REDIS_PORT=${REDIS_PORT:-6379}

home=$CIE_DATA_DIR/redis
pidfile=$home/redis.pid
logfile=$home/redis.log
# Redis sets its process title to "redis-server ADDRESS", so the marker is only the program name.
marker=redis-server

cmd_missing_packages() {
    have redis-server || echo redis-server
    have redis-cli || echo redis-tools
}

cmd_install() {
    # shellcheck disable=SC2046 # one package name per word
    apt_install $(cmd_missing_packages)
}

redis_ready() {
    [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping) == PONG ]]
}

cmd_up() {
    cmd_install
    local pid
    if pid=$(live_pid "$pidfile" "$marker"); then
        say redis "already running (pid $pid) on 127.0.0.1:$REDIS_PORT"
        return
    fi
    require_free_port "$REDIS_PORT" REDIS_PORT
    mkdir -p "$home/data"
    rm -f "$pidfile"

    say redis "starting $(redis-server --version | cut -d' ' -f1-3) on 127.0.0.1:$REDIS_PORT, log $logfile"
    redis-server "$INFRA_DIR/redis/redis.conf" --port "$REDIS_PORT" --bind 127.0.0.1 \
        --dir "$home/data" --pidfile "$pidfile" --logfile "$logfile"

    # The daemon writes its pid file right after it forks, before it loads any data.
    pid=$(wait_for_pidfile redis "$pidfile" "$marker" "$logfile")
    wait_ready redis "$pid" "$logfile" -- redis_ready
}

cmd_down() {
    local pid
    if pid=$(live_pid "$pidfile" "$marker"); then
        stop_process redis "$pid"
    else
        say redis "not running"
    fi
}

cmd_status() {
    print_status redis "$(live_pid "$pidfile" "$marker" || true)" "127.0.0.1:$REDIS_PORT"
}

dispatch "$@"
