"""The customer API's views: they adapt HTTP to the selectors and services and nothing else."""

from django.core.exceptions import ValidationError
from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from customers.api.errors import ApiValidationError, service_errors_as_api_errors
from customers.api.idempotency import idempotent
from customers.api.pagination import paginated_response
from customers.api.params import parse_customer_list_params
from customers.api.serializers import (
    CustomerSerializer,
    customer_as_dict,
    customer_fields_from_body,
)
from customers.filters import check_single_value
from customers.selectors import (
    CustomerFilterError,
    customer_get,
    customer_get_by_external_id,
    customer_page,
)
from customers.services import customer_archive, customer_create, customer_update


class CustomerViewSet(viewsets.GenericViewSet):
    """Customers of the caller's tenant and environment (from the API key, or the switcher)."""

    serializer_class = CustomerSerializer

    def list(self, request: Request) -> Response:
        """List customers, filtered and sorted, with the exact total."""
        params = parse_customer_list_params(request.query_params)
        expand_parent = "parent_customer" in params.expand
        try:
            page = customer_page(
                scope=request.scope,
                filters=params.filters,
                limit=params.limit,
                offset=params.offset,
                expand_parent=expand_parent,
            )
        except CustomerFilterError as invalid:
            raise ApiValidationError(invalid.errors) from None
        serializer = CustomerSerializer(
            page.items, many=True, context={"expand_parent": expand_parent}
        )
        return paginated_response(page, serializer.data)

    @idempotent
    def create(self, request: Request) -> Response:
        """Create a customer; `status` defaults to `published`."""
        fields = customer_fields_from_body(request.data)
        with service_errors_as_api_errors():
            customer = customer_create(scope=request.scope, data=fields)
        return Response(customer_as_dict(customer), status=201)

    def retrieve(self, request: Request, customer_id: str) -> Response:
        """One customer by id, archived or not."""
        with service_errors_as_api_errors():
            customer = customer_get(scope=request.scope, customer_id=customer_id)
        return Response(customer_as_dict(customer))

    @idempotent
    def partial_update(self, request: Request, customer_id: str) -> Response:
        """Change only the fields sent (PUT and PATCH alike); `metadata` is replaced whole."""
        fields = customer_fields_from_body(request.data)
        with service_errors_as_api_errors():
            customer = customer_update(scope=request.scope, customer_id=customer_id, data=fields)
        return Response(customer_as_dict(customer))

    update = partial_update

    @idempotent
    def destroy(self, request: Request, customer_id: str) -> Response:
        """Archive the customer (the soft delete); it stays readable by id."""
        with service_errors_as_api_errors():
            customer_archive(scope=request.scope, customer_id=customer_id)
        return Response(status=204)

    def retrieve_by_external_id(self, request: Request, external_id: str) -> Response:
        """The non-archived customer with that external id."""
        try:
            check_single_value(external_id)
        except ValidationError as error:
            raise ApiValidationError({"external_id": list(error.messages)}) from None
        with service_errors_as_api_errors():
            customer = customer_get_by_external_id(scope=request.scope, external_id=external_id)
        return Response(customer_as_dict(customer))
