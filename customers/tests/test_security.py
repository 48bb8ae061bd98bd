"""Security of the API, endpoint by endpoint: another scope's ids are a 404 (or, in a filter,
match nothing) and never a read or a write; revoked keys stop at once; keys stored hashed.

Each operation is one row of a table. Every test first shows the request working for the
scope that owns the object (inside a savepoint that is rolled back, so a write can be shown
and then refused), then sends the very same request from another tenant and from another
environment of the same tenant, and checks that nothing in the database changed.
The admin pages have their own module, test_security_admin.py.
"""

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.apps import apps
from django.db import transaction
from rest_framework.test import APIClient

from customers.models import (
    ApiKey,
    Customer,
    CustomerEvent,
    CustomerStatusCount,
    IdempotencyRecord,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from customers.services import api_key_revoke, staff_user_upsert

pytestmark = pytest.mark.django_db

# What a request may change: everything but the keys' last_used_at (which every request
# may touch).
STATE_MODELS = (
    Customer,
    CustomerStatusCount,
    CustomerEvent,
    WebhookEndpoint,
    WebhookDelivery,
    WebhookAttempt,
    IdempotencyRecord,
)
UNKNOWN_CUSTOMER = "cust_01AAAAAAAAAAAAAAAAAAAAAAAA"


def database_state() -> dict[str, list[tuple]]:
    return {
        model.__name__: list(model.objects.order_by("pk").values_list()) for model in STATE_MODELS
    }


def send(client: APIClient, method: str, path: str, body=None, **headers):
    data = json.dumps(body) if body is not None else None
    return getattr(client, method)(path, data=data, content_type="application/json", **headers)


def filled(template, values: dict):
    """``template`` (a string, or a JSON body of them) with ``values`` in its braces."""
    if isinstance(template, str):
        return template.format(**values)
    if isinstance(template, list):
        return [filled(item, values) for item in template]
    if isinstance(template, dict):
        return {key: filled(value, values) for key, value in template.items()}
    return template


@dataclass
class World:
    """One scope's objects, made through the API (so each has its events and deliveries)."""

    label: str
    client: APIClient
    parent_id: str
    customer_id: str  # a child of parent_id
    external_id: str
    event_id: str
    endpoint_id: str
    loner_id: str  # no parent, no child
    loner_external_id: str
    word: str  # found by `q` in this scope's customers only
    email: str
    metadata: dict = field(default_factory=dict)

    def fill(self, template):
        return filled(template, self.__dict__)


def build_world(label: str, client: APIClient) -> World:
    endpoint = send(
        client,
        "post",
        "/v1/webhook_endpoints",
        {"url": f"http://127.0.0.1:9/{label}", "enabled_events": ["*"]},
    )
    assert endpoint.status_code == 201, endpoint.content
    word = f"zq{label}word"
    parent = send(
        client,
        "post",
        "/v1/customers",
        {"external_id": f"parent_{label}", "name": f"Parent {word}"},
    )
    assert parent.status_code == 201, parent.content
    child = send(
        client,
        "post",
        "/v1/customers",
        {
            "external_id": f"child_{label}",
            "name": f"Child {word}",
            "email": f"billing@{label}.example.com",
            "parent_customer_id": parent.json()["id"],
            "metadata": {"secret_plan": label},
        },
    )
    assert child.status_code == 201, child.content
    child = child.json()
    loner = send(client, "post", "/v1/customers", {"external_id": f"loner_{label}", "name": "L"})
    assert loner.status_code == 201, loner.content
    events = client.get(f"/v1/events?customer_id={child['id']}").json()["items"]
    return World(
        label=label,
        client=client,
        parent_id=parent.json()["id"],
        customer_id=child["id"],
        external_id=child["external_id"],
        event_id=events[0]["id"],
        endpoint_id=endpoint.json()["id"],
        loner_id=loner.json()["id"],
        loner_external_id=f"loner_{label}",
        word=word,
        email=child["email"],
        metadata=child["metadata"],
    )


@pytest.fixture
def worlds(scope_a, scope_a_sandbox, scope_b) -> dict[str, World]:
    return {
        "mine": build_world("mine", scope_a.client()),
        "other_tenant": build_world("tenantb", scope_b.client()),
        "other_environment": build_world("sandbox", scope_a_sandbox.client()),
    }


VICTIMS = ("other_tenant", "other_environment")


def as_owner(world: World, request: Callable[[World], object]):
    """``request`` sent by the owner inside a savepoint that is then rolled back: the
    response, and whether it changed the database."""
    with transaction.atomic():
        before = database_state()
        response = request(world)
        changed = database_state() != before
        transaction.set_rollback(True)
    return response, changed


# --- operations on one object named in the URL --------------------------------------------


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # World fields in braces
    body: dict | None = None
    ok: int = 200
    writes: bool = True

    def __call__(self, world: World, client: APIClient | None = None):
        return send(client or world.client, self.method, world.fill(self.path), self.body)


RENAME = {"name": "Renamed by someone"}
OPERATIONS = {
    "get customer": Operation("get", "/v1/customers/{customer_id}", writes=False),
    "put customer": Operation("put", "/v1/customers/{customer_id}", RENAME),
    "patch customer": Operation("patch", "/v1/customers/{customer_id}", RENAME),
    "archive customer": Operation("delete", "/v1/customers/{customer_id}", ok=204),
    "erase customer": Operation("post", "/v1/customers/{customer_id}/erase"),
    "update by query, id": Operation("put", "/v1/customers?id={customer_id}", RENAME),
    "update by query, external id": Operation(
        "put", "/v1/customers?external_customer_id={external_id}", RENAME
    ),
    "get by external id": Operation("get", "/v1/customers/external/{external_id}", writes=False),
    "get event": Operation("get", "/v1/events/{event_id}", writes=False),
    "get webhook endpoint": Operation("get", "/v1/webhook_endpoints/{endpoint_id}", writes=False),
    "patch webhook endpoint": Operation(
        "patch", "/v1/webhook_endpoints/{endpoint_id}", {"description": "taken over"}
    ),
    "delete webhook endpoint": Operation("delete", "/v1/webhook_endpoints/{endpoint_id}", ok=204),
    "rotate webhook secret": Operation("post", "/v1/webhook_endpoints/{endpoint_id}/rotate_secret"),
}


def staff_session() -> APIClient:
    """An operator of tenant_a in the browsable API, working in env_a (the switcher's)."""
    user = staff_user_upsert(username="operator", password="pw-for-tests", tenant_ids=["tenant_a"])
    client = APIClient()
    client.force_login(user)
    return client


@pytest.mark.parametrize("caller", ["api key", "staff session"])
@pytest.mark.parametrize("victim", VICTIMS)
@pytest.mark.parametrize("name", OPERATIONS)
def test_another_scopes_object_is_a_404_and_nothing_changes(worlds, name, victim, caller):
    operation = OPERATIONS[name]
    theirs = worlds[victim]
    response, changed = as_owner(theirs, operation)
    assert response.status_code == operation.ok, response.content
    assert changed is operation.writes

    client = worlds["mine"].client if caller == "api key" else staff_session()
    before = database_state()
    response = operation(theirs, client=client)
    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == "not_found"
    for value in (theirs.word, theirs.email, "whsec_"):  # what only a read would show
        assert value not in response.content.decode()
    assert database_state() == before


@pytest.mark.parametrize("victim", VICTIMS)
@pytest.mark.parametrize("name", OPERATIONS)
def test_the_404_says_what_it_says_of_an_id_that_does_not_exist(worlds, name, victim):
    """No oracle: another scope's id is refused in the words used for an unknown one."""
    operation = OPERATIONS[name]
    theirs, mine = worlds[victim], worlds["mine"]
    made_up = World(
        **{
            **theirs.__dict__,
            "customer_id": UNKNOWN_CUSTOMER,
            "external_id": "no_such_external_id",
            "event_id": "evt_01AAAAAAAAAAAAAAAAAAAAAAAA",
            "endpoint_id": "we_01AAAAAAAAAAAAAAAAAAAAAAAA",
        }
    )
    refused = operation(theirs, client=mine.client).json()["error"]
    unknown = operation(made_up, client=mine.client).json()["error"]
    for original, placeholder in (
        (theirs.customer_id, UNKNOWN_CUSTOMER),
        (theirs.external_id, made_up.external_id),
        (theirs.event_id, made_up.event_id),
        (theirs.endpoint_id, made_up.endpoint_id),
    ):
        refused["message"] = refused["message"].replace(original, placeholder)
    del refused["request_id"], unknown["request_id"]
    assert refused == unknown


# --- filters naming another scope's ids: no rows -------------------------------------------


def listed_ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


def exported_ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    text = b"".join(response.streaming_content).decode()
    if response["Content-Type"].startswith("text/csv"):
        return [row["id"] for row in csv.DictReader(io.StringIO(text))]
    return [json.loads(line)["id"] for line in text.splitlines() if line]


def event_customer_ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["data"]["object"]["id"] for item in response.json()["items"]]


