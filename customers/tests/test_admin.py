"""Admin pages: a login is required and staff see only their tenants' customers."""

import csv
import io
import re
from html import unescape

import pytest
from django import forms
from django.contrib import admin
from django.contrib.admin.templatetags.admin_list import items_for_result
from django.contrib.auth import get_user_model
from django.db import connection
from django.http import QueryDict
from django.test import Client
from django.test.utils import CaptureQueriesContext

from customers.admin import CustomerAdmin
from customers.admin_changelist import CustomerFilters
from customers.admin_rows import row_renderer
from customers.filters import CustomerFilterSet
from customers.models import Customer
from customers.services import staff_user_upsert
from customers.tests.contract import CUSTOMER_KEYS
from customers.tests.factories import at, make_customer

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/customers/customer/"


@pytest.fixture
def operator_client(scope_a, scope_a_sandbox, scope_b) -> Client:
    user = staff_user_upsert(username="operator", password="pw-for-tests", tenant_ids=["tenant_a"])
    client = Client()
    client.force_login(user)
    return client


def test_admin_needs_a_login():
    response = Client().get(CHANGELIST)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_staff_see_only_their_tenants_customers(operator_client, scope_a, scope_a_sandbox, scope_b):
    make_customer(scope_a.environment, name="Tenant A production")
    make_customer(scope_a_sandbox.environment, name="Tenant A sandbox")
    make_customer(scope_b.environment, name="Tenant B customer")
    html = operator_client.get(f"{CHANGELIST}?environment=all").content.decode()
    assert "Tenant A production" in html
    assert "Tenant A sandbox" in html
    assert "Tenant B customer" not in html


def test_the_list_shows_the_current_environment_by_default(
    operator_client, scope_a, scope_a_sandbox
):
    in_a = make_customer(scope_a.environment)
    in_sandbox = make_customer(scope_a_sandbox.environment)
    assert listed_ids(operator_client) == [in_a.pk]
    operator_client.post("/environment/switch", {"environment_id": "env_a_sandbox"})
    assert listed_ids(operator_client) == [in_sandbox.pk]
    assert listed_ids(operator_client, "?environment=") == [in_sandbox.pk]  # empty = absent
    assert set(listed_ids(operator_client, "?environment=all")) == {in_a.pk, in_sandbox.pk}


def test_staff_cannot_open_another_tenants_customer(operator_client, scope_b):
    other = make_customer(scope_b.environment)
    response = operator_client.get(f"{CHANGELIST}{other.pk}/change/")
    assert response.status_code in (302, 404)
    assert other.name not in response.content.decode()


def test_superuser_sees_every_tenant(scope_a, scope_b):
    make_customer(scope_a.environment, name="Tenant A production")
    make_customer(scope_b.environment, name="Tenant B customer")
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "r@example.com", "pw"))
    html = client.get(f"{CHANGELIST}?environment=all").content.decode()
    assert "Tenant A production" in html
    assert "Tenant B customer" in html


