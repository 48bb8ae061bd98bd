"""`/v1/openapi.json` and `/v1/docs/`: public, valid OpenAPI, true to what the API does."""

import json
import re

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from openapi_schema_validator import validate as validate_instance
from openapi_spec_validator import OpenAPIV30SpecValidator
from rest_framework.test import APIClient

from customers.api.middleware import MAX_QUERY_STRING_BYTES
from customers.representation import customer_as_dict
from customers.shape import EDITABLE_FIELDS
from customers.tests.contract import CUSTOMER_KEYS
from customers.tests.factories import make_customer

pytestmark = pytest.mark.django_db

SCHEMA_URL = "/v1/openapi.json"
DOCS_URL = "/v1/docs/"
OPERATIONS = {
    ("/v1/customers", "get"): "customers_list",
    ("/v1/customers", "post"): "customers_create",
    ("/v1/customers", "put"): "customers_update_by_query",
    ("/v1/customers/export", "get"): "customers_export",
    ("/v1/customers/search", "post"): "customers_search",
    ("/v1/customers/{customer_id}", "get"): "customers_retrieve",
    ("/v1/customers/{customer_id}", "put"): "customers_update",
    ("/v1/customers/{customer_id}", "patch"): "customers_partial_update",
    ("/v1/customers/{customer_id}", "delete"): "customers_destroy",
    ("/v1/customers/external/{external_id}", "get"): "customers_retrieve_by_external_id",
    ("/v1/customers/{customer_id}/erase", "post"): "customers_erase",
    ("/v1/events", "get"): "events_list",
    ("/v1/events/{event_id}", "get"): "events_retrieve",
    ("/v1/webhook_endpoints", "get"): "webhook_endpoints_list",
    ("/v1/webhook_endpoints", "post"): "webhook_endpoints_create",
    ("/v1/webhook_endpoints/{endpoint_id}", "get"): "webhook_endpoints_retrieve",
    ("/v1/webhook_endpoints/{endpoint_id}", "patch"): "webhook_endpoints_partial_update",
    ("/v1/webhook_endpoints/{endpoint_id}", "delete"): "webhook_endpoints_destroy",
    ("/v1/webhook_endpoints/{endpoint_id}/rotate_secret", "post"): (
        "webhook_endpoints_rotate_secret"
    ),
}
# Operations that take no body (a 415 cannot happen).
BODILESS = {
    ("/v1/customers/{customer_id}/erase", "post"),
    ("/v1/webhook_endpoints/{endpoint_id}/rotate_secret", "post"),
}
# A read that takes its parameters in a body (Flexprice's search): no idempotency, no 409.
READS_BY_POST = {("/v1/customers/search", "post")}
WRITES = [
    key
    for key in OPERATIONS
    if key[1] in ("post", "put", "patch", "delete") and key not in READS_BY_POST
]
TIMESTAMPS = ("created_at", "updated_at")
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
ENVELOPE_REF = "#/components/schemas/ErrorEnvelope"


@pytest.fixture(scope="module")
def spec(django_db_blocker) -> dict:
    with django_db_blocker.unblock():
        response = APIClient().get(SCHEMA_URL)
    assert response.status_code == 200
    return json.loads(response.content)


def operation(spec: dict, path: str, method: str) -> dict:
    return spec["paths"][path][method]


def node_ref_parts(ref: str) -> list[str]:
    assert ref.startswith("#/")
    return ref[2:].split("/")


def resolve_ref(spec: dict, node: dict) -> dict:
    """Follow `$ref` (directly or as the single `allOf` drf-spectacular wraps it in)."""
    if "allOf" in node and len(node["allOf"]) == 1:
        node = node["allOf"][0]
    while "$ref" in node:
        target = spec
        for part in node_ref_parts(node["$ref"]):
            target = target[part]
        node = target
    return node


def component(spec: dict, name: str) -> dict:
    return spec["components"]["schemas"][name]


def response_schema(spec: dict, path: str, method: str, status: int) -> dict:
    response = operation(spec, path, method)["responses"][str(status)]
    assert list(response["content"]) == ["application/json"]
    return response["content"]["application/json"]["schema"]


def assert_matches_schema(spec: dict, instance, schema: dict) -> None:
    """Validate a real response body against a schema of the document (refs resolved)."""
    validate_instance(
        instance,
        {**schema, "components": spec["components"]},
        cls=OAS30Validator,
        format_checker=oas30_format_checker,
    )


# --- serving -----------------------------------------------------------------------------------


