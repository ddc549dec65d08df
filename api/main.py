"""FastAPI application: ``uvicorn api.main:app``."""

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import problems
from api.routes import analytics, customers, events, health, products, recommendations, sentiment
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
        description="Read-only views of customer profiles and analytics; events are accepted and produced to Kafka.",
        lifespan=lifespan,
    )
    problems.install(app)
    for module in (health, customers, products, analytics, events, sentiment, recommendations):
        app.include_router(module.router)
    return app


app = create_app()