def test_no_hard_delete(operator_client, scope_a):
    customer = make_customer(scope_a.environment)
    response = operator_client.post(f"{CHANGELIST}{customer.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert type(customer).objects.filter(pk=customer.pk).exists()


def test_every_admin_page_shows_the_environment_switcher(operator_client):
    for url in ("/admin/", CHANGELIST):
        html = operator_client.get(url).content.decode()
        assert 'class="environment-switcher"' in html, url
        assert 'value="env_a_sandbox"' in html
        assert 'value="env_b"' not in html


def test_tenants_and_keys_are_for_superusers_only(operator_client):
    for url in ("/admin/customers/tenant/", "/admin/customers/apikey/"):
        assert operator_client.get(url).status_code == 403


# --- the customer list ---------------------------------------------------------------------


ROW_ID = re.compile(r'name="_selected_action" value="([^"]+)"')


def listed_ids(client, query: str = "") -> list[str]:
    """The ids the list shows (after the redirect of an `environment=<id>`, if any)."""
    response = client.get(f"{CHANGELIST}{query}", follow=True)
    assert response.status_code == 200
    return ROW_ID.findall(response.content.decode())


class TestChangeList:
    def test_search_is_case_insensitive_substring_over_name_email_and_external_id(
        self, operator_client, scope_a
    ):
        by_name = make_customer(scope_a.environment, name="Globex Billing", email=None)
        by_email = make_customer(scope_a.environment, name="X", email="Ops@GLOBEX.example")
        by_external = make_customer(scope_a.environment, name="Y", external_id="globex-42")
        make_customer(scope_a.environment, name="Initech", email="a@initech.example")
        assert set(listed_ids(operator_client, "?q=gLoBeX")) == {
            by_name.pk,
            by_email.pk,
            by_external.pk,
        }
        assert listed_ids(operator_client, "?q=globex+billing") == [by_name.pk]

    def test_search_finds_non_ascii_case_insensitively(self, operator_client, scope_a):
        customer = make_customer(scope_a.environment, name="École Électrique")
        assert listed_ids(operator_client, "?q=électrique") == [customer.pk]

    def test_filters(self, operator_client, scope_a, scope_a_sandbox):
        parent = make_customer(scope_a.environment, created_at=at("2024-01-10T12:00:00"))
        child = make_customer(
            scope_a.environment, parent=parent, status="draft", created_at=at("2024-02-10T12:00:00")
        )
        sandbox = make_customer(scope_a_sandbox.environment, created_at=at("2024-03-10T12:00:00"))
        assert listed_ids(operator_client, "?status=draft") == [child.pk]
        assert set(listed_ids(operator_client, "?environment=all&tenant=tenant_a")) == {
            parent.pk,
            child.pk,
            sandbox.pk,
        }
        assert listed_ids(operator_client, "?tenant=tenant_a") == [child.pk, parent.pk]
        assert listed_ids(operator_client, "?has_parent=true") == [child.pk]
        assert child.pk not in listed_ids(operator_client, "?has_parent=false")
        assert listed_ids(operator_client, f"?parent_customer_ids={parent.pk}") == [child.pk]
        assert listed_ids(
            operator_client, "?created_at[gte]=2024-02-01&created_at[lt]=2024-02-11"
        ) == [child.pk]
        assert listed_ids(operator_client, "?updated_at[lt]=2024-01-11") == [parent.pk]
        # Last: choosing an environment makes it the current one.
        assert listed_ids(operator_client, "?environment=env_a_sandbox") == [sandbox.pk]
        assert listed_ids(operator_client) == [sandbox.pk]

    def test_another_tenant_cannot_be_filtered_into_view(self, operator_client, scope_b):
        make_customer(scope_b.environment)
        assert listed_ids(operator_client, "?tenant=tenant_b") == []
        assert listed_ids(operator_client, "?environment=all&tenant=tenant_b") == []
        assert listed_ids(operator_client, "?environment=env_b") == []
        response = operator_client.get(f"{CHANGELIST}?environment=env_b", follow=True)
        assert "That environment is not one of yours." in response.content.decode()

    @pytest.mark.parametrize(
        ("query", "named"),
        [
            ("?status=bogus", "status"),
            ("?created_at[gte]=yesterday", "created_at[gte]"),
            ("?created_at_after=2024-01-01", "created_at_after"),  # the old name
            ("?q=ab", "q"),
            ("?has_parent=maybe", "has_parent"),
            ("?colour=blue", "colour"),
            ("?email=" + "x" * 300, "email"),
        ],
    )
    def test_invalid_filters_are_shown_not_dropped(self, operator_client, scope_a, query, named):
        make_customer(scope_a.environment)
        response = operator_client.get(f"{CHANGELIST}{query}")
        html = response.content.decode()
        assert response.status_code == 200
        assert 'id="filter-errors"' in html
        assert f"<strong>{named}</strong>" in html
        assert ROW_ID.findall(html) == []

    def test_column_sorting_matches_the_api(self, operator_client, scope_a):
        # Case-insensitive (Date after cherry), ties (Apple, apple) by id as the API's.
        for name in ["banana", "Apple", "cherry", "apple", "Date"]:
            make_customer(scope_a.environment, name=name)
        # As an operator does: the Name header's link, then the same header's link again.
        ascending_link = header_link(operator_client, "", "name")
        ascending = listed_ids(operator_client, ascending_link)
        descending = listed_ids(
            operator_client, header_link(operator_client, ascending_link, "name")
        )
        api = scope_a.client()
        for ids, order in ((ascending, "asc"), (descending, "desc")):
            items = api.get(f"/v1/customers?sort=name&order={order}").json()["items"]
            assert ids == [item["id"] for item in items], order
        assert descending == list(reversed(ascending))

    def test_pagination_shows_the_exact_total(self, operator_client, scope_a):
        for _ in range(55):
            make_customer(scope_a.environment)
        html = operator_client.get(CHANGELIST).content.decode()
        assert "55 customers" in html
        assert len(ROW_ID.findall(html)) == 50
        assert len(listed_ids(operator_client, "?p=2")) == 5

    def test_query_count_does_not_grow_with_rows(self, operator_client, scope_a):
        def queries() -> int:
            with CaptureQueriesContext(connection) as captured:
                assert operator_client.get(CHANGELIST).status_code == 200
            return len(captured)

        parent = make_customer(scope_a.environment)
        make_customer(scope_a.environment, parent=parent)
        few = queries()
        for _ in range(30):
            make_customer(scope_a.environment, parent=parent)
        assert queries() == few
        assert few <= 10


HEADER = re.compile(r'<th scope="col" class="(?P<classes>[^"]*)">(?P<content>.*?)</th>', re.S)


def list_headers(client, query: str = "") -> dict[str, str]:
    """The list's column headers, left to right: column name (its `column-` class) -> markup."""
    html = client.get(f"{CHANGELIST}{query}").content.decode()
    table = html[html.index('<table id="result_list">') :]
    thead = table[: table.index("</thead>")]
    headers = {}
    for match in HEADER.finditer(thead):
        classes = match["classes"].split()
        name = next((c.removeprefix("column-") for c in classes if c.startswith("column-")), None)
        headers[name or classes[0]] = match["content"]
    return headers


def header_link(client, query: str, column: str) -> str:
    """The query of the sort link in ``column``'s header (as the page at ``query`` has it)."""
    link = re.search(r'<a href="([^"]+)"', list_headers(client, query)[column])
    assert link is not None, f"{column} is not sortable"
    return unescape(link.group(1))


def test_the_list_shows_these_columns_in_this_order(operator_client, scope_a):
    make_customer(scope_a.environment)
    columns = ["name", "external_id", "email_address", "status", "parent_link", "created"]
    columns += ["updated"]
    assert list(list_headers(operator_client)) == ["action-checkbox-column", *columns]
    # Every environment: one more column, last (a column's number in `o` stays the same).
    every = list(list_headers(operator_client, "?environment=all"))
    assert every == ["action-checkbox-column", *columns, "tenant_environment"]
    # The columns that sort are those the API sorts by (and the headers say so).
    sortable = {
        name
        for name, content in list_headers(operator_client, "?environment=all").items()
        if "<a href=" in content
    }
    assert sortable == {"name", "external_id", "email_address", "status", "created", "updated"}


# --- one notion of environment: the list, its filter and the header switcher --------------

SELECT = re.compile(r'<select[^>]*\bid="(?P<id>[^"]+)"[^>]*>(?P<options>.*?)</select>', re.S)
SELECTED = re.compile(r'<option value="([^"]*)" selected>')


def selected_options(html: str) -> dict[str, list[str]]:
    """Each select of the page (by id) -> the values of its selected options."""
    return {match["id"]: SELECTED.findall(match["options"]) for match in SELECT.finditer(html)}


def header_and_filter(client, query: str = "") -> tuple[list[str], list[str]]:
    html = client.get(f"{CHANGELIST}{query}").content.decode()
    selected = selected_options(html)
    return selected["environment-switcher-select"], selected["filter-environment"]


def current_environment_id(client) -> str:
    html = client.get("/admin/").content.decode()
    return selected_options(html)["environment-switcher-select"][0]


class TestEnvironments:
    def test_the_header_and_the_filter_always_show_the_same_environment(
        self, operator_client, scope_a, scope_a_sandbox
    ):
        assert header_and_filter(operator_client) == (["env_a"], ["env_a"])
        assert header_and_filter(operator_client, "?environment=") == (["env_a"], ["env_a"])
        assert header_and_filter(operator_client, "?environment=all") == (["all"], ["all"])
        operator_client.post("/environment/switch", {"environment_id": "env_a_sandbox"})
        assert header_and_filter(operator_client, "?status=draft") == (
            ["env_a_sandbox"],
            ["env_a_sandbox"],
        )

    def test_the_switchers_all_option_is_on_the_customer_list_only(self, operator_client):
        html = operator_client.get("/admin/").content.decode()
        assert "All of my environments (this list)" not in html
        html = operator_client.get(CHANGELIST).content.decode()
        assert '<option value="all">All of my environments (this list)</option>' in html

    def test_an_environment_in_the_url_becomes_the_current_one(
        self, operator_client, scope_a, scope_a_sandbox
    ):
        in_sandbox = make_customer(scope_a_sandbox.environment, status="draft")
        response = operator_client.get(
            f"{CHANGELIST}?status=draft&environment=env_a_sandbox&p=2&o=2"
        )
        assert response.status_code == 302
        assert response["Location"] == f"{CHANGELIST}?status=draft&o=2"
        assert current_environment_id(operator_client) == "env_a_sandbox"
        assert listed_ids(operator_client, "?status=draft") == [in_sandbox.pk]

    def test_an_environment_not_ones_own_is_refused_like_the_switcher_does(
        self, operator_client, scope_a, scope_b
    ):
        response = operator_client.get(f"{CHANGELIST}?environment=env_b&status=draft")
        assert response.status_code == 302
        assert response["Location"] == f"{CHANGELIST}?status=draft"
        html = operator_client.get(response["Location"]).content.decode()
        assert "That environment is not one of yours." in html
        assert current_environment_id(operator_client) == "env_a"

    def test_the_switcher_drops_the_lists_environment_and_page(
        self, operator_client, scope_a, scope_a_sandbox
    ):
        response = operator_client.post(
            "/environment/switch",
            {
                "environment_id": "env_a_sandbox",
                "next": f"{CHANGELIST}?environment=all&p=2&status=draft",
            },
        )
        assert response["Location"] == f"{CHANGELIST}?status=draft"
        assert current_environment_id(operator_client) == "env_a_sandbox"

    def test_the_switcher_can_list_all_environments(
        self, operator_client, scope_a, scope_a_sandbox
    ):
        response = operator_client.post(
            "/environment/switch",
            {"environment_id": "all", "next": f"{CHANGELIST}?status=draft&p=3"},
        )
        assert response["Location"] == f"{CHANGELIST}?status=draft&environment=all"
        assert current_environment_id(operator_client) == "env_a"  # unchanged
        # "all" means the customer list: from another page, it goes there.
        response = operator_client.post(
            "/environment/switch", {"environment_id": "all", "next": "/admin/"}
        )
        assert response["Location"] == f"{CHANGELIST}?environment=all"

    def test_clear_all_filters_goes_back_to_the_current_environment(self, operator_client, scope_a):
        html = operator_client.get(f"{CHANGELIST}?environment=all").content.decode()
        assert '<a href="?" id="clear-all-filters">' in html
        html = operator_client.get(f"{CHANGELIST}?status=draft").content.decode()
        assert '<a href="?" id="clear-all-filters">' in html
        # The current environment alone is no filter to clear.
        for query in ("", "?environment="):
            html = operator_client.get(f"{CHANGELIST}{query}").content.decode()
            assert "clear-all-filters" not in html

    def test_scope_columns_only_when_listing_every_environment(self, operator_client, scope_a):
        make_customer(scope_a.environment)
        html = operator_client.get(CHANGELIST).content.decode()
        assert "column-tenant_environment" not in html
        html = operator_client.get(f"{CHANGELIST}?environment=all").content.decode()
        assert "column-tenant_environment" in html
        # One column: the tenant, then the environment (ids unique across tenants), both
        # allowed to wrap after their underscores.
        cell = '<td class="field-tenant_environment"><span class="tenant-id">tenant_<wbr>a /</span>'
        assert f"{cell} env_<wbr>a</td>" in html

    def test_export_follows_the_lists_rule(self, operator_client, scope_a, scope_a_sandbox):
        in_a = make_customer(scope_a.environment)
        in_sandbox = make_customer(scope_a_sandbox.environment)
        export = f"{CHANGELIST}export.csv"

        def exported(query: str = "") -> set[str]:
            response = operator_client.get(f"{export}{query}")
            assert response.status_code == 200
            text = b"".join(response.streaming_content).decode()
            return {row["id"] for row in csv.DictReader(io.StringIO(text))}

        assert exported() == {in_a.pk}
        assert exported("?environment=") == {in_a.pk}
        assert exported("?environment=all") == {in_a.pk, in_sandbox.pk}
        response = operator_client.get(f"{export}?environment=env_a_sandbox&status=published")
        assert response["Location"] == f"{export}?status=published"
        assert exported("?status=published") == {in_sandbox.pk}
        response = operator_client.get(f"{export}?environment=env_b")
        assert response["Location"] == CHANGELIST


# --- parity with the API ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "",
        "status=draft",
        "status=archived",
        "sort=name&order=asc",
        "sort=email&order=desc",
        "sort=external_id&order=asc",
        "sort=updated_at&order=asc",
        "sort=status&order=desc",
        "email=shared@example.com",
        "external_id=user_3",
        "external_ids=user_1,user_2,user_5",
        "status=published&sort=name&order=desc",
    ],
)
def test_ui_and_api_give_the_same_customers_in_the_same_order(
    operator_client, scope_a, scope_a_sandbox, scope_b, query
):
    names = ["delta", "Alpha", "charlie", "Bravo", "echo", "alpha"]
    for number, name in enumerate(names * 2):
        make_customer(
            scope_a.environment,
            name=name,
            external_id=f"user_{number}",
            email="shared@example.com" if number % 3 == 0 else None,
            status=["published", "draft", "archived"][number % 3],
            created_at=at("2024-01-01T00:00:00"),
        )
        make_customer(scope_a_sandbox.environment, name=name, external_id=f"user_{number}")
        make_customer(scope_b.environment, name=name, external_id=f"user_{number}")
    api_ids = [
        item["id"] for item in scope_a.client().get(f"/v1/customers?{query}").json()["items"]
    ]
    ui_ids = listed_ids(operator_client, f"?environment=env_a&{query}")
    assert api_ids
    assert ui_ids == api_ids


