"""Read a customer, its sentiment and recommendations, score two texts, send an event, handle a missing customer.

Against the API that `make demo` leaves running:

    export CIE_API_KEY=$(cat .data/demo-api-key)
    .venv/bin/python client/examples/quickstart.py
"""

import os
from datetime import datetime, timezone

from customer_insight_client import CustomerInsightAPI, NotFoundError

api_key = os.environ["CIE_API_KEY"]
base_url = os.environ.get("CIE_API_URL", "http://127.0.0.1:8000")

with CustomerInsightAPI(api_key, base_url=base_url) as api:
    customer = api.get_customer("12347")
    print(f"customer {customer.customer_id} in {customer.country}: "
          f"{customer.order_count} orders, net revenue {customer.net_revenue}")

    sentiment = api.get_customer_sentiment("12347")
    if sentiment.score is None:
        print("sentiment: no scored texts yet")
    else:
        print(f"sentiment: {sentiment.label} ({sentiment.score:+.2f} over {sentiment.scored_count} texts)")

    recommendations = api.get_recommendations("12347", limit=5)
    for item in recommendations.items:
        print(f"recommended {item.product_id} {item.name}: {item.reason} (score {item.score:.2f})")

    analysis = api.analyze_sentiment(["Arrived quickly and works perfectly.", "Broken on arrival, very disappointed."])
    for result in analysis.results:
        print(f"analyzed: {result.label} ({result.score:+.2f})")

    # The fixed event_id makes the event idempotent: running this script again sends it again,
    # and the platform counts it once. Without an event_id the client adds a random one.
    accepted = api.send_event({
        "event_type": "support.message_sent",
        "event_id": "5b0c7f3e-8a43-4d6e-9c1f-3f1f6f0a2b7d",
        "customer_id": "12347",
        "ticket_id": "quickstart-1",
        "channel": "email",
        "text": "Thanks, the order arrived quickly and everything was in perfect condition.",
        "occurred_at": datetime(2011, 12, 9, 12, 0, tzinfo=timezone.utc),
    })
    print(f"event accepted: {accepted.event_ids[0]}")

    try:
        api.get_customer("00000")
    except NotFoundError as error:
        print(f"not found: {error.detail}")