class TestServing:
    def test_schema_is_public_json(self):
        response = APIClient().get(SCHEMA_URL)
        assert response.status_code == 200
        assert response["Content-Type"].split(";")[0] in (
            "application/json",
            "application/vnd.oai.openapi+json",
        )
        document = json.loads(response.content)
        assert document["openapi"].startswith("3.0.")
        assert document["info"]["title"] == "Customer CRM API"

    def test_schema_ignores_credentials_even_bad_ones(self):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Bearer sk_not-a-key-that-exists-0123456789abcdef")
        assert client.get(SCHEMA_URL).status_code == 200
        client.credentials(HTTP_X_API_KEY="nonsense")
        assert client.get(SCHEMA_URL).status_code == 200

    def test_schema_is_json_also_when_openapi_media_type_is_asked_for(self):
        response = APIClient().get(SCHEMA_URL, HTTP_ACCEPT="application/vnd.oai.openapi+json")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
        json.loads(response.content)

    def test_schema_is_never_yaml(self):
        response = APIClient().get(SCHEMA_URL, HTTP_ACCEPT="application/vnd.oai.openapi")
        assert response.status_code == 406
        assert response.json()["error"]["code"] == "not_acceptable"

    def test_schema_is_a_valid_openapi_3_0_document(self, spec):
        OpenAPIV30SpecValidator(spec).validate()

    def test_docs_page_is_public_html(self):
        response = APIClient().get(DOCS_URL)
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/html")
        assert "swagger-ui" in response.content.decode()
        assert SCHEMA_URL in response.content.decode()

    def test_docs_page_loads_only_local_assets(self):
        page = APIClient().get(DOCS_URL).content.decode()
        scripts = re.findall(r"<script[^>]*\ssrc=\"([^\"]+)\"", page)
        links = re.findall(r"<link[^>]*\shref=\"([^\"]+)\"", page)
        assert len(scripts) == 2, scripts  # the bundle and the standalone preset
        assert links, "the stylesheet and the favicon"
        for url in scripts + links:
            assert url.startswith("/static/"), url
        assert not re.search(r"(src|href)=\"(https?:)?//", page)
        assert "cdn." not in page

    def test_docs_assets_are_shipped(self):
        page = APIClient().get(DOCS_URL).content.decode()
        urls = re.findall(r"(?:src|href)=\"/static/([^\"]+)\"", page)
        assert any(url.endswith("swagger-ui-bundle.js") for url in urls), urls
        for url in urls:
            found = finders.find(url)
            assert found, f"{url} is not found by the static files finders"

    def test_docs_page_ignores_credentials(self):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Bearer nonsense")
        assert client.get(DOCS_URL).status_code == 200

    @pytest.mark.parametrize("url", [SCHEMA_URL, DOCS_URL])
    @pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "options"])
    def test_other_methods_are_a_405_in_the_envelope(self, url, method):
        response = getattr(APIClient(), method)(url)
        assert response.status_code == 405
        assert response["Content-Type"] == "application/json"
        assert response.json()["error"]["code"] == "method_not_allowed"
        assert response["Allow"] == "GET, HEAD"

    def test_head_is_allowed(self):
        assert APIClient().head(SCHEMA_URL).status_code == 200
        assert APIClient().head(DOCS_URL).status_code == 200

    def test_docs_refusing_the_accept_header_is_a_406_in_the_envelope(self):
        response = APIClient().get(DOCS_URL, HTTP_ACCEPT="application/json")
        assert response.status_code == 406
        assert response.json()["error"]["code"] == "not_acceptable"


# --- the document --------------------------------------------------------------------------------