def condition(field_name: str, operator: str, value) -> dict:
    data_type = "array" if isinstance(value, list) else "string"
    return {
        "filters": [
            {
                "field": field_name,
                "operator": operator,
                "data_type": data_type,
                "value": {data_type: value},
            }
        ]
    }


@dataclass(frozen=True)
class Lookup:
    """A read whose parameters name the owner's objects: ``found`` picks the ids out."""

    method: str
    path: str
    body: dict | None = None
    found: Callable = listed_ids
    expects: str = "customer_id"  # the World field that the answer holds

    def __call__(self, world: World, client: APIClient | None = None):
        return send(
            client or world.client, self.method, world.fill(self.path), world.fill(self.body)
        )


def search(body: dict, expects: str = "customer_id") -> Lookup:
    return Lookup("post", "/v1/customers/search", body, expects=expects)


LOOKUPS = {
    "list, customer_ids": Lookup("get", "/v1/customers?customer_ids={customer_id}"),
    "list, parent_customer_ids": Lookup("get", "/v1/customers?parent_customer_ids={parent_id}"),
    "list, expand parent": Lookup(
        "get", "/v1/customers?customer_ids={customer_id}&expand=parent_customer"
    ),
    "list, external_id": Lookup("get", "/v1/customers?external_id={external_id}"),
    "list, external_ids": Lookup("get", "/v1/customers?external_ids={external_id}"),
    "list, email": Lookup("get", "/v1/customers?email={email}"),
    "list, q": Lookup("get", "/v1/customers?q=child+{word}"),
    "list, metadata": Lookup("get", "/v1/customers?metadata[secret_plan]={label}"),
    "search, customer_ids": search({"customer_ids": ["{customer_id}"]}),
    "search, parent_customer_ids": search({"parent_customer_ids": ["{parent_id}"]}),
    "search, external_ids": search({"external_ids": ["{external_id}"]}),
    "search, id eq": search(condition("id", "eq", "{customer_id}")),
    "search, id in": search(condition("id", "in", ["{customer_id}", "{parent_id}"])),
    "search, parent_customer_id eq": search(condition("parent_customer_id", "eq", "{parent_id}")),
    "search, parent_customer_id in": search(condition("parent_customer_id", "in", ["{parent_id}"])),
    "search, parent's own id not_in": search(
        condition("id", "not_in", ["{parent_id}"]), expects="customer_id"
    ),
    "search, name contains": search(condition("name", "contains", "child {word}")),
    "search, metadata": search(condition("metadata.secret_plan", "eq", "{label}")),
    "export csv, customer_ids": Lookup(
        "get", "/v1/customers/export?customer_ids={customer_id}", found=exported_ids
    ),
    "export jsonl, parent_customer_ids": Lookup(
        "get",
        "/v1/customers/export?format=jsonl&parent_customer_ids={parent_id}",
        found=exported_ids,
    ),
    "events, customer_id": Lookup(
        "get", "/v1/events?customer_id={customer_id}", found=event_customer_ids
    ),
    "webhook endpoints": Lookup("get", "/v1/webhook_endpoints", expects="endpoint_id"),
}


