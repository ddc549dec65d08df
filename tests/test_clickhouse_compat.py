"""Run the product's ClickHouse DDL and queries on the ClickHouse server and on chDB, and compare the results.

Debian ships ClickHouse 18.16, and chDB embeds a current ClickHouse (26.x) in the
test process. Both get the schema from projections/sql/clickhouse.sql and the same
events, written by AnalyticsProjection.apply(). Then every query the product runs
on ClickHouse runs on both, and the rows must be equal after normalise_rows().
The SQL comes from the product modules, so this test cannot drift from it.

The server is the one in cie.settings.Settings (CLICKHOUSE_HOST, CLICKHOUSE_PORT, ...).
The test fails when that server is unreachable, and is skipped only without chdb.
"""

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Iterator
from uuid import UUID, NAMESPACE_URL, uuid4, uuid5

import pytest
from clickhouse_driver import Client
from clickhouse_driver.errors import Error as ClickHouseError
from clickhouse_driver.util.escape import escape_param

from api import queries
from cie.settings import Settings
from cie.topics import Topics, route_event
from projections import clickhouse
from projections.analytics import AnalyticsProjection, applied_offsets
from projections.checksums import CLICKHOUSE_QUERIES
from projections.records import EventRecord, LogRecord, decode_records
from schemas.codec import encode_event
from schemas.events import (CustomerRegistered, OrderCancelled, OrderLine, OrderPlaced, ProductUpserted,
                            SentimentScored)

chdb_session = pytest.importorskip("chdb.session", reason="chdb is not installed; install the test extra: pip install -e '.[test]'")

UTC = timezone.utc
RECEIVED_AT = datetime(2011, 3, 1, tzinfo=UTC)


# ---------------------------------------------------------------------------
# chDB behind the clickhouse-driver interface that the product code calls


def sql_literal(value: Any) -> str:
    """Render one Python value as a ClickHouse literal for INSERT ... VALUES.

    The rendering matches what clickhouse-driver sends for the same value: a
    DateTime keeps whole seconds in UTC, and a Decimal keeps all its digits.
    """
    if isinstance(value, bool) or value is None:
        raise TypeError(f"unsupported value {value!r}: no column of the schema is Nullable or Bool")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value}: DateTime('UTC') columns need an aware datetime")
        return value.astimezone(UTC).strftime("'%Y-%m-%d %H:%M:%S'")
    if isinstance(value, date):
        return value.strftime("'%Y-%m-%d'")
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (str, UUID)):
        return escape_param(str(value), context=None)
    raise TypeError(f"no SQL literal for {type(value).__name__} value {value!r}")


def text_converter(clickhouse_type: str) -> Callable[[str], Any]:
    """Return the function that turns one JSONCompact value of this type into what clickhouse-driver returns."""
    if clickhouse_type in ("String", "UUID"):
        return str
    if re.fullmatch(r"U?Int(8|16|32|64|128|256)", clickhouse_type):
        return int
    if clickhouse_type == "Float64":
        return float
    if clickhouse_type.startswith("Decimal("):
        return Decimal
    if clickhouse_type == "Date":
        return date.fromisoformat
    if clickhouse_type == "DateTime('UTC')":
        return lambda text: datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    raise ValueError(f"no converter for ClickHouse type {clickhouse_type}; add one to text_converter()")


def parse_json_compact(output: bytes) -> list[tuple[Any, ...]]:
    """Return the rows of a JSONCompact result, typed by its column types."""
    if not output.strip():
        return []  # statements without a result set, such as CREATE and INSERT

    # parse_int and parse_float keep numbers as text, so no Decimal passes through a float.
    document = json.loads(output, parse_int=str, parse_float=str)
    converters = [text_converter(column["type"]) for column in document["meta"]]
    return [tuple(convert(value) for convert, value in zip(converters, row)) for row in document["data"]]


class ChdbClient:
    """The part of clickhouse_driver.Client that the product calls, run on a chDB session.

    chDB has no %(name)s parameters. execute() substitutes them with the server
    client's own substitute_params(), so both engines get the same literals.
    """

    def __init__(self, session, server: Client):
        self.session = session
        self.server = server

    def execute(self, query: str, params: dict | list | tuple | None = None) -> list[tuple[Any, ...]] | int:
        if isinstance(params, (list, tuple)):
            return self._insert(query, params)
        if params:
            query = self.server.substitute_params(query, params, self.server.connection.context)
        result = self.session.query(query, "JSONCompact")
        return parse_json_compact(result.bytes())

    def _insert(self, query: str, rows: list | tuple) -> int:
        if not query.rstrip().upper().endswith("VALUES"):
            raise ValueError(f"rows were given, but the query does not end with VALUES: {query}")
        if not rows:
            return 0
        values = ", ".join("(" + ", ".join(sql_literal(value) for value in row) + ")" for row in rows)
        self.session.query(f"{query} {values}")
        return len(rows)

    def disconnect(self) -> None:
        pass  # the fixture closes the session


