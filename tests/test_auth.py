"""API keys, scopes, rate limits and the error shape, against a uvicorn process on the projected retail sample."""

import re
import shlex
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import httpx
import pytest

from cie.apikeys import SCOPES, list_api_keys
from tests.conftest import REPO
from tests.test_api import PROBLEM_JSON, UVICORN, _free_port, _stop, _wait_ready

REALM = 'Bearer realm="customer-insight"'


def _registered_event() -> dict:
    return {"event_type": "customer.registered", "event_id": str(uuid.uuid4()),
            "occurred_at": "2024-03-01T09:00:00+00:00", "customer_id": f"auth-{uuid.uuid4().hex[:8]}",
            "country": "Iceland"}


# (method, path, JSON body, scope the route requires, status when the scope is granted)
ROUTES = [
    ("GET", "/v1/customers/12347", None, "profiles:read", 200),
    ("GET", "/v1/customers?limit=2", None, "profiles:read", 200),
    ("GET", "/v1/customers/12347/sentiment", None, "profiles:read", 200),
    ("GET", "/v1/products/84879", None, "profiles:read", 200),
    ("GET", "/v1/products/84879/sentiment?days=0", None, "profiles:read", 200),
    ("GET", "/v1/customers/12347/recommendations?limit=3", None, "profiles:read", 200),
    ("GET", "/v1/products/84879/similar?limit=3", None, "profiles:read", 200),
    ("POST", "/v1/sentiment:analyze", {"texts": ["Arrived broken, very disappointed."]}, "profiles:read", 200),
    ("GET", "/v1/analytics/revenue?granularity=month", None, "analytics:read", 200),
    ("GET", "/v1/analytics/top-products?limit=3", None, "analytics:read", 200),
    ("GET", "/v1/analytics/summary", None, "analytics:read", 200),
    ("POST", "/v1/events", "event", "events:write", 202),
    ("POST", "/v1/events:batch", "batch", "events:write", 202),
    ("DELETE", "/v1/customers/auth-erasure-probe", None, "admin", 404),  # past the scope check, an unknown id
]


def test_every_route_has_a_scope_row():
    """A new route must be added to ROUTES, so that its scope boundary is tested."""
    from api.main import app

    def shape(path: str) -> str:
        return re.sub(r"\{[^}]+\}", "{}", path)

    # The OpenAPI paths, because app.routes nests the included routers (FastAPI 0.165) and lists no /v1 route.
    served = {(method.upper(), shape(path)) for path, operations in app.openapi()["paths"].items()
              for method in operations if path.startswith("/v1/")}
    covered = {(method, shape(re.sub(r"/(12347|84879|auth-erasure-probe)(?=/|$)", "/{}", path.split("?")[0])))
               for method, path, *_ in ROUTES}
    assert ("DELETE", "/v1/customers/{}") in served
    assert served - covered == set(), "routes without a row in ROUTES"


