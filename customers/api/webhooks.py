"""`/v1/webhook_endpoints`: the scope's webhook endpoints (create, list, read, change, delete,
rotate the secret), and their OpenAPI description.

The views adapt HTTP to ``customers.webhooks`` and nothing else; the schema pieces beside
them only describe what the views write (``webhook_endpoint_as_dict``, ``error_body``).
"""

from contextlib import contextmanager
from typing import Any

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import exceptions, serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from customers.api.errors import ApiValidationError
from customers.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from customers.api.idempotency import MAX_KEY_LENGTH, idempotent
from customers.api.params import RENDERING_PARAMS
from customers.api.schema import (
    BODY_TOO_LARGE,
    COMMON_ERRORS,
    IDEMPOTENCY_CONFLICT,
    IDEMPOTENCY_KEY_PARAMETER,
    UNSUPPORTED_MEDIA_TYPE,
    WWW_AUTHENTICATE_HEADER,
    bad_request,
    error_example,
    error_response,
    replayed_header,
)
from customers.api.serializers import BROWSABLE_API_FORM_FIELDS
from customers.models import CustomerEventType
from customers.webhooks import (
    ALL_EVENTS,
    MAX_DESCRIPTION_LENGTH,
    MAX_ENDPOINTS_PER_SCOPE,
    MAX_URL_LENGTH,
    WebhookEndpointNotFoundError,
    WebhookValidationError,
    webhook_endpoint_as_dict,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_get,
    webhook_endpoint_list,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
)

# Keys a client may send back as it read them: ignored, never written.
READ_ONLY_BODY_FIELDS = frozenset({"id", "tenant_id", "environment_id", "created_at", "updated_at"})


def endpoint_fields_from_body(body: Any) -> dict[str, Any]:
    """The fields of a JSON body, server-owned ones dropped; the service names unknown ones."""
    if not isinstance(body, dict):
        raise ApiValidationError({"body": ["must be a JSON object"]})
    ignored = READ_ONLY_BODY_FIELDS | BROWSABLE_API_FORM_FIELDS
    return {name: value for name, value in body.items() if name not in ignored}


def query_refused(request: Request) -> None:
    """These operations take no query parameter: any one is a 400 naming it."""
    unknown = [name for name in request.query_params if name not in RENDERING_PARAMS]
    if unknown:
        raise ApiValidationError({name: ["is not a known parameter"] for name in unknown})


@contextmanager
def webhook_errors_as_api_errors():
    try:
        yield
    except WebhookValidationError as error:
        raise ApiValidationError(error.errors) from None
    except WebhookEndpointNotFoundError as error:
        raise exceptions.NotFound(str(error)) from None


# -- OpenAPI -----------------------------------------------------------------------------------

EVENT_TYPE_CHOICES = [ALL_EVENTS, *CustomerEventType.values]


@extend_schema_serializer(component_name="WebhookEndpoint")
class WebhookEndpointSchemaSerializer(serializers.Serializer):
    """A webhook endpoint of the scope; its secret is never shown again after creation (or
    rotation)."""

    id = serializers.CharField(help_text="`we_` and a ULID.")
    url = serializers.CharField(max_length=MAX_URL_LENGTH)
    enabled_events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPE_CHOICES),
        help_text=f'The event types sent to it, or `["{ALL_EVENTS}"]` for every type.',
    )
    description = serializers.CharField(max_length=MAX_DESCRIPTION_LENGTH, allow_blank=True)
    enabled = serializers.BooleanField()
    environment_id = serializers.CharField()
    tenant_id = serializers.CharField()
    created_at = serializers.CharField(help_text="RFC 3339 in UTC, with `Z`.")
    updated_at = serializers.CharField(help_text="RFC 3339 in UTC, with `Z`.")


@extend_schema_serializer(component_name="WebhookEndpointWithSecret")
class WebhookEndpointWithSecretSchemaSerializer(WebhookEndpointSchemaSerializer):
    secret = serializers.CharField(
        help_text=(
            "The signing secret, `whsec_` + base64 of 32 random bytes, shown this once. "
            "Receivers verify the `webhook-signature` header with it (Standard Webhooks)."
        )
    )


