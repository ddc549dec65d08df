"""Avro single-object encoding and schema evolution, checked against the Avro specification."""

import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from schemas.codec import EventDecodeError, decode_event, encode_event
from schemas.events import EVENT_ADAPTER
from schemas.registry import AVRO_DIR, default_registry

NOW = datetime(2011, 12, 9, 12, 50, tzinfo=timezone.utc)
EMPTY = 0xC15D213AA4D7A795  # the Avro specification's "empty" value of the CRC-64-AVRO fingerprint


def _rabin_fingerprint(data: bytes) -> bytes:
    """CRC-64-AVRO written out from the Avro specification, as an independent check of fastavro's."""
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (EMPTY & -(fp & 1))
        table.append(fp)
    fp = EMPTY
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp.to_bytes(8, "little")


def _registered(**extra) -> dict:
    return {"event_id": str(uuid.uuid4()), "event_type": "customer.registered", "occurred_at": NOW,
            "received_at": NOW, "customer_id": "12347", "source": "test", "country": "Iceland", **extra}


def test_message_starts_with_marker_and_fingerprint():
    registry = default_registry()
    encoded = encode_event(_registered())
    writer = registry.latest("customer.registered")
    assert encoded[:2] == b"\xc3\x01"
    assert encoded[2:10] == writer.fingerprint


def test_fingerprints_match_the_specification():
    from fastavro.schema import to_parsing_canonical_form
    import json

    for path in sorted(AVRO_DIR.glob("*.avsc")):
        canonical = to_parsing_canonical_form(json.loads(path.read_text()))
        version = next(v for v in default_registry()._by_fingerprint.values()
                       if f"{v.event_type}.v{v.version}.avsc" == path.name)
        assert version.fingerprint == _rabin_fingerprint(canonical.encode()), path.name


def test_version_1_event_reads_as_version_2():
    registry = default_registry()
    version_1 = registry.version("customer.registered", 1)
    version_2 = registry.version("customer.registered", 2)
    assert registry.latest("customer.registered") is version_2

    encoded = encode_event(_registered(), writer=version_1)
    decoded = decode_event(encoded)

    assert encoded[2:10] == version_1.fingerprint
    assert decoded["country"] == "Iceland"
    assert decoded["traits"] == {}


def test_version_2_keeps_traits():
    decoded = decode_event(encode_event(_registered(traits={"segment": "wholesale"})))
    assert decoded["traits"] == {"segment": "wholesale"}


def test_order_round_trip_keeps_money_exact():
    event = EVENT_ADAPTER.validate_python({
        "event_type": "order.placed", "occurred_at": NOW, "customer_id": "12347", "order_id": "581587",
        "lines": [{"line_number": 1, "product_id": "22423", "quantity": 3, "unit_price": "12.755"}],
    })
    decoded = decode_event(encode_event(event.to_record()))
    assert decoded["lines"][0]["unit_price"] == Decimal("12.755")
    assert decoded["event_id"] == event.event_id


@pytest.mark.parametrize("data, reason", [
    (b"", "shorter than"),
    (b"\x00\x01" + bytes(20), "marker"),
    (b"\xc3\x01" + bytes(8) + b"\x02", "fingerprint"),
])
def test_unreadable_bytes_raise_decode_error(data, reason):
    with pytest.raises(EventDecodeError, match=reason):
        decode_event(data)


def test_truncated_body_raises_decode_error():
    encoded = encode_event(_registered())
    with pytest.raises(EventDecodeError, match="corrupt Avro body"):
        decode_event(encoded[:14])


def test_every_schema_field_has_a_doc():
    import json

    for path in sorted(AVRO_DIR.glob("*.avsc")):
        schema = json.loads(path.read_text())
        undocumented = [field["name"] for field in schema["fields"] if not field.get("doc")]
        assert undocumented == [], path.name
