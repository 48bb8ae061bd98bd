"""The README's curl examples, run against the demo data, answer as the README says."""

import itertools
import re
import shlex
from pathlib import Path

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

README = Path(__file__).resolve().parents[2] / "README.md"
DEMO_KEY = "sk_demo_key_for_local_use_only_0123456789"
CUSTOMER_KEYS = 17


def curl_commands() -> list[list[str]]:
    text = README.read_text().replace("\\\n", " ")
    commands = [line.strip() for line in text.splitlines() if line.strip().startswith("curl ")]
    return [shlex.split(command.replace("$KEY", DEMO_KEY)) for command in commands]


def request_of(command: list[str]) -> tuple[str, dict[str, str]]:
    url = next(part for part in command if part.startswith("http://"))
    headers = {}
    for flag, value in itertools.pairwise(command):
        if flag == "-H":
            name, _, header_value = value.partition(": ")
            headers["HTTP_" + name.upper().replace("-", "_")] = header_value
    return re.sub(r"^http://127\.0\.0\.1:8000", "", url), headers


def test_the_readme_has_curl_examples():
    assert len(curl_commands()) >= 8


@pytest.mark.django_db
def test_every_curl_example_works_against_the_demo_data():
    call_command("seed_demo", stdout=None, stderr=None)
    client = APIClient()
    for command in curl_commands():
        path, headers = request_of(command)
        response = client.get(path, **headers)
        body = response.json()
        if "limit=0" in path:
            assert response.status_code == 400
            assert body["error"]["details"] == {"limit": ["must be between 1 and 1000"]}
            continue
        assert response.status_code == 200, (path, body)
        assert list(body) == ["items", "pagination"]
        assert body["items"], f"{path} returned no customers from the demo data"
        assert all(len(item) >= CUSTOMER_KEYS for item in body["items"])
        if "expand=parent_customer" in path:
            assert all(item["parent_customer"] for item in body["items"])
