"""The README's curl examples, run in order against the demo data, answer as it says."""

import itertools
import json
import re
import shlex
from pathlib import Path

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

README = Path(__file__).resolve().parents[2] / "README.md"
DEMO_KEY = "sk_demo_key_for_local_use_only_0123456789"
CUSTOMER_KEYS = 17


# `NEXT=$(curl ... | python3 -c '...')`: a command whose answer's next_cursor becomes $NEXT.
CAPTURE = re.compile(r"NEXT=\$\((curl .*?) \|")


def curl_commands() -> list[list[str]]:
    """Every curl command, in order; one whose cursor is kept is marked by a leading "NEXT"."""
    text = README.read_text().replace("\\\n", " ")
    commands = []
    for line in (line.strip() for line in text.splitlines()):
        captured = CAPTURE.match(line)
        if captured:
            commands.append(["NEXT", *shlex.split(captured.group(1).replace("$KEY", DEMO_KEY))])
        elif line.startswith("curl "):
            commands.append(shlex.split(line.replace("$KEY", DEMO_KEY)))
    return commands


def request_of(command: list[str]) -> tuple[str, str, dict[str, str], str | None]:
    url = next(part for part in command if part.startswith("http://"))
    method, headers, body = "GET", {}, None
    for flag, value in itertools.pairwise(command):
        if flag == "-X":
            method = value
        elif flag == "-d":
            body = value
        elif flag == "-H":
            name, _, header_value = value.partition(": ")
            if name.lower() == "content-type":
                continue
            headers["HTTP_" + name.upper().replace("-", "_")] = header_value
    return method, re.sub(r"^http://127\.0\.0\.1:8000", "", url), headers, body


def test_the_readme_has_curl_examples_for_reads_and_writes():
    methods = {request_of(command)[0] for command in curl_commands()}
    assert methods == {"GET", "POST", "PATCH", "DELETE"}
    assert len(curl_commands()) >= 12


@pytest.mark.django_db
def test_every_curl_example_works_against_the_demo_data():
    call_command("seed_demo", stdout=None, stderr=None)
    client = APIClient()
    next_cursor = endpoint_id = None
    for command in curl_commands():
        method, path, headers, body = request_of(command)
        path = path.replace("$NEXT", next_cursor or "$NEXT")
        path = path.replace("$ENDPOINT", endpoint_id or "$ENDPOINT")
        response = client.generic(
            method, path, body or "", content_type="application/json", **headers
        )
        if method == "DELETE":
            assert response.status_code == 204, path
            assert client.get(path, **headers).json()["status"] == "archived"
            continue
        if path.startswith("/v1/customers/export"):
            assert response.status_code == 200, path
            lines = b"".join(response.streaming_content).decode().splitlines()
            assert len(lines) > 1, f"{path} exported no customers from the demo data"
            continue
        data = response.json()
        if path.startswith("/v1/webhook_endpoints"):
            created = method == "POST" and path.endswith("endpoints")
            assert response.status_code == (201 if created else 200), data
            if method == "POST":
                assert data["secret"].startswith("whsec_"), data
                endpoint_id = data["id"]
            if method == "PATCH":
                assert {key: data[key] for key in json.loads(body)} == json.loads(body)
            continue
        if command[0] == "NEXT":
            next_cursor = data["pagination"]["next_cursor"]
            assert next_cursor, "the walk's first page has a next page"
        if "cursor=" in path:
            assert data["pagination"]["offset"] is None, data
        if path == "/v1/customers/search":
            assert response.status_code == 200, (path, data)
            assert list(data) == ["items", "pagination"]
            assert data["items"], f"{path} returned no customers from the demo data"
        elif "limit=0" in path:
            assert response.status_code == 400
            assert data["error"]["details"] == {"limit": ["must be between 1 and 1000"]}
        elif method == "POST":
            assert response.status_code == 201, data
            assert data["status"] == "published"
        elif method == "PATCH":
            assert response.status_code == 200, data
            assert {key: data[key] for key in json.loads(body)} == json.loads(body)
        elif path.startswith("/v1/events?"):
            assert response.status_code == 200, (path, data)
            assert data["items"], f"{path} returned no events from the demo data"
            assert list(data["pagination"]) == ["limit", "has_more", "next_cursor"]
        elif path.startswith("/v1/customers?"):
            assert response.status_code == 200, (path, data)
            assert list(data) == ["items", "pagination"]
            assert data["items"], f"{path} returned no customers from the demo data"
            assert all(len(item) >= CUSTOMER_KEYS for item in data["items"])
            if "expand=parent_customer" in path:
                assert all(item["parent_customer"] for item in data["items"])
        else:
            assert response.status_code == 200, (path, data)
            assert len(data) == CUSTOMER_KEYS
