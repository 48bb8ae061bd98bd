"""The customer change list's rows, written directly.

Django's ``items_for_result`` works out, for each of the ~550 cells of a 50-row page,
which kind of column it renders (a model field, an admin method, an attribute, a link)
and formats it through several helpers: about half of the page's rendering time. The
columns do not change between rows, so ``row_renderer`` decides each column's rendering
once per page; the cells are then formatted with the same helpers Django uses
(``display_for_field``, ``display_for_value``, ``add_preserved_filters``), so the markup is
the same, which a test compares cell by cell.
"""

import datetime
from collections.abc import Callable

from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.utils import display_for_field, display_for_value, quote
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.urls import reverse
from django.utils.html import conditional_escape, escape
from django.utils.safestring import SafeString, mark_safe

# A column's cell for one result: (its text, whether it needs the `nowrap` class).
Cell = Callable[[models.Model], tuple[str, bool]]


def blank_as_empty(value):
    """As items_for_result: a string of only whitespace counts as empty."""
    return "" if isinstance(value, str) and value.strip() == "" else value


def field_cell(field: models.Field, empty: str) -> Cell:
    attname = field.attname
    if field.flatchoices:
        # display_for_field's first case, with the choices' labels looked up once per page.
        labels = dict(field.flatchoices)

        def label(result) -> tuple[str, bool]:
            value = blank_as_empty(getattr(result, attname))
            return labels.get(value, empty), False

        return label
    if isinstance(field, models.CharField | models.TextField):
        # display_for_field for text: the empty value, or the text itself.
        empty_values = field.empty_values

        def plain(result) -> tuple[str, bool]:
            value = blank_as_empty(getattr(result, attname))
            return (empty if value in empty_values else str(value)), False

        return plain

    def text(result) -> tuple[str, bool]:
        value = blank_as_empty(getattr(result, attname))
        return display_for_field(value, field, empty), False

    return text


def value_cell(read: Callable[[models.Model], object], empty: str, boolean: bool) -> Cell:
    def text(result) -> tuple[str, bool]:
        value = blank_as_empty(read(result))
        # Like Django: a date or time that is not a model field's also gets `nowrap`.
        nowrap = isinstance(value, datetime.date | datetime.time)
        return display_for_value(value, empty, boolean), nowrap

    return text


def column_cell(cl, name: str) -> tuple[Cell, list[str]]:
    """(the cell's text for a result, the cell's classes), decided once per column."""
    model_admin = cl.model_admin
    empty = model_admin.get_empty_value_display()
    classes = [f"field-{name}"]
    try:
        field = cl.lookup_opts.get_field(name)
    except FieldDoesNotExist:
        field = None
    if field is not None and field.attname == name and field.is_relation:
        field = None  # `tenant_id`: Django shows the raw column value, as an attribute
    if field is not None and not field.auto_created and not field.is_relation:
        if isinstance(field, models.DateField | models.TimeField):
            classes.append("nowrap")
        return field_cell(field, empty), classes
    if field is not None:
        raise NotImplementedError(f"column {name!r}: relations are not rendered here")
    if name == "action_checkbox":
        classes = ["action-checkbox"]
    method = getattr(model_admin, name, None)
    if callable(method):
        boolean = getattr(method, "boolean", False)
        empty = getattr(method, "empty_value_display", empty)
        return value_cell(method, empty, boolean), classes
    return value_cell(lambda result: getattr(result, name), empty, False), classes


def row_renderer(cl) -> Callable[[models.Model], SafeString]:
    """A function that writes one result's cells, as ``items_for_result`` would."""
    links = cl.list_display_links
    columns = []
    first_link = True
    for name in cl.list_display:
        text, classes = column_cell(cl, name)
        is_link = links is not None and (name in links or (first_link and not links))
        tag = "td"
        if is_link:
            tag = "th" if first_link else "td"
            first_link = False
        columns.append((text, " ".join(classes), tag, is_link))
    preserved = {"preserved_filters": cl.preserved_filters, "opts": cl.opts}
    query_suffix: list[str] = []

    def preserved_filters_added(url: str) -> str:
        # add_preserved_filters resolves and parses the URL; for change URLs (no query of
        # their own) it always appends the same query, so work it out once per page.
        if not query_suffix:
            query_suffix.append(add_preserved_filters(preserved, url)[len(url) :])
        return url + query_suffix[0]

    change_url = f"admin:{cl.opts.app_label}_{cl.opts.model_name}_change"
    pk_attname = cl.lookup_opts.pk.attname
    attr = str(cl.to_field) if cl.to_field else pk_attname

    def render(result) -> SafeString:
        # Plain string building: every value goes through conditional_escape (what
        # format_html does to its arguments), the rest is this function's own markup.
        cells = []
        for text, classes, tag, is_link in columns:
            value, nowrap = text(result)
            content = conditional_escape(value)
            if is_link:
                url = reverse(
                    change_url,
                    args=(quote(getattr(result, pk_attname)),),
                    current_app=cl.model_admin.admin_site.name,
                )
                opener = ""
                if cl.is_popup:
                    opener = f' data-popup-opener="{escape(result.serializable_value(attr))}"'
                href = escape(preserved_filters_added(url))
                content = f'<a href="{href}"{opener}>{content}</a>'
            cell_classes = f"{classes} nowrap" if nowrap else classes
            cells.append(f'<{tag} class="{escape(cell_classes)}">{content}</{tag}>')
        return mark_safe("".join(cells))  # noqa: S308 (every value is escaped above)

    return render
