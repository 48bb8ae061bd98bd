"""`POST /v1/customers/search`: Flexprice's body, answered exactly as the list answers the same
request (Part 2, "Flexprice compatibility")."""

import json
from urllib.parse import urlencode

import pytest

from customers.tests.factories import at, make_customer

pytestmark = pytest.mark.django_db


def search(api, body) -> dict:
    response = api.post(
        "/v1/customers/search", data=json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def searched(api, body) -> list[str]:
    return [item["external_id"] for item in search(api, body)["items"]]


def refused(api, body) -> dict:
    response = api.post(
        "/v1/customers/search", data=json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    return error


def listed(api, params) -> dict:
    response = api.get(f"/v1/customers?{urlencode(params, doseq=True)}")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def customers(scope_a, scope_b):
    made = {
        "acme": make_customer(
            scope_a.scope,
            external_id="acme",
            name="Acme Rockets",
            email="Billing@Acme.example",
            address_city="Zürich",
            address_country="CH",
            metadata={"plan": "pro", "region": "eu"},
            created_at=at("2024-01-10T08:00:00"),
        ),
        "globex": make_customer(
            scope_a.scope,
            external_id="globex",
            name="Globex Cloud",
            email=None,
            address_city="Springfield",
            metadata={"plan": "free"},
            status="draft",
            created_at=at("2024-02-01T00:00:00"),
        ),
        "initech": make_customer(
            scope_a.scope,
            external_id="initech",
            name="Initech ÄRZTE",
            email="ops@initech.example",
            metadata={"plan": "pro", "region": "us"},
            created_at=at("2024-03-15T12:30:00"),
        ),
        "umbrella": make_customer(
            scope_a.scope,
            external_id="UMB-100%",
            name="Umbrella_Corp",
            email="it@umbrella.example",
            status="archived",
            created_at=at("2024-03-15T18:00:00"),
        ),
    }
    made["child"] = make_customer(
        scope_a.scope,
        external_id="acme-eu",
        name="Acme Rockets EU",
        email="eu@acme.example",
        parent_id=made["acme"].id,
        metadata={"plan": "pro"},
        created_at=at("2024-04-01T00:00:00"),
    )
    make_customer(scope_b.scope, external_id="elsewhere", name="Acme Elsewhere")
    return made


def condition(field, operator, data_type, value):
    return {"field": field, "operator": operator, "data_type": data_type, "value": value}


# --- the same answer as the list -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "params"),
    [
        ({}, {}),
        ({"limit": 2, "offset": 1}, {"limit": 2, "offset": 1}),
        ({"status": "published", "order": "asc"}, {"status": "published", "order": "asc"}),
        ({"email": "billing@acme.EXAMPLE"}, {"email": "billing@acme.EXAMPLE"}),
        ({"external_id": "globex"}, {"external_id": "globex"}),
        ({"external_ids": ["acme", "globex"]}, {"external_ids": "acme,globex"}),
        ({"q": "acme rockets"}, {"q": "acme rockets"}),
        (
            {"metadata": {"plan": "pro", "region": "eu"}},
            {"metadata[plan]": "pro", "metadata[region]": "eu"},
        ),
        (
            {"start_time": "2024-02-01T00:00:00Z", "end_time": "2024-03-15T12:30:00+00:00"},
            {
                "created_at[gte]": "2024-02-01T00:00:00Z",
                "created_at[lte]": "2024-03-15T12:30:00+00:00",
            },
        ),
        ({"expand": "parent_customer", "limit": 10}, {"expand": "parent_customer", "limit": 10}),
    ],
)
def test_the_body_answers_exactly_what_the_list_answers(api, customers, body, params):
    assert search(api, body) == listed(api, params)


def test_parents_and_customer_ids_like_the_list(api, customers):
    acme = customers["acme"].id
    assert searched(api, {"parent_customer_ids": [acme]}) == ["acme-eu"]
    assert searched(api, {"customer_ids": [acme, customers["globex"].id]}) == ["globex", "acme"]


def test_scope_is_the_keys_and_null_is_absent(api, customers, scope_b):
    assert "elsewhere" not in searched(api, {"q": "acme"})
    assert searched(scope_b.client(), {"q": "acme"}) == ["elsewhere"]
    assert search(api, {"limit": None, "filters": None, "sort": None}) == listed(api, {})


def test_cursor_pages_walk_the_search_like_the_list(api, customers):
    body = {"limit": 2, "filters": [condition("name", "contains", "string", {"string": "a"})]}
    seen, page = [], search(api, body)
    while True:
        seen += [item["external_id"] for item in page["items"]]
        assert page["pagination"]["total"] == 3
        if not page["pagination"]["has_more"]:
            break
        page = search(api, {**body, "cursor": page["pagination"]["next_cursor"]})
        assert page["pagination"]["offset"] is None
    assert seen == ["acme-eu", "UMB-100%", "acme"]


def test_a_cursor_is_bound_to_the_conditions_and_the_sort(api, customers):
    body = {"limit": 1, "filters": [condition("name", "contains", "string", {"string": "a"})]}
    cursor = search(api, body)["pagination"]["next_cursor"]
    other = {**body, "filters": [condition("name", "contains", "string", {"string": "ac"})]}
    assert "another list" in refused(api, {**other, "cursor": cursor})["details"]["cursor"][0]
    resorted = {**body, "sort": [{"field": "name", "direction": "asc"}]}
    assert "cursor" in refused(api, {**resorted, "cursor": cursor})["details"]
    # The list's own cursor is the search's for the same request.
    list_cursor = listed(api, {"limit": 1})["pagination"]["next_cursor"]
    assert search(api, {"limit": 1, "cursor": list_cursor}) == listed(
        api, {"limit": 1, "cursor": list_cursor}
    )


# --- sort ------------------------------------------------------------------------------------


def test_a_sort_of_several_keys_breaks_ties_in_order(api, customers):
    body = {
        "sort": [{"field": "status", "direction": "asc"}, {"field": "name", "direction": "desc"}]
    }
    assert searched(api, body) == ["UMB-100%", "globex", "initech", "acme-eu", "acme"]
    # direction defaults to desc
    assert searched(api, {"sort": [{"field": "created_at"}]}) == searched(api, {})


def test_a_one_key_sort_is_the_lists_sort(api, customers):
    body = {"sort": [{"field": "email", "direction": "asc"}]}
    assert search(api, body) == listed(api, {"sort": "email", "order": "asc"})


@pytest.mark.parametrize(
    "sort",
    [
        [{"field": "status", "direction": "asc"}, {"field": "email", "direction": "desc"}],
        [{"field": "email", "direction": "asc"}, {"field": "created_at", "direction": "asc"}],
        [{"field": "email", "direction": "desc"}, {"field": "name", "direction": "asc"}],
        [{"field": "status", "direction": "desc"}, {"field": "updated_at", "direction": "asc"}],
        [
            {"field": "status", "direction": "asc"},
            {"field": "email", "direction": "asc"},
            {"field": "name", "direction": "desc"},
        ],
    ],
)
def test_cursors_walk_every_row_once_in_a_sort_of_several_keys(api, scope_a, sort):
    """Ties on every level, missing emails, mixed directions: walked one row a page, the
    cursor pages give exactly the offset order."""
    for number in range(12):
        make_customer(
            scope_a.scope,
            external_id=f"c{number:02d}",
            name=f"Name {number % 3}",
            email=None if number % 4 == 0 else f"e{number % 2}@x.example",
            status=["published", "draft", "archived"][number % 3],
            created_at=at(f"2024-01-0{1 + number % 2}T00:00:00"),
        )
    expected = searched(api, {"sort": sort, "limit": 100})
    assert len(expected) == 12
    walked, cursor = [], None
    while True:
        page = search(api, {"sort": sort, "limit": 1, **({"cursor": cursor} if cursor else {})})
        walked += [item["external_id"] for item in page["items"]]
        if not page["pagination"]["has_more"]:
            break
        cursor = page["pagination"]["next_cursor"]
    assert walked == expected


@pytest.mark.parametrize(
    ("sort", "path", "message"),
    [
        ([{"field": "nope"}], "sort[0].field", "must be one of created_at"),
        ([{"direction": "asc"}], "sort[0].field", "is required"),
        ([{"field": {}}], "sort[0].field", "must be one of"),
        ([{"field": "name", "direction": ["asc"]}], "sort[0].direction", "must be one of"),
        ([{"field": "name"}, {"field": "name"}], "sort[1].field", "a second time"),
        ([{"field": "name", "direction": "up"}], "sort[0].direction", "must be one of asc, desc"),
        ([{"field": "name", "by": 1}], "sort[0].by", "is not a known key"),
        (["name"], "sort[0]", "must be an object"),
        ([], "sort", "at least one"),
        ("name", "sort", "must be a list"),
    ],
)
def test_a_bad_sort_names_its_item(api, customers, sort, path, message):
    error = refused(api, {"sort": sort})
    assert message in error["details"][path][0], error


def test_order_with_a_sort_list_is_refused(api, customers):
    error = refused(api, {"sort": [{"field": "name"}], "order": "asc"})
    assert "order" in error["details"]


# --- conditions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ([condition("name", "eq", "string", {"string": "Acme Rockets"})], ["acme"]),
        ([condition("name", "eq", "string", {"string": "acme rockets"})], []),
        ([condition("email", "eq", "string", {"string": "BILLING@acme.example"})], ["acme"]),
        ([condition("email", "eq", "string", {"string": ""})], ["globex"]),
        ([condition("status", "eq", "string", {"string": "draft"})], ["globex"]),
        ([condition("id", "eq", "string", {"string": "nope"})], []),
        ([condition("name", "contains", "string", {"string": "ROCK"})], ["acme-eu", "acme"]),
        ([condition("name", "contains", "string", {"string": "ärzte"})], ["initech"]),
        ([condition("external_id", "contains", "string", {"string": "umb-"})], ["UMB-100%"]),
        ([condition("external_id", "contains", "string", {"string": "0%"})], ["UMB-100%"]),
        ([condition("name", "contains", "string", {"string": "_c"})], ["UMB-100%"]),
        ([condition("address_city", "contains", "string", {"string": "ZÜR"})], ["acme"]),
        (
            [condition("email", "not_contains", "string", {"string": "acme"})],
            ["UMB-100%", "initech", "globex"],
        ),
        (
            [condition("address_city", "not_contains", "string", {"string": "FIELD"})],
            ["acme-eu", "UMB-100%", "initech", "acme"],
        ),
        ([condition("metadata.plan", "eq", "string", {"string": "free"})], ["globex"]),
        ([condition("metadata.region", "contains", "string", {"string": "E"})], ["acme"]),
        (
            [condition("metadata.region", "not_contains", "string", {"string": "e"})],
            ["acme-eu", "UMB-100%", "initech", "globex"],
        ),
        (
            [condition("metadata.region", "in", "array", {"array": ["eu", "us"]})],
            ["initech", "acme"],
        ),
        (
            [condition("metadata.region", "not_in", "array", {"array": ["eu"]})],
            ["acme-eu", "UMB-100%", "initech", "globex"],
        ),
        (
            [condition("external_id", "in", "array", {"array": ["acme", "globex", "x"]})],
            ["globex", "acme"],
        ),
        (
            [condition("email", "in", "array", {"array": ["OPS@initech.example"]})],
            ["initech"],
        ),
        (
            [condition("email", "not_in", "array", {"array": ["ops@initech.example"]})],
            ["acme-eu", "UMB-100%", "globex", "acme"],
        ),
        ([condition("name", "in", "array", {"array": ["Globex Cloud"]})], ["globex"]),
        (
            [condition("status", "not_in", "array", {"array": ["published"]})],
            ["UMB-100%", "globex"],
        ),
        ([condition("created_at", "eq", "date", {"date": "2024-03-15"})], ["UMB-100%", "initech"]),
        ([condition("created_at", "eq", "date", {"date": "2024-03-15T12:30:00Z"})], ["initech"]),
        (
            [condition("created_at", "before", "date", {"date": "2024-02-01T00:00:00Z"})],
            ["acme"],
        ),
        ([condition("created_at", "lt", "date", {"date": "2024-02-01"})], ["acme"]),
        (
            [condition("created_at", "gte", "date", {"date": "2024-02-01T01:00:00+01:00"})],
            ["acme-eu", "UMB-100%", "initech", "globex"],
        ),
        (
            [condition("created_at", "after", "date", {"date": "2024-03-15T12:30:00Z"})],
            ["acme-eu", "UMB-100%"],
        ),
        (
            [condition("created_at", "gt", "date", {"date": "2024-03-15T12:30:00Z"})],
            ["acme-eu", "UMB-100%"],
        ),
        (
            [
                condition("metadata.plan", "eq", "string", {"string": "pro"}),
                condition("name", "not_contains", "string", {"string": "eu"}),
                condition("updated_at", "lt", "date", {"date": "2024-04-01"}),
            ],
            ["initech", "acme"],
        ),
    ],
)
def test_each_operator(api, customers, conditions, expected):
    assert searched(api, {"filters": conditions}) == expected


