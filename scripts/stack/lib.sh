# shellcheck shell=bash disable=SC2034 # the scripts that source this file use its variables
# Settings and helpers shared by the stack scripts. Sourced by them, not run.

STACK_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd -- "$STACK_DIR/../.." && pwd)
INFRA_DIR=$REPO_DIR/infra

# Every service keeps its data, logs and pid file under one folder. It is made absolute
# because the servers resolve relative paths from their own working directories.
CIE_DATA_DIR=${CIE_DATA_DIR:-$REPO_DIR/.data}
mkdir -p -- "$CIE_DATA_DIR"
CIE_DATA_DIR=$(cd -- "$CIE_DATA_DIR" && pwd)
# The Redis and PostgreSQL command lines split option values on spaces.
[[ $CIE_DATA_DIR != *[[:space:]]* ]] \
    || { echo "error: CIE_DATA_DIR must not contain spaces: '$CIE_DATA_DIR'" >&2; exit 1; }

# The Python code reads connection settings, not ports. Those not set are derived from the
# ports here, so that a stack on other ports (infra/README.md) is also the one that the demo,
# the workers and the API reach. `stack.sh env` prints the values that the ports give.
stack_quote() {
    python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"
}
stack_postgres_dsn() {
    local user password
    user=$(stack_quote "${POSTGRES_USER:-cie}")
    password=$(stack_quote "${POSTGRES_PASSWORD:-cie}")
    printf 'postgresql://%s:%s@127.0.0.1:%s/%s\n' "$user" "$password" "${POSTGRES_PORT:-5432}" "${POSTGRES_DB:-cie}"
}
: "${KAFKA_BOOTSTRAP_SERVERS:=127.0.0.1:${KAFKA_PORT:-9092}}"
: "${REDIS_URL:=redis://127.0.0.1:${REDIS_PORT:-6379}/0}"
: "${CLICKHOUSE_HOST:=127.0.0.1}"
[[ -n ${POSTGRES_DSN:-} ]] || POSTGRES_DSN=$(stack_postgres_dsn)
export CIE_DATA_DIR KAFKA_BOOTSTRAP_SERVERS REDIS_URL CLICKHOUSE_HOST POSTGRES_DSN

# Master key of the personal-data encryption: unless CIE_MASTER_KEY is set, the
# local stack uses (and first creates) $CIE_DATA_DIR/master.key, never in the repository.
if [[ -z ${CIE_MASTER_KEY:-} ]]; then
    CIE_MASTER_KEY=$(CIE_DATA_DIR=$CIE_DATA_DIR "$REPO_DIR/scripts/master-key.sh")
    export CIE_MASTER_KEY
fi

# Seconds to wait for a service to become ready, or to exit after a stop request.
CIE_STACK_TIMEOUT=${CIE_STACK_TIMEOUT:-120}

