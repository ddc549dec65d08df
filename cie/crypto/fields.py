"""AES-256-GCM of single field values under a customer's data key.

A sealed value is ``01 | key_version (4 bytes, big-endian) | nonce (12 bytes) |
ciphertext and 16-byte tag``. The associated data is the customer id and the
field name, so a ciphertext copied into another customer's event or into
another field fails to decrypt instead of showing the wrong person's data.
"""

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT = 1
NONCE_SIZE = 12  # 96 bits, the size GCM is specified for
HEADER = struct.Struct(">BI")  # format, key_version
MIN_SIZE = HEADER.size + NONCE_SIZE + 16


class DecryptionError(ValueError):
    """A sealed value is malformed, or was not sealed with this key for this customer and field."""


@dataclass(frozen=True)
class DataKey:
    customer_id: str
    version: int
    key: bytes

    def __repr__(self) -> str:
        return f"DataKey(customer_id={self.customer_id!r}, version={self.version})"  # never the key itself


def associated_data(customer_id: str, field: str) -> bytes:
    return f"cie-field:{customer_id}\x1f{field}".encode()


def seal(key: DataKey, field: str, plaintext: str, nonce: bytes | None = None) -> bytes:
    """Encrypt one field value with a random nonce (or the given one) and return the sealed bytes."""
    nonce = nonce or os.urandom(NONCE_SIZE)
    ciphertext = AESGCM(key.key).encrypt(nonce, plaintext.encode(), associated_data(key.customer_id, field))
    return HEADER.pack(FORMAT, key.version) + nonce + ciphertext


def seal_deterministic(key: DataKey, field: str, plaintext: str, event_id: str) -> bytes:
    """Encrypt a field of an event written before encryption, with a nonce derived from the event id.

    Projections encrypt such legacy plaintext themselves, and a replay must write
    the same bytes. The nonce is HMAC-SHA256(data key, event id and field), so a
    nonce repeats only for the same event, field and therefore the same plaintext.
    """
    nonce = hmac.new(key.key, f"{event_id}\x1f{field}".encode(), hashlib.sha256).digest()[:NONCE_SIZE]
    return seal(key, field, plaintext, nonce)


def key_version(sealed: bytes) -> int:
    """Return the data key version a sealed value was written with."""
    if len(sealed) < MIN_SIZE:
        raise DecryptionError(f"sealed value of {len(sealed)} bytes is shorter than the minimum {MIN_SIZE}")
    format_, version = HEADER.unpack_from(sealed)
    if format_ != FORMAT:
        raise DecryptionError(f"sealed value has format {format_}, expected {FORMAT}")
    return version


def open_sealed(key: DataKey, field: str, sealed: bytes) -> str:
    """Decrypt one sealed field value; raise DecryptionError if it belongs to another key, customer or field."""
    version = key_version(sealed)
    if version != key.version:
        raise DecryptionError(f"{field} of customer {key.customer_id} was sealed with data key version "
                              f"{version}, not {key.version}")
    nonce = sealed[HEADER.size:HEADER.size + NONCE_SIZE]
    try:
        plaintext = AESGCM(key.key).decrypt(nonce, sealed[HEADER.size + NONCE_SIZE:],
                                            associated_data(key.customer_id, field))
    except InvalidTag:
        raise DecryptionError(f"{field} does not decrypt under the data key of customer {key.customer_id}: "
                              "it was sealed for another customer, field or key") from None
    return plaintext.decode()
