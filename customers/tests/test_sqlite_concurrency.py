"""The embedded default (SQLite) takes concurrent writers, as `bash bin/start` serves it.

A real server (`manage.py runserver`, threaded, the dev settings) on a SQLite file, and
several POSTs released together by a barrier: each gets its 201, and the duplicate
external id its one 409, never a 503 "database is locked".
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 5
WRITERS = 6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url: str, key: str, body: dict) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"x-api-key": key, "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("sqlite-server")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
        "DJANGO_SETTINGS_MODULE": "crm.settings.dev",
        "DATABASE_URL": f"sqlite:///{directory / 'db.sqlite3'}",
        "DJANGO_DEBUG": "false",
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True)
    created = subprocess.run(
        [*manage, "create_api_key", "--tenant", "tenant_c", "--environment", "env_c"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    key = created.stdout.strip().splitlines()[-1]
    server = subprocess.Popen(
        [*manage, "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/v1/openapi.json", timeout=5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield base, key
    finally:
        server.terminate()
        server.wait(timeout=10)


def concurrent_posts(url: str, key: str, bodies: list[dict]) -> list[int]:
    barrier = threading.Barrier(len(bodies))
    statuses: list[int] = [0] * len(bodies)

    def send(index: int) -> None:
        barrier.wait()
        statuses[index] = post(url, key, bodies[index])

    threads = [threading.Thread(target=send, args=(index,)) for index in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_concurrent_creates_on_sqlite_all_succeed_but_the_duplicate(sqlite_server):
    base, key = sqlite_server
    for round_number in range(ROUNDS):
        # Five distinct external ids and one of them twice: five 201s and exactly one 409.
        external_ids = [f"r{round_number}_w{index}" for index in range(WRITERS - 1)]
        external_ids.append(external_ids[0])
        bodies = [{"external_id": value, "name": "Concurrent"} for value in external_ids]
        statuses = concurrent_posts(f"{base}/v1/customers", key, bodies)
        assert sorted(statuses) == [201] * (WRITERS - 1) + [409], statuses


def test_two_simultaneous_creates_on_sqlite_both_succeed(sqlite_server):
    base, key = sqlite_server
    for round_number in range(ROUNDS):
        bodies = [{"external_id": f"pair{round_number}_{i}", "name": "Pair"} for i in range(2)]
        assert concurrent_posts(f"{base}/v1/customers", key, bodies) == [201, 201]
