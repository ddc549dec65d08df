"""Personal fields of events, and their sealing at produce time.

Personal: every trait value of customer.registered and customer.traits_updated,
the title and text of review.submitted, the text of support.message_sent and
the excerpt of sentiment.scored. Everything else (ids, country, products,
amounts, ratings, times, scores, labels) stays in clear.

A sealed record carries ``encrypted_<field>`` (bytes, see cie/crypto/fields.py)
with the plain ``<field>`` set to null, and ``encrypted_traits`` with ``traits``
empty. Events written before encryption have only the plain fields; readers
accept both.
"""

import base64
from dataclasses import dataclass, field
from typing import Any, Iterable

from cie.crypto.fields import DataKey, open_sealed, seal, seal_deterministic
from cie.crypto.keyring import KeyRing

# event type -> personal text fields
TEXT_FIELDS = {
    "review.submitted": ("title", "text"),
    "support.message_sent": ("text",),
    "sentiment.scored": ("excerpt",),
}
TRAIT_EVENT_TYPES = frozenset({"customer.registered", "customer.traits_updated"})


def trait_field(name: str) -> str:
    """Field name bound into a trait value's ciphertext."""
    return f"traits.{name}"


def has_personal_fields(record: dict[str, Any]) -> bool:
    event_type = record["event_type"]
    if event_type in TRAIT_EVENT_TYPES:
        return bool(record.get("traits"))
    return any(record.get(name) is not None for name in TEXT_FIELDS.get(event_type, ()))


def seal_record(record: dict[str, Any], key: DataKey) -> dict[str, Any]:
    """Return a copy of a plain record with its personal fields sealed under the customer's data key."""
    sealed = dict(record)
    if record["event_type"] in TRAIT_EVENT_TYPES:
        sealed["encrypted_traits"] = {name: seal(key, trait_field(name), value)
                                      for name, value in (record.get("traits") or {}).items()}
        sealed["traits"] = {}
    for name in TEXT_FIELDS.get(record["event_type"], ()):
        value = record.get(name)
        sealed[f"encrypted_{name}"] = None if value is None else seal(key, name, value)
        sealed[name] = None
    return sealed


def open_text(event: dict[str, Any], name: str, key: DataKey | None) -> str | None:
    """Return a text field of a decoded event in clear: the sealed one opened with ``key``, or a legacy plain one.

    Returns None for a sealed value when ``key`` is None (an erased customer), and
    raises DecryptionError when the sealed value does not open with ``key``.
    """
    sealed = event.get(f"encrypted_{name}")
    if sealed is None:
        return event.get(name)
    return None if key is None else open_sealed(key, name, sealed)


def stored_traits(event: dict[str, Any], key: DataKey | None) -> dict[str, str]:
    """Return the traits of a decoded event as {name: base64 of the sealed value}, for a JSON column.

    Sealed traits are kept byte for byte. Plain traits of an event written before
    encryption are sealed here under ``key``, with a nonce derived from the event
    id, so that a replay stores the same bytes. Without a key they are dropped.
    """
    traits = {name: base64.b64encode(value).decode() for name, value in (event.get("encrypted_traits") or {}).items()}
    for name, value in (event.get("traits") or {}).items():
        if key is not None:
            sealed = seal_deterministic(key, trait_field(name), value, str(event["event_id"]))
            traits[name] = base64.b64encode(sealed).decode()
    return traits


def open_traits(traits: dict[str, str], key: DataKey) -> dict[str, str]:
    """Decrypt traits as stored by ``stored_traits``."""
    return {name: open_sealed(key, trait_field(name), base64.b64decode(value)) for name, value in traits.items()}


@dataclass
class SealedBatch:
    records: list[dict[str, Any]]  # ready to produce, personal fields sealed
    erased: list[dict[str, Any]] = field(default_factory=list)  # plain records of erased customers, not to produce


def seal_records(keyring: KeyRing, records: Iterable[dict[str, Any]]) -> SealedBatch:
    """Seal the personal fields of a batch of plain records, getting or creating the data keys in bulk.

    Records of erased customers (any type, with or without personal fields) are
    set apart in ``erased``: the platform accepts no new events for them.
    """
    records = list(records)
    personal = {record["customer_id"] for record in records if record.get("customer_id") and has_personal_fields(record)}
    others = {record["customer_id"] for record in records if record.get("customer_id")} - personal
    keys = keyring.keys(personal, create=True)
    keys.update(keyring.keys(others))

    batch = SealedBatch([])
    for record in records:
        customer = record.get("customer_id")
        if customer and customer in keys and keys[customer] is None:
            batch.erased.append(record)
        elif customer in personal:
            batch.records.append(seal_record(record, keys[customer]))
        else:
            batch.records.append(record)
    return batch
