"""Settings read from the environment, with defaults that match the local stack.

The same variables point the code at external clusters, so nothing here names a
host other than loopback by default.
"""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    postgres_dsn: str = "postgresql://cie:cie@127.0.0.1:5432/cie"
    redis_url: str = "redis://127.0.0.1:6379/0"
    clickhouse_host: str = "127.0.0.1"
    clickhouse_port: int = 9000
    clickhouse_user: str = "default"
    clickhouse_password: str = ""

    # Every name below can be changed per deployment, and tests use their own
    # values so that they never touch the demo's topics and tables.
    topic_prefix: str = Field("cie", alias="CIE_TOPIC_PREFIX")
    topic_partitions: int = Field(6, alias="CIE_TOPIC_PARTITIONS", ge=1)
    topic_replication_factor: int = Field(1, alias="CIE_TOPIC_REPLICATION_FACTOR", ge=1)
    postgres_schema: str = Field("cie", alias="CIE_POSTGRES_SCHEMA", pattern=r"^[a-z_][a-z0-9_]*$")
    clickhouse_database: str = Field("cie", alias="CIE_CLICKHOUSE_DATABASE", pattern=r"^[a-z_][a-z0-9_]*$")
    consumer_group: str = Field("cie-streams", alias="CIE_CONSUMER_GROUP")

    api_host: str = Field("127.0.0.1", alias="CIE_API_HOST")
    api_port: int = Field(8000, alias="CIE_API_PORT")
    worker_web_port: int = Field(6066, alias="CIE_WORKER_WEB_PORT")
    data_dir: Path = Field(REPO_ROOT / ".data", alias="CIE_DATA_DIR")

    # Token bucket of each API key that sets no rate of its own: refill rate in requests per second, and capacity.
    rate_limit_per_second: float = Field(50.0, alias="CIE_RATE_LIMIT_PER_SECOND", gt=0)
    rate_limit_burst: int = Field(100, alias="CIE_RATE_LIMIT_BURST", ge=1)
    # Bearer token that `cie report` sends; without it the report reads $CIE_DATA_DIR/demo-api-key.
    api_key: str | None = Field(None, alias="CIE_API_KEY", repr=False)

    # A crashed worker's partitions move to another worker after this many seconds.
    consumer_session_timeout: float = Field(30.0, alias="CIE_CONSUMER_SESSION_TIMEOUT", ge=6)
    batch_size: int = Field(1000, alias="CIE_BATCH_SIZE", ge=1)
    batch_seconds: float = Field(0.5, alias="CIE_BATCH_SECONDS", gt=0)

    # Personal data: base64 of the 32-byte master key that wraps every customer's data key
    # (cie/crypto/master.py), and the in-memory cache of unwrapped data keys.
    master_key: SecretStr | None = Field(None, alias="CIE_MASTER_KEY")
    key_cache_size: int = Field(100_000, alias="CIE_KEY_CACHE_SIZE", ge=1)
    key_cache_seconds: float = Field(60.0, alias="CIE_KEY_CACHE_SECONDS", ge=0)


@lru_cache
def get_settings() -> Settings:
    return Settings()


def consumer_group_for(settings: Settings, role: str) -> str:
    """Consumer group of a worker role: the projections use CIE_CONSUMER_GROUP, the scorer its own."""
    return settings.consumer_group if role == "projections" else f"{settings.consumer_group}-{role}"