say() {
    local service=$1
    shift
    printf '[%s] %s\n' "$service" "$*"
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

have() {
    command -v "$1" >/dev/null 2>&1
}

# Install the named Debian packages. Keeps the system's own services from starting
# during the install (they would take the stack's ports) unless policy-rc.d already exists.
apt_install() {
    (( $# )) || return 0
    local sudo=()
    if (( EUID != 0 )); then
        have sudo || die "missing Debian packages: $*. Install them as root, or install sudo."
        sudo=(sudo)
    fi

    say stack "installing Debian packages: $*"
    local policy=/usr/sbin/policy-rc.d added_policy=
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        added_policy=1
    fi

    local status=0 logfile=$CIE_DATA_DIR/apt.log
    "${sudo[@]}" apt-get update -q > "$logfile" 2>&1 || status=$?
    if (( status == 0 )); then
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "$@" >> "$logfile" 2>&1 || status=$?
    fi
    [[ -z $added_policy ]] || "${sudo[@]}" rm -f "$policy"
    if (( status != 0 )); then
        tail -n 20 "$logfile" >&2
        die "apt-get failed (exit $status) while installing: $*; see $logfile"
    fi
}

# Succeed when a process accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Exit with an error naming the port and its variable when another process listens on PORT.
require_free_port() {
    local port=$1 variable=$2 holder=
    port_open "$port" || return 0
    if have ss; then
        holder=$(ss -Hltnp "sport = :$port" 2>/dev/null \
            | sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/ (\1, pid \2)/p' | head -n1 || true)
    fi
    die "port $port on 127.0.0.1 is already in use by another process$holder; stop it or set $variable to a free port"
}

# Succeed while PID is a running process. A zombie counts as exited.
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# Print the pid stored in PIDFILE when that process runs and its command line contains MARKER.
# The marker keeps a stale pid file from matching an unrelated process that reused the pid.
live_pid() {
    local pidfile=$1 marker=$2 pid
    [[ -s $pidfile ]] || return 1
    read -r pid < "$pidfile" || true
    [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
    { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$marker" || return 1
    echo "$pid"
}

# Print the pid of a server that daemonizes itself, once it has written PIDFILE.
# Fail with the end of LOGFILE when no process with MARKER in its command line appears within 5 s.
wait_for_pidfile() {
    local service=$1 pidfile=$2 marker=$3 logfile=$4 pid _
    for _ in {1..50}; do
        pid=$(live_pid "$pidfile" "$marker") && { echo "$pid"; return; }
        sleep 0.1
    done
    tail -n 20 "$logfile" >&2 2>/dev/null || true
    die "$service did not start; see $logfile"
}

# Usage: wait_ready SERVICE PID LOGFILE... -- CHECK...
# Run the CHECK command until it succeeds, printing a dot per attempt. Fail when process PID
# exits first or after CIE_STACK_TIMEOUT seconds, and show the end of each LOGFILE.
wait_ready() {
    local service=$1 pid=$2 logfiles=()
    shift 2
    while [[ $1 != -- ]]; do
        logfiles+=("$1")
        shift
    done
    shift

    local start=$SECONDS
    printf '[%s] waiting until ready: ' "$service"
    until "$@" >/dev/null 2>&1; do
        if ! alive "$pid"; then
            printf '\n'
            tail -n 20 "${logfiles[@]}" >&2 2>/dev/null || true
            die "$service (pid $pid) exited during startup; see ${logfiles[*]}"
        fi
        if (( SECONDS - start >= CIE_STACK_TIMEOUT )); then
            printf '\n'
            die "$service not ready after ${CIE_STACK_TIMEOUT}s; see ${logfiles[*]}, or set CIE_STACK_TIMEOUT to wait longer"
        fi
        printf '.'
        sleep 1
    done
    printf 'ok after %ss\n' "$(( SECONDS - start ))"
}

# Send SIGTERM to PID and wait until it exits.
stop_process() {
    local service=$1 pid=$2
    local start=$SECONDS
    printf '[%s] stopping pid %s: ' "$service" "$pid"
    kill -TERM "$pid" 2>/dev/null || true
    while alive "$pid"; do
        if (( SECONDS - start >= CIE_STACK_TIMEOUT )); then
            printf '\n'
            die "$service (pid $pid) still runs ${CIE_STACK_TIMEOUT}s after SIGTERM; check its log, then kill -KILL $pid"
        fi
        printf '.'
        sleep 0.5
    done
    printf 'stopped\n'
}

# Print one status line: service, state, pid and address.
print_status() {
    local service=$1 pid=$2 address=$3
    if [[ -n $pid ]]; then
        printf '%-11s %-8s pid %-8s %s\n' "$service" running "$pid" "$address"
    else
        printf '%-11s %-8s %-12s %s\n' "$service" stopped '-' "$address"
    fi
}

# Run the subcommand named by the first argument as the function cmd_NAME of the calling script.
dispatch() {
    local name=${1:-} handler commands
    handler=cmd_${name//-/_}
    if [[ -z $name ]] || ! declare -F "$handler" >/dev/null; then
        commands=$(declare -F | sed -n 's/^declare -f cmd_//p' | tr '_\n' '-|')
        printf 'usage: %s {%s}\n' "$(basename -- "$0")" "${commands%|}" >&2
        exit 2
    fi
    shift
    "$handler" "$@"
}