def test_parent_conditions(api, customers):
    acme = customers["acme"].id
    eq = condition("parent_customer_id", "eq", "string", {"string": acme})
    assert searched(api, {"filters": [eq]}) == ["acme-eu"]
    none = condition("parent_customer_id", "eq", "string", {"string": ""})
    assert "acme-eu" not in searched(api, {"filters": [none]})
    assert len(searched(api, {"filters": [none]})) == 4
    kept = condition("parent_customer_id", "not_in", "array", {"array": [acme]})
    assert "acme-eu" not in searched(api, {"filters": [kept]})
    assert len(searched(api, {"filters": [kept]})) == 4


def test_conditions_and_with_the_lists_parameters_and_have_the_exact_total(api, customers):
    body = {
        "status": "published",
        "q": "acme",
        "filters": [condition("metadata.plan", "eq", "string", {"string": "pro"})],
        "limit": 1,
    }
    page = search(api, body)
    assert [item["external_id"] for item in page["items"]] == ["acme-eu"]
    assert page["pagination"]["total"] == 2
    assert page["pagination"]["has_more"] is True


@pytest.mark.parametrize(
    ("filters", "path", "message"),
    [
        ({"field": "name"}, "filters", "must be a list"),
        (
            [condition("nope", "eq", "string", {"string": "x"})],
            "filters[0].field",
            "must be one of id",
        ),
        (
            [condition("name", "lte", "string", {"string": "x"})],
            "filters[0].operator",
            "eq, contains",
        ),
        (
            [condition("name", "in", "string", {"string": "x"})],
            "filters[0].operator",
            "must be one of",
        ),
        (
            [condition("created_at", "lte", "date", {"date": "2024-01-01"})],
            "filters[0].operator",
            "before",
        ),
        (
            [condition("created_at", "contains", "date", {"date": "2024"})],
            "filters[0].operator",
            "eq",
        ),
        (
            [condition("name", "eq", "number", {"number": 1})],
            "filters[0].data_type",
            "string, array, date",
        ),
        (
            [condition("name", "eq", "date", {"date": "2024-01-01"})],
            "filters[0].data_type",
            "string or array",
        ),
        (
            [condition("created_at", "eq", "string", {"string": "x"})],
            "filters[0].data_type",
            "must be date",
        ),
        (
            [condition("name", "eq", "string", {"array": ["x"]})],
            "filters[0].value",
            "the one key string",
        ),
        ([condition("name", "eq", "string", "x")], "filters[0].value", "must be an object"),
        (
            [condition("name", "eq", "string", {"string": 5})],
            "filters[0].value.string",
            "must be a string",
        ),
        (
            [condition("name", "contains", "string", {"string": ""})],
            "filters[0].value",
            "must not be empty",
        ),
        (
            # the JSON parser refuses a NUL byte anywhere, naming the body's key
            [condition("name", "eq", "string", {"string": "a\u0000"})],
            "filters",
            "NUL",
        ),
        (
            [condition("name", "eq", "string", {"string": "x" * 256})],
            "filters[0].value.string",
            "255",
        ),
        (
            [condition("name", "in", "array", {"array": []})],
            "filters[0].value.array",
            "at least one",
        ),
        (
            [condition("name", "in", "array", {"array": ["a", 1]})],
            "filters[0].value.array",
            "strings",
        ),
        (
            [condition("name", "in", "array", {"array": [str(n) for n in range(1001)]})],
            "filters[0].value.array",
            "at most 1000",
        ),
        (
            [condition("created_at", "gt", "date", {"date": "2024-01-01T10:00:00"})],
            "filters[0].value.date",
            "without an offset",
        ),
        (
            [condition("created_at", "gt", "date", {"date": "2024-02-30"})],
            "filters[0].value.date",
            "real date",
        ),
        (
            [condition("status", "eq", "string", {"string": "deleted"})],
            "filters[0].value.string",
            "published, draft",
        ),
        (
            [condition("status", "in", "array", {"array": ["deleted"]})],
            "filters[0].value.array",
            "published",
        ),
        (
            [condition("metadata.", "eq", "string", {"string": "x"})],
            "filters[0].field",
            "needs a key",
        ),
        (
            [condition("metadata." + "k" * 41, "eq", "string", {"string": "x"})],
            "filters[0].field",
            "40",
        ),
        (
            [{"field": "name", "operator": "eq", "data_type": "string"}],
            "filters[0].value",
            "is required",
        ),
        (
            [{**condition("name", "eq", "string", {"string": "x"}), "extra": 1}],
            "filters[0].extra",
            "not a known key",
        ),
        (["name"], "filters[0]", "must be an object"),
        ([condition(1, "eq", "string", {"string": "x"})], "filters[0].field", "must be a string"),
        ([condition("name", "eq", "string", {"string": "x"})] * 21, "filters", "at most 20"),
    ],
)
def test_a_bad_condition_names_its_path(api, customers, filters, path, message):
    error = refused(api, {"filters": filters})
    assert message in error["details"][path][0], error
    assert error["message"].startswith(path), error


