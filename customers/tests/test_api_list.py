"""GET /v1/customers: shape, defaults, every parameter of the contract and its invalid values."""

from datetime import timedelta

import pytest
from django.core import signing
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.models import Customer
from customers.tests.contract import CUSTOMER_KEYS
from customers.tests.factories import at, make_customer

pytestmark = pytest.mark.django_db


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


def assert_validation_error(response, param: str) -> dict:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "validation_error"
    assert param in body["error"]["details"], body
    assert param in body["error"]["message"]
    return body


@pytest.fixture
def three(scope_a):
    """Three customers created a day apart (oldest first)."""
    base = at("2024-01-10T00:00:00")
    return [
        make_customer(scope_a.environment, created_at=base + timedelta(days=number))
        for number in range(3)
    ]


class TestShape:
    def test_item_has_the_17_keys_in_order_and_pagination(self, api, scope_a):
        make_customer(
            scope_a.environment,
            external_id="user_12345",
            name="Acme Corporation",
            email="billing@acme.com",
            address_line1="123 Main Street",
            address_city="San Francisco",
            address_state="CA",
            address_postal_code="94105",
            address_country="US",
            metadata={"plan_tier": "enterprise"},
            created_at=at("2024-01-15T10:30:00"),
        )
        body = api.get("/v1/customers?limit=10&offset=0&order=desc").json()
        assert list(body) == ["items", "pagination"]
        assert body["pagination"] == {
            "total": 1,
            "limit": 10,
            "offset": 0,
            "has_more": False,
            "next_cursor": None,
        }
        item = body["items"][0]
        assert list(item) == CUSTOMER_KEYS
        assert item["id"].startswith("cust_")
        assert len(item["id"]) == 31
        assert item["external_id"] == "user_12345"
        assert item["address_line2"] == ""
        assert item["parent_customer_id"] is None
        assert item["metadata"] == {"plan_tier": "enterprise"}
        assert item["environment_id"] == "env_a"
        assert item["tenant_id"] == "tenant_a"
        assert item["status"] == "published"
        assert item["created_at"] == "2024-01-15T10:30:00Z"
        assert item["updated_at"] == "2024-01-15T10:30:00Z"

    def test_null_email_and_empty_metadata(self, api, scope_a):
        make_customer(scope_a.environment, email=None)
        item = api.get("/v1/customers").json()["items"][0]
        assert item["email"] is None
        assert item["metadata"] == {}

    def test_fractional_seconds_keep_z(self, api, scope_a):
        make_customer(scope_a.environment, created_at=at("2024-01-15T10:30:00.123456"))
        item = api.get("/v1/customers").json()["items"][0]
        assert item["created_at"] == "2024-01-15T10:30:00.123456Z"


class TestLimitAndOffset:
    def test_defaults_are_limit_50_offset_0_newest_first(self, api, scope_a, three):
        for _number in range(52):
            make_customer(scope_a.environment, created_at=at("2023-01-01T00:00:00"))
        body = api.get("/v1/customers").json()
        pagination = body["pagination"]
        assert {key: pagination[key] for key in ("total", "limit", "offset", "has_more")} == {
            "total": 55,
            "limit": 50,
            "offset": 0,
            "has_more": True,
        }
        assert isinstance(pagination["next_cursor"], str)
        assert len(body["items"]) == 50
        assert [item["id"] for item in body["items"][:3]] == [c.id for c in reversed(three)]

    @pytest.mark.parametrize("limit", ["1", "1000", "007"])
    def test_valid_limits(self, api, three, limit):
        body = api.get(f"/v1/customers?limit={limit}").json()
        assert body["pagination"]["limit"] == int(limit)
        assert len(body["items"]) == min(int(limit), 3)
        assert body["pagination"]["total"] == 3

    @pytest.mark.parametrize(
        "limit", ["0", "-1", "1001", "abc", "1.5", "1e3", " ", "99999999999999"]
    )
    def test_invalid_limits(self, api, three, limit):
        body = assert_validation_error(api.get("/v1/customers", {"limit": limit}), "limit")
        if limit in ("0", "-1", "1001"):
            assert body["error"]["message"] == "limit must be between 1 and 1000"

    def test_offset_pages(self, api, three):
        body = api.get("/v1/customers?limit=2&offset=2").json()
        assert [item["id"] for item in body["items"]] == [three[0].id]
        assert body["pagination"] == {
            "total": 3,
            "limit": 2,
            "offset": 2,
            "has_more": False,
            "next_cursor": None,
        }

    def test_offset_past_the_end_returns_no_items_and_the_exact_total(self, api, three):
        body = api.get("/v1/customers?offset=10").json()
        assert body["items"] == []
        assert body["pagination"] == {
            "total": 3,
            "limit": 50,
            "offset": 10,
            "has_more": False,
            "next_cursor": None,
        }

    def test_huge_offset_within_range_is_fine(self, api, three):
        body = api.get(f"/v1/customers?offset={2**62}").json()
        assert body["items"] == []
        assert body["pagination"]["total"] == 3

    @pytest.mark.parametrize("offset", ["-1", "x", str(2**62 + 1), str(2**64), "1.0"])
    def test_invalid_offsets(self, api, three, offset):
        assert_validation_error(api.get("/v1/customers", {"offset": offset}), "offset")

    def test_full_page_at_the_end_still_counts(self, api, three):
        body = api.get("/v1/customers?limit=3").json()
        assert body["pagination"]["total"] == 3