# ---------------------------------------------------------------------------
# Events: three days in two months, three countries (one with a quote and a non-ASCII
# letter), a guest order, a cancellation, a 3-decimal unit price and millisecond
# timestamps that DateTime truncates to the second.


def event_id(name: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"https://example.org/cie-compat/{name}")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


FIRST_BATCH = [
    CustomerRegistered(event_id=event_id("customer-12347"), occurred_at=at("2011-01-01T08:00:00+00:00"),
                       customer_id="12347", country="Iceland", source="import:online_retail"),
    ProductUpserted(event_id=event_id("product-84879"), occurred_at=at("2011-01-01T08:00:01+00:00"),
                    product_id="84879", description="ASSORTED COLOUR BIRD ORNAMENT", unit_price=Decimal("1.695"),
                    source="import:online_retail"),
    OrderPlaced(event_id=event_id("order-536365"), occurred_at=at("2011-01-02T10:15:30.250+00:00"),
                customer_id="12347", order_id="536365", country="Iceland", source="import:online_retail",
                lines=[OrderLine(line_number=1, product_id="85123A", quantity=6, unit_price=Decimal("2.55")),
                       OrderLine(line_number=2, product_id="84879", quantity=32, unit_price=Decimal("1.695")),
                       OrderLine(line_number=3, product_id="22423", quantity=2, unit_price=Decimal("12.75"))]),
    OrderPlaced(event_id=event_id("order-536366"), occurred_at=at("2011-01-02T23:59:59.999+00:00"),
                customer_id=None, order_id="536366", country="France", source="import:online_retail",
                lines=[OrderLine(line_number=1, product_id="85123A", quantity=4, unit_price=Decimal("2.95")),
                       OrderLine(line_number=2, product_id="POST", quantity=1, unit_price=Decimal("18"))]),
]

SECOND_BATCH = [
    # 00:30 at UTC+02:00 is still 3 January in UTC, the day the projection buckets by.
    OrderCancelled(event_id=event_id("order-C536365"), occurred_at=at("2011-01-04T00:30:00+02:00"),
                   customer_id="12347", order_id="C536365", cancelled_order_id="536365", country="Iceland",
                   source="import:online_retail",
                   lines=[OrderLine(line_number=1, product_id="22423", quantity=1, unit_price=Decimal("12.75"))]),
    OrderPlaced(event_id=event_id("order-540001"), occurred_at=at("2011-02-14T12:00:00+00:00"),
                customer_id="12583", order_id="540001", country="Côte d'Ivoire", source="api",
                lines=[OrderLine(line_number=1, product_id="84879", quantity=12, unit_price=Decimal("1.695")),
                       OrderLine(line_number=2, product_id="85123A", quantity=1, unit_price=Decimal("0"))]),
    SentimentScored(event_id=event_id("score-1"), occurred_at=at("2011-02-14T12:00:00+00:00"), customer_id="12583",
                    source="sentiment-scorer", source_event_id=event_id("review-1"),
                    source_event_type="review.submitted", product_id="84879", score=-0.734215, label="negative",
                    confidence=0.91, model_name="test-model", model_version="1", excerpt="Broke in a week."),
    SentimentScored(event_id=event_id("score-2"), occurred_at=at("2011-02-14T18:00:00+00:00"), customer_id="12347",
                    source="sentiment-scorer", source_event_id=event_id("message-1"),
                    source_event_type="support.message_sent", score=0.5, label="positive",
                    confidence=0.7, model_name="test-model", model_version="1", excerpt="Thanks, all sorted."),
]

# Never written to either database, so every look-up must leave it out.
UNSTORED_ORDER = OrderPlaced(
    event_id=event_id("order-999999"), occurred_at=at("2011-01-02T11:00:00+00:00"), customer_id="12347",
    order_id="999999", country="Iceland", source="api",
    lines=[OrderLine(line_number=1, product_id="85123A", quantity=1, unit_price=Decimal("2.55"))],
)

PARTITIONS = 3


