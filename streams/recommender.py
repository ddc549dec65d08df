"""The recommender worker: one online model over every partition, its lists and checkpoints in Redis.

``cie worker --role recommender`` runs this. It is a plain confluent-kafka
consumer, not a Faust agent, because the model needs every partition of the
customer and product topics in one process. A Faust agent subscribes in a
consumer group, so a second worker of the group would take half of the
partitions, and two models would each see half of the customers and half of
the sales. Instead:

- **Leader lock.** A worker first takes the Redis key ``<prefix>:reco:leader``
  (SET NX with a time to live, renewed by the learning loop). The holder
  *assigns* itself every partition, so no group rebalancing takes place.
  Any other worker is a standby that retries the lock. It takes over from
  the last checkpoint when the leader stops renewing it (crash, SIGKILL, hang).
  Every write to Redis is fenced: WATCH the lock key, check it still holds
  this worker's token, MULTI ... EXEC. A worker that lost the lock cannot
  overwrite the new leader's checkpoint or lists, and goes back to standby.
- **Event-time order.** Records are buffered per partition and learned by a
  k-way merge on (occurred_at, topic, partition, offset): the next event is
  the smallest head among the partitions, and the merge waits while a
  partition that is not at its end has nothing buffered. Each partition
  keeps its log order, so what has been learned is always a prefix of each
  partition, which one offset per partition describes. On a backlog (and
  so on a replay) the order depends only on the log, not on fetch timing.
- **Checkpoint.** Model state, the offsets learned up to per topic-partition
  and the event ids learned are written in one MULTI/EXEC every
  ``CIE_RECO_CHECKPOINT_EVENTS`` events or ``CIE_RECO_CHECKPOINT_SECONDS``
  seconds, and once the worker is idle with every list written. A restart
  loads it and assigns each partition from the checkpointed offset + 1:
  events at or below it are never learned twice, and none above it are
  skipped. Event ids repeated on the topic (a retried POST, ``import --force``)
  are learned once.
- **Lists.** After each merged batch the lists of the customers it touched
  are rewritten (``cie.recommend.serving``: buy-again exactly, discover from
  the customer's last exact list), then exact discover lists, similar
  products and country trends are refreshed within a time budget.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import time
import uuid
import zlib
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from cie.recommend import Recommender
from cie.recommend.keys import (
    LIST_KINDS, RecoKeys, encode_reasons, offset_field, parse_offset_field, reasons_field,
)
from cie.recommend.model import Recommendation
from cie.recommend.serving import CustomerLists, ListBuilder
from cie.settings import Settings, consumer_group_for
from cie.topics import Topics
from projections.records import check_event
from schemas.codec import EventDecodeError, decode_event

log = logging.getLogger(__name__)

LEARNED_TYPES = frozenset({"order.placed", "order.cancelled", "review.submitted", "product.upserted",
                           "customer.registered", "customer.traits_updated"})
CUSTOMER_TYPES = LEARNED_TYPES - {"product.upserted"}
TRENDING_REFRESH_SECONDS = 1.0
SIMILAR_BATCH = 25
STATS_SECONDS = 10.0
# Max share of a loop that learned events for the slower work (queued SGD steps, exact lists, trends,
# similar products). A loop that learned nothing gives it CIE_RECO_REFRESH_BUDGET_SECONDS. With 0.25
# the Oct-Dec 2011 load at 1,000 events/s queued up for seconds after each burst of large orders.
# With 0.1 a burst drains faster, and the slower work catches up in the quiet loops between bursts.
SLOW_WORK_SHARE = 0.1
EVENT_ID_BYTES = 16


class LostLeadership(RuntimeError):
    """Another worker holds the leader lock now; this one must stop writing."""


class LeaderLock:
    """A Redis lock with a time to live, renewed by its holder and checked before every write."""

    _RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
    _RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"

    def __init__(self, client: redis.Redis, key: str, ttl: float):
        self.client = client
        self.key = key
        self.ttl_ms = int(ttl * 1000)
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}".encode()
        self.renewed_at = 0.0
        self._renew = client.register_script(self._RENEW)
        self._release = client.register_script(self._RELEASE)

    def try_acquire(self) -> bool:
        if self.client.set(self.key, self.token, nx=True, px=self.ttl_ms):
            self.renewed_at = time.monotonic()
            return True
        return False

    def holder(self) -> str | None:
        value = self.client.get(self.key)
        return value.decode() if value else None

    def renew(self, force: bool = False) -> None:
        """Extend the lock if a third of its time to live has passed; raise LostLeadership if it is gone."""
        now = time.monotonic()
        if not force and now - self.renewed_at < self.ttl_ms / 3000:
            return
        if not self._renew(keys=[self.key], args=[self.token, self.ttl_ms]):
            raise LostLeadership(f"the leader lock {self.key} is held by {self.holder()!r} now")
        self.renewed_at = now

    def release(self) -> None:
        try:
            self._release(keys=[self.key], args=[self.token])
        except redis.RedisError as error:
            log.warning("could not release the leader lock: %s", error)


@dataclass
class Pending:
    """A record waiting in its partition's buffer for the merge."""

    key: tuple  # (occurred_at, topic rank, partition, offset)
    offset: int
    event: dict[str, Any] | None  # None: unreadable; learned as a no-op so that the offset advances