def test_each_bad_condition_is_named(api, customers):
    good = condition("name", "eq", "string", {"string": "x"})
    error = refused(
        api,
        {
            "filters": [
                good,
                condition("name", "bad", "string", {"string": "x"}),
                good,
                condition("nope", "eq", "string", {"string": "x"}),
            ]
        },
    )
    assert set(error["details"]) == {"filters[1].operator", "filters[3].field"}


def test_a_percent_sign_in_a_bad_value_is_echoed_as_it_is(api, customers):
    error = refused(api, {"filters": [condition("%s%d", "eq", "string", {"string": "x"})]})
    assert "'%s%d'" in error["details"]["filters[0].field"][0]


# --- the body's own rules --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "name", "message"),
    [
        ({"limt": 5}, "limt", "is not a known key"),
        ({"limit": "5"}, "limit", "must be an integer"),
        ({"limit": True}, "limit", "must be an integer"),
        ({"limit": 1.5}, "limit", "must be an integer"),
        ({"limit": 0}, "limit", "between 1 and 1000"),
        ({"offset": -1}, "offset", "0 or more"),
        ({"status": "deleted"}, "status", "must be one of"),
        ({"status": ["draft"]}, "status", "must be a string"),
        ({"customer_ids": "a,b"}, "customer_ids", "must be a list of strings"),
        ({"external_ids": [1]}, "external_ids", "must be a list of strings"),
        ({"metadata": "plan"}, "metadata", "must be an object"),
        ({"metadata": {"plan": 1}}, "metadata.plan", "must be a string"),
        ({"metadata": {"": "x"}}, "metadata", "must not be empty"),
        ({"metadata": {"k" * 41: "x"}}, "metadata." + "k" * 41, "40 characters"),
        ({"start_time": "2024-01-01T00:00:00"}, "start_time", "without an offset"),
        ({"end_time": "yesterday"}, "end_time", "RFC 3339"),
        ({"q": "ab"}, "q", "at least 3 characters"),
        ({"cursor": "nope"}, "cursor", "is not a cursor"),
        ({"cursor": "x", "offset": 5}, "offset", "must not be given with cursor"),
        ({"expand": "parent"}, "expand", "unknown value"),
        ({"order": "up"}, "order", "must be one of asc, desc"),
    ],
)
def test_a_bad_key_is_named_as_the_body_names_it(api, customers, body, name, message):
    error = refused(api, body)
    assert message in error["details"][name][0], error