@pytest.mark.parametrize(
    "query",
    [
        "q=alpha",
        "q=ALPHA+user_1",
        "q=%C3%A9cole",
        "q=example.com&sort=name&order=asc",
        "created_at[gte]=2024-01-03",
        "created_at[lt]=2024-01-03T12:00:00Z",
        "created_at[gt]=2024-01-02T00:00:00%2B00:00&created_at[lte]=2024-01-05",
        "created_at[gte]=2024-01-03T02:00:00.5%2B02:00&sort=created_at&order=asc",
        "updated_at[gte]=2024-02-04&updated_at[lt]=2024-02-09",
        "metadata[tier]=gold",
        "metadata[tier]=gold&metadata[region]=eu",
        "metadata[tier]=Gold",
        "q=alpha&metadata[tier]=gold&created_at[lt]=2024-01-10&sort=email&order=desc",
    ],
)
def test_ui_and_api_give_the_same_customers_for_search_bounds_and_metadata(
    operator_client, scope_a, scope_a_sandbox, scope_b, query
):
    names = ["Alpha Labs", "alpha works", "Bravo", "École Alpha", "charlie", "ALPHA"]
    for number in range(12):
        fields = {
            "name": names[number % len(names)],
            "external_id": f"user_{number}",
            "email": f"ops{number}@example.com" if number % 4 else None,
            "metadata": {"tier": ["gold", "silver", "Gold"][number % 3], "region": "eu"}
            if number % 2
            else {"tier": "gold"},
            "created_at": at(f"2024-01-{1 + number % 6:02d}T{number:02d}:00:00"),
            "updated_at": at(f"2024-02-{1 + number:02d}T00:00:00"),
        }
        make_customer(scope_a.environment, **fields)
        make_customer(scope_a_sandbox.environment, **fields)
        make_customer(scope_b.environment, **fields)
    response = scope_a.client().get(f"/v1/customers?{query}")
    assert response.status_code == 200, response.json()
    api_ids = [item["id"] for item in response.json()["items"]]
    ui_ids = listed_ids(operator_client, f"?environment=env_a&{query}")
    assert api_ids  # the filter matches some, not all
    assert len(api_ids) < 12
    assert ui_ids == api_ids


