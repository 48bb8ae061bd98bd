"""Saved views: made in the admin's customer list, picked there, applied by the API's
`view=<slug>` on the list and the export (Part 2, "Saved views")."""

import json
from urllib.parse import urlencode

import pytest
from django.test import Client

from customers.models import SavedView
from customers.saved_views import saved_view_create
from customers.services import staff_user_upsert
from customers.tests.factories import at, make_customer

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/customers/customer/"
SAVE = "/admin/customers/customer/views/save/"


@pytest.fixture
def customers(scope_a, scope_b):
    make_customer(
        scope_a.scope,
        external_id="d1",
        name="Draft One",
        status="draft",
        metadata={"plan": "pro"},
        created_at=at("2024-01-01T00:00:00"),
    )
    make_customer(
        scope_a.scope,
        external_id="d2",
        name="Draft Two",
        status="draft",
        created_at=at("2024-02-01T00:00:00"),
    )
    make_customer(
        scope_a.scope,
        external_id="p1",
        name="Published One",
        metadata={"plan": "pro"},
        created_at=at("2024-03-01T00:00:00"),
    )
    make_customer(scope_b.scope, external_id="b1", name="Draft Elsewhere", status="draft")


@pytest.fixture
def operator(scope_a, scope_b):
    return staff_user_upsert(username="operator", password="pw", tenant_ids=["tenant_a"])


@pytest.fixture
def colleague(scope_a):
    return staff_user_upsert(username="colleague", password="pw", tenant_ids=["tenant_a"])


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def view(owner, *, shared=True, name="Drafts", **params) -> SavedView:
    return saved_view_create(
        user=owner,
        tenant_id="tenant_a",
        name=name,
        params={
            key: value if isinstance(value, list) else [value] for key, value in params.items()
        },
        columns=[],
        shared=shared,
    )


def listed(api, query: str = "", path: str = "/v1/customers") -> list[str]:
    response = api.get(f"{path}?{query}")
    assert response.status_code == 200, response.content
    return [item["external_id"] for item in response.json()["items"]]


def refused(api, query: str, path: str = "/v1/customers") -> dict:
    response = api.get(f"{path}?{query}")
    assert response.status_code == 400, response.content
    return response.json()["error"]


# --- the API ---------------------------------------------------------------------------------


def test_a_shared_view_applies_its_parameters(api, customers, operator):
    view(operator, status="draft", sort="name", order="asc")
    assert listed(api, "view=drafts") == ["d1", "d2"]
    assert listed(api, "view=drafts") == listed(api, "status=draft&sort=name&order=asc")


def test_an_explicit_parameter_replaces_the_views(api, customers, operator):
    view(operator, status="draft", sort="name", order="asc", external_ids=["d1", "d2"])
    assert listed(api, "view=drafts&order=desc") == ["d2", "d1"]
    assert listed(api, "view=drafts&status=published") == []  # the ids still apply
    # A list parameter given explicitly replaces the view's whole list.
    assert listed(api, "view=drafts&external_ids=d2") == ["d2"]
    assert listed(api, "view=drafts&status=published&external_ids=p1") == ["p1"]


def test_a_private_unknown_or_other_tenants_view_is_a_400_naming_view(
    api, customers, operator, scope_b
):
    view(operator, shared=False, status="draft")
    for slug in ("drafts", "nope"):
        assert "not a shared view" in refused(api, f"view={slug}")["details"]["view"][0]
    view(operator, name="Shared", status="draft")
    assert listed(api, "view=shared") == ["d2", "d1"]
    assert "view" in refused(scope_b.client(), "view=shared")["details"]  # another tenant
    assert "only once" in refused(api, "view=shared&view=shared")["details"]["view"][0]
    assert listed(api, "view=") == listed(api)  # an empty value counts as absent


def test_a_view_whose_parameters_no_longer_validate_is_a_400_naming_view(api, customers, operator):
    view(operator, name="Broken", **{"created_at[gte]": "2024-01-01T00:00:00", "status": "draft"})
    error = refused(api, "view=broken")
    assert list(error["details"]) == ["view"]
    message = error["details"]["view"][0]
    assert "created_at[gte]" in message
    assert "without an offset" in message
    # The same parameter given explicitly is the caller's, and named as such.
    assert "created_at[gte]" in refused(api, "view=broken&created_at[gte]=bad")["details"]
    assert listed(api, "view=broken&created_at[gte]=2024-01-15") == ["d2"]


def test_a_view_with_an_admin_only_filter_is_a_400_naming_view(api, customers, operator):
    view(operator, name="With parents", has_parent="true")
    message = refused(api, "view=with-parents")["details"]["view"][0]
    assert "has_parent" in message


def test_the_export_applies_the_view(api, customers, operator):
    view(operator, status="draft", sort="name", order="asc")
    response = api.get("/v1/customers/export?view=drafts&format=jsonl")
    assert response.status_code == 200
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert [json.loads(line)["external_id"] for line in lines] == ["d1", "d2"]
    assert "view" in refused(api, "view=nope", path="/v1/customers/export")["details"]