def log_records(models: list, next_offsets: dict[tuple[str, int], int]) -> list[LogRecord]:
    """Encode events as Kafka records, routed as the importer routes them.

    next_offsets maps (topic, partition) to the offset of the next record and is updated.
    """
    topics = Topics.from_settings(Settings())
    records = []
    for model in models:
        record = model.to_record(received_at=RECEIVED_AT)
        topic, key = route_event(topics, record)
        partition = sum(key) % PARTITIONS
        offset = next_offsets.get((topic, partition), 0)
        next_offsets[(topic, partition)] = offset + 1
        records.append(LogRecord(topic, partition, offset, key, encode_event(record)))
    return records


def decoded(records: list[LogRecord]) -> list[EventRecord]:
    events, rejected = decode_records(records)
    assert not rejected, f"test events were rejected: {rejected}"
    return events


# ---------------------------------------------------------------------------
# Fixtures


@dataclass
class Engines:
    database: str
    server: Client
    chdb: ChdbClient
    fresh_counts: dict[str, list[int]]  # engine -> return values of apply(), one per batch

    def both(self) -> dict[str, Client | ChdbClient]:
        return {"server": self.server, "chdb": self.chdb}


@pytest.fixture(scope="module")
def server() -> Iterator[Client]:
    settings = Settings()
    client = clickhouse.client(settings)
    try:
        client.execute("SELECT 1")
    except (ClickHouseError, OSError) as error:
        pytest.fail(f"cannot connect to the ClickHouse server at {settings.clickhouse_host}:{settings.clickhouse_port} "
                    f"as {settings.clickhouse_user!r}: {error}. Start it with `make up`, or point CLICKHOUSE_HOST "
                    "and CLICKHOUSE_PORT at a running server.", pytrace=False)
    yield client
    client.disconnect()


@pytest.fixture(scope="module")
def engines(server: Client) -> Iterator[Engines]:
    database = f"cie_compat_{uuid4().hex[:12]}"
    data_path = tempfile.mkdtemp(prefix="cie-chdb-")
    session = chdb_session.Session(data_path)  # on disk like the server, rather than ":memory:"
    engines = Engines(database, server, ChdbClient(session, server), {"server": [], "chdb": []})

    try:
        for client in engines.both().values():
            client.execute(f"CREATE DATABASE {database}")
            for statement in clickhouse.ddl_statements(database):
                client.execute(statement)

        offsets: dict[tuple[str, int], int] = {}
        first = log_records(FIRST_BATCH, offsets)
        second = log_records(SECOND_BATCH, offsets)

        # The first batch is delivered again, as after a crash before the Kafka commit,
        # so the look-ups must skip all of it.
        for name, client in engines.both().items():
            projection = AnalyticsProjection(client, database)
            for batch in (first, second, first):
                engines.fresh_counts[name].append(projection.apply(decoded(batch), batch))
            client.execute(f"INSERT INTO {database}.projection_offsets VALUES",
                           [("profiles", "cie.customer-events", 0, 99)])

        yield engines

    finally:
        server.execute(f"DROP DATABASE IF EXISTS {database}")
        session.query(f"DROP DATABASE IF EXISTS {database}")
        session.close()
        shutil.rmtree(data_path, ignore_errors=True)


# ---------------------------------------------------------------------------
# Comparison

# Text of a number, as toString() prints a Decimal: 18.16 prints '40.500' where 26.x prints
# '40.5'. Product ids such as '84879' match too, which is harmless because both sides convert alike.
NUMBER_TEXT = re.compile(r"-?\d+(\.\d+)?")


