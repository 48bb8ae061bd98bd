from django.urls import path

from customers.api import views

app_name = "api"

urlpatterns = [
    path("customers", views.CustomerViewSet.as_view({"get": "list"}), name="customer_list"),
]
