from django.apps import AppConfig


class CustomersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "customers"
    verbose_name = "Customers"

    def ready(self) -> None:
        # Registers the OpenAPI description of ApiKeyAuthentication with drf-spectacular.
        import customers.api.schema  # noqa: F401
