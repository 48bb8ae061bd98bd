"""Operations (Part 2): health and readiness probes, trailing slashes on `/v1/` paths."""

import pytest
from django.test import Client

from customers import operations


def test_healthz_answers_without_the_database():
    # No django_db mark: any query would fail the test.
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db(transaction=True)
def test_readyz_answers_200_when_the_database_answers():
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


def test_readyz_answers_503_when_the_database_does_not(monkeypatch):
    monkeypatch.setattr(operations, "database_answers", lambda: False)
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"] == "unavailable"


def test_readyz_gives_up_after_a_second(monkeypatch):
    import time

    monkeypatch.setattr(operations, "READY_TIMEOUT_SECONDS", 0.1)
    monkeypatch.setattr(operations, "database_answers", lambda: time.sleep(1) or True)
    started = time.perf_counter()
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert time.perf_counter() - started < 0.9


@pytest.mark.django_db
def test_a_trailing_slash_redirects_with_the_query_kept(api):
    response = api.get("/v1/customers/?limit=2&status=draft")
    assert response.status_code == 308
    assert response["Location"] == "/v1/customers?limit=2&status=draft"
    assert api.get("/v1/events/").status_code == 308
    assert api.get("/v1/docs/").status_code == 200  # a path that has its slash stays
    assert api.get("/v1/nothing/").status_code == 404
