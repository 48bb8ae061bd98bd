"""The customer API's views: they adapt HTTP to the selectors and services and nothing else."""

from django.core.exceptions import ValidationError
from django.http import StreamingHttpResponse
from django.template import loader
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from customers.api.errors import ApiValidationError, service_errors_as_api_errors
from customers.api.export import CSVRenderer, JSONLinesRenderer, error_as_json, export_response
from customers.api.idempotency import idempotent
from customers.api.params import (
    parse_customer_export_params,
    parse_customer_list_params,
    parse_customer_lookup_params,
    parse_customer_search_body,
    parse_event_list_params,
    search_error,
)
from customers.api.presenters import CustomerListPresenter
from customers.api.schema import (
    BY_EXTERNAL_ID_PARAMETERS,
    BY_EXTERNAL_ID_RESPONSES,
    CREATE_PARAMETERS,
    CREATE_RESPONSES,
    DESTROY_PARAMETERS,
    DESTROY_RESPONSES,
    ERASE_PARAMETERS,
    ERASE_RESPONSES,
    EVENT_LIST_PARAMETERS,
    EVENT_LIST_RESPONSES,
    EVENT_RETRIEVE_PARAMETERS,
    EVENT_RETRIEVE_RESPONSES,
    EXPORT_PARAMETERS,
    EXPORT_RESPONSES,
    LIST_PARAMETERS,
    LIST_RESPONSES,
    RETRIEVE_PARAMETERS,
    RETRIEVE_RESPONSES,
    UPDATE_BY_QUERY_PARAMETERS,
    UPDATE_BY_QUERY_RESPONSES,
    UPDATE_PARAMETERS,
    UPDATE_RESPONSES,
    CustomerCreateSchemaSerializer,
    CustomerUpdateSchemaSerializer,
)
from customers.api.search_schema import SEARCH_PARAMETERS, SEARCH_REQUEST, SEARCH_RESPONSES
from customers.api.serializers import CustomerSerializer, customer_fields_from_body
from customers.events import actor_for_request
from customers.filters import CustomerFilterSet, check_single_value
from customers.representation import customer_as_dict, event_as_dict
from customers.saved_views import (
    VIEW_PARAM,
    SavedViewError,
    errors_named_by_view,
    query_with_saved_view,
)
from customers.selectors import (
    CustomerFilterError,
    customer_filterset,
    customer_get,
    customer_get_by_external_id,
    customer_list,
    customer_page,
    event_get,
    event_page,
)
from customers.services import (
    customer_archive,
    customer_create,
    customer_erase,
    customer_update,
)


def view_errors(details, from_view) -> ApiValidationError:
    """The list's 400, a saved view's parameter named as the view's."""
    return ApiValidationError(errors_named_by_view(details, from_view=from_view))


