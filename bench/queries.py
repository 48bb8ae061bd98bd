"""The timed queries, each with its raw-SQL floor: the SQL an ideal implementation needs."""

import json
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from psycopg import sql

from bench.common import (
    BENCH_ENVIRONMENT,
    BENCH_TENANT,
    CONTRACT_COLUMNS,
    COUNTS_TABLE,
    CUSTOMER_TABLE,
)
from bench.data import Probes


@dataclass(frozen=True)
class Floor:
    """The raw SQL an ideal implementation needs: the page, then (when needed) the total."""

    page: sql.Composable
    page_params: tuple
    limit: int
    offset: int
    total: sql.Composable | None
    total_params: tuple = ()


@dataclass(frozen=True)
class Query:
    name: str
    path: str
    kind: str  # "api" or "admin"
    target_ms: float | None
    floor: Floor
    check: Callable[[bytes], str | None]  # a problem with the response body, or None
    # Whether the --compare checkout answers it too (False: a parameter it does not have).
    in_before: bool = True
    # Each a goal of its own (issue "Find and sync customers"): the app's p50 at most
    # ``floor_goal`` times the SQL floor's.
    floor_goal: float | None = None


def columns(alias: str, names=CONTRACT_COLUMNS) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(alias, name) for name in names)


def page_sql(
    *,
    where: str,
    order: str = "c.created_at DESC, c.id DESC",
    join_parent: str | None = None,
    ids_first: bool = False,
) -> sql.Composable:
    """SELECT the contract's columns (and the parent's, when joined) ... LIMIT %s OFFSET %s.

    ``ids_first``: the best SQL for a deep page: the skipped rows are walked in the index
    alone (an index-only scan for the ids), then only the page's rows are read.
    """
    selected = columns("c")
    join = sql.SQL("")
    if join_parent == "full":
        selected = sql.SQL("{}, {}").format(selected, columns("p"))
    elif join_parent == "name":
        selected = sql.SQL("{}, {}").format(selected, sql.Identifier("p", "name"))
    if join_parent:
        join = sql.SQL(" LEFT JOIN {} p ON p.id = c.parent_customer_id").format(
            sql.Identifier(CUSTOMER_TABLE)
        )
    table = sql.Identifier(CUSTOMER_TABLE)
    if ids_first:
        return sql.SQL(
            "SELECT {} FROM {} c{} WHERE c.id IN (SELECT c.id FROM {} c WHERE "
            + where
            + " ORDER BY "
            + order
            + " LIMIT %s OFFSET %s) ORDER BY "
            + order
        ).format(selected, table, join, table)
    return sql.SQL(
        "SELECT {} FROM {} c{} WHERE " + where + " ORDER BY " + order + " LIMIT %s OFFSET %s"
    ).format(selected, table, join)


def counts_sql(where: str) -> sql.Composable:
    return sql.SQL("SELECT COALESCE(SUM(count), 0) FROM {} WHERE " + where).format(
        sql.Identifier(COUNTS_TABLE)
    )


def capped_count_sql(where: str, limit: int) -> sql.Composable:
    """COUNT(*) of at most limit + 1 matches: the admin's search stops there (it reads
    customers.selectors.SEARCH_COUNT_LIMIT from the app, see run.py) and shows "limit+"."""
    return sql.SQL(
        "SELECT COUNT(*) FROM (SELECT 1 FROM {} c WHERE " + where + f" LIMIT {limit + 1}) s"
    ).format(sql.Identifier(CUSTOMER_TABLE))


def count_sql(where: str) -> sql.Composable:
    return sql.SQL("SELECT COUNT(*) FROM {} c WHERE " + where).format(
        sql.Identifier(CUSTOMER_TABLE)
    )


def api_check(*, items: int | None = None, at_least: int = 1, key: str | None = None):
    def check(body: bytes) -> str | None:
        data = json.loads(body)
        found = len(data["items"])
        if items is not None and found != items:
            return f"expected {items} items, got {found}"
        if found < at_least:
            return f"expected at least {at_least} items, got {found}"
        if key and found and key not in data["items"][0]:
            return f"items lack {key!r}"
        return None

    return check