# --- the detail page -------------------------------------------------------------------------


def change_url(customer) -> str:
    return f"{CHANGELIST}{customer.pk}/change/"


def form_data(customer, **overrides) -> dict:
    data = {
        "external_id": customer.external_id,
        "name": customer.name,
        "email": customer.email or "",
        "status": customer.status,
        "parent": customer.parent_id or "",
        "address_line1": customer.address_line1,
        "address_line2": customer.address_line2,
        "address_city": customer.address_city,
        "address_state": customer.address_state,
        "address_postal_code": customer.address_postal_code,
        "address_country": customer.address_country,
        "metadata_key": [*customer.metadata, ""],
        "metadata_value": [*customer.metadata.values(), ""],
    }
    data.update(overrides)
    return data


def field_errors(html: str, field: str) -> list[str]:
    """The messages under one field of a change form (its errorlist), as text."""
    match = re.search(
        rf'<ul class="errorlist"[^>]*id="id_{field}_error"[^>]*>(.*?)</ul>', html, re.S
    )
    if match is None:
        return []
    return [unescape(item) for item in re.findall(r"<li>(.*?)</li>", match.group(1), re.S)]


class TestDetail:
    def test_edit_goes_through_the_services(self, operator_client, scope_a):
        customer = make_customer(scope_a.environment, name="Old", metadata={"a": "1", "b": "2"})
        before = customer.updated_at
        data = form_data(
            customer,
            name="New Name",
            address_country="fr",
            metadata_key=["a", "", "c"],
            metadata_value=["10", "", "3"],
        )
        response = operator_client.post(change_url(customer), data)
        assert response.status_code == 302, response.content.decode()[:2000]
        customer.refresh_from_db()
        assert customer.name == "New Name"
        assert customer.name_key == "new name"
        assert customer.address_country == "FR"
        assert customer.metadata == {"a": "10", "c": "3"}
        assert customer.updated_at > before

    @pytest.mark.parametrize(
        ("overrides", "field", "message"),
        [
            ({"email": "not-an-email"}, "email", "Must be a valid email address"),
            (
                {"address_country": "XX"},
                "address_country",
                "Must be an ISO 3166-1 alpha-2 country code (e.g. US) or empty",
            ),
            ({"name": "x" * 256}, "name", "Must be at most 255 characters"),
            (
                {"metadata_key": ["k" * 41], "metadata_value": ["v"]},
                "metadata",
                "Keys must be at most 40 characters",
            ),
            (
                {"metadata_key": ["", "k"], "metadata_value": ["v", "w"]},
                "metadata",
                "Keys must not be empty (a row has a value only)",
            ),
        ],
    )
    def test_the_api_validation_messages_are_shown_under_the_fields(
        self, operator_client, scope_a, overrides, field, message
    ):
        customer = make_customer(scope_a.environment, name="Keep")
        response = operator_client.post(change_url(customer), form_data(customer, **overrides))
        assert response.status_code == 200
        errors = field_errors(response.content.decode(), field)
        assert len(errors) == 1
        assert errors[0].startswith(message), errors  # without the API's field name
        customer.refresh_from_db()
        assert customer.name == "Keep"

    def test_a_taken_external_id_is_refused(self, operator_client, scope_a):
        make_customer(scope_a.environment, external_id="taken")
        customer = make_customer(scope_a.environment, external_id="mine")
        response = operator_client.post(
            change_url(customer), form_data(customer, external_id="taken")
        )
        assert response.status_code == 200
        # The API's wording (its 409 names the field and the value), under the field's label.
        assert field_errors(response.content.decode(), "external_id") == [
            "A customer with this external id already exists in this environment"
        ]
        api = scope_a.client().patch(
            f"/v1/customers/{customer.pk}", {"external_id": "taken"}, format="json"
        )
        assert api.status_code == 409
        assert api.json()["error"]["message"] == (
            "a customer with external_id 'taken' already exists in this environment"
        )

    def test_blank_metadata_rows_do_not_pile_up_on_refused_saves(self, operator_client, scope_a):
        customer = make_customer(scope_a.environment, metadata={"tier": "gold"})
        data = form_data(customer, address_country="XX")  # refused every time
        for _ in range(4):
            response = operator_client.post(change_url(customer), data)
            assert response.status_code == 200
            html = response.content.decode()
            keys = re.findall(r'name="metadata_key" value="([^"]*)"', html)
            values = re.findall(r'name="metadata_value" value="([^"]*)"', html)
            assert keys == ["tier", "", "", ""]  # the filled row and three blank ones
            assert values == ["gold", "", "", ""]
            # Post the page back as the browser would: every row it shows.
            data = {**data, "metadata_key": keys, "metadata_value": values}

    def test_parent_must_be_in_the_same_environment_and_not_a_descendant(
        self, operator_client, scope_a, scope_a_sandbox
    ):
        top = make_customer(scope_a.environment)
        child = make_customer(scope_a.environment, parent=top)
        elsewhere = make_customer(scope_a_sandbox.environment)
        for parent, message in (
            (child, "Must not be one of the customer's descendants"),
            (elsewhere, "Must be an existing customer of the same tenant and environment"),
        ):
            response = operator_client.post(change_url(top), form_data(top, parent=parent.pk))
            assert response.status_code == 200
            assert field_errors(response.content.decode(), "parent") == [message]
        top.refresh_from_db()
        assert top.parent_id is None

    def test_parent_autocomplete_is_limited_to_the_environment_and_live_customers(
        self, operator_client, scope_a, scope_a_sandbox, scope_b
    ):
        live = make_customer(scope_a.environment, name="Umbrella Live")
        make_customer(scope_a.environment, name="Umbrella Archived", status="archived")
        make_customer(scope_a_sandbox.environment, name="Umbrella Sandbox")
        make_customer(scope_b.environment, name="Umbrella Other Tenant")
        customer = make_customer(scope_a.environment)
        html = operator_client.get(change_url(customer)).content.decode()
        assert "environment=env_a" in html
        response = operator_client.get(
            "/admin/autocomplete/",
            {
                "app_label": "customers",
                "model_name": "customer",
                "field_name": "parent",
                "term": "umbrella",
                "environment": "env_a",
            },
        )
        assert [result["id"] for result in response.json()["results"]] == [live.pk]

    def test_children_are_listed_and_paginated(self, operator_client, scope_a):
        parent = make_customer(scope_a.environment)
        for number in range(25):
            make_customer(scope_a.environment, parent=parent, name=f"Child {number:02d}")
        html = operator_client.get(change_url(parent)).content.decode()
        assert "Children (25)" in html
        assert "Child 00" in html
        assert "Child 24" not in html
        html = operator_client.get(change_url(parent) + "?children_page=2").content.decode()
        assert "Child 24" in html

    def test_detail_query_count_does_not_grow_with_children(self, operator_client, scope_a):
        parent = make_customer(scope_a.environment)
        make_customer(scope_a.environment, parent=parent)

        def queries() -> int:
            with CaptureQueriesContext(connection) as captured:
                assert operator_client.get(change_url(parent)).status_code == 200
            return len(captured)

        few = queries()
        for _ in range(15):
            make_customer(scope_a.environment, parent=parent)
        assert queries() == few

    def test_create_in_the_current_environment(self, operator_client, scope_a_sandbox):
        operator_client.post("/environment/switch", {"environment_id": "env_a_sandbox"})
        data = {
            "external_id": "new_1",
            "name": "Brand New",
            "email": "",
            "status": "draft",
            "parent": "",
            "metadata_key": ["tier"],
            "metadata_value": ["gold"],
        }
        response = operator_client.post(f"{CHANGELIST}add/", data)
        assert response.status_code == 302, response.content.decode()[:3000]
        customer = Customer.objects.get(external_id="new_1")
        assert (customer.tenant_id, customer.environment_id) == ("tenant_a", "env_a_sandbox")
        assert customer.email is None
        assert customer.metadata == {"tier": "gold"}
        assert customer.status == "draft"

    def test_the_add_page_says_where_and_shows_nothing_the_server_sets(
        self, operator_client, scope_a, scope_a_sandbox
    ):
        operator_client.post("/environment/switch", {"environment_id": "env_a_sandbox"})
        where = (
            "This customer will be created in <strong>tenant_a / env_a_sandbox</strong>"
            " (change it with the switcher at the top)."
        )
        server_set = ("id", "tenant_id", "environment_id", "created_at", "updated_at")
        html = operator_client.get(f"{CHANGELIST}add/").content.decode()
        assert where in html
        for field in server_set:
            assert f"field-{field}" not in html, field
        assert "cust_" not in html  # no pre-generated id
        assert "None" not in html
        # Refused, the page says it again; a saved customer's page shows them all.
        response = operator_client.post(f"{CHANGELIST}add/", {"external_id": "", "name": ""})
        assert response.status_code == 200
        assert where in response.content.decode()
        customer = make_customer(scope_a_sandbox.environment)
        html = operator_client.get(change_url(customer)).content.decode()
        assert "add-scope" not in html
        for field in server_set:
            assert f"field-{field}" in html, field

    def test_archive_asks_first_and_restore_does_not(self, operator_client, scope_a):
        customer = make_customer(scope_a.environment, name="Cyclical Corp")
        archive = f"{CHANGELIST}{customer.pk}/archive/"
        html = operator_client.get(change_url(customer)).content.decode()
        assert f'<a href="{archive}" id="archive-customer">Archive</a>' in html
        # The button leads to a confirmation page, which changes nothing by itself.
        response = operator_client.get(archive)
        assert response.status_code == 200
        html = response.content.decode()
        assert "<h1>Are you sure?</h1>" in html
        assert "archive the customer “Cyclical Corp" in html
        assert '<form method="post">' in html
        assert 'value="Yes, I\u2019m sure"' in html  # Django's wording
        assert f'href="{change_url(customer)}" class="button cancel-link"' in html
        assert status_of(customer) == "published"
        # Its form POSTs to the same URL.
        response = operator_client.post(archive, follow=True)
        assert response.redirect_chain == [(change_url(customer), 302)]
        assert status_of(customer) == "archived"
        html = response.content.decode()
        assert "1 customer archived." in html
        assert "restore-customer" in html
        # Restore is one click.
        response = operator_client.post(f"{CHANGELIST}{customer.pk}/restore/", follow=True)
        assert status_of(customer) == "published"
        assert "1 customer restored." in response.content.decode()
        assert operator_client.get(f"{CHANGELIST}{customer.pk}/restore/").status_code == 405

    def test_history_is_confined_to_the_tenant(self, operator_client, scope_b):
        theirs = make_customer(scope_b.environment)
        response = operator_client.get(f"{CHANGELIST}{theirs.pk}/history/")
        assert response.status_code in (302, 404)


