"""The customer API's views: they adapt HTTP to the selectors and nothing else."""

from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from customers.api.errors import ApiValidationError
from customers.api.pagination import paginated_response
from customers.api.params import parse_customer_list_params
from customers.api.serializers import CustomerSerializer
from customers.selectors import CustomerFilterError, customer_page


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
