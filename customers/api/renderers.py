"""DRF's JSON renderer, plus list pages whose items PostgreSQL already wrote as JSON."""

import json
from dataclasses import dataclass

from django.template import loader
from rest_framework import renderers


@dataclass(frozen=True)
class PreRenderedPage:
    """A list envelope whose items are JSON texts (see customers.api.json_rows)."""

    items_json: list[str]
    pagination: dict[str, int]

    def as_data(self) -> dict:
        """The same envelope as Python values (for indented and HTML renderings)."""
        return {
            "items": [json.loads(item) for item in self.items_json],
            "pagination": self.pagination,
        }


class JSONRenderer(renderers.JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, PreRenderedPage):
            indent = self.get_indent(accepted_media_type, renderer_context or {})
            if indent is None and self.compact:
                pagination = json.dumps(data.pagination, separators=(",", ":"))
                body = f'{{"items":[{",".join(data.items_json)}],"pagination":{pagination}}}'
                # As DRF does: U+2028 and U+2029 escaped for JavaScript consumers.
                return body.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()
            data = data.as_data()
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            # A lone surrogate stored before such text was refused at the door: escaped as
            # \udfff (valid JSON in ASCII), so one old row never takes the page down.
            return self.render_ascii(data, accepted_media_type, renderer_context)

    def render_ascii(self, data, accepted_media_type, renderer_context):
        ascii_renderer = type(self)()
        ascii_renderer.ensure_ascii = True
        return super(JSONRenderer, ascii_renderer).render(
            data, accepted_media_type, renderer_context
        )


class BrowsableAPIRenderer(renderers.BrowsableAPIRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, PreRenderedPage):
            data = data.as_data()
        return super().render(data, accepted_media_type, renderer_context)

    def get_filter_form(self, data, view, request):
        """The list's filters as a form behind DRF's "Filters" button (the view says what
        the form holds: ``browsable_filter_form``)."""
        filter_form = getattr(view, "browsable_filter_form", None)
        html = filter_form(request) if filter_form is not None else None
        if not html:
            return None
        return loader.get_template(self.filter_template).render({"elements": [html]})