def status_of(customer: Customer) -> str:
    customer.refresh_from_db()
    return customer.status


def archived_ids() -> set[str]:
    return set(Customer.objects.filter(status="archived").values_list("pk", flat=True))


class TestBulkActions:
    def test_archive_selected_asks_first_and_restore_does_not(self, operator_client, scope_a):
        customers = [make_customer(scope_a.environment, name=f"Bulk {n}") for n in range(3)]
        ids = [customer.pk for customer in customers[:2]]
        action = {"action": "archive_selected", "index": "0", "_selected_action": ids}
        response = operator_client.post(CHANGELIST, action)
        assert response.status_code == 200
        html = response.content.decode()
        assert "<h1>Are you sure?</h1>" in html
        assert "These 2 customers will be archived" in html
        assert "Bulk 0" in html
        assert "Bulk 1" in html
        assert "Bulk 2" not in html
        assert archived_ids() == set()
        # The page's form posts the same selection again, with post=yes.
        for pk in ids:
            assert f'<input type="hidden" name="_selected_action" value="{pk}">' in html
        assert '<input type="hidden" name="action" value="archive_selected">' in html
        assert '<input type="hidden" name="post" value="yes">' in html
        confirm = {"action": "archive_selected", "_selected_action": ids, "post": "yes"}
        response = operator_client.post(CHANGELIST, confirm, follow=True)
        assert archived_ids() == set(ids)
        assert "2 customers archived." in response.content.decode()
        restore = {"action": "restore_selected", "index": "0", "_selected_action": ids}
        response = operator_client.post(CHANGELIST, restore, follow=True)
        assert archived_ids() == set()
        assert "2 customers restored." in response.content.decode()

    def test_archive_every_match_of_the_list(self, operator_client, scope_a, monkeypatch):
        monkeypatch.setattr("customers.admin.ARCHIVE_LISTED", 2)
        drafts = {make_customer(scope_a.environment, status="draft").pk for _ in range(4)}
        make_customer(scope_a.environment, status="published")
        on_the_page = sorted(drafts)[:1]
        action = {
            "action": "archive_selected",
            "index": "0",
            "select_across": "1",
            "_selected_action": on_the_page,
        }
        html = operator_client.post(f"{CHANGELIST}?status=draft", action).content.decode()
        assert "These 4 customers will be archived" in html
        assert "… and 2 more" in html
        assert '<input type="hidden" name="select_across" value="1">' in html
        confirm = {**action, "post": "yes"}
        del confirm["index"]
        response = operator_client.post(f"{CHANGELIST}?status=draft", confirm, follow=True)
        assert archived_ids() == drafts
        assert "4 customers archived." in response.content.decode()

    def test_restore_into_a_taken_external_id_is_reported(self, operator_client, scope_a):
        archived = make_customer(scope_a.environment, external_id="dup", status="archived")
        make_customer(scope_a.environment, external_id="dup")
        response = operator_client.post(
            CHANGELIST,
            {"action": "restore_selected", "_selected_action": [archived.pk]},
            follow=True,
        )
        assert "Not restored" in response.content.decode()
        archived.refresh_from_db()
        assert archived.status == "archived"

    def test_actions_cannot_reach_another_tenant(self, operator_client, scope_b):
        theirs = make_customer(scope_b.environment)
        action = {"action": "archive_selected", "index": "0", "_selected_action": [theirs.pk]}
        response = operator_client.post(CHANGELIST, action, follow=True)
        html = response.content.decode()
        assert "None of the selected customers can be archived." in html
        assert theirs.name not in html
        action = {"action": "archive_selected", "_selected_action": [theirs.pk], "post": "yes"}
        operator_client.post(CHANGELIST, action)
        assert status_of(theirs) == "published"
        assert operator_client.get(f"{CHANGELIST}{theirs.pk}/archive/").status_code == 404