def _start_api(space, probe: str = "/readyz", **env) -> tuple[subprocess.Popen, httpx.Client]:
    port = _free_port()
    log_path = space.tmp / f"api-{port}.log"
    process = subprocess.Popen(
        [UVICORN, "api.main:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env={**space.env, **env}, cwd=REPO, stdout=log_path.open("w"), stderr=subprocess.STDOUT,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60.0)
    try:
        _wait_ready(client, process, log_path, probe=probe)
    except AssertionError:
        client.close()
        _stop(process)
        raise
    return process, client


@pytest.fixture(scope="module")
def api(retail_pipeline):
    """An httpx client, without credentials, for a uvicorn process that serves the retail namespace."""
    process, client = _start_api(retail_pipeline)
    yield client
    client.close()
    _stop(process)


@pytest.fixture(scope="module")
def keys(retail_pipeline) -> dict[str, str]:
    """A token per scope."""
    return {scope: retail_pipeline.api_key(scope, name=f"scope-{scope}") for scope in SCOPES}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _call(api: httpx.Client, method: str, path: str, body, token: str | None) -> httpx.Response:
    if body == "event":
        body = _registered_event()
    elif body == "batch":
        body = {"events": [_registered_event(), _registered_event()]}
    headers = _bearer(token) if token else {}
    return api.request(method, path, json=body, headers=headers)


def _assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "status", "detail", "instance"} <= body.keys()
    return body


# Scopes


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("method, path, body, required, allowed_status", ROUTES,
                         ids=[f"{method} {path.split('?')[0]}" for method, path, *_ in ROUTES])
def test_scope_boundary(api, keys, scope, method, path, body, required, allowed_status):
    response = _call(api, method, path, body, keys[scope])

    if scope in (required, "admin"):
        assert response.status_code == allowed_status, response.text
    else:
        problem = _assert_problem(response, 403)
        assert problem["required_scope"] == required
        assert required in problem["detail"]


def test_health_needs_no_key(api):
    assert api.get("/healthz").status_code == 200
    assert api.get("/readyz").status_code == 200


def test_forbidden_hides_existence(api, keys):
    existing = api.get("/v1/customers/12347", headers=_bearer(keys["analytics:read"]))
    unknown = api.get("/v1/customers/no-such-customer", headers=_bearer(keys["analytics:read"]))
    existing_body = existing.json()
    unknown_body = unknown.json()

    assert existing.status_code == unknown.status_code == 403
    assert existing_body.pop("instance") != unknown_body.pop("instance")
    assert existing_body == unknown_body


def test_unauthorized_hides_existence(api):
    existing = api.get("/v1/customers/12347")
    unknown = api.get("/v1/customers/no-such-customer")

    assert existing.status_code == unknown.status_code == 401
    assert existing.json()["detail"] == unknown.json()["detail"]


# Credentials


def test_key_checked_before_validation(api):
    response = api.post("/v1/events", json={"event_type": "order.exploded"})

    _assert_problem(response, 401)


def test_missing_header_is_401(api):
    response = api.get("/v1/analytics/summary")
    body = _assert_problem(response, 401)

    assert response.headers["www-authenticate"] == REALM
    assert "Authorization" in body["detail"]


@pytest.mark.parametrize("header", [
    "Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-key", "cie_0123456789ab_x",
    "Bearer cie_0123456789ab_tooshort", "Bearer cie_XYZ_" + "a" * 43,
])
def test_malformed_header_is_401(api, header):
    response = api.get("/v1/analytics/summary", headers={"Authorization": header})

    _assert_problem(response, 401)
    assert response.headers["www-authenticate"] == f'{REALM}, error="invalid_token"'


def test_unknown_key_is_401(api, keys):
    token = keys["admin"]
    unknown_id = "cie_ffffffffffff_" + token.split("_", 2)[2]
    wrong_secret = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    unknown_response = api.get("/v1/analytics/summary", headers=_bearer(unknown_id))
    wrong_response = api.get("/v1/analytics/summary", headers=_bearer(wrong_secret))

    assert _assert_problem(unknown_response, 401)["detail"] == _assert_problem(wrong_response, 401)["detail"]
    assert 'error="invalid_token"' in unknown_response.headers["www-authenticate"]


def test_revoked_key_is_401(api, retail_pipeline):
    token = retail_pipeline.api_key("analytics:read", name="to-revoke")
    key_id = token.split("_")[1]
    before = api.get("/v1/analytics/summary", headers=_bearer(token))
    result = retail_pipeline.run_cli("keys", "revoke", key_id)
    after = api.get("/v1/analytics/summary", headers=_bearer(token))

    assert before.status_code == 200
    assert result.returncode == 0, result.stderr
    body = _assert_problem(after, 401)
    assert "revoked" in body["detail"]
    assert 'error="invalid_token"' in after.headers["www-authenticate"]


def test_expired_key_is_401(api, retail_pipeline):
    expired = retail_pipeline.api_key("analytics:read", expires_at=datetime.now(timezone.utc) - timedelta(seconds=1))
    valid = retail_pipeline.api_key("analytics:read", expires_at=datetime.now(timezone.utc) + timedelta(days=1))

    body = _assert_problem(api.get("/v1/analytics/summary", headers=_bearer(expired)), 401)
    assert "expired" in body["detail"]
    assert api.get("/v1/analytics/summary", headers=_bearer(valid)).status_code == 200


def test_last_used_updated_once(api, retail_pipeline):
    token = retail_pipeline.api_key("analytics:read", name="last-used")
    key_id = token.split("_")[1]

    def last_used():
        return next(key.last_used_at for key in list_api_keys(retail_pipeline.settings) if key.key_id == key_id)

    assert last_used() is None
    api.get("/v1/analytics/summary", headers=_bearer(token))
    first = last_used()
    api.get("/v1/analytics/summary", headers=_bearer(token))

    assert first is not None
    assert last_used() == first


# Rate limits


def test_rate_limit_429_then_recovers(api, retail_pipeline):
    token = retail_pipeline.api_key("analytics:read", name="slow", rate_per_second=0.5, burst=2)
    statuses = [api.get("/v1/analytics/summary", headers=_bearer(token)).status_code for _ in range(2)]
    limited = api.get("/v1/analytics/summary", headers=_bearer(token))

    assert statuses == [200, 200]
    body = _assert_problem(limited, 429)
    retry_after = int(limited.headers["retry-after"])
    assert 1 <= retry_after <= 2
    assert body["retry_after"] == retry_after

    time.sleep(retry_after)
    assert api.get("/v1/analytics/summary", headers=_bearer(token)).status_code == 200
    assert api.get("/v1/analytics/summary", headers=_bearer(token)).status_code == 429


def test_rate_limit_per_key(api, retail_pipeline):
    first = retail_pipeline.api_key("analytics:read", name="first", rate_per_second=0.1, burst=1)
    second = retail_pipeline.api_key("analytics:read", name="second", rate_per_second=0.1, burst=1)

    assert api.get("/v1/analytics/summary", headers=_bearer(first)).status_code == 200
    assert api.get("/v1/analytics/summary", headers=_bearer(first)).status_code == 429
    assert api.get("/v1/analytics/summary", headers=_bearer(second)).status_code == 200


def test_redis_down_fails_closed(retail_pipeline):
    closed_port = _free_port()  # nothing listens there
    token = retail_pipeline.api_key("analytics:read", name="no-redis")
    # Readiness includes Redis, so wait for liveness only.
    process, client = _start_api(retail_pipeline, probe="/healthz", REDIS_URL=f"redis://127.0.0.1:{closed_port}/0")
    try:
        response = client.get("/v1/analytics/summary", headers=_bearer(token))
        readiness = client.get("/readyz")
    finally:
        client.close()
        _stop(process)

    _assert_problem(response, 503)
    assert response.headers["retry-after"] == "5"
    assert readiness.status_code == 503


# One error shape


def test_unknown_route_is_problem(api):
    body = _assert_problem(api.get("/v1/no-such-route"), 404)

    assert "/v1/no-such-route" in body["detail"]


def test_wrong_method_is_problem(api, keys):
    response = api.post("/v1/analytics/summary", headers=_bearer(keys["admin"]))
    body = _assert_problem(response, 405)

    assert "GET" in response.headers["allow"]
    assert "POST" in body["detail"]


def test_405_allow_lists_every_router(api, keys):
    # GET comes from the customers router and DELETE from the erasure router.
    response = api.put("/v1/customers/12347", headers=_bearer(keys["admin"]))
    body = _assert_problem(response, 405)

    assert response.headers["allow"] == "GET, DELETE"
    assert body["detail"].endswith("allowed: GET, DELETE")


def test_validation_names_field(api, keys):
    body = _assert_problem(api.get("/v1/customers?limit=0", headers=_bearer(keys["admin"])), 422)

    assert [error["field"] for error in body["errors"]] == ["limit"]


def test_invalid_json_names_body(api, keys):
    response = api.post("/v1/events", content=b'{"event_type": oops}',
                        headers={**_bearer(keys["admin"]), "content-type": "application/json"})
    body = _assert_problem(response, 422)

    assert [error["field"] for error in body["errors"]] == ["body"]
    assert body["errors"][0]["message"].startswith("invalid JSON at character 15")


def test_openapi_declares_bearer(api):
    schema = api.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]

    assert schemes["apiKey"]["type"] == "http"
    assert schemes["apiKey"]["scheme"].lower() == "bearer"
    assert schema["paths"]["/v1/customers/{customer_id}"]["get"]["security"] == [{"apiKey": []}]
    assert "security" not in schema["paths"]["/healthz"]["get"]


