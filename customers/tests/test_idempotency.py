"""Idempotency-Key on writes, and the races that the database must decide."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from customers.models import Customer, IdempotencyRecord
from customers.tests.factories import make_customer
from customers.tests.helpers import run_together

NEW = {"external_id": "user_1", "name": "Acme"}


def post(client, data, key=None, path="/v1/customers"):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(path, data, format="json", **headers)


@pytest.mark.django_db
class TestIdempotencyKey:
    def test_same_request_replays_the_first_response_and_writes_once(self, api):
        first = post(api, NEW, key="k1")
        again = post(api, NEW, key="k1")
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json()
        assert again["Idempotent-Replayed"] == "true"
        assert Customer.objects.count() == 1

    def test_body_is_compared_after_parsing(self, api):
        post(api, {"name": "Acme", "external_id": "user_1"}, key="k1")
        again = api.post(
            "/v1/customers",
            '{ "external_id" : "user_1",\n "name":"Acme" }',
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY="k1",
        )
        assert again.status_code == 201
        assert Customer.objects.count() == 1

    def test_same_key_with_another_body_is_a_409(self, api):
        post(api, NEW, key="k1")
        response = post(api, {**NEW, "name": "Other"}, key="k1")
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "already_exists"
        assert "Idempotency-Key" in response.json()["error"]["message"]
        assert Customer.objects.get().name == "Acme"

    def test_same_key_on_another_method_or_path_is_a_409(self, api, scope_a):
        customer = make_customer(scope_a.environment)
        post(api, NEW, key="k1")
        response = api.patch(
            f"/v1/customers/{customer.id}", NEW, format="json", HTTP_IDEMPOTENCY_KEY="k1"
        )
        assert response.status_code == 409
        response = api.delete(f"/v1/customers/{customer.id}", HTTP_IDEMPOTENCY_KEY="k1")
        assert response.status_code == 409
        customer.refresh_from_db()
        assert customer.status == "published"

    def test_without_a_key_every_request_writes(self, api):
        assert post(api, NEW).status_code == 201
        assert post(api, NEW).status_code == 409

    def test_keys_are_per_scope(self, api, scope_b):
        post(api, NEW, key="shared")
        response = post(scope_b.client(), {**NEW, "name": "Other tenant"}, key="shared")
        assert response.status_code == 201
        assert response.json()["tenant_id"] == "tenant_b"

    def test_a_refused_request_is_replayed_too(self, api):
        first = post(api, {**NEW, "email": "bad"}, key="k1")
        assert first.status_code == 400
        again = post(api, {**NEW, "email": "bad"}, key="k1")
        assert again.status_code == 400
        assert again.json() == first.json()
        assert post(api, NEW, key="k1").status_code == 409

    def test_update_and_delete_replay(self, api, scope_a):
        customer = make_customer(scope_a.environment, name="Before")
        path = f"/v1/customers/{customer.id}"
        first = api.patch(path, {"name": "After"}, format="json", HTTP_IDEMPOTENCY_KEY="p1")
        api.patch(path, {"name": "Meanwhile"}, format="json")
        again = api.patch(path, {"name": "After"}, format="json", HTTP_IDEMPOTENCY_KEY="p1")
        assert again.json() == first.json()
        customer.refresh_from_db()
        assert customer.name == "Meanwhile"
        assert api.delete(path, HTTP_IDEMPOTENCY_KEY="d1").status_code == 204
        replay = api.delete(path, HTTP_IDEMPOTENCY_KEY="d1")
        assert replay.status_code == 204
        assert replay["Idempotent-Replayed"] == "true"

    def test_a_key_expires_after_24_hours(self, api):
        post(api, NEW, key="old")
        IdempotencyRecord.objects.update(
            created_at=IdempotencyRecord.objects.get().created_at - timedelta(hours=25)
        )
        response = post(api, {"external_id": "user_2", "name": "Fresh"}, key="old")
        assert response.status_code == 201
        assert Customer.objects.count() == 2

    def test_expired_keys_are_purged(self, api):
        post(api, NEW, key="old")
        post(api, {"external_id": "user_2", "name": "New"}, key="new")
        IdempotencyRecord.objects.filter(key="old").update(
            created_at=IdempotencyRecord.objects.get(key="old").created_at - timedelta(hours=25)
        )
        out = StringIO()
        call_command("purge_idempotency_keys", stdout=out)
        assert "Deleted 1" in out.getvalue()
        assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]

    @pytest.mark.parametrize("key", ["", "x" * 256])
    def test_a_malformed_key_is_a_400(self, api, key):
        response = post(api, NEW, key=key)
        assert response.status_code == 400
        assert "Idempotency-Key" in response.json()["error"]["details"]
        assert not Customer.objects.exists()

    def test_a_failure_is_not_remembered(self, api, monkeypatch):
        def explode(**kwargs):
            raise RuntimeError("boom")

        monkeypatch.setattr("customers.api.views.customer_create", explode)
        assert post(api, NEW, key="k1").status_code == 500
        monkeypatch.undo()
        assert post(api, NEW, key="k1").status_code == 201
        assert Customer.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
class TestRaces:
    THREADS = 8
    ROUNDS = 6

    def test_one_external_id_one_customer(self, scope_a):
        for round_number in range(self.ROUNDS):
            external_id = f"race_{round_number}"

            def create(index, external_id=external_id):
                response = post(scope_a.client(), {"external_id": external_id, "name": f"T{index}"})
                return response.status_code

            statuses = run_together(self.THREADS, create)
            assert sorted(statuses) == [201] + [409] * (self.THREADS - 1), statuses
            assert Customer.objects.filter(external_id=external_id).count() == 1

    def test_one_idempotency_key_one_write_and_one_answer(self, scope_a):
        for round_number in range(self.ROUNDS):
            key = f"key_{round_number}"
            body = {"external_id": f"idem_{round_number}", "name": "Once"}

            def create(index, key=key, body=body):
                response = post(scope_a.client(), body, key=key)
                return response.status_code, response.json()

            results = run_together(self.THREADS, create)
            assert all(not isinstance(result, Exception) for result in results), results
            assert {status for status, _ in results} == {201}, results
            assert len({body["id"] for _, body in results}) == 1
            assert Customer.objects.filter(external_id=body["external_id"]).count() == 1

    def test_concurrent_moves_never_close_a_cycle(self, scope_a):
        for _ in range(self.ROUNDS):
            first = make_customer(scope_a.environment)
            second = make_customer(scope_a.environment)
            pairs = [(first, second), (second, first)] * (self.THREADS // 2)

            def move(index, pairs=pairs):
                child, parent = pairs[index]
                response = scope_a.client().patch(
                    f"/v1/customers/{child.id}", {"parent_customer_id": parent.id}, format="json"
                )
                return response.status_code

            statuses = run_together(self.THREADS, move)
            assert set(statuses) <= {200, 400}, statuses
            first.refresh_from_db()
            second.refresh_from_db()
            assert not (first.parent_id == second.id and second.parent_id == first.id)