def test_favicon(operator_client):
    response = operator_client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"] == "/static/customers/favicon.svg"
    icon = Client().get(response["Location"])
    assert icon.status_code == 200
    assert icon["Content-Type"] == "image/svg+xml"
    assert b"<svg" in b"".join(icon.streaming_content)
    link = '<link rel="icon" href="/static/customers/favicon.svg" type="image/svg+xml">'
    for url, accept in [
        ("/admin/", "text/html"),
        (CHANGELIST, "text/html"),
        ("/v1/customers", "text/html"),
    ]:
        response = operator_client.get(url, HTTP_ACCEPT=accept)
        assert response.status_code == 200, url
        assert link in response.content.decode(), url
    assert link in Client().get("/admin/login/").content.decode()


class TestExport:
    def rows(self, client, query: str = "") -> list[dict]:
        response = client.get(f"{CHANGELIST}export.csv{query}")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        text = b"".join(response.streaming_content).decode()
        return list(csv.DictReader(io.StringIO(text)))

    def test_exports_the_filtered_list_with_the_api_columns(
        self, operator_client, scope_a, scope_b
    ):
        draft = make_customer(scope_a.environment, status="draft", metadata={"tier": "gold"})
        make_customer(scope_a.environment, status="published")
        make_customer(scope_b.environment, status="draft")
        rows = self.rows(operator_client, "?status=draft")
        assert [row["id"] for row in rows] == [draft.pk]
        assert list(rows[0]) == CUSTOMER_KEYS
        assert rows[0]["metadata"] == '{"tier": "gold"}'

    def test_formula_cells_are_neutralised(self, operator_client, scope_a):
        make_customer(
            scope_a.environment,
            name='=HYPERLINK("http://evil")',
            address_city="+1",
            address_state="@x",
        )
        row = self.rows(operator_client)[0]
        assert row["name"].startswith("'=")
        assert row["address_city"] == "'+1"
        assert row["address_state"] == "'@x"
        # ... and the link says so (the contract: the spreadsheet export says it neutralises).
        page = operator_client.get("/admin/customers/customer/").content.decode()
        link = re.search(r'<a [^>]*id="export-csv"[^>]*>', page).group(0)
        assert "prefixed with an apostrophe" in link
        assert "/v1/customers/export" in link

    def test_rows_stream_in_chunks_and_none_is_lost(self, operator_client, scope_a, monkeypatch):
        monkeypatch.setattr("customers.exports.CHUNK_SIZE", 3)
        created = {make_customer(scope_a.environment).pk for _ in range(10)}
        response = operator_client.get(f"{CHANGELIST}export.csv")
        chunks = list(response.streaming_content)
        assert len(chunks) == 4  # header + 10 rows, three rows a chunk
        rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
        assert {row["id"] for row in rows} == created

    def test_invalid_filters_do_not_export(self, operator_client, scope_a):
        make_customer(scope_a.environment)
        response = operator_client.get(f"{CHANGELIST}export.csv?status=bogus")
        assert response.status_code == 302