@extend_schema_serializer(component_name="WebhookEndpointList", many=False)
class WebhookEndpointListSchemaSerializer(serializers.Serializer):
    items = WebhookEndpointSchemaSerializer(many=True)


URL_HELP = (
    "Where events are POSTed: `https://`, resolving to public addresses only (loopback, "
    "private, link-local and reserved addresses are refused, and checked again at "
    "delivery), unless the server allows private URLs (development)."
)


@extend_schema_serializer(component_name="WebhookEndpointCreate")
class WebhookEndpointCreateSchemaSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=MAX_URL_LENGTH, help_text=URL_HELP)
    enabled_events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPE_CHOICES),
        min_length=1,
        help_text=f'Event types, or `["{ALL_EVENTS}"]` for every type.',
    )
    description = serializers.CharField(
        max_length=MAX_DESCRIPTION_LENGTH, allow_blank=True, required=False
    )
    enabled = serializers.BooleanField(required=False, help_text="`true` by default.")


@extend_schema_serializer(component_name="WebhookEndpointUpdate")
class WebhookEndpointUpdateSchemaSerializer(WebhookEndpointCreateSchemaSerializer):
    url = serializers.CharField(max_length=MAX_URL_LENGTH, help_text=URL_HELP, required=False)
    enabled_events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPE_CHOICES), min_length=1, required=False
    )


ENDPOINT_ID_PARAMETER = OpenApiParameter(
    "endpoint_id",
    {"type": "string"},
    OpenApiParameter.PATH,
    description="The endpoint's `id` (`we_...`).",
)
UNKNOWN_PARAMETER = bad_request("limit", "is not a known parameter")
ENDPOINT_NOT_FOUND = error_response(
    404,
    "No such webhook endpoint in the key's scope.",
    error_example(404, "no webhook endpoint 'we_x' in this environment"),
)
KEY_TOO_LONG = bad_request(IDEMPOTENCY_HEADER, f"must be 1 to {MAX_KEY_LENGTH} characters")


def write_parameters(*statuses: int, by_id: bool = True) -> list[OpenApiParameter]:
    return [
        *([ENDPOINT_ID_PARAMETER] if by_id else []),
        IDEMPOTENCY_KEY_PARAMETER,
        replayed_header(*statuses),
        WWW_AUTHENTICATE_HEADER,
    ]


# -- Views -------------------------------------------------------------------------------------


