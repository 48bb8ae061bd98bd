"""The framework floor's views: `GET /v1/customers?...` answers the product's captured body.

``BENCH_FRAMEWORK_BODIES`` names a JSON file mapping query strings to bodies;
bench.framework.components checks the API key and renders.
"""

import json
import os
from pathlib import Path

from django.http import HttpResponse
from django.urls import path
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import APIView

BODIES = {
    query: body.encode()
    for query, body in json.loads(Path(os.environ["BENCH_FRAMEWORK_BODIES"]).read_text()).items()
}


class CustomerListFloor(APIView):
    def get(self, request):
        body = BODIES.get(request.META.get("QUERY_STRING", ""))
        if body is None:
            raise exceptions.NotFound("no body was captured for this query string")
        return Response(body)


def ready(request):
    return HttpResponse(b"ready\n", content_type="text/plain")


urlpatterns = [
    path("v1/customers", CustomerListFloor.as_view()),
    path("ready", ready),
]
