#!/usr/bin/env python
"""Measure the recommender worker on the real retail data and print one Markdown table row per figure.

    .venv/bin/python scripts/benchmark_recommendations.py [--rate 1000] [--seconds 30] [--probes-csv FILE]

Works in a namespace of its own (topics, consumer group and Redis keys named
bench_reco_<time>) on the running services and removes it afterwards:

1. publish every retail file, start one ``cie worker --role recommender`` and
   time it until it has learned every event (learning and each touched
   customer's lists), then until lag 0 (checkpoint written), then until the
   worker marks every list exact (``lists_exact_up_to`` in its checkpoint meta);
2. offer ``--rate`` events per second for ``--seconds`` seconds: the orders,
   cancellations and product updates from ``--load-from`` on again, with new
   event ids and event times after the history, Avro-encoded before the clock
   starts. Ten times a second one of them is a probe: a purchase, by a
   customer with a history and no event in the load, of a product trending
   now that is not in their buy-again list. A watcher polls Redis every 2 ms
   and records when the product appears in that list. The figure is the time
   from the probe's ``produce()`` call to that moment; ``--probes-csv`` writes
   each probe's send time and latency, to see when the slow ones happened.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import redis  # noqa: E402

from benchmark import _cpu_seconds, machine, row  # noqa: E402
from cie.cli import DEFAULT_RETAIL_DIR  # noqa: E402
from cie.importers.publish import import_retail  # noqa: E402
from cie.kafka import EventPublisher, admin_client, end_offsets, ensure_topics, event_producer  # noqa: E402
from cie.recommend.events import retail_events  # noqa: E402
from cie.recommend.keys import RecoKeys, delete_recommender_keys, offset_field  # noqa: E402
from cie.settings import WORKER_ROLES, Settings, consumer_group_for  # noqa: E402
from cie.topics import Topics  # noqa: E402
from projections.offsets import recommender_lag, recommender_lists_exact  # noqa: E402

COMMAND = "scripts/benchmark_recommendations.py"
PROBES_PER_SECOND = 10


def _progress_done(client: redis.Redis, keys: RecoKeys, ends: dict) -> bool:
    progress = {field.decode(): int(value) for field, value in client.hgetall(keys.progress).items()}
    return all(end == 0 or progress.get(offset_field(topic, partition), -1) >= end - 1
               for (topic, partition), end in ends.items())


def _load_events(data_dir: Path, start: datetime, count: int, load_from: datetime) -> list[dict]:
    """``count`` events of the data from ``load_from`` on, restamped one after another from ``start``."""
    source = [event for event in retail_events(data_dir) if event["occurred_at"] >= load_from]
    events = []
    step = timedelta(milliseconds=1)
    for index in range(count):
        event = dict(source[index % len(source)])
        event.update(event_id=str(uuid.uuid4()), occurred_at=start + index * step,
                     received_at=datetime.now(timezone.utc), source="benchmark")
        if event["event_type"] != "product.upserted":
            event["currency"] = "GBP"
        else:
            event.setdefault("currency", "GBP")
        events.append(event)
    return events


class Watcher(threading.Thread):
    """Polls Redis for the probes' products in their customers' buy-again lists."""

    def __init__(self, client: redis.Redis, keys: RecoKeys):
        super().__init__(daemon=True)
        self.client, self.keys = client, keys
        self.pending: dict[tuple[str, str], float] = {}
        self.probes: list[tuple[float, float]] = []  # (produced at, latency), in the order seen
        self.lock = threading.Lock()
        self.stopping = False

    def expect(self, customer: str, product: str, produced_at: float) -> None:
        with self.lock:
            self.pending[(customer, product)] = produced_at

    def run(self) -> None:
        while not self.stopping:
            with self.lock:
                waiting = list(self.pending.items())
            if waiting:
                with self.client.pipeline(transaction=False) as pipe:
                    for (customer, product), _ in waiting:
                        pipe.zscore(self.keys.customer_list(customer, "buy_again"), product)
                    found = pipe.execute()
                now = time.perf_counter()
                with self.lock:
                    for ((customer, product), produced_at), score in zip(waiting, found):
                        if score is not None:
                            self.probes.append((produced_at, now - produced_at))
                            del self.pending[(customer, product)]
            time.sleep(0.002)


def _probe_targets(client: redis.Redis, keys: RecoKeys, customers: list[str]) -> list[tuple[str, str]]:
    """(customer, product) pairs: a product trending now that is not in the customer's buy-again list.

    Only customers with fewer than 40 products in their buy-again list (of
    50) are taken, so that a product bought once enters it.
    """
    trending = [product.decode() for product in client.zrevrange(keys.trending(None), 0, 99)]
    targets = []
    for customer in customers:
        buy_again = {product.decode() for product in client.zrange(keys.customer_list(customer, "buy_again"), 0, -1)}
        if len(buy_again) >= 40:
            continue
        product = next((product for product in trending if product not in buy_again), None)
        if product is not None:
            targets.append((customer, product))
    return targets


def bench(data_dir: Path, rate: int, seconds: float, history_dir: Path, load_from: datetime,
          probes_csv: Path | None = None) -> None:
    name = f"bench_reco_{int(time.time())}"
    overrides = {"CIE_TOPIC_PREFIX": name, "CIE_CONSUMER_GROUP": f"{name}-streams"}
    settings = Settings(**overrides)
    env = {**os.environ, **overrides}
    topics = ensure_topics(settings)
    keys = RecoKeys.from_settings(settings)
    client = redis.Redis.from_url(settings.redis_url)
    log_path = Path(tempfile.gettempdir()) / f"{name}-recommender.log"
    worker = None
    try:
        # 1. The history, learned from a backlog.
        summary = import_retail(settings, history_dir, progress=False)
        ends = end_offsets(settings, [topics.product_events, topics.customer_events])
        started = time.perf_counter()
        worker = subprocess.Popen([str(Path(sys.executable).parent / "cie"), "worker", "--role", "recommender",
                                   "--loglevel", "info"], env=env, cwd=REPO, stdout=log_path.open("w"),
                                  stderr=subprocess.STDOUT)
        while not _progress_done(client, keys, ends):
            if worker.poll() is not None:
                raise RuntimeError(f"the recommender exited; see {log_path}")
            time.sleep(0.05)
        learned = time.perf_counter() - started
        while recommender_lag(settings).lag:
            time.sleep(0.2)
        caught_up = time.perf_counter() - started
        cpu = _cpu_seconds(worker.pid)
        # The load starts once every list is exact, so that it meets a worker with nothing queued.
        while True:
            learned_events, exact_up_to = recommender_lists_exact(settings)
            if exact_up_to >= learned_events:
                break
            if worker.poll() is not None:
                raise RuntimeError(f"the recommender exited; see {log_path}")
            time.sleep(0.2)
        exact = time.perf_counter() - started
        exact_cpu = _cpu_seconds(worker.pid)
        row("recommender, backlog of the whole retail history: events learned per second "
            "(start-up, learning and each touched customer's lists)",
            f"{summary.events_published / learned:,.0f} events/s ({summary.events_published:,} events in {learned:.1f} s)",
            COMMAND)
        row("same backlog until lag 0 (every event learned, the touched customers' lists written, checkpoint written)",
            f"{caught_up:.1f} s; {cpu:.1f} s of CPU", COMMAND)
        row("same backlog until every list of every customer, country and product is exact",
            f"{exact:.1f} s; {exact_cpu:.1f} s of CPU", COMMAND)

        # 2. Live load with probes.
        meta = client.hgetall(keys.meta)
        clock = datetime.fromtimestamp(float(meta[b"clock"]), tz=timezone.utc)
        count = int(rate * seconds)
        load = _load_events(data_dir, clock + timedelta(days=1), count, load_from)
        # Probe customers have a history but no event in the load, so their lists change only with the probe.
        in_load = {event["customer_id"] for event in load if event.get("customer_id")}
        history = [key.decode().split(":")[-2] for key in client.scan_iter(match=f"{keys.prefix}:c:*:meta", count=1000)]
        targets = _probe_targets(client, keys, sorted(set(history) - in_load))
        if not targets:
            raise RuntimeError("no trending list or no customer to probe; did the recommender write its lists?")
        publisher = EventPublisher(settings, event_producer(settings, **{"linger.ms": 5}))
        # Encoded before the clock starts: the load generator shares the worker's two cores, and
        # Avro-encoding 1,000 orders of 30 lines a second would take most of one of them.
        encoded = [publisher.encode(event) for event in load]
        watcher = Watcher(redis.Redis.from_url(settings.redis_url), keys)
        watcher.start()
        probe_every = max(1, rate // PROBES_PER_SECOND)
        probes = 0
        cpu_before = _cpu_seconds(worker.pid)
        print(f"offering {count:,} events at {rate:,} events/s", file=sys.stderr, flush=True)
        started = time.perf_counter()
        for index, (event, message) in enumerate(zip(load, encoded)):
            due = started + index / rate
            while (wait := due - time.perf_counter()) > 0:
                # poll() takes whole milliseconds and would spin on a shorter wait, taking a core from the worker.
                if wait >= 0.002:
                    publisher.producer.poll(min(wait - 0.001, 0.005))
                else:
                    time.sleep(wait)
            if index % probe_every == probe_every // 2 and probes < len(targets):
                customer, product = targets[probes]
                probes += 1
                event = {"event_id": str(uuid.uuid4()), "event_type": "order.placed", "customer_id": customer,
                         "order_id": f"P{probes}", "occurred_at": event["occurred_at"], "currency": "GBP",
                         "received_at": datetime.now(timezone.utc), "source": "benchmark", "country": None,
                         "lines": [{"line_number": 1, "product_id": product, "description": None,
                                    "quantity": 1, "unit_price": Decimal("1.00")}]}
                message = publisher.encode(event)
                watcher.expect(customer, product, time.perf_counter())
            publisher.produce(*message)
        offered = count / (time.perf_counter() - started)
        publisher.flush()
        ends = end_offsets(settings, [topics.product_events, topics.customer_events])
        deadline = time.monotonic() + 120
        while not _progress_done(client, keys, ends) and time.monotonic() < deadline:
            time.sleep(0.01)
        drained = time.perf_counter() - started
        cpu_load = _cpu_seconds(worker.pid) - cpu_before
        while watcher.pending and time.monotonic() < deadline:
            time.sleep(0.05)
        watcher.stopping = True
        latencies = sorted(latency for _, latency in watcher.probes)
        if probes_csv is not None:
            with probes_csv.open("w") as out:
                out.write("sent_s,latency_ms\n")
                for produced_at, latency in sorted(watcher.probes):
                    out.write(f"{produced_at - started:.3f},{latency * 1000:.1f}\n")
        missing = len(watcher.pending)
        p50 = statistics.median(latencies) * 1000
        p95 = latencies[max(0, int(round(0.95 * len(latencies))) - 1)] * 1000
        row(f"offered load: events published per second for {seconds:.0f} s (the orders, cancellations and product "
            f"updates from {load_from:%Y-%m-%d} on again, with new ids and event times)",
            f"{offered:,.0f} events/s ({count:,} events)", COMMAND)
        row(f"purchase produced -> product in that customer's buy-again list in Redis, at that load "
            f"({len(latencies)} probes{f', {missing} never seen' if missing else ''})",
            f"p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {latencies[-1] * 1000:.0f} ms", COMMAND)
        row("recommender during the load: from the first event offered to the last one learned",
            f"{count / drained:,.0f} events/s learned in {drained:.1f} s; {cpu_load / drained:.0%} of one core", COMMAND)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(60)
        delete_recommender_keys(client, keys)
        admin = admin_client(settings)
        names = [*Topics.from_settings(settings).event_topics, topics.dead_letter, topics.import_ledger]
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.exception()
        groups = [consumer_group_for(settings, role) for role in WORKER_ROLES]
        for future in admin.delete_consumer_groups(groups).values():
            future.exception()
        print(f"recommender log: {log_path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(DEFAULT_RETAIL_DIR), help="folder of the retail CSV files")
    parser.add_argument("--history-dir", help="retail files to learn before the load (default: --data-dir)")
    parser.add_argument("--rate", type=int, default=1000, help="events offered per second")
    parser.add_argument("--seconds", type=float, default=30, help="how long to offer them")
    parser.add_argument("--load-from", default="2011-10-01",
                        help="offer the events from this date on (default: Oct-Dec 2011, the months with the "
                             "largest orders; 2009-12-01 gives the mix of the whole history)")
    parser.add_argument("--probes-csv", help="write each probe's send time (seconds into the load) and latency here")
    args = parser.parse_args()
    print(f"machine: {machine()}, {datetime.now(timezone.utc):%Y-%m-%d}")
    print("| figure | value | command |\n| --- | --- | --- |")
    load_from = datetime.fromisoformat(args.load_from).replace(tzinfo=timezone.utc)
    bench(Path(args.data_dir), args.rate, args.seconds, Path(args.history_dir or args.data_dir), load_from,
          Path(args.probes_csv) if args.probes_csv else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