def normalise(value: Any) -> Any:
    if isinstance(value, str) and NUMBER_TEXT.fullmatch(value):
        return Decimal(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        assert value.tzinfo is not None, f"naive datetime {value} in a result; DateTime columns here are UTC"
        return value.astimezone(UTC)
    return value


def normalise_rows(rows) -> list[tuple[Any, ...]]:
    return [tuple(normalise(value) for value in row) for row in rows]


def run_both(engines: Engines, query: str, params: dict | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Run one query on both engines and return the normalised rows of each."""
    return {name: normalise_rows(client.execute(query, params)) for name, client in engines.both().items()}


# ---------------------------------------------------------------------------
# Tests


def test_schema_columns_match(engines):
    query = ("SELECT table, name, type FROM system.columns WHERE database = %(database)s "
             "ORDER BY table, name")

    rows = run_both(engines, query, {"database": engines.database})

    assert len(rows["server"]) == 67  # 51 in the six tables, 8 in each materialized view
    assert rows["chdb"] == rows["server"]


def test_apply_fresh_counts(engines):
    counts = engines.fresh_counts

    assert counts["server"] == [4, 4, 0]
    assert counts["chdb"] == counts["server"]


@pytest.mark.parametrize("index", range(len(CLICKHOUSE_QUERIES)))
def test_checksum_query(engines, index):
    query = CLICKHOUSE_QUERIES[index].format(db=engines.database)

    rows = run_both(engines, query)

    assert rows["server"]
    assert rows["chdb"] == rows["server"]


REVENUE_CASES = {
    "all_days": ("day", None, None, None),
    "all_months": ("month", None, None, None),
    "january_iceland": ("day", date(2011, 1, 2), date(2011, 1, 31), "Iceland"),
    "one_day_france": ("month", date(2011, 1, 2), date(2011, 1, 2), "France"),
}


@pytest.mark.parametrize("case", REVENUE_CASES)
def test_revenue(engines, case):
    granularity, start, end, country = REVENUE_CASES[case]
    where, params = queries.sales_filters(start, end, country)
    period = queries.REVENUE_PERIODS[granularity]
    query = queries.REVENUE.format(db=engines.database, period=period, where=where)

    rows = run_both(engines, query, params)

    assert rows["server"]
    assert rows["chdb"] == rows["server"]


TOP_PRODUCTS_CASES = {
    "by_revenue": ("revenue", None, None, None, 10),
    "by_units": ("units", None, None, None, 10),
    "by_units_limit_2": ("units", None, None, None, 2),
    "france_january": ("revenue", date(2011, 1, 1), date(2011, 1, 31), "France", 10),
    "quoted_country": ("units", date(2011, 2, 1), date(2011, 2, 28), "Côte d'Ivoire", 10),
}


@pytest.mark.parametrize("case", TOP_PRODUCTS_CASES)
def test_top_products(engines, case):
    by, start, end, country, limit = TOP_PRODUCTS_CASES[case]
    where, params = queries.sales_filters(start, end, country)
    params["limit"] = limit
    query = queries.TOP_PRODUCTS.format(db=engines.database, where=where, order=queries.TOP_PRODUCTS_ORDER[by])

    rows = run_both(engines, query, params)

    assert rows["server"]
    assert rows["chdb"] == rows["server"]


def test_summary_events_by_type(engines):
    query = queries.SUMMARY_EVENTS_BY_TYPE.format(db=engines.database)

    rows = run_both(engines, query)

    # No ORDER BY: the route turns the rows into a dict.
    assert len(rows["server"]) == 5
    assert sorted(rows["chdb"]) == sorted(rows["server"])


@pytest.mark.parametrize("query", [queries.SUMMARY_EVENT_TIMES, queries.SUMMARY_NET_REVENUE])
def test_summary_totals(engines, query):
    rows = run_both(engines, query.format(db=engines.database))

    assert rows["server"]
    assert rows["chdb"] == rows["server"]


def test_product_sales(engines):
    query = queries.PRODUCT_SALES.format(db=engines.database)

    rows = run_both(engines, query, {"product_id": "85123A"})

    assert rows["server"][0][-1] == 3
    assert rows["chdb"] == rows["server"]


def test_product_sales_unsold(engines):
    query = queries.PRODUCT_SALES.format(db=engines.database)

    rows = run_both(engines, query, {"product_id": "NO-SUCH-PRODUCT"})

    # Over no rows, min(day) prints '0000-00-00' on 18.16 and '1970-01-01' on 26.x. The
    # route ignores both days when sum(order_lines) is 0, so only the sums are compared.
    sums = {name: row[0][:3] + row[0][5:] for name, row in rows.items()}
    assert sums["server"] == (0, 0, 0, 0)
    assert sums["chdb"] == sums["server"]


def test_stored_order_events(engines):
    events = decoded(log_records([*FIRST_BATCH, *SECOND_BATCH, UNSTORED_ORDER], {}))
    orders = [item for item in events if item.event_type.startswith("order.")]
    expected = {item.event_id for item in orders if item.event_id != str(UNSTORED_ORDER.event_id)}

    stored = {name: AnalyticsProjection(client, engines.database)._stored_ids("order_lines", orders)
              for name, client in engines.both().items()}

    assert stored["server"] == expected
    assert stored["chdb"] == stored["server"]


def test_stored_events(engines):
    ids = [str(event_id("customer-12347")), str(event_id("order-C536365")), str(UNSTORED_ORDER.event_id)]

    stored = {name: AnalyticsProjection(client, engines.database)._stored_events(ids)
              for name, client in engines.both().items()}

    assert stored["server"] == set(ids[:2])
    assert stored["chdb"] == stored["server"]


def test_applied_offsets(engines):
    offsets = {name: applied_offsets(client, engines.database) for name, client in engines.both().items()}

    assert offsets["server"]
    assert offsets["chdb"] == offsets["server"]