@pytest.mark.parametrize("body", ["[]", '"x"', "5", "null"])
def test_the_body_must_be_an_object(api, body):
    response = api.post("/v1/customers/search", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"body": ["must be a JSON object"]}


def test_an_empty_body_is_the_default_list(api, customers):
    response = api.post("/v1/customers/search", content_type="application/json")
    assert response.status_code == 200
    assert response.json() == listed(api, {})


def test_the_search_needs_a_key_and_json(scope_a, customers):
    from rest_framework.test import APIClient

    assert APIClient().post("/v1/customers/search", {}, format="json").status_code == 401
    response = scope_a.client().post(
        "/v1/customers/search", data="limit=1", content_type="text/plain"
    )
    assert response.status_code == 415
    assert scope_a.client().get("/v1/customers/search").status_code == 405


def test_the_search_writes_nothing_and_reads_the_page_in_few_queries(
    api, customers, django_assert_max_num_queries
):
    body = {
        "filters": [
            condition("name", "contains", "string", {"string": "acme"}),
            condition("metadata.plan", "in", "array", {"array": ["pro", "free"]}),
        ],
        "sort": [{"field": "status", "direction": "asc"}, {"field": "name", "direction": "asc"}],
        "expand": "parent_customer",
        "limit": 1,
    }
    first = search(api, body)
    # the key check, the page, the parents, the count; no query per row
    with django_assert_max_num_queries(6):
        page = search(api, {**body, "cursor": first["pagination"]["next_cursor"]})
    assert page["items"][0]["parent_customer"]["external_id"] == "acme"