class TestDocument:
    def test_every_endpoint_and_method_and_nothing_else(self, spec):
        found = {
            (path, method): item["operationId"]
            for path, methods in spec["paths"].items()
            for method, item in methods.items()
            if method in HTTP_METHODS
        }
        assert found == OPERATIONS

    def test_path_parameters(self, spec):
        for (path, method), _ in OPERATIONS.items():
            names = re.findall(r"{(\w+)}", path)
            parameters = operation(spec, path, method).get("parameters", [])
            in_path = [p for p in parameters if p["in"] == "path"]
            assert [p["name"] for p in in_path] == names
            assert all(p["required"] and p["schema"]["type"] == "string" for p in in_path)

    def test_list_parameters(self, spec):
        parameters = {
            p["name"]: p
            for p in operation(spec, "/v1/customers", "get")["parameters"]
            if p["in"] == "query"
        }
        assert list(parameters) == [
            "limit",
            "offset",
            "cursor",
            "sort",
            "order",
            "status",
            "customer_ids",
            "external_ids",
            "parent_customer_ids",
            "external_id",
            "email",
            "q",
            *[f"{field}[{bound}]" for field in TIMESTAMPS for bound in ("gte", "gt", "lte", "lt")],
            "metadata",
            "view",
            "expand",
        ]
        assert parameters["metadata"]["style"] == "deepObject"
        assert parameters["metadata"]["explode"] is True
        schema = {name: p["schema"] for name, p in parameters.items()}
        assert schema["limit"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}
        assert schema["offset"]["minimum"] == 0
        assert schema["offset"]["default"] == 0
        assert schema["offset"]["maximum"] == 2**62
        assert schema["sort"]["enum"] == [
            "created_at",
            "updated_at",
            "name",
            "email",
            "external_id",
            "status",
        ]
        assert schema["sort"]["default"] == "created_at"
        assert schema["order"]["enum"] == ["asc", "desc"]
        assert schema["order"]["default"] == "desc"
        assert schema["status"]["enum"] == ["published", "draft", "archived"]
        assert "default" not in schema["status"]
        for name in ("customer_ids", "external_ids", "parent_customer_ids"):
            assert schema[name]["type"] == "array"
            assert schema[name]["items"]["type"] == "string"
            assert schema[name]["items"]["maxLength"] == 255
            assert schema[name]["maxItems"] == 1000
            assert parameters[name]["style"] == "form"
            assert parameters[name]["explode"] is False
            assert "comma-separated" in parameters[name]["description"].lower()
            assert "repeat" in parameters[name]["description"].lower()
        for name in ("external_id", "email"):
            assert schema[name]["type"] == "string"
            assert schema[name]["maxLength"] == 255
        assert schema["expand"]["items"]["enum"] == ["parent_customer"]
        assert parameters["expand"]["style"] == "form"
        assert parameters["expand"]["explode"] is False
        assert not any(p.get("required") for p in parameters.values())

    def test_both_key_headers_are_security_schemes(self, spec):
        schemes = spec["components"]["securitySchemes"]
        assert schemes["bearerAuth"] == {
            **schemes["bearerAuth"],
            "type": "http",
            "scheme": "bearer",
        }
        assert schemes["apiKeyAuth"] == {
            **schemes["apiKeyAuth"],
            "type": "apiKey",
            "in": "header",
            "name": "x-api-key",
        }
        for path, method in OPERATIONS:
            security = operation(spec, path, method)["security"]
            # Alternatives (OR): each header alone is enough.
            assert {"bearerAuth": []} in security
            assert {"apiKeyAuth": []} in security

    def test_request_bodies_are_json_only(self, spec):
        bodies = {
            key: operation(spec, *key)["requestBody"]
            for key in OPERATIONS
            if "requestBody" in operation(spec, *key)
        }
        assert set(bodies) == {
            ("/v1/customers", "post"),
            ("/v1/customers", "put"),
            ("/v1/customers/search", "post"),
            ("/v1/customers/{customer_id}", "put"),
            ("/v1/customers/{customer_id}", "patch"),
            ("/v1/webhook_endpoints", "post"),
            ("/v1/webhook_endpoints/{endpoint_id}", "patch"),
        }
        for body in bodies.values():
            assert list(body["content"]) == ["application/json"]
        document = json.dumps(spec)
        for media_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            assert media_type not in document

    def test_create_requires_external_id_and_name_update_nothing(self, spec):
        create = operation(spec, "/v1/customers", "post")["requestBody"]
        assert create["required"] is True
        create_schema = resolve_ref(spec, create["content"]["application/json"]["schema"])
        assert sorted(create_schema["required"]) == ["external_id", "name"]
        assert list(create_schema["properties"]) == list(EDITABLE_FIELDS)
        for method in ("put", "patch"):
            body = operation(spec, "/v1/customers/{customer_id}", method)["requestBody"]
            schema = resolve_ref(spec, body["content"]["application/json"]["schema"])
            assert "required" not in schema
            assert list(schema["properties"]) == list(EDITABLE_FIELDS)
            assert schema["properties"]["email"]["nullable"] is True
            assert schema["properties"]["parent_customer_id"]["nullable"] is True

    def test_customer_object_has_the_17_keys_all_required(self, spec):
        customer = component(spec, "Customer")
        assert list(customer["properties"]) == CUSTOMER_KEYS
        assert sorted(customer["required"]) == sorted(CUSTOMER_KEYS)
        nullable = {name for name, p in customer["properties"].items() if p.get("nullable")}
        assert nullable == {"email", "parent_customer_id"}
        assert customer["properties"]["created_at"]["format"] == "date-time"
        status = resolve_ref(spec, customer["properties"]["status"])
        assert status["enum"] == ["published", "draft", "archived"]

    def test_parent_customer_only_in_list_items(self, spec):
        item = component(spec, "CustomerListItem")
        assert list(item["properties"]) == [*CUSTOMER_KEYS, "parent_customer"]
        assert "parent_customer" not in item["required"]
        parent = item["properties"]["parent_customer"]
        assert parent["oneOf"][0] == {"$ref": "#/components/schemas/Customer"}
        assert parent["oneOf"][1]["enum"] == [None]
        page = component(spec, "CustomerList")
        assert page["properties"]["items"]["items"] == {
            "$ref": "#/components/schemas/CustomerListItem"
        }
        pagination = resolve_ref(spec, page["properties"]["pagination"])
        assert sorted(pagination["required"]) == [
            "has_more",
            "limit",
            "next_cursor",
            "offset",
            "total",
        ]

    def test_error_envelope_component(self, spec):
        envelope = component(spec, "ErrorEnvelope")
        assert sorted(envelope["required"]) == ["error", "success"]
        assert envelope["properties"]["success"]["type"] == "boolean"
        error = resolve_ref(spec, envelope["properties"]["error"])
        assert sorted(error["required"]) == ["code", "details", "message"]
        codes = resolve_ref(spec, error["properties"]["code"])["enum"]
        for code in (
            "validation_error",
            "unauthenticated",
            "permission_denied",
            "not_found",
            "method_not_allowed",
            "already_exists",
            "rate_limited",
            "internal_error",
            "service_unavailable",
        ):
            assert code in codes

    @pytest.mark.parametrize(("path", "method"), list(OPERATIONS))
    def test_errors_use_the_envelope(self, spec, path, method):
        responses = operation(spec, path, method)["responses"]
        expected = {"401", "403", "414", "429", "500", "503"}
        if path not in ("/v1/customers/{customer_id}", "/v1/events/{event_id}") or method != "get":
            expected.add("400")  # retrieve by id reads no parameter that can be invalid
        if "{" in path or (path, method) == ("/v1/customers", "put"):
            expected.add("404")  # the update by query names its customer in the query
        if method in ("post", "put", "patch", "delete") and (path, method) not in READS_BY_POST:
            expected.add("409")
        if method in ("post", "put", "patch") and (path, method) not in BODILESS:
            expected |= {"413", "415"}  # erase and rotate_secret take no body
        errors = {status for status in responses if status.startswith(("4", "5"))}
        assert errors == expected
        for status in errors:
            assert response_schema(spec, path, method, int(status)) == {"$ref": ENVELOPE_REF}

    @pytest.mark.parametrize(("path", "method"), WRITES)
    def test_idempotency_key_on_writes(self, spec, path, method):
        headers = {
            p["name"]: p for p in operation(spec, path, method)["parameters"] if p["in"] == "header"
        }
        key = headers["Idempotency-Key"]
        assert not key.get("required", False)
        assert key["schema"] == {"type": "string", "minLength": 1, "maxLength": 255}

    def test_no_idempotency_key_on_reads(self, spec):
        for path, method in OPERATIONS:
            if method == "get" or (path, method) in READS_BY_POST:
                names = [p["name"] for p in operation(spec, path, method).get("parameters", [])]
                assert "Idempotency-Key" not in names

    def test_delete_answers_204_without_body(self, spec):
        responses = operation(spec, "/v1/customers/{customer_id}", "delete")["responses"]
        assert "content" not in responses["204"]
        assert not any(status.startswith("2") and status != "204" for status in responses)