@pytest.mark.parametrize("victim", VICTIMS)
@pytest.mark.parametrize("name", LOOKUPS)
def test_filters_naming_another_scopes_objects_match_nothing(worlds, name, victim):
    lookup = LOOKUPS[name]
    theirs, mine = worlds[victim], worlds["mine"]
    target = getattr(theirs, lookup.expects)
    assert target in lookup.found(lookup(theirs))

    answer = lookup(theirs, client=mine.client)
    found = lookup.found(answer)
    assert target not in found
    body = answer.content if hasattr(answer, "content") else b""
    assert theirs.word.encode() not in body
    if "not_in" not in name and name != "webhook endpoints":
        assert found == []  # only the other scope's objects were named
    # The caller's own objects are there when its own ids are named (the filter works).
    assert getattr(mine, lookup.expects) in lookup.found(lookup(mine))


def test_a_cursor_of_another_scope_is_refused(worlds):
    theirs, mine = worlds["other_tenant"], worlds["mine"]
    page = theirs.client.get("/v1/customers?limit=1").json()
    cursor = page["pagination"]["next_cursor"]
    assert theirs.client.get(f"/v1/customers?limit=1&cursor={cursor}").status_code == 200
    refused = mine.client.get(f"/v1/customers?limit=1&cursor={cursor}")
    assert refused.status_code == 400
    assert "cursor" in refused.json()["error"]["details"]
    events_page = theirs.client.get("/v1/events?limit=1").json()
    cursor = events_page["pagination"]["next_cursor"]
    assert theirs.client.get(f"/v1/events?limit=1&cursor={cursor}").status_code == 200
    assert mine.client.get(f"/v1/events?limit=1&cursor={cursor}").status_code == 400