def admin_check(must_contain: str | None = None):
    def check(body: bytes) -> str | None:
        text = body.decode(errors="replace")
        if 'id="result_list"' not in text:
            return "no result list (not logged in, or an error page)"
        if must_contain and must_contain.lower() not in text.lower():
            return f"the page does not show {must_contain!r}"
        return None

    return check


def build_queries(
    *, probes: Probes, deep_offset: int, common_word: str, search_count_limit: int
) -> list[Query]:
    scope = "c.tenant_id = %s AND c.environment_id = %s"
    scope_params = (BENCH_TENANT, BENCH_ENVIRONMENT)
    scope_counts = counts_sql("tenant_id = %s AND environment_id = %s")
    deep_page = deep_offset // 50 + 1
    search = scope + " AND c.search_key LIKE %s"

    def api(name, path, target, floor, check):
        return Query(name, path, "api", target, floor, check)

    def admin(name, path, target, floor, check):
        return Query(name, path, "admin", target, floor, check)

    email_where = scope + " AND c.email_key = %s"
    external_where = scope + " AND c.external_id = %s"
    return [
        api(
            "default list (limit 50)",
            "/v1/customers",
            10,
            Floor(page_sql(where=scope), scope_params, 50, 0, scope_counts, scope_params),
            api_check(items=50),
        ),
        api(
            "email=",
            "/v1/customers?" + urllib.parse.urlencode({"email": probes.email}),
            5,
            Floor(
                page_sql(where=email_where),
                (*scope_params, probes.email.lower()),
                50,
                0,
                count_sql(email_where),
                (*scope_params, probes.email.lower()),
            ),
            api_check(at_least=1),
        ),
        api(
            "external_id=",
            "/v1/customers?" + urllib.parse.urlencode({"external_id": probes.external_id}),
            5,
            Floor(
                page_sql(where=external_where),
                (*scope_params, probes.external_id),
                50,
                0,
                count_sql(external_where),
                (*scope_params, probes.external_id),
            ),
            api_check(items=1),
        ),
        api(
            "status=archived",
            "/v1/customers?status=archived",
            5,
            Floor(
                page_sql(where=scope + " AND c.status = 'archived'"),
                scope_params,
                50,
                0,
                counts_sql("tenant_id = %s AND environment_id = %s AND status = 'archived'"),
                scope_params,
            ),
            api_check(items=50),
        ),
        api(
            "sort=name&order=asc&limit=100",
            "/v1/customers?sort=name&order=asc&limit=100",
            10,
            Floor(
                page_sql(where=scope, order="c.name_key ASC, c.id ASC"),
                scope_params,
                100,
                0,
                scope_counts,
                scope_params,
            ),
            api_check(items=100),
        ),
        api(
            f"offset={deep_offset}",
            f"/v1/customers?offset={deep_offset}",
            60,
            Floor(
                page_sql(where=scope, ids_first=True),
                scope_params,
                50,
                deep_offset,
                scope_counts,
                scope_params,
            ),
            api_check(items=50),
        ),
        api(
            "limit=1000&expand=parent_customer",
            "/v1/customers?limit=1000&expand=parent_customer",
            40,
            Floor(
                page_sql(where=scope, join_parent="full"),
                scope_params,
                1000,
                0,
                scope_counts,
                scope_params,
            ),
            api_check(items=1000, key="parent_customer"),
        ),
        admin(
            "admin changelist",
            "/admin/customers/customer/",
            30,
            Floor(
                page_sql(where=scope, join_parent="name"),
                scope_params,
                50,
                0,
                scope_counts,
                scope_params,
            ),
            admin_check(),
        ),
        admin(
            f"admin search, common word ({common_word!r})",
            "/admin/customers/customer/?" + urllib.parse.urlencode({"q": common_word}),
            40,
            Floor(
                page_sql(where=search, join_parent="name"),
                (*scope_params, f"%{common_word}%"),
                50,
                0,
                capped_count_sql(search, search_count_limit),
                (*scope_params, f"%{common_word}%"),
            ),
            admin_check(common_word),
        ),
        admin(
            f"admin search, rare email fragment ({probes.email_fragment!r})",
            "/admin/customers/customer/?" + urllib.parse.urlencode({"q": probes.email_fragment}),
            40,
            Floor(
                page_sql(where=search, join_parent="name"),
                (*scope_params, f"%{probes.email_fragment}%"),
                50,
                0,
                capped_count_sql(search, search_count_limit),
                (*scope_params, f"%{probes.email_fragment}%"),
            ),
            admin_check(probes.email_fragment),
        ),
        admin(
            f"admin deep page (p={deep_page}, offset {deep_offset})",
            f"/admin/customers/customer/?p={deep_page}",
            None,
            Floor(
                page_sql(where=scope, join_parent="name", ids_first=True),
                scope_params,
                50,
                deep_offset,
                scope_counts,
                scope_params,
            ),
            admin_check(),
        ),
    ]


