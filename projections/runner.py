"""Apply batches of log records to a projection without ever stopping on bad input.

The same runner serves the stream workers and the replay command, so a replay
applies events with exactly the code that built the live state.
"""

import logging
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import psycopg
from clickhouse_driver import errors as clickhouse_errors

from projections.deadletter import DeadLetterSink
from projections.records import EventRecord, LogRecord, decode_records

log = logging.getLogger(__name__)

# Errors that say a store is unreachable, not that the data is bad: retry them.
TRANSIENT_ERRORS = (
    psycopg.OperationalError,
    clickhouse_errors.NetworkError,
    clickhouse_errors.SocketTimeoutError,
    ConnectionError,
    TimeoutError,
)
MAX_RETRY_DELAY = 30.0


class Projection(Protocol):
    name: str

    def apply(self, events: list[EventRecord], records: list[LogRecord]) -> int: ...


@dataclass
class BatchResult:
    records: int
    applied: int
    rejected: int


class ProjectionRunner:
    """Decode, dead-letter and apply batches for one projection.

    ``connect`` builds the projection with fresh connections; the runner calls
    it again after a transient error.
    """

    def __init__(self, connect: Callable[[], Projection], dead_letters: DeadLetterSink):
        self.connect = connect
        self.projection = connect()
        self.dead_letters = dead_letters

    @property
    def name(self) -> str:
        return self.projection.name

    def run(self, records: list[LogRecord]) -> BatchResult:
        events, rejected = decode_records(records)
        for item in rejected:
            self.dead_letters.send(item.record, item.reason, self.name)
        failed = self._apply_with_retry(events, records)
        if rejected or failed:
            self.dead_letters.flush()
        return BatchResult(records=len(records), applied=len(events) - failed, rejected=len(rejected) + failed)

    def _apply_with_retry(self, events: list[EventRecord], records: list[LogRecord]) -> int:
        delay = 0.5
        while True:
            try:
                return self._apply_isolating(events, records)
            except TRANSIENT_ERRORS as error:
                first = records[0] if records else None
                where = f"{first.topic}[{first.partition}]@{first.offset}" if first else "an empty batch"
                log.warning("projection %s could not apply the batch from %s: %s; retrying in %.1f s",
                            self.name, where, error, delay)
                time.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)
                self._reconnect()

    def _apply_isolating(self, events: list[EventRecord], records: list[LogRecord]) -> int:
        """Apply a batch; if it fails on its data, bisect it and dead-letter the event at fault.

        Returns how many events were dead-lettered.
        """
        try:
            self.projection.apply(events, records)
            return 0
        except TRANSIENT_ERRORS:
            raise
        except Exception as error:
            if len(events) <= 1:
                for item in events:
                    self.dead_letters.send(item.record, f"apply failed: {error!r}", self.name)
                self._reconnect()
                self.projection.apply([], records)
                return len(events)
            log.warning("projection %s failed on a batch of %d events (%r); splitting it to find the bad event",
                        self.name, len(events), error)
            self._reconnect()
            middle = len(events) // 2
            return self._apply_isolating(events[:middle], []) + self._apply_isolating(events[middle:], records)

    def _reconnect(self) -> None:
        close = getattr(self.projection, "close", None)
        if close is not None:
            try:
                close()
            except Exception as error:  # closing a broken connection may fail too
                log.debug("closing projection %s failed: %r", self.name, error)
        self.projection = self.connect()