# --- writes whose body names another scope's customer --------------------------------------


PARENT_WRITES = {
    "create": Operation("post", "/v1/customers", ok=201),
    "put": Operation("put", "/v1/customers/{loner_id}"),
    "patch": Operation("patch", "/v1/customers/{loner_id}"),
    "update by query": Operation("put", "/v1/customers?external_customer_id={loner_external_id}"),
}


@pytest.mark.parametrize("victim", VICTIMS)
@pytest.mark.parametrize("name", PARENT_WRITES)
def test_a_parent_in_another_scope_is_refused_as_an_unknown_one(worlds, name, victim):
    template = PARENT_WRITES[name]
    theirs, mine = worlds[victim], worlds["mine"]

    def write(parent_id: str) -> Operation:
        body = {"parent_customer_id": parent_id}
        if template.method == "post":
            body.update(external_id="new_child", name="New child")
        return Operation(template.method, template.path, body, ok=template.ok)

    # The owner may make the customer a child of that parent...
    response, changed = as_owner(mine, write(mine.parent_id))
    assert response.status_code == template.ok, response.content
    assert changed
    response, changed = as_owner(theirs, write(theirs.parent_id))
    assert response.status_code == template.ok, response.content
    # ... no one else may, and is told what an unknown id would tell them.
    before = database_state()
    refused = write(theirs.parent_id)(mine)
    assert refused.status_code == 400, refused.content
    assert database_state() == before
    unknown = write(UNKNOWN_CUSTOMER)(mine)
    assert refused.json()["error"]["details"] == unknown.json()["error"]["details"]
    assert list(refused.json()["error"]["details"]) == ["parent_customer_id"]


# --- bodies claiming another scope ------------------------------------------------------------


CLAIMS = {"tenant_id": "tenant_b", "environment_id": "env_b"}
CLAIMING_WRITES = {
    "create customer": Operation("post", "/v1/customers", {"external_id": "c", "name": "C"}, 201),
    "patch customer": Operation("patch", "/v1/customers/{customer_id}", {"name": "C"}),
    "update by query": Operation("put", "/v1/customers?id={customer_id}", {"name": "C"}),
    "create webhook endpoint": Operation(
        "post",
        "/v1/webhook_endpoints",
        {"url": "http://127.0.0.1:9/c", "enabled_events": ["*"]},
        201,
    ),
    "patch webhook endpoint": Operation(
        "patch", "/v1/webhook_endpoints/{endpoint_id}", {"description": "C"}
    ),
}