# --- the document against the real API ----------------------------------------------------------


class TestRealResponsesMatchTheDocument:
    """Real answers validate against the schemas the document gives for them."""

    def test_the_check_is_not_vacuous(self, spec, scope_a):
        customer = customer_as_dict(make_customer(scope_a.environment))
        schema = {"$ref": "#/components/schemas/Customer"}
        assert_matches_schema(spec, customer, schema)
        for broken in (
            {k: v for k, v in customer.items() if k != "address_line2"},
            {**customer, "status": "deleted"},
            {**customer, "name": None},
            {**customer, "metadata": {"k": 1}},
        ):
            with pytest.raises(ValidationError):
                assert_matches_schema(spec, broken, schema)

    def test_customer_keys_are_the_documented_ones(self, spec, scope_a):
        customer = make_customer(scope_a.environment)
        assert list(customer_as_dict(customer)) == list(component(spec, "Customer")["properties"])
        make_customer(scope_a.environment, parent=customer)
        documented = list(component(spec, "CustomerListItem")["properties"])
        items = scope_a.client().get("/v1/customers?expand=parent_customer").json()["items"]
        assert all(list(item) == documented for item in items)

    def test_list_retrieve_and_write_responses(self, spec, scope_a):
        api = scope_a.client()
        created = api.post(
            "/v1/customers",
            {
                "external_id": "acme-1",
                "name": "Acme",
                "email": "billing@acme.example",
                "address_country": "us",
                "metadata": {"plan": "pro"},
            },
            format="json",
            HTTP_IDEMPOTENCY_KEY="create-acme-1",
        )
        assert created.status_code == 201, created.content
        assert_matches_schema(
            spec, created.json(), response_schema(spec, "/v1/customers", "post", 201)
        )
        parent_id = created.json()["id"]
        child = api.post(
            "/v1/customers",
            {"external_id": "acme-2", "name": "Acme Sub", "parent_customer_id": parent_id},
            format="json",
        )
        assert child.status_code == 201, child.content

        page = api.get(
            "/v1/customers", {"expand": "parent_customer", "sort": "name", "order": "asc"}
        )
        assert page.status_code == 200
        parents = [item["parent_customer"] for item in page.json()["items"]]
        assert parents[0] is None
        assert parents[1]["id"] == parent_id
        assert_matches_schema(spec, page.json(), response_schema(spec, "/v1/customers", "get", 200))
        plain = api.get("/v1/customers")
        assert_matches_schema(
            spec, plain.json(), response_schema(spec, "/v1/customers", "get", 200)
        )

        detail = "/v1/customers/{customer_id}"
        for method, response in (
            ("get", api.get(f"/v1/customers/{parent_id}")),
            ("patch", api.patch(f"/v1/customers/{parent_id}", {"email": None}, format="json")),
            ("put", api.put(f"/v1/customers/{parent_id}", {"name": "Acme Inc"}, format="json")),
        ):
            assert response.status_code == 200, response.content
            assert_matches_schema(spec, response.json(), response_schema(spec, detail, method, 200))
        by_external = api.get("/v1/customers/external/acme-1")
        assert by_external.status_code == 200
        assert_matches_schema(
            spec,
            by_external.json(),
            response_schema(spec, "/v1/customers/external/{external_id}", "get", 200),
        )
        assert api.delete(f"/v1/customers/{parent_id}").status_code == 204