class TestSorting:
    def test_default_is_created_at_desc(self, api, three):
        assert ids(api.get("/v1/customers")) == [c.id for c in reversed(three)]

    def test_created_at_asc(self, api, three):
        assert ids(api.get("/v1/customers?order=asc")) == [c.id for c in three]

    def test_updated_at(self, api, scope_a):
        older = make_customer(scope_a.environment, updated_at=at("2024-05-01T00:00:00"))
        newer = make_customer(scope_a.environment, updated_at=at("2024-06-01T00:00:00"))
        assert ids(api.get("/v1/customers?sort=updated_at&order=asc")) == [older.id, newer.id]
        assert ids(api.get("/v1/customers?sort=updated_at")) == [newer.id, older.id]

    def test_name_sorts_by_python_lowercase_by_code_point(self, api, scope_a):
        names = [
            "banana",
            "Apple",
            "apple pie",
            "Zebra",
            "éclair",
            "Éclat",
            "Ärger",
            "zoo",
            "İstanbul",
        ]
        for name in names:
            make_customer(scope_a.environment, name=name)
        response = api.get("/v1/customers?sort=name&order=asc")
        got = [item["name"] for item in response.json()["items"]]
        assert got == sorted(names, key=str.lower)
        response = api.get("/v1/customers?sort=name&order=desc")
        assert [item["name"] for item in response.json()["items"]] == sorted(
            names, key=str.lower, reverse=True
        )

    def test_email_sorts_case_insensitively_and_missing_email_last_ascending(self, api, scope_a):
        b = make_customer(scope_a.environment, email="B@example.com")
        a = make_customer(scope_a.environment, email="a@example.com")
        missing = make_customer(scope_a.environment, email=None)
        c = make_customer(scope_a.environment, email="c@example.com")
        assert ids(api.get("/v1/customers?sort=email&order=asc")) == [a.id, b.id, c.id, missing.id]
        assert ids(api.get("/v1/customers?sort=email&order=desc")) == [missing.id, c.id, b.id, a.id]

    def test_external_id_sorts_by_code_point(self, api, scope_a):
        values = ["b", "B", "a", "A", "_x", "10", "9"]
        for value in values:
            make_customer(scope_a.environment, external_id=value)
        body = api.get("/v1/customers?sort=external_id&order=asc").json()
        assert [item["external_id"] for item in body["items"]] == sorted(values)

    def test_status(self, api, scope_a):
        draft = make_customer(scope_a.environment, status="draft")
        archived = make_customer(scope_a.environment, status="archived")
        published = make_customer(scope_a.environment, status="published")
        assert ids(api.get("/v1/customers?sort=status&order=asc")) == [
            archived.id,
            draft.id,
            published.id,
        ]

    @pytest.mark.parametrize("sort", ["id", "created", "NAME", "metadata", "-created_at"])
    def test_invalid_sort(self, api, three, sort):
        assert_validation_error(api.get("/v1/customers", {"sort": sort}), "sort")

    @pytest.mark.parametrize("order", ["ASC", "up", "descending"])
    def test_invalid_order(self, api, three, order):
        assert_validation_error(api.get("/v1/customers", {"order": order}), "order")

    @pytest.mark.parametrize("sort", ["created_at", "updated_at", "name", "email", "status"])
    @pytest.mark.parametrize("order", ["asc", "desc"])
    def test_ties_break_on_id_so_pages_never_repeat_or_skip(self, api, scope_a, sort, order):
        same_moment = at("2024-03-01T12:00:00")
        created = [
            make_customer(
                scope_a.environment,
                name="Same Name",
                email="same@example.com",
                created_at=same_moment,
            )
            for _ in range(11)
        ]
        seen: list[str] = []
        for offset in range(0, 11, 3):
            seen += ids(api.get(f"/v1/customers?sort={sort}&order={order}&limit=3&offset={offset}"))
        expected = sorted(c.id for c in created)
        assert seen == (expected if order == "asc" else list(reversed(expected)))