def tenant_b_state() -> dict[str, list[tuple]]:
    return {
        model.__name__: list(
            model.objects.filter(tenant_id="tenant_b").order_by("pk").values_list()
        )
        for model in (Customer, CustomerStatusCount, CustomerEvent, WebhookEndpoint)
    }


@pytest.mark.parametrize("name", CLAIMING_WRITES)
def test_a_body_naming_another_scope_writes_in_the_keys_scope(worlds, name):
    """The server-owned `id`, `tenant_id` and `environment_id` of a body are ignored (what
    was read may be sent back): the write lands in the key's scope, none of theirs changes."""
    template, mine, theirs = CLAIMING_WRITES[name], worlds["mine"], worlds["other_tenant"]
    their_id = theirs.endpoint_id if "webhook" in name else theirs.customer_id
    body = {**template.body, **CLAIMS, "id": their_id}
    before = tenant_b_state()
    response = Operation(template.method, template.path, body)(mine)
    assert response.status_code == template.ok, response.content
    written = response.json()
    assert (written["tenant_id"], written["environment_id"]) == ("tenant_a", "env_a")
    assert written["id"] != their_id
    assert tenant_b_state() == before


# --- idempotency keys are per scope ---------------------------------------------------------


def test_an_idempotency_key_of_another_scope_replays_nothing(worlds):
    theirs, mine = worlds["other_tenant"], worlds["mine"]
    body = {"external_id": "same_everywhere", "name": "Same body"}
    first = send(theirs.client, "post", "/v1/customers", body, HTTP_IDEMPOTENCY_KEY="shared-key")
    assert first.status_code == 201
    replay = send(theirs.client, "post", "/v1/customers", body, HTTP_IDEMPOTENCY_KEY="shared-key")
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()

    mine_created = send(
        mine.client, "post", "/v1/customers", body, HTTP_IDEMPOTENCY_KEY="shared-key"
    )
    assert mine_created.status_code == 201
    assert not mine_created.has_header("Idempotent-Replayed")
    assert mine_created.json()["id"] != first.json()["id"]
    assert mine_created.json()["tenant_id"] == "tenant_a"


# --- revoked keys, hashed keys ---------------------------------------------------------------


EVERY_REQUEST = {
    **OPERATIONS,
    **CLAIMING_WRITES,
    "list": Operation("get", "/v1/customers", writes=False),
    "search": Operation("post", "/v1/customers/search", {}, writes=False),
    "export": Operation("get", "/v1/customers/export", writes=False),
    "events": Operation("get", "/v1/events", writes=False),
    "webhook endpoints": Operation("get", "/v1/webhook_endpoints", writes=False),
}


@pytest.mark.parametrize("name", EVERY_REQUEST)
def test_a_revoked_key_stops_at_once(worlds, scope_a, name):
    operation = EVERY_REQUEST[name]
    mine = worlds["mine"]
    response, _ = as_owner(mine, operation)
    assert response.status_code == operation.ok, response.content

    api_key_revoke(prefix=scope_a.key[: ApiKey.PREFIX_LENGTH])
    before = database_state()
    response = operation(mine)
    assert response.status_code == 401, response.content
    assert response.json()["error"]["code"] == "unauthenticated"
    assert database_state() == before


def test_no_raw_key_is_stored_anywhere(worlds, scope_a):
    """After a key has created, changed, archived and erased customers and endpoints (events,
    deliveries, idempotency records), no column of any table holds its secret part."""
    mine = worlds["mine"]
    send(
        mine.client,
        "post",
        "/v1/customers",
        {"external_id": "k", "name": "K"},
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    OPERATIONS["patch customer"](mine)
    OPERATIONS["erase customer"](mine)
    OPERATIONS["rotate webhook secret"](mine)
    secret = scope_a.key[ApiKey.PREFIX_LENGTH :]
    assert len(secret) >= 24
    for model in apps.get_models():
        for row in model.objects.values_list():
            text = " ".join(str(value) for value in row)
            assert secret not in text, model.__name__
            assert scope_a.key not in text, model.__name__
