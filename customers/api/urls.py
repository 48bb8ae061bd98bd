from django.urls import path

from customers.api import docs, views, webhooks

app_name = "api"

customer_collection = views.CustomerViewSet.as_view(
    {"get": "list", "post": "create", "put": "update_by_query"}, suffix="List"
)
customer_export = views.CustomerViewSet.as_view({"get": "export"}, suffix="Export")
customer_search = views.CustomerViewSet.as_view({"post": "search"}, suffix="Search")
customer_detail = views.CustomerViewSet.as_view(
    {"get": "retrieve", "put": "update", "patch": "partial_update", "delete": "destroy"},
    suffix="Instance",
)
customer_by_external_id = views.CustomerViewSet.as_view(
    {"get": "retrieve_by_external_id"}, suffix="Instance"
)

customer_erase = views.CustomerViewSet.as_view({"post": "erase"}, suffix="Erase")
event_collection = views.EventViewSet.as_view({"get": "list"}, suffix="List")
event_detail = views.EventViewSet.as_view({"get": "retrieve"}, suffix="Instance")
webhook_endpoint_collection = webhooks.WebhookEndpointViewSet.as_view(
    {"get": "list", "post": "create"}, suffix="List"
)
webhook_endpoint_detail = webhooks.WebhookEndpointViewSet.as_view(
    {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}, suffix="Instance"
)
webhook_endpoint_rotate_secret = webhooks.WebhookEndpointViewSet.as_view(
    {"post": "rotate_secret"}, suffix="Rotate secret"
)

urlpatterns = [
    # Public: they describe the API and hold no data.
    path("openapi.json", docs.OpenApiDocumentView.as_view(), name="openapi"),
    path("docs/", docs.SwaggerUIView.as_view(), name="docs"),
    path("customers", customer_collection, name="customer_list"),
    path("customers/export", customer_export, name="customer_export"),
    path("customers/search", customer_search, name="customer_search"),
    path(
        "customers/external/<path:external_id>",
        customer_by_external_id,
        name="customer_by_external_id",
    ),
    path("customers/<str:customer_id>", customer_detail, name="customer_detail"),
    path("customers/<str:customer_id>/erase", customer_erase, name="customer_erase"),
    path("events", event_collection, name="event_list"),
    path("events/<str:event_id>", event_detail, name="event_detail"),
    path("webhook_endpoints", webhook_endpoint_collection, name="webhook_endpoint_list"),
    path(
        "webhook_endpoints/<str:endpoint_id>",
        webhook_endpoint_detail,
        name="webhook_endpoint_detail",
    ),
    path(
        "webhook_endpoints/<str:endpoint_id>/rotate_secret",
        webhook_endpoint_rotate_secret,
        name="webhook_endpoint_rotate_secret",
    ),
]
