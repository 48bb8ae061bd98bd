"""Text that enters must be valid Unicode without NUL bytes; bodies are at most 32 levels deep.

A lone surrogate ("\\udfff", which JSON allows but UTF-8 cannot write) once got stored in
metadata on SQLite and broke every page showing the row. Now every entry point refuses it
with a 400 naming the field, and nothing is stored.
"""

import importlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.apps import apps as global_apps
from django.db import connection
from django.db.migrations.state import ProjectState

from customers.api.parsers import MAX_DEPTH
from customers.filters import check_single_value
from customers.importer import ImportRowError, import_customers_csv
from customers.models import Customer, IdempotencyRecord
from customers.tests.factories import make_customer
from customers.text import SURROGATE_MESSAGE, repaired_text, text_problem

LONE_SURROGATE = "\udfff"
# json.dumps writes the lone surrogate as the escape \udfff: what a client sends.
SURROGATE_BODIES = {
    "metadata": {"external_id": "p1", "name": "ok", "metadata": {"k": LONE_SURROGATE}},
    "name": {"external_id": "p1", "name": f"bad {LONE_SURROGATE}"},
    "external_id": {"external_id": f"p{LONE_SURROGATE}", "name": "ok"},
    "address_city": {"external_id": "p1", "name": "ok", "address_city": LONE_SURROGATE},
}


def post_json(api, path: str, body, **headers):
    return api.post(path, data=json.dumps(body), content_type="application/json", **headers)


def assert_400_naming(response, name: str) -> dict:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert name in error["details"], error
    assert error["message"].startswith(name)
    return error


@pytest.mark.django_db
@pytest.mark.parametrize("field", sorted(SURROGATE_BODIES))
def test_a_lone_surrogate_in_a_created_customer_is_a_400_and_stores_nothing(api, field):
    error = assert_400_naming(post_json(api, "/v1/customers", SURROGATE_BODIES[field]), field)
    assert "lone surrogate" in error["message"]
    assert not Customer.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["put", "patch"])
def test_a_lone_surrogate_in_an_update_is_a_400_and_changes_nothing(api, scope_a, method):
    customer = make_customer(scope_a.scope, name="Before")
    response = getattr(api, method)(
        f"/v1/customers/{customer.pk}",
        data=json.dumps({"name": LONE_SURROGATE, "metadata": {"k": "v"}}),
        content_type="application/json",
    )
    assert_400_naming(response, "name")
    customer.refresh_from_db()
    assert (customer.name, customer.metadata) == ("Before", {})


@pytest.mark.django_db
def test_a_lone_surrogate_or_nul_in_a_field_name_is_a_400_naming_the_body(api):
    for name in (f"x{LONE_SURROGATE}", "x\x00"):
        response = post_json(api, "/v1/customers", {name: 1, "external_id": "e1", "name": "V"})
        assert_400_naming(response, "body")
    assert not Customer.objects.exists()


@pytest.mark.django_db
def test_a_refused_body_with_an_idempotency_key_is_kept_and_replayed_as_a_400(api):
    """The 400 is stored as the idempotency record: it must hold no NUL (jsonb) or surrogate."""
    body = {"x\x00": 1, "external_id": "e1", "name": "V"}
    first = post_json(api, "/v1/customers", body, HTTP_IDEMPOTENCY_KEY="k-nul")
    again = post_json(api, "/v1/customers", body, HTTP_IDEMPOTENCY_KEY="k-nul")
    assert first.status_code == again.status_code == 400
    first_body, again_body = first.json(), again.json()
    assert first_body["error"].pop("request_id") == first["X-Request-ID"]
    assert again_body["error"].pop("request_id") == again["X-Request-ID"]
    assert first_body == again_body


@pytest.mark.django_db
def test_a_surrogate_in_a_metadata_key_is_named(api):
    body = {"external_id": "e1", "name": "V", "metadata": {LONE_SURROGATE: "v"}}
    assert_400_naming(post_json(api, "/v1/customers", body), "metadata")