# --- examples ----------------------------------------------------------------------------------


def documented_examples(spec: dict):
    """(path, method, status or "request", name, schema, value) for every example."""
    for (path, method), _ in OPERATIONS.items():
        item = operation(spec, path, method)
        media = item.get("requestBody", {}).get("content", {}).get("application/json")
        if media:
            for example in media.get("examples", {}).values():
                yield path, method, "request", example["summary"], media["schema"], example["value"]
        for status, response in item["responses"].items():
            media = response.get("content", {}).get("application/json")
            if media:
                for example in media.get("examples", {}).values():
                    yield (
                        path,
                        method,
                        int(status),
                        example["summary"],
                        media["schema"],
                        example["value"],
                    )


class TestExamples:
    def test_every_example_matches_its_schema(self, spec):
        examples = list(documented_examples(spec))
        assert len(examples) > 30
        for *_, schema, value in examples:
            assert_matches_schema(spec, value, schema)

    def test_every_error_example_is_what_the_api_answers(self, spec, scope_a, scope_b):
        """The documented error bodies are real ones, word for word."""
        acme = make_customer(scope_a.environment, external_id="acme-1")
        requests = error_example_requests(scope_a.client(), acme, elsewhere=scope_b.client())
        checked = 0
        for path, method, status, name, _, example in documented_examples(spec):
            if status == "request" or status < 400 or status in (500, 503):
                continue  # 500 and 503 need a broken server (test_api_scope breaks one)
            if status == 429:
                continue  # test_rate_limits checks the 429's example
            key = (path, method, status, name)
            assert key in requests, f"no request in this test answers example {key}"
            response = requests[key]()
            assert response.status_code == status, (key, response.content)
            body = response.json()
            assert body["error"].pop("request_id") == response["X-Request-ID"], key
            assert body == example, key
            checked += 1
        assert checked == len(requests)