# -- Finding and syncing (q, date ranges, metadata, cursors): the --compare checkout lacks them


FIND_FLOOR_GOAL = 3.0  # the app's p50 within 3x of its raw-SQL floor
CURSOR_GOAL = 2.0  # a deep cursor page within 2x of the first page
CREATED_RANGE = ("2023-03-01", "2023-04-01")  # a month of sign-ups: ~16,000 of the 600,000
METADATA_FILTER = {"plan_tier": "enterprise", "region": "eu-central"}  # ~5% of the scope


def find_queries(*, probes: Probes, common_word: str) -> list[Query]:
    """``q`` with a rare and a common word, a ``created_at`` range and a ``metadata[...]``
    filter, each floored by the same page and its exact total (COUNT) through psycopg."""
    scope = "c.tenant_id = %s AND c.environment_id = %s"
    scope_params = (BENCH_TENANT, BENCH_ENVIRONMENT)

    def find(name, parameters, target, where, params, check):
        path = "/v1/customers?" + urllib.parse.urlencode(parameters)
        floor = Floor(page_sql(where=where), params, 50, 0, count_sql(where), params)
        return Query(name, path, "api", target, floor, check, False, FIND_FLOOR_GOAL)

    search = scope + " AND c.search_key LIKE %s"
    created = scope + " AND c.created_at >= %s AND c.created_at < %s"
    metadata = scope + " AND c.metadata @> %s::jsonb"
    gte, lt = CREATED_RANGE
    return [
        find(
            f"q, rare word ({probes.email_fragment!r})",
            {"q": probes.email_fragment},
            10,
            search,
            (*scope_params, f"%{probes.email_fragment}%"),
            api_check(at_least=1),
        ),
        find(
            f"q, common word ({common_word!r})",
            {"q": common_word},
            None,
            search,
            (*scope_params, f"%{common_word.lower()}%"),
            api_check(items=50),
        ),
        find(
            f"created_at[gte]={gte}&created_at[lt]={lt}",
            {"created_at[gte]": gte, "created_at[lt]": lt},
            10,
            created,
            (*scope_params, f"{gte}T00:00:00Z", f"{lt}T00:00:00Z"),
            api_check(items=50),
        ),
        find(
            "&".join(f"metadata[{key}]={value}" for key, value in METADATA_FILTER.items()),
            {f"metadata[{key}]": value for key, value in METADATA_FILTER.items()},
            10,
            metadata,
            (*scope_params, json.dumps(METADATA_FILTER)),
            api_check(items=50),
        ),
    ]


FIRST_PAGE = "default list (limit 50)"


def cursor_query(*, cursor: str, after: tuple, depth: int) -> Query:
    """The page after the row at ``depth`` by the cursor the app gave for it (``after``:
    that row's created_at and id), floored by the keyset page and the total."""
    scope = "c.tenant_id = %s AND c.environment_id = %s"
    scope_params = (BENCH_TENANT, BENCH_ENVIRONMENT)
    where = scope + " AND (c.created_at, c.id) < (%s, %s)"
    return Query(
        f"cursor page at depth {depth:,}",
        "/v1/customers?" + urllib.parse.urlencode({"cursor": cursor}),
        "api",
        None,
        Floor(
            page_sql(where=where),
            (*scope_params, *after),
            50,
            0,
            counts_sql("tenant_id = %s AND environment_id = %s"),
            scope_params,
        ),
        api_check(items=50),
        False,
    )