def test_cursors_are_bound_to_the_view(api, customers, operator):
    view(operator, status="draft", sort="name", order="asc")
    first = api.get("/v1/customers?view=drafts&limit=1").json()
    cursor = first["pagination"]["next_cursor"]
    assert listed(api, f"view=drafts&limit=1&cursor={cursor}") == ["d2"]
    # The same parameters without the view: another list.
    same = urlencode({"status": "draft", "sort": "name", "order": "asc", "cursor": cursor})
    assert "cursor" in refused(api, same)["details"]


# --- the admin -------------------------------------------------------------------------------


def test_saving_the_list_as_a_view_and_picking_it(customers, operator):
    client = logged_in(operator)
    query = "status=draft&q=draft&sort=name&order=asc&cols=name,status"
    response = client.post(SAVE, {"query": query, "name": "My drafts", "shared": "on"})
    assert response.status_code == 302
    saved = SavedView.objects.get()
    assert (saved.slug, saved.shared, saved.owner, saved.tenant_id) == (
        "my-drafts",
        True,
        operator,
        "tenant_a",
    )
    assert saved.params == {"status": ["draft"], "q": ["draft"], "sort": ["name"], "order": ["asc"]}
    assert saved.columns == ["name", "status"]
    page = client.get(response["Location"])
    html = page.content.decode()
    assert page.status_code == 200
    assert "Draft One" in html
    assert "Draft Two" in html
    assert "Published One" not in html
    assert 'class="selected"' in html  # the view the list was opened from
    assert "column-email_address" not in html  # the columns it saved
    assert "column-status" in html


def test_private_views_are_their_owners_shared_ones_the_tenants(customers, operator, colleague):
    view(operator, name="Mine only", shared=False, status="draft")
    view(operator, name="For everyone", status="draft")
    html = logged_in(colleague).get(CHANGELIST).content.decode()
    assert "For everyone" in html
    assert "Mine only" not in html
    assert "Mine only" in logged_in(operator).get(CHANGELIST).content.decode()


def test_only_the_owner_or_a_superuser_changes_or_deletes_a_view(customers, operator, colleague):
    shared = view(operator, name="Shared one", status="draft")
    change = f"/admin/customers/savedview/{shared.pk}/change/"
    delete = f"/admin/customers/savedview/{shared.pk}/delete/"
    other = logged_in(colleague)
    assert other.get(change).status_code == 200  # seen, read only
    assert other.post(change, {"name": "Hijacked", "shared": "on"}).status_code == 403
    assert other.post(delete, {"post": "yes"}).status_code == 403
    shared.refresh_from_db()
    assert shared.name == "Shared one"
    owner = logged_in(operator)
    assert owner.post(change, {"name": "Renamed", "shared": ""}).status_code == 302
    shared.refresh_from_db()
    assert (shared.name, shared.slug, shared.shared) == ("Renamed", "shared-one", False)
    assert owner.post(delete, {"post": "yes"}).status_code == 302
    assert not SavedView.objects.exists()


def test_updating_ones_view_with_the_list_as_it_is(customers, operator, colleague):
    saved = view(operator, name="Drafts", status="draft")
    client = logged_in(operator)
    response = client.post(SAVE, {"query": "status=published", "update": saved.slug})
    assert response.status_code == 302
    saved.refresh_from_db()
    assert saved.params == {"status": ["published"]}
    # Someone else's view cannot be updated.
    logged_in(colleague).post(SAVE, {"query": "status=archived", "update": saved.slug})
    saved.refresh_from_db()
    assert saved.params == {"status": ["published"]}


def test_a_view_that_no_longer_validates_says_so(customers, operator):
    broken = view(operator, name="Broken", **{"created_at[gte]": "2024-01-01T00:00:00"})
    client = logged_in(operator)
    html = client.get(CHANGELIST).content.decode()
    assert "no longer valid" in html
    opened = client.get(
        f"{CHANGELIST}?created_at[gte]=2024-01-01T00:00:00&saved_view={broken.slug}"
    )
    assert "saved-view-problems" in opened.content.decode()
    state = client.get(f"/admin/customers/savedview/{broken.pk}/change/").content.decode()
    assert "no longer valid" in state


def test_a_view_needs_a_name_and_its_slug_is_unique(customers, operator):
    client = logged_in(operator)
    client.post(SAVE, {"query": "status=draft", "name": "  "})
    assert not SavedView.objects.exists()
    client.post(SAVE, {"query": "status=draft", "name": "Drafts"})
    client.post(SAVE, {"query": "status=draft", "name": "Drafts"})
    assert sorted(SavedView.objects.values_list("slug", flat=True)) == ["drafts", "drafts-2"]


def test_names_are_shown_escaped(customers, operator):
    view(operator, name="<script>alert(1)</script>", status="draft")
    html = logged_in(operator).get(CHANGELIST).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
