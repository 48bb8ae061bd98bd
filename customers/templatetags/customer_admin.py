"""`{% customer_result_list cl %}`: Django's `result_list` with rows from admin_rows."""

from django import template
from django.contrib.admin.templatetags.admin_list import result_headers

from customers.admin_rows import row_renderer

register = template.Library()


@register.inclusion_tag("admin/change_list_results.html")
def customer_result_list(cl):
    headers = list(result_headers(cl))
    render = row_renderer(cl)
    return {
        "cl": cl,
        "result_hidden_fields": [],
        "result_headers": headers,
        "num_sorted_fields": sum(1 for h in headers if h["sortable"] and h["sorted"]),
        # One item per row: the template writes each row's items between <tr> and </tr>.
        "results": [[render(result)] for result in cl.result_list],
    }
