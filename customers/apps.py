from django.apps import AppConfig


class CustomersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "customers"
    verbose_name = "Customers"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        # Registers the OpenAPI description of ApiKeyAuthentication with drf-spectacular.
        import customers.api.schema  # noqa: F401
        from customers.conditions import register_sqlite_functions

        connection_created.connect(register_sqlite_functions, dispatch_uid="crm_sqlite_functions")