class TestFilters:
    @pytest.mark.parametrize("status", ["published", "draft", "archived"])
    def test_status(self, api, scope_a, status):
        by_status = {
            value: make_customer(scope_a.environment, status=value)
            for value in ("published", "draft", "archived")
        }
        assert ids(api.get(f"/v1/customers?status={status}")) == [by_status[status].id]

    def test_absent_status_means_every_status(self, api, scope_a):
        for value in ("published", "draft", "archived"):
            make_customer(scope_a.environment, status=value)
        assert api.get("/v1/customers").json()["pagination"]["total"] == 3

    @pytest.mark.parametrize("status", ["active", "PUBLISHED", "deleted"])
    def test_invalid_status(self, api, three, status):
        body = assert_validation_error(api.get("/v1/customers", {"status": status}), "status")
        assert "published" in body["error"]["details"]["status"][0]

    def test_customer_ids_comma_separated_and_repeated(self, api, three):
        first, second, third = three
        assert set(ids(api.get(f"/v1/customers?customer_ids={first.id},{third.id}"))) == {
            first.id,
            third.id,
        }
        response = api.get(f"/v1/customers?customer_ids={first.id}&customer_ids={second.id}")
        assert set(ids(response)) == {first.id, second.id}

    def test_empty_list_items_are_ignored(self, api, three):
        response = api.get(f"/v1/customers?customer_ids=,{three[0].id},,")
        assert ids(response) == [three[0].id]

    def test_external_ids(self, api, scope_a):
        one = make_customer(scope_a.environment, external_id="one")
        two = make_customer(scope_a.environment, external_id="two")
        make_customer(scope_a.environment, external_id="three")
        assert set(ids(api.get("/v1/customers?external_ids=one,two"))) == {one.id, two.id}

    def test_external_id_is_exact_and_case_sensitive(self, api, scope_a):
        exact = make_customer(scope_a.environment, external_id="user_1")
        make_customer(scope_a.environment, external_id="USER_1")
        make_customer(scope_a.environment, external_id="user_10")
        assert ids(api.get("/v1/customers?external_id=user_1")) == [exact.id]

    def test_email_is_exact_and_case_insensitive(self, api, scope_a):
        match = make_customer(scope_a.environment, email="Billing@Acme.com")
        make_customer(scope_a.environment, email="billing@acme.co")
        make_customer(scope_a.environment, email="other@acme.com")
        assert ids(api.get("/v1/customers", {"email": "billing@ACME.com"})) == [match.id]

    def test_parent_customer_ids(self, api, scope_a):
        parent = make_customer(scope_a.environment)
        other_parent = make_customer(scope_a.environment)
        child = make_customer(scope_a.environment, parent=parent)
        make_customer(scope_a.environment, parent=other_parent)
        assert ids(api.get(f"/v1/customers?parent_customer_ids={parent.id}")) == [child.id]

    def test_filters_are_anded(self, api, scope_a):
        target = make_customer(scope_a.environment, email="x@example.com", status="draft")
        make_customer(scope_a.environment, email="x@example.com", status="published")
        make_customer(scope_a.environment, email="y@example.com", status="draft")
        response = api.get("/v1/customers?email=x@example.com&status=draft")
        assert ids(response) == [target.id]
        assert response.json()["pagination"]["total"] == 1

    def test_no_match_has_total_zero(self, api, three):
        body = api.get("/v1/customers?external_id=nobody").json()
        assert body == {
            "items": [],
            "pagination": {
                "total": 0,
                "limit": 50,
                "offset": 0,
                "has_more": False,
                "next_cursor": None,
            },
        }

    @pytest.mark.parametrize("param", ["customer_ids", "external_ids", "parent_customer_ids"])
    def test_a_thousand_values_are_accepted_both_ways(self, api, three, param):
        values = [f"cust_{number:026d}" for number in range(999)] + [three[0].id]
        field = {"customer_ids": "id", "external_ids": "external_id"}.get(param)
        if field:
            values[-1] = getattr(three[0], field)
        comma = api.get(f"/v1/customers?{param}={','.join(values)}&limit=10")
        assert comma.status_code == 200
        repeated = api.get("/v1/customers", {param: values, "limit": "10", "order": "asc"})
        assert repeated.status_code == 200
        if field:
            assert ids(comma) == ids(repeated) == [three[0].id]

    @pytest.mark.parametrize("param", ["customer_ids", "external_ids", "parent_customer_ids"])
    def test_more_than_a_thousand_values_is_a_400(self, api, three, param):
        values = [f"v{number}" for number in range(1001)]
        assert_validation_error(api.get(f"/v1/customers?{param}={','.join(values)}"), param)
        assert_validation_error(api.get("/v1/customers", {param: values}), param)


