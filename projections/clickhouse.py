"""ClickHouse connections and schema set-up for the analytics projection."""

from pathlib import Path

from clickhouse_driver import Client

from cie.settings import Settings

SQL_DIR = Path(__file__).resolve().parent / "sql"


def client(settings: Settings) -> Client:
    return Client(
        settings.clickhouse_host,
        port=settings.clickhouse_port,
        user=settings.clickhouse_user,
        password=settings.clickhouse_password,
        settings={"use_numpy": False},
    )


def ddl_statements(database: str) -> list[str]:
    """Return the statements of clickhouse.sql for one database, comments stripped."""
    text = (SQL_DIR / "clickhouse.sql").read_text(encoding="utf-8")
    lines = [line.split("--", 1)[0].rstrip() for line in text.splitlines()]
    statements = "\n".join(lines).replace("{db}", database).split(";")
    return [statement.strip() for statement in statements if statement.strip()]


def create_database(settings: Settings, database: str | None = None) -> None:
    database = database or settings.clickhouse_database
    ch = client(settings)
    ch.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    for statement in ddl_statements(database):
        ch.execute(statement)


def drop_database(settings: Settings, database: str) -> None:
    client(settings).execute(f"DROP DATABASE IF EXISTS {database}")
