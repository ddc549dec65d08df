#!/usr/bin/env python
"""Measure the pipeline on the real retail data and print one Markdown table row per figure.

    .venv/bin/python scripts/benchmark.py pipeline   # importer and projection throughput
    .venv/bin/python scripts/benchmark.py demo       # wall time of `make demo`, cold then warm
    .venv/bin/python scripts/benchmark.py sentiment  # texts scored per second, in the agent and over HTTP

`pipeline` works in a namespace of its own (topics, schema, database, consumer
group named bench_<time>) on the running services and removes it afterwards:
1. publish every retail file (events/s produced by the importer);
2. start one worker and time it from start to lag 0 on every projection
   (events/s through all projections, worker start-up included);
3. replay all projections into empty tables (events/s of the replay).

`sentiment` publishes the 2,000 labelled sentences (short texts) five times
over as support messages into a namespace of its own, starts one worker and
times the scorer from its first to its last published score; then it posts
them to POST /v1/sentiment:analyze in requests of 100. Per core means per
second of CPU time that the worker or API process used.

`demo` runs `make down`, deletes CIE_DATA_DIR, and runs `make demo` twice; it
needs the default ports free and takes the local stack down at the start.
"""

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cie.crypto.master import ensure_key_file  # noqa: E402

# Like the local stack and the tests: the development master key in $CIE_DATA_DIR/master.key unless CIE_MASTER_KEY is set.
if not os.environ.get("CIE_MASTER_KEY"):
    os.environ["CIE_MASTER_KEY"] = ensure_key_file(Path(os.environ.get("CIE_DATA_DIR", REPO / ".data")) / "master.key")

from cie.cli import DEFAULT_RETAIL_DIR  # noqa: E402
from cie.importers.publish import import_retail  # noqa: E402
from cie.kafka import admin_client  # noqa: E402
from cie.settings import Settings  # noqa: E402
from cie.topics import Topics  # noqa: E402
from projections import clickhouse, postgres  # noqa: E402
from projections.offsets import projection_lags  # noqa: E402
from projections.replay import replay_projection  # noqa: E402
from projections.wiring import create_stores, projection_specs  # noqa: E402
from cie.kafka import end_offsets  # noqa: E402


def machine() -> str:
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (f"{os.cpu_count()} cores, {memory_gib:.0f} GiB, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, load average {load} at start")


def row(figure: str, value: str, command: str) -> None:
    print(f"| {figure} | {value} | `{command}` |", flush=True)


def bench_pipeline(data_dir: Path) -> None:
    name = f"bench_{int(time.time())}"
    overrides = {"CIE_TOPIC_PREFIX": name, "CIE_POSTGRES_SCHEMA": name, "CIE_CLICKHOUSE_DATABASE": name,
                 "CIE_CONSUMER_GROUP": f"{name}-streams"}
    settings = Settings(**overrides)
    env = {**os.environ, **overrides}
    command = "scripts/benchmark.py pipeline"
    create_stores(settings)
    worker = None
    try:
        # 1. Publish.
        summary = import_retail(settings, data_dir, progress=False)
        row("importer: events produced per second", f"{summary.events_per_second:,.0f} "
            f"({summary.events_published:,} events in {summary.seconds:.1f} s)", command)

        # 2. Project the backlog with one worker.
        started = time.perf_counter()
        worker = _start_worker(env, "projections")
        while any(lag.lag for lag in projection_lags(settings, include_scorer=False, include_recommender=False)):
            if worker.poll() is not None:
                raise RuntimeError("the worker exited before the projections caught up")
            time.sleep(0.5)
        seconds = time.perf_counter() - started
        row("one projection worker, backlog to lag 0 on every projection (start-up included)",
            f"{summary.events_published / seconds:,.0f} events/s ({seconds:.1f} s)", command)

        # 3. Replay every projection into empty tables.
        schema, database = f"{name}_replay", f"{name}_replay"
        create_stores(settings, schema, database)
        specs = projection_specs(settings, schema, database)
        ends = end_offsets(settings, sorted({topic for spec in specs for topic in spec.topics}))
        started = time.perf_counter()
        records = sum(replay_projection(settings, spec, ends, progress=False) for spec in specs)
        seconds = time.perf_counter() - started
        row("replay of all three projections", f"{records / seconds:,.0f} records/s "
            f"({records:,} records in {seconds:.1f} s)", command)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(60)
        for schema in (name, f"{name}_replay"):
            postgres.drop_schema(settings, schema)
            clickhouse.drop_database(settings, schema)
        admin = admin_client(settings)
        topics = Topics.from_settings(settings)
        names = [*topics.event_topics, topics.dead_letter, topics.import_ledger]
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.exception()
        for future in admin.delete_consumer_groups([f"{name}-streams", f"{name}-streams-scorer"]).values():
            future.exception()


