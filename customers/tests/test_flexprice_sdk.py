"""Flexprice's own Python SDK (`flexprice` from PyPI, pinned in requirements.txt) against a live
server of this product: every customer operation it has, its models parsing every answer,
compared with this API's list (Part 2, "Flexprice compatibility").

A user switches by pointing the SDK's `server_url` at `<this server>/v1`; nothing else
changes in their code.
"""

from datetime import UTC, datetime

import httpx
import pytest
from flexprice import Flexprice, models

from customers.models import Customer
from customers.tests.factories import make_environment, make_key

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def environment(transactional_db):
    return make_environment("tenant_sdk", "env_sdk")


@pytest.fixture
def key(environment) -> str:
    return make_key(environment)


@pytest.fixture
def sdk(live_server, key):
    with Flexprice(server_url=f"{live_server.url}/v1", api_key_auth=key) as client:
        yield client.customers


@pytest.fixture
def api(live_server, key):
    """This API itself over HTTP, to compare with what the SDK reads."""
    with httpx.Client(base_url=f"{live_server.url}/v1", headers={"x-api-key": key}) as client:
        yield client


def listed_ids(api, **params) -> list[str]:
    response = api.get("/customers", params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def condition(field, operator, data_type, **value):
    return models.FilterCondition(
        field=field, operator=operator, data_type=data_type, value=models.Value(**value)
    )


@pytest.fixture
def made(sdk) -> dict[str, models.CustomerResponse]:
    acme = sdk.create_customer(
        external_id="acme",
        name="Acme Rockets",
        email="Billing@Acme.example",
        address_line1="1 Rocket Road",
        address_city="Zürich",
        address_country="CH",
        metadata={"plan": "pro", "region": "eu"},
    )
    globex = sdk.create_customer(
        external_id="globex", name="Globex Cloud", metadata={"plan": "free"}
    )
    initech = sdk.create_customer(
        external_id="initech", name="Initech", email="ops@initech.example", metadata={"plan": "pro"}
    )
    return {"acme": acme, "globex": globex, "initech": initech}


def test_create_answers_the_sdks_model_with_what_this_api_stored(sdk, api, made):
    acme = made["acme"]
    assert isinstance(acme, models.CustomerResponse)
    stored = api.get(f"/customers/{acme.id}").json()
    assert acme.id == stored["id"]
    assert acme.id.startswith("cust_")
    assert (acme.external_id, acme.name, acme.email) == (
        "acme",
        "Acme Rockets",
        "Billing@Acme.example",
    )
    assert acme.address_city == "Zürich"
    assert acme.address_country == "CH"
    assert acme.metadata == {"plan": "pro", "region": "eu"}
    assert acme.status == "published"
    assert acme.environment_id == "env_sdk"
    assert acme.tenant_id == "tenant_sdk"
    assert acme.created_at == datetime.fromisoformat(stored["created_at"])
    assert acme.created_at.tzinfo is not None


def test_get_and_get_by_external_id(sdk, made):
    acme = made["acme"]
    assert sdk.get_customer(id=acme.id) == acme
    assert sdk.get_customer_by_external_id(external_id="acme") == acme


def test_query_without_filters_is_the_list(sdk, api, made):
    page = sdk.query_customer()
    assert isinstance(page, models.ListCustomersResponse)
    assert [item.id for item in page.items] == listed_ids(api)
    assert (page.pagination.total, page.pagination.limit, page.pagination.offset) == (3, 50, 0)
    paged = sdk.query_customer(limit=1, offset=1)
    assert [item.id for item in paged.items] == listed_ids(api, limit=1, offset=1)


def test_query_with_the_lists_own_keys(sdk, api, made):
    ids = {name: customer.id for name, customer in made.items()}

    def queried(**body) -> list[str]:
        return [item.id for item in sdk.query_customer(**body).items]

    assert queried(external_ids=["acme", "globex"]) == listed_ids(api, external_ids="acme,globex")
    assert queried(customer_ids=[ids["initech"]]) == [ids["initech"]]
    assert queried(email="billing@acme.EXAMPLE") == [ids["acme"]]
    assert queried(external_id="globex") == [ids["globex"]]
    assert queried(metadata={"plan": "pro"}) == listed_ids(api, **{"metadata[plan]": "pro"})
    assert queried(status="published", order="asc") == listed_ids(
        api, status="published", order="asc"
    )
    assert queried(start_time=made["globex"].created_at) == [ids["initech"], ids["globex"]]
    assert queried(end_time=made["acme"].created_at) == [ids["acme"]]
    parent = sdk.query_customer(expand="parent_customer").items
    assert len(parent) == 3


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ([condition("name", "eq", "string", string="Globex Cloud")], ["globex"]),
        ([condition("name", "contains", "string", string="ROCK")], ["acme"]),
        ([condition("email", "not_contains", "string", string="acme")], ["initech", "globex"]),
        ([condition("external_id", "in", "array", array=["acme", "initech"])], ["initech", "acme"]),
        ([condition("metadata.plan", "not_in", "array", array=["pro"])], ["globex"]),
        ([condition("address_city", "contains", "string", string="zür")], ["acme"]),
        (
            [condition("created_at", "after", "date", date_="2000-01-01")],
            ["initech", "globex", "acme"],
        ),
        ([condition("created_at", "before", "date", date_="2000-01-01T00:00:00Z")], []),
        (
            [condition("created_at", "gt", "date", date_="2000-01-01")],
            ["initech", "globex", "acme"],
        ),
        (
            [condition("created_at", "lt", "date", date_="2999-01-01")],
            ["initech", "globex", "acme"],
        ),
        ([condition("updated_at", "gte", "date", date_="2999-01-01")], []),
        ([condition("created_at", "eq", "date", date_="2000-01-01")], []),
        (
            [
                condition("metadata.plan", "eq", "string", string="pro"),
                condition("name", "not_contains", "string", string="rockets"),
            ],
            ["initech"],
        ),
    ],
)
def test_query_with_each_filter_operator(sdk, made, conditions, expected):
    page = sdk.query_customer(filters=conditions)
    assert [item.external_id for item in page.items] == expected
    assert page.pagination.total == len(expected)


