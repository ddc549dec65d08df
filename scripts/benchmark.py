#!/usr/bin/env python
"""Measure the pipeline on the real retail data and print one Markdown table row per figure.

    .venv/bin/python scripts/benchmark.py pipeline   # importer and projection throughput
    .venv/bin/python scripts/benchmark.py demo       # wall time of `make demo`, cold then warm

`pipeline` works in a namespace of its own (topics, schema, database, consumer
group named bench_<time>) on the running services and removes it afterwards:
1. publish every retail file (events/s produced by the importer);
2. start one worker and time it from start to lag 0 on every projection
   (events/s through all projections, worker start-up included);
3. replay all projections into empty tables (events/s of the replay).

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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cie.cli import DEFAULT_RETAIL_DIR  # noqa: E402
from cie.importers.publish import import_retail  # noqa: E402
from cie.kafka import admin_client  # noqa: E402
from cie.settings import Settings  # noqa: E402
from projections import clickhouse, postgres  # noqa: E402
from projections.offsets import projection_lags  # noqa: E402
from projections.replay import replay_projection  # noqa: E402
from projections.wiring import create_stores, projection_specs  # noqa: E402
from cie.kafka import end_offsets  # noqa: E402


def machine() -> str:
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {memory_gib:.0f} GiB, {platform.system()} {platform.release()}, Python {platform.python_version()}"


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
        worker = subprocess.Popen([str(Path(sys.executable).parent / "cie"), "worker", "--loglevel", "warn"],
                                  env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while any(lag.lag for lag in projection_lags(settings)):
            if worker.poll() is not None:
                raise RuntimeError("the worker exited before the projections caught up")
            time.sleep(0.5)
        seconds = time.perf_counter() - started
        row("one worker, backlog to lag 0 on all three projections (start-up included)",
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
        names = [f"{name}.customer-events", f"{name}.product-events", f"{name}.dead-letter", f"{name}.import-ledger"]
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.exception()
        for future in admin.delete_consumer_groups([f"{name}-streams"]).values():
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
    parser.add_argument("what", choices=["pipeline", "demo"])
    parser.add_argument("--data-dir", default=str(DEFAULT_RETAIL_DIR), help="folder of the retail CSV files")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print("| figure | value | command |\n| --- | --- | --- |")
    if args.what == "pipeline":
        bench_pipeline(Path(args.data_dir))
    else:
        bench_demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