class TestStrictParameters:
    def test_unknown_parameter_is_named(self, api, three):
        body = assert_validation_error(api.get("/v1/customers?stauts=draft"), "stauts")
        assert body["error"]["message"] == "stauts is not a known parameter"

    def test_format_is_the_one_exception(self, api, three):
        assert api.get("/v1/customers?format=json").status_code == 200

    @pytest.mark.parametrize(
        "query",
        ["email=", "limit=", "offset=", "sort=", "order=", "status=", "expand=", "external_id="],
    )
    def test_empty_value_is_absent(self, api, three, query):
        body = api.get(f"/v1/customers?{query}").json()
        assert body["pagination"] == {
            "total": 3,
            "limit": 50,
            "offset": 0,
            "has_more": False,
            "next_cursor": None,
        }
        assert [item["id"] for item in body["items"]] == [c.id for c in reversed(three)]

    @pytest.mark.parametrize(
        "query",
        [
            "status=draft&status=published",
            "limit=1&limit=2",
            "offset=0&offset=1",
            "sort=name&sort=email",
            "order=asc&order=desc",
            "email=a@b.co&email=c@d.co",
            "external_id=a&external_id=b",
            "expand=parent_customer&expand=parent_customer",
        ],
    )
    def test_single_valued_parameter_given_twice(self, api, three, query):
        param = query.split("=")[0]
        body = assert_validation_error(api.get(f"/v1/customers?{query}"), param)
        assert "once" in body["error"]["details"][param][0]

    @pytest.mark.parametrize(
        "param",
        [
            "email",
            "external_id",
            "customer_ids",
            "external_ids",
            "parent_customer_ids",
            "expand",
            "sort",
            "status",
        ],
    )
    def test_value_over_255_characters(self, api, three, param):
        assert_validation_error(api.get("/v1/customers", {param: "x" * 256}), param)

    def test_value_of_255_characters_is_fine(self, api, three):
        assert api.get("/v1/customers", {"external_id": "x" * 255}).status_code == 200

    @pytest.mark.parametrize(
        "param",
        [
            "email",
            "external_id",
            "customer_ids",
            "external_ids",
            "parent_customer_ids",
            "expand",
            "limit",
            "sort",
        ],
    )
    def test_nul_byte(self, api, three, param):
        assert_validation_error(api.get("/v1/customers", {param: "a\x00b"}), param)

    def test_several_bad_parameters_are_all_named(self, api, three):
        response = api.get("/v1/customers?limit=0&offset=-1&bogus=1")
        body = assert_validation_error(response, "bogus")
        assert set(body["error"]["details"]) == {"limit", "offset", "bogus"}


class TestExpand:
    def test_parent_customer_is_the_last_key(self, api, scope_a):
        parent = make_customer(
            scope_a.environment, name="Parent", created_at=at("2024-01-01T00:00:00")
        )
        child = make_customer(
            scope_a.environment, parent=parent, created_at=at("2024-02-01T00:00:00")
        )
        items = api.get("/v1/customers?expand=parent_customer").json()["items"]
        assert [item["id"] for item in items] == [child.id, parent.id]
        assert list(items[0]) == [*CUSTOMER_KEYS, "parent_customer"]
        assert items[0]["parent_customer"]["id"] == parent.id
        assert list(items[0]["parent_customer"]) == CUSTOMER_KEYS
        assert items[1]["parent_customer"] is None

    def test_without_expand_there_is_no_parent_customer_key(self, api, scope_a):
        make_customer(scope_a.environment)
        assert "parent_customer" not in api.get("/v1/customers").json()["items"][0]

    @pytest.mark.parametrize("value", ["parent", "parent_customer,children", "PARENT_CUSTOMER"])
    def test_unknown_expansion_is_named(self, api, three, value):
        body = assert_validation_error(api.get("/v1/customers", {"expand": value}), "expand")
        unknown = next(part for part in value.split(",") if part != "parent_customer")
        assert unknown in body["error"]["details"]["expand"][0]

    def test_expand_costs_a_fixed_number_of_queries(self, api, scope_a):
        def queries_for_page(limit: int) -> int:
            with CaptureQueriesContext(connection) as captured:
                response = api.get(f"/v1/customers?expand=parent_customer&limit={limit}")
            assert len(response.json()["items"]) == limit
            return len(captured)

        for _ in range(30):
            parent = make_customer(scope_a.environment)
            make_customer(scope_a.environment, parent=parent)
        api.get("/v1/customers")  # records last_used_at once, outside the measurement
        assert queries_for_page(2) == queries_for_page(50)