def test_a_deep_page_reads_ids_first_and_shows_the_same_rows(operator_client, scope_a, monkeypatch):
    for number in range(60):
        make_customer(scope_a.environment, name=f"Customer {number:02d}")
    shallow = listed_ids(operator_client, "?p=2")
    monkeypatch.setattr("customers.selectors.DEFERRED_JOIN_OFFSET", 1)
    with CaptureQueriesContext(connection) as captured:
        deep = listed_ids(operator_client, "?p=2")
    assert deep == shallow
    assert len(deep) == 10
    assert any("IN (" in q["sql"] for q in captured)


def test_a_one_page_search_needs_no_count_and_reads_its_rows_once(operator_client, scope_a):
    wanted = make_customer(scope_a.environment, name="Rare Name Zyxw")
    for _ in range(5):
        make_customer(scope_a.environment)
    operator_client.get(CHANGELIST)
    with CaptureQueriesContext(connection) as captured:
        assert listed_ids(operator_client, "?q=zyxw") == [wanted.pk]
    customer_reads = [q["sql"] for q in captured if 'FROM "customers_customer"' in q["sql"]]
    assert len(customer_reads) == 1, customer_reads
    assert not any("COUNT(" in sql for sql in customer_reads)


def test_a_full_first_page_is_read_once_and_counted(operator_client, scope_a):
    for _ in range(55):
        make_customer(scope_a.environment, name="Common Name")
    with CaptureQueriesContext(connection) as captured:
        html = operator_client.get(f"{CHANGELIST}?q=common").content.decode()
    assert "55 customers" in html
    assert len(ROW_ID.findall(html)) == 50
    customer_reads = [q["sql"] for q in captured if 'FROM "customers_customer"' in q["sql"]]
    assert len(customer_reads) == 2  # the first page (plus one row), the count


def test_a_search_counts_its_matches_up_to_a_limit(operator_client, scope_a, monkeypatch):
    monkeypatch.setattr("customers.selectors.SEARCH_COUNT_LIMIT", 5)
    monkeypatch.setattr(CustomerAdmin, "list_per_page", 2)
    for _ in range(7):
        make_customer(scope_a.environment, name="Common Name")
    make_customer(scope_a.environment, name="Other")
    html = operator_client.get(f"{CHANGELIST}?q=common").content.decode()
    assert '<span id="result-count" class="capped-count">5+ customers</span>' in html
    assert "5+ results" in html
    assert 'href="?p=3&amp;q=common"' in html  # pages within the counted matches
    assert 'href="?p=4' not in html
    # Without a search the total stays exact (the per-status counts).
    html = operator_client.get(CHANGELIST).content.decode()
    assert '<span id="result-count">8 customers</span>' in html
    # Asked to, it counts them all (and its pages keep counting them all).
    html = operator_client.get(f"{CHANGELIST}?q=common").content.decode()
    count_all = re.search(r'<a href="([^"]+)" id="count-all">', html).group(1).replace("&amp;", "&")
    html = operator_client.get(f"{CHANGELIST}{count_all}").content.decode()
    assert '<span id="result-count">7 customers</span>' in html
    assert 'href="?count=all&amp;p=4&amp;q=common"' in html
    # A search with no more matches than the limit shows its exact count.
    monkeypatch.setattr("customers.selectors.SEARCH_COUNT_LIMIT", 7)
    html = operator_client.get(f"{CHANGELIST}?q=common").content.decode()
    assert '<span id="result-count">7 customers</span>' in html


def test_the_action_checkbox_is_the_markup_django_writes(scope_a):
    """CustomerAdmin.action_checkbox writes ModelAdmin.action_checkbox's markup directly."""
    customer_admin = CustomerAdmin(Customer, admin.site)
    for name in ["Plain", 'Quote " & <b>bold</b>', "École  two spaces", "'single'"]:
        customer = make_customer(scope_a.environment, name=name)
        ours = customer_admin.action_checkbox(customer)
        assert ours == admin.ModelAdmin.action_checkbox(customer_admin, customer), name


