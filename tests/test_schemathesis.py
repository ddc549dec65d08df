"""A bounded schemathesis run over every operation in the live API's /openapi.json.

For each operation, schemathesis generates valid requests (positive mode) and
invalid ones (negative mode) from the schema. No response may be a 5xx, and
every documented response must match its JSON schema. MAX_EXAMPLES bounds the
run so that it fits in every CI run. The API serves the projected retail
sample, and POST /v1/events produces to this test's own Kafka topics.

The operations are listed at collection time from the application's own
schema, so that each one is a test of its own. test_live_schema_same_operations
checks that the live server serves the same list.
"""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from api.main import app
from tests.test_api import api  # noqa: F401  (the uvicorn fixture on the retail namespace)
from tests.test_client import api_key, base_url  # noqa: F401  (the admin key, or a placeholder without API keys)

# Examples per operation and generation mode; every example is one request to the live API. Set
# CIE_SCHEMATHESIS_EXAMPLES higher to search harder locally.
MAX_EXAMPLES = int(os.environ.get("CIE_SCHEMATHESIS_EXAMPLES", "20"))
REQUEST_TIMEOUT = 60.0  # seconds; POST /v1/sentiment:analyze scores up to 100 texts of 5,000 characters
PATHS = app.openapi()["paths"]
OPERATIONS = sorted((method.upper(), path) for path, item in PATHS.items() for method in item)
# Negative mode needs a parameter or a body to make invalid, so operations with neither get positive mode only.
CASES = [(method, path, mode) for method, path in OPERATIONS
         for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
         if mode is GenerationMode.POSITIVE or {"parameters", "requestBody"} & PATHS[path][method.lower()].keys()]

# NOTE: schemathesis.pytest.from_fixture (schemathesis 4.32.5) sets Function._nodeid, which pytest 9.2 removed, so
# this file draws cases from each operation's Hypothesis strategy instead of using @schema.parametrize().


@pytest.fixture(scope="module")
def live_schema(base_url, api_key):  # noqa: F811
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json", headers={"Authorization": f"Bearer {api_key}"},
                                         timeout=REQUEST_TIMEOUT)


def test_live_schema_same_operations(live_schema):
    served = sorted((method.upper(), path) for path, item in live_schema.raw_schema["paths"].items() for method in item)

    assert served == OPERATIONS


@pytest.mark.parametrize("method, path, mode", CASES, ids=[f"{m} {p} {mode}" for m, p, mode in CASES])
def test_operation_conforms(live_schema, base_url, api_key, method, path, mode):  # noqa: F811
    operation = live_schema[path][method]
    headers = {"Authorization": f"Bearer {api_key}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    def check(case):
        case.call_and_validate(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT,
                               checks=[not_a_server_error, response_schema_conformance])

    check()
