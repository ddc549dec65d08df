"""Event intake: validate, seal personal fields, produce to Kafka, return 202. Never writes a projection."""

import asyncio
from datetime import datetime, timezone
from typing import Annotated
from uuid import UUID

from confluent_kafka import KafkaException
from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, Field

from api.problems import Problem
from api.routes.deps import get_stores
from api.stores import Stores
from cie.crypto.events import seal_records
from cie.topics import Topics, route_event
from schemas.codec import encode_event
from schemas.events import Event

router = APIRouter(prefix="/v1", tags=["events"])

MAX_BATCH = 500
DELIVERY_TIMEOUT = 10.0  # seconds to wait for Kafka to acknowledge


class Accepted(BaseModel):
    event_ids: list[UUID]


class EventBatch(BaseModel):
    events: list[Event] = Field(min_length=1, max_length=MAX_BATCH)


async def _produce(stores: Stores, events: list) -> list[UUID]:
    """Seal and produce the events; reject the whole request with 410 if any customer is erased."""
    received_at = datetime.now(timezone.utc)
    records = [event.to_record(received_at) for event in events]

    # Reload these customers' keys, so that an erasure applied by the worker a moment ago is seen now
    # and not after the key cache expires.
    stores.keyring.forget({record["customer_id"] for record in records if record.get("customer_id")})
    batch = await asyncio.to_thread(seal_records, stores.keyring, records)
    if batch.erased:
        erased = sorted({record["customer_id"] for record in batch.erased})
        raise Problem(410, "Customer erased",
                      f"customer {erased[0]} was erased and accepts no new events; nothing was produced",
                      "customer-erased", customer_ids=erased)
    await produce_records(stores, batch.records)
    return [event.event_id for event in events]


async def produce_records(stores: Stores, records: list[dict]) -> None:
    """Produce event records to their topics and wait for Kafka; raise a 503 problem if any delivery failed."""
    topics = Topics.from_settings(stores.settings)
    loop = asyncio.get_running_loop()
    futures = []
    for record in records:
        topic, key = route_event(topics, record)
        future = loop.create_future()

        def on_delivery(error, message, future=future):
            loop.call_soon_threadsafe(future.set_result, error)

        stores.producer.produce(topic, key=key, value=encode_event(record), on_delivery=on_delivery)
        futures.append(future)
    await asyncio.to_thread(stores.producer.flush, DELIVERY_TIMEOUT)
    try:
        errors = await asyncio.wait_for(asyncio.gather(*futures), timeout=DELIVERY_TIMEOUT)
    except (asyncio.TimeoutError, KafkaException) as error:
        raise Problem(503, "Kafka unavailable", f"events were not acknowledged by Kafka: {error}", "kafka-unavailable",
                      headers={"Retry-After": "5"}) from error
    failed = [str(error) for error in errors if error is not None]
    if failed:
        raise Problem(503, "Kafka unavailable", f"{len(failed)} of {len(records)} events failed: {failed[0]}",
                      "kafka-unavailable", headers={"Retry-After": "5"})


@router.post("/events", status_code=202, response_model=Accepted, summary="Send one event")
async def post_event(event: Annotated[Event, Body()], stores: Stores = Depends(get_stores)):
    return {"event_ids": await _produce(stores, [event])}


@router.post("/events:batch", status_code=202, response_model=Accepted, summary=f"Send up to {MAX_BATCH} events")
async def post_events(batch: EventBatch, stores: Stores = Depends(get_stores)):
    return {"event_ids": await _produce(stores, batch.events)}