def error_example_requests(api: APIClient, acme, *, elsewhere: APIClient) -> dict:
    """(path, method, status, example name) -> a request that gets exactly that example.

    ``acme`` (external id `acme-1`) stays as it is whatever the order; ``elsewhere`` is a
    client of another scope, where `acme-1` does not exist.
    """
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION="Bearer sk_" + "x" * 40)
    signed_in = APIClient()
    signed_in.force_login(get_user_model().objects.create_user("nobody", password="pw"))
    listing, detail = "/v1/customers", "/v1/customers/{customer_id}"
    by_external_id = "/v1/customers/external/{external_id}"
    acme_url = f"/v1/customers/{acme.id}"
    unknown_url = "/v1/customers/cust_01J2Z3K4M5N6P7Q8R9S0T1V2W3"
    doomed_url = f"/v1/customers/{make_customer(acme.environment).id}"

    def write(method: str, url: str, body=None, **headers):
        return getattr(api, method)(url, body, format="json", **headers)

    def reused_key(method: str, url: str, first: dict, second: dict):
        key = f"key-{method}"
        write(method, url, first, HTTP_IDEMPOTENCY_KEY=key)
        return write(method, url, second, HTTP_IDEMPOTENCY_KEY=key)

    requests = {
        (listing, "get", 400, "validation_error"): lambda: api.get(listing, {"limit": "0"}),
        ("/v1/customers/export", "get", 400, "validation_error"): lambda: api.get(
            "/v1/customers/export", {"limit": "10"}
        ),
        (listing, "post", 400, "validation_error"): lambda: write(
            "post", listing, {"external_id": "x"}
        ),
        (by_external_id, "get", 400, "validation_error"): lambda: api.get(
            "/v1/customers/external/" + "x" * 256
        ),
        (by_external_id, "get", 404, "not_found"): lambda: elsewhere.get(
            "/v1/customers/external/acme-1"
        ),
        (listing, "post", 409, "already_exists"): lambda: write(
            "post", listing, {"external_id": "acme-1", "name": "Again"}
        ),
        (listing, "post", 409, "idempotency_key_reused"): lambda: reused_key(
            "post",
            listing,
            {"external_id": "a-1", "name": "A"},
            {"external_id": "a-2", "name": "A"},
        ),
        (listing, "post", 415, "unsupported_media_type"): lambda: api.post(
            listing, "name=x", content_type="text/plain"
        ),
        ("/v1/customers/search", "post", 400, "validation_error"): lambda: write(
            "post",
            "/v1/customers/search",
            {"filters": [{"field": "name", "operator": "in", "data_type": "string", "value": {}}]},
        ),
        ("/v1/customers/search", "post", 415, "unsupported_media_type"): lambda: api.post(
            "/v1/customers/search", "name=x", content_type="text/plain"
        ),
        (detail, "delete", 400, "validation_error"): lambda: api.delete(
            acme_url, HTTP_IDEMPOTENCY_KEY="k" * 256
        ),
        (detail, "delete", 409, "idempotency_key_reused"): lambda: (
            api.delete(doomed_url, HTTP_IDEMPOTENCY_KEY="key-delete"),
            api.delete(f"{doomed_url}x", HTTP_IDEMPOTENCY_KEY="key-delete"),
        )[1],
    }
    for method in ("put", "patch"):
        other = make_customer(acme.environment, external_id=f"other-{method}")
        other_url = f"/v1/customers/{other.id}"
        requests |= {
            (detail, method, 400, "validation_error"): lambda method=method: write(
                method, acme_url, {"address_country": "XX"}
            ),
            (detail, method, 409, "already_exists"): lambda method=method, url=other_url: write(
                method, url, {"external_id": "acme-1"}
            ),
            (detail, method, 409, "idempotency_key_reused"): lambda method=method: reused_key(
                method, acme_url, {"name": "One"}, {"name": "Two"}
            ),
            (detail, method, 415, "unsupported_media_type"): lambda method=method: getattr(
                api, method
            )(acme_url, "name=x", content_type="text/plain"),
        }
    for path, method in OPERATIONS:
        url = (
            path.replace("{customer_id}", acme.id)
            .replace("{external_id}", "acme-1")
            .replace("{event_id}", "evt_x")
            .replace("{endpoint_id}", "we_x")
        )
        requests[path, method, 401, "unauthenticated"] = lambda method=method, url=url: getattr(
            stranger, method
        )(url)
        requests[path, method, 403, "permission_denied"] = lambda method=method, url=url: getattr(
            signed_in, method
        )(url)
        if path == detail:
            requests[path, method, 404, "not_found"] = lambda method=method: write(
                method, unknown_url, {} if method in ("put", "patch") else None
            )
        requests[path, method, 414, "request_too_large"] = lambda method=method, url=url: getattr(
            api, method
        )(f"{url}?q={'x' * MAX_QUERY_STRING_BYTES}")
        if method in ("post", "put", "patch") and (path, method) not in BODILESS:
            requests[path, method, 413, "request_too_large"] = lambda method=method, url=url: (
                getattr(api, method)(
                    url,
                    "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1),
                    content_type="application/json",
                )
            )
    by_query_other = make_customer(acme.environment, external_id="other-by-query")
    requests |= {
        (listing, "put", 400, "validation_error"): lambda: api.put(listing, {}, format="json"),
        (listing, "put", 404, "not_found"): lambda: api.put(
            f"{listing}?id={unknown_url.rsplit('/', 1)[1]}", {}, format="json"
        ),
        (listing, "put", 409, "already_exists"): lambda: api.put(
            f"{listing}?id={by_query_other.id}", {"external_id": "acme-1"}, format="json"
        ),
        (listing, "put", 409, "idempotency_key_reused"): lambda: (
            api.put(
                f"{listing}?id={acme.id}",
                {"name": "One"},
                format="json",
                HTTP_IDEMPOTENCY_KEY="key-put-query",
            ),
            api.put(
                f"{listing}?id={acme.id}",
                {"name": "Two"},
                format="json",
                HTTP_IDEMPOTENCY_KEY="key-put-query",
            ),
        )[1],
        (listing, "put", 415, "unsupported_media_type"): lambda: api.put(
            f"{listing}?id={acme.id}", "name=x", content_type="text/plain"
        ),
        (listing, "put", 413, "request_too_large"): lambda: api.put(
            f"{listing}?id={acme.id}",
            "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1),
            content_type="application/json",
        ),
    }
    erase = "/v1/customers/{customer_id}/erase"
    erasable_url = f"/v1/customers/{make_customer(acme.environment).id}/erase"
    requests[erase, "post", 400, "validation_error"] = lambda: api.post(
        f"{acme_url}/erase", HTTP_IDEMPOTENCY_KEY="k" * 256
    )
    requests[erase, "post", 404, "not_found"] = lambda: api.post(f"{unknown_url}/erase")
    requests[erase, "post", 409, "idempotency_key_reused"] = lambda: (
        api.post(erasable_url, HTTP_IDEMPOTENCY_KEY="key-erase"),
        api.post(f"{acme_url}/erase", HTTP_IDEMPOTENCY_KEY="key-erase"),
    )[1]
    requests["/v1/events", "get", 400, "validation_error"] = lambda: api.get(
        "/v1/events", {"type": "customer.deleted"}
    )
    requests["/v1/events/{event_id}", "get", 404, "not_found"] = lambda: api.get("/v1/events/evt_x")
    return requests | webhook_error_example_requests(api)