@pytest.mark.django_db
@pytest.mark.parametrize("key", [f"key{LONE_SURROGATE}", "key\x00"])
def test_an_idempotency_key_must_be_valid_text(api, key):
    body = {"external_id": "e1", "name": "V"}
    response = post_json(api, "/v1/customers", body, HTTP_IDEMPOTENCY_KEY=key)
    assert_400_naming(response, "Idempotency-Key")
    assert not Customer.objects.exists()
    assert not IdempotencyRecord.objects.exists()


def test_query_values_are_checked_for_lone_surrogates():
    with pytest.raises(Exception, match="lone surrogate"):
        check_single_value(f"a{LONE_SURROGATE}")


@pytest.mark.django_db
def test_a_csv_metadata_cell_with_a_lone_surrogate_is_refused(scope_a, tmp_path: Path):
    path = tmp_path / "customers.csv"
    # The metadata cell is JSON text whose escape decodes to a lone surrogate.
    path.write_text('external_id,name,metadata\ne1,Name,"{""k"": ""\\udfff""}"\n')
    with pytest.raises(ImportRowError) as caught:
        import_customers_csv(
            path=path, tenant_id=scope_a.scope.tenant_id, environment_id=scope_a.environment.pk
        )
    assert (caught.value.line, caught.value.field) == (2, "metadata")
    assert not Customer.objects.exists()


# --- nesting ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_body_nested_100000_levels_deep_is_a_400_naming_the_body(api):
    response = api.post("/v1/customers", data="[" * 100_000, content_type="application/json")
    error = assert_400_naming(response, "body")
    assert f"deeper than {MAX_DEPTH} levels" in error["message"]


@pytest.mark.django_db
def test_nesting_one_level_past_the_limit_is_refused_and_at_the_limit_is_parsed(api):
    def nested(levels: int):
        value = "x"
        for _ in range(levels - 1):
            value = [value]
        return value

    too_deep = {"external_id": "e1", "name": "V", "metadata": {"k": nested(MAX_DEPTH - 1)}}
    assert_400_naming(post_json(api, "/v1/customers", too_deep), "body")
    # At the limit the body parses, and the field's own rule answers.
    at_limit = {"external_id": "e1", "name": "V", "metadata": {"k": nested(MAX_DEPTH - 2)}}
    error = assert_400_naming(post_json(api, "/v1/customers", at_limit), "metadata")
    assert "values must be strings" in error["message"]


@pytest.mark.django_db
def test_malformed_json_names_the_body(api):
    assert_400_naming(
        api.post("/v1/customers", data='{"name": ', content_type="application/json"), "body"
    )
    assert_400_naming(
        api.post("/v1/customers", data='{"name": NaN}', content_type="application/json"), "body"
    )


# --- rows stored before the fix ----------------------------------------------------------


def test_text_problem_and_repair():
    assert text_problem("ok ✓ 😀") is None
    assert text_problem(f"a{LONE_SURROGATE}") == SURROGATE_MESSAGE
    assert repaired_text(f"a{LONE_SURROGATE}b") == "a\ufffdb"
    assert repaired_text("😀") == "😀"


@pytest.mark.django_db
def test_an_old_row_with_a_lone_surrogate_no_longer_takes_the_list_down(api, scope_a):
    """A row stored before the fix (only SQLite could keep one) reads back; the list stays up."""
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL never stored such text")
    make_customer(scope_a.scope, name="Old", metadata={"k": LONE_SURROGATE})
    make_customer(scope_a.scope, name="Fine")
    response = api.get("/v1/customers")
    assert response.status_code == 200
    assert sorted(item["name"] for item in json.loads(response.content)["items"]) == [
        "Fine",
        "Old",
    ]


@pytest.mark.django_db
def test_the_repair_migration_replaces_lone_surrogates(scope_a):
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL never stored such text")
    migration = importlib.import_module("customers.migrations.0007_repair_lone_surrogates")
    bad = make_customer(scope_a.scope, metadata={"k": f"v{LONE_SURROGATE}", "ok": "fine"})
    good = make_customer(scope_a.scope, metadata={"emoji": "😀"})
    # The migration reads the historical models and the connection's vendor.
    apps = ProjectState.from_apps(global_apps).apps
    migration.repair(apps, SimpleNamespace(connection=connection))
    bad.refresh_from_db()
    good.refresh_from_db()
    assert bad.metadata == {"k": "v\ufffd", "ok": "fine"}
    assert good.metadata == {"emoji": "😀"}