class WebhookEndpointViewSet(viewsets.GenericViewSet):
    """The webhook endpoints of the caller's scope (at most 20)."""

    serializer_class = WebhookEndpointCreateSchemaSerializer  # the browsable API's form

    @extend_schema(
        operation_id="webhook_endpoints_list",
        summary="List webhook endpoints",
        parameters=[WWW_AUTHENTICATE_HEADER],
        responses={
            200: OpenApiResponse(
                WebhookEndpointListSchemaSerializer,
                description=f"Every endpoint of the scope (at most {MAX_ENDPOINTS_PER_SCOPE}), "
                "oldest first.",
            ),
            400: UNKNOWN_PARAMETER,
            **COMMON_ERRORS,
        },
    )
    def list(self, request: Request) -> Response:
        query_refused(request)
        endpoints = webhook_endpoint_list(scope=request.scope)
        return Response({"items": [webhook_endpoint_as_dict(e) for e in endpoints]})

    @extend_schema(
        operation_id="webhook_endpoints_create",
        summary="Create a webhook endpoint (its secret is shown this once)",
        parameters=write_parameters(201, 400, 409, by_id=False),
        request=WebhookEndpointCreateSchemaSerializer,
        responses={
            201: OpenApiResponse(
                WebhookEndpointWithSecretSchemaSerializer,
                description=(
                    "Created, with its signing `secret` (shown this once; a replay of the "
                    f"same `{IDEMPOTENCY_HEADER}` within 24 hours shows it again). A "
                    f"{MAX_ENDPOINTS_PER_SCOPE + 1}st endpoint in a scope is a 400."
                ),
            ),
            400: bad_request("url", "must be an https:// URL"),
            409: IDEMPOTENCY_CONFLICT,
            413: BODY_TOO_LARGE,
            415: UNSUPPORTED_MEDIA_TYPE,
            **COMMON_ERRORS,
        },
    )
    @idempotent
    def create(self, request: Request) -> Response:
        query_refused(request)
        fields = endpoint_fields_from_body(request.data)
        with webhook_errors_as_api_errors():
            endpoint = webhook_endpoint_create(scope=request.scope, data=fields)
        return Response(webhook_endpoint_as_dict(endpoint, secret=True), status=201)

    @extend_schema(
        operation_id="webhook_endpoints_retrieve",
        summary="Get a webhook endpoint",
        parameters=[ENDPOINT_ID_PARAMETER, WWW_AUTHENTICATE_HEADER],
        responses={
            200: OpenApiResponse(WebhookEndpointSchemaSerializer, description="The endpoint."),
            400: UNKNOWN_PARAMETER,
            404: ENDPOINT_NOT_FOUND,
            **COMMON_ERRORS,
        },
    )
    def retrieve(self, request: Request, endpoint_id: str) -> Response:
        query_refused(request)
        with webhook_errors_as_api_errors():
            endpoint = webhook_endpoint_get(scope=request.scope, endpoint_id=endpoint_id)
        return Response(webhook_endpoint_as_dict(endpoint))

    @extend_schema(
        operation_id="webhook_endpoints_partial_update",
        summary="Change a webhook endpoint (url, enabled_events, description, enabled)",
        parameters=write_parameters(200, 400, 404, 409),
        request=WebhookEndpointUpdateSchemaSerializer,
        responses={
            200: OpenApiResponse(
                WebhookEndpointSchemaSerializer, description="The endpoint as it is now."
            ),
            400: bad_request(
                "enabled_events",
                "has an unknown event type 'customer.deleted': the types are "
                + ", ".join(CustomerEventType.values),
            ),
            404: ENDPOINT_NOT_FOUND,
            409: IDEMPOTENCY_CONFLICT,
            413: BODY_TOO_LARGE,
            415: UNSUPPORTED_MEDIA_TYPE,
            **COMMON_ERRORS,
        },
    )
    @idempotent
    def partial_update(self, request: Request, endpoint_id: str) -> Response:
        query_refused(request)
        fields = endpoint_fields_from_body(request.data)
        with webhook_errors_as_api_errors():
            endpoint = webhook_endpoint_update(
                scope=request.scope, endpoint_id=endpoint_id, data=fields
            )
        return Response(webhook_endpoint_as_dict(endpoint))

    @extend_schema(
        operation_id="webhook_endpoints_destroy",
        summary="Delete a webhook endpoint (its pending deliveries are never sent)",
        parameters=write_parameters(204, 400, 404, 409),
        request=None,
        responses={
            204: OpenApiResponse(description="Deleted, with its deliveries and attempts."),
            400: KEY_TOO_LONG,
            404: ENDPOINT_NOT_FOUND,
            409: IDEMPOTENCY_CONFLICT,
            **COMMON_ERRORS,
        },
    )
    @idempotent
    def destroy(self, request: Request, endpoint_id: str) -> Response:
        query_refused(request)
        with webhook_errors_as_api_errors():
            webhook_endpoint_delete(scope=request.scope, endpoint_id=endpoint_id)
        return Response(status=204)

    @extend_schema(
        operation_id="webhook_endpoints_rotate_secret",
        summary="Give a webhook endpoint a new secret (both sign for 24 hours)",
        parameters=write_parameters(200, 400, 404, 409),
        request=None,
        responses={
            200: OpenApiResponse(
                WebhookEndpointWithSecretSchemaSerializer,
                description=(
                    "The endpoint with its new `secret`, shown this once. For 24 hours every "
                    "delivery carries two signatures, one per secret, so that receivers can "
                    "switch at their pace; a second rotation ends the oldest secret at once."
                ),
            ),
            400: KEY_TOO_LONG,
            404: ENDPOINT_NOT_FOUND,
            409: IDEMPOTENCY_CONFLICT,
            **COMMON_ERRORS,
        },
    )
    @idempotent
    def rotate_secret(self, request: Request, endpoint_id: str) -> Response:
        query_refused(request)
        with webhook_errors_as_api_errors():
            endpoint = webhook_endpoint_rotate_secret(scope=request.scope, endpoint_id=endpoint_id)
        return Response(webhook_endpoint_as_dict(endpoint, secret=True))