def webhook_error_example_requests(api: APIClient) -> dict:
    """The webhook endpoints' documented errors (beside the 401 and 403 of every operation)."""
    hooks, hook, rotate = (
        "/v1/webhook_endpoints",
        "/v1/webhook_endpoints/{endpoint_id}",
        "/v1/webhook_endpoints/{endpoint_id}/rotate_secret",
    )
    body = {"url": "https://127.0.0.1/hooks", "enabled_events": ["*"]}

    def created() -> str:
        response = api.post(hooks, body, format="json")
        assert response.status_code == 201, response.content
        return f"{hooks}/{response.json()['id']}"

    def reused_key(method: str, url: str, first, second):
        key = f"hook-key-{method}-{url}"
        getattr(api, method)(url, first, format="json", HTTP_IDEMPOTENCY_KEY=key)
        return getattr(api, method)(url, second, format="json", HTTP_IDEMPOTENCY_KEY=key)

    def twice(method: str, suffix: str = ""):
        first, second = created(), created()
        key = f"hook-key-{method}{suffix}"
        getattr(api, method)(first + suffix, HTTP_IDEMPOTENCY_KEY=key)
        return getattr(api, method)(second + suffix, HTTP_IDEMPOTENCY_KEY=key)

    long_key = {"HTTP_IDEMPOTENCY_KEY": "k" * 256}
    return {
        (hooks, "get", 400, "validation_error"): lambda: api.get(hooks, {"limit": "5"}),
        (hooks, "post", 400, "validation_error"): lambda: api.post(
            hooks, {**body, "url": "ftp://hooks.example.com"}, format="json"
        ),
        (hooks, "post", 409, "idempotency_key_reused"): lambda: reused_key(
            "post", hooks, body, {**body, "description": "other"}
        ),
        (hooks, "post", 415, "unsupported_media_type"): lambda: api.post(
            hooks, "url=x", content_type="text/plain"
        ),
        (hook, "get", 400, "validation_error"): lambda: api.get(created(), {"limit": "5"}),
        (hook, "get", 404, "not_found"): lambda: api.get(f"{hooks}/we_x"),
        (hook, "patch", 400, "validation_error"): lambda: api.patch(
            created(), {"enabled_events": ["customer.deleted"]}, format="json"
        ),
        (hook, "patch", 404, "not_found"): lambda: api.patch(f"{hooks}/we_x", {}, format="json"),
        (hook, "patch", 409, "idempotency_key_reused"): lambda: (
            lambda url: reused_key("patch", url, {"description": "a"}, {"description": "b"})
        )(created()),
        (hook, "patch", 415, "unsupported_media_type"): lambda: api.patch(
            created(), "url=x", content_type="text/plain"
        ),
        (hook, "delete", 400, "validation_error"): lambda: api.delete(created(), **long_key),
        (hook, "delete", 404, "not_found"): lambda: api.delete(f"{hooks}/we_x"),
        (hook, "delete", 409, "idempotency_key_reused"): lambda: twice("delete"),
        (rotate, "post", 400, "validation_error"): lambda: api.post(
            created() + "/rotate_secret", **long_key
        ),
        (rotate, "post", 404, "not_found"): lambda: api.post(f"{hooks}/we_x/rotate_secret"),
        (rotate, "post", 409, "idempotency_key_reused"): lambda: twice("post", "/rotate_secret"),
    }


