"""Admin logins throttled by django-axes: after 5 failed attempts for one username from one
address, that username is refused from that address for 15 minutes, with a clear message on
the login page, even with the right password."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client
from django.utils import timezone

from customers.services import staff_user_upsert

pytestmark = pytest.mark.django_db

LOGIN_URL = "/admin/login/"
USERNAME = "operator"
PASSWORD = "the-right-password-42"
LOCKED = (
    "Too many failed login attempts: after 5 wrong passwords this username is locked for 15 "
    "minutes from your address, even with the right password. Try again later, or ask an "
    "administrator to unlock it."
)
WRONG = "Please enter the correct username and password for a staff account."


@pytest.fixture
def operator(db):
    return staff_user_upsert(username=USERNAME, password=PASSWORD, tenant_ids=["tenant_a"])


def log_in(client: Client, password: str, *, username: str = USERNAME, address="10.0.0.1"):
    return client.post(
        LOGIN_URL,
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR=address,
    )


def is_logged_in(client: Client) -> bool:
    return client.get("/admin/").status_code == 200


def fail(client: Client, times: int, **kwargs) -> list:
    return [log_in(client, "wrong-password", **kwargs) for _ in range(times)]


def test_the_settings_lock_a_username_from_one_address():
    assert settings.AXES_FAILURE_LIMIT == 5
    assert timedelta(minutes=15) == settings.AXES_COOLOFF_TIME
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]


def test_four_failures_are_only_wrong_passwords(operator):
    client = Client()
    for response in fail(client, 4):
        assert response.status_code == 200
        assert WRONG in response.content.decode()
    assert log_in(client, PASSWORD).status_code == 302
    assert is_logged_in(client)


def test_the_fifth_failure_locks_with_a_clear_message_on_the_login_page(operator):
    client = Client()
    *_, fifth = fail(client, 5)
    assert fifth.status_code == 429
    page = fifth.content.decode()
    assert LOCKED in page
    assert WRONG not in page
    # Still the admin's login page, the username kept in its form.
    assert 'id="login-form"' in page
    assert f'value="{USERNAME}"' in page


def test_the_right_password_is_refused_during_the_lockout(operator):
    client = Client()
    fail(client, 5)
    response = log_in(client, PASSWORD)
    assert response.status_code == 429
    assert LOCKED in response.content.decode()
    assert not is_logged_in(client)
    assert "_auth_user_id" not in client.session


def test_the_lockout_is_per_username_and_address(operator):
    staff_user_upsert(username="colleague", password=PASSWORD, tenant_ids=["tenant_a"])
    fail(Client(), 5)
    # The same username from another address, and another username from the same one.
    elsewhere = Client()
    assert log_in(elsewhere, PASSWORD, address="10.0.0.2").status_code == 302
    assert is_logged_in(elsewhere)
    colleague = Client()
    assert log_in(colleague, PASSWORD, username="colleague").status_code == 302
    assert is_logged_in(colleague)


def test_the_lockout_ends_after_15_minutes_and_further_tries_do_not_extend_it(operator):
    client = Client()
    fail(client, 5)
    fail(client, 3)  # during the lockout: refused, and the lockout is not extended
    attempt = AccessAttempt.objects.get(username=USERNAME)
    assert attempt.failures_since_start == 5
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=14))
    assert log_in(client, PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=15, seconds=1))
    assert log_in(client, PASSWORD).status_code == 302
    assert is_logged_in(client)


def test_a_successful_login_forgets_the_failures_before_it(operator):
    client = Client()
    fail(client, 4)
    assert log_in(client, PASSWORD).status_code == 302
    client.logout()
    for response in fail(client, 4):
        assert response.status_code == 200
    assert log_in(client, PASSWORD).status_code == 302


def test_the_browsable_apis_login_counts_and_refuses_alike(operator):
    client = Client()
    fail(client, 5)
    response = client.post(
        "/api-auth/login/",
        {"username": USERNAME, "password": PASSWORD, "next": "/v1/customers"},
        REMOTE_ADDR="10.0.0.1",
    )
    assert response.status_code == 429
    assert LOCKED in response.content.decode()