class CustomerViewSet(viewsets.GenericViewSet):
    """Customers of the caller's tenant and environment (from the API key, or the switcher)."""

    serializer_class = CustomerSerializer

    @extend_schema(
        operation_id="customers_list",
        summary="List customers",
        parameters=LIST_PARAMETERS,
        responses=LIST_RESPONSES,
    )
    def list(self, request: Request) -> Response:
        """List customers, filtered and sorted, with the exact total."""
        query, from_view, view = self.query_with_view(request)
        params = self.parsed_by_view_rules(parse_customer_list_params, query, from_view)
        return self.page_response(
            request,
            params,
            errors_as=lambda details: view_errors(details, from_view),
            bound_to={"view": view} if view else None,
        )

    @staticmethod
    def query_with_view(request: Request):
        """The query with the shared view it names applied (`view=<slug>`)."""
        try:
            return query_with_saved_view(request.query_params, scope=request.scope)
        except SavedViewError as error:
            raise ApiValidationError({VIEW_PARAM: [str(error)]}) from None

    @staticmethod
    def parsed_by_view_rules(parse, query, from_view, **kwargs):
        try:
            return parse(query, **kwargs)
        except ApiValidationError as error:
            raise view_errors(error.details, from_view) from None

    @extend_schema(
        operation_id="customers_search",
        summary="Search customers with a JSON body (Flexprice's query_customer)",
        parameters=SEARCH_PARAMETERS,
        request=SEARCH_REQUEST,
        responses=SEARCH_RESPONSES,
    )
    def search(self, request: Request) -> Response:
        """The list, its parameters in a JSON body; conditions on any field, several sort
        keys. The same answer, cursors and errors as `GET /v1/customers`."""
        params = parse_customer_search_body(request.data)
        return self.page_response(request, params, errors_as=search_error)

    def page_response(
        self, request: Request, params, *, errors_as=ApiValidationError, bound_to=None
    ):
        presenter = CustomerListPresenter(expand_parent="parent_customer" in params.expand)
        try:
            page = customer_page(
                scope=request.scope,
                filters=params.filters,
                limit=params.limit,
                offset=params.offset,
                cursor=params.cursor,
                projection=presenter.projection,
                bound_to=bound_to,
            )
        except CustomerFilterError as invalid:
            raise errors_as(invalid.errors) from None
        return Response(presenter.body(page))

    def browsable_filter_form(self, request: Request) -> str | None:
        """The list's filter form in the browsable API: the parameters the API accepts."""
        scope = getattr(request, "scope", None)  # none for a refused (401/403) request
        if self.action != "list" or scope is None:
            return None
        filterset = customer_filterset(scope=scope, filters=request.query_params)
        form = filterset.form
        for name in list(form.fields):
            if name not in CustomerFilterSet.API_PARAMS:
                del form.fields[name]  # the admin's own filters, and metadata[KEY] (typed)
        return loader.render_to_string(
            "django_filters/rest_framework/form.html", {"filter": filterset}, request
        )

    @extend_schema(
        operation_id="customers_export",
        summary="Export every matching customer (CSV or JSON Lines, streamed)",
        parameters=EXPORT_PARAMETERS,
        responses=EXPORT_RESPONSES,
    )
    def export(self, request: Request) -> StreamingHttpResponse:
        """Every customer matching the list's filters, in the list's order, streamed from one
        snapshot: CSV (the default) or JSON Lines, lossless either way."""
        query, from_view, _ = self.query_with_view(request)
        params = self.parsed_by_view_rules(
            parse_customer_export_params,
            query,
            from_view,
            accepted_format=request.accepted_renderer.format,
        )
        try:
            queryset = customer_list(scope=request.scope, filters=params.filters)
        except CustomerFilterError as invalid:
            raise view_errors(invalid.errors, from_view) from None
        return export_response(queryset=queryset, scope=request.scope, export_format=params.format)

    def get_renderers(self):
        if self.action == "export":
            return [CSVRenderer(), JSONLinesRenderer()]
        return super().get_renderers()

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if self.action == "export":
            error_as_json(request, response)
        return response

    @extend_schema(
        operation_id="customers_create",
        summary="Create a customer",
        parameters=CREATE_PARAMETERS,
        request=CustomerCreateSchemaSerializer,
        responses=CREATE_RESPONSES,
    )
    @idempotent
    def create(self, request: Request) -> Response:
        """Create a customer; `status` defaults to `published`."""
        fields = customer_fields_from_body(request.data)
        with service_errors_as_api_errors():
            customer = customer_create(
                scope=request.scope, data=fields, actor=actor_for_request(request)
            )
        return Response(customer_as_dict(customer), status=201)

    @extend_schema(
        operation_id="customers_retrieve",
        summary="Get a customer",
        parameters=RETRIEVE_PARAMETERS,
        responses=RETRIEVE_RESPONSES,
    )
    def retrieve(self, request: Request, customer_id: str) -> Response:
        """One customer by id, archived or not."""
        with service_errors_as_api_errors():
            customer = customer_get(scope=request.scope, customer_id=customer_id)
        return Response(customer_as_dict(customer))

    # `update` is this same function: each decorator applies to one HTTP method.
    @extend_schema(
        methods=["PUT"],
        operation_id="customers_update",
        summary="Update a customer (only the fields sent change, as with PATCH)",
        parameters=UPDATE_PARAMETERS,
        request=CustomerUpdateSchemaSerializer,
        responses=UPDATE_RESPONSES,
    )
    @extend_schema(
        methods=["PATCH"],
        operation_id="customers_partial_update",
        summary="Update a customer (only the fields sent change)",
        parameters=UPDATE_PARAMETERS,
        request=CustomerUpdateSchemaSerializer,
        responses=UPDATE_RESPONSES,
    )
    @idempotent
    def partial_update(self, request: Request, customer_id: str) -> Response:
        """Change only the fields sent (PUT and PATCH alike); `metadata` is replaced whole."""
        fields = customer_fields_from_body(request.data)
        with service_errors_as_api_errors():
            customer = customer_update(
                scope=request.scope,
                customer_id=customer_id,
                data=fields,
                actor=actor_for_request(request),
            )
        return Response(customer_as_dict(customer))

    update = partial_update

    @extend_schema(
        operation_id="customers_update_by_query",
        summary="Update the customer named by ?id= or ?external_customer_id= (Flexprice's form)",
        parameters=UPDATE_BY_QUERY_PARAMETERS,
        request=CustomerUpdateSchemaSerializer,
        responses=UPDATE_BY_QUERY_RESPONSES,
    )
    @idempotent
    def update_by_query(self, request: Request) -> Response:
        """The partial update of `PUT /v1/customers/{id}`, the customer named in the query
        (an external id names the live customer)."""
        which, value = parse_customer_lookup_params(request.query_params)
        fields = customer_fields_from_body(request.data)
        with service_errors_as_api_errors():
            if which == "external_customer_id":
                value = customer_get_by_external_id(scope=request.scope, external_id=value).pk
            customer = customer_update(
                scope=request.scope,
                customer_id=value,
                data=fields,
                actor=actor_for_request(request),
            )
        return Response(customer_as_dict(customer))

    @extend_schema(
        operation_id="customers_destroy",
        summary="Archive a customer (the soft delete)",
        parameters=DESTROY_PARAMETERS,
        request=None,
        responses=DESTROY_RESPONSES,
    )
    @idempotent
    def destroy(self, request: Request, customer_id: str) -> Response:
        """Archive the customer (the soft delete); it stays readable by id."""
        with service_errors_as_api_errors():
            customer_archive(
                scope=request.scope, customer_id=customer_id, actor=actor_for_request(request)
            )
        return Response(status=204)

    @extend_schema(
        operation_id="customers_erase",
        summary="Erase a customer's personal data (a data-protection request)",
        parameters=ERASE_PARAMETERS,
        request=None,
        responses=ERASE_RESPONSES,
    )
    @idempotent
    def erase(self, request: Request, customer_id: str) -> Response:
        """Replace the personal fields everywhere they are stored, archive the customer."""
        with service_errors_as_api_errors():
            customer = customer_erase(
                scope=request.scope, customer_id=customer_id, actor=actor_for_request(request)
            )
        return Response(customer_as_dict(customer))

    @extend_schema(
        operation_id="customers_retrieve_by_external_id",
        summary="Get the customer (not archived) with an external id",
        parameters=BY_EXTERNAL_ID_PARAMETERS,
        responses=BY_EXTERNAL_ID_RESPONSES,
    )
    def retrieve_by_external_id(self, request: Request, external_id: str) -> Response:
        """The non-archived customer with that external id."""
        try:
            check_single_value(external_id)
        except ValidationError as error:
            raise ApiValidationError({"external_id": list(error.messages)}) from None
        with service_errors_as_api_errors():
            customer = customer_get_by_external_id(scope=request.scope, external_id=external_id)
        return Response(customer_as_dict(customer))


