"""Avro single-object encoding of events, as the Avro 1.11 specification defines it.

A message is the two-byte marker ``C3 01``, the 8-byte little-endian CRC-64-AVRO
fingerprint of the writer schema, then the Avro binary body. The fingerprint
lets a reader find the exact writer schema among all versions in the registry.
"""

import io
from typing import Any

import fastavro

from schemas.registry import SchemaRegistry, SchemaRegistryError, SchemaVersion, default_registry

MARKER = b"\xc3\x01"
HEADER_SIZE = len(MARKER) + 8


class EventDecodeError(ValueError):
    """The bytes are not a readable single-object encoded event."""


def encode_event(record: dict[str, Any], registry: SchemaRegistry | None = None,
                 writer: SchemaVersion | None = None) -> bytes:
    """Encode an event with the newest schema of its ``event_type`` (or with ``writer``)."""
    registry = registry or default_registry()
    writer = writer or registry.latest(record["event_type"])
    buffer = io.BytesIO()
    buffer.write(MARKER)
    buffer.write(writer.fingerprint)
    fastavro.schemaless_writer(buffer, writer.parsed, record)
    return buffer.getvalue()


def decode_event(data: bytes, registry: SchemaRegistry | None = None) -> dict[str, Any]:
    """Decode an event and resolve it to the newest schema of its event type.

    Raises EventDecodeError for anything unreadable, so callers can dead-letter
    the record with the reason instead of stopping.
    """
    registry = registry or default_registry()
    if data is None or len(data) < HEADER_SIZE:
        raise EventDecodeError(f"message of {0 if data is None else len(data)} bytes is shorter than the {HEADER_SIZE}-byte single-object header")
    if data[:2] != MARKER:
        raise EventDecodeError(f"message starts with {data[:2].hex()}, not the Avro single-object marker c301")

    try:
        writer = registry.by_fingerprint(bytes(data[2:HEADER_SIZE]))
    except SchemaRegistryError as error:
        raise EventDecodeError(str(error)) from error
    reader = registry.latest(writer.event_type)

    try:
        return fastavro.schemaless_reader(io.BytesIO(data[HEADER_SIZE:]), writer.parsed, reader.parsed)
    except Exception as error:  # fastavro raises several unrelated types on corrupt bodies
        raise EventDecodeError(f"corrupt Avro body for {writer.event_type}.v{writer.version}: {error}") from error
