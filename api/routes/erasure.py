"""Erasure of a customer's personal data: ``DELETE /v1/customers/{id}`` produces a customer.erased event.

The route produces the event and destroys the customer's data key at once, so
that the next event request for the customer gets 410. The projection worker
destroys the key again (idempotent) and clears the personal fields of the
projections when it applies the event (projections/erasure.py), usually within
a second.
"""

import asyncio
import logging
from datetime import datetime, timezone
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Response
from psycopg import sql
from pydantic import BaseModel

from api.problems import not_found
from api.routes.deps import get_stores
from api.routes.events import produce_records
from api.stores import Stores
from cie.crypto.keyring import destroy_keys, key_table
from schemas.events import CustomerErased

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/customers", tags=["erasure"])


class ErasureAccepted(BaseModel):
    customer_id: str
    event_id: UUID  # id of the customer.erased event
    already_erased: bool = False  # true when an earlier erasure was applied; event_id is then that erasure's


def _erasure_state(stores: Stores, customer_id: str) -> tuple[bool, UUID | None]:
    """Return whether the customer is known to the projections, and the id of an applied erasure if any."""
    with stores.postgres.connection() as conn:
        known = conn.execute("SELECT 1 FROM customers WHERE customer_id = %s", (customer_id,)).fetchone()
        tombstone = conn.execute(
            sql.SQL("SELECT erasure_event_id FROM {table} WHERE customer_id = %s AND erased_at IS NOT NULL")
            .format(table=key_table(stores.settings.postgres_schema)), (customer_id,)).fetchone()
    return known is not None or tombstone is not None, tombstone["erasure_event_id"] if tombstone else None


@router.delete("/{customer_id}", status_code=202, response_model=ErasureAccepted,
               summary="Erase a customer's personal data (crypto-shredding); ids, counts and aggregates stay",
               responses={200: {"model": ErasureAccepted, "description": "The customer was already erased"},
                          404: {"description": "No customer with this id in the projections"}})
async def erase_customer(
    response: Response,
    customer_id: Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$",
                                     description="Customer id, e.g. 12347")],
    reason: Annotated[str | None, Query(min_length=1, max_length=200,
                                        description="Why, for the audit trail; must not contain personal data")] = None,
    stores: Stores = Depends(get_stores),
):
    # 1. Only a customer the projections know can be erased: an unknown id would
    #    otherwise become an erased customer who can never register.
    known, erasure_event_id = await asyncio.to_thread(_erasure_state, stores, customer_id)
    if not known:
        raise not_found("customer", customer_id)

    # 2. A repeated request returns the applied erasure and produces nothing.
    if erasure_event_id is not None:
        response.status_code = 200
        return {"customer_id": customer_id, "event_id": erasure_event_id, "already_erased": True}

    # 3. Produce the erasure, then destroy the key at once: the next request for this customer
    #    gets 410 without waiting for the worker, which destroys it again (idempotent) when it
    #    applies the event and clears the projections.
    now = datetime.now(timezone.utc)
    event = CustomerErased(customer_id=customer_id, occurred_at=now, reason=reason, source="api")
    await produce_records(stores, [event.to_record(now)])
    await asyncio.to_thread(_destroy_key, stores, customer_id, now, str(event.event_id))
    log.info("erasure event %s produced and its data key destroyed", event.event_id)
    return {"customer_id": customer_id, "event_id": event.event_id}


def _destroy_key(stores: Stores, customer_id: str, erased_at: datetime, event_id: str) -> None:
    with stores.postgres.connection() as conn, conn.transaction(), conn.cursor() as cursor:
        destroy_keys(cursor, stores.settings.postgres_schema, [(customer_id, erased_at, event_id)])
    stores.keyring.forget([customer_id])
