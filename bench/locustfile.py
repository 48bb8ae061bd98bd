"""The sustained load's clients (locust, headless): every kind of list query, and writes.

Run by bench/load.py, which serves the app, makes the keys and hands this file its values
through the environment: ``LOAD_READ_KEY`` (the 600k-customer benchmark scope),
``LOAD_WRITE_KEY`` (a scratch scope of its own, where creates and updates go),
``LOAD_PROBES`` (JSON: real values to filter on) and ``LOAD_SAMPLES`` (where every request's
kind, time and outcome is written when the run stops, for exact percentiles).

Each simulated client is one keep-alive connection (FastHttpUser) sending request after
request with no pause (a closed loop: 16 clients keep 16 requests in flight).
"""

import json
import os
import random
import threading
import time
import urllib.parse

from locust import FastHttpUser, events, task

PROBES = json.loads(os.environ.get("LOAD_PROBES", "{}"))
SAMPLES: list[tuple[str, float, bool, int]] = []  # (kind, ms, failed, status)
SAMPLES_LOCK = threading.Lock()


@events.request.add_listener
def record(request_type, name, response_time, response_length, exception, response=None, **_):
    status = getattr(response, "status_code", 0) or 0
    with SAMPLES_LOCK:
        SAMPLES.append((name, float(response_time), exception is not None, int(status)))


@events.test_stop.add_listener
def write_samples(**_):
    path = os.environ.get("LOAD_SAMPLES")
    if path:
        with open(path, "w") as file:
            json.dump(SAMPLES, file)


def query(**params) -> str:
    return "/v1/customers?" + urllib.parse.urlencode(params)


class ApiClient(FastHttpUser):
    # No think time: each client sends its next request as soon as the last one answered.
    wait_time = staticmethod(lambda: 0)

    def on_start(self):
        self.read = {"Authorization": f"Bearer {os.environ['LOAD_READ_KEY']}"}
        self.write = {
            "Authorization": f"Bearer {os.environ['LOAD_WRITE_KEY']}",
            "Content-Type": "application/json",
        }
        self.mine: list[str] = []  # customers this client created (the ones it updates)
        self.number = random.getrandbits(40)
        self.sequence = 0

    def get(self, name: str, path: str):
        with self.client.get(path, headers=self.read, name=name, catch_response=True) as answer:
            if answer.status_code != 200:
                answer.failure(f"HTTP {answer.status_code}: {answer.text[:200]}")
                return None
            return answer.json()

    @task(4)
    def default_list(self):
        self.get("default list", "/v1/customers?limit=50")

    @task(1)
    def by_email(self):
        self.get("email=", query(email=PROBES["email"]))

    @task(1)
    def by_external_id(self):
        self.get("external_id=", query(external_id=PROBES["external_id"]))

    @task(1)
    def by_ids(self):
        self.get("customer_ids= (20)", query(customer_ids=",".join(PROBES["ids"])))

    @task(1)
    def status_sorted(self):
        self.get("status + sort=name", query(status="archived", sort="name", order="asc"))

    @task(1)
    def search_rare(self):
        self.get("q= (rare)", query(q=PROBES["q_rare"]))

    @task(1)
    def search_common(self):
        self.get("q= (common word)", query(q=PROBES["q_common"], limit=20))

    @task(1)
    def bounds(self):
        self.get(
            "created_at bounds",
            query(
                **{"created_at[gte]": PROBES["gte"], "created_at[lt]": PROBES["lt"], "limit": 20}
            ),
        )

    @task(1)
    def metadata(self):
        params = {f"metadata[{key}]": value for key, value in PROBES["metadata"].items()}
        self.get("metadata[...]", query(**params, limit=20))

    @task(1)
    def offset_page(self):
        self.get("offset=10000", query(offset=10_000, limit=50))

    @task(2)
    def cursor_pages(self):
        page = self.get("cursor first page", query(sort="updated_at", order="asc", limit=100))
        for _ in range(3):
            cursor = page and page["pagination"].get("next_cursor")
            if not cursor:
                return
            path = query(sort="updated_at", order="asc", limit=100, cursor=cursor)
            page = self.get("cursor next page", path)

    @task(2)
    def search_post(self):
        body = {
            "filters": [
                {
                    "field": "name",
                    "operator": "contains",
                    "data_type": "string",
                    "value": {"string": PROBES["q_common"]},
                }
            ],
            "sort": [{"field": "name", "direction": "asc"}],
            "limit": 20,
        }
        with self.client.post(
            "/v1/customers/search",
            data=json.dumps(body),
            headers={**self.read, "Content-Type": "application/json"},
            name="POST search",
            catch_response=True,
        ) as answer:
            if answer.status_code != 200:
                answer.failure(f"HTTP {answer.status_code}: {answer.text[:200]}")

    @task(3)
    def create(self):
        self.sequence += 1
        body = {
            "external_id": f"load_{self.number:x}_{self.sequence}_{time.time_ns()}",
            "name": f"Load Test {self.sequence} GmbH",
            "email": f"billing{self.sequence}@load{self.number:x}.example.com",
            "address_country": "DE",
            "metadata": {"plan_tier": "growth", "region": "eu-central"},
        }
        with self.client.post(
            "/v1/customers",
            data=json.dumps(body),
            headers=self.write,
            name="create",
            catch_response=True,
        ) as answer:
            if answer.status_code != 201:
                answer.failure(f"HTTP {answer.status_code}: {answer.text[:200]}")
                return
            self.mine.append(answer.json()["id"])

    @task(3)
    def update(self):
        if not self.mine:
            return self.create()
        customer_id = random.choice(self.mine)
        self.sequence += 1
        with self.client.request(
            "PATCH",
            f"/v1/customers/{customer_id}",
            data=json.dumps({"name": f"Load Renamed {self.sequence} AG"}),
            headers=self.write,
            name="update",
            catch_response=True,
        ) as answer:
            if answer.status_code != 200:
                answer.failure(f"HTTP {answer.status_code}: {answer.text[:200]}")
        return None
