"""Finding customers one half remembers: `q`, timestamp bounds and `metadata[KEY]` (Part 2)."""

import json
from urllib.parse import quote, urlencode

import pytest

from customers.tests.factories import at, make_customer

pytestmark = pytest.mark.django_db


def listed(api, query: str) -> list[str]:
    response = api.get(f"/v1/customers?{query}")
    assert response.status_code == 200, response.content
    return [item["external_id"] for item in json.loads(response.content)["items"]]


def refused(api, query: str) -> dict:
    response = api.get(f"/v1/customers?{query}")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    return error


# --- q ---------------------------------------------------------------------------------------


@pytest.fixture
def searchable(scope_a, scope_b):
    make_customer(scope_a.scope, external_id="a1", name="Globex Cloud Labs", email="ops@globex.io")
    make_customer(scope_a.scope, external_id="a2", name="Globex Payments", email=None)
    make_customer(scope_a.scope, external_id="cloud-9", name="Nine", email="x@y.example")
    make_customer(scope_a.scope, external_id="a4", name="Ärzte Straße GmbH")
    make_customer(scope_b.scope, external_id="b1", name="Globex Cloud Elsewhere")


def test_q_ands_its_words_over_name_email_and_external_id(api, searchable):
    assert listed(api, "q=globex") == ["a2", "a1"]
    assert listed(api, "q=cLoUd+GLOBEX") == ["a1"]  # both words, any case, any field
    assert listed(api, "q=cloud&sort=external_id&order=asc") == ["a1", "cloud-9"]
    assert listed(api, "q=globex.io") == ["a1"]  # the email
    assert listed(api, "q=ärzte straße") == ["a4"]  # Unicode lowercase
    assert listed(api, "q=ÄRZTE") == ["a4"]


def test_q_has_the_exact_total_and_sees_a_write_at_once(api, searchable):
    assert api.get("/v1/customers?q=globex&limit=1").json()["pagination"]["total"] == 2
    created = api.post(
        "/v1/customers",
        data=json.dumps({"external_id": "new", "name": "Globex Brand New"}),
        content_type="application/json",
    )
    assert created.status_code == 201
    assert listed(api, "q=brand+globex") == ["new"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ab", "words must be at least 3 characters long ('ab' is shorter)"),
        ("globex ab", "words must be at least 3 characters long ('ab' is shorter)"),
        (" ".join(["word"] * 11), "must have at most 10 words"),
    ],
)
def test_q_refuses_short_words_and_too_many(api, value, message):
    error = refused(api, urlencode({"q": value}))
    assert error["details"] == {"q": [message]}


def test_an_empty_q_is_absent(api, searchable):
    assert len(listed(api, "q=")) == 4


# --- timestamp bounds ------------------------------------------------------------------------


@pytest.fixture
def timeline(scope_a):
    for number, moment in enumerate(
        [
            "2024-01-14T23:59:59.999999",
            "2024-01-15T00:00:00",
            "2024-01-15T10:30:00",
            "2024-01-15T10:30:00.000001",
            "2024-01-16T00:00:00",
        ]
    ):
        make_customer(
            scope_a.scope,
            external_id=f"t{number}",
            created_at=at(moment),
            updated_at=at("2025-01-01T00:00:00"),
        )


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [
        ({"created_at[gte]": "2024-01-15"}, ["t1", "t2", "t3", "t4"]),
        ({"created_at[lt]": "2024-01-15"}, ["t0"]),
        ({"created_at[gt]": "2024-01-15T10:30:00Z"}, ["t3", "t4"]),
        ({"created_at[lte]": "2024-01-15T10:30:00Z"}, ["t0", "t1", "t2"]),
        # The same instant at another offset, and microseconds.
        ({"created_at[gte]": "2024-01-15T12:30:00.000001+02:00"}, ["t3", "t4"]),
        ({"created_at[gte]": "2024-01-15", "created_at[lt]": "2024-01-16"}, ["t1", "t2", "t3"]),
        ({"updated_at[gte]": "2025-01-01T00:00:00Z"}, ["t0", "t1", "t2", "t3", "t4"]),
        ({"updated_at[gt]": "2025-01-01T00:00:00z"}, []),
    ],
)
def test_bounds_are_exact_to_the_microsecond(api, timeline, bounds, expected):
    query = urlencode({**bounds, "sort": "created_at", "order": "asc"})
    assert listed(api, query) == expected


def test_bounds_that_cannot_all_hold_give_an_empty_page_not_an_error(api, timeline):
    body = api.get("/v1/customers?created_at[gt]=2024-02-01&created_at[lt]=2024-01-01").json()
    assert body["items"] == []
    assert body["pagination"]["total"] == 0


