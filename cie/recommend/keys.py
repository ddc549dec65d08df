"""Redis key names of the recommender, shared by the worker that writes them and the API that reads them.

Every key starts with ``<CIE_TOPIC_PREFIX>:reco:``, so namespaces (the demo, each
test) never collide.

| key | type | content |
| --- | --- | --- |
| ``checkpoint:model`` | string | ``Recommender.state_bytes()`` |
| ``checkpoint:offsets`` | hash | ``<topic>:<partition>`` -> last offset learned |
| ``checkpoint:seen`` | string | zlib of the sorted 16-byte event ids learned (duplicates are skipped) |
| ``checkpoint:meta`` | hash | events learned, event-time clock, wall time and owner of the checkpoint, and |
| | | ``lists_exact_up_to``: events learned when the worker last had every list exact and nothing queued |
| ``leader`` | string | token of the worker that holds the leader lock (expires) |
| ``progress`` | hash | offsets learned so far (ahead of the checkpoint; for watching, not for resuming) |
| ``c:<customer>:all``, ``:buy_again``, ``:discover`` | sorted set | product -> score |
| ``c:<customer>:meta`` | hash | ``cold_start`` (0/1), ``country``, ``exact``, ``clock``, ``updated_at``, and |
| | | ``reasons:<kind>``: the list's products and reasons in rank order (``encode_reasons``) |
| ``trending:<country>`` and ``trending`` | sorted set | the cold-start list of a country, and of everyone |
| ``p:<product>:similar`` | sorted set | similar product -> cosine of their buyers |
| ``p:<product>:reasons`` | hash | similar product -> reason |
| ``names`` | hash | product -> description |
| ``blocked`` | set | products that must not be recommended now (service codes, fully cancelled, ...) |
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cie.settings import Settings

LIST_KINDS = ("all", "buy_again", "discover")


@dataclass(frozen=True)
class RecoKeys:
    prefix: str

    @classmethod
    def from_settings(cls, settings: Settings) -> "RecoKeys":
        return cls(f"{settings.topic_prefix}:reco")

    @property
    def model(self) -> str:
        return f"{self.prefix}:checkpoint:model"

    @property
    def offsets(self) -> str:
        return f"{self.prefix}:checkpoint:offsets"

    @property
    def seen(self) -> str:
        return f"{self.prefix}:checkpoint:seen"

    @property
    def meta(self) -> str:
        return f"{self.prefix}:checkpoint:meta"

    @property
    def leader(self) -> str:
        return f"{self.prefix}:leader"

    @property
    def progress(self) -> str:
        return f"{self.prefix}:progress"

    @property
    def names(self) -> str:
        return f"{self.prefix}:names"

    @property
    def blocked(self) -> str:
        return f"{self.prefix}:blocked"

    def customer_list(self, customer_id: str, kind: str) -> str:
        return f"{self.prefix}:c:{customer_id}:{kind}"

    def customer_meta(self, customer_id: str) -> str:
        return f"{self.prefix}:c:{customer_id}:meta"

    def trending(self, country: str | None) -> str:
        return f"{self.prefix}:trending:{country}" if country else f"{self.prefix}:trending"

    def trending_reasons(self, country: str | None) -> str:
        return f"{self.prefix}:trending-reasons:{country}" if country else f"{self.prefix}:trending-reasons"

    def similar(self, product_id: str) -> str:
        return f"{self.prefix}:p:{product_id}:similar"

    def similar_reasons(self, product_id: str) -> str:
        return f"{self.prefix}:p:{product_id}:reasons"

    @property
    def pattern(self) -> str:
        """Pattern of every key of this namespace, for SCAN when clearing it."""
        return f"{self.prefix}:*"


def delete_recommender_keys(client, keys: RecoKeys) -> int:
    """Delete every Redis key of one namespace's recommender (checkpoint, lists, lock) and return how many."""
    names = list(client.scan_iter(match=keys.pattern, count=1000))
    for start in range(0, len(names), 1000):
        client.delete(*names[start:start + 1000])
    return len(names)


def offset_field(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def parse_offset_field(field: str) -> tuple[str, int]:
    topic, _, partition = field.rpartition(":")
    return topic, int(partition)


def reasons_field(kind: str) -> str:
    """Field of a customer's meta hash that contains the products and reasons of one list."""
    return f"reasons:{kind}"


def encode_reasons(items) -> str:
    """Encode (product_id, reason) pairs, best first, as one JSON value: ``[[product, reason], ...]``.

    One value per list costs one command argument, where a hash field per
    product cost two per product.
    """
    return json.dumps([[product_id, reason] for product_id, reason in items], ensure_ascii=False,
                      separators=(",", ":"))


def decode_reasons(value: bytes | str | None) -> dict[str, tuple[int, str]]:
    """Map each product of an ``encode_reasons`` value to its (rank, reason); an empty dict for None."""
    if not value:
        return {}
    return {product_id: (rank, reason) for rank, (product_id, reason) in enumerate(json.loads(value))}
