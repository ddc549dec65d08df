"""Fixtures that give each test its own topics, schema, database and consumer group on the real services.

Every namespace is named ``t<run>_<label>``; the tests never touch the demo's
data. The services come from the same environment variables as the product
(``make test`` starts them).
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from cie.apikeys import create_api_key, create_table
from cie.crypto.master import ensure_key_file
from cie.kafka import ensure_topics
from cie.recommend.keys import RecoKeys, delete_recommender_keys
from cie.settings import WORKER_ROLES, Settings, consumer_group_for
from cie.topics import Topics
from projections import clickhouse, postgres
from projections.offsets import projection_lags
from projections.wiring import create_stores

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
RETAIL_SAMPLE = FIXTURES / "online_retail"
SHARED_RETAIL = REPO.parent / "shared" / "data" / "online_retail"
RUN_ID = uuid.uuid4().hex[:6]
CIE = str(Path(sys.executable).parent / "cie")

# The tests, like the local stack, use the master key in $CIE_DATA_DIR/master.key unless CIE_MASTER_KEY is set.
if not os.environ.get("CIE_MASTER_KEY"):
    os.environ["CIE_MASTER_KEY"] = ensure_key_file(Path(os.environ.get("CIE_DATA_DIR", REPO / ".data")) / "master.key")


@dataclass
class Worker:
    """The ``cie worker`` subprocesses of one namespace: one per role (projections, scorer, recommender)."""

    processes: list[subprocess.Popen]
    log_paths: list[Path]

    def running(self) -> bool:
        return all(process.poll() is None for process in self.processes)

    def stop(self, timeout: float = 60.0) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def kill(self) -> None:
        """SIGKILL every process: no shutdown code runs, as in a crash."""
        for process in self.processes:
            process.kill()
        for process in self.processes:
            process.wait()

    def log(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in self.log_paths)


@dataclass
class Namespace:
    """Topics, PostgreSQL schema, ClickHouse database and consumer group for one test."""

    name: str
    settings: Settings
    env: dict[str, str]
    tmp: Path
    workers: list[Worker] = field(default_factory=list)

    @property
    def topics(self) -> Topics:
        return Topics.from_settings(self.settings)

    def start_worker(self, roles: tuple[str, ...] = WORKER_ROLES, loglevel: str = "warn") -> Worker:
        processes, log_paths = [], []
        for role in roles:
            log_path = self.tmp / f"{role}-{len(self.workers)}.log"
            processes.append(subprocess.Popen([CIE, "worker", "--role", role, "--loglevel", loglevel], env=self.env,
                                              cwd=REPO, stdout=log_path.open("w"), stderr=subprocess.STDOUT))
            log_paths.append(log_path)
        worker = Worker(processes, log_paths)
        self.workers.append(worker)
        return worker

    def run_cli(self, *args: str, timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([CIE, "--quiet", *args], env={**self.env, **(env or {})}, cwd=REPO, capture_output=True,
                              text=True, timeout=timeout)

    def api_key(self, scopes: list[str] | str = "admin", **kw) -> str:
        """Create an API key in this namespace's schema and return its bearer token.

        ``kw`` goes to create_api_key: name, expires_at, rate_per_second, burst.
        """
        scopes = [scopes] if isinstance(scopes, str) else list(scopes)
        kw.setdefault("name", f"test-{'-'.join(scopes)}")
        return create_api_key(self.settings, scopes=scopes, **kw).secret

    def wait_caught_up(self, timeout: float = 300.0) -> None:
        """Wait until every projection has lag 0; fail early if every worker has exited."""
        deadline = time.monotonic() + timeout
        while True:
            lags = projection_lags(self.settings)
            if all(lag.lag == 0 for lag in lags):
                return
            running = [worker for worker in self.workers if worker.running()]
            if not running or time.monotonic() > deadline:
                logs = "\n".join(worker.log()[-3000:] for worker in self.workers)
                state = "no worker is running" if not running else f"still behind after {timeout} s"
                raise AssertionError(f"projections of {self.name}: {state} ({lags}); worker logs:\n{logs}")
            time.sleep(0.5)

    def cleanup(self) -> None:
        for worker in self.workers:
            worker.stop()
        postgres.drop_schema(self.settings, self.settings.postgres_schema)
        postgres.drop_schema(self.settings, f"{self.settings.postgres_schema}_replay")
        clickhouse.drop_database(self.settings, self.settings.clickhouse_database)
        clickhouse.drop_database(self.settings, f"{self.settings.clickhouse_database}_replay")
        admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap_servers})
        topics = self.topics
        names = [*topics.event_topics, topics.dead_letter, topics.import_ledger]
        for future in admin.delete_topics(names, operation_timeout=30).values():
            try:
                future.result()
            except Exception:  # a topic the test never created
                pass
        groups = [consumer_group_for(self.settings, role) for role in WORKER_ROLES]
        for future in admin.delete_consumer_groups(groups).values():
            try:
                future.result()
            except Exception:  # the group never committed
                pass
        clear_recommender(self.settings)


def clear_recommender(settings: Settings) -> None:
    """Delete every Redis key of the namespace's recommender: checkpoint, lists, lock."""
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    try:
        delete_recommender_keys(client, RecoKeys.from_settings(settings))
    finally:
        client.close()


def make_namespace(label: str, tmp: Path) -> Namespace:
    name = f"t{RUN_ID}_{label}"
    overrides = {
        "CIE_TOPIC_PREFIX": name,
        "CIE_POSTGRES_SCHEMA": name,
        "CIE_CLICKHOUSE_DATABASE": name,
        "CIE_CONSUMER_GROUP": f"{name}-streams",
        "CIE_TOPIC_PARTITIONS": "3",
        "CIE_BATCH_SECONDS": "0.2",
        "CIE_CONSUMER_SESSION_TIMEOUT": "6",
    }
    env = {**os.environ, **overrides}
    settings = Settings(**overrides)
    ensure_topics(settings)
    create_stores(settings)
    create_table(settings)
    return Namespace(name, settings, env, tmp)


@pytest.fixture
def namespace(request, tmp_path):
    """A fresh namespace for one test, removed afterwards."""
    label = request.node.name.replace("test_", "")[:20].lower()
    label = "".join(char if char.isalnum() else "_" for char in label)
    space = make_namespace(label, tmp_path)
    yield space
    space.cleanup()


@pytest.fixture(scope="module")
def retail_pipeline(tmp_path_factory):
    """A namespace with the retail sample imported and fully projected, shared by a module's tests."""
    tmp = tmp_path_factory.mktemp("retail")
    space = make_namespace(f"m{uuid.uuid4().hex[:4]}", tmp)
    space.start_worker()
    result = space.run_cli("import-retail", "--data-dir", str(RETAIL_SAMPLE))
    assert result.returncode == 0, result.stderr
    space.wait_caught_up()
    yield space
    space.cleanup()


def wait_until(condition, timeout: float = 30.0, interval: float = 0.2, message: str = "condition"):
    """Poll ``condition`` until it returns a truthy value; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")