class EventViewSet(viewsets.GenericViewSet):
    """The scope's event log: every change to its customers, newest first."""

    @extend_schema(
        operation_id="events_list",
        summary="List events",
        parameters=EVENT_LIST_PARAMETERS,
        responses=EVENT_LIST_RESPONSES,
    )
    def list(self, request: Request) -> Response:
        """The scope's events, newest first (`order=asc`: oldest first), a page at a time by
        cursor; filters `type`, `customer_id` and `created_at[...]`."""
        params = parse_event_list_params(request.query_params)
        try:
            page = event_page(
                scope=request.scope,
                filters=params.filters,
                limit=params.limit,
                cursor=params.cursor,
            )
        except CustomerFilterError as invalid:
            raise ApiValidationError(invalid.errors) from None
        return Response(
            {
                "items": [event_as_dict(event) for event in page.events],
                "pagination": {
                    "limit": page.limit,
                    "has_more": page.has_more,
                    "next_cursor": page.next_cursor,
                },
            }
        )

    @extend_schema(
        operation_id="events_retrieve",
        summary="Get an event",
        parameters=EVENT_RETRIEVE_PARAMETERS,
        responses=EVENT_RETRIEVE_RESPONSES,
    )
    def retrieve(self, request: Request, event_id: str) -> Response:
        """One event of the scope."""
        with service_errors_as_api_errors():
            event = event_get(scope=request.scope, event_id=event_id)
        return Response(event_as_dict(event))
