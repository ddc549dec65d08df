"""Erasure of a customer's personal data: ``DELETE /v1/customers/{id}`` produces a customer.erased event.

The route only produces the event. The projection worker destroys the
customer's data key and clears the personal fields of the projections when it
applies the event (projections/erasure.py), usually within a second.
"""

from datetime import datetime, timezone
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel

from api.routes.deps import get_stores
from api.routes.events import produce_records
from api.stores import Stores
from schemas.events import CustomerErased

router = APIRouter(prefix="/v1/customers", tags=["erasure"])


class ErasureAccepted(BaseModel):
    customer_id: str
    event_id: UUID  # id of the customer.erased event


@router.delete("/{customer_id}", status_code=202, response_model=ErasureAccepted,
               summary="Erase a customer's personal data (crypto-shredding); ids, counts and aggregates stay")
async def erase_customer(
    customer_id: Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$",
                                     description="Customer id, e.g. 12347")],
    reason: Annotated[str | None, Query(min_length=1, max_length=200,
                                        description="Why, for the audit trail; must not contain personal data")] = None,
    stores: Stores = Depends(get_stores),
):
    # Repeating the request is harmless: the projections keep the first erasure's time.
    now = datetime.now(timezone.utc)
    event = CustomerErased(customer_id=customer_id, occurred_at=now, reason=reason, source="api")
    await produce_records(stores, [event.to_record(now)])
    return {"customer_id": customer_id, "event_id": event.event_id}