def test_query_with_a_sort_of_several_fields(sdk, made):
    sdk.create_customer(external_id="acme-2", name="Acme Rockets", metadata={"plan": "free"})
    sort = [
        models.SortCondition(field="name", direction="asc"),
        models.SortCondition(field="external_id", direction="desc"),
    ]
    page = sdk.query_customer(sort=sort)
    assert [item.external_id for item in page.items] == ["acme-2", "acme", "globex", "initech"]
    # A page at a time, by offset as the SDK pages: the same order.
    walked = [
        sdk.query_customer(sort=sort, limit=1, offset=n).items[0].external_id for n in range(4)
    ]
    assert walked == ["acme-2", "acme", "globex", "initech"]


def test_update_by_id_and_by_external_id(sdk, api, made):
    acme = made["acme"]
    renamed = sdk.update_customer(id=acme.id, name="Acme Incorporated")
    assert renamed.name == "Acme Incorporated"
    assert renamed.email == acme.email
    assert api.get(f"/customers/{acme.id}").json()["name"] == "Acme Incorporated"
    moved = sdk.update_customer(
        external_customer_id="globex", address_city="Paris", metadata={"plan": "pro"}
    )
    assert moved.id == made["globex"].id
    assert (moved.address_city, moved.metadata) == ("Paris", {"plan": "pro"})
    assert sdk.get_customer(id=moved.id) == moved
    # Each update is an event, as from any other entry point.
    events = api.get("/events", params={"customer_id": acme.id, "type": "customer.updated"}).json()
    assert [event["data"]["previous_attributes"] for event in events["items"]] == [
        {"name": "Acme Rockets"}
    ]


def test_delete_archives_and_the_customer_stays_readable(sdk, made):
    globex = made["globex"]
    assert sdk.delete_customer(id=globex.id) is None
    assert sdk.get_customer(id=globex.id).status == "archived"
    assert Customer.objects.get(pk=globex.id).status == "archived"
    assert [item.external_id for item in sdk.query_customer(status="archived").items] == ["globex"]


def test_errors_reach_the_sdk_as_its_errors_with_this_apis_envelope(sdk, made):
    with pytest.raises(models.errors.FlexpriceDefaultError) as missing:
        sdk.get_customer(id="cust_01J2Z3K4M5N6P7Q8R9S0T1V2W3")
    assert missing.value.status_code == 404
    # `lte` is not among the SDK's own operators either: it warns, then sends it as it is.
    with (
        pytest.raises(models.errors.ErrorResponse) as refused,
        pytest.warns(UserWarning, match="serializer warnings"),
    ):
        sdk.query_customer(filters=[condition("name", "lte", "string", string="x")])
    assert refused.value.status_code == 400
    error = refused.value.raw_response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["details"]) == ["filters[0].operator"]
    with pytest.raises(models.errors.ErrorResponse) as deleted_status:
        sdk.query_customer(status="deleted")  # Flexprice's status; this API has draft
    assert "status" in deleted_status.value.raw_response.json()["error"]["details"]
    with pytest.raises(models.errors.ErrorResponse) as not_stored:
        sdk.create_customer(external_id="x", name="X", billing_currency="EUR")
    assert not_stored.value.raw_response.json()["error"]["details"] == {
        "billing_currency": ["is a Flexprice field this API does not store: leave it out"]
    }
    with pytest.raises(models.errors.FlexpriceDefaultError) as taken:
        sdk.create_customer(external_id="acme", name="Again")
    assert taken.value.status_code == 409


def test_timestamps_the_sdk_sends_are_read_exactly(sdk, made):
    moment = datetime(2000, 1, 1, tzinfo=UTC)
    assert (
        sdk.query_customer(
            start_time=moment, end_time=datetime(2999, 1, 1, tzinfo=UTC)
        ).pagination.total
        == 3
    )
