"""Every Avro schema version in ``avro/``, found by event type or by fingerprint.

Files are named ``<event_type>.v<version>.avsc``. Writers always use the newest
version of an event type; readers resolve any older writer version against it,
so an event written years ago stays readable after the contract grows.
"""

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

AVRO_DIR = Path(__file__).resolve().parent / "avro"
FILE_NAME = re.compile(r"^(?P<event_type>[a-z_]+\.[a-z_]+)\.v(?P<version>\d+)\.avsc$")


class SchemaRegistryError(Exception):
    """The schema files contradict each other or a lookup found nothing."""


class UnknownEventType(SchemaRegistryError):
    def __init__(self, event_type: str, known: list[str]):
        super().__init__(f"unknown event type {event_type!r}; known types: {', '.join(known)}")
        self.event_type = event_type


class UnknownFingerprint(SchemaRegistryError):
    def __init__(self, fingerprint_bytes: bytes):
        super().__init__(
            f"no schema in {AVRO_DIR} has CRC-64-AVRO fingerprint {fingerprint_bytes.hex()}; "
            "the event was written with a schema this build does not ship"
        )
        self.fingerprint = fingerprint_bytes


@dataclass(frozen=True)
class SchemaVersion:
    event_type: str
    version: int
    parsed: dict
    fingerprint: bytes  # 8 bytes, little-endian CRC-64-AVRO of the parsing canonical form


class SchemaRegistry:
    """Schema versions loaded from a folder of ``.avsc`` files."""

    def __init__(self, folder: Path = AVRO_DIR):
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        self._latest: dict[str, SchemaVersion] = {}  # event type -> newest version
        for path in sorted(folder.glob("*.avsc")):
            self._add(path)
        if not self._latest:
            raise SchemaRegistryError(f"no schema files (*.avsc) found in {folder}")

    def _add(self, path: Path) -> None:
        match = FILE_NAME.match(path.name)
        if match is None:
            raise SchemaRegistryError(f"schema file {path.name} is not named <event_type>.v<version>.avsc")
        raw = json.loads(path.read_text(encoding="utf-8"))
        parsed = fastavro.parse_schema(raw, _write_hint=False)
        version = SchemaVersion(
            event_type=match["event_type"],
            version=int(match["version"]),
            parsed=parsed,
            fingerprint=bytes.fromhex(fingerprint(to_parsing_canonical_form(raw), "CRC-64-AVRO")),
        )
        if version.fingerprint in self._by_fingerprint:
            other = self._by_fingerprint[version.fingerprint]
            raise SchemaRegistryError(
                f"{path.name} has the same canonical form as {other.event_type}.v{other.version}; "
                "a new version must change the schema"
            )
        self._by_fingerprint[version.fingerprint] = version

        current = self._latest.get(version.event_type)
        if current is None or version.version > current.version:
            self._latest[version.event_type] = version

    @property
    def event_types(self) -> list[str]:
        return sorted(self._latest)

    def latest(self, event_type: str) -> SchemaVersion:
        try:
            return self._latest[event_type]
        except KeyError:
            raise UnknownEventType(event_type, self.event_types) from None

    def version(self, event_type: str, version: int) -> SchemaVersion:
        for candidate in self._by_fingerprint.values():
            if candidate.event_type == event_type and candidate.version == version:
                return candidate
        raise SchemaRegistryError(f"no schema version {version} of event type {event_type!r}")

    def by_fingerprint(self, fingerprint_bytes: bytes) -> SchemaVersion:
        try:
            return self._by_fingerprint[fingerprint_bytes]
        except KeyError:
            raise UnknownFingerprint(fingerprint_bytes) from None


@lru_cache
def default_registry() -> SchemaRegistry:
    return SchemaRegistry()