def test_the_list_is_filtered_through_djangos_list_filter_hooks(operator_client, scope_a):
    """Every parameter reaches CustomerFilters, Django's list_filter protocol: Django sets
    the change list's filter state from it, and no parameter becomes a field lookup."""
    for _ in range(51):
        make_customer(scope_a.environment, status="draft")
    with CaptureQueriesContext(connection) as captured:
        response = operator_client.get(f"{CHANGELIST}?status=draft&o=2")
    cl = response.context["cl"]
    assert [type(spec) for spec in cl.filter_specs] == [CustomerFilters]
    assert cl.has_filters
    assert cl.filter_specs[0].used_parameters == {"status": ["draft"]}
    assert cl.clear_all_filters_qs == "?o=2"  # Django's: the filters go, the sort stays
    assert cl.result_count == 51
    assert len(cl.result_list) == 50
    # Counted by the per-status counts (no COUNT of the scope), the page read once.
    customer_reads = [q["sql"] for q in captured if 'FROM "customers_customer"' in q["sql"]]
    assert len(customer_reads) == 1, customer_reads
    assert not any("COUNT(" in q["sql"] for q in captured)
    # A lookup Django itself would refuse (a 400) is named like any other unknown parameter.
    response = operator_client.get(f"{CHANGELIST}?parent__name__startswith=A")
    assert response.status_code == 200
    assert "<strong>parent__name__startswith</strong>: is not a filter of this list" in (
        response.content.decode()
    )


def test_the_sidebar_is_the_filtersets_form_and_leaves_its_fields_alone(operator_client, scope_a):
    html = operator_client.get(f"{CHANGELIST}?customer_ids=a,b&created_at[lte]=2024-01-01").content
    html = html.decode()
    # The FilterSet's fields in the admin's widgets, values as the request gave them; a
    # filter in force that the sidebar does not lay out is shown too.
    assert '<select name="status" id="filter-status">' in html
    assert 'name="created_at[gte]" class="vDateField" size="10" id="filter-created-after"' in html
    assert 'name="created_at[lte]" value="2024-01-01" class="vDateField"' in html
    assert '<input type="text" name="customer_ids" value="a,b" id="filter-customer_ids">' in html
    # The FilterSet's own form (the API's) is untouched: no admin widget, id or label on it.
    form = CustomerFilterSet(data=QueryDict(""), queryset=Customer.objects.none()).form
    for name, field in form.fields.items():
        assert "id" not in field.widget.attrs, name
        # `metadata` reads the `metadata[KEY]` parameters; `conditions` (the search body's)
        # has no markup: no page shows it.
        if name not in ("metadata", "conditions"):
            assert "filter-" not in str(form[name]), name
    assert type(form.fields["created_at[gte]"].widget) is forms.TextInput


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?environment=all&tenant=tenant_a&status=draft&has_parent=true",
        "?email=a%22b%26%3Cc%3E@example.com&parent_customer_ids=x,y",
        "?created_at[gt]=2024-01-01T00:00:00%2B02:00&created_at[lte]=bad&external_ids=a",
        "?metadata[plan]=gold&q=word",
    ],
)
def test_the_sidebar_inputs_are_the_markup_django_writes(operator_client, scope_a, query):
    """The sidebar's widgets written directly (admin_changelist.widget_html) against
    Django's own rendering of the same widget, name, value and attributes."""
    response = operator_client.get(f"{CHANGELIST}{query}")
    html = response.content.decode()
    inputs = [
        each for group in response.context["cl"].customer_filters.sidebar for each in group.inputs
    ]
    assert len(inputs) >= 11
    for each in inputs:
        django = each.widget.render(each.name, each.value, each.attrs)
        assert each.html == django, each.name
        assert django in html, each.name


def test_the_filter_forms_metadata_rows_become_metadata_params(operator_client, scope_a):
    query = (
        "?metadata_key=plan&metadata_value=gold&metadata_key=&metadata_value="
        "&metadata_key=region&metadata_value=eu&status=&email=&metadata%5Bold%5D=x&p=3"
    )
    response = operator_client.get(f"{CHANGELIST}{query}")
    assert response.status_code == 302
    # The rows replace the metadata parameters; empty values and the page are left out.
    assert response["Location"] == f"{CHANGELIST}?metadata[plan]=gold&metadata[region]=eu"
    # A value without a key is the FilterSet's error, not dropped.
    response = operator_client.get(f"{CHANGELIST}?metadata_key=&metadata_value=gold", follow=True)
    assert "<strong>metadata</strong>: metadata[] needs a key" in response.content.decode()


def test_the_export_refuses_what_the_list_refuses(operator_client, scope_a):
    make_customer(scope_a.environment)
    for query in ("?colour=blue", "?created_at_after=2024-01-01", "?q=ab"):
        response = operator_client.get(f"{CHANGELIST}export.csv{query}", follow=True)
        assert response.redirect_chain == [(CHANGELIST, 302)], query
        assert "is not a filter" in response.content.decode() or "at least 3" in (
            response.content.decode()
        )


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?q=name",
        "?status=published&o=-2",
        "?_popup=1&_to_field=id",
        "?environment=",
        "?environment=all&o=6",
    ],
)
def test_list_rows_are_the_markup_django_writes(operator_client, scope_a, query):
    """The lean row writer (customers.admin_rows) against Django's items_for_result."""
    parent = make_customer(scope_a.environment, name="Parent <b>&</b> Name")
    make_customer(scope_a.environment, name="Child name", parent=parent, email=None)
    make_customer(scope_a.environment, name="Archived name", status="archived", external_id=" ")
    make_customer(scope_a.environment, name="  ", email="x@example.com")
    response = operator_client.get(f"{CHANGELIST}{query}")
    assert response.status_code == 200
    cl = response.context["cl"]
    assert len(cl.result_list) >= 3
    render = row_renderer(cl)
    for customer in cl.result_list:
        expected = "".join(items_for_result(cl, customer, None))
        assert render(customer) == expected
        assert render(customer) in response.content.decode()
