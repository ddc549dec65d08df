#!/usr/bin/env bash
# Run the platform's own processes in the background: the projection worker, the
# sentiment scorer and the recommender (workers in consumer groups of their own) and the API.
# Usage: app.sh {start|stop|status} [worker|scorer|recommender|api]...   (default: all four)
# Pid files live in $CIE_DATA_DIR/run, logs in $CIE_DATA_DIR/logs.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=stack/lib.sh
source "$(dirname -- "$0")/stack/lib.sh"

VENV=${CIE_VENV:-$REPO_DIR/.venv}
RUN_DIR=$CIE_DATA_DIR/run
LOG_DIR=$CIE_DATA_DIR/logs
API_HOST=${CIE_API_HOST:-127.0.0.1}
API_PORT=${CIE_API_PORT:-8000}
mkdir -p "$RUN_DIR" "$LOG_DIR"

pid_of() {
    local pidfile=$RUN_DIR/$1.pid pid
    [[ -f $pidfile ]] || return 1
    pid=$(<"$pidfile")
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

# start_role NAME ROLE: a `cie worker --role ROLE` process with pid file and log named NAME.
start_role() {
    local name=$1 role=$2
    if pid_of "$name" >/dev/null; then say "$name" "already running (pid $(pid_of "$name"))"; return; fi
    # The braces put only the process itself in the background, so $! is its pid.
    (cd "$REPO_DIR" && { nohup "$VENV/bin/cie" worker --role "$role" >>"$LOG_DIR/$name.log" 2>&1 & echo $! >"$RUN_DIR/$name.pid"; })
    say "$name" "started (pid $(<"$RUN_DIR/$name.pid")), log $LOG_DIR/$name.log"
}

start_worker() { start_role worker projections; }
start_scorer() { start_role scorer scorer; }
start_recommender() { start_role recommender recommender; }

start_api() {
    if pid_of api >/dev/null; then say api "already running (pid $(pid_of api))"; return; fi
    require_free_port "$API_PORT" CIE_API_PORT
    (cd "$REPO_DIR" && { nohup "$VENV/bin/uvicorn" api.main:app --host "$API_HOST" --port "$API_PORT" \
        >>"$LOG_DIR/api.log" 2>&1 & echo $! >"$RUN_DIR/api.pid"; })
    local waited=0
    until curl -fsS "http://$API_HOST:$API_PORT/readyz" >/dev/null 2>&1; do
        pid_of api >/dev/null || die "the API exited during start; see $LOG_DIR/api.log"
        (( waited++ < CIE_STACK_TIMEOUT )) || die "the API was not ready after ${CIE_STACK_TIMEOUT}s; see $LOG_DIR/api.log"
        sleep 1
    done
    say api "ready on http://$API_HOST:$API_PORT (pid $(<"$RUN_DIR/api.pid")), log $LOG_DIR/api.log"
}

stop_one() {
    local name=$1 pid waited=0
    if ! pid=$(pid_of "$name"); then rm -f "$RUN_DIR/$name.pid"; return; fi
    kill -TERM "$pid"
    while kill -0 "$pid" 2>/dev/null; do
        if (( waited++ >= 30 )); then
            say "$name" "did not stop within 30s of SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        sleep 1
    done
    rm -f "$RUN_DIR/$name.pid"
    say "$name" "stopped"
}

# The address of a process: the API's URL, or the consumer group of a worker (see consumer_group_for in cie/settings.py).
address_of() {
    local group=${CIE_CONSUMER_GROUP:-cie-streams}
    case $1 in
        api) echo "http://$API_HOST:$API_PORT" ;;
        worker) echo "consumer group $group" ;;
        scorer) echo "consumer group $group-scorer" ;;
        recommender) echo "consumer group $group-recommender" ;;
    esac
}

status_one() {
    print_status "$1" "$(pid_of "$1" || true)" "$(address_of "$1")"
}

command=${1:-}
shift || true
names=("$@")
(( ${#names[@]} )) || names=(worker scorer recommender api)
case $command in
    start) for name in "${names[@]}"; do "start_$name"; done ;;
    stop) for name in "${names[@]}"; do stop_one "$name"; done ;;
    status) for name in "${names[@]}"; do status_one "$name"; done ;;
    *) die "usage: $0 {start|stop|status} [worker|scorer|recommender|api]..." ;;
esac