def test_bracketed_names_may_be_percent_encoded(api, timeline):
    assert listed(api, "created_at%5Bgte%5D=2024-01-16") == ["t4"]


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("2024-01-15T10:30:00", "without an offset"),
        ("2024-01-15T10:30:00 02:00", "send it as %2B"),  # a '+' that was not encoded
        ("2024-13-01", "not a real date"),
        ("2024-01-15T25:00:00Z", "not a real date"),
        ("yesterday", "RFC 3339"),
        ("1705314600", "RFC 3339"),
        ("2024-01-15T10:30:00.1234567Z", "RFC 3339"),
    ],
)
def test_a_bad_bound_is_a_400_naming_the_parameter(api, value, hint):
    error = refused(api, urlencode({"updated_at[lt]": value}))
    assert list(error["details"]) == ["updated_at[lt]"]
    assert hint in error["message"]
    assert error["message"].startswith("updated_at[lt] must be an RFC 3339 date-time")


def test_a_bound_given_twice_is_refused(api):
    error = refused(api, "created_at[gte]=2024-01-01&created_at[gte]=2024-02-01")
    assert error["details"] == {"created_at[gte]": ["must be given only once"]}


@pytest.mark.parametrize("name", ["created_at[eq]", "created_at[]", "created_at", "status[gte]"])
def test_other_bracketed_names_are_unknown(api, name):
    error = refused(api, f"{quote(name)}=2024-01-01")
    assert error["details"] == {name: ["is not a known parameter"]}


# --- metadata --------------------------------------------------------------------------------


@pytest.fixture
def tagged(scope_a, scope_b):
    make_customer(scope_a.scope, external_id="m1", metadata={"plan": "growth", "region": "eu"})
    make_customer(scope_a.scope, external_id="m2", metadata={"plan": "growth", "region": "us"})
    make_customer(scope_a.scope, external_id="m3", metadata={"plan": "Growth"})
    make_customer(scope_a.scope, external_id="m4", metadata={"odd key": 'quote " value'})
    make_customer(scope_a.scope, external_id="m5", metadata={})
    make_customer(scope_b.scope, external_id="b1", metadata={"plan": "growth"})


def test_metadata_filters_are_exact_case_sensitive_and_anded(api, tagged):
    order = "&sort=external_id&order=asc"
    assert listed(api, f"metadata[plan]=growth{order}") == ["m1", "m2"]
    assert listed(api, f"metadata[plan]=growth&metadata[region]=eu{order}") == ["m1"]
    assert listed(api, f"metadata[plan]=Growth{order}") == ["m3"]
    assert listed(api, f"metadata[plan]=grow{order}") == []
    query = urlencode({"metadata[odd key]": 'quote " value'})
    assert listed(api, f"{query}{order}") == ["m4"]
    assert api.get("/v1/customers?metadata[plan]=growth").json()["pagination"]["total"] == 2


def test_an_empty_metadata_value_is_absent(api, tagged):
    assert len(listed(api, "metadata[plan]=")) == 5


@pytest.mark.parametrize(
    ("query", "name", "message"),
    [
        (f"metadata[{'k' * 41}]=v", f"metadata[{'k' * 41}]", "keys must be at most 40"),
        ("metadata[plan]=a&metadata[plan]=b", "metadata[plan]", "must be given only once"),
        ("metadata[plan]=" + "v" * 256, "metadata[plan]", "must be at most 255 characters"),
        ("metadata[pl%00an]=v", "metadata[pl\x00an]", "NUL"),
        ("metadata[]=v", "metadata[]", "is not a known parameter"),
        ("metadata=v", "metadata", "is not a known parameter"),
    ],
)
def test_a_bad_metadata_filter_is_a_400_naming_it(api, query, name, message):
    error = refused(api, query)
    assert name in error["details"], error
    assert message in error["details"][name][0]


def test_more_than_ten_metadata_filters_are_refused(api):
    query = "&".join(f"metadata[k{number}]=v" for number in range(11))
    error = refused(api, query)
    assert "at most 10 metadata filters" in error["message"]
    assert listed(api, "&".join(f"metadata[k{number}]=v" for number in range(10))) == []


def test_every_new_filter_ands_with_the_others_and_the_scope(api, scope_a):
    make_customer(
        scope_a.scope,
        external_id="hit",
        name="Initech Cloud",
        metadata={"plan": "growth"},
        created_at=at("2024-03-01T00:00:00"),
    )
    make_customer(
        scope_a.scope,
        external_id="old",
        name="Initech Cloud",
        metadata={"plan": "growth"},
        created_at=at("2023-03-01T00:00:00"),
    )
    make_customer(
        scope_a.scope,
        external_id="draft",
        name="Initech Cloud",
        status="draft",
        metadata={"plan": "growth"},
        created_at=at("2024-03-01T00:00:00"),
    )
    query = "q=initech&metadata[plan]=growth&created_at[gte]=2024-01-01&status=published"
    assert listed(api, query) == ["hit"]
