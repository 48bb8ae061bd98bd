"""Operations: liveness and readiness probes, and `/v1/` paths without trailing slashes.

`GET /healthz` answers while the process runs (no database); `GET /readyz` answers 200 when
the database answers within a second, else 503. Both are public and JSON.
"""

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.http import require_GET

READY_TIMEOUT_SECONDS = 1.0
# A probe that hangs (an unreachable server) keeps its thread, not the request's.
probe_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="readyz")


def database_answers() -> bool:
    """Run in a thread of its own, with its own connection, closed afterwards."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except DatabaseError:
        return False
    finally:
        connection.close()


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    try:
        ready = probe_pool.submit(database_answers).result(timeout=READY_TIMEOUT_SECONDS)
    except FutureTimeout:
        ready = False
    if ready:
        return JsonResponse({"status": "ok", "database": "ok"})
    return JsonResponse({"status": "unavailable", "database": "unavailable"}, status=503)


class TrailingSlashRedirectMiddleware:
    """`/v1/customers/` answers 308 to `/v1/customers` (the query kept), for every `/v1/`
    path that exists without its slash (and not with it, as `/v1/docs/` does)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        path = request.path_info
        slashed_api_path = path.startswith("/v1/") and path.endswith("/") and path != "/v1/"
        if slashed_api_path and not resolves(path) and resolves(path.rstrip("/")):
            target = request.path.rstrip("/")
            query = request.META.get("QUERY_STRING", "")
            url = f"{target}?{query}" if query else target
            return HttpResponsePermanentRedirect(url, preserve_request=True)  # 308
        return self.get_response(request)


def resolves(path: str) -> bool:
    try:
        resolve(path)
    except Resolver404:
        return False
    return True
