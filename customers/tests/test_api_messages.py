"""What the API says must be true and short: the browsable API's form, external ids, echoes."""

import html
import json
import re

import pytest
from rest_framework.test import APIClient

from customers.models import Customer
from customers.services import staff_user_upsert
from customers.tests.factories import make_customer

pytestmark = pytest.mark.django_db


def post_json(api, body):
    return api.post("/v1/customers", data=json.dumps(body), content_type="application/json")


def test_the_browsable_apis_prefilled_body_posts_once_the_required_fields_are_filled(scope_a):
    user = staff_user_upsert(username="operator", password="pw-for-tests", tenant_ids=["tenant_a"])
    client = APIClient()
    client.force_login(user)
    page = client.get("/v1/customers", HTTP_ACCEPT="text/html").content.decode()
    raw = re.search(r'<textarea[^>]*name="_content"[^>]*>(.*?)</textarea>', page, re.S)
    assert raw, "the raw data form is on the page"
    body = json.loads(html.unescape(raw.group(1)))
    assert body["email"] is None
    assert body["parent_customer_id"] is None
    assert body["status"] == "published"
    assert body["metadata"] == {}
    body.update(external_id="user_from_form", name="From the form")
    response = client.post("/v1/customers", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 201, response.content
    assert Customer.objects.get().external_id == "user_from_form"


def test_an_empty_email_says_what_to_send_instead(api):
    response = post_json(api, {"external_id": "e1", "name": "N", "email": ""})
    message = response.json()["error"]["details"]["email"][0]
    assert "required" not in message
    assert "null" in message
    # What the message suggests works: null, or no email at all.
    assert post_json(api, {"external_id": "e1", "name": "N", "email": None}).status_code == 201
    assert post_json(api, {"external_id": "e2", "name": "N"}).status_code == 201


@pytest.mark.parametrize("external_id", [" user_99001 ", " user_99001", "user_99001\t", "\n"])
def test_an_external_id_with_outer_whitespace_is_refused_never_trimmed(api, external_id):
    response = post_json(api, {"external_id": external_id, "name": "N"})
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {
        "external_id": ["must not begin or end with whitespace"]
    }
    assert not Customer.objects.exists()


def test_inner_whitespace_in_an_external_id_is_fine_and_updates_are_checked_too(api, scope_a):
    assert post_json(api, {"external_id": "user 1", "name": "N"}).status_code == 201
    customer = make_customer(scope_a.scope, external_id="user_2")
    response = api.patch(
        f"/v1/customers/{customer.pk}",
        data=json.dumps({"external_id": "user_2 "}),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "external_id" in response.json()["error"]["details"]


def test_a_long_id_is_echoed_short_in_the_404(api):
    long_id = "x" * 5000
    for path in (f"/v1/customers/{long_id}", f"/v1/customers/external/{'y' * 200}"):
        response = api.get(path)
        assert response.status_code == 404
        message = response.json()["error"]["message"]
        assert len(message) < 120, message
        assert "…" in message


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("offset=-1", "offset must be 0 or more"),
        ("offset=abc", "offset must be an integer, 0 or more"),
        ("offset=4611686018427387905", "offset must be at most 4611686018427387904"),
        ("limit=0", "limit must be between 1 and 1000"),
        ("limit=x", "limit must be an integer, between 1 and 1000"),
    ],
)
def test_integer_parameters_say_what_they_accept(api, query, message):
    response = api.get(f"/v1/customers?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == message


def test_the_browsable_api_shows_the_lists_filter_form(scope_a):
    make_customer(scope_a.scope, name="Visible")
    user = staff_user_upsert(username="operator", password="pw-for-tests", tenant_ids=["tenant_a"])
    client = APIClient()
    client.force_login(user)
    page = client.get("/v1/customers?status=draft&q=vis", HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    html = page.content.decode()
    form = html[html.index("Field filters") :]
    form = form[: form.index("</form>")]
    for name in ("status", "q", "email", "created_at[gte]", "updated_at[lt]", "sort", "order"):
        assert f'name="{name}"' in form, name
    for admin_only in ("tenant", "environment", "has_parent"):
        assert f'name="{admin_only}"' not in form, admin_only
    assert 'value="vis"' in form  # the current values are filled in
    assert '<option value="draft" selected>' in form


def test_a_refused_browser_request_gets_its_401_page_without_a_filter_form(db):
    page = APIClient().get("/v1/customers", HTTP_ACCEPT="text/html")
    assert page.status_code == 401
    assert "Field filters" not in page.content.decode()
