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
    # Recommender worker (streams/recommender.py). Its model state and the offsets it has learned
    # up to are checkpointed to Redis together, every N events or T seconds after the first event
    # that no checkpoint contains, whichever comes first, and once it is idle with every list written.
    reco_checkpoint_events: int = Field(20_000, alias="CIE_RECO_CHECKPOINT_EVENTS", ge=1)
    reco_checkpoint_seconds: float = Field(30.0, alias="CIE_RECO_CHECKPOINT_SECONDS", gt=0)
    reco_idle_checkpoint_seconds: float = Field(0.5, alias="CIE_RECO_IDLE_CHECKPOINT_SECONDS", gt=0)
    # The leader lock's time to live; a standby takes over this long after the leader died.
    reco_leader_ttl: float = Field(10.0, alias="CIE_RECO_LEADER_TTL", ge=1)
    reco_list_size: int = Field(50, alias="CIE_RECO_LIST_SIZE", ge=1, le=500)
    reco_similar_size: int = Field(20, alias="CIE_RECO_SIMILAR_SIZE", ge=1, le=500)
    # Most events learned between two rewrites of the changed customers' lists.
    reco_batch_size: int = Field(2000, alias="CIE_RECO_BATCH_SIZE", ge=1)
    # Maximum time spent learning before the touched customers' lists are written, so that after a
    # pause (a checkpoint, a burst) one long batch does not hold back every purchase in it.
    reco_batch_seconds: float = Field(0.1, alias="CIE_RECO_BATCH_SECONDS", gt=0)
    # Time per loop for the slower work: the factorisation's SGD steps, exact discover lists, trends and
    # similar products. A purchase's buy-again list waits for at most about this long.
    reco_refresh_budget_seconds: float = Field(0.1, alias="CIE_RECO_REFRESH_BUDGET_SECONDS", gt=0)
    # Once caught up after learning at least this many events, rewrite every customer's lists, every
    # country's trend and every product's similar list. Lists of customers without new events then
    # follow the model too, because their scores age and trends and neighbours move.
    reco_sweep_events: int = Field(1000, alias="CIE_RECO_SWEEP_EVENTS", ge=1)


# Worker roles: each is a consumer group of its own (consumer_group_for). The first two are Faust
# apps (streams/app.py); the recommender is a plain Kafka consumer (streams/recommender.py).
WORKER_ROLES = ("projections", "scorer", "recommender")


@lru_cache
def get_settings() -> Settings:
    return Settings()


def consumer_group_for(settings: Settings, role: str) -> str:
    """Consumer group of a worker role: the projections use CIE_CONSUMER_GROUP, the others ``<group>-<role>``."""
    return settings.consumer_group if role == "projections" else f"{settings.consumer_group}-{role}"
