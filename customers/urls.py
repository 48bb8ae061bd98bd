from django.urls import path

from customers import views

app_name = "customers"

urlpatterns = [
    path("environment/switch", views.environment_switch, name="environment_switch"),
    path("favicon.ico", views.favicon, name="favicon"),
]