class TestQueryCounts:
    def test_short_page_needs_no_count(self, api, three):
        api.get("/v1/customers")
        with CaptureQueriesContext(connection) as captured:
            api.get("/v1/customers")
        # the key, the page; the short page gives the total without COUNT
        assert len(captured) == 2, [q["sql"] for q in captured]
        assert not any("COUNT(" in q["sql"] for q in captured)

    def test_full_page_takes_its_total_from_the_status_counts(self, api, three):
        api.get("/v1/customers")
        with CaptureQueriesContext(connection) as captured:
            body = api.get("/v1/customers?limit=2&status=published").json()
        assert body["pagination"]["total"] == 3
        assert len(captured) == 3  # the key, the page, the per-status counts
        assert not any("COUNT(" in q["sql"] for q in captured)
        assert "customerstatuscount" in captured[-1]["sql"]

    def test_a_narrowing_filter_counts_once(self, api, scope_a):
        for _ in range(3):
            make_customer(scope_a.environment, email="same@example.com")
        make_customer(scope_a.environment, email="other@example.com")
        api.get("/v1/customers")
        with CaptureQueriesContext(connection) as captured:
            body = api.get("/v1/customers?limit=2&email=same@example.com").json()
        assert body["pagination"]["total"] == 3
        assert len(captured) == 3
        assert sum("COUNT(" in q["sql"] for q in captured) == 1

    def test_query_count_does_not_grow_with_the_page(self, api, scope_a):
        for _ in range(60):
            make_customer(scope_a.environment, metadata={"k": "v"})
        api.get("/v1/customers")
        with CaptureQueriesContext(connection) as small:
            api.get("/v1/customers?limit=5")
        with CaptureQueriesContext(connection) as large:
            api.get("/v1/customers?limit=1000")
        assert len(small) == 3  # the key, the page, the count
        assert len(large) == 2  # the key, the (short, last) page


def test_sort_keys_follow_the_stored_values(scope_a):
    customer = make_customer(scope_a.environment, name="ÉCOLE", email="Mixed@Case.COM")
    customer.refresh_from_db()
    assert (customer.name_key, customer.email_key) == ("école", "mixed@case.com")
    customer.name = "Zed"
    customer.email = None
    customer.save(update_fields=["name", "email"])
    stored = Customer.objects.values("name_key", "email_key").get(pk=customer.pk)
    assert stored == {"name_key": "zed", "email_key": None}


class TestDeepPages:
    """Deep offsets read ids first, then the page's rows: the same customers, in order."""

    @pytest.mark.parametrize("sort", ["created_at", "name", "email"])
    @pytest.mark.parametrize("expand", ["", "&expand=parent_customer"])
    def test_same_results_as_a_shallow_page(self, api, scope_a, monkeypatch, sort, expand):
        # A cursor's signature carries the second it was made: both answers, one second.
        monkeypatch.setattr(signing.TimestampSigner, "timestamp", lambda signer: "1xYNWg")
        parent = make_customer(scope_a.environment, created_at=at("2020-01-01T00:00:00"))
        for number in range(12):
            make_customer(
                scope_a.environment,
                name=f"Name {number % 4}",
                email=None if number % 5 == 0 else f"e{number % 3}@x.com",
                parent=parent if number % 2 else None,
                created_at=at("2024-01-01T00:00:00"),
            )
        for offset in (2, 5, 9, 11):  # before and past the middle of 13 customers
            query = f"/v1/customers?sort={sort}&order=asc&limit=4&offset={offset}{expand}"
            monkeypatch.setattr("customers.selectors.DEFERRED_JOIN_OFFSET", 10**9)
            shallow = api.get(query).json()
            monkeypatch.setattr("customers.selectors.DEFERRED_JOIN_OFFSET", 1)
            with CaptureQueriesContext(connection) as captured:
                deep = api.get(query).json()
            assert deep == shallow
            assert len(deep["items"]) == min(4, 13 - offset)
            assert any("IN (" in q["sql"] for q in captured)

    def test_past_the_end(self, api, three, monkeypatch):
        monkeypatch.setattr("customers.selectors.DEFERRED_JOIN_OFFSET", 1)
        body = api.get("/v1/customers?offset=10").json()
        assert body == {
            "items": [],
            "pagination": {
                "total": 3,
                "limit": 50,
                "offset": 10,
                "has_more": False,
                "next_cursor": None,
            },
        }
