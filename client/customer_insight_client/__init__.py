"""Python client of the Customer Insight API.

>>> from customer_insight_client import CustomerInsightAPI
>>> with CustomerInsightAPI(os.environ["CIE_API_KEY"]) as api:  # doctest: +SKIP
...     print(api.get_customer("12347").net_revenue)
"""

from customer_insight_client._base import DEFAULT_BASE_URL, VERSION as __version__
from customer_insight_client.async_client import AsyncCustomerInsightAPI
from customer_insight_client.client import CustomerInsightAPI
from customer_insight_client.errors import (
    APIError,
    CustomerInsightError,
    FieldError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
    UnauthorizedError,
    UnexpectedResponseError,
    ValidationError,
)
from customer_insight_client.events import (
    CustomerRegistered,
    CustomerTraitsUpdated,
    EventModel,
    OrderCancelled,
    OrderLine,
    OrderPlaced,
    ProductUpserted,
    ReviewSubmitted,
    SupportMessageSent,
)
from customer_insight_client.retry import RetryPolicy

__all__ = [
    "APIError", "AsyncCustomerInsightAPI", "CustomerInsightAPI", "CustomerInsightError", "CustomerRegistered",
    "CustomerTraitsUpdated", "DEFAULT_BASE_URL", "EventModel", "FieldError", "ForbiddenError", "NotFoundError",
    "OrderCancelled", "OrderLine", "OrderPlaced", "ProductUpserted", "RateLimitedError", "RetryPolicy",
    "ReviewSubmitted", "ServerError", "SupportMessageSent", "TransportError", "UnauthorizedError",
    "UnexpectedResponseError", "ValidationError", "__version__",
]
