"""List items as JSON text written by PostgreSQL: the same objects as ``row_as_dict``.

For a page of customers, most of the request's Python time went into turning each row into
Python values (timestamps parsed, metadata decoded), then into a dict, then back into
JSON text. On PostgreSQL the page query can return each customer as its JSON text
instead, built in the contract's key order, and the response joins the texts (see
``renderers.JSONRenderer``). SQLite keeps the Python path; on PostgreSQL a test compares
the two for every kind of value.
"""

from django.db.models import Expression, F, TextField

from customers.representation import CUSTOMER_FIELDS
from customers.selectors import ROW_COLUMNS

TIMESTAMP_COLUMNS = frozenset({"created_at", "updated_at"})

# RFC 3339 in UTC as Python's isoformat() writes it: microseconds only when there are any.
# One to_char, whose '.000000Z' (all-zero microseconds) can only be the text's end.
RFC3339_SQL = (
    "replace(to_char({value} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
    " '.000000Z', 'Z')"
)


class JSONObjectText(Expression):
    """``'{"key":' || to_json(value) || ...  || '}'``: a JSON object as text, keys in order.

    (PostgreSQL's json_build_object keeps the order too but writes `"key" : value`, and
    jsonb_build_object sorts the keys.) ``to_json`` escapes strings and embeds jsonb as it
    is; a NULL becomes `null`; a value that is itself a ``JSONObjectText`` (the expanded
    parent) is embedded as it is. ``when_null`` names a column: when it is NULL (no parent
    to expand), the whole object is `null`.
    """

    output_field = TextField()

    def __init__(self, fields: list[tuple[str, F]], *, when_null: F | None = None):
        super().__init__()
        self.fields = fields
        self.when_null = when_null

    def get_source_expressions(self):
        expressions = [value for _, value in self.fields]
        return expressions + ([self.when_null] if self.when_null is not None else [])

    def set_source_expressions(self, expressions):
        count = len(self.fields)
        keys = [key for key, _ in self.fields]
        self.fields = list(zip(keys, expressions[:count], strict=True))
        if self.when_null is not None:
            self.when_null = expressions[count]

    def as_sql(self, compiler, connection):
        parts, params = [], []
        for index, (key, value) in enumerate(self.fields):
            sql, value_params = compiler.compile(value)
            if key in TIMESTAMP_COLUMNS:
                sql = RFC3339_SQL.format(value=sql)
            if not isinstance(value, JSONObjectText):
                sql = f"COALESCE(to_json({sql})::text, 'null')"
            separator = "{" if index == 0 else ","
            # The keys are this module's constants: plain JSON strings, nothing to escape.
            parts.append(f"'{separator}\"{key}\":' || {sql}")
            params.extend(value_params)
        body = " || ".join(parts) + " || '}'"
        if self.when_null is None:
            return f"({body})", params
        null_sql, null_params = compiler.compile(self.when_null)
        return f"(CASE WHEN {null_sql} IS NULL THEN 'null' ELSE {body} END)", [
            *null_params,
            *params,
        ]


def customer_object(prefix: str = "", *, when_null: F | None = None) -> JSONObjectText:
    return JSONObjectText(
        [
            (key, F(f"{prefix}{column}"))
            for key, column in zip(CUSTOMER_FIELDS, ROW_COLUMNS, strict=True)
        ],
        when_null=when_null,
    )


def customer_json(*, expand_parent: bool) -> JSONObjectText:
    """One customer as the API's JSON text (with `parent_customer` when expanded)."""
    customer = customer_object()
    if expand_parent:
        parent = customer_object("parent__", when_null=F("parent__id"))
        customer.fields.append(("parent_customer", parent))
    return customer
