"""The master key that wraps every customer's data key, read from ``CIE_MASTER_KEY``.

The key is 32 random bytes, base64-encoded. It never lives in the repository:
production injects the variable from its secret store, and the local scripts
and tests generate one into ``$CIE_DATA_DIR/master.key`` (see ``ensure_key_file``).
"""

import base64
import binascii
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

ENV_VARIABLE = "CIE_MASTER_KEY"
KEY_SIZE = 32  # bytes: AES-256
GENERATE_COMMAND = ('python -c "import secrets,base64;'
                    'print(base64.b64encode(secrets.token_bytes(32)).decode())"')


class MasterKeyError(RuntimeError):
    """CIE_MASTER_KEY is missing or is not base64 of 32 bytes."""


@dataclass(frozen=True)
class MasterKey:
    key: bytes
    key_id: str  # 16 hex digits that name the key in data_keys rows, so a rotation can find what it wrapped

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id!r})"  # never the key itself


def parse_master_key(value: str | None) -> MasterKey:
    """Decode the base64 text of a master key; raise MasterKeyError naming the variable and the fix."""
    if not value or not value.strip():
        raise MasterKeyError(f"{ENV_VARIABLE} is not set; set it to the base64 of 32 random bytes, "
                             f"for example the output of: {GENERATE_COMMAND}")
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except binascii.Error as error:
        raise MasterKeyError(f"{ENV_VARIABLE} is not valid base64 ({error}); "
                             f"make a new key with: {GENERATE_COMMAND}") from None
    if len(key) != KEY_SIZE:
        raise MasterKeyError(f"{ENV_VARIABLE} decodes to {len(key)} bytes, expected {KEY_SIZE}; "
                             f"make a new key with: {GENERATE_COMMAND}")
    key_id = hashlib.sha256(b"cie-master-key-id:" + key).hexdigest()[:16]
    return MasterKey(key, key_id)


def ensure_key_file(path: Path) -> str:
    """Return the base64 master key stored in ``path``, creating the file (mode 600) if missing.

    For the local stack and the tests only: production sets CIE_MASTER_KEY itself.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        text = base64.b64encode(secrets.token_bytes(KEY_SIZE)).decode()
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text + "\n")
    return path.read_text().strip()