@dataclass
class Checkpoint:
    model: Recommender
    offsets: dict[tuple[str, int], int]
    seen: set[bytes]


def load_checkpoint(client: redis.Redis, keys: RecoKeys) -> Checkpoint | None:
    """Read the checkpoint in one MULTI/EXEC, so that its parts belong together; None if there is none."""
    with client.pipeline(transaction=True) as pipe:
        pipe.get(keys.model)
        pipe.hgetall(keys.offsets)
        pipe.get(keys.seen)
        state, offsets, seen = pipe.execute()
    if state is None:
        return None
    model = Recommender.from_state_bytes(state)
    parsed = {parse_offset_field(field.decode()): int(value) for field, value in offsets.items()}
    ids = zlib.decompress(seen) if seen else b""
    return Checkpoint(model, parsed, {ids[i:i + EVENT_ID_BYTES] for i in range(0, len(ids), EVENT_ID_BYTES)})


class RecommenderWorker:
    def __init__(self, settings: Settings, client: redis.Redis | None = None):
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self.keys = RecoKeys.from_settings(settings)
        self.client = client or redis.Redis.from_url(settings.redis_url)
        self.lock = LeaderLock(self.client, self.keys.leader, settings.reco_leader_ttl)
        self.stopping = False
        # The topic rank breaks event-time ties: a product's description before orders of the same instant.
        self.topic_rank = {self.topics.product_events: 0, self.topics.customer_events: 1}

    # ------------------------------------------------------------------ outer loop

    def stop(self, *_args) -> None:
        self.stopping = True

    def run(self) -> None:
        while not self.stopping:
            if not self._wait_for_leadership():
                return
            try:
                self._lead()
            except LostLeadership as error:
                log.error("recommender lost the leader lock, going back to standby: %s", error)
            except redis.ConnectionError as error:
                log.error("recommender lost Redis (%s); retrying in 1 s from the last checkpoint", error)
                time.sleep(1.0)
        log.info("recommender stopped")

    def _wait_for_leadership(self) -> bool:
        announced = False
        while not self.stopping:
            try:
                if self.lock.try_acquire():
                    log.info("recommender %s is the leader", self.lock.token.decode())
                    return True
                if not announced:
                    log.info("recommender %s is on standby; the leader lock belongs to %s",
                             self.lock.token.decode(), self.lock.holder())
                    announced = True
            except redis.ConnectionError as error:
                log.warning("Redis is unreachable (%s); retrying", error)
            time.sleep(min(1.0, self.settings.reco_leader_ttl / 4))
        return False

    # ------------------------------------------------------------------ leading

    def _lead(self) -> None:
        settings = self.settings
        checkpoint = load_checkpoint(self.client, self.keys)
        if checkpoint is None:
            self.model, self.learned, self.seen = Recommender(), {}, set()
            log.info("recommender starts from offset 0: no checkpoint in Redis")
        else:
            self.model, self.learned, self.seen = checkpoint.model, dict(checkpoint.offsets), checkpoint.seen
            log.info("recommender resumes from its checkpoint: %d events learned, offsets %s",
                     self.model.events_learned, sorted(self.learned.items()))
        if self.model.factorisation is not None:
            self.model.factorisation.deferred = True
        self.builder = ListBuilder(self.model, settings.reco_list_size, settings.reco_similar_size)
        _freeze_long_lived()
        self.pending_full: OrderedDict[str, None] = OrderedDict()  # customers whose exact lists are due
        self.pending_similar: OrderedDict[str, None] = OrderedDict()
        self.pending_trending: set[str | None] = set()
        self.trending_at: dict[str | None, float] = {}
        self.since_checkpoint = 0
        self.unsaved_since = 0.0  # when the worker learned the first event that no checkpoint contains
        self.last_learned_at = 0.0
        self.dirty = False
        self.duplicates = 0
        self.swept_at = self.model.events_learned
        self.exact_up_to = -1  # events learned when every list was last exact (written to the meta hash)
        if checkpoint is not None and int(self.client.hget(self.keys.meta, "lists_exact_up_to") or -1) \
                < self.model.events_learned:
            # The last leader stopped before every list was exact, so rewrite them all once caught up.
            self.swept_at = self.model.events_learned - settings.reco_sweep_events
        # What this worker wrote to the names hash and the blocked set: product -> description, eligible.
        self.written_names: dict[str, str] = {}
        self.written_eligibility: dict[str, bool] = {}
        self.written_lists: dict[str, dict[str, int]] = {}  # customer -> kind -> hash of the list last written
        self.received: dict[tuple[str, int], int] = dict(self.learned)  # last offset buffered per partition
        self.waits: dict[tuple[str, int], int] = {}  # times the merge waited for a partition, since the last stats line
        self.stats_at, self.stats_events = time.monotonic(), self.model.events_learned
        self.loops, self.step_seconds = 0, {}  # loop count and seconds per step since the last stats line

        consumer = Consumer({
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": consumer_group_for(settings, "recommender"),
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 20,
            "queued.max.messages.kbytes": 65536,
        })
        self.consumer = consumer
        try:
            self._assign(consumer)
            self._loop(consumer)
            if self.dirty:  # stopping: keep what was learned
                self._checkpoint(consumer)
        finally:
            consumer.close()
            gc.unfreeze()  # the model of this leadership may now be garbage
            if self.stopping:
                self.lock.release()

    def _assign(self, consumer: Consumer) -> None:
        metadata = consumer.list_topics(timeout=30)
        assignment = []
        self.partitions: list[tuple[str, int]] = []
        for topic in (self.topics.product_events, self.topics.customer_events):
            if topic not in metadata.topics or metadata.topics[topic].error is not None:
                raise RuntimeError(f"topic {topic} does not exist; run `cie init` first")
            for partition in sorted(metadata.topics[topic].partitions):
                self.partitions.append((topic, partition))
                last = self.learned.get((topic, partition))
                assignment.append(TopicPartition(topic, partition, last + 1 if last is not None else OFFSET_BEGINNING))
        consumer.assign(assignment)
        self.buffers: dict[tuple[str, int], deque[Pending]] = {tp: deque() for tp in self.partitions}
        self.at_end: dict[tuple[str, int], bool] = {tp: False for tp in self.partitions}
        log.info("recommender assigned %d partitions of %s and %s", len(self.partitions),
                 self.topics.product_events, self.topics.customer_events)

    def _loop(self, consumer: Consumer) -> None:
        """Consume, merge and learn, write the touched customers' lists, then refresh within the budget.

        The slower work (the factorisation's SGD steps, exact discover lists,
        trends, similar products) runs for about ``CIE_RECO_REFRESH_BUDGET_SECONDS``
        per loop, so it delays a purchase's buy-again list by about that much at most.
        In a loop that learned events it runs for at most a ninth of the learning time
        (``SLOW_WORK_SHARE`` of the loop). One exact list or one batch of SGD steps
        can take longer than that, because the budget is checked between them.
        """
        settings = self.settings
        while not self.stopping:
            self.lock.renew()
            busy = bool(self.pending_full or self.pending_similar or self.pending_trending
                        or (self.model.factorisation is not None and self.model.factorisation.pending_steps))
            mark = time.monotonic()
            messages = self._fetch(consumer, 0.01 if busy else 0.05)
            self._buffer(messages)
            mark = self._time("consume", mark)
            touched = self._merge_and_learn(settings.reco_batch_size, time.monotonic() + settings.reco_batch_seconds)
            if touched is not None:
                self._write_fast(*touched)
            learned_at = mark
            mark = self._time("learn and lists", mark)
            budget = settings.reco_refresh_budget_seconds
            if touched is not None:
                # While events arrive, the slower work gets at most SLOW_WORK_SHARE of the loop, so that
                # short loops stay short and the next purchase waits less for its buy-again list.
                budget = min(budget, (mark - learned_at) * SLOW_WORK_SHARE / (1 - SLOW_WORK_SHARE))
            self._refresh_slow(budget)
            mark = self._time("refresh", mark)
            self._maybe_checkpoint(consumer)
            self._mark_exact()
            self._time("checkpoint", mark)
            self.loops += 1
            self._log_stats()

    def _fetch(self, consumer: Consumer, wait: float) -> list:
        """Take every record the consumer has queued, or wait up to ``wait`` seconds for one if there is none.

        ``consume`` alone would wait out its whole timeout unless a full batch
        was queued, and each record would wait with it.
        """
        limit = self.settings.reco_batch_size
        messages = consumer.consume(num_messages=limit, timeout=0)
        if not messages:
            first = consumer.poll(wait)
            if first is not None:
                messages = [first, *consumer.consume(num_messages=limit - 1, timeout=0)] if limit > 1 else [first]
        return messages

    def _time(self, step: str, since: float) -> float:
        now = time.monotonic()
        self.step_seconds[step] = self.step_seconds.get(step, 0.0) + now - since
        return now

    def _buffer(self, messages) -> None:
        for message in messages:
            error = message.error()
            tp = (message.topic(), message.partition())
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    if tp in self.at_end:
                        self.at_end[tp] = True
                    continue
                if error.fatal():
                    raise RuntimeError(f"Kafka consumer failed: {error}")
                log.warning("Kafka consumer error: %s", error)
                continue
            offset = message.offset()
            if tp not in self.buffers or offset <= self.learned.get(tp, -1):
                continue  # at or below the checkpoint: already learned
            self.at_end[tp] = False
            self.received[tp] = offset
            event = None
            try:
                event = decode_event(message.value())
                if check_event(event) is not None:
                    event = None
            except EventDecodeError:
                pass  # the projections dead-letter it; here it only advances the offset
            occurred = event["occurred_at"].timestamp() if event is not None else float("-inf")
            self.buffers[tp].append(Pending((occurred, self.topic_rank[tp[0]], tp[1], offset), offset, event))

    def _at_high_watermark(self, tp: tuple[str, int]) -> bool:
        """Whether every record of the partition up to the high watermark of the last fetch is buffered.

        Kafka sends the partition-EOF event only with the next fetch response
        that has nothing new. Under steady traffic that response may not come,
        and the merge would wait for the partition's next record. The high watermark
        cached from the last fetch response tells the same without waiting.
        """
        _, high = self.consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
        if high >= 0 and self.received.get(tp, -1) + 1 >= high:
            self.at_end[tp] = True
            return True
        return False

    def _log_stats(self) -> None:
        now = time.monotonic()
        if now - self.stats_at < STATS_SECONDS:
            return
        learned = self.model.events_learned - self.stats_events
        waits = ", ".join(f"{topic}[{partition}] {count}" for (topic, partition), count in sorted(self.waits.items()))
        factorisation = self.model.factorisation
        steps = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in self.step_seconds.items())
        log.info("recommender learned %d events in %.0f s (%d loops: %s); %d customers wait for exact lists, "
                 "%d factorisation steps wait; merge waited for a partition %d times%s", learned,
                 now - self.stats_at, self.loops, steps, len(self.pending_full),
                 factorisation.pending_steps if factorisation is not None else 0,
                 sum(self.waits.values()), f" ({waits})" if waits else "")
        self.stats_at, self.stats_events, self.waits = now, self.model.events_learned, {}
        self.loops, self.step_seconds = 0, {}

    def _merge_and_learn(self, limit: int, deadline: float = float("inf")):
        """Learn up to ``limit`` events in merge order, until ``deadline``; return what they touched, or None.

        The clock is read every 32 events, so a batch may run past the deadline by up to 31 events.
        """
        customers: dict[str, None] = {}
        products: dict[str, None] = {}
        countries: set[str | None] = set()
        learned = 0
        while learned < limit:
            if learned % 32 == 31 and time.monotonic() > deadline:
                break
            best, blocked = None, False
            for tp in self.partitions:
                buffer = self.buffers[tp]
                if not buffer:
                    if not self.at_end[tp] and not self._at_high_watermark(tp):
                        blocked = True  # this partition may still deliver an earlier event: wait for it
                        self.waits[tp] = self.waits.get(tp, 0) + 1
                        break
                    continue
                if best is None or buffer[0].key < self.buffers[best][0].key:
                    best = tp
            if blocked or best is None:
                break
            pending = self.buffers[best].popleft()
            self.learned[best] = pending.offset
            learned += 1
            event = pending.event
            if event is None or event["event_type"] not in LEARNED_TYPES:
                continue
            event_id = event["event_id"]
            event_id = event_id.bytes if isinstance(event_id, uuid.UUID) else uuid.UUID(str(event_id)).bytes
            if event_id in self.seen:
                self.duplicates += 1
                continue
            try:
                self.model.learn(event)
            except ValueError as error:
                log.warning("recommender skipped event %s at %s[%d]@%d: %s", event["event_id"], best[0], best[1],
                            pending.offset, error)
                continue
            self.seen.add(event_id)
            self.since_checkpoint += 1
            self._touch(event, customers, products, countries)
        if not learned:
            return None
        if not self.dirty:
            self.dirty, self.unsaved_since = True, time.monotonic()
        self.last_learned_at = time.monotonic()
        return customers, products, countries

    @staticmethod
    def _touch(event: dict, customers: dict, products: dict, countries: set) -> None:
        event_type = event["event_type"]
        if event_type in CUSTOMER_TYPES and event.get("customer_id"):
            customers[event["customer_id"]] = None
        if event.get("country"):
            countries.add(event["country"])
        if event_type in ("order.placed", "order.cancelled"):
            countries.add(None)
            for line in event["lines"]:
                products[line["product_id"]] = None
        elif event.get("product_id"):
            products[event["product_id"]] = None

    # ------------------------------------------------------------------ lists

    def _fenced(self, write) -> None:
        """Run ``write(pipe)`` in MULTI/EXEC only if this worker still holds the leader lock."""
        with self.client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(self.keys.leader)
                if pipe.get(self.keys.leader) != self.lock.token:
                    raise LostLeadership(f"the leader lock is held by {self.lock.holder()!r}")
                pipe.multi()
                write(pipe)
                pipe.execute()
            except redis.WatchError as error:
                raise LostLeadership("the leader lock changed during a write") from error

    def _write_fast(self, customers: dict, products: dict, countries: set) -> None:
        if self.model.clock is None:
            return
        self.builder.begin_round()
        built = []
        for customer_id in customers:
            lists = self.builder.fast(customer_id)
            built.append(lists)
            if lists.exact:
                self.pending_full.pop(customer_id, None)
            else:
                self.pending_full[customer_id] = None
        eligible = self.builder.eligible()
        model = self.model
        progress = {offset_field(*tp): offset for tp, offset in self.learned.items()}

        # Names and the blocked set are written only for products whose description or eligibility
        # changed since this worker last wrote them, which keeps big orders from flooding Redis.
        names, blocked, unblocked = {}, [], []
        for product_id in products:
            index = model.product_index.get(product_id)
            if index is None:
                continue
            description = model.descriptions[index]
            if description and self.written_names.get(product_id) != description:
                names[product_id] = self.written_names[product_id] = description
            allowed = bool(eligible[index])
            if self.written_eligibility.get(product_id) != allowed:
                self.written_eligibility[product_id] = allowed
                (unblocked if allowed else blocked).append(product_id)

        def write(pipe):
            for lists in built:
                self._write_lists(pipe, lists)
            if blocked:
                pipe.sadd(self.keys.blocked, *blocked)
            if unblocked:
                pipe.srem(self.keys.blocked, *unblocked)
            if names:
                pipe.hset(self.keys.names, mapping=names)
            if progress:
                pipe.hset(self.keys.progress, mapping=progress)

        self._fenced(write)
        for product_id in products:
            self.pending_similar[product_id] = None
        self.pending_trending.update(countries)

    def _write_lists(self, pipe, lists: CustomerLists) -> None:
        """Queue the writes of one customer's lists: a sorted set per list that changed, and the meta hash.

        A list equal to the one this worker last wrote for the customer is not
        written again (on the fast path the discover list mostly is). The
        digests are kept only while this worker leads, and every failed write
        ends the leadership, so a digest never describes a write that did not happen.
        """
        keys, customer_id = self.keys, lists.customer_id
        written = self.written_lists.setdefault(customer_id, {})
        meta = {"cold_start": int(lists.cold_start), "country": lists.country or "", "exact": int(lists.exact),
                "clock": repr(self.model.clock), "updated_at": repr(time.time())}
        for kind in LIST_KINDS:
            items = lists.lists[kind]
            digest = hash(tuple(items))
            if written.get(kind) == digest:
                continue  # its sorted set and its reasons field stay as written
            written[kind] = digest
            meta[reasons_field(kind)] = encode_reasons((item.product_id, item.reason) for item in items)
            key = keys.customer_list(customer_id, kind)
            pipe.delete(key)
            if items:
                pipe.zadd(key, {item.product_id: item.score for item in items})
        pipe.hset(keys.customer_meta(customer_id), mapping=meta)

    def _write_ranked(self, pipe, key: str, reasons_key: str, items: list[Recommendation]) -> None:
        pipe.delete(key, reasons_key)
        if items:
            pipe.zadd(key, {item.product_id: item.score for item in items})
            pipe.hset(reasons_key, mapping={item.product_id: f"{rank}|{item.reason}" for rank, item in enumerate(items)})

    def _refresh_slow(self, budget: float) -> None:
        """Run queued SGD steps, then exact discover lists, country trends and similar products, until ``budget`` is spent."""
        if self.model.clock is None:
            return
        if self._caught_up():
            if self.model.events_learned - self.swept_at >= self.settings.reco_sweep_events:
                self._sweep()
        deadline = time.monotonic() + budget

        # The factorisation's deferred SGD steps come first: the exact discover lists read its weights.
        # NOTE: trends and similar products do not read them but wait too, so under a load that the steps
        # cannot keep up with they are not refreshed. Giving the steps half of the budget instead gave a
        # p95 of 314 ms and a max of 1.1 s in one benchmark run (111-229 ms and 0.5-0.7 s otherwise). A
        # likely cause is that the similar products' buyer matrix is rebuilt after every learned batch.
        factorisation = self.model.factorisation
        if factorisation is not None and factorisation.pending_steps:
            factorisation.apply_pending(budget)
            if factorisation.pending_steps:
                return
            self.builder.shared.pop("factorisation_items", None)  # the weights changed
        done: list[CustomerLists] = []
        while self.pending_full and time.monotonic() < deadline:
            customer_id, _ = self.pending_full.popitem(last=False)
            done.append(self.builder.full(customer_id))
        if done:
            self._fenced(lambda pipe: [self._write_lists(pipe, lists) for lists in done])
        now = time.monotonic()
        due = sorted((c for c in self.pending_trending if now - self.trending_at.get(c, -1e9) >= TRENDING_REFRESH_SECONDS
                      or self._caught_up()), key=lambda c: c or "")
        if due and now < deadline:
            lists = {country: self.builder.trending(country) for country in due}

            def write(pipe):
                for country, items in lists.items():
                    self._write_ranked(pipe, self.keys.trending(country), self.keys.trending_reasons(country), items)

            self._fenced(write)
            for country in due:
                self.pending_trending.discard(country)
                self.trending_at[country] = now
        while self.pending_similar and time.monotonic() < deadline:
            batch = []
            while self.pending_similar and len(batch) < SIMILAR_BATCH:
                batch.append(self.pending_similar.popitem(last=False)[0])
            similar = self.builder.similar(batch)

            def write(pipe):
                for product_id, items in similar.items():
                    self._write_ranked(pipe, self.keys.similar(product_id), self.keys.similar_reasons(product_id), items)

            self._fenced(write)

    def _sweep(self) -> None:
        """Queue every customer, country and product for an exact rewrite, after those already queued."""
        model = self.model
        log.info("recommender caught up after %d events: rewriting the lists of %d customers and %d products",
                 model.events_learned - self.swept_at, len(model.customer_ids), len(model.product_ids))
        for customer_id in model.customer_ids:
            self.pending_full.setdefault(customer_id, None)
        for product_id in model.product_ids:
            self.pending_similar.setdefault(product_id, None)
        self.pending_trending.update(model.countries)
        self.pending_trending.add(None)
        self.swept_at = model.events_learned

    # ------------------------------------------------------------------ checkpoints

    def _caught_up(self) -> bool:
        return all(self.at_end[tp] and not self.buffers[tp] for tp in self.partitions)

    def _idle(self) -> bool:
        factorisation = self.model.factorisation
        return (self._caught_up() and not (self.pending_full or self.pending_similar or self.pending_trending)
                and not (factorisation is not None and factorisation.pending_steps))

    def _mark_exact(self) -> None:
        """Once idle, record in the checkpoint meta hash that every list is exact up to the events learned."""
        learned = self.model.events_learned
        if learned == self.exact_up_to or not self._idle():
            return
        self._fenced(lambda pipe: pipe.hset(self.keys.meta, mapping={"lists_exact_up_to": learned,
                                                                      "lists_exact_at": repr(time.time())}))
        self.exact_up_to = learned

    def _maybe_checkpoint(self, consumer: Consumer) -> None:
        if not self.dirty:
            return
        settings = self.settings
        now = time.monotonic()
        if (self.since_checkpoint >= settings.reco_checkpoint_events
                or now - self.unsaved_since >= settings.reco_checkpoint_seconds
                or (self._idle() and now - self.last_learned_at >= settings.reco_idle_checkpoint_seconds)):
            self._checkpoint(consumer)

    def _checkpoint(self, consumer: Consumer) -> None:
        started = time.perf_counter()
        state = self.model.state_bytes()
        seen = zlib.compress(b"".join(sorted(self.seen)), 1)
        offsets = {offset_field(*tp): offset for tp, offset in sorted(self.learned.items())}
        meta = {"events_learned": self.model.events_learned, "clock": repr(self.model.clock),
                "written_at": repr(time.time()), "owner": self.lock.token, "state_bytes": len(state)}

        def write(pipe):
            pipe.set(self.keys.model, state)
            pipe.delete(self.keys.offsets)
            if offsets:
                pipe.hset(self.keys.offsets, mapping=offsets)
            pipe.set(self.keys.seen, seen)
            pipe.hset(self.keys.meta, mapping=meta)

        self._fenced(write)
        if offsets:
            try:  # for Kafka's own tools (kafka-consumer-groups); resuming reads the offsets from Redis
                consumer.commit(offsets=[TopicPartition(topic, partition, offset + 1)
                                         for (topic, partition), offset in sorted(self.learned.items())],
                                asynchronous=True)
            except Exception as error:  # noqa: BLE001 - monitoring only
                log.debug("offset commit failed: %s", error)
        log.info("recommender checkpoint: %d events learned (%d since the last), %d bytes, %.0f ms%s",
                 self.model.events_learned, self.since_checkpoint, len(state), (time.perf_counter() - started) * 1000,
                 f", {self.duplicates} repeated event ids skipped" if self.duplicates else "")
        self.since_checkpoint = 0
        self.dirty = False
        _freeze_long_lived()


def _freeze_long_lived() -> None:
    """Collect garbage, then exempt every surviving object from later collections.

    The model's indexes (dicts and lists with hundreds of thousands of
    entries) live as long as the worker. Python's full collections walked
    them every second or so under load, for 70 to 200 ms each, and the events
    that arrived meanwhile queued up. Frozen objects are still freed when their
    last reference goes. Only a reference cycle among them outlives its use,
    until ``gc.unfreeze`` at the end of the leadership.
    """
    gc.collect()
    gc.freeze()


def run(settings: Settings) -> int:
    worker = RecommenderWorker(settings)
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    worker.run()
    return 0
