"""JSON formats of every response: money as a string with 3 decimals, times in ISO 8601 UTC with ``Z``.

Response models declare their fields as ``Money`` and ``UtcDateTime``, so every
value goes through ``money`` or ``utc`` whether it comes from PostgreSQL or
ClickHouse.
"""

from datetime import datetime, timezone
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator

MONEY_QUANTUM = Decimal("0.001")


def money(value: Decimal | str | int | None) -> Decimal:
    """Return an amount with exactly 3 decimals, which pydantic serialises as a string ("248678.810").

    ``value`` is a Decimal or a ClickHouse ``toString(Decimal)``; None and the
    empty string count as 0, the sum of no rows. ClickHouse sums do not keep the
    scale of their columns: 18.16 prints '124.840', current releases '124.84',
    and clickhouse-driver may return Decimal('32323').
    """
    return Decimal(value or 0).quantize(MONEY_QUANTUM)


def utc(value: datetime) -> datetime:
    """Return an aware datetime in UTC, which pydantic serialises with ``Z``."""
    if value.tzinfo is None:
        raise ValueError(f"datetime {value.isoformat()} has no time zone, so it cannot be served as UTC")
    return value.astimezone(timezone.utc)


def clickhouse_time(text: str) -> datetime:
    """Parse a ClickHouse ``toString`` of a ``DateTime('UTC')`` column ('2000-06-23 00:00:00') as a UTC time."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)


Money = Annotated[Decimal, AfterValidator(money)]
UtcDateTime = Annotated[datetime, AfterValidator(utc)]
