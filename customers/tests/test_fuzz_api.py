"""Schemathesis against the API's own OpenAPI document, served by a live test server.

Every operation of `/v1/openapi.json` gets generated requests, valid and invalid ones,
sent with a valid key; each answer must be no 5xx, a status the document lists for the
operation, and a body and headers that match the schema it gives for that status. The run
is derandomized (the same cases every time: CI stays reproducible); FUZZ_EXAMPLES sets
the number of cases per operation and phase (default 25), FUZZ_SEED a random run's seed.
"""

import json
import os

import pytest
import requests
import schemathesis
from django.test import RequestFactory
from hypothesis import HealthCheck, reject, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from customers.api.docs import OpenApiDocumentView
from customers.tests.factories import make_customer, make_environment, make_key

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
# Django's test server (wsgiref) refuses a request line over 64 KiB with an HTML page of its
# own, before the app sees it. Production's gunicorn has no such limit (gunicorn.conf.py) and
# the app answers a query string over 60 KiB with its own 414 in the envelope (test_openapi
# checks that answer): a longer case would test the test server, not the app.
TEST_SERVER_REQUEST_LINE_LIMIT = 65536 - 1024
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture
def fuzz_key(transactional_db) -> str:
    environment = make_environment("tenant_fuzz", "env_fuzz")
    parent = make_customer(environment, external_id="fuzz-parent", metadata={"plan": "pro"})
    make_customer(environment, external_id="fuzz-child", parent_id=parent.id)
    return make_key(environment)


def served_document() -> dict:
    """`/v1/openapi.json` as the server answers it (built in-process: the cases must be
    known when pytest collects; schemathesis's lazy fixture loader fails on pytest 9)."""
    response = OpenApiDocumentView.as_view()(RequestFactory().get("/v1/openapi.json"))
    response.render()
    assert response.status_code == 200
    return json.loads(response.content)


schema = schemathesis.openapi.from_dict(served_document())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="FUZZ_SEED" not in os.environ,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_every_operation_answers_as_documented(case, live_server, fuzz_key):
    sent = case.as_transport_kwargs(base_url=live_server.url)
    url = requests.Request(sent["method"], sent["url"], params=sent.get("params")).prepare().url
    if len(url) > TEST_SERVER_REQUEST_LINE_LIMIT:
        reject()
    case.call_and_validate(
        base_url=live_server.url, headers={"Authorization": f"Bearer {fuzz_key}"}, checks=CHECKS
    )
