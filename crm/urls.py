from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from customers import operations

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("healthz", operations.healthz, name="healthz"),
    path("readyz", operations.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("v1/", include("customers.api.urls")),
    path("api-auth/", include("rest_framework.urls")),
    path("", include("customers.urls")),
]
