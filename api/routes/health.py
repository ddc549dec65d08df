"""Liveness and readiness."""

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from api.routes.deps import get_stores
from api.stores import Stores

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="PostgreSQL, ClickHouse, Kafka and Redis answer")
def readyz(stores: Stores = Depends(get_stores)):
    checks: dict[str, str] = {}
    try:
        with stores.postgres.connection(timeout=2) as conn:
            conn.execute("SELECT 1")
        checks["postgres"] = "ok"
    except Exception as error:
        checks["postgres"] = f"failed: {type(error).__name__}"
    try:
        with stores.clickhouse() as client:
            client.execute("SELECT 1")
        checks["clickhouse"] = "ok"
    except Exception as error:
        checks["clickhouse"] = f"failed: {type(error).__name__}"
    try:
        stores.producer.list_topics(timeout=2)
        checks["kafka"] = "ok"
    except Exception as error:
        checks["kafka"] = f"failed: {type(error).__name__}"
    try:
        stores.redis.ping()
        checks["redis"] = "ok"
    except Exception as error:
        checks["redis"] = f"failed: {type(error).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503)
