"""The customer as the API writes it: the contract's 17 keys, in order, from a row or a model.

One place for the shape that the API, the CSV export and the event log all write, and for
the one RFC 3339 timestamp format (UTC, ``Z``, microseconds only when there are any).
"""

from datetime import UTC, datetime
from typing import Any

from customers.models import Customer
from customers.selectors import ROW_COLUMNS
from customers.shape import API_NAME_OF_ATTRIBUTE, FIELD_NAMES


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# The contract's customer keys, in order (customers.shape), and the attributes they are
# read from where the names differ.
CUSTOMER_FIELDS = FIELD_NAMES
API_FIELD_OF_ATTRIBUTE = API_NAME_OF_ATTRIBUTE


def row_as_dict(row: tuple) -> dict[str, Any]:
    """A customer row (values in ROW_COLUMNS order) as the API's object.

    Lists read rows with ``values_list`` and build plain dicts: 1000 customers cost no
    model instances and no per-field serializer machinery.
    """
    data = dict(zip(CUSTOMER_FIELDS, row, strict=True))
    data["created_at"] = rfc3339(data["created_at"])
    data["updated_at"] = rfc3339(data["updated_at"])
    return data


def row_with_parent_as_dict(row: tuple) -> dict[str, Any]:
    """A row of ROW_COLUMNS + PARENT_ROW_COLUMNS: the customer with `parent_customer`."""
    width = len(ROW_COLUMNS)
    data = row_as_dict(row[:width])
    data["parent_customer"] = row_as_dict(row[width:]) if row[width] is not None else None
    return data


def customer_as_dict(customer: Customer) -> dict[str, Any]:
    return row_as_dict(tuple(getattr(customer, column) for column in ROW_COLUMNS))


def api_value(attribute: str, value: Any) -> Any:
    """A model attribute's value as the API writes it (timestamps as RFC 3339)."""
    return rfc3339(value) if isinstance(value, datetime) else value


def event_as_dict(event) -> dict[str, Any]:
    """An event as the API writes it (the contract's "Events"); its customer objects keep
    the contract's key order, which PostgreSQL's jsonb does not store."""
    data = event.data or {}
    customer = data.get("object") or {}
    return {
        "id": event.id,
        "type": event.type,
        "created_at": rfc3339(event.created_at),
        "tenant_id": event.tenant_id,
        "environment_id": event.environment_id,
        "actor": {"type": event.actor_type, "id": event.actor_id},
        "request_id": event.request_id,
        "data": {
            "object": {name: customer[name] for name in FIELD_NAMES if name in customer},
            "previous_attributes": data.get("previous_attributes") or {},
        },
    }
