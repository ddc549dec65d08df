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


def test_version_1_event_reads_as_latest():
    registry = default_registry()
    version_1 = registry.version("customer.registered", 1)
    version_3 = registry.version("customer.registered", 3)
    assert registry.latest("customer.registered") is version_3

    encoded = encode_event(_registered(), writer=version_1)
    decoded = decode_event(encoded)

    assert encoded[2:10] == version_1.fingerprint
    assert decoded["country"] == "Iceland"
    assert decoded["traits"] == {}
    assert decoded["encrypted_traits"] == {}


def test_version_2_traits_read_as_plain_traits():
    registry = default_registry()
    encoded = encode_event(_registered(traits={"segment": "wholesale"}), writer=registry.version("customer.registered", 2))
    decoded = decode_event(encoded)
    assert decoded["traits"] == {"segment": "wholesale"}
    assert decoded["encrypted_traits"] == {}


@pytest.mark.parametrize("event_type, field", [
    ("review.submitted", "text"), ("support.message_sent", "text"), ("sentiment.scored", "excerpt")])
def test_plain_text_version_1_reads_as_latest(event_type, field):
    registry = default_registry()
    record = {"event_id": str(uuid.uuid4()), "event_type": event_type, "occurred_at": NOW, "received_at": NOW,
              "customer_id": "12347", "source": "test", "review_id": "r1", "product_id": "p1", "rating": 5,
              "title": None, "text": "plain words", "ticket_id": "T-1", "channel": "email",
              "source_event_id": str(uuid.uuid4()), "source_event_type": "review.submitted", "score": 0.5,
              "label": "positive", "confidence": 0.9, "model_name": "m", "model_version": "1",
              "excerpt": "plain words"}
    decoded = decode_event(encode_event(record, writer=registry.version(event_type, 1)))
    assert registry.latest(event_type).version == 2
    assert decoded[field] == "plain words"
    assert decoded[f"encrypted_{field}"] is None


def test_latest_keeps_sealed_traits():
    decoded = decode_event(encode_event(_registered(encrypted_traits={"segment": b"\x01sealed"})))
    assert decoded["encrypted_traits"] == {"segment": b"\x01sealed"}


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
