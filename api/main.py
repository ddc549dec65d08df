"""FastAPI application: ``uvicorn api.main:app``."""

import logging
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from api import problems
from api.auth import AUTH_RESPONSES, require_scope
from api.routes import analytics, customers, erasure, events, health, products, recommendations, sentiment
from api.stores import Stores
from cie.settings import get_settings

log = logging.getLogger(__name__)


def create_app() -> FastAPI:
    settings = get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.stores = Stores(settings)
        app.state.stores.open()
        log.info("API serving PostgreSQL schema %s and ClickHouse database %s",
                 settings.postgres_schema, settings.clickhouse_database)
        yield
        app.state.stores.close()

    app = FastAPI(
        title="Customer Insight API",
        version="1",
        description=("Customer profiles, sentiment and analytics, read from the projections; new events, accepted only "
                     "by producing them to Kafka; and erasure of a customer's personal data."),
        lifespan=lifespan,
    )
    problems.install(app)
    # Every router but health needs an API key with the router's scope (admin passes everywhere); see api/auth.py.
    app.include_router(health.router)
    scoped = [(customers, "profiles:read"), (products, "profiles:read"), (sentiment, "profiles:read"),
              (recommendations, "profiles:read"), (analytics, "analytics:read"), (events, "events:write"),
              (erasure, "admin")]
    for module, scope in scoped:
        app.include_router(module.router, dependencies=[Depends(require_scope(scope))], responses=AUTH_RESPONSES)
    return app


app = create_app()
