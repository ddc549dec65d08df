"""Log records as projections see them: position in the log plus the decoded event."""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable

from schemas.codec import EventDecodeError, decode_event


@dataclass(frozen=True)
class LogRecord:
    """One Kafka message, independent of the client library that read it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class EventRecord:
    """A decoded event and the log position it was read from."""

    record: LogRecord
    event: dict[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.event["event_id"])

    @property
    def event_type(self) -> str:
        return self.event["event_type"]


@dataclass(frozen=True)
class Rejected:
    """A record that no projection can apply, and why."""

    record: LogRecord
    reason: str


def check_event(event: dict[str, Any]) -> str | None:
    """Return why a decoded event breaks a rule the projections rely on, or None.

    Avro guarantees the shape; these are the value rules that the pydantic models
    enforce at the edges, repeated here because any producer can write to a topic.
    """
    if event["event_type"] in ("order.placed", "order.cancelled"):
        if not event["lines"]:
            return f"{event['event_type']} {event['order_id']} has no lines"
        for line in event["lines"]:
            if line["quantity"] <= 0:
                return f"line {line['line_number']} of order {event['order_id']} has quantity {line['quantity']}; quantities must be positive"
            if line["unit_price"] < Decimal(0):
                return f"line {line['line_number']} of order {event['order_id']} has negative unit_price {line['unit_price']}"
    if event["event_type"] in ("customer.registered", "customer.traits_updated", "customer.erased") and not event.get("customer_id"):
        return f"{event['event_type']} event has no customer_id"
    return None


def decode_records(records: Iterable[LogRecord]) -> tuple[list[EventRecord], list[Rejected]]:
    """Decode and check a batch; unreadable or invalid records are returned as rejected, never raised."""
    events: list[EventRecord] = []
    rejected: list[Rejected] = []
    for record in records:
        try:
            event = decode_event(record.value)
        except EventDecodeError as error:
            rejected.append(Rejected(record, f"undecodable: {error}"))
            continue
        reason = check_event(event)
        if reason is not None:
            rejected.append(Rejected(record, f"invalid: {reason}"))
            continue
        events.append(EventRecord(record, event))
    return events, rejected


def last_offsets(records: Iterable[LogRecord]) -> dict[tuple[str, int], int]:
    """Return the highest offset per (topic, partition) in a batch."""
    offsets: dict[tuple[str, int], int] = {}
    for record in records:
        position = (record.topic, record.partition)
        if record.offset > offsets.get(position, -1):
            offsets[position] = record.offset
    return offsets
