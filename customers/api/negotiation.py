"""Content negotiation whose unknown `format` is a 400 naming it, not DRF's 404.

DRF reads the `format` query parameter to pick a renderer and answers 404 when none has
that format (known-traps.md): a format an endpoint does not serve is a bad parameter.
"""

from rest_framework.negotiation import DefaultContentNegotiation

from customers.api.errors import ApiValidationError


class ContentNegotiation(DefaultContentNegotiation):
    def filter_renderers(self, renderers, format):
        served = [renderer for renderer in renderers if renderer.format == format]
        if not served:
            formats = ", ".join(dict.fromkeys(renderer.format for renderer in renderers))
            raise ApiValidationError({"format": [f"must be one of {formats}"]})
        return served