# CLI


def test_cli_create_list_revoke(api, retail_pipeline):
    created = retail_pipeline.run_cli("keys", "create", "--name", "cli-key", "--scope", "analytics:read",
                                      "--scope", "events:write", "--expires-in", "30")
    assert created.returncode == 0, created.stderr
    token = next(word for word in created.stdout.split() if word.startswith("cie_"))
    key_id = token.split("_")[1]
    assert "Authorization: Bearer" in created.stdout
    assert api.get("/v1/analytics/summary", headers=_bearer(token)).status_code == 200

    listed = retail_pipeline.run_cli("keys", "list")
    line = next(line for line in listed.stdout.splitlines() if line.startswith(key_id))
    assert listed.returncode == 0, listed.stderr
    assert "cli-key" in line
    assert "analytics:read,events:write" in line
    assert "default  default" in line
    assert token.split("_", 2)[2] not in listed.stdout

    revoked = retail_pipeline.run_cli("keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    assert api.get("/v1/analytics/summary", headers=_bearer(token)).status_code == 401
    listed_after = retail_pipeline.run_cli("keys", "list")
    line_after = next(line for line in listed_after.stdout.splitlines() if line.startswith(key_id))
    assert line_after.rstrip().split()[-1] != "-"


def test_cli_rejects_bad_input(retail_pipeline):
    unknown_scope = retail_pipeline.run_cli("keys", "create", "--name", "x", "--scope", "everything")
    unknown_key = retail_pipeline.run_cli("keys", "revoke", "000000000000")

    assert unknown_scope.returncode == 2
    assert "everything" in unknown_scope.stderr
    assert unknown_key.returncode == 1
    assert "000000000000" in unknown_key.stderr


def _curl_example(output: str) -> list[str]:
    """Return the words of the curl example that `keys create` printed."""
    return shlex.split(next(line.strip() for line in output.splitlines() if line.strip().startswith("curl ")))


def _send_curl(api: httpx.Client, words: list[str]) -> httpx.Response:
    """Send a curl command's request, with its headers and body, to the path of its URL on the test's API."""
    headers = dict(words[index + 1].split(": ", 1) for index, word in enumerate(words) if word == "-H")
    body = words[words.index("-d") + 1] if "-d" in words else None
    return api.request("POST" if body else "GET", urlsplit(words[-1]).path, content=body, headers=headers)


@pytest.mark.parametrize("scope, path", [
    ("profiles:read", "/v1/customers/12347"),
    ("analytics:read", "/v1/analytics/summary"),
    ("events:write", "/v1/events"),
    ("admin", "/v1/customers/12347"),
])
def test_cli_example_fits_scope(api, retail_pipeline, scope, path):
    created = retail_pipeline.run_cli("keys", "create", "--name", f"example-{scope}", "--scope", scope)
    words = _curl_example(created.stdout)
    response = _send_curl(api, words)

    assert created.returncode == 0, created.stderr
    assert urlsplit(words[-1]).path == path
    assert response.is_success, response.text


def test_cli_lists_rate_and_burst(retail_pipeline):
    created = retail_pipeline.run_cli("keys", "create", "--name", "limited", "--scope", "profiles:read",
                                      "--rate-per-second", "2.5", "--burst", "7")
    key_id = next(word for word in created.stdout.split() if word.startswith("cie_")).split("_")[1]
    listed = retail_pipeline.run_cli("keys", "list")
    line = next(line for line in listed.stdout.splitlines() if line.startswith(key_id))

    assert listed.stdout.splitlines()[0].split()[3:5] == ["rate/s", "burst"]
    assert line.split()[3:5] == ["2.5", "7"]


@pytest.mark.parametrize("days", ["-1", "0", "nan", "inf", "1e9", "soon"])
def test_cli_rejects_bad_expiry(retail_pipeline, days):
    result = retail_pipeline.run_cli("keys", "create", "--name", "x", "--scope", "profiles:read", "--expires-in", days)

    assert result.returncode == 2
    assert "--expires-in" in result.stderr
    assert days in result.stderr
    assert "cie_" not in result.stdout


def test_cli_revoke_twice_fails(retail_pipeline):
    token = retail_pipeline.api_key("profiles:read", name="revoke-twice")
    key_id = token.split("_")[1]
    first = retail_pipeline.run_cli("keys", "revoke", key_id)
    second = retail_pipeline.run_cli("keys", "revoke", key_id)
    revoked_at = next(key.revoked_at for key in list_api_keys(retail_pipeline.settings) if key.key_id == key_id)
    expected = f"{key_id} (revoke-twice) was already revoked at {revoked_at.astimezone(timezone.utc):%Y-%m-%d %H:%M}"

    assert first.returncode == 0, first.stderr
    assert second.returncode == 1
    assert expected in second.stderr


def test_cli_revoke_rejects_malformed_id(retail_pipeline):
    token = retail_pipeline.api_key("profiles:read", name="not-an-id")
    malformed = retail_pipeline.run_cli("keys", "revoke", "not-a-key")
    whole_token = retail_pipeline.run_cli("keys", "revoke", token)

    assert malformed.returncode == 2
    assert "'not-a-key' is not a key id" in malformed.stderr
    assert whole_token.returncode == 2
    assert "that is a token, not a key id" in whole_token.stderr
    assert token.split("_", 2)[2] not in whole_token.stderr


def test_demo_key_file_used_by_report(api, retail_pipeline):
    data_dir = retail_pipeline.tmp / "demo-data"
    path = data_dir / "demo-api-key"
    created = retail_pipeline.run_cli("keys", "create", "--name", "demo", "--scope", "profiles:read",
                                      "--scope", "analytics:read", "--token-file", str(path))
    token = path.read_text().strip()
    again = retail_pipeline.run_cli("keys", "create", "--name", "demo", "--scope", "profiles:read",
                                    "--token-file", str(path))
    report = retail_pipeline.run_cli("report", "--api-url", str(api.base_url).rstrip("/"),
                                     env={"CIE_DATA_DIR": str(data_dir)})

    assert created.returncode == 0, created.stderr
    assert path.stat().st_mode & 0o777 == 0o600
    assert token.startswith("cie_")
    assert token not in created.stdout
    assert again.returncode == 2
    assert "already exists" in again.stderr
    assert path.read_text().strip() == token
    assert report.returncode == 0, report.stderr
    assert f"export CIE_API_KEY={token}" in report.stdout
    assert 'curl -s -H "Authorization: Bearer $CIE_API_KEY"' in report.stdout


def test_report_rejected_key_explained(api, retail_pipeline):
    token = retail_pipeline.api_key("events:write", name="wrong-for-report")
    report = retail_pipeline.run_cli("report", "--api-url", str(api.base_url).rstrip("/"), env={"CIE_API_KEY": token})

    assert report.returncode == 1
    assert "403" in report.stderr
    assert "CIE_API_KEY" in report.stderr
