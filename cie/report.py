"""The demo's closing report: what went through the pipeline, read back over HTTP."""

import json
from pathlib import Path

import httpx

from cie.settings import Settings


class ReportError(Exception):
    pass


def demo_key_path(settings: Settings) -> Path:
    """Return the file where `make demo` keeps its API token (mode 600, in the git-ignored data folder)."""
    return settings.data_dir / "demo-api-key"


def _api_key(settings: Settings, api_key: str | None) -> tuple[str, Path | None]:
    """Return the token to send and the file it came from (None when given directly or by CIE_API_KEY)."""
    if api_key or settings.api_key:
        return api_key or settings.api_key, None
    path = demo_key_path(settings)
    if not path.is_file():
        raise ReportError(f"no API key: set CIE_API_KEY, or create the demo key file {path} with "
                          f"`cie keys create --name demo --scope profiles:read --scope analytics:read "
                          f"--token-file {path}`")
    return path.read_text(encoding="ascii").strip(), path


def _money(value) -> str:
    return f"£{float(value):,.2f}"


def demo_report(settings: Settings, api_url: str | None = None, customer_id: str = "12347",
                reviewer_id: str = "A3OXHLG6DIBRW8", reviewed_product_id: str = "B01AHB9CN2",
                api_key: str | None = None) -> str:
    base = api_url or f"http://{settings.api_host}:{settings.api_port}"
    token, key_file = _api_key(settings, api_key)
    with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
        summary_response = http.get("/v1/analytics/summary")
        if summary_response.status_code in (401, 403):
            source = f"the key in {key_file}" if key_file else "the key in CIE_API_KEY"
            fix = (f"delete {key_file} and run `make demo` again to create a new key" if key_file
                   else "check the key with `cie keys list`")
            raise ReportError(f"the API rejected {source} with {summary_response.status_code}: "
                              f"{summary_response.json().get('detail')}; {fix}")
        summary = summary_response.raise_for_status().json()
        customer = http.get(f"/v1/customers/{customer_id}")
        top = http.get("/v1/analytics/top-products", params={"limit": 5}).raise_for_status().json()
        reviewer = http.get(f"/v1/customers/{reviewer_id}/sentiment", params={"recent": 2})
        product_sentiment = http.get(f"/v1/products/{reviewed_product_id}/sentiment", params={"days": 0})
        recommendations = http.get(f"/v1/customers/{customer_id}/recommendations", params={"limit": 5})

    lines = ["", "Pipeline totals (from ClickHouse and PostgreSQL, through the API)"]
    for event_type, count in sorted(summary["events"].items()):
        lines.append(f"  {event_type:<22} {count:>9,} events")
    lines.append(f"  customers {summary['customers']:,}, products {summary['products']:,}, "
                 f"orders {summary['orders']:,}, cancellations {summary['cancellations']:,}")
    lines.append(f"  net revenue {_money(summary['net_revenue'])}, event time "
                 f"{summary['first_event_at']} to {summary['last_event_at']}")

    lines += ["", f"GET /v1/customers/{customer_id}"]
    if customer.status_code == 200:
        lines.append(json.dumps(customer.json(), indent=2))
    else:
        lines.append(f"  {customer.status_code}: {customer.json().get('detail')}")

    lines += ["", f"Recommendations for customer {customer_id} (GET /v1/customers/{customer_id}/recommendations?limit=5)"]
    if recommendations.status_code == 200:
        body = recommendations.json()
        if body["cold_start"]:
            lines.append(f"  no purchase history: trending products{' in ' + body['country'] if body['country'] else ''}")
        for rank, item in enumerate(body["items"], start=1):
            lines.append(f"  {rank}. {item['product_id']:<8} {(item['name'] or '')[:36]:<36} {item['reason']}")
    else:
        lines.append(f"  {recommendations.status_code}: {recommendations.json().get('detail')}")

    lines += ["", "Top products by net revenue (GET /v1/analytics/top-products?limit=5)"]
    for rank, product in enumerate(top, start=1):
        lines.append(f"  {rank}. {product['product_id']:<8} {product['description'] or '':<36} "
                     f"{_money(product['net_revenue']):>14} {product['units_sold']:>9,} units")

    lines += ["", f"GET /v1/customers/{reviewer_id}/sentiment?recent=2"]
    if reviewer.status_code == 200:
        lines.append(json.dumps(reviewer.json(), indent=2))
    else:
        lines.append(f"  {reviewer.status_code}: {reviewer.json().get('detail')}")
    if product_sentiment.status_code == 200:
        body = product_sentiment.json()
        lines += ["", f"Sentiment of product {reviewed_product_id} (GET /v1/products/{reviewed_product_id}/sentiment): "
                      f"{body['texts']:,} texts, mean {body['mean_score']:+.2f}, labels {body['labels']}"]

    auth = '-H "Authorization: Bearer $CIE_API_KEY"'
    lines += ["", f"API: {base}  (OpenAPI docs at {base}/docs)"]
    if key_file is not None:
        # The demo's own key, created once per data folder; printing it is how the demo hands it over.
        lines += [f"API key of the demo (stored in {key_file}):", f"  export CIE_API_KEY={token}"]
    lines += [
        "Try:",
        f"  curl -s {auth} {base}/v1/customers/{customer_id}",
        f"  curl -s {auth} '{base}/v1/customers?country=Germany&min_orders=5&limit=3'",
        f"  curl -s {auth} '{base}/v1/analytics/revenue?start=2011-11-01&end=2011-11-30'",
        f"  curl -s {auth} '{base}/v1/analytics/top-products?by=units&limit=10'",
        f"  curl -s {auth} {base}/v1/products/85123A",
        f"  curl -s {auth} {base}/v1/customers/{reviewer_id}/sentiment",
        f"  curl -s {auth} '{base}/v1/customers/{customer_id}/recommendations?kind=discover&limit=5'",
        f"  curl -s {auth} {base}/v1/products/85123A/similar",
        f"  curl -s {auth} -X POST {base}/v1/sentiment:analyze -H 'content-type: application/json' "
        "-d '{\"texts\": [\"Arrived broken, very disappointed.\"]}'",
        "Stop everything: make down",
    ]
    return "\n".join(lines)
