#!/usr/bin/env bash
# Apache Kafka as one KRaft node (broker and controller), run from the jars that Maven
# resolves from infra/kafka/pom.xml.
# Usage: kafka.sh {install|up|down|status|missing-packages|run-class CLASS [ARGS...]}
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname -- "$0")/lib.sh"

KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms1g -Xmx1g}
# Python that checks readiness with confluent-kafka. Without that package,
# a Java tool from the jars checks instead.
CIE_PYTHON=${CIE_PYTHON:-$REPO_DIR/.venv/bin/python}

home=$CIE_DATA_DIR/kafka
libs=$home/libs
config=$home/server.properties
pidfile=$home/kafka.pid
logs=$home/logs
pom=$INFRA_DIR/kafka/pom.xml
bootstrap=127.0.0.1:$KAFKA_PORT

java_bin() {
    if [[ -n ${JAVA_HOME:-} ]]; then echo "$JAVA_HOME/bin/java"; else echo java; fi
}

cmd_run_class() {
    "$(java_bin)" -cp "$libs/*" "$@"
}

cmd_missing_packages() {
    have java || echo openjdk-17-jre-headless
    have mvn || echo maven
}

# Copy the jars once per version of pom.xml. A stamp with the pom's checksum skips Maven on later runs.
cmd_install() {
    # shellcheck disable=SC2046 # one package name per word
    apt_install $(cmd_missing_packages)
    local stamp=$libs/.pom.sha256 checksum
    checksum=$(sha256sum < "$pom")
    if [[ -f $stamp && $(< "$stamp") == "$checksum" ]]; then
        return
    fi
    say kafka "resolving jars from $pom into $libs"
    rm -rf -- "$libs"
    mkdir -p "$home"
    if ! mvn -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
            -DoutputDirectory="$libs" > "$home/maven.log" 2>&1; then
        tail -n 30 "$home/maven.log" >&2
        die "Maven could not resolve the Kafka jars; see $home/maven.log"
    fi
    echo "$checksum" > "$stamp"
}

write_config() {
    sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
        -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
        -e "s|@LOG_DIRS@|$home/data|g" \
        "$INFRA_DIR/kafka/server.properties" > "$config"
}

# Format the log directory once, as a single-node dynamic controller quorum.
format_storage() {
    [[ -f $home/data/meta.properties ]] && return
    local cluster_id
    cluster_id=$(cmd_run_class kafka.tools.StorageTool random-uuid)
    say kafka "formatting $home/data with cluster id $cluster_id"
    cmd_run_class kafka.tools.StorageTool format --standalone \
        --cluster-id "$cluster_id" --config "$config" > "$logs/format.log"
}

# Succeed when a metadata request to the broker succeeds.
broker_ready() {
    port_open "$KAFKA_PORT" || return 1
    if [[ $ready_check == python ]]; then
        "$CIE_PYTHON" -c 'import sys
from confluent_kafka.admin import AdminClient
AdminClient({"bootstrap.servers": sys.argv[1]}).list_topics(timeout=5)' "$bootstrap"
    else
        cmd_run_class org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "$bootstrap"
    fi
}

cmd_up() {
    cmd_install
    local pid
    if pid=$(live_pid "$pidfile" "$config"); then
        say kafka "already running (pid $pid) on $bootstrap"
        return
    fi
    require_free_port "$KAFKA_PORT" KAFKA_PORT
    require_free_port "$KAFKA_CONTROLLER_PORT" KAFKA_CONTROLLER_PORT
    mkdir -p "$logs"
    write_config
    format_storage

    say kafka "starting on $bootstrap, log $logs/server.log"
    # shellcheck disable=SC2086 # KAFKA_HEAP_OPTS contains several JVM options
    setsid "$(java_bin)" $KAFKA_HEAP_OPTS -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
        "-Xlog:gc*:file=$logs/gc.log:time,tags:filecount=5,filesize=20M" \
        -Djava.awt.headless=true -Dkafka.logs.dir="$logs" \
        -Dlog4j2.configurationFile="$INFRA_DIR/kafka/log4j2.xml" \
        -cp "$libs/*" kafka.Kafka "$config" > "$logs/kafka.out" 2>&1 < /dev/null &
    pid=$!
    echo "$pid" > "$pidfile"

    ready_check=java
    if [[ -x $CIE_PYTHON ]] && "$CIE_PYTHON" -c 'import confluent_kafka' 2>/dev/null; then
        ready_check=python
    fi
    wait_ready kafka "$pid" "$logs/server.log" "$logs/kafka.out" -- broker_ready
}

cmd_down() {
    local pid
    if pid=$(live_pid "$pidfile" "$config"); then
        stop_process kafka "$pid"
    else
        say kafka "not running"
    fi
    rm -f "$pidfile"
}

cmd_status() {
    print_status kafka "$(live_pid "$pidfile" "$config" || true)" \
        "$bootstrap (controller 127.0.0.1:$KAFKA_CONTROLLER_PORT)"
}

dispatch "$@"
