"""The public views of the API's description: `/v1/openapi.json` and Swagger UI at `/v1/docs/`.

Both answer anyone (no authentication is even attempted, so a bad key does not matter) and
hold no data. The document is drf-spectacular's, described by ``customers.api.schema``; it is
JSON at its `.json` path (drf-spectacular's default view would answer YAML there). Swagger UI
loads its files from drf-spectacular-sidecar under `/static/`, never from a CDN.
"""

from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiJsonRenderer2
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer


class OpenApiDocumentView(SpectacularJSONAPIView):
    """The OpenAPI document: `application/json` unless `application/vnd.oai.openapi+json` is
    asked for by name."""

    renderer_classes = [OpenApiJsonRenderer2, OpenApiJsonRenderer]
    authentication_classes = []
    permission_classes = [AllowAny]
    http_method_names = ["get", "head"]


class SwaggerUIView(SpectacularSwaggerView):
    """Swagger UI, whose errors keep the `/v1/` JSON envelope.

    Its only renderer is an HTML template: without this, a 405 or 406 here would be a bare
    text page, and OPTIONS (which renders metadata with no template) a 500.
    """

    url_name = "api:openapi"
    authentication_classes = []
    permission_classes = [AllowAny]
    http_method_names = ["get", "head"]

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if getattr(response, "exception", False):
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = JSONRenderer.media_type
        return response
