"""From a page of customers to the list's response body: one object, for both databases.

``CustomerListPresenter`` says how the page's rows are read (its ``projection``, which the
selector applies to the filtered, ordered queryset) and turns the page into the envelope
``{"items": [...], "pagination": {...}}``. On PostgreSQL the database writes each customer's
JSON text (``customers.api.json_rows``), which the renderer joins without parsing; on other
databases the rows are values, written out by ``customers.representation``. Views never
know which database they run on.
"""

from django.db import connection
from django.db.models import QuerySet

from customers.api.json_rows import customer_json
from customers.api.renderers import PreRenderedPage
from customers.representation import row_as_dict, row_with_parent_as_dict
from customers.selectors import CustomerPage
from customers.shape import ROW_ATTRIBUTES

PARENT_ROW_ATTRIBUTES = tuple(f"parent__{attribute}" for attribute in ROW_ATTRIBUTES)


class CustomerListPresenter:
    def __init__(self, *, expand_parent: bool):
        self.expand_parent = expand_parent
        self.database_writes_json = connection.vendor == "postgresql"

    def projection(self, queryset: QuerySet, *extra: str) -> QuerySet:
        """The page's rows, each led by the customer's id and ending with the ``extra``
        columns the selector asks for (see customers.selectors.customer_page)."""
        if self.database_writes_json:
            row = customer_json(expand_parent=self.expand_parent)
            return queryset.annotate(row=row).values_list("id", "row", *extra)
        if self.expand_parent:
            return queryset.values_list(*ROW_ATTRIBUTES, *PARENT_ROW_ATTRIBUTES, *extra)
        return queryset.values_list(*ROW_ATTRIBUTES, *extra)

    def body(self, page: CustomerPage) -> PreRenderedPage | dict:
        pagination = {
            "total": page.total,
            "limit": page.limit,
            "offset": page.offset,
            "has_more": page.has_more,
            "next_cursor": page.next_cursor,
        }
        if self.database_writes_json:
            return PreRenderedPage(items_json=[row[1] for row in page.rows], pagination=pagination)
        as_dict = row_with_parent_as_dict if self.expand_parent else row_as_dict
        return {"items": [as_dict(row) for row in page.rows], "pagination": pagination}