def _start_worker(env: dict, role: str) -> subprocess.Popen:
    return subprocess.Popen([str(Path(sys.executable).parent / "cie"), "worker", "--role", role, "--loglevel", "warn"],
                            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _sentences(data_root: Path) -> list[str]:
    folder = data_root / "sentiment_labelled_sentences"
    lines = []
    for name in ("amazon_cells_labelled.txt", "yelp_labelled.txt"):
        lines += [line.rsplit("\t", 1)[0] for line in (folder / name).read_text(encoding="utf-8").splitlines() if line]
    return lines


def bench_sentiment(data_root: Path, repeat: int = 5) -> None:
    import httpx

    from cie.kafka import EventPublisher, ensure_topics
    from schemas.events import SupportMessageSent

    name = f"bench_{int(time.time())}"
    overrides = {"CIE_TOPIC_PREFIX": name, "CIE_POSTGRES_SCHEMA": name, "CIE_CLICKHOUSE_DATABASE": name,
                 "CIE_CONSUMER_GROUP": f"{name}-streams", "CIE_API_PORT": "18765"}
    settings = Settings(**overrides)
    env = {**os.environ, **overrides}
    texts = _sentences(data_root) * repeat
    topics = ensure_topics(settings)
    create_stores(settings)
    processes = []
    try:
        # 1. Publish the texts as support messages.
        publisher = EventPublisher(settings)
        start = datetime(2020, 1, 1, tzinfo=timezone.utc)
        for number, text in enumerate(texts):
            publisher.publish(SupportMessageSent(occurred_at=start + timedelta(seconds=number),
                                                 customer_id=f"bench-{number % 500}", ticket_id=f"T{number}",
                                                 channel="chat", text=text).to_record())
        publisher.flush()

        # 2. Time the scorer from its first to its last score.
        worker = _start_worker(env, "scorer")
        processes.append(worker)
        first = cpu_first = None
        while True:
            produced = sum(end_offsets(settings, [topics.sentiment_scored]).values())
            if produced and first is None:
                first, first_count, cpu_first = time.perf_counter(), produced, _cpu_seconds(worker.pid)
            if produced >= len(texts):
                break
            if worker.poll() is not None:
                raise RuntimeError("the worker exited before it scored every text")
            time.sleep(0.05)
        seconds = time.perf_counter() - first
        cpu = _cpu_seconds(worker.pid) - cpu_first
        scored = len(texts) - first_count
        row("sentiment agent: short texts scored per second", f"{scored / seconds:,.0f} texts/s, "
            f"{scored / cpu:,.0f} per CPU second ({scored:,} texts in {seconds:.1f} s)", "scripts/benchmark.py sentiment")

        # 3. The analyze endpoint, one client, 100 texts a request.
        api = subprocess.Popen([str(Path(sys.executable).parent / "uvicorn"), "api.main:app", "--host", "127.0.0.1",
                                "--port", overrides["CIE_API_PORT"]], env=env, cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(api)
        with httpx.Client(base_url=f"http://127.0.0.1:{overrides['CIE_API_PORT']}", timeout=120) as http:
            for _ in range(120):
                try:
                    if http.post("/v1/sentiment:analyze", json={"texts": ["warm-up"]}).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            requests = [texts[i:i + 100] for i in range(0, 2000, 100)]
            cpu_before, started = _cpu_seconds(api.pid), time.perf_counter()
            for batch in requests:
                http.post("/v1/sentiment:analyze", json={"texts": batch}).raise_for_status()
            seconds, cpu = time.perf_counter() - started, _cpu_seconds(api.pid) - cpu_before
        row("POST /v1/sentiment:analyze, 100 short texts a request, one client",
            f"{2000 / seconds:,.0f} texts/s, {2000 / cpu:,.0f} per CPU second", "scripts/benchmark.py sentiment")
    finally:
        for process in processes:
            process.terminate()
            process.wait(60)
        postgres.drop_schema(settings, name)
        clickhouse.drop_database(settings, name)
        admin = admin_client(settings)
        for future in admin.delete_topics([*topics.event_topics, topics.dead_letter, topics.import_ledger],
                                          operation_timeout=30).values():
            future.exception()
        for future in admin.delete_consumer_groups([f"{name}-streams", f"{name}-streams-scorer"]).values():
            future.exception()


def bench_demo() -> None:
    data_dir = Path(os.environ.get("CIE_DATA_DIR", REPO / ".data"))
    subprocess.run(["make", "down"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    shutil.rmtree(data_dir, ignore_errors=True)
    for label in ("cold: empty data folder, packages and virtualenv installed", "warm: second run, all running"):
        started = time.perf_counter()
        subprocess.run(["make", "demo"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        row(f"`make demo`, {label}", f"{time.perf_counter() - started:.0f} s", "scripts/benchmark.py demo")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["pipeline", "demo", "sentiment"])
    parser.add_argument("--data-dir", default=str(DEFAULT_RETAIL_DIR), help="folder of the retail CSV files")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print("| figure | value | command |\n| --- | --- | --- |")
    if args.what == "pipeline":
        bench_pipeline(Path(args.data_dir))
    elif args.what == "sentiment":
        bench_sentiment(Path(args.data_dir).parent)
    else:
        bench_demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