def test_the_export_is_described_with_both_formats_and_the_lists_filters(spec):
    export = spec["paths"]["/v1/customers/export"]["get"]
    assert set(export["responses"]["200"]["content"]) == {"text/csv", "application/x-ndjson"}
    names = [p["name"] for p in export["parameters"] if p["in"] == "query"]
    assert names[0] == "format"
    assert {"limit", "offset", "cursor", "expand"}.isdisjoint(names)
    assert {"status", "q", "created_at[gte]", "metadata", "sort", "order"} <= set(names)


def test_webhook_endpoint_responses_match_the_document(spec, scope_a):
    api = scope_a.client()
    hooks, hook = "/v1/webhook_endpoints", "/v1/webhook_endpoints/{endpoint_id}"
    created = api.post(
        hooks, {"url": "https://127.0.0.1/in", "enabled_events": ["*"]}, format="json"
    )
    assert created.status_code == 201, created.content
    assert_matches_schema(spec, created.json(), response_schema(spec, hooks, "post", 201))
    url = f"{hooks}/{created.json()['id']}"
    for method, response, path in (
        ("get", api.get(hooks), hooks),
        ("get", api.get(url), hook),
        ("patch", api.patch(url, {"enabled": False}, format="json"), hook),
        ("post", api.post(f"{url}/rotate_secret"), f"{hook}/rotate_secret"),
    ):
        assert response.status_code == 200, response.content
        assert_matches_schema(spec, response.json(), response_schema(spec, path, method, 200))
    with pytest.raises(ValidationError):  # the secret is documented where it is shown only
        assert_matches_schema(
            spec,
            api.get(url).json(),
            {"$ref": "#/components/schemas/WebhookEndpointWithSecret"},
        )


SEARCH = ("/v1/customers/search", "post")


def search_body_schema(spec: dict) -> dict:
    return operation(spec, *SEARCH)["requestBody"]["content"]["application/json"]["schema"]


def test_the_search_body_describes_every_condition_shape(spec, scope_a):
    """What the search accepts validates against its documented body, what it refuses for a
    condition's shape does not, and its answer is the list's documented page."""
    make_customer(scope_a.environment, external_id="acme-1", name="Acme")
    accepted = [
        {"field": "name", "operator": "contains", "data_type": "string", "value": {"string": "ac"}},
        {
            "field": "metadata.plan",
            "operator": "not_in",
            "data_type": "array",
            "value": {"array": ["x"]},
        },
        {
            "field": "created_at",
            "operator": "after",
            "data_type": "date",
            "value": {"date": "2024-01-01"},
        },
    ]
    refused = [
        {"field": "name", "operator": "after", "data_type": "string", "value": {"string": "ac"}},
        {"field": "created_at", "operator": "eq", "data_type": "string", "value": {"string": "x"}},
        {"field": "name", "operator": "in", "data_type": "array", "value": {"string": "x"}},
        {"field": "nope", "operator": "eq", "data_type": "string", "value": {"string": "x"}},
    ]
    api = scope_a.client()
    schema = search_body_schema(spec)
    for condition in accepted:
        body = {"filters": [condition], "sort": [{"field": "name", "direction": "asc"}]}
        assert_matches_schema(spec, body, schema)
        response = api.post(SEARCH[0], body, format="json")
        assert response.status_code == 200, response.content
        assert_matches_schema(spec, response.json(), response_schema(spec, *SEARCH, 200))
    for condition in refused:
        with pytest.raises(ValidationError):
            assert_matches_schema(spec, {"filters": [condition]}, schema)
        assert api.post(SEARCH[0], {"filters": [condition]}, format="json").status_code == 400
